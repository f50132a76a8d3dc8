// Cross-entropy from the logits of a final softmax / sigmoid (Keras's output._keras_logits rule):
// the trainer computes the loss from z and back-propagates (p - y) / N, so a saturated softmax still
// learns. Checked against hand formulas in double, and on real flower photos with the codelab's
// first model (Flatten -> Dense(500) -> Dense(50) -> Dense(5, softmax)).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <keras/data/image.hpp>
#include <keras/keras.hpp>

using namespace keras;
namespace fs = std::filesystem;

namespace {

/// A one-layer model x -> Dense(C, softmax) with the given kernel (no bias), in double.
Sequential<double> softmax_model(Index in, Index classes, const std::string& activation = "softmax") {
  Sequential<double> m;
  m.add(layers::InputLayer<double>({.shape = {in}}));
  m.add(layers::Dense<double>(classes, {.activation = activation, .use_bias = false}));
  return m;
}

}  // namespace

TEST_CASE("saturated softmax + categorical cross-entropy: loss and gradient come from the logits") {
  const Index N = 2, K = 3, C = 4;
  auto m = softmax_model(K, C);
  auto& dense = dynamic_cast<layers::Dense<double>&>(*m.layers().at(0));
  // Large weights: the true class's probability is far below the 1e-7 clip.
  Tensor<double> w({K, C});
  for (Index i = 0; i < w.size(); ++i) w[i] = 30.0 * std::sin(1.7 * double(i) + 0.3);
  dense.kernel().value = w;
  Tensor<double> x({N, K}), y({N, C});
  for (Index i = 0; i < x.size(); ++i) x[i] = std::cos(0.9 * double(i)) + 0.5;
  y.setZero();
  // the class each sample's logits like least
  std::vector<Index> label(N);
  Tensor<double> z({N, C});
  for (Index n = 0; n < N; ++n) {
    for (Index c = 0; c < C; ++c) {
      double s = 0;
      for (Index k = 0; k < K; ++k) s += x[n * K + k] * w[k * C + c];
      z[n * C + c] = s;
    }
    label[n] = std::min_element(z.data() + n * C, z.data() + (n + 1) * C) - (z.data() + n * C);
    y[n * C + label[n]] = 1;
  }
  // hand formulas: loss = mean_n(logsumexp(z_n) - z_n[y]); dL/dW = x^T (softmax(z) - y) / N
  double loss = 0;
  Tensor<double> dz({N, C});
  for (Index n = 0; n < N; ++n) {
    double mx = *std::max_element(z.data() + n * C, z.data() + (n + 1) * C), se = 0;
    for (Index c = 0; c < C; ++c) se += std::exp(z[n * C + c] - mx);
    loss += (mx + std::log(se) - z[n * C + label[n]]) / N;
    for (Index c = 0; c < C; ++c) dz[n * C + c] = (std::exp(z[n * C + c] - mx) / se - y[n * C + c]) / N;
  }
  REQUIRE(loss > 20.0);  // beyond what clipped probabilities can report (-log 1e-7 = 16.1)

  m.compile(optimizers::SGD<double>({.learning_rate = 1.0}), losses::CategoricalCrossentropy<double>());
  CHECK(m.evaluate(x, y, N).at("loss") == Approx(loss).epsilon(1e-12));
  const double l = m.train_on_batch(x, y);
  CHECK(l == Approx(loss).epsilon(1e-12));
  // SGD with lr 1: w' = w - dL/dW
  for (Index k = 0; k < K; ++k)
    for (Index c = 0; c < C; ++c) {
      double g = 0;
      for (Index n = 0; n < N; ++n) g += x[n * K + k] * dz[n * C + c];
      INFO("k " << k << " c " << c);
      CHECK(dense.kernel().value[k * C + c] == Approx(w[k * C + c] - g).margin(1e-12));
    }
}

TEST_CASE("Activation(softmax) and Softmax layers, and sparse labels, take the logits path too") {
  const Index N = 3, C = 5;
  Tensor<double> z({N, C}), y({N}), yo({N, C});
  for (Index i = 0; i < z.size(); ++i) z[i] = 25.0 * std::sin(2.1 * double(i));
  yo.setZero();
  double loss = 0;
  for (Index n = 0; n < N; ++n) {
    const Index lab = (n * 2 + 1) % C;
    y[n] = double(lab);
    yo[n * C + lab] = 1;
    double mx = *std::max_element(z.data() + n * C, z.data() + (n + 1) * C), se = 0;
    for (Index c = 0; c < C; ++c) se += std::exp(z[n * C + c] - mx);
    loss += (mx + std::log(se) - z[n * C + lab]) / N;
  }
  for (int kind = 0; kind < 2; ++kind) {
    auto in = Input<double>({C});
    auto out = kind == 0 ? layers::Activation<double>("softmax")(in) : layers::Softmax<double>()(in);
    Model<double> m(in, out);
    m.compile(optimizers::SGD<double>(), losses::CategoricalCrossentropy<double>());
    CHECK(m.evaluate(z, yo, N).at("loss") == Approx(loss).epsilon(1e-12));
    m.compile(optimizers::SGD<double>(), losses::SparseCategoricalCrossentropy<double>());
    CHECK(m.evaluate(z, y, N).at("loss") == Approx(loss).epsilon(1e-12));
  }
}

TEST_CASE("sigmoid + binary cross-entropy from the logits; other pairs keep the probabilities") {
  const Index N = 4, K = 2;
  auto m = softmax_model(K, 1, "sigmoid");
  auto& dense = dynamic_cast<layers::Dense<double>&>(*m.layers().at(0));
  dense.kernel().value[0] = 40;
  dense.kernel().value[1] = -35;
  Tensor<double> x({N, K}), y({N, 1});
  double loss = 0;
  for (Index n = 0; n < N; ++n) {
    x[n * K] = 1.0 + 0.25 * double(n);
    x[n * K + 1] = 0.5 - 0.1 * double(n);
    y[n] = n % 2 ? 1.0 : 0.0;
    const double zz = 40 * x[n * K] - 35 * x[n * K + 1];
    loss += (std::max(zz, 0.0) - zz * y[n] + std::log1p(std::exp(-std::abs(zz)))) / N;
  }
  m.compile(optimizers::SGD<double>(), losses::BinaryCrossentropy<double>());
  CHECK(m.evaluate(x, y, N).at("loss") == Approx(loss).epsilon(1e-12));
  // categorical cross-entropy on a sigmoid output is not Keras's fused pair: probabilities, clipped
  auto m2 = softmax_model(K, 2, "sigmoid");
  m2.compile(optimizers::SGD<double>(), losses::CategoricalCrossentropy<double>());
  Tensor<double> y2({N, 2});
  y2.setZero();
  for (Index n = 0; n < N; ++n) y2[n * 2] = 1;
  const Tensor<double> p = m2.predict(x);
  CHECK(m2.evaluate(x, y2, N).at("loss") == Approx(losses::CategoricalCrossentropy<double>()(y2, p)).epsilon(1e-12));
}

TEST_CASE("the logits path gives the same probabilities in fast, sliced and layer-by-layer passes") {
  auto in = Input<float>({6});
  auto h = layers::Dense(8, {.activation = "relu"})(in);
  auto out = layers::Dense(3, {.activation = "softmax"})(h);
  Model<float> m(in, out);
  Tensor<float> x({64, 6});
  for (Index i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i));
  const Tensor<float> ref = m.predict(x, 64);
  for (Index slice : {0, 1, 64}) {
    m.graph().set_inference_slice(slice);
    m.graph().forward({&x}, false, true);
    REQUIRE(m.graph().output_logits());
    Tensor<float> p = m.graph().output();
    for (Index i = 0; i < p.size(); ++i) REQUIRE(p[i] == Approx(ref[i]).margin(1e-6));
    m.graph().set_fusion(false);
    m.graph().forward({&x}, false, true);
    Tensor<float> q = m.graph().output();
    for (Index i = 0; i < q.size(); ++i) REQUIRE(q[i] == Approx(ref[i]).margin(1e-6));
    m.graph().set_fusion(true);
  }
}

TEST_CASE("the codelab's first model learns on real flower photos", "[photos]") {
  const fs::path root = fs::path(KERASCPP_SHARED_DIR) / "data" / "flower_photos";
  if (!fs::is_directory(root / "daisy")) {
    WARN("no flower photos in " << root << ": skipped");
    return;
  }
  // 40 photos per class (the first in name order), 192x192, scaled to [0, 1] as in the codelab.
  const std::vector<std::string> classes = {"daisy", "dandelion", "roses", "sunflowers", "tulips"};
  const Index per_class = 40, S = 192, N = per_class * static_cast<Index>(classes.size());
  Tensor<float> x({N, S, S, 3}), y({N, 5});
  y.setZero();
  Index n = 0;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(root / classes[c]))
      if (e.path().extension() == ".jpg") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    REQUIRE(static_cast<Index>(files.size()) >= per_class);
    for (Index k = 0; k < per_class; ++k, ++n) {
      auto img = data::decode_image(files[static_cast<std::size_t>(k)].string());
      auto px = data::resize_image<float>(img, S, S);
      for (std::size_t i = 0; i < px.size(); ++i) x.data()[n * S * S * 3 + static_cast<Index>(i)] = px[i] / 255.f;
      y[n * 5 + static_cast<Index>(c)] = 1;
    }
  }
  set_random_seed(42);
  Sequential<float> model;
  model.add(layers::InputLayer({.shape = {S, S, 3}}));
  model.add(layers::Flatten());
  model.add(layers::Dense(500, {.activation = "relu"}));
  model.add(layers::Dense(50, {.activation = "relu"}));
  model.add(layers::Dense(5, {.activation = "softmax"}));
  model.compile("adam", "categorical_crossentropy", {"accuracy"});
  auto h = model.fit(x, y, {.epochs = 12, .batch_size = 16, .seed = 7, .verbose = 2});
  const auto& acc = h["accuracy"];
  const auto& loss = h["loss"];
  INFO("accuracy per epoch: first " << acc.front() << ", last " << acc.back() << "; loss first " << loss.front()
                                    << ", last " << loss.back());
  // Before the logits path it stayed at 0.16-0.18 with the loss stuck at 13.6 (clipped probabilities).
  CHECK(acc.back() >= 0.6);
  CHECK(loss.back() < 0.5 * loss.front());
  CHECK(*std::min_element(loss.begin(), loss.end()) < 1.0);
}
