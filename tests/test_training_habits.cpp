// Keras training habits: class_weight / sample_weight (loss "sum_over_batch_size": mean(w * loss)),
// save_weights / load_weights, ModelCheckpoint's filepath formats and save_weights_only, and a
// compiled reload (trainingConfig) keeping a schedule and the new metrics. Expected numbers are
// Keras's formulas worked by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <keras/all.hpp>
#include <unistd.h>

#include "capture_stdout.hpp"

using namespace keras;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) {
  fs::path d = fs::path(KERASCPP_BINARY_DIR) / "test_training_habits_tmp" / (std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
/// Sequential InputLayer(d) -> Dense(1, activation) with zero kernel and bias.
std::shared_ptr<Sequential<float>> zero_dense(Index d, const std::string& activation) {
  auto m = std::make_shared<Sequential<float>>("zd");
  m->add(layers::InputLayer({.shape = {d}}));
  m->add(layers::Dense(1, {.activation = activation, .kernel_initializer = "zeros", .name = "out"}));
  return m;
}
Variable<float>& var(Model<float>& m, const std::string& layer, const std::string& name) {
  for (auto* v : m.get_layer(layer)->variables())
    if (v->name == name) return *v;
  throw std::runtime_error("no variable " + name);
}
Tensor<float> vec(std::initializer_list<float> v) { return Tensor<float>({static_cast<Index>(v.size())}, v); }
}  // namespace

TEST_CASE("weighted_loss: mean over samples of w * loss, gradient rows scaled by w", "[training][weights]") {
  losses::MeanSquaredError<float> mse;
  Tensor<float> y({3, 2}, {1, 2, 0, 0, 3, -1}), p({3, 2}, {0, 0, 1, 1, 3, 1});
  // per-sample MSE: (1 + 4) / 2 = 2.5, (1 + 1) / 2 = 1, (0 + 4) / 2 = 2; weights 1, 2, 0.5
  Tensor<float> w = vec({1, 2, 0.5});
  Tensor<float> g;
  std::vector<Tensor<float>> rows;
  CHECK(trainers::weighted_loss<float>(mse, y, p, w, &g, rows) == Approx((2.5 * 1 + 1 * 2 + 2 * 0.5) / 3));
  // d/dp of (1/3) sum_i w_i (1/2) sum_j (p - y)^2 = w_i (p - y) / 3
  const float expect[] = {1 * (0 - 1) / 3.f, 1 * (0 - 2) / 3.f, 2 * (1 - 0) / 3.f,
                          2 * (1 - 0) / 3.f, 0.5f * 0,          0.5f * (1 + 1) / 3.f};
  for (int i = 0; i < 6; ++i) CHECK(g[i] == Approx(expect[i]));
  Tensor<float> ones = vec({1, 1, 1});  // weights 1: the unweighted loss
  CHECK(trainers::weighted_loss<float>(mse, y, p, ones, nullptr, rows) == Approx(mse.compute(y, p, nullptr)));
}

TEST_CASE("train_on_batch / evaluate with sample_weight: Keras's weighted MSE and its SGD step",
          "[training][weights]") {
  auto m = zero_dense(2, "linear");
  m->compile(optimizers::SGD<float>({.learning_rate = 0.1}), "mse");
  Tensor<float> x({4, 2}, {1, 0, 0, 1, 1, 1, 2, -1}), y({4, 1}, {1, 2, -1, 3});
  Tensor<float> w = vec({1, 0, 2, 1});
  // at zero weights the prediction is 0: loss = sum w y^2 / 4 = (1 + 0 + 2 + 9) / 4 = 3
  CHECK(m->evaluate(x, y, 4, w).at("loss") == Approx(3.0));
  CHECK(m->evaluate(x, y, 2, w).at("loss") == Approx(3.0));  // batches of 2: (1 + 0) / 2 and (2 + 9) / 2, mean 3
  CHECK(m->evaluate(x, y, 4).at("loss") == Approx((1 + 4 + 1 + 9) / 4.0));
  CHECK(m->train_on_batch(x, y, w) == Approx(3.0));
  // grad kernel = (1/4) sum w 2 (0 - y) x = -(1/2) sum w y x; grad bias = -(1/2) sum w y
  //   sum w y x = 1*1*(1,0) + 0 + 2*(-1)*(1,1) + 1*3*(2,-1) = (5, -5); sum w y = 1 - 2 + 3 = 2
  auto& k = var(*m, "out", "kernel");
  auto& b = var(*m, "out", "bias");
  CHECK(k.value[0] == Approx(0.1 * 0.5 * 5));
  CHECK(k.value[1] == Approx(0.1 * 0.5 * -5));
  CHECK(b.value[0] == Approx(0.1 * 0.5 * 2));
  CHECK_THROWS_WITH(
      m->train_on_batch(x, y, vec({1, 2})),
      Catch::Contains("sample_weight must hold one weight per sample, shape (4,)") && Catch::Contains("got (2,)"));
}

TEST_CASE("fit with class_weight: each sample weighted by its class (sigmoid output, logits loss)",
          "[training][weights]") {
  auto m = zero_dense(1, "sigmoid");
  m->compile(optimizers::SGD<float>({.learning_rate = 0.1}), "binary_crossentropy", {"accuracy"});
  Tensor<float> x({4, 1}, {1, -1, 2, 0}), y({4, 1}, {1, 0, 0, 1});
  // p = 0.5 everywhere: every loss is log 2; weights 3, 1, 1, 3 -> loss = log 2 * 8 / 4
  auto h = m->fit(x, y,
                  {.epochs = 1, .batch_size = 4, .shuffle = false, .verbose = 0, .class_weight = {{0, 1.0}, {1, 3.0}}});
  CHECK(h["loss"][0] == Approx(2 * std::log(2.0)));
  // d/dlogit = w (p - y) / 4: bias grad = (3(-.5) + .5 + .5 + 3(-.5)) / 4 = -0.5; kernel grad = sum w (p - y) x / 4
  //   = (3(-.5)(1) + (.5)(-1) + (.5)(2) + 3(-.5)(0)) / 4 = -0.25
  CHECK(var(*m, "out", "bias").value[0] == Approx(0.05));
  CHECK(var(*m, "out", "kernel").value[0] == Approx(0.025));
  // one-hot labels take argmax; a class missing from the map weighs 1
  Tensor<float> oh({3, 3}, {0, 0, 1, 1, 0, 0, 0, 1, 0}), cw;
  trainers::class_weights_to_sample_weights(oh, {{2, 5.0}, {0, 0.5}}, cw);
  CHECK(cw[0] == 5.f);
  CHECK(cw[1] == 0.5f);
  CHECK(cw[2] == 1.f);
  trainers::class_weights_to_sample_weights(vec({0, 1.2f, 2}), {{1, 4.0}}, cw);  // class ids, rounded
  CHECK(cw[1] == 4.f);
  CHECK_THROWS_WITH(m->fit(x, y, {.verbose = 0, .class_weight = {{1, 2.0}}, .sample_weight = vec({1, 1, 1, 1})}),
                    Catch::Contains("You cannot `class_weight` and `sample_weight` at the same time."));
}

TEST_CASE("fit with sample_weight: weighted training loss, and validation_split weighs val_loss",
          "[training][weights]") {
  auto m = zero_dense(2, "linear");
  m->compile(optimizers::SGD<float>({.learning_rate = 0.0}), "mse");  // weights stay 0: predictions 0
  Tensor<float> x({5, 2}, 1.f), y({5, 1}, {1, 2, 3, 4, 5});
  Tensor<float> w = vec({1, 1, 2, 0.5, 3});
  // training part: samples 0..2 -> (1 + 4 + 2 * 9) / 3; validation (last 2): (0.5 * 16 + 3 * 25) / 2
  auto h = m->fit(x, y, {.epochs = 1, .batch_size = 8, .validation_split = 0.4, .verbose = 0, .sample_weight = w});
  CHECK(h["loss"][0] == Approx(23.0 / 3));
  CHECK(h["val_loss"][0] == Approx((0.5 * 16 + 3 * 25) / 2.0));
  CHECK_THROWS_WITH(m->fit(x, y, {.verbose = 0, .sample_weight = vec({1, 2})}),
                    Catch::Contains("fit: sample_weight must hold one weight per sample"));
}

TEST_CASE("sample_weight with a cached frozen base trains as without the cache", "[training][weights][cache]") {
  auto make = [] {
    set_random_seed(21);
    auto in = Input<float>({4});
    auto base_out = layers::Dense(6, {.activation = "relu", .name = "b1"})(in);
    auto base = std::make_shared<Model<float>>(in, base_out, "base");
    base->set_trainable(false);
    auto m = std::make_shared<Sequential<float>>();
    m->add(layers::InputLayer({.shape = {4}}));
    m->add(base);
    m->add(layers::Dense(2, {.activation = "softmax", .name = "head"}));
    m->compile(optimizers::Adam<float>({.learning_rate = 0.05}), "categorical_crossentropy");
    return m;
  };
  Tensor<float> x({24, 4}), y({24, 2}, 0.f), w({24});
  Random rng(5);
  for (Index i = 0; i < 24; ++i) {
    for (Index j = 0; j < 4; ++j) x[i * 4 + j] = static_cast<float>(rng.normal(0, 1));
    y[i * 2 + (x[i * 4] > 0 ? 1 : 0)] = 1;
    w[i] = static_cast<float>(0.5 + (i % 3));
  }
  auto run = [&](bool cache) {
    auto m = make();
    return m->fit(x, y,
                  {.epochs = 3,
                   .batch_size = 5,
                   .validation_split = 0.25,
                   .seed = 3,
                   .verbose = 0,
                   .cache_frozen = cache,
                   .sample_weight = w});
  };
  auto a = run(true), b = run(false);
  for (int e = 0; e < 3; ++e) {
    CHECK(a["loss"][e] == Approx(b["loss"][e]).epsilon(1e-5));
    CHECK(a["val_loss"][e] == Approx(b["val_loss"][e]).epsilon(1e-5));
  }
}

TEST_CASE("save_weights / load_weights: the TF.js weights format (no topology), back by name", "[training][save]") {
  auto m = zero_dense(3, "linear");
  for (Index i = 0; i < 3; ++i) var(*m, "out", "kernel").value[i] = 0.5f * static_cast<float>(i + 1);
  var(*m, "out", "bias").value[0] = -2.f;
  m->compile("adam", "mse");
  fs::path d = scratch("weights");
  models::save_weights(*m, d.string());
  std::ifstream f(d / "model.json");
  auto j = nlohmann::json::parse(f);
  CHECK(j["modelTopology"].is_null());
  CHECK_FALSE(j.contains("trainingConfig"));
  CHECK(j["weightsManifest"][0]["weights"][0]["name"] == "out/kernel");
  CHECK_THROWS_WITH(models::load_model(d.string()), Catch::Contains("holds weights only"));
  auto m2 = zero_dense(3, "linear");
  models::load_weights(*m2, d.string());
  CHECK(var(*m2, "out", "kernel").value[2] == 1.5f);
  CHECK(var(*m2, "out", "bias").value[0] == -2.f);
  auto other = std::make_shared<Sequential<float>>("other");
  other->add(layers::InputLayer({.shape = {3}}));
  other->add(layers::Dense(1, {.name = "elsewhere"}));
  CHECK_THROWS_WITH(models::load_weights(*other, d.string()), Catch::Contains("no weight named 'elsewhere/kernel'"));
}

TEST_CASE("ModelCheckpoint: Keras's {epoch:02d} / {val_loss:.2f} paths, save_weights_only, save_best_only",
          "[training][callbacks][checkpoint]") {
  Logs logs{{"loss", 0.123456}, {"val_loss", 1.0 / 3}, {"accuracy", 0.5}};
  using callbacks::format_checkpoint_path;
  CHECK(format_checkpoint_path("ck-{epoch:02d}-{val_loss:.2f}", 4, logs) == "ck-05-0.33");
  CHECK(format_checkpoint_path("ck{epoch}_{loss:.3e}_{accuracy:.1%}", 11, logs) == "ck12_1.235e-01_50.0%");
  CHECK(format_checkpoint_path("{epoch:>4d}|{epoch:<3d}|{{x}}|{accuracy}", 0, logs) == "   1|1  |{x}|0.5");
  CHECK_THROWS_WITH(format_checkpoint_path("m-{val_acc:.2f}", 0, logs),
                    Catch::Contains("Failed to format this callback filepath") && Catch::Contains("'val_acc'"));
  CHECK_THROWS_WITH(format_checkpoint_path("m-{loss:d}", 0, logs), Catch::Contains("Unknown format code 'd'"));
  CHECK_THROWS_AS(format_checkpoint_path("m-{epoch", 0, logs), ValueError);

  auto m = zero_dense(2, "linear");
  m->compile(optimizers::SGD<float>({.learning_rate = 0.05}), "mse");
  Tensor<float> x({8, 2}, {1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 1, -1, -1, 1, 2, 2}), y({8, 1}, {1, 1, 2, 2, 2, 0, 0, 4});
  fs::path d = scratch("ckpt");
  auto all = std::make_shared<callbacks::ModelCheckpoint<float>>(
      (d / "w{epoch:02d}-{loss:.4f}").string(),
      callbacks::ModelCheckpointOptions{.monitor = "loss",
                                        .verbose = 0,
                                        .save_best_only = false,
                                        .save_weights_only = true,
                                        .mode = "auto",
                                        .initial_value_threshold = std::nullopt});
  auto best = std::make_shared<callbacks::ModelCheckpoint<float>>(
      (d / "best").string(),
      callbacks::ModelCheckpointOptions{.monitor = "loss",
                                        .verbose = 0,
                                        .save_best_only = true,
                                        .save_weights_only = false,
                                        .mode = "min",
                                        .initial_value_threshold = 0.0});  // nothing beats 0: never saved
  auto h = m->fit(x, y, {.epochs = 3, .batch_size = 8, .shuffle = false, .verbose = 0, .callbacks = {all, best}});
  for (int e = 0; e < 3; ++e) {
    char name[64];
    std::snprintf(name, sizeof name, "w%02d-%.4f", e + 1, h["loss"][e]);
    REQUIRE(fs::exists(d / name / "model.json"));
    std::ifstream f(d / name / "model.json");
    CHECK(nlohmann::json::parse(f)["modelTopology"].is_null());
  }
  CHECK_FALSE(fs::exists(d / "best"));
  // the last checkpoint holds the final weights
  char last[64];
  std::snprintf(last, sizeof last, "w03-%.4f", h["loss"][2]);
  auto back = zero_dense(2, "linear");
  models::load_weights(*back, (d / last).string());
  CHECK(var(*back, "out", "kernel").value[0] == var(*m, "out", "kernel").value[0]);
}

TEST_CASE("A saved model comes back compiled with its schedule and metrics (trainingConfig)", "[training][save]") {
  auto m = zero_dense(2, "sigmoid");
  namespace sch = optimizers::schedules;
  m->compile(optimizers::Adam<float>({.learning_rate = sch::ExponentialDecay(
                                          0.01, 10, 0.5, {.staircase = true, .name = "ExponentialDecay"})}),
             "binary_crossentropy", {"auc", "precision", "recall", "accuracy"});
  fs::path d = scratch("compiled");
  models::save_model(*m, d.string());
  std::ifstream f(d / "model.json");
  auto j = nlohmann::json::parse(f);
  const auto& tc = j["trainingConfig"];
  CHECK(tc["metrics"] == nlohmann::json({"auc", "precision", "recall", "accuracy"}));
  CHECK(tc["optimizer_config"]["config"]["learning_rate"]["class_name"] == "ExponentialDecay");
  CHECK(tc["optimizer_config"]["config"]["learning_rate"]["module"] == "keras.optimizers.schedules");
  auto back = models::load_model(d.string());
  REQUIRE(back->compiled());
  REQUIRE(back->optimizer().learning_rate_schedule());
  CHECK((*back->optimizer().learning_rate_schedule())(25) == Approx(0.0025));
  Tensor<float> x({4, 2}, {1, 0, 0, 1, 1, 1, -1, 0}), y({4, 1}, {1, 0, 1, 0});
  auto logs = back->evaluate(x, y, 4);
  for (const char* k : {"loss", "auc", "precision", "recall", "accuracy"}) CHECK(logs.count(k) == 1);
  CHECK(logs.at("precision") == 0.0);    // p = 0.5 is not > 0.5: nothing predicted positive
  CHECK(logs.at("auc") == Approx(0.5));  // all scores tie: the ROC is the diagonal
}

namespace {
struct Recorder : callbacks::Callback<float> {
  std::vector<std::string> calls;
  void on_test_begin(const Logs&) override { calls.push_back("test_begin"); }
  void on_test_batch_begin(int b, const Logs&) override { calls.push_back("test_batch_begin " + std::to_string(b)); }
  void on_test_batch_end(int b, const Logs& l) override {
    calls.push_back("test_batch_end " + std::to_string(b) + (l.count("loss") ? " loss" : ""));
  }
  void on_test_end(const Logs& l) override {
    calls.push_back("test_end" + std::string(l.count("loss") ? " loss" : ""));
  }
  void on_predict_begin(const Logs&) override { calls.push_back("predict_begin"); }
  void on_predict_batch_begin(int b, const Logs&) override {
    calls.push_back("predict_batch_begin " + std::to_string(b));
  }
  void on_predict_batch_end(int b, const Logs&) override { calls.push_back("predict_batch_end " + std::to_string(b)); }
  void on_predict_end(const Logs&) override { calls.push_back("predict_end"); }
};
}  // namespace

TEST_CASE("evaluate / predict with EvaluateOptions / PredictOptions dispatch on_test_* / on_predict_* and show the bar",
          "[training][callbacks]") {
  auto m = zero_dense(2, "linear");
  m->compile(optimizers::SGD<float>({.learning_rate = 0.1}), "mse");
  Tensor<float> x({5, 2}, 1.f), y({5, 1}, {1, 1, 1, 1, 3});
  auto rec = std::make_shared<Recorder>();
  Logs logs;
  std::string out = capture_stdout(
      [&] { logs = m->evaluate(x, y, {.batch_size = 2, .verbose = 1, .sample_weight = {}, .callbacks = {rec}}); });
  CHECK(rec->calls == std::vector<std::string>{"test_begin", "test_batch_begin 0", "test_batch_end 0 loss",
                                               "test_batch_begin 1", "test_batch_end 1 loss", "test_batch_begin 2",
                                               "test_batch_end 2 loss", "test_end loss"});
  CHECK(logs.at("loss") == Approx((4 * 1 + 9) / 5.0));
  CHECK(out.find("3/3") != std::string::npos);
  CHECK(out.find("loss: 2.6") != std::string::npos);
  rec->calls.clear();
  Tensor<float> p;
  CHECK(capture_stdout([&] { p = m->predict(x, {.batch_size = 4, .verbose = 0, .callbacks = {rec}}); }).empty());
  CHECK(p.dim(0) == 5);
  CHECK(rec->calls == std::vector<std::string>{"predict_begin", "predict_batch_begin 0", "predict_batch_end 0",
                                               "predict_batch_begin 1", "predict_batch_end 1", "predict_end"});
  // sample_weight through the options too: losses 1, 1, 1, 1, 9 with weights 0, 1, 1, 1, 1
  Tensor<float> w = vec({0, 1, 1, 1, 1});
  CHECK(m->evaluate(x, y, {.batch_size = 32, .verbose = 0, .sample_weight = w, .callbacks = {}}).at("loss") ==
        Approx((3 * 1 + 9) / 5.0));
}
