// Gradient checks and semantics of the core layers: Dense, Activation, ReLU, Softmax, Flatten, Dropout.
#include "layer_check.hpp"

using namespace keras;
using testing::random_tensor;
using testing::require_gradients_ok;

TEST_CASE("Dense gradients for every activation, with and without bias", "[layers][gradcheck]") {
  Random rng(1);
  for (std::string act : {"linear", "relu", "sigmoid", "tanh", "softmax"}) {
    for (bool bias : {true, false}) {
      layers::Dense<double> d(4, {.activation = act, .use_bias = bias});
      auto x = random_tensor({3, 5}, rng);
      // keep relu away from its kink
      for (auto& v : x) v += (v >= 0 ? 0.3 : -0.3);
      INFO("activation " << act << " bias " << bias);
      require_gradients_ok(d, {x});
    }
  }
}

TEST_CASE("Dense applies to the last axis of higher-rank inputs", "[layers][gradcheck]") {
  Random rng(2);
  layers::Dense<double> d(3, {.activation = "tanh"});
  require_gradients_ok(d, {random_tensor({2, 4, 5}, rng)});
  CHECK(d.compute_output_shape({{-1, 4, 5}}) == Shape{-1, 4, 3});
  CHECK(d.count_params() == 5 * 3 + 3);
}

TEST_CASE("Activation, Softmax, Flatten and Dropout (inference) gradients", "[layers][gradcheck]") {
  Random rng(3);
  for (std::string act : {"linear", "sigmoid", "tanh", "softmax", "relu"}) {
    layers::Activation<double> a(act);
    auto x = random_tensor({2, 3, 4}, rng);
    for (auto& v : x) v += (v >= 0 ? 0.2 : -0.2);
    INFO(act);
    require_gradients_ok(a, {x});
  }
  layers::Softmax<double> s;
  require_gradients_ok(s, {random_tensor({3, 6}, rng, -3, 3)});
  layers::Flatten<double> f;
  require_gradients_ok(f, {random_tensor({2, 3, 2, 2}, rng)});
  layers::Dropout<double> dr(0.5, {.seed = 7});
  require_gradients_ok(dr, {random_tensor({4, 3}, rng)});
}

TEST_CASE("ReLU with max_value, negative_slope and threshold", "[layers][gradcheck]") {
  layers::ReLU<double> r({.max_value = 6.0, .negative_slope = 0.1, .threshold = 0.5});
  Tensor<double> x({1, 6}, {-2.0, 0.2, 0.7, 3.0, 6.5, 10.0});
  auto y = r.call(x);
  // Keras: max_value if x >= max_value; x if threshold <= x < max_value; else slope*(x - threshold)
  std::vector<double> expect{0.1 * (-2.0 - 0.5), 0.1 * (0.2 - 0.5), 0.7, 3.0, 6.0, 6.0};
  for (int i = 0; i < 6; ++i) CHECK(y[i] == Approx(expect[i]));
  layers::ReLU<double> r2({.max_value = 6.0, .negative_slope = 0.1, .threshold = 0.5});
  require_gradients_ok(r2, {x});
  layers::ReLU<double> plain;
  require_gradients_ok(plain, {Tensor<double>({1, 4}, {-1.5, -0.3, 0.4, 2.0})});
}

TEST_CASE("Dropout in training zeroes about `rate` of the inputs and scales the rest", "[layers]") {
  layers::Dropout<double> d(0.25, {.seed = 123});
  Tensor<double> x({100, 100}, 1.0);
  d.build(Shape{-1, 100});
  Tensor<double> y;
  d.forward({&x}, y, true);
  Index zeros = 0;
  for (auto v : y) {
    if (v == 0)
      ++zeros;
    else
      CHECK(v == Approx(1.0 / 0.75));
  }
  CHECK(zeros > 2300);
  CHECK(zeros < 2700);
  // backward uses the same mask
  Tensor<double> dx;
  d.backward({&x}, y, x, {&dx});
  for (Index i = 0; i < y.size(); ++i) CHECK(dx[i] == y[i]);
  // inference: identity
  d.forward({&x}, y, false);
  for (auto v : y) CHECK(v == 1.0);
}

TEST_CASE("Glorot-uniform initialisation is seeded and within Keras's limit", "[layers]") {
  layers::Dense<float> a(50, {.seed = 9}), b(50, {.seed = 9});
  a.build(Shape{-1, 30});
  b.build(Shape{-1, 30});
  double limit = std::sqrt(6.0 / (30 + 50));
  for (Index i = 0; i < a.kernel().value.size(); ++i) {
    CHECK(a.kernel().value[i] == b.kernel().value[i]);
    CHECK(std::abs(a.kernel().value[i]) <= limit);
  }
  for (auto v : a.bias().value) CHECK(v == 0.0f);
}

TEST_CASE("Layer names follow Keras's automatic naming", "[layers]") {
  layers::Dense<float> a(2), b(2);
  CHECK(a.name().rfind("dense", 0) == 0);
  CHECK(a.name() != b.name());
  layers::Dense<float> c(2, {.name = "head"});
  CHECK(c.name() == "head");
  layers::ReLU<float> r;
  CHECK(r.name().rfind("re_lu", 0) == 0);
}

TEST_CASE("Layer configs carry Keras's argument names", "[layers]") {
  layers::Dense<float> d(7, {.activation = "relu", .name = "d"});
  auto c = d.get_config();
  CHECK(c["units"] == 7);
  CHECK(c["activation"] == "relu");
  CHECK(c["kernel_initializer"]["class_name"] == "GlorotUniform");
  auto d2 = layers::registry<float>().create("Dense", c);
  CHECK(d2->get_config() == c);
  CHECK_THROWS_AS(layers::registry<float>().create("NoSuchLayer", c), ValueError);
  CHECK_THROWS_AS(layers::Dense<float>(3, {.activation = "nope"}), ValueError);
}

TEST_CASE("Wrong input shapes name the layer and both shapes", "[layers][errors]") {
  layers::Dense<float> d(3, {.name = "my_dense"});
  d.build(Shape{-1, 4});
  Tensor<float> x({2, 5});
  try {
    d.call(x);
    FAIL("no exception");
  } catch (const ShapeError& e) {
    std::string m = e.what();
    CHECK(m.find("my_dense") != std::string::npos);
    CHECK(m.find("(None, 4)") != std::string::npos);
    CHECK(m.find("(2, 5)") != std::string::npos);
  }
}
