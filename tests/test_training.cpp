// The training workflow: frozen-part feature caching, callbacks, fit on datasets, fine-tuning.
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <keras/all.hpp>

#include "capture_stdout.hpp"
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace keras;
namespace fs = std::filesystem;

namespace {
/// Images with a bright blob in one quadrant; label = quadrant (4 classes, one-hot).
void quadrant_images(Index n, std::uint64_t seed, Tensor<float>& x, Tensor<float>& y, Index size = 8) {
  Random rng(seed);
  x.resize({n, size, size, 1});
  y.resize({n, 4});
  y.setZero();
  for (Index i = 0; i < n; ++i) {
    Index q = static_cast<Index>(rng.index(4));
    for (Index h = 0; h < size; ++h)
      for (Index w = 0; w < size; ++w) {
        bool in = (h / (size / 2) == q / 2) && (w / (size / 2) == q % 2);
        x.at({i, h, w, 0}) = static_cast<float>((in ? 1.0 : 0.0) * rng.uniform(0.3, 1.0) + rng.normal(0, 0.3));
      }
    y.at({i, q}) = 1;
  }
}

/// A small frozen "backbone" (Functional, with BatchNormalization) and a head, as the codelab.
std::shared_ptr<Sequential<float>> frozen_base_model(std::uint64_t seed,
                                                     std::shared_ptr<Model<float>>* base_out = nullptr) {
  set_random_seed(seed);
  auto in = Input<float>({8, 8, 1});
  auto x = layers::Conv2D(8, 3, {.padding = "same", .use_bias = false, .name = "c1"})(in);
  x = layers::BatchNormalization({.name = "bn1"})(x);
  x = layers::ReLU({.max_value = 6.0})(x);
  x = layers::Conv2D(8, 3, {.strides = {2, 2}, .padding = "same", .name = "c2"})(x);
  x = layers::ReLU()(x);
  auto base = std::make_shared<Model<float>>(in, x, "base");
  base->set_trainable(false);
  auto m = std::make_shared<Sequential<float>>();
  m->add(layers::InputLayer({.shape = {8, 8, 1}}));
  m->add(base);
  m->add(layers::GlobalAveragePooling2D());
  m->add(layers::Dropout(0.2, {.seed = 5}));
  m->add(layers::Dense(4, {.activation = "softmax", .seed = 9}));
  if (base_out) *base_out = base;
  return m;
}

}  // namespace

TEST_CASE("Caching a frozen base gives the same training as recomputing it", "[training][cache]") {
  Tensor<float> x, y;
  quadrant_images(300, 1, x, y);
  auto run = [&](bool cache) {
    auto m = frozen_base_model(100);
    m->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>(),
               {"accuracy"});
    return m->fit(
        x, y, {.epochs = 4, .batch_size = 32, .validation_split = 0.2, .seed = 7, .verbose = 0, .cache_frozen = cache});
  };
  auto a = run(true), b = run(false);
  for (std::string k : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    REQUIRE(a[k].size() == 4);
    for (int e = 0; e < 4; ++e) {
      INFO(k << " epoch " << e << ": cached " << a[k][e] << " vs " << b[k][e]);
      CHECK(std::abs(a[k][e] - b[k][e]) <= 1e-5 * std::max(1.0, std::abs(b[k][e])));
    }
  }
  // the log says so
  auto m = frozen_base_model(100);
  m->compile("adam", "categorical_crossentropy");
  std::string out = capture_stdout([&] { m->fit(x, y, {.epochs = 1, .verbose = 2}); });
  CHECK(out.find("Cached the outputs of the frozen layers up to 'global_average_pooling2d") != std::string::npos);
}

TEST_CASE("The frozen prefix ends where trainable or stochastic layers begin", "[training][cache]") {
  auto m = frozen_base_model(3);
  // input, base, gap | dropout, dense
  CHECK(m->graph().frozen_prefix_end() == 2);
  m->layers()[0]->set_trainable(true);  // an unfrozen base: nothing to cache
  CHECK(m->graph().frozen_prefix_end() == -1);
}

TEST_CASE("fit on a Dataset trains, and caches only when the data are deterministic", "[training][dataset]") {
  Tensor<float> x, y;
  quadrant_images(256, 2, x, y);
  auto ds = data::Dataset<float>::from_tensor_slices(x, y).shuffle(256, 1).batch(32);
  auto m = frozen_base_model(4);
  m->compile("adam", "categorical_crossentropy", {"accuracy"});
  std::string out = capture_stdout([&] { m->fit(ds, {.epochs = 3, .verbose = 2}, ds); });
  CHECK(out.find("Cached the outputs") != std::string::npos);
  CHECK(out.find("8/8 - ") != std::string::npos);  // verbose 2: epoch lines, no bar
  auto r = m->evaluate(ds);
  CHECK(r.count("accuracy"));
  out = capture_stdout([&] { m->fit(ds, {.epochs = 2, .verbose = 2, .steps_per_epoch = 3}); });
  CHECK(out.find("3/3 - ") != std::string::npos);
  CHECK(out.find("Epoch 2/2") != std::string::npos);
  auto aug = ds.map_random([](data::Batch<float> b, Random& rng) {
    for (auto& v : b.x) v += static_cast<float>(rng.normal(0, 0.01));
    return b;
  });
  CHECK_FALSE(aug.deterministic());
  auto m2 = frozen_base_model(4);
  m2->compile("adam", "categorical_crossentropy");
  out = capture_stdout([&] { m2->fit(aug, {.epochs = 1, .verbose = 2}); });
  CHECK(out.find("Cached the outputs") == std::string::npos);
  auto p = m2->predict(ds);
  CHECK(p.shape() == Shape{256, 4});
}

TEST_CASE("Non-terminal progress output is one Keras line per epoch", "[training][progbar]") {
  Tensor<float> x, y;
  quadrant_images(100, 3, x, y);
  auto m = frozen_base_model(5);
  m->compile("adam", "categorical_crossentropy", {"accuracy"});
  std::string out = capture_stdout([&] {
    m->fit(x, y, {.epochs = 2, .batch_size = 25, .validation_split = 0.2, .verbose = 1, .cache_frozen = false});
  });
  INFO(out);
  std::istringstream is(out);
  std::vector<std::string> lines;
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "Epoch 1/2");
  // 4/4 [==============================] - 0s 3ms/step - loss: 1.3795 - accuracy: 0.2875 - val_loss: ... -
  // val_accuracy: ...
  CHECK(lines[1].rfind("4/4 [==============================] - ", 0) == 0);
  auto pl = lines[1].find(" - loss: "), pa = lines[1].find(" - accuracy: "), pv = lines[1].find(" - val_loss: "),
       pva = lines[1].find(" - val_accuracy: ");
  CHECK(pl != std::string::npos);
  CHECK(pl < pa);
  CHECK(pa < pv);
  CHECK(pv < pva);
  CHECK(lines[1].find("/step") != std::string::npos);
  CHECK(lines[1].find('\r') == std::string::npos);
  callbacks::ProgbarLogger<float> bar;
  bar.set_params({{"epochs", 1}, {"steps", 39}});
  bar.on_epoch_begin(0, {});
  CHECK(bar.bar(12) == "12/39 [========>.....................]");
  CHECK(bar.bar(39) == "39/39 [==============================]");
}

TEST_CASE("verbose 2 prints one line per epoch without a bar, as Keras", "[training][progbar]") {
  Tensor<float> x, y;
  quadrant_images(100, 3, x, y);
  auto m = frozen_base_model(5);
  m->compile("adam", "categorical_crossentropy", {"accuracy"});
  std::string out = capture_stdout([&] {
    m->fit(x, y, {.epochs = 2, .batch_size = 25, .validation_split = 0.2, .verbose = 2, .cache_frozen = false});
  });
  INFO(out);
  std::istringstream is(out);
  std::vector<std::string> lines;
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  REQUIRE(lines.size() == 4);
  for (int e = 0; e < 2; ++e) {
    CHECK(lines[2 * e] == "Epoch " + std::to_string(e + 1) + "/2");
    const std::string& l = lines[2 * e + 1];
    // 4/4 - 0s - 3ms/step - loss: 1.3795 - accuracy: 0.2875 - val_loss: ... - val_accuracy: ...
    CHECK(l.rfind("4/4 - ", 0) == 0);
    CHECK(l.find('[') == std::string::npos);
    CHECK(l.find('=') == std::string::npos);
    CHECK(l.find('\r') == std::string::npos);
    CHECK(l.find("s/step - loss: ") != std::string::npos);
    CHECK(l.find(" - val_accuracy: ") != std::string::npos);
  }
}

TEST_CASE("EarlyStopping stops and restores the best weights", "[training][callbacks]") {
  Tensor<float> x, y;
  quadrant_images(200, 4, x, y);
  auto m = frozen_base_model(6);
  m->compile(optimizers::SGD<float>({.learning_rate = 0.5}), losses::CategoricalCrossentropy<float>());
  // record weights after each epoch and the monitored value, to find the best epoch ourselves
  std::vector<std::vector<Tensor<float>>> snapshots;
  auto rec = std::make_shared<callbacks::LambdaCallback<float>>();
  rec->on_epoch_end_fn = [&](int, Logs&) {
    std::vector<Tensor<float>> s;
    for (auto* v : m->variables()) s.push_back(v->value);
    snapshots.push_back(s);
  };
  auto es = std::make_shared<callbacks::EarlyStopping<float>>(callbacks::EarlyStoppingOptions{
      .monitor = "loss", .min_delta = 0.05, .patience = 2, .restore_best_weights = true});
  auto h = m->fit(x, y, {.epochs = 50, .batch_size = 200, .verbose = 0, .callbacks = {rec, es}});
  REQUIRE(h["loss"].size() < 50);  // stopped early
  int best = es->best_epoch();
  auto& best_w = snapshots.at(best);
  auto vars = m->variables();
  for (std::size_t i = 0; i < vars.size(); ++i)
    CHECK(std::memcmp(vars[i]->value.data(), best_w[i].data(), sizeof(float) * best_w[i].size()) == 0);
}

TEST_CASE("TerminateOnNaN stops on a NaN loss with a clear message", "[training][callbacks]") {
  Tensor<float> x({16, 2}, 1.0f), y({16, 1}, 1.0f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  Sequential<float> m;
  m.add(layers::InputLayer({.shape = {2}}));
  m.add(layers::Dense(1));
  m.compile("sgd", "mse");
  auto t = std::make_shared<callbacks::TerminateOnNaN<float>>();
  History h;
  std::string out = capture_stdout(
      [&] { h = m.fit(x, y, {.epochs = 5, .batch_size = 4, .shuffle = false, .verbose = 0, .callbacks = {t}}); });
  CHECK(t->terminated());
  CHECK(out.find("Batch 0: Invalid loss, terminating training") != std::string::npos);
  CHECK(h["loss"].size() == 1);
}

TEST_CASE("CSVLogger writes a header and one row per epoch", "[training][callbacks]") {
  Tensor<float> x, y;
  quadrant_images(64, 5, x, y);
  auto m = frozen_base_model(7);
  m->compile("adam", "categorical_crossentropy", {"accuracy"});
  fs::path f = fs::path(KERASCPP_BINARY_DIR) / "test_training_history.csv";
  auto csv = std::make_shared<callbacks::CSVLogger<float>>(f.string());
  m->fit(x, y, {.epochs = 3, .validation_split = 0.25, .verbose = 0, .callbacks = {csv}});
  std::ifstream in(f);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "epoch,accuracy,loss,val_accuracy,val_loss");
  CHECK(lines[3].rfind("2,", 0) == 0);
}

TEST_CASE("LearningRateScheduler and ReduceLROnPlateau set the optimizer's learning rate", "[training][callbacks]") {
  Tensor<float> x, y;
  quadrant_images(64, 6, x, y);
  auto m = frozen_base_model(8);
  m->compile(optimizers::Adam<float>({.learning_rate = 0.1}), losses::CategoricalCrossentropy<float>());
  auto sched = std::make_shared<callbacks::LearningRateScheduler<float>>(
      [](int epoch, double lr) { return epoch < 1 ? lr : lr * 0.5; });
  auto h = m->fit(x, y, {.epochs = 3, .verbose = 0, .callbacks = {sched}});
  CHECK(h["learning_rate"][0] == Approx(0.1));
  CHECK(h["learning_rate"][2] == Approx(0.025));
  auto plateau = std::make_shared<callbacks::ReduceLROnPlateau<float>>(
      callbacks::ReduceLROnPlateauOptions{.monitor = "loss", .factor = 0.5, .patience = 1, .min_delta = 10.0});
  m->fit(x, y, {.epochs = 3, .verbose = 0, .callbacks = {plateau}});  // nothing improves by 10: halve after every epoch
  CHECK(m->optimizer().learning_rate() < 0.025 * 0.5 + 1e-9);
}

// The child process of the checkpoint test (hidden: runs only when the parent starts it).
TEST_CASE("checkpoint child: train forever with ModelCheckpoint", "[.checkpoint_child]") {
  const char* dir = std::getenv("KERASCPP_CHECKPOINT_DIR");
  REQUIRE(dir);
  Tensor<float> x, y;
  quadrant_images(512, 7, x, y, 16);
  set_random_seed(1);
  Sequential<float> m;
  m.add(layers::InputLayer({.shape = {16, 16, 1}}));
  m.add(layers::Conv2D(16, 3, {.padding = "same", .activation = "relu"}));
  m.add(layers::Flatten());
  m.add(layers::Dense(64, {.activation = "relu"}));
  m.add(layers::Dense(4, {.activation = "softmax"}));
  m.compile("adam", "categorical_crossentropy");
  auto ck = std::make_shared<callbacks::ModelCheckpoint<float>>(
      dir, callbacks::ModelCheckpointOptions{.monitor = "loss", .save_best_only = true});
  m.fit(x, y, {.epochs = 100000, .batch_size = 256, .verbose = 0, .callbacks = {ck}});
}

TEST_CASE("ModelCheckpoint leaves a loadable best model after a run killed with SIGKILL",
          "[training][callbacks][checkpoint]") {
  Tensor<float> x, y;
  quadrant_images(8, 7, x, y, 16);
  fs::path dir = fs::path(KERASCPP_BINARY_DIR) / "test_checkpoint_kill";
  for (int attempt = 0; attempt < 3; ++attempt) {
    fs::remove_all(dir);
    // a fresh process (fork after OpenMP has started is not safe): this binary, hidden test case
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      setenv("KERASCPP_CHECKPOINT_DIR", dir.c_str(), 1);
      execl("/proc/self/exe", "test_training", "[.checkpoint_child]", static_cast<char*>(nullptr));
      _exit(127);
    }
    // wait for the first checkpoint, then kill at a varying moment (often in the middle of a save)
    for (int i = 0; i < 6000 && !fs::exists(dir / "model.json"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(37 * attempt + 11));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(fs::exists(dir / "model.json"));
    auto model = io::load_model<float>(dir.string());
    auto p = model->predict(x.slice_rows(0, 4));
    CHECK(p.shape() == Shape{4, 4});
    for (Index i = 0; i < 4; ++i) {
      double s = 0;
      for (Index c = 0; c < 4; ++c) s += p.at({i, c});
      CHECK(s == Approx(1.0).epsilon(1e-4));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("Fine-tuning the top of a base lowers the loss further than the head alone", "[training][finetune]") {
  Tensor<float> x, y;
  quadrant_images(400, 8, x, y);
  auto run = [&](bool fine_tune) {
    std::shared_ptr<Model<float>> base;
    auto m = frozen_base_model(11, &base);
    m->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>());
    m->fit(x, y, {.epochs = 3, .batch_size = 32, .seed = 1, .verbose = 0});
    if (fine_tune) {
      // Keras's pattern: unfreeze the base, freeze all but its top layers, recompile with a lower rate
      base->set_trainable(true);
      auto ls = base->layers();
      for (std::size_t i = 0; i + 2 < ls.size(); ++i) ls[i]->set_trainable(false);
      m->compile(optimizers::Adam<float>({.learning_rate = 0.003}), losses::CategoricalCrossentropy<float>());
    }
    auto h = m->fit(x, y, {.epochs = 8, .batch_size = 32, .seed = 2, .verbose = 0, .initial_epoch = 3});
    REQUIRE(h.epoch.front() == 3);
    return h["loss"].back();
  };
  double head_only = run(false), tuned = run(true);
  INFO("head only " << head_only << ", fine-tuned " << tuned);
  CHECK(tuned < head_only);
}

TEST_CASE("evaluate and predict show Keras's progress line when verbose; fit's validation does not",
          "[training][progbar]") {
  Tensor<float> x, y;
  quadrant_images(64, 3, x, y);
  auto ds = data::Dataset<float>::from_tensor_slices(x, y).batch(16);
  auto m = frozen_base_model(4);
  m->compile("adam", "categorical_crossentropy", {"accuracy"});
  std::string fit_out = capture_stdout([&] { m->fit(ds, {.epochs = 2, .verbose = 2}, ds); });
  std::size_t lines = 0;
  for (char c : fit_out) lines += c == '\n';
  // "Cached ...", then per epoch "Epoch k/2" and its line: no extra line for the validation pass
  CHECK(lines == 1 + 2 * 2);
  std::string ev = capture_stdout([&] { m->evaluate(ds, 2); });
  CHECK(ev.find("4/4 - ") != std::string::npos);
  CHECK(ev.find("accuracy: ") != std::string::npos);
  std::string pr = capture_stdout([&] { CHECK(m->predict(ds, 2).dim(0) == 64); });
  CHECK(pr.find("4/4 - ") != std::string::npos);
  CHECK(capture_stdout([&] { m->predict(ds); }).empty());
}
