// Sequential: training an MLP with fit on two interleaved spirals, freezing, summary, errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <keras/keras.hpp>

using namespace keras;

namespace {
/// Two interleaved spirals, n points per class, with noise. Labels one-hot [2n, 2].
void spirals(Index n, std::uint64_t seed, Tensor<float>& x, Tensor<float>& y) {
  Random rng(seed);
  x.resize({2 * n, 2});
  y.resize({2 * n, 2});
  y.setZero();
  std::vector<Index> order(2 * n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng.engine());
  for (Index i = 0; i < 2 * n; ++i) {
    Index cls = i % 2;
    double t = 0.25 + 3.0 * M_PI * rng.uniform();  // 1.5 turns
    double r = t / (3.0 * M_PI);
    double a = t + cls * M_PI;
    Index row = order[i];
    x.at({row, 0}) = static_cast<float>(r * std::cos(a) + rng.normal(0, 0.02));
    x.at({row, 1}) = static_cast<float>(r * std::sin(a) + rng.normal(0, 0.02));
    y.at({row, cls}) = 1.0f;
  }
}
}  // namespace

TEST_CASE("An MLP learns two interleaved spirals to >= 95% held-out accuracy", "[models][train]") {
  set_random_seed(7);
  Tensor<float> x, y, xt, yt;
  spirals(1000, 1, x, y);
  spirals(500, 2, xt, yt);
  Sequential<float> model;
  model.add(layers::InputLayer({.shape = {2}}));
  model.add(layers::Dense(64, {.activation = "relu"}));
  model.add(layers::Dense(64, {.activation = "relu"}));
  model.add(layers::Dense(2, {.activation = "softmax"}));
  model.compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>(),
                {"accuracy"});
  auto h = model.fit(x, y, {.epochs = 60, .batch_size = 32, .validation_split = 0.1, .seed = 3, .verbose = 0});
  REQUIRE(h["loss"].size() == 60);
  CHECK(h["loss"].back() < h["loss"].front());
  REQUIRE(h.history.count("val_accuracy"));
  auto r = model.evaluate(xt, yt);
  INFO("held-out accuracy " << r["accuracy"] << " loss " << r["loss"]);
  CHECK(r["accuracy"] >= 0.95);
  auto p = model.predict(xt);
  CHECK(p.shape() == Shape{1000, 2});
}

TEST_CASE("fit is deterministic for a seed", "[models][train]") {
  auto run = [] {
    set_random_seed(11);
    Tensor<float> x, y;
    spirals(200, 5, x, y);
    Sequential<float> m;
    m.add(layers::InputLayer({.shape = {2}}));
    m.add(layers::Dense(16, {.activation = "tanh"}));
    m.add(layers::Dropout(0.2));
    m.add(layers::Dense(2, {.activation = "softmax"}));
    m.compile("adam", "categorical_crossentropy", {"accuracy"});
    return m.fit(x, y, {.epochs = 3, .batch_size = 16, .seed = 4, .verbose = 0})["loss"];
  };
  auto a = run(), b = run();
  REQUIRE(a.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(a[i] == b[i]);
}

TEST_CASE("A frozen layer's weights stay bit-identical through fit", "[models][train]") {
  set_random_seed(3);
  Tensor<float> x, y;
  spirals(200, 9, x, y);
  auto frozen = std::make_shared<layers::Dense<float>>(8, layers::DenseOptions{.activation = "relu"});
  Sequential<float> m;
  m.add(layers::InputLayer({.shape = {2}}));
  m.add(frozen);
  m.add(layers::Dense(2, {.activation = "softmax"}));
  frozen->set_trainable(false);
  Tensor<float> k0 = frozen->kernel().value, b0 = frozen->bias().value;
  auto head = m.layers().back();
  Tensor<float> h0 = head->variables()[0]->value;
  m.compile("sgd", "categorical_crossentropy");
  m.fit(x, y, {.epochs = 2, .verbose = 0});
  CHECK(std::memcmp(k0.data(), frozen->kernel().value.data(), sizeof(float) * k0.size()) == 0);
  CHECK(std::memcmp(b0.data(), frozen->bias().value.data(), sizeof(float) * b0.size()) == 0);
  CHECK(std::memcmp(h0.data(), head->variables()[0]->value.data(), sizeof(float) * h0.size()) != 0);
  CHECK(m.trainable_variables().size() == 2);
  CHECK(m.non_trainable_variables().size() == 2);
}

TEST_CASE("summary() prints Keras's table", "[models]") {
  Sequential<float> m("seq");
  m.add(layers::InputLayer({.shape = {16}}));
  m.add(layers::Dense(64, {.name = "hidden"}));
  m.add(layers::Dense(10, {.activation = "softmax", .name = "out"}));
  m.layers()[0]->set_trainable(false);
  std::string s = m.summary_string();
  INFO(s);
  CHECK(s.find("Model: \"seq\"") != std::string::npos);
  CHECK(s.find(" hidden (Dense)") != std::string::npos);
  CHECK(s.find("(None, 64)") != std::string::npos);
  CHECK(s.find("1,088") != std::string::npos);
  CHECK(s.find("Total params: 1,738") != std::string::npos);
  CHECK(s.find("Trainable params: 650") != std::string::npos);
  CHECK(s.find("Non-trainable params: 1,088") != std::string::npos);
}

TEST_CASE("Bad calls throw keras::Error naming what was expected", "[models][errors]") {
  Sequential<float> m;
  m.add(layers::Dense(3));
  Tensor<float> x({4, 5}), y({3, 3});
  CHECK_THROWS_AS(m.predict(x), StateError);                       // predict before build
  CHECK_THROWS_AS(m.fit(x, y), StateError);                        // fit before compile
  CHECK_THROWS_AS(m.compile("adam", "no_such_loss"), ValueError);  // unknown loss
  CHECK_THROWS_AS(m.compile("no_such_optimizer", "mse"), ValueError);
  m.compile("adam", "mse");
  try {
    m.fit(x, y, {.verbose = 0});
    FAIL("no exception");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()).find("different numbers of samples") != std::string::npos);
  }
  Tensor<float> y4({4, 3});
  m.fit(x, y4, {.verbose = 0});
  Tensor<float> bad({4, 6});
  try {
    m.predict(bad);
    FAIL("no exception");
  } catch (const ShapeError& e) {
    std::string msg = e.what();
    CHECK(msg.find("(None, 5)") != std::string::npos);
    CHECK(msg.find("(4, 6)") != std::string::npos);
  }
  Tensor<float> rank3({4, 5, 1});
  CHECK_THROWS_AS(m.predict(rank3), ShapeError);
  Tensor<float> ybad({4, 2});
  CHECK_THROWS_AS(m.fit(x, ybad, {.verbose = 0}), ShapeError);
}

TEST_CASE("Verbose fit prints one Keras-style line per epoch", "[models]") {
  Tensor<float> x({8, 2}, 0.5f), y({8, 1}, 1.0f);
  Sequential<float> m;
  m.add(layers::InputLayer({.shape = {2}}));
  m.add(layers::Dense(1));
  m.compile("sgd", "mse");
  std::ostringstream out;
  auto* old = std::cout.rdbuf(out.rdbuf());
  m.fit(x, y, {.epochs = 2, .batch_size = 4, .verbose = 2});
  std::cout.rdbuf(old);
  std::string s = out.str();
  INFO(s);
  CHECK(s.find("Epoch 1/2") != std::string::npos);
  CHECK(s.find("2/2 - ") != std::string::npos);  // verbose 2: no bar, as Keras
  CHECK(s.find("[=") == std::string::npos);
  CHECK(s.find("s/step - loss: ") != std::string::npos);
  CHECK(s.find(" - loss: ") != std::string::npos);
}
