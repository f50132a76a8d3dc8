// The kerascpp command-line tool (tools/kerascpp.cpp): summary / predict / evaluate on a small
// image classifier trained and saved here, and a tiny PNG/JPEG folder written with stb_image_write;
// convert on a Keras 2 .h5 written with h5py; --help, --version and the exit codes (0 ok,
// 1 runtime error, 2 usage error).
// The tool is found through $KERASCPP_CLI (set by ctest) or <build>/tools/kerascpp.
#include <catch2/catch.hpp>
#include <keras/data/data.hpp>
#include <keras/io/npy.hpp>
#include <keras/io/tfjs.hpp>
#include <keras/version.hpp>
#include <nlohmann/json.hpp>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace keras;
namespace fs = std::filesystem;

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run run(const std::string& exe, const std::string& args, const fs::path& tmp) {
  fs::path o = tmp / "stdout.txt", e = tmp / "stderr.txt";
  std::string cmd = "'" + exe + "' " + args + " > '" + o.string() + "' 2> '" + e.string() + "'";
  int rc = std::system(cmd.c_str());
  Run r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, io::read_file(o.string()), io::read_file(e.string())};
  UNSCOPED_INFO("$ kerascpp " << args << "\n[exit " << r.code << "]\n" << r.out << r.err);
  return r;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> r;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) r.push_back(l);
  return r;
}

std::string q(const fs::path& p) {
  std::string r = "'";
  r += p.string();
  r += '\'';
  return r;
}

/// Writes `per_class` noisy images of one colour per class into dir/<class>/ (PNG, one JPEG).
void write_images(const fs::path& dir, int per_class, std::uint64_t seed) {
  const std::vector<std::pair<std::string, std::array<int, 3>>> classes = {
      {"blue", {30, 40, 220}}, {"green", {40, 200, 50}}, {"red", {220, 30, 40}}};
  Random rng(seed);
  for (auto& [name, rgb] : classes) {
    fs::create_directories(dir / name);
    for (int i = 0; i < per_class; ++i) {
      const int w = 24 + i, h = 20;
      std::vector<unsigned char> px(static_cast<std::size_t>(w * h * 3));
      for (int k = 0; k < w * h; ++k)
        for (int c = 0; c < 3; ++c)
          px[static_cast<std::size_t>(3 * k + c)] =
              static_cast<unsigned char>(std::clamp(rgb[c] + static_cast<int>(rng.normal(0, 25)), 0, 255));
      std::string f = (dir / name / (name + "_" + std::to_string(i))).string();
      if (i == 0)
        REQUIRE(stbi_write_jpg((f + ".jpg").c_str(), w, h, 3, px.data(), 95));
      else
        REQUIRE(stbi_write_png((f + ".png").c_str(), w, h, 3, px.data(), w * 3));
    }
  }
}

}  // namespace

TEST_CASE("kerascpp summary / predict / evaluate on a saved image classifier", "[cli]") {
  const char* env = std::getenv("KERASCPP_CLI");
  std::string exe = env && *env ? env : std::string(KERASCPP_BINARY_DIR) + "/tools/kerascpp";
  if (!fs::exists(exe)) {
    WARN("kerascpp tool not found at " << exe << " (build target kerascpp_cli): skipped");
    return;
  }
  fs::path tmp = fs::path(KERASCPP_BINARY_DIR) / "test_cli_tmp" / std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_images(tmp / "train", 6, 1);
  write_images(tmp / "val", 4, 2);

  // a small classifier trained on the folder, with its class names saved in the metadata
  set_random_seed(3);
  auto in = Input<float>({16, 16, 3}, "image");
  auto x = layers::Rescaling<float>(1.0 / 255, 0.0, {.name = "rescale"})(in);
  x = layers::Conv2D(4, 3, {.name = "conv"})(x);  // linear: the classes differ in mean colour
  x = layers::GlobalAveragePooling2D({.name = "gap"})(x);
  auto out = layers::Dense(3, {.activation = "softmax", .name = "probs"})(x);
  Model<float> m(in, out, "colours");
  utils::ImageDatasetOptions o{
      .label_mode = "categorical", .batch_size = 6, .image_size = {16, 16}, .seed = 1, .verbose = false};
  auto train = utils::image_dataset_from_directory<float>((tmp / "train").string(), o);
  m.compile(optimizers::Adam<float>({.learning_rate = 0.05}), losses::CategoricalCrossentropy<float>(), {"accuracy"});
  m.fit(train, {.epochs = 30, .verbose = 0});
  m.metadata = {{"class_names", train.class_names()}};
  fs::path model_dir = tmp / "model";
  models::save_model(m, model_dir.string());

  // what the tool should report, computed here
  o.shuffle = false;
  o.batch_size = 32;
  auto val = utils::image_dataset_from_directory<float>((tmp / "val").string(), o);
  Index n = 0, correct = 0;
  for (auto& b : val) {
    auto p = m.predict(b.x);
    for (Index i = 0; i < b.x.dim(0); ++i) {
      const float* pp = p.data() + 3 * i;
      const float* t = b.y.data() + 3 * i;
      correct += (std::max_element(pp, pp + 3) - pp) == (std::max_element(t, t + 3) - t);
      ++n;
    }
  }
  REQUIRE(n == 12);
  char expected[64];
  std::snprintf(expected, sizeof expected, "accuracy: %.4f", static_cast<double>(correct) / static_cast<double>(n));

  SECTION("summary") {
    auto r = run(exe, "summary " + q(model_dir / "model.json"), tmp);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("Model: \"colours\"") && Catch::Contains("probs (Dense)") &&
                          Catch::Contains("Total params: " + std::to_string(m.count_params())) &&
                          Catch::Contains("Classes (3): blue green red"));
  }
  SECTION("predict images") {
    fs::path red = tmp / "val" / "red" / "red_1.png", blue = tmp / "val" / "blue" / "blue_0.jpg";
    auto r = run(exe, "predict " + q(model_dir) + " " + q(red) + " " + q(blue) + " --top 2", tmp);
    REQUIRE(r.code == 0);
    auto ls = lines(r.out);
    REQUIRE(ls.size() == 6);
    CHECK(ls[0] == red.string());
    CHECK(ls[3] == blue.string());
    // the probabilities are the model's on the decoded, resized image
    auto img = data::decode_image(red.string());
    auto px = data::resize_image<float>(img, 16, 16);
    Tensor<float> xr({1, 16, 16, 3});
    std::copy(px.begin(), px.end(), xr.data());
    auto p = m.predict(xr);
    Index best = std::max_element(p.data(), p.data() + 3) - p.data();
    char line[64];
    std::snprintf(line, sizeof line, "  %-5s %.4f", train.class_names()[static_cast<std::size_t>(best)].c_str(),
                  p[best]);
    CHECK(ls[1] == line);
    CHECK(ls[1].rfind("  red", 0) == 0);
    CHECK(ls[4].rfind("  blue", 0) == 0);
  }
  SECTION("predict npy") {
    Tensor<float> xs({5, 16, 16, 3});
    Random rng(9);
    for (auto& v : xs) v = static_cast<float>(rng.uniform(0, 255));
    io::save_npy((tmp / "x.npy").string(), xs);
    auto r =
        run(exe, "predict " + q(model_dir) + " --input " + q(tmp / "x.npy") + " --output " + q(tmp / "y.npy"), tmp);
    REQUIRE(r.code == 0);
    auto y = io::load_npy<float>((tmp / "y.npy").string());
    auto ref = m.predict(xs);
    REQUIRE(y.shape() == ref.shape());
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == Approx(ref[i]).margin(1e-6));
  }
  SECTION("evaluate") {
    auto r = run(exe, "evaluate " + q(model_dir) + " " + q(tmp / "val"), tmp);
    REQUIRE(r.code == 0);
    auto ls = lines(r.out);
    REQUIRE(!ls.empty());
    CHECK(ls.back() == expected);
    CHECK(correct >= 10);  // solid colours: the model should have learned them
  }
  SECTION("model.json says which kerascpp wrote it, as TF.js writes \"TensorFlow.js tfjs-layers v4.22.0\"") {
    auto j = nlohmann::json::parse(io::read_file((model_dir / "model.json").string()));
    CHECK(j["generatedBy"] == std::string("kerascpp v") + KERASCPP_VERSION_STRING);
    CHECK(j["convertedBy"].is_null());
  }
  SECTION("--version, --help of the tool and of every subcommand: stdout, exit code 0") {
    auto r = run(exe, "--version", tmp);
    CHECK(r.code == 0);
    CHECK(r.out == std::string("kerascpp ") + KERASCPP_VERSION_STRING + "\n");
    r = run(exe, "--help", tmp);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("summary") && Catch::Contains("predict") && Catch::Contains("evaluate") &&
                          Catch::Contains("convert") && Catch::Contains("2 usage error"));
    for (std::string sub : {"summary", "predict", "evaluate", "convert"}) {
      r = run(exe, sub + " --help", tmp);
      CHECK(r.code == 0);
      CHECK_THAT(r.out, Catch::Contains("Usage: kerascpp " + sub));
      CHECK(r.err.empty());
    }
    r = run(exe, "predict --help", tmp);
    CHECK_THAT(r.out, Catch::Contains("--top") && Catch::Contains("--batch-size") && Catch::Contains("--input"));
    r = run(exe, "convert --help", tmp);
    CHECK_THAT(r.out, Catch::Contains("--quantize") && Catch::Contains("--shard-mb"));
  }
  SECTION("usage errors: one line naming the option and the value, exit code 2") {
    auto usage_error = [&](const std::string& args, const std::string& needle) {
      auto r = run(exe, args, tmp);
      CHECK(r.code == 2);
      CHECK(lines(r.err).size() == 1);
      CHECK_THAT(r.err, Catch::Contains(needle));
      CHECK(r.out.empty());
    };
    const std::string red = " " + q(tmp / "val" / "red" / "red_1.png");
    usage_error("frobnicate " + q(model_dir), "unknown command 'frobnicate'");
    usage_error("predict " + q(model_dir) + " --top 0" + red, "--top");
    usage_error("predict " + q(model_dir) + " --top abc" + red, "--top: needs a positive integer, got 'abc'");
    usage_error("predict " + q(model_dir) + " --top 5x" + red,
                "--top: needs a positive integer, got '5x'");  // was taken as 5
    usage_error("predict " + q(model_dir) + " --top=2.5" + red, "--top: needs a positive integer, got '2.5'");
    usage_error("predict " + q(model_dir) + " --batch-size -3" + red, "--batch-size");
    usage_error("evaluate " + q(model_dir) + " " + q(tmp / "val") + " --batch-size 1e3",
                "--batch-size: needs a positive integer, got '1e3'");
    usage_error("predict " + q(model_dir) + " --top", "--top");
    usage_error("predict " + q(model_dir) + " --frobnicate" + red, "--frobnicate");
    usage_error("predict " + q(model_dir) + red + " --output " + q(tmp / "o.npy"), "--output requires --input");
    usage_error("summary", "MODEL is required");
    usage_error("evaluate " + q(model_dir), "DIR is required");
    usage_error("summary " + q(model_dir) + " " + q(model_dir), "not expected");
    usage_error("convert " + q(tmp / "m.h5") + " " + q(tmp / "out") + " --quantize int8",
                "--quantize: int8 not in {float16,uint8,uint16}");
    usage_error("convert " + q(tmp / "m.h5") + " " + q(tmp / "out") + " --shard-mb 0",
                "--shard-mb: needs a positive number");
    auto r = run(exe, "", tmp);  // no subcommand: the help on stderr
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("Usage: kerascpp"));
  }
  SECTION("errors: one line naming the problem, exit code 1") {
    auto one_line_error = [&](const std::string& args, const std::string& needle) {
      auto r = run(exe, args, tmp);
      CHECK(r.code == 1);
      CHECK(lines(r.err).size() == 1);
      CHECK_THAT(r.err, Catch::Contains(needle));
    };
    one_line_error("summary " + q(tmp / "no_such_model"), "does not exist");
    one_line_error("predict " + q(model_dir) + " " + q(tmp / "x_missing.png"), "x_missing.png");
    io::save_npy((tmp / "bad.npy").string(), Tensor<float>({2, 8, 8, 3}));
    one_line_error("predict " + q(model_dir) + " --input " + q(tmp / "bad.npy") + " --output " + q(tmp / "o.npy"),
                   "(2, 8, 8, 3)");
    fs::create_directories(tmp / "two" / "blue");
    fs::create_directories(tmp / "two" / "red");
    one_line_error("evaluate " + q(model_dir) + " " + q(tmp / "two"), "class_names");
    fs::create_directories(tmp / "empty");  // an empty folder: says so, not a class-name mismatch
    one_line_error("evaluate " + q(model_dir) + " " + q(tmp / "empty"), "has no class sub-folders");
    // a truncated shard
    fs::copy(model_dir, tmp / "broken");
    for (auto& e : fs::directory_iterator(tmp / "broken"))
      if (e.path().extension() == ".bin") fs::resize_file(e.path(), fs::file_size(e.path()) - 3);
    one_line_error("evaluate " + q(tmp / "broken") + " " + q(tmp / "val"), "truncated shard");
    one_line_error("convert " + q(tmp / "no_such.h5") + " " + q(tmp / "converted"), "no_such.h5");
  }
}

TEST_CASE("kerascpp convert: a Keras 2 .h5 (written with h5py) to a model that predicts its weights' output", "[cli]") {
  const char* env = std::getenv("KERASCPP_CLI");
  std::string exe = env && *env ? env : std::string(KERASCPP_BINARY_DIR) + "/tools/kerascpp";
  if (!fs::exists(exe)) {
    WARN("kerascpp tool not found at " << exe << " (build target kerascpp_cli): skipped");
    return;
  }
  fs::path tmp = fs::path(KERASCPP_BINARY_DIR) / "test_cli_tmp" / (std::to_string(::getpid()) + "_convert");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  // Keras 2's HDF5 layout (model.save): model_config + model_weights/<layer>/<layer>/<weight>:0.
  // The Dense kernel is k[i][j] = (i * 2 + j) / 10 - 0.3, the bias (0.5, -0.25).
  const fs::path script = tmp / "make_h5.py", h5 = tmp / "dense.h5";
  {
    std::ofstream py(script);
    py << R"(import json, sys
import h5py, numpy as np
cfg = {"class_name": "Sequential", "config": {"name": "tiny", "layers": [
    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "x"}},
    {"class_name": "Dense", "config": {"name": "dense", "units": 2, "activation": "linear", "use_bias": True}}]}}
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["model_config"] = json.dumps(cfg).encode()
    f.attrs["keras_version"] = b"2.13.1"
    f.attrs["backend"] = b"tensorflow"
    mw = f.create_group("model_weights")
    mw.attrs["layer_names"] = np.array([b"dense"])
    g = mw.create_group("dense")
    g.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
    g.create_dataset("dense/kernel:0", data=(np.arange(8, dtype=np.float32).reshape(4, 2) / 10 - 0.3))
    g.create_dataset("dense/bias:0", data=np.array([0.5, -0.25], np.float32))
)";
  }
  const std::string python = "/usr/bin/python3";  // Debian python3-h5py (tools/deps.sh)
  REQUIRE(std::system(("'" + python + "' " + q(script) + " " + q(h5)).c_str()) == 0);

  auto r = run(exe, "convert " + q(h5) + " " + q(tmp / "model"), tmp);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("model.json"));
  auto m = models::load_model<float>((tmp / "model").string());
  CHECK(m->name() == "tiny");
  Tensor<float> x({2, 4});
  for (Index i = 0; i < 8; ++i) x[i] = static_cast<float>(i % 4) - 1.5f;
  auto y = m->predict(x);
  REQUIRE(y.shape() == Shape{2, 2});
  for (Index n = 0; n < 2; ++n)
    for (Index j = 0; j < 2; ++j) {
      double want = j == 0 ? 0.5 : -0.25;
      for (Index i = 0; i < 4; ++i)
        want += static_cast<double>(x[n * 4 + i]) * ((static_cast<double>(i * 2 + j)) / 10 - 0.3);
      CHECK(y[n * 2 + j] == Approx(want).margin(1e-6));
    }
  // the converter's options pass through: float16 weights, and --quiet prints nothing
  r = run(exe, "convert " + q(h5) + " " + q(tmp / "model16") + " --quantize float16 --quiet", tmp);
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());
  auto j = nlohmann::json::parse(io::read_file((tmp / "model16" / "model.json").string()));
  CHECK(j["weightsManifest"][0]["weights"][0]["quantization"]["dtype"] == "float16");
  // a file that is not HDF5: the converter's one-line error, exit code 1
  std::ofstream((tmp / "not.h5")) << "not hdf5";
  r = run(exe, "convert " + q(tmp / "not.h5") + " " + q(tmp / "bad"), tmp);
  CHECK(r.code == 1);
  CHECK(lines(r.err).size() == 1);
  CHECK_THAT(r.err, Catch::Contains("not.h5"));
}
