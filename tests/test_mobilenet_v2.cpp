// applications::MobileNetV2 with Keras's ImageNet weights (converted by tools/keras_h5_to_tfjs.py)
// against the independent NumPy reference tests/python/mobilenet_v2_ref.py on real flower photos.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/io/npy.hpp>
#include <unistd.h>

using namespace keras;
namespace fs = std::filesystem;

namespace {

const std::string kSource = KERASCPP_SOURCE_DIR;
const std::string kShared = KERASCPP_SHARED_DIR;
const std::string kBinary = KERASCPP_BINARY_DIR;
const std::string kPython = "/usr/bin/python3";

fs::path weights_h5() {
  fs::path dir = fs::path(kShared) / "models" / "mobilenet_v2";
  if (fs::is_directory(dir))
    for (auto& e : fs::directory_iterator(dir)) {
      auto f = e.path().filename().string();
      if (f.find("1.0_224_no_top") != std::string::npos && e.path().extension() == ".h5") return e.path();
    }
  return {};
}

void run(const std::string& cmd, const fs::path& log) {
  std::string full = cmd + " > '" + log.string() + "' 2>&1";
  int rc = std::system(full.c_str());
  INFO(cmd << "\n" << io::read_file(log.string()));
  REQUIRE(rc == 0);
}

double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::abs(a[i] - b[i])));
  return m;
}
double max_abs(const Tensor<float>& a) {
  double m = 0;
  for (auto v : a) m = std::max(m, static_cast<double>(std::abs(v)));
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("MobileNetV2 has tf.keras's layers and parameter counts", "[applications][mobilenet_v2]") {
  auto top = applications::MobileNetV2<float>({.input_shape = {224, 224, 3}});
  CHECK(top->count_params() == 3538984);
  CHECK(top->name() == "mobilenetv2_1.00_224");
  CHECK(top->output_shape() == Shape{-1, 1000});
  CHECK(top->get_layer("predictions")->class_name() == "Dense");
  CHECK(top->layers().size() == 156);

  auto base = applications::MobileNetV2<float>({.input_shape = {192, 192, 3}, .include_top = false});
  CHECK(base->count_params() == 2257984);
  CHECK(base->output_shape() == Shape{-1, 6, 6, 1280});
  CHECK(base->layers().size() == 154);
  for (const char* n :
       {"input_1", "Conv1", "bn_Conv1", "Conv1_relu", "expanded_conv_depthwise", "expanded_conv_project_BN",
        "block_1_pad", "block_1_depthwise", "block_2_add", "block_16_project_BN", "Conv_1", "Conv_1_bn", "out_relu"})
    CHECK_NOTHROW(base->get_layer(n));
  CHECK(base->get_layer("block_1_pad")->output_shape() == Shape{-1, 97, 97, 96});
  CHECK(base->get_layer("block_1_depthwise")->output_shape() == Shape{-1, 48, 48, 96});
  CHECK_THROWS_AS(base->get_layer("block_1_add"), ValueError);  // stride 2: no residual

  auto half = applications::MobileNetV2<float>(
      {.input_shape = {96, 96, 3}, .alpha = 0.5, .include_top = false, .pooling = "max"});
  CHECK(half->count_params() == 706224);
  CHECK(half->output_shape() == Shape{-1, 1280});

  Tensor<float> px({1, 1, 1, 3});
  px[0] = 0;
  px[1] = 127.5f;
  px[2] = 255;
  auto pp = applications::mobilenet_v2::preprocess_input(px);
  CHECK(pp[0] == -1.0f);
  CHECK(pp[1] == 0.0f);
  CHECK(pp[2] == 1.0f);
}

TEST_CASE("MobileNetV2 with Keras's ImageNet weights matches the NumPy reference on flower photos",
          "[applications][mobilenet_v2][reference]") {
  fs::path h5 = weights_h5();
  if (h5.empty() || !fs::exists(kPython)) {
    WARN("no MobileNetV2 weights in " << kShared << "/models/mobilenet_v2 or no " << kPython << ": skipped");
    return;
  }
  auto t_all = std::chrono::steady_clock::now();
  fs::path tmp = fs::path(kBinary) / "test_mobilenet_v2_tmp" / std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string py = kPython + " ";

  // 1. convert the Keras .h5 (float32, and float16-quantized)
  run(py + "'" + kSource + "/tools/keras_h5_to_tfjs.py' '" + h5.string() + "' '" + (tmp / "weights").string() + "'",
      tmp / "convert.log");
  run(py + "'" + kSource + "/tools/keras_h5_to_tfjs.py' '" + h5.string() + "' '" + (tmp / "weights_f16").string() +
          "' --quantize float16",
      tmp / "convert16.log");
  // 2. five photos (one per class), 192x192, [0, 255]; preprocess in C++
  run(py + "'" + kSource + "/tests/python/make_flower_batch.py' '" + (tmp / "flowers.npy").string() +
          "' --per-class 1 --size 192 --data '" + kShared + "/data/flower_photos'",
      tmp / "flowers.log");
  auto raw = io::load_npy<float>((tmp / "flowers.npy").string());
  REQUIRE(raw.shape() == Shape{5, 192, 192, 3});
  auto x = applications::mobilenet_v2::preprocess_input(raw);
  CHECK(x.array().minCoeff() >= -1.0f);
  CHECK(x.array().maxCoeff() <= 1.0f);
  io::save_npy((tmp / "x.npy").string(), x);
  // 3. the NumPy reference
  auto t_ref = std::chrono::steady_clock::now();
  for (const char* pooling : {"avg", "none"})
    run(py + "'" + kSource + "/tests/python/mobilenet_v2_ref.py' --weights '" + (tmp / "weights").string() +
            "' --input '" + (tmp / "x.npy").string() + "' --output '" +
            (tmp / ("ref_" + std::string(pooling) + ".npy")).string() + "' --pooling " + pooling,
        tmp / "ref.log");
  double ref_secs = seconds_since(t_ref);

  // 4. kerascpp
  auto t_cpp = std::chrono::steady_clock::now();
  for (std::string pooling : {"avg", ""}) {
    auto m = applications::MobileNetV2<float>({.input_shape = {192, 192, 3},
                                               .include_top = false,
                                               .weights = (tmp / "weights").string(),
                                               .pooling = pooling});
    CHECK(m->count_params() == 2257984);
    auto y = m->predict(x);
    auto ref = io::load_npy<float>((tmp / (pooling.empty() ? "ref_none.npy" : "ref_avg.npy")).string());
    double d = max_abs_diff(y, ref);
    std::printf("MobileNetV2 192x192 pooling=%-4s features %s: max |kerascpp - NumPy| = %.3g (max |feature| %.3g)\n",
                pooling.empty() ? "none" : pooling.c_str(), shape_str(y.shape()).c_str(), d, max_abs(ref));
    INFO("pooling '" << pooling << "': max abs diff " << d);
    CHECK(d <= 1e-4);
    if (pooling == "avg") {
      // float16-quantized weights load (dequantized) and give nearly the same features
      auto m16 = applications::MobileNetV2<float>({.input_shape = {192, 192, 3},
                                                   .include_top = false,
                                                   .weights = (tmp / "weights_f16").string(),
                                                   .pooling = "avg"});
      double d16 = max_abs_diff(m16->predict(x), ref);
      std::printf("  with float16-quantized weights: max abs diff %.3g\n", d16);
      CHECK(d16 <= 0.05 * max_abs(ref));
    }
  }
  double cpp_secs = seconds_since(t_cpp);

  // 5. the full tf.keras model config (class "Functional", wrapped in "model_config" as the
  // converter writes it, tf.keras 2.x layer configs) builds the same network through load_model
  fs::copy(tmp / "weights", tmp / "full");
  run(py + "'" + kSource + "/tests/python/mobilenet_v2_topology.py' --size 192 --pooling none --merge '" +
          (tmp / "full").string() + "'",
      tmp / "topology.log");
  {
    auto m = models::load_model((tmp / "full").string());
    CHECK(m->class_name() == "Functional");
    CHECK(m->count_params() == 2257984);
    CHECK(m->layers().size() == 154);
    double d = max_abs_diff(m->predict(x), io::load_npy<float>((tmp / "ref_none.npy").string()));
    std::printf("MobileNetV2 from the tf.keras model config via load_model: max abs diff %.3g\n", d);
    CHECK(d <= 1e-4);
  }

  // 6. weights for another architecture are refused with the layer, weight and both shapes
  try {
    applications::MobileNetV2<float>(
        {.input_shape = {192, 192, 3}, .alpha = 0.5, .include_top = false, .weights = (tmp / "weights").string()});
    FAIL("alpha 0.5 loaded alpha 1.0 weights");
  } catch (const ShapeError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("Conv1") && Catch::Contains("kernel") &&
                                          Catch::Contains("(3, 3, 3, 16)") && Catch::Contains("(3, 3, 3, 32)"));
  }
  std::printf("MobileNetV2 reference test: NumPy %.1f s, kerascpp %.1f s, total %.1f s\n", ref_secs, cpp_secs,
              seconds_since(t_all));
  fs::remove_all(tmp);
}
