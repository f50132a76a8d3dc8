// Model files: TF.js layers format in and out (load_model / save_model / load_weights), against
// models written by TF.js itself (the ctest fixture tfjs_models) and read back by TF.js in Node.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <keras/io/npy.hpp>
#include <keras/io/tfjs.hpp>
#include <csignal>
#include <random>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "model_files.hpp"

using namespace keras;
using namespace model_files;

namespace {

std::string slurp(const fs::path& p) { return io::read_file(p.string()); }
void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

Tensor<float> one_hot_labels(Index n, Index classes, std::uint64_t seed) {
  Random rng(seed);
  Tensor<float> y({n, classes});
  y.setZero();
  for (Index i = 0; i < n; ++i) y.at({i, static_cast<Index>(rng.index(static_cast<std::uint64_t>(classes)))}) = 1;
  return y;
}

/// A small Functional CNN with the layers MobileNetV2 needs.
std::shared_ptr<Model<float>> small_cnn(const std::string& name, const std::string& input_name = "image") {
  using namespace layers;
  auto in = Input<float>({12, 12, 3}, input_name);
  auto x = Conv2D(8, 3, {.strides = 2, .padding = "same", .name = name + "_conv_a"})(in);
  x = BatchNormalization({.momentum = 0.9, .epsilon = 1e-3, .name = name + "_bn_a"})(x);
  x = ReLU({.max_value = 6.0, .name = name + "_relu6_a"})(x);
  x = ZeroPadding2D(Padding2D({0, 1}, {0, 1}), {.name = name + "_pad_b"})(x);
  x = DepthwiseConv2D(3, {.strides = 2, .padding = "valid", .use_bias = false, .name = name + "_dw_b"})(x);
  x = BatchNormalization({.momentum = 0.9, .name = name + "_bn_b"})(x);
  auto skip = ReLU({.max_value = 6.0, .name = name + "_relu6_b"})(x);
  auto y = Conv2D(8, 1, {.use_bias = false, .name = name + "_conv_c"})(skip);
  y = BatchNormalization({.momentum = 0.9, .name = name + "_bn_c"})(y);
  x = Add({.name = name + "_add_c"})({skip, y});
  x = DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2, .name = name + "_dw_d"})(x);
  x = GlobalAveragePooling2D({.name = name + "_gap"})(x);
  auto out = Dense(4, {.activation = "softmax", .name = name + "_probs"})(x);
  return std::make_shared<Model<float>>(in, out, name);
}

void train_a_little(Model<float>& m, const Tensor<float>& x, Index classes) {
  m.compile("adam", "categorical_crossentropy", {"accuracy"});
  m.fit(x, one_hot_labels(x.dim(0), classes, 3), {.epochs = 2, .batch_size = 8, .seed = 4, .verbose = 0});
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no keras::Error thrown>";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("Models written by TF.js load and predict what TF.js predicts", "[io][tfjs]") {
  if (!have_tfjs_model("nested")) return;
  for (std::string name : {"mlp", "cnn", "nested"}) {
    SECTION(name) {
      auto m = check_tfjs_model(name, name == "cnn" ? "model.json" : "");
      if (name == "nested") {
        CHECK(m->class_name() == "Sequential");
        auto base = std::dynamic_pointer_cast<Model<float>>(m->layers().at(0));
        REQUIRE(base);
        CHECK(base->name() == "mobilenetv2_like");
        CHECK(base->get_layer("block_1_pad")->class_name() == "ZeroPadding2D");
        CHECK(m->count_params() == 1577);
      }
      if (name == "cnn") {
        CHECK(m->class_name() == "Functional");
        CHECK(m->count_params() == 684);
      }
    }
  }
}

TEST_CASE("load_weights loads a TF.js weights manifest into a built model by name", "[io][tfjs]") {
  fs::path dir = tfjs_models() / "cnn";
  if (!fs::exists(dir / "model.json")) {
    WARN("no TF.js fixture: skipped");
    return;
  }
  using namespace layers;
  // the same architecture as make_models.js's cnn, built in C++ with TF.js's layer names
  auto in = Input<float>({12, 12, 3}, "input_image");
  auto x = Conv2D(8, 3, {.strides = 2, .padding = "same", .name = "conv_a"})(in);
  x = BatchNormalization({.momentum = 0.999, .name = "bn_a"})(x);
  x = ReLU({.max_value = 6.0, .name = "relu6_a"})(x);
  x = ZeroPadding2D(Padding2D({0, 1}, {0, 1}), {.name = "pad_b"})(x);
  x = DepthwiseConv2D(3, {.strides = 2, .use_bias = false, .name = "dw_b"})(x);
  x = BatchNormalization({.name = "bn_b"})(x);
  auto skip = ReLU({.max_value = 6.0, .name = "relu6_b"})(x);
  auto y = Conv2D(8, 1, {.use_bias = false, .name = "conv_c"})(skip);
  y = BatchNormalization({.name = "bn_c"})(y);
  x = Add({.name = "add_c"})({skip, y});
  x = DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2, .name = "dw_d"})(x);
  x = GlobalAveragePooling2D({.name = "gap"})(x);
  auto out = Dense(4, {.activation = "softmax", .name = "probs"})(x);
  Model<float> m(in, out, "cnn");
  io::load_weights(m, dir.string());
  auto d = max_abs_diff(m.predict(io::load_npy<float>((dir / "X.npy").string())),
                        io::load_npy<float>((dir / "Y.npy").string()));
  CHECK(d <= 1e-5);
  // a model whose layer is missing from the file is an error naming it
  auto in2 = Input<float>({4});
  Model<float> other(in2, Dense(3, {.name = "not_in_file"})(in2));
  std::string e = error_of([&] { io::load_weights(other, dir.string()); });
  CHECK_THAT(e, Catch::Contains("not_in_file"));
}

TEST_CASE("Models saved by kerascpp reload bit-identically and load in TF.js", "[io][save]") {
  set_random_seed(7);
  auto x = random_input({32, 12, 12, 3}, 11);

  SECTION("Functional CNN") {
    auto m = small_cnn("small_cnn");
    train_a_little(*m, x, 4);
    m->metadata = {{"class_names", {"a", "b", "c", "d"}}};
    auto p = m->predict(x);
    fs::path dir = scratch("cnn");
    models::save_model(*m, dir.string());
    auto back = models::load_model(dir.string());
    CHECK(back->class_name() == "Functional");
    CHECK(back->count_params() == m->count_params());
    CHECK(back->summary_string() == m->summary_string());
    CHECK(back->metadata["class_names"].size() == 4);
    auto p2 = back->predict(x);
    CHECK(bit_identical(p, p2));
    if (auto t = tfjs_predict(dir, x)) {
      double d = max_abs_diff(*t, p);
      std::printf("kerascpp Functional CNN -> TF.js: max abs diff %.3g\n", d);
      CHECK(d <= 1e-5);
    } else {
      WARN("node not available: TF.js check skipped");
    }
  }

  SECTION("the random augmentation layers: saved with Keras's keys, the identity in TF.js's inference") {
    auto in = Input<float>({10, 10, 3}, "pixels");
    auto h = layers::RandomFlip<float>("horizontal", {.seed = 3})(in);
    h = layers::RandomRotation<float>(0.1, {.seed = 4})(h);
    h = layers::RandomZoom<float>(0.2, std::nullopt, {.seed = 5})(h);
    h = layers::RandomTranslation<float>(0.1, 0.1, {.fill_mode = "constant"})(h);
    h = layers::Conv2D(4, 3, {.activation = "relu", .seed = 6})(h);
    h = layers::GlobalAveragePooling2D()(h);
    h = layers::Dense(3, {.activation = "softmax", .seed = 7})(h);
    auto m = std::make_shared<Model<float>>(in, h, "augmented");
    Tensor<float> x = random_input({4, 10, 10, 3}, 9);
    auto p = m->predict(x);
    fs::path dir = scratch("augmented");
    models::save_model(*m, dir.string());
    const std::string json_text = slurp(dir / "model.json");
    CHECK(json_text.find("\"RandomFlip\"") != std::string::npos);
    CHECK(bit_identical(models::load_model(dir.string())->predict(x), p));
    if (auto t = tfjs_predict(dir, x)) {
      double d = max_abs_diff(*t, p);
      std::printf("kerascpp model with augmentation layers -> TF.js: max abs diff %.3g\n", d);
      CHECK(d <= 1e-5);
    } else {
      WARN("node not available: TF.js check skipped");
    }
  }

  SECTION("Sequential containing a frozen Functional base") {
    auto base = small_cnn("base", "input_1");
    auto m = std::make_shared<Sequential<float>>("classifier");
    m->add(Input<float>({12, 12, 3}, "classifier_input"));
    m->add(std::static_pointer_cast<layers::Layer<float>>(base));
    m->add(layers::Dropout<float>(0.3, {.seed = 5, .name = "dropout"}));
    m->add(layers::Dense<float>(3, {.activation = "softmax", .name = "head"}));
    train_a_little(*m, x, 3);  // base trains too; then freeze it for saving
    base->set_trainable(false);
    auto p = m->predict(x);
    fs::path dir = scratch("nested");
    models::save_model(*m, dir.string());
    auto back = models::load_model(dir.string());
    CHECK(back->class_name() == "Sequential");
    auto inner = std::dynamic_pointer_cast<Model<float>>(back->layers().at(0));
    REQUIRE(inner);
    CHECK_FALSE(inner->trainable());
    CHECK(back->trainable_variables().size() == 2);
    CHECK(bit_identical(back->predict(x), p));
    // weights named with model prefixes ("classifier/base/base_conv_a/kernel") load too
    json j = json::parse(slurp(dir / "model.json"));
    for (auto& w : j["weightsManifest"][0]["weights"]) {
      std::string n = w["name"];
      w["name"] = "classifier/" + std::string(n.rfind("base_", 0) == 0 ? "base/" : "") + n;
    }
    fs::path prefixed = scratch("nested_prefixed");
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".bin") fs::copy(e.path(), prefixed / e.path().filename());
    spit(prefixed / "model.json", j.dump());
    CHECK(bit_identical(models::load_model(prefixed.string())->predict(x), p));
    if (auto t = tfjs_predict(dir, x)) {
      double d = max_abs_diff(*t, p);
      std::printf("kerascpp nested model -> TF.js: max abs diff %.3g\n", d);
      CHECK(d <= 1e-5);
    }
  }
}

namespace {
/// A tiny model and a hand-written manifest with quantized weights.
void write_quantized(const fs::path& dir, const std::string& kernel_dtype) {
  fs::create_directories(dir);
  std::string bin;
  json q;
  if (kernel_dtype == "uint8") {
    const std::uint8_t k[6] = {0, 1, 2, 100, 254, 255};
    bin.append(reinterpret_cast<const char*>(k), 6);
    q = {{"dtype", "uint8"}, {"scale", 0.5}, {"min", -2.0}};
  } else if (kernel_dtype == "uint16") {
    const std::uint16_t k[6] = {0, 1, 2, 100, 65534, 65535};
    bin.append(reinterpret_cast<const char*>(k), 12);
    q = {{"dtype", "uint16"}, {"scale", 0.25}, {"min", -1.0}};
  } else {
    // float16: 1.0, -2.0, 0.5, 65504 (max), 2^-24 (smallest subnormal), -0.0
    const std::uint16_t k[6] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000};
    bin.append(reinterpret_cast<const char*>(k), 12);
    q = {{"dtype", "float16"}};
  }
  const float b[2] = {0.25f, -0.75f};
  bin.append(reinterpret_cast<const char*>(b), 8);
  spit(dir / "w.bin", bin);
  json topo = {
      {"class_name", "Sequential"},
      {"config",
       {{"name", "q"},
        {"layers", json::array({{{"class_name", "Dense"},
                                 {"config", {{"units", 2}, {"name", "d"}, {"batch_input_shape", {nullptr, 3}}}}}})}}}};
  json j = {
      {"format", "layers-model"},
      {"modelTopology", topo},
      {"weightsManifest",
       json::array({{{"paths", {"w.bin"}},
                     {"weights",
                      json::array({{{"name", "d/kernel"}, {"shape", {3, 2}}, {"dtype", "float32"}, {"quantization", q}},
                                   {{"name", "d/bias"}, {"shape", {2}}, {"dtype", "float32"}}})}}})}};
  spit(dir / "model.json", j.dump());
}
}  // namespace

TEST_CASE("A saved compiled model loads compiled (trainingConfig), as in Keras and TF.js", "[io][save]") {
  set_random_seed(9);
  auto x = random_input({16, 12, 12, 3}, 12);
  auto y = one_hot_labels(16, 4, 3);
  auto m = small_cnn("compiled_cnn");
  m->compile(optimizers::RMSprop<float>({.learning_rate = 0.0025, .rho = 0.8}),
             losses::CategoricalCrossentropy<float>({.label_smoothing = 0.1}), {"accuracy"});
  m->fit(x, y, {.epochs = 1, .batch_size = 8, .seed = 4, .verbose = 0});
  const Logs before = m->evaluate(x, y);
  fs::path dir = scratch("compiled");
  models::save_model(*m, dir.string());
  json j = json::parse(slurp(dir / "model.json"));
  REQUIRE(j.contains("trainingConfig"));
  CHECK(j["trainingConfig"]["loss"] == "categorical_crossentropy");
  CHECK(j["trainingConfig"]["optimizer_config"]["class_name"] == "RMSprop");

  auto back = models::load_model(dir.string());
  REQUIRE(back->compiled());
  CHECK(back->optimizer().class_name() == "RMSprop");
  CHECK(back->optimizer().learning_rate() == Approx(0.0025));
  CHECK(back->optimizer().get_config()["rho"] == Approx(0.8));
  CHECK(back->loss().get_config()["label_smoothing"] == Approx(0.1));
  const Logs after = back->evaluate(x, y);  // no compile() call
  CHECK(after.at("loss") == Approx(before.at("loss")).epsilon(1e-6));
  CHECK(after.at("accuracy") == before.at("accuracy"));
  // it trains as loaded
  CHECK(std::isfinite(back->train_on_batch(x, y)));

  // An uncompiled model saves no trainingConfig and loads uncompiled.
  auto plain = small_cnn("plain_cnn");
  fs::path pdir = scratch("uncompiled");
  models::save_model(*plain, pdir.string());
  CHECK_FALSE(json::parse(slurp(pdir / "model.json")).contains("trainingConfig"));
  CHECK_FALSE(models::load_model(pdir.string())->compiled());

  // TF.js's own spelling (camelCase keys, loss as a camelCase name) is read too; a bad one is named.
  j["trainingConfig"] = {
      {"loss", "categoricalCrossentropy"},
      {"metrics", {"accuracy"}},
      {"optimizer_config", {{"class_name", "Adam"}, {"config", {{"learningRate", 0.005}, {"beta1", 0.8}}}}}};
  {
    std::ofstream f(dir / "model.json");
    f << j.dump();
  }
  auto tfjs_style = models::load_model(dir.string());
  CHECK(tfjs_style->optimizer().class_name() == "Adam");
  CHECK(tfjs_style->optimizer().learning_rate() == Approx(0.005));
  CHECK(tfjs_style->optimizer().get_config()["beta_1"] == Approx(0.8));
  CHECK(tfjs_style->loss().class_name() == "CategoricalCrossentropy");
  j["trainingConfig"]["optimizer_config"]["class_name"] = "Adagrad";
  {
    std::ofstream f(dir / "model.json");
    f << j.dump();
  }
  const std::string err = error_of([&] { models::load_model(dir.string()); });
  CHECK(err.find("model.json") != std::string::npos);
  CHECK(err.find("trainingConfig") != std::string::npos);
  CHECK(err.find("Adagrad") != std::string::npos);
}

TEST_CASE("Quantized weights (uint8, uint16, float16) are dequantized", "[io][quantization]") {
  fs::path root = scratch("quant");
  auto kernel = [&](const std::string& dt) {
    write_quantized(root / dt, dt);
    auto m = models::load_model((root / dt).string());
    auto d = std::dynamic_pointer_cast<layers::Layer<float>>(m->layers().at(0));
    auto vars = d->variables();
    REQUIRE(vars.size() == 2);
    CHECK(vars[1]->value[0] == 0.25f);
    CHECK(vars[1]->value[1] == -0.75f);
    return std::vector<float>(vars[0]->value.begin(), vars[0]->value.end());
  };
  CHECK(kernel("uint8") == std::vector<float>{-2.0f, -1.5f, -1.0f, 48.0f, 125.0f, 125.5f});
  CHECK(kernel("uint16") == std::vector<float>{-1.0f, -0.75f, -0.5f, 24.0f, 16382.5f, 16382.75f});
  auto h = kernel("float16");
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.0f);
  CHECK(h[2] == 0.5f);
  CHECK(h[3] == 65504.0f);
  CHECK(h[4] == std::ldexp(1.0f, -24));
  CHECK(h[5] == 0.0f);
  CHECK(std::signbit(h[5]));
}

TEST_CASE("Corrupt model files give a keras::Error naming the problem", "[io][errors]") {
  fs::path root = scratch("corrupt");
  auto good = root / "good";
  {
    auto in = Input<float>({3}, "in");
    Model<float> m(in, layers::Dense(2, {.name = "d"})(layers::Dense(4, {.activation = "relu", .name = "hidden"})(in)),
                   "m");
    models::save_model(m, good.string());
  }
  auto fresh = [&](const std::string& name) {
    fs::path d = root / name;
    fs::remove_all(d);
    fs::copy(good, d);
    return d;
  };
  auto shard_of = [](const fs::path& d) {
    for (auto& e : fs::directory_iterator(d))
      if (e.path().extension() == ".bin") return e.path();
    FAIL("no shard");
    return fs::path();
  };
  auto edit_json = [&](const fs::path& d, auto&& f) {
    json j = json::parse(slurp(d / "model.json"));
    f(j);
    spit(d / "model.json", j.dump());
  };
  REQUIRE_NOTHROW(models::load_model(good.string()));

  SECTION("truncated shard") {
    auto d = fresh("truncated");
    auto s = slurp(shard_of(d));
    spit(shard_of(d), s.substr(0, s.size() - 6));
    auto e = error_of([&] { models::load_model(d.string()); });
    CHECK_THAT(e, Catch::Contains("truncated shard"));
    CHECK_THAT(e, Catch::Contains("d/bias"));
    // a shard of zero bytes too
    spit(shard_of(d), "");
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("truncated"));
  }
  SECTION("manifest/shard size mismatch") {
    auto d = fresh("longer");
    spit(shard_of(d), slurp(shard_of(d)) + "extra");
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("size mismatch"));
  }
  SECTION("unknown layer class") {
    auto d = fresh("unknown");
    edit_json(d, [](json& j) { j["modelTopology"]["config"]["layers"][1]["class_name"] = "FancyDense"; });
    auto e = error_of([&] { models::load_model(d.string()); });
    CHECK_THAT(e, Catch::Contains("Unknown layer") && Catch::Contains("FancyDense"));
  }
  SECTION("wrong weight shape") {
    auto d = fresh("shape");
    edit_json(d, [](json& j) { j["weightsManifest"][0]["weights"][0]["shape"] = {4, 3}; });  // hidden/kernel is [3, 4]
    auto e = error_of([&] { models::load_model(d.string()); });
    CHECK_THAT(e, Catch::Contains("hidden") && Catch::Contains("kernel") && Catch::Contains("(3, 4)") &&
                      Catch::Contains("(4, 3)"));
    // and a config that disagrees with the weights
    auto d2 = fresh("units");
    edit_json(d2, [](json& j) { j["modelTopology"]["config"]["layers"][2]["config"]["units"] = 3; });
    CHECK_THAT(error_of([&] { models::load_model(d2.string()); }),
               Catch::Contains("layer 'd'") && Catch::Contains("(4, 3)"));
  }
  SECTION("nonsense values") {
    auto d = fresh("nonsense");
    for (json shape : {json{-3, 4}, json{1000000000000000LL}, json{4611686018427387904LL}, json{"x"}}) {
      edit_json(d, [&](json& j) { j["weightsManifest"][0]["weights"][0]["shape"] = shape; });
      CHECK(error_of([&] { models::load_model(d.string()); }) != "<no keras::Error thrown>");
    }
    auto d2 = fresh("nonsense2");
    edit_json(d2, [](json& j) { j["modelTopology"]["config"]["output_layers"] = {{"nowhere", 0, 0}}; });
    CHECK_THAT(error_of([&] { models::load_model(d2.string()); }), Catch::Contains("nowhere"));
    edit_json(d2, [](json& j) { j["modelTopology"]["config"]["output_layers"] = {"nowhere", 0, 0}; });
    CHECK_THAT(error_of([&] { models::load_model(d2.string()); }), Catch::Contains("nowhere"));
    auto d3 = fresh("nonsense3");
    edit_json(d3, [](json& j) {
      j["modelTopology"]["config"]["layers"][1].erase("name");
      j["modelTopology"]["config"]["layers"][1]["config"].erase("name");
    });
    CHECK(error_of([&] { models::load_model(d3.string()); }) != "<no keras::Error thrown>");
    edit_json(d3, [](json& j) { j["modelTopology"]["config"]["layers"] = 7; });
    CHECK(error_of([&] { models::load_model(d3.string()); }) != "<no keras::Error thrown>");
    edit_json(d3, [](json& j) { j["modelTopology"] = {{"class_name", "Dense"}, {"config", {{"units", 2}}}}; });
    CHECK_THAT(error_of([&] { models::load_model(d3.string()); }), Catch::Contains("Dense"));
  }
  SECTION("missing weight, unused weight") {
    auto d = fresh("renamed");
    edit_json(d, [](json& j) { j["weightsManifest"][0]["weights"][0]["name"] = "other/kernel"; });
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("hidden/kernel"));
  }
  SECTION("missing files") {
    CHECK_THAT(error_of([&] { models::load_model((root / "nope").string()); }), Catch::Contains("does not exist"));
    auto d = fresh("noshard");
    fs::remove(shard_of(d));
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("no such file"));
  }
  SECTION("malformed JSON") {
    auto d = fresh("badjson");
    auto s = slurp(d / "model.json");
    spit(d / "model.json", s.substr(0, s.size() / 2));
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("not valid JSON"));
    spit(d / "model.json", "[1, 2]");
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("model.json"));
    spit(d / "model.json",
         "{\"modelTopology\": {\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"config\": {}}]}}, "
         "\"weightsManifest\": []}");
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("class_name"));
    spit(d / "model.json", "{\"modelTopology\": null, \"weightsManifest\": [{\"paths\": 3}]}");
    CHECK(error_of([&] { models::load_model(d.string()); }) != "<no keras::Error thrown>");
    spit(d / "model.json",
         "{\"modelTopology\": {\"class_name\": \"Sequential\", \"config\": {\"layers\": "
         "[{\"class_name\": \"Dense\", \"config\": {\"units\": \"many\", \"batch_input_shape\": [null, 3]}}]}},"
         " \"weightsManifest\": []}");
    CHECK_THAT(error_of([&] { models::load_model(d.string()); }), Catch::Contains("Dense"));
  }
}

TEST_CASE("save_model replaces a saved model crash-safely", "[io][save]") {
  fs::path dir = scratch("resave");
  auto in = Input<float>({3}, "in");
  auto d = std::make_shared<layers::Dense<float>>(2, layers::DenseOptions{.name = "d"});
  Model<float> m(in, (*d)(in), "m");
  auto x = random_input({4, 3}, 1);
  models::save_model(m, dir.string());
  auto first_shard = json::parse(slurp(dir / "model.json"))["weightsManifest"][0]["paths"][0].get<std::string>();
  auto p1 = m.predict(x);
  for (auto& v : d->variables()[0]->value) v += 1.0f;
  auto p2 = m.predict(x);
  models::save_model(m, dir.string());
  auto j = json::parse(slurp(dir / "model.json"));
  auto second_shard = j["weightsManifest"][0]["paths"][0].get<std::string>();
  // the new weights went to a new file; the old one was removed only after model.json was replaced
  CHECK(second_shard != first_shard);
  CHECK_FALSE(fs::exists(dir / first_shard));
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    ++files;
    CHECK(e.path().string().find(".tmp") == std::string::npos);
  }
  CHECK(files == 2);
  CHECK(bit_identical(models::load_model(dir.string())->predict(x), p2));
  // A crash after the shard was written but before model.json was replaced leaves a stray
  // shard: the folder still holds the complete previous model, and the next save cleans up.
  spit(dir / "group1-shard1of1.bin.tmp123", "partial");
  CHECK(bit_identical(models::load_model(dir.string())->predict(x), p2));
  models::save_model(m, dir.string());
  CHECK(bit_identical(models::load_model(dir.string())->predict(x), p2));
  (void)p1;
}

namespace {
/// The model the kill-during-save test writes: version k has every weight equal to k and
/// metadata {"version": k}, so a mix of two saves is visible.
std::shared_ptr<Model<float>> versioned_model() {
  auto in = Input<float>({128}, "in");
  auto h = layers::Dense<float>(256, {.name = "h"})(in);
  return std::make_shared<Model<float>>(in, layers::Dense<float>(64, {.name = "o"})(h), "versioned");
}
}  // namespace

// The writer child of the test below: saves versions 1, 2, 3, ... into $KERASCPP_SAVE_DIR until killed.
TEST_CASE("save child (run by the kill test)", "[.save_child]") {
  const char* dir = std::getenv("KERASCPP_SAVE_DIR");
  REQUIRE(dir);
  auto m = versioned_model();
  for (int k = 1;; ++k) {
    for (auto* v : m->variables()) v->value.setConstant(static_cast<float>(k));
    m->metadata = {{"version", k}};
    models::save_model(*m, dir);
  }
}

TEST_CASE("save_model killed with SIGKILL at random points leaves the old or the new model, never a mix",
          "[io][save][durable]") {
  fs::path dir = scratch("kill_save");
  std::mt19937 rng(std::random_device{}());
  int last_version = 0, changes = 0;
  for (int attempt = 0; attempt < 12; ++attempt) {
    // The folder is kept between attempts: each writer starts over a folder that the previous one
    // was killed in (stray temp files and orphan shards included).
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      setenv("KERASCPP_SAVE_DIR", dir.c_str(), 1);
      execl("/proc/self/exe", "test_io", "[.save_child]", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 6000 && !fs::exists(dir / "model.json"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 60000)(rng)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(fs::exists(dir / "model.json"));
    auto m = models::load_model<float>(dir.string());  // a complete model: loads without error
    REQUIRE(m->metadata.contains("version"));
    const int k = m->metadata["version"].get<int>();
    INFO("attempt " << attempt << ": model.json says version " << k);
    for (auto* v : m->variables()) {
      Index wrong = 0;
      for (Index i = 0; i < v->value.size(); ++i) wrong += v->value[i] != static_cast<float>(k);
      CHECK(wrong == 0);  // every weight from the same save as model.json
    }
    changes += k != last_version;
    last_version = k;
  }
  CHECK(changes >= 1);
  fs::remove_all(dir);
}

TEST_CASE("Files that claim absurd sizes are refused from their headers, naming the file and the limit",
          "[io][limits]") {
  fs::path root = scratch("limits");
  auto base_json = [&](const std::string& shape, const std::string& paths) {
    return std::string(
               R"({"format":"layers-model","modelTopology":{"class_name":"Sequential","config":{"name":"s","layers":[
      {"class_name":"InputLayer","config":{"batch_input_shape":[null,3],"name":"in"}},{"class_name":"Dense","config":{"units":2,"name":"d"}}]}},
      "weightsManifest":[{"paths":)") +
           paths + R"(,"weights":[{"name":"d/kernel","shape":)" + shape +
           R"(,"dtype":"float32"},{"name":"d/bias","shape":[2],"dtype":"float32"}]}]})";
  };
  SECTION("a weight of 10^12 elements") {
    spit(root / "model.json", base_json("[1000000,1000000]", R"(["w.bin"])"));
    spit(root / "w.bin", std::string(32, '\0'));
    auto e = error_of([&] { models::load_model(root.string()); });
    CHECK_THAT(e, Catch::Contains("model.json") && Catch::Contains("d/kernel") &&
                      Catch::Contains("(1000000, 1000000)") && Catch::Contains("max_weight_elements") &&
                      Catch::Contains(std::to_string(io::limits().max_weight_elements)));
  }
  SECTION("a shard of 2^40 bytes (sparse file: nothing is read)") {
    spit(root / "model.json", base_json("[3,2]", R"(["big.bin"])"));
    { std::ofstream f(root / "big.bin", std::ios::binary); }
    fs::resize_file(root / "big.bin", std::uintmax_t(1) << 40);
    auto e = error_of([&] { models::load_model(root.string()); });
    CHECK_THAT(e, Catch::Contains("big.bin") && Catch::Contains("1099511627776") && Catch::Contains("max_file_bytes"));
    fs::remove(root / "big.bin");
  }
  SECTION("a shard that is a device") {
    spit(root / "model.json", base_json("[3,2]", R"(["../../../../../../../../dev/zero"])"));
    CHECK_THAT(error_of([&] { models::load_model(root.string()); }),
               Catch::Contains("dev/zero") && Catch::Contains("not a regular file"));
    spit(root / "model.json", base_json("[3,2]", R"(["/dev/zero"])"));
    CHECK_THAT(error_of([&] { models::load_model(root.string()); }),
               Catch::Contains("/dev/zero") && Catch::Contains("relative"));
  }
  SECTION("a config asking for more parameters than the manifest holds is refused before allocating") {
    std::string j = base_json("[3,2]", R"(["w.bin"])");
    j.replace(j.find("\"units\":2"), 9, "\"units\":100000");
    j.replace(j.find("[null,3]"), 8, "[null,100000]");
    spit(root / "model.json", j);
    spit(root / "w.bin", std::string(32, '\0'));
    auto e = error_of([&] { models::load_model(root.string()); });
    CHECK_THAT(e, Catch::Contains("model.json") && Catch::Contains("'d' (Dense)") &&
                      Catch::Contains("(100000, 100000)") && Catch::Contains("8 weight elements the file provides"));
  }
  SECTION("a weight with more elements than the model expects names that weight") {
    spit(root / "model.json", base_json("[4,2]", R"(["w.bin"])"));  // the kernel is [3, 2]
    spit(root / "w.bin", std::string(40, '\0'));
    auto e = error_of([&] { models::load_model(root.string()); });
    CHECK_THAT(e, Catch::Contains("layer 'd' weight 'kernel' expects shape (3, 2), the file has (4, 2)"));
    CHECK_THAT(e, !Catch::Contains("truncated"));
  }
  SECTION("numbers out of range") {
    std::string j = base_json("[3,2]", R"(["w.bin"])");
    spit(root / "w.bin", std::string(32, '\0'));
    for (auto [from, to, expect] :
         {std::tuple<std::string, std::string, std::string>{"\"units\":2", "\"units\":1e400", "not valid JSON"},
          {"\"units\":2", "\"units\":1e300", "'units' must be an integer in [1, 2147483647], got 1e+300"},
          {"\"units\":2", "\"units\":-5", "'units' must be an integer in [1, 2147483647], got -5"},
          {"[null,3]", "[null,1e300]", "InputLayer 'in': 'batch_input_shape' must be an integer"},
          {"[null,3]", "[null,4294967296,4294967296]", "got 4294967296"},
          {"\"shape\":[3,2]", "\"shape\":[1e300,2]", "weight 'd/kernel': 'shape' must be an integer"}}) {
      std::string t = j;
      t.replace(t.find(from), from.size(), to);
      spit(root / "model.json", t);
      auto e = error_of([&] { models::load_model(root.string()); });
      INFO(to);
      CHECK_THAT(e, Catch::Contains(expect) && Catch::Contains("model.json"));
    }
  }
  SECTION("a model.json nested 300,000 levels deep") {
    spit(root / "model.json", "{\"modelTopology\":" + std::string(300000, '[') + std::string(300000, ']') + "}");
    CHECK_THAT(error_of([&] { models::load_model(root.string()); }),
               Catch::Contains("nested more than 100 levels") && Catch::Contains("max_json_depth"));
  }
  SECTION(".npy headers") {
    spit(root / "a.npy", std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12));
    CHECK_THAT(error_of([&] { io::load_npy<float>((root / "a.npy").string()); }),
               Catch::Contains("a.npy") && Catch::Contains("4294967295") && Catch::Contains("max_npy_header_bytes"));
    auto npy = [&](const std::string& shape) {
      std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
      h += std::string((64 - (10 + h.size() + 1) % 64) % 64, ' ') + "\n";
      return std::string("\x93NUMPY\x01\x00", 8) + char(h.size() & 255) + char(h.size() >> 8) + h +
             std::string(16, '\0');
    };
    spit(root / "b.npy", npy("(100000, 100000, 10)"));
    CHECK_THAT(
        error_of([&] { io::load_npy<float>((root / "b.npy").string()); }),
        Catch::Contains("b.npy") && Catch::Contains("max_npy_elements") && Catch::Contains("(100000, 100000, 10)"));
    spit(root / "b.npy", npy("(100000, 10000)"));
    CHECK_THAT(error_of([&] { io::load_npy<float>((root / "b.npy").string()); }),
               Catch::Contains("b.npy") && Catch::Contains("truncated .npy data") &&
                   Catch::Contains("expected 4000000000 bytes"));
    spit(root / "c.npy", npy("(4294967296, 4294967296)"));
    CHECK_THAT(error_of([&] { io::load_npy<float>((root / "c.npy").string()); }), Catch::Contains("max_npy_elements"));
    spit(root / "d.npy", npy("(abc,)"));
    CHECK_THAT(error_of([&] { io::load_npy<float>((root / "d.npy").string()); }), Catch::Contains("bad shape"));
    spit(root / "e.npy", npy("(99999999999999999999999,)"));
    CHECK_THAT(error_of([&] { io::load_npy<float>((root / "e.npy").string()); }), Catch::Contains("over 2^40"));
  }
  SECTION("empty input or output lists") {
    std::string k3 =
        R"({"format":"layers-model","modelTopology":{"class_name":"Functional","config":{"name":"k3","layers":[
{"class_name":"InputLayer","name":"in","config":{"batch_shape":[null,3],"name":"in"},"inbound_nodes":[]},
{"class_name":"Dense","name":"d","config":{"name":"d","units":2},"inbound_nodes":[{"args":[{"class_name":"__keras_tensor__","config":{"shape":[null,3],"keras_history":["in",0,0]}}],"kwargs":{}}]}],
"input_layers":[["in",0,0]],"output_layers":[]}},
"weightsManifest":[{"paths":["w.bin"],"weights":[{"name":"d/kernel","shape":[3,2],"dtype":"float32"},{"name":"d/bias","shape":[2],"dtype":"float32"}]}]})";
    spit(root / "w.bin", std::string(32, '\0'));
    spit(root / "model.json", k3);
    CHECK_THAT(error_of([&] { models::load_model(root.string()); }), Catch::Contains("'output_layers' is empty"));
    std::string h = k3;
    h.replace(h.find("\"keras_history\":[\"in\",0,0]"), 26, "\"keras_history\":[]");
    spit(root / "model.json", h);
    CHECK_THAT(error_of([&] { models::load_model(root.string()); }),
               Catch::Contains("layer 'd': malformed inbound node"));
  }
}
