// Models with several inputs / outputs: train_on_batch, fit, evaluate and predict on lists of
// tensors (Keras's lists of arrays). Expected values: the one-input twin of a two-input model, and
// Keras's summed loss / per-output logs worked by hand, with one loss for all outputs or per-output
// losses (list or dict) and loss_weights.
#include <catch2/catch.hpp>

#include <keras/keras.hpp>

using namespace keras;
using TV = std::vector<Tensor<float>>;  // explicit: a one-element brace list {x} would pick the one-tensor overload

namespace {
Variable<float>& var(Model<float>& m, const std::string& layer, const std::string& name) {
  for (auto* v : m.get_layer(layer)->variables())
    if (v->name == name) return *v;
  throw std::runtime_error("no variable " + name);
}
void fill(Tensor<float>& t, std::uint64_t seed) {
  Random rng(seed);
  for (auto& v : t) v = static_cast<float>(rng.normal(0, 1));
}
}  // namespace

TEST_CASE("Two inputs: fit trains exactly as the one-input model on the concatenated input", "[training][multi]") {
  Tensor<float> x1({10, 2}), x2({10, 1}), y({10, 1});
  fill(x1, 1);
  fill(x2, 2);
  fill(y, 3);
  Tensor<float> x({10, 3});
  for (Index i = 0; i < 10; ++i) {
    x[i * 3] = x1[i * 2];
    x[i * 3 + 1] = x1[i * 2 + 1];
    x[i * 3 + 2] = x2[i];
  }
  auto a = Input<float>({2}, "a"), b = Input<float>({1}, "b");
  auto cat = layers::Concatenate()({a, b});
  auto out = layers::Dense(1, {.kernel_initializer = "zeros", .name = "d"})(cat);
  Model<float> two({a, b}, {out}, "two");
  Sequential<float> one("one");
  one.add(layers::InputLayer({.shape = {3}}));
  one.add(layers::Dense(1, {.kernel_initializer = "zeros", .name = "d"}));
  for (Model<float>* m : {static_cast<Model<float>*>(&two), static_cast<Model<float>*>(&one)})
    m->compile(optimizers::SGD<float>({.learning_rate = 0.05, .momentum = 0.5}), "mse", {"mse"});

  // first step from zero weights: loss mean(y^2); d kernel = -(2/N) sum y x -> SGD with momentum: -lr g
  double sq = 0;
  for (Index i = 0; i < 10; ++i) sq += double(y[i]) * y[i];
  CHECK(two.evaluate(TV{x1, x2}, TV{y}, 4).at("loss") == Approx(sq / 10));
  auto h2 =
      two.fit(TV{x1, x2}, TV{y}, {.epochs = 3, .batch_size = 4, .validation_split = 0.2, .seed = 7, .verbose = 0});
  auto h1 = one.fit(x, y, {.epochs = 3, .batch_size = 4, .validation_split = 0.2, .seed = 7, .verbose = 0});
  for (int e = 0; e < 3; ++e) {
    CHECK(h2["loss"][e] == Approx(h1["loss"][e]).epsilon(1e-5));
    CHECK(h2["val_loss"][e] == Approx(h1["val_loss"][e]).epsilon(1e-5));
    CHECK(h2["mse"][e] == Approx(h1["mse"][e]).epsilon(1e-5));
  }
  for (Index k = 0; k < 3; ++k)
    CHECK(var(two, "d", "kernel").value[k] == Approx(var(one, "d", "kernel").value[k]).epsilon(1e-5));
  auto p2 = two.predict(TV{x1, x2}, 3);
  REQUIRE(p2.size() == 1);
  auto p1 = one.predict(x);
  for (Index i = 0; i < 10; ++i) CHECK(p2[0][i] == Approx(p1[i]).epsilon(1e-5));
  CHECK_THROWS_WITH(two.fit(TV{x1}, TV{y}, {.verbose = 0}),
                    Catch::Contains("model 'two' has 2 input(s), got 1 array(s)"));
  CHECK_THROWS_WITH(two.evaluate(TV{x2, x1}, TV{y}),
                    Catch::Contains("input 0 ('a') of model 'two' expects shape (None, 2), got (10, 1)"));
}

TEST_CASE("Two outputs: the loss is the sum, logs name each output's loss and metrics", "[training][multi]") {
  auto in = Input<float>({2}, "x");
  auto pa = layers::Dense(1, {.kernel_initializer = "zeros", .name = "a"})(in);
  auto pb = layers::Dense(1, {.kernel_initializer = "zeros", .name = "b"})(in);
  Model<float> m({in}, {pa, pb}, "heads");
  m.compile(optimizers::SGD<float>({.learning_rate = 0.1}), "mse", {"mse"});
  Tensor<float> x({4, 2}, {1, 0, 0, 1, 1, 1, 2, -1}), ya({4, 1}, {1, 2, -1, 3}), yb({4, 1}, {0, 1, 1, 0});
  // zero weights: a_loss = (1 + 4 + 1 + 9) / 4, b_loss = (0 + 1 + 1 + 0) / 4
  auto l = m.evaluate(TV{x}, TV{ya, yb}, 4);
  CHECK(l.at("a_loss") == Approx(15.0 / 4));
  CHECK(l.at("b_loss") == Approx(0.5));
  CHECK(l.at("loss") == Approx(15.0 / 4 + 0.5));
  CHECK(l.at("a_mse") == Approx(15.0 / 4));
  CHECK(l.at("b_mse") == Approx(0.5));
  CHECK(m.train_on_batch(TV{x}, TV{ya, yb}) == Approx(15.0 / 4 + 0.5));
  // each head's step is its own loss's: kernel -= lr * (-(2/4) sum y x)
  //   a: sum ya x = (1,0) + 2(0,1) - (1,1) + 3(2,-1) = (6, -2);  b: sum yb x = (0,1) + (1,1) = (1, 2)
  CHECK(var(m, "a", "kernel").value[0] == Approx(0.1 * 0.5 * 6));
  CHECK(var(m, "a", "kernel").value[1] == Approx(0.1 * 0.5 * -2));
  CHECK(var(m, "b", "kernel").value[0] == Approx(0.1 * 0.5 * 1));
  CHECK(var(m, "b", "kernel").value[1] == Approx(0.1 * 0.5 * 2));
  CHECK(var(m, "b", "bias").value[0] == Approx(0.1 * 0.5 * 2));
  auto h = m.fit(TV{x}, TV{ya, yb}, {.epochs = 2, .batch_size = 2, .validation_split = 0.5, .verbose = 0});
  for (const char* k : {"loss", "a_loss", "b_loss", "a_mse", "b_mse", "val_loss", "val_a_loss", "val_b_loss"})
    CHECK(h.history.count(k) == 1);
  CHECK(h["loss"][1] == Approx(h["a_loss"][1] + h["b_loss"][1]));
  auto p = m.predict(TV{x});
  REQUIRE(p.size() == 2);
  CHECK(p[1].shape() == Shape{4, 1});
  CHECK_THROWS_WITH(m.fit(TV{x}, TV{ya}, {.verbose = 0}), Catch::Contains("has 2 output(s), got 1 target array(s)"));
  CHECK_THROWS_WITH(m.fit(TV{x}, TV{ya, yb}, {.verbose = 0, .class_weight = {{0, 2.0}}}),
                    Catch::Contains("only supported for models with a single output"));
  // sample_weight applies to every output: weights 1, 0, 0, 0 leave sample 0 only
  m.compile(optimizers::SGD<float>({.learning_rate = 0.0}), "mse");
  Tensor<float> w({4}, {1, 0, 0, 0});
  auto before = m.predict(TV{x});
  auto hw = m.fit(TV{x}, TV{ya, yb}, {.epochs = 1, .batch_size = 4, .verbose = 0, .sample_weight = w});
  const double la = (before[0][0] - 1) * (before[0][0] - 1) / 4, lb = (before[1][0] - 0) * (before[1][0] - 0) / 4;
  CHECK(hw["a_loss"][0] == Approx(la));
  CHECK(hw["loss"][0] == Approx(la + lb));
}

TEST_CASE("Per-output losses and loss_weights: Keras's weighted sum, logs unweighted", "[training][multi]") {
  auto in = Input<float>({2}, "x");
  auto pa = layers::Dense(1, {.kernel_initializer = "zeros", .name = "a"})(in);
  auto pb = layers::Dense(1, {.activation = "sigmoid", .kernel_initializer = "zeros", .name = "b"})(in);
  Model<float> m({in}, {pa, pb}, "heads");
  Tensor<float> x({4, 2}, {1, 0, 0, 1, 1, 1, 2, -1}), ya({4, 1}, {1, 2, -1, 3}), yb({4, 1}, {1, 0, 1, 1});
  const double ln2 = std::log(2.0);  // zero weights: b predicts 0.5, binary cross-entropy ln 2 per sample
  m.compile(optimizers::SGD<float>({.learning_rate = 0.1}), {"mse", losses::BinaryCrossentropy<float>()}, {},
            {1.0, 0.5});
  auto l = m.evaluate(TV{x}, TV{ya, yb}, 4);
  CHECK(l.at("a_loss") == Approx(15.0 / 4));
  CHECK(l.at("b_loss") == Approx(ln2));  // Keras logs each output's loss unweighted
  CHECK(l.at("loss") == Approx(15.0 / 4 + 0.5 * ln2));
  CHECK(m.train_on_batch(TV{x}, TV{ya, yb}) == Approx(15.0 / 4 + 0.5 * ln2));
  // a: kernel -= lr * (-(2/4) sum ya x) as before; b: kernel -= lr * 0.5 * (1/4) sum (0.5 - yb) x
  //   sum (0.5 - yb) x = -0.5 (1,0) + 0.5 (0,1) - 0.5 (1,1) - 0.5 (2,-1) = (-2, 0.5)
  CHECK(var(m, "a", "kernel").value[0] == Approx(0.1 * 0.5 * 6));
  CHECK(var(m, "b", "kernel").value[0] == Approx(-0.1 * 0.5 * 0.25 * -2));
  CHECK(var(m, "b", "kernel").value[1] == Approx(-0.1 * 0.5 * 0.25 * 0.5));
  CHECK(var(m, "b", "bias").value[0] == Approx(-0.1 * 0.5 * 0.25 * -1));  // sum (0.5 - yb) = -1

  // the same by output name; a weight left out is 1
  Model<float> m2({in}, {pa, pb}, "heads2");
  m2.compile("sgd", {{"b", "binary_crossentropy"}, {"a", "mse"}}, {}, {{"b", 0.25}});
  auto l2 = m2.evaluate(TV{x}, TV{ya, yb}, 4);
  CHECK(l2.at("loss") == Approx(l2.at("a_loss") + 0.25 * l2.at("b_loss")));
  auto h = m2.fit(TV{x}, TV{ya, yb}, {.epochs = 2, .batch_size = 2, .validation_split = 0.5, .verbose = 0});
  CHECK(h["loss"][1] == Approx(h["a_loss"][1] + 0.25 * h["b_loss"][1]));
  CHECK(h["val_loss"][1] == Approx(h["val_a_loss"][1] + 0.25 * h["val_b_loss"][1]));

  // compiled reload: the per-output losses and weights come back from trainingConfig
  auto tc = m.training_config();
  CHECK(tc["loss"] == json::array({"mean_squared_error", "binary_crossentropy"}));
  CHECK(tc["loss_weights"] == json::array({1.0, 0.5}));
  Model<float> m3({in}, {pa, pb}, "heads3");
  m3.compile_from_config(tc);
  CHECK(m3.evaluate(TV{x}, TV{ya, yb}, 4).at("loss") == Approx(m.evaluate(TV{x}, TV{ya, yb}, 4).at("loss")));
  // Keras's dict form of a training config
  json kc = tc;
  kc.erase("loss_config");
  kc["loss"] = {{"b", "binary_crossentropy"}, {"a", "mean_squared_error"}};
  kc["loss_weights"] = {{"b", 0.5}};
  m3.compile_from_config(kc);
  CHECK(m3.evaluate(TV{x}, TV{ya, yb}, 4).at("loss") == Approx(m.evaluate(TV{x}, TV{ya, yb}, 4).at("loss")));

  CHECK_THROWS_WITH(m.compile("sgd", {"mse"}), Catch::Contains("model 'heads' has 2 outputs, got 1 loss"));
  CHECK_THROWS_WITH(m.compile("sgd", {"mse", "mse"}, {}, {1.0}), Catch::Contains("got 1 loss weight"));
  CHECK_THROWS_WITH(m.compile("sgd", {{"a", "mse"}, {"c", "mse"}}),
                    Catch::Contains("unknown entry 'c' in the loss dict of model 'heads': its outputs are 'a', 'b'"));
  CHECK_THROWS_WITH(m.compile("sgd", Model<float>::LossDict{{"a", "mse"}}),
                    Catch::Contains("output 'b' of model 'heads' has no entry in the loss dict"));
}
