// Inference-mode fusion of conv -> BatchNormalization -> ReLU(6) -> Add chains (engine/fusion.hpp):
// fused and unfused passes agree, chains that must not fuse stay unfused, and gradients are right
// both after a fused inference pass and in training mode.
#include "layer_check.hpp"

#include <keras/layers/activation.hpp>
#include <keras/layers/batch_normalization.hpp>
#include <keras/layers/conv2d.hpp>
#include <keras/layers/depthwise_conv2d.hpp>
#include <keras/layers/merge.hpp>
#include <keras/layers/pooling.hpp>
#include <keras/layers/reshaping.hpp>

using namespace keras;

namespace {

template <class T>
void randomise_bn(Model<T>& m, Random& rng) {
  for (auto& l : m.layers())
    if (auto* bn = dynamic_cast<layers::BatchNormalization<T>*>(l.get()))
      for (Index c = 0; c < bn->moving_mean().value.size(); ++c) {
        bn->gamma()->value[c] = T(rng.uniform(0.5, 1.5));
        bn->beta()->value[c] = T(rng.uniform(-0.5, 0.5));
        bn->moving_mean().value[c] = T(rng.uniform(-0.3, 0.3));
        bn->moving_variance().value[c] = T(rng.uniform(0.5, 2.0));
      }
}

/// A MobileNetV2-like net: conv/BN/ReLU6, depthwise (stride 1 and padded stride 2), a residual
/// Add, a conv with bias + ReLU, a conv whose output feeds two layers (not fusable), Activation.
template <class T>
std::shared_ptr<Model<T>> small_net() {
  using namespace layers;
  const BatchNormalizationOptions bn{.momentum = 0.9, .epsilon = 1e-3};
  auto in = Input<T>({10, 10, 4});
  auto x = Conv2D<T>(8, 3, {.strides = {2, 2}, .padding = "same", .use_bias = false})(in);
  x = BatchNormalization<T>(bn)(x);
  x = ReLU<T>({.max_value = 6.0})(x);
  auto skip = x;
  auto y = Conv2D<T>(16, 1, {.use_bias = false})(x);
  y = BatchNormalization<T>(bn)(y);
  y = ReLU<T>({.max_value = 6.0})(y);
  y = DepthwiseConv2D<T>(3, {.padding = "same", .use_bias = false})(y);
  y = BatchNormalization<T>(bn)(y);
  y = ReLU<T>({.max_value = 6.0})(y);
  y = Conv2D<T>(8, 1, {.use_bias = false})(y);
  y = BatchNormalization<T>(bn)(y);
  x = Add<T>()({skip, y});  // conv -> BN -> Add(residual)
  x = ZeroPadding2D<T>(Padding2D({0, 1}, {0, 1}))(x);
  x = DepthwiseConv2D<T>(3, {.strides = {2, 2}, .use_bias = true})(x);
  x = layers::Activation<T>("relu6")(x);  // depthwise (bias) -> Activation
  auto shared = Conv2D<T>(6, 1)(x);       // two consumers: must not fuse
  auto a = ReLU<T>()(shared);
  auto b = BatchNormalization<T>(bn)(shared);
  x = Add<T>()({a, b});
  x = Conv2D<T>(5, 3, {.padding = "same", .activation = "relu"})(x);  // own activation: not fusable
  x = BatchNormalization<T>(bn)(x);
  x = GlobalAveragePooling2D<T>()(x);
  return std::make_shared<Model<T>>(in, x);
}

/// Largest |central difference - analytic| (relative to the largest difference) of the training-pass
/// loss sum(w * m(x)) with respect to every step-th element of t (an input or a variable).
double central_difference_error(Model<double>& m, const Tensor<double>& x, const Tensor<double>& w, Tensor<double>& t,
                                const Tensor<double>& analytic, Index step) {
  auto loss = [&] {
    Tensor<double> y;
    m.forward({&x}, y, true);
    double s = 0;
    for (Index i = 0; i < y.size(); ++i) s += w[i] * y[i];
    return s;
  };
  double diff = 0, scale = 1e-9;
  for (Index i = 0; i < t.size(); i += step) {
    const double old = t[i], eps = 1e-6;
    t[i] = old + eps;
    const double fp = loss();
    t[i] = old - eps;
    const double fm = loss();
    t[i] = old;
    const double num = (fp - fm) / (2 * eps);
    diff = std::max(diff, std::abs(num - analytic[i]));
    scale = std::max(scale, std::abs(num));
  }
  return diff / scale;
}

template <class T>
Tensor<T> random_input(Shape s, std::uint64_t seed) {
  Random rng(seed);
  Tensor<T> t(s);
  for (auto& v : t) v = T(rng.uniform(-2, 2));
  return t;
}

}  // namespace

TEST_CASE("Fused inference equals the unfused layer-by-layer pass", "[fusion]") {
  set_random_seed(7);
  auto m = small_net<float>();
  Random rng(3);
  randomise_bn(*m, rng);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Index batch : {1, 3}) {
      auto x = random_input<float>({batch, 10, 10, 4}, 11 + batch);
      m->graph().set_fusion(false);
      Tensor<float> ref = (*m)(x);
      CHECK(m->graph().fused_chains() == 0);
      m->graph().set_fusion(true);
      Tensor<float> got = (*m)(x);
      // conv/BN/ReLU, conv/BN/ReLU, dw/BN/ReLU, conv/BN/Add, dw/Activation
      CHECK(m->graph().fused_chains() == 5);
      REQUIRE(got.shape() == ref.shape());
      double maxdiff = 0, scale = 0;
      for (Index i = 0; i < ref.size(); ++i) {
        maxdiff = std::max(maxdiff, double(std::abs(got[i] - ref[i])));
        scale = std::max(scale, double(std::abs(ref[i])));
      }
      INFO("threads " << threads << " batch " << batch << " max diff " << maxdiff << " scale " << scale);
      CHECK(maxdiff <= 1e-5 * std::max(1.0, scale));
      // training mode never fuses (batch statistics), and matches the unfused training pass
      Tensor<float> t1 = (*m)(x, true);
      m->graph().set_fusion(false);
      Tensor<float> t2 = (*m)(x, true);
      m->graph().set_fusion(true);
      for (Index i = 0; i < t1.size(); ++i) CHECK(t1[i] == t2[i]);
    }
  }
  set_num_threads(2);
}

TEST_CASE("Gradients are right after a fused inference pass and in training", "[fusion][gradient]") {
  set_random_seed(8);
  auto m = small_net<double>();
  Random rng(4);
  randomise_bn(*m, rng);
  auto x = random_input<double>({2, 10, 10, 4}, 5);
  Tensor<double> w = random_input<double>({2, 5}, 6);
  auto vars = m->trainable_variables();
  auto grads = [&](bool fusion, bool training) {
    m->graph().set_fusion(fusion);
    for (auto* v : vars) v->grad.setZero();
    Tensor<double> y, dx;
    m->forward({&x}, y, training);
    CHECK(m->graph().fused_chains() == (fusion && !training ? 5 : 0));
    std::vector<Tensor<double>*> dxs{&dx};
    m->backward({&x}, y, w, dxs);
    std::vector<Tensor<double>> g{dx};
    for (auto* v : vars) g.push_back(v->grad);
    return g;
  };
  for (bool training : {false, true}) {
    // BN moving statistics change in training passes: restore them between runs
    std::vector<Tensor<double>> saved;
    for (auto* v : m->variables()) saved.push_back(v->value);
    auto restore = [&] {
      auto all = m->variables();
      for (std::size_t i = 0; i < all.size(); ++i) all[i]->value = saved[i];
    };
    auto gf = grads(true, training);
    restore();
    auto gu = grads(false, training);
    restore();
    REQUIRE(gf.size() == gu.size());
    for (std::size_t k = 0; k < gf.size(); ++k) CHECK(testing::rel_error(gf[k], gu[k]) < 1e-12);
    // numeric check of d/dx (inference: exact; training: BN batch statistics included)
    m->graph().set_fusion(true);
    auto loss = [&] {
      Tensor<double> y;
      m->forward({&x}, y, training);
      restore();
      double s = 0;
      for (Index i = 0; i < y.size(); ++i) s += w[i] * y[i];
      return s;
    };
    Tensor<double> num(x.shape());
    for (Index i = 0; i < x.size(); i += 7) {
      const double old = x[i], eps = 1e-6;
      x[i] = old + eps;
      double fp = loss();
      x[i] = old - eps;
      double fm = loss();
      x[i] = old;
      num[i] = (fp - fm) / (2 * eps);
    }
    double diff = 0, scale = 1e-9;
    for (Index i = 0; i < x.size(); i += 7) {
      diff = std::max(diff, std::abs(num[i] - gf[0][i]));
      scale = std::max(scale, std::abs(num[i]));
    }
    INFO("training " << training << " d/dx relative error " << diff / scale);
    CHECK(diff / scale < 1e-5);
  }
}

TEST_CASE("Training with frozen BatchNormalization: fused conv -> BN -> ReLU chains equal the unfused pass",
          "[fusion][gradient]") {
  set_random_seed(9);
  auto m = small_net<double>();
  Random rng(5);
  randomise_bn(*m, rng);
  for (auto& l : m->layers())
    if (l->class_name() == "BatchNormalization") l->set_trainable(false);  // inference mode, nothing to train
  auto x = random_input<double>({3, 10, 10, 4}, 7);
  Tensor<double> w = random_input<double>({3, 5}, 8);
  auto vars = m->trainable_variables();
  REQUIRE(vars.size() == 10);  // the convolutions' kernels and biases
  auto grads = [&](bool fused) {
    m->graph().set_training_fusion(fused);
    for (auto* v : vars) v->grad.setConstant(0.25);  // backward adds into them
    Tensor<double> y, dx;
    m->forward({&x}, y, true);
    // conv3x3, expand 1x1 and depthwise -> BN -> ReLU6; project 1x1 -> BN (its Add stays a layer)
    CHECK(m->graph().fused_training_chains() == (fused ? 4 : 0));
    std::vector<Tensor<double>*> dxs{&dx};
    m->backward({&x}, y, w, dxs);
    std::vector<Tensor<double>> g{y, dx};
    for (auto* v : vars) g.push_back(v->grad);
    return g;
  };
  const auto gu = grads(false);
  const auto gf = grads(true);
  REQUIRE(gf.size() == gu.size());
  for (std::size_t k = 0; k < gf.size(); ++k) {
    INFO("tensor " << k << " (0: output, 1: d/dx, then the variables' gradients)");
    CHECK(testing::rel_error(gf[k], gu[k]) < 1e-12);
  }
  // and against central differences, through the fused path: d/dx and d/d(first kernel)
  m->graph().set_training_fusion(true);
  auto numeric = [&](Tensor<double>& t, const Tensor<double>& analytic, Index step) {
    return central_difference_error(*m, x, w, t, analytic, step);
  };
  CHECK(numeric(x, gf[1], 5) < 1e-5);
  Tensor<double> dk0 = gf[2];
  dk0.array() -= 0.25;  // the gradient started at 0.25
  CHECK(numeric(vars[0]->value, dk0, 3) < 1e-5);
}

TEST_CASE("Training with batch statistics: BatchNormalization -> ReLU pairs equal the unfused pass",
          "[fusion][gradient]") {
  set_random_seed(11);
  auto m = small_net<double>();
  Random rng(6);
  randomise_bn(*m, rng);
  auto x = random_input<double>({3, 10, 10, 4}, 12);
  Tensor<double> w = random_input<double>({3, 5}, 13);
  auto vars = m->trainable_variables();
  REQUIRE(vars.size() == 22);  // the convolutions' kernels and biases, every BN's gamma and beta
  std::vector<layers::BatchNormalization<double>*> bns;
  for (auto& l : m->layers())
    if (auto* bn = dynamic_cast<layers::BatchNormalization<double>*>(l.get())) bns.push_back(bn);
  auto grads = [&](bool fused) {
    m->graph().set_training_fusion(fused);
    for (auto* v : vars) v->grad.setConstant(0.25);  // backward adds into them
    for (auto* bn : bns) {                           // the same moving statistics before each pass
      bn->moving_mean().value.setConstant(0.1);
      bn->moving_variance().value.setConstant(1.5);
    }
    Tensor<double> y, dx;
    m->forward({&x}, y, true);
    // BN -> ReLU6 after the strided conv, the expand conv and the depthwise conv
    CHECK(m->graph().fused_training_chains() == (fused ? 3 : 0));
    std::vector<Tensor<double>*> dxs{&dx};
    m->backward({&x}, y, w, dxs);
    std::vector<Tensor<double>> g{y, dx};
    for (auto* v : vars) g.push_back(v->grad);
    for (auto* bn : bns) {
      g.push_back(bn->moving_mean().value);
      g.push_back(bn->moving_variance().value);
    }
    return g;
  };
  const auto gu = grads(false);
  const auto gf = grads(true);
  REQUIRE(gf.size() == gu.size());
  for (std::size_t k = 0; k < gf.size(); ++k) {
    INFO("tensor " << k << " (0: output, 1: d/dx, then the variables' gradients, then the moving statistics)");
    CHECK(testing::rel_error(gf[k], gu[k]) < 1e-12);
  }
  // and against central differences through the fused pairs: d/dx and d/d(first BN's gamma)
  m->graph().set_training_fusion(true);
  auto numeric = [&](Tensor<double>& t, const Tensor<double>& analytic, Index step) {
    return central_difference_error(*m, x, w, t, analytic, step);
  };
  CHECK(numeric(x, gf[1], 7) < 1e-5);
  std::size_t gamma_index = 0;  // the first BN's gamma among the trainable variables
  while (vars[gamma_index] != bns[0]->gamma()) ++gamma_index;
  Tensor<double> dg = gf[2 + gamma_index];
  dg.array() -= 0.25;
  CHECK(numeric(bns[0]->gamma()->value, dg, 1) < 1e-5);
}

namespace {

/// An identity layer that is not layers::ReentrantInference (as a user's layer that stores state
/// in forward would).
class Stateful : public layers::Layer<float> {
 public:
  KERAS_LAYER(Stateful)
  Stateful() : Layer<float>("stateful") {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override { return in.at(0); }
  void forward(const Inputs& in, Tensor<float>& y, bool) override {
    calls++;
    y = *in.at(0);
  }
  void backward(const Inputs&, const Tensor<float>&, const Tensor<float>& dy, const GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dy;
  }
  int calls = 0;
};

/// A reentrant identity layer that throws on values above 100 (an error inside one batch slice).
class Picky : public layers::Layer<float>, public layers::ReentrantInference {
 public:
  KERAS_LAYER(Picky)
  Picky() : Layer<float>("picky") {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override { return in.at(0); }
  void forward(const Inputs& in, Tensor<float>& y, bool) override {
    for (float v : *in.at(0))
      if (v > 100.f) throw ValueError("picky: value above 100");
    y = *in.at(0);
  }
  void backward(const Inputs&, const Tensor<float>&, const Tensor<float>& dy, const GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dy;
  }
};

double max_rel_diff(const Tensor<float>& a, const Tensor<float>& b) {
  double d = 0, s = 1;
  for (Index i = 0; i < a.size(); ++i) {
    d = std::max(d, double(std::abs(a[i] - b[i])));
    s = std::max(s, double(std::abs(b[i])));
  }
  return d / s;
}

}  // namespace

TEST_CASE("Inference split into batch slices over threads equals the unsliced pass", "[fusion][slices]") {
  set_random_seed(9);
  auto m = small_net<float>();
  Random rng(5);
  randomise_bn(*m, rng);
  auto x = random_input<float>({7, 10, 10, 4}, 21);
  m->graph().set_fusion(false);
  Tensor<float> ref = (*m)(x);
  CHECK_FALSE(m->graph().last_pass_sliced());
  m->graph().set_fusion(true);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (Index slice : {0, 1, 2, 3, 7, 100}) {
      m->graph().set_inference_slice(slice);
      Tensor<float> got = (*m)(x);
      const Index eff = slice > 0 ? slice : 0;
      const bool expect_sliced = eff > 0 ? eff < 7 : threads > 1;  // auto: small net -> one slice per thread
      INFO("threads " << threads << " slice " << slice);
      CHECK(m->graph().last_pass_sliced() == expect_sliced);
      CHECK(m->graph().fused_chains() == 5);
      REQUIRE(got.shape() == ref.shape());
      CHECK(max_rel_diff(got, ref) < 1e-5);
    }
  }
  m->graph().set_inference_slice(0);

  // forward_until / forward_from (fit's feature cache) slice too and agree with the full pass
  set_num_threads(2);
  m->set_trainable(false);
  const int cut = m->graph().frozen_prefix_end();
  REQUIRE(cut > 0);
  m->graph().set_inference_slice(2);
  Tensor<float> feat = m->graph().forward_until(cut, x);
  CHECK(m->graph().last_pass_sliced());
  m->graph().forward_from(cut, feat, false);
  CHECK(m->graph().last_pass_sliced());
  CHECK(max_rel_diff(m->graph().output(), ref) < 1e-5);
  m->graph().set_inference_slice(0);
}

TEST_CASE("A layer that is not reentrant keeps inference unsliced; an error in a slice propagates",
          "[fusion][slices]") {
  set_random_seed(10);
  set_num_threads(2);
  auto x = random_input<float>({6, 10, 10, 4}, 22);
  {
    auto in = Input<float>({10, 10, 4});
    auto st = std::make_shared<Stateful>();
    auto h = layers::Conv2D<float>(3, 3)(in);
    h = (*st)(h);
    auto m = std::make_shared<Model<float>>(in, layers::GlobalAveragePooling2D<float>()(h));
    Tensor<float> got = (*m)(x);
    CHECK_FALSE(m->graph().last_pass_sliced());
    CHECK(st->calls == 1);
    m->graph().set_fusion(false);
    CHECK(max_rel_diff(got, (*m)(x)) == 0.0);
  }
  {
    auto in = Input<float>({10, 10, 4});
    auto h = layers::Conv2D<float>(3, 1, {.kernel_initializer = "ones"})(in);
    h = Picky()(h);
    auto m = std::make_shared<Model<float>>(in, layers::GlobalAveragePooling2D<float>()(h));
    Tensor<float> ok = (*m)(x);
    CHECK(m->graph().last_pass_sliced());
    Tensor<float> bad = x;
    for (Index i = 4 * 400; i < 5 * 400; ++i) bad[i] = 1000.f;  // sample 4 only
    CHECK_THROWS_AS((*m)(bad), ValueError);
    Tensor<float> again = (*m)(x);  // the model still works
    CHECK(max_rel_diff(again, ok) == 0.0);
  }
}

namespace {

/// ZeroPadding2D -> DepthwiseConv2D [-> BN -> ReLU6], the padding read through by the depthwise
/// (folded) in inference passes; `second_reader`: the padded tensor also feeds a pooling layer
/// (must not fold).
template <class T>
std::shared_ptr<Model<T>> pad_dw_net(Shape in_shape, layers::Padding2D pad, Index stride, const std::string& padding,
                                     bool bias, bool bn_relu, bool second_reader) {
  using namespace layers;
  auto in = Input<T>(in_shape);
  auto p = ZeroPadding2D<T>(pad)(in);
  auto y = DepthwiseConv2D<T>(3, {.strides = {stride, stride}, .padding = padding, .use_bias = bias})(p);
  if (bn_relu) {
    y = BatchNormalization<T>(BatchNormalizationOptions{.epsilon = 1e-3})(y);
    y = ReLU<T>({.max_value = 6.0})(y);
  }
  if (second_reader) {
    auto q = MaxPooling2D<T>(3, {.strides = Size2(stride, stride), .padding = padding})(p);
    y = Concatenate<T>()({y, q});
  }
  return std::make_shared<Model<T>>(in, y);
}

template <class T>
void check_pad_fold(double tol) {
  struct Case {
    Shape in;
    layers::Padding2D pad;
    Index stride;
    const char* padding;
    bool bias, bn_relu, second;
  };
  const std::vector<Case> cases = {
      {{12, 12, 16}, layers::Padding2D({0, 1}, {0, 1}), 2, "valid", false, true, false},  // MobileNetV2's stride-2
                                                                                          // blocks
      {{13, 9, 7}, layers::Padding2D({0, 1}, {0, 1}), 2, "valid", true, true, false},  // odd sizes, leftover channels
      {{11, 10, 19}, layers::Padding2D({2, 1}, {1, 3}), 2, "valid", true, false, false},  // asymmetric padding
      {{9, 8, 17}, layers::Padding2D({1, 1}, {1, 1}), 1, "valid", false, true, false},    // stride 1
      {{8, 7, 33}, layers::Padding2D({1, 0}, {0, 2}), 1, "same", true, true, false},      // pad + the window's own
      {{10, 10, 16}, layers::Padding2D({0, 1}, {0, 1}), 2, "same", false, true, false},
      {{10, 10, 8}, layers::Padding2D({0, 1}, {0, 1}), 2, "valid", false, true, true},  // padded tensor read twice
  };
  Random rng(5);
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    set_random_seed(20 + k);
    auto m = pad_dw_net<T>(c.in, c.pad, c.stride, c.padding, c.bias, c.bn_relu, c.second);
    randomise_bn(*m, rng);
    for (int threads : {1, 2})
      for (Index batch : {1, 3}) {
        set_num_threads(threads);
        Shape xs{batch};
        xs.insert(xs.end(), c.in.begin(), c.in.end());
        auto x = random_input<T>(xs, 40 + k + batch);
        m->graph().set_fusion(false);
        Tensor<T> ref = (*m)(x);
        CHECK(m->graph().folded_paddings() == 0);
        m->graph().set_fusion(true);
        Tensor<T> got = (*m)(x);
        INFO("case " << k << " threads " << threads << " batch " << batch);
        CHECK(m->graph().folded_paddings() == (c.second ? 0 : 1));
        REQUIRE(got.shape() == ref.shape());
        for (Index i = 0; i < ref.size(); ++i)
          REQUIRE(std::abs(double(got[i] - ref[i])) <= tol * std::max(1.0, std::abs(double(ref[i]))));
      }
  }
  set_num_threads(2);
}

}  // namespace

TEST_CASE("A zero padding folds into the depthwise convolution after it (no padded copy)", "[fusion][padding]") {
  check_pad_fold<float>(1e-5);
  check_pad_fold<double>(1e-12);
  // small_net's ZeroPadding2D -> stride-2 depthwise
  set_random_seed(7);
  auto m = small_net<float>();
  (*m)(random_input<float>({2, 10, 10, 4}, 3));
  CHECK(m->graph().folded_paddings() == 1);
}
