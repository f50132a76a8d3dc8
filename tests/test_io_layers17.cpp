// The layers of issue 17 (non-recurrent) in model files: models that TF.js itself built and saved
// (the ctest fixture tfjs_models: layers17_seq1d, layers17_seq2d, layers17_fn, and the resize17
// references computed by TF.js's resize ops with half-pixel centers) load and predict what TF.js
// predicts; and models with every new layer saved by kerascpp reload bit for bit with their configs.
#include "model_files.hpp"

using namespace keras;
using namespace model_files;

namespace {

/// Non-trivial weights: trainable ~ N(0, 0.5), statistics (non-trainable) in [0.5, 1.5].
void randomize(Model<float>& m, std::uint64_t seed) {
  Random rng(seed);
  auto trainable = m.trainable_variables();
  for (auto* v : m.variables()) {
    const bool t = std::find(trainable.begin(), trainable.end(), v) != trainable.end();
    for (auto& e : v->value) e = static_cast<float>(t ? rng.normal(0, 0.5) : rng.uniform(0.5, 1.5));
  }
}

/// Saves m, reloads it: same predictions bit for bit, same layer configs and weights.
void check_round_trip(Model<float>& m, const Tensor<float>& x, const std::string& name) {
  auto p = m.predict(x, {.verbose = 0});
  fs::path dir = scratch(name);
  models::save_model(m, dir.string());
  auto back = models::load_model(dir.string());
  CHECK(back->class_name() == m.class_name());
  CHECK(back->count_params() == m.count_params());
  for (auto& l : m.layers()) {
    INFO("layer " << l->name());
    auto b = back->get_layer(l->name());
    REQUIRE(b);
    CHECK(b->class_name() == l->class_name());
    CHECK(b->get_config().dump() == l->get_config().dump());
  }
  CHECK(bit_identical(back->predict(x, {.verbose = 0}), p));
}
}  // namespace

TEST_CASE("TF.js-built models with the issue 17 layers load and predict what TF.js predicts", "[io][tfjs][layers17]") {
  if (!have_tfjs_model("layers17_fn")) return;
  for (std::string name : {"layers17_seq1d", "layers17_seq2d", "layers17_fn"}) {
    SECTION(name) {
      auto m = check_tfjs_model(name);  // and ours, saved with Keras's config keys, reload and load in TF.js
      CHECK(m->class_name() == (name == "layers17_fn" ? "Functional" : "Sequential"));
    }
  }
}

TEST_CASE("UpSampling2D bilinear and Resizing match TF's half-pixel resize (computed by TF.js)",
          "[io][tfjs][layers17]") {
  fs::path dir = tfjs_models() / "resize17";
  if (!fs::exists(dir / "X.npy")) {
    WARN("no TF.js fixture in " << dir.string() << ": skipped");
    return;
  }
  auto x = io::load_npy<float>((dir / "X.npy").string());
  auto check = [&](layers::Layer<float>&& l, const std::string& name) {
    auto y = io::load_npy<float>((dir / ("Y_" + name + ".npy")).string());
    const double d = max_abs_diff(l.call(x), y);
    INFO(name << ": max |kerascpp - TF| = " << d);
    CHECK(d <= 1e-6);
  };
  check(layers::UpSampling2D<float>(layers::Size2(2, 3), {.interpolation = "bilinear"}), "up_bilinear_2x3");
  check(layers::Resizing<float>(4, 9), "resize_bilinear_4x9");
  check(layers::Resizing<float>(8, 3, {.interpolation = "nearest"}), "resize_nearest_8x3");
  check(layers::Resizing<float>(3, 3, {.crop_to_aspect_ratio = true}), "resize_crop_bilinear_3x3");
}

TEST_CASE("Every issue 17 layer saves and reloads with its config and weights", "[io][save][layers17]") {
  set_random_seed(17);
  SECTION("images: SeparableConv2D, Conv2DTranspose, resampling, merges, normalizations, activations") {
    auto in = Input<float>({9, 8, 3}, "pixels");
    auto s = layers::SeparableConv2D(4, 3, {.padding = "same", .depth_multiplier = 2, .activation = "relu"})(in);
    auto t =
        layers::Conv2DTranspose(4, 3, {.strides = 2, .padding = "same", .output_padding = layers::Size2(0, 1)})(in);
    t = layers::Resizing(9, 8)(t);                                       // 17x16 -> 9x8
    auto u = layers::UpSampling2D(2, {.interpolation = "bilinear"})(s);  // 18x16
    u = layers::Resizing(9, 8, {.interpolation = "nearest", .crop_to_aspect_ratio = true})(u);
    auto m1 = layers::Subtract()({s, t});
    auto m2 = layers::Multiply()({s, u});
    auto m3 = layers::Average()({m1, m2});
    auto h = layers::Concatenate()({m3, layers::Maximum()({m1, m2}), layers::Minimum()({m1, m2, m3})});
    h = layers::Cropping2D(layers::Padding2D({1, 0}, {2, 1}))(h);  // 8x5x12
    h = layers::Normalization()(h);
    h = layers::LayerNormalization({.epsilon = 1e-2})(h);
    h = layers::PReLU({.shared_axes = {1}})(h);
    h = layers::ELU(0.5)(h);
    h = layers::LeakyReLU(0.1)(h);
    auto m = std::make_shared<Model<float>>(in, h, "images17");
    randomize(*m, 1);
    check_round_trip(*m, random_input({2, 9, 8, 3}, 2), "images17");
  }
  SECTION("sequences: Conv1D causal/same, the 1-D poolings, Normalization with given mean and variance") {
    auto in = Input<float>({10, 3}, "steps");
    auto h = layers::Conv1D(4, 3, {.padding = "causal", .dilation_rate = 2, .activation = "tanh"})(in);
    h = layers::Conv1D(4, 2, {.strides = 2, .padding = "same"})(h);  // 5 steps
    h = layers::MaxPooling1D(2, {.padding = "same"})(h);             // 3
    h = layers::AveragePooling1D(2, {.strides = 1})(h);              // 2
    h = layers::Normalization({.mean = {0.5}, .variance = {2.0}, .invert = true})(h);
    auto out = layers::Concatenate()({layers::GlobalAveragePooling1D()(h), layers::GlobalMaxPooling1D()(h)});
    auto m = std::make_shared<Model<float>>(in, out, "steps17");
    randomize(*m, 3);
    check_round_trip(*m, random_input({3, 10, 3}, 4), "steps17");
  }
}
