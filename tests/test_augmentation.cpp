// The random image-augmentation layers (RandomFlip, RandomRotation, RandomZoom, RandomTranslation)
// and fit()'s cache-aware augmentation: training on features cached once per RandomFlip outcome
// is the same computation as uncached training; the cache cuts inside a partly unfrozen nested
// model.
#include <catch2/catch.hpp>
#include <keras/all.hpp>

#include "capture_stdout.hpp"
#include <keras/testing/layer_check.hpp>

using namespace keras;

namespace {

/// An image [n, h, w, c] with distinct values: v = 1000 i + 100 y + 10 x + k.
Tensor<double> numbered(Index n, Index h, Index w, Index c) {
  Tensor<double> t({n, h, w, c});
  for (Index i = 0; i < n; ++i)
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x)
        for (Index k = 0; k < c; ++k) t.at({i, y, x, k}) = 1000.0 * i + 100.0 * y + 10.0 * x + k;
  return t;
}

double dot(const Tensor<double>& a, const Tensor<double>& b) {
  double s = 0;
  for (Index i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// <layer(x), g> == <x, layer'(g)>: the backward of a layer that is linear in its input for the
/// transforms it drew is exactly the transpose of its forward (checked in double).
void require_adjoint(layers::Layer<double>& layer, Index n, Index h, Index w, Index c) {
  Random rng(3);
  Tensor<double> x({n, h, w, c}), g({n, h, w, c}), y, dx;
  for (auto& v : x) v = rng.uniform(-1, 1);
  for (auto& v : g) v = rng.uniform(-1, 1);
  layer.build(std::vector<Shape>{Shape{-1, h, w, c}});
  layer.forward({&x}, y, true);
  layer.backward({&x}, y, g, {&dx});
  INFO(layer.class_name() << ": <Ax, g> = " << dot(y, g) << ", <x, A'g> = " << dot(x, dx));
  REQUIRE(std::abs(dot(y, g) - dot(x, dx)) <= 1e-12 * std::max(1.0, std::abs(dot(y, g))));
}

}  // namespace

TEST_CASE("RandomFlip flips each sample left-right with probability 1/2, only in training", "[augmentation][flip]") {
  Tensor<double> x = numbered(64, 3, 4, 2), y;
  layers::RandomFlip<double> flip("horizontal", {.seed = 5});
  flip.forward({&x}, y, false);
  CHECK(y.shape() == x.shape());
  CHECK(std::equal(y.begin(), y.end(), x.begin()));  // inference: the identity
  flip.forward({&x}, y, true);
  int flipped = 0;
  for (Index i = 0; i < 64; ++i) {
    const bool same = y.at({i, 1, 0, 1}) == x.at({i, 1, 0, 1});
    for (Index r = 0; r < 3; ++r)
      for (Index col = 0; col < 4; ++col)
        for (Index k = 0; k < 2; ++k) CHECK(y.at({i, r, col, k}) == x.at({i, r, same ? col : 3 - col, k}));
    flipped += same ? 0 : 1;
  }
  CHECK(flipped > 16);  // ~32 of 64 (binomial: below 17 has probability < 1e-4)
  CHECK(flipped < 48);
  // the same seed draws the same flips; another seed other flips
  layers::RandomFlip<double> same("horizontal", {.seed = 5}), other("horizontal", {.seed = 6});
  Tensor<double> y2, y3;
  same.forward({&x}, y2, true);
  other.forward({&x}, y3, true);
  CHECK(std::equal(y.begin(), y.end(), y2.begin()));
  CHECK(!std::equal(y.begin(), y.end(), y3.begin()));
}

TEST_CASE("RandomFlip's modes and outcomes", "[augmentation][flip]") {
  Tensor<double> x = numbered(1, 3, 2, 1), y;
  layers::RandomFlip<double> both("horizontal_and_vertical", {.seed = 1});
  CHECK(both.num_outcomes() == 4);
  both.set_inference_outcome(3);  // left-right and top-bottom: a 180 degree rotation
  both.forward({&x}, y, false);
  for (Index r = 0; r < 3; ++r)
    for (Index c = 0; c < 2; ++c) CHECK(y.at({0, r, c, 0}) == x.at({0, 2 - r, 1 - c, 0}));
  both.set_inference_outcome(0);
  layers::RandomFlip<double> vertical("vertical", {.seed = 1});
  CHECK(vertical.num_outcomes() == 2);
  vertical.set_inference_outcome(1);
  vertical.forward({&x}, y, false);
  for (Index r = 0; r < 3; ++r) CHECK(y.at({0, r, 0, 0}) == x.at({0, 2 - r, 0, 0}));
  CHECK_THROWS_WITH(layers::RandomFlip<double>("diagonal"), Catch::Contains("mode must be 'horizontal'"));
  // draw_outcomes advances the stream as forward(training) does: the next forward matches
  layers::RandomFlip<double> a("horizontal_and_vertical", {.seed = 9}), b("horizontal_and_vertical", {.seed = 9});
  Tensor<double> xs = numbered(40, 3, 2, 1), ya, yb;
  std::vector<int> outcomes;
  a.draw_outcomes(40, outcomes);
  b.forward({&xs}, yb, true);  // b's first draw = a's outcomes
  for (Index i = 0; i < 40; ++i) {
    Tensor<double> one = numbered(1, 3, 2, 1), out;
    for (Index k = 0; k < one.size(); ++k) one[k] = xs[i * one.size() + k];
    layers::RandomFlip<double> f("horizontal_and_vertical", {.seed = 1});
    f.set_inference_outcome(outcomes[static_cast<std::size_t>(i)]);
    f.forward({&one}, out, false);
    for (Index k = 0; k < one.size(); ++k) CHECK(out[k] == yb[i * one.size() + k]);
  }
  a.forward({&xs}, ya, true);
  b.forward({&xs}, yb, true);
  CHECK(std::equal(ya.begin(), ya.end(), yb.begin()));
}

TEST_CASE("RandomRotation, RandomZoom and RandomTranslation follow Keras's transforms", "[augmentation][affine]") {
  const Index n = 5;
  Tensor<double> x = numbered(1, n, n, 1), y;
  SECTION("a quarter turn counter-clockwise (factor 0.25) is numpy's rot90") {
    layers::RandomRotation<double> r(layers::FactorRange{0.25, 0.25}, {.interpolation = "nearest", .seed = 1});
    r.forward({&x}, y, true);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < n; ++j) CHECK(y.at({0, i, j, 0}) == Approx(x.at({0, j, n - 1 - i, 0})));
  }
  SECTION("zooming in 2x about the centre maps row y to row y/2 + 1 (bilinear is exact on a ramp)") {
    layers::RandomZoom<double> z(layers::FactorRange{-0.5, -0.5}, std::nullopt, {.seed = 1});
    z.forward({&x}, y, true);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < n; ++j) CHECK(y.at({0, i, j, 0}) == Approx(100.0 * (0.5 * i + 1) + 10.0 * (0.5 * j + 1)));
  }
  SECTION("a translation down by 2/5 of the height, with each fill mode") {
    auto shifted = [&](const std::string& fill) {
      layers::RandomTranslation<double> t(layers::FactorRange{0.4, 0.4}, layers::FactorRange{0, 0},
                                          {.fill_mode = fill, .seed = 1, .fill_value = -7});
      t.forward({&x}, y, true);
      std::vector<double> col;
      for (Index i = 0; i < n; ++i) col.push_back(y.at({0, i, 0, 0}) / 100.0);  // the source row of column 0
      return col;
    };
    CHECK(shifted("reflect") == std::vector<double>{1, 0, 0, 1, 2});  // (d c b a | a b c d)
    CHECK(shifted("nearest") == std::vector<double>{0, 0, 0, 1, 2});
    CHECK(shifted("wrap") == std::vector<double>{3, 4, 0, 1, 2});
    CHECK(shifted("constant") == std::vector<double>{-0.07, -0.07, 0, 1, 2});
  }
  SECTION("inference is the identity") {
    layers::RandomRotation<double> r(0.2, {.seed = 1});
    r.forward({&x}, y, false);
    CHECK(std::equal(y.begin(), y.end(), x.begin()));
  }
  CHECK_THROWS_WITH(layers::RandomRotation<double>(0.1, {.fill_mode = "mirror"}),
                    Catch::Contains("unknown fill_mode 'mirror'"));
  CHECK_THROWS_WITH(layers::RandomZoom<double>(layers::FactorRange{0.3, 0.1}, std::nullopt),
                    Catch::Contains("height_factor must be a range"));
}

TEST_CASE("The augmentation layers' backward is the transpose of their forward (double)", "[augmentation][gradient]") {
  layers::RandomFlip<double> flip("horizontal_and_vertical", {.seed = 2});
  require_adjoint(flip, 6, 5, 4, 3);
  for (std::string fill : {"reflect", "wrap", "constant", "nearest"})
    for (std::string interp : {"bilinear", "nearest"}) {
      layers::RandomTransformOptions o{.fill_mode = fill, .interpolation = interp, .seed = 4};
      layers::RandomRotation<double> r(0.3, o);
      layers::RandomZoom<double> z(layers::FactorRange{-0.4, 0.6}, layers::FactorRange{-0.2, 0.3}, o);
      layers::RandomTranslation<double> t(0.3, 0.4, o);
      require_adjoint(r, 3, 7, 6, 2);
      require_adjoint(z, 3, 7, 6, 2);
      require_adjoint(t, 3, 7, 6, 2);
    }
  // and the layer checker's inference, config and thread checks (identity in inference)
  Random rng(1);
  Tensor<double> x({2, 4, 5, 3});
  for (auto& v : x) v = rng.uniform(-1, 1);
  layers::RandomFlip<double> f2("horizontal", {.seed = 1});
  layers::RandomRotation<double> r2(0.1, {.seed = 1});
  layers::RandomZoom<double> z2(0.1, std::nullopt, {.seed = 1});
  layers::RandomTranslation<double> t2(0.1, 0.2, {.seed = 1});
  for (layers::Layer<double>* l : std::vector<layers::Layer<double>*>{&f2, &r2, &z2, &t2})
    testing::require_layer_ok(*l, {x});
}

TEST_CASE("The augmentation layers save and load with Keras's config keys", "[augmentation][io]") {
  auto in = Input<float>({6, 6, 3});
  auto x = layers::RandomFlip<float>("horizontal", {.seed = 11, .name = "flip"})(in);
  x = layers::RandomRotation<float>(0.1, {.fill_mode = "nearest", .seed = 12, .name = "rot"})(x);
  x = layers::RandomZoom<float>(layers::FactorRange{-0.2, 0.1}, layers::FactorRange{-0.1, 0.1},
                                {.interpolation = "nearest", .seed = 13})(x);
  x = layers::RandomTranslation<float>(0.1, 0.2, {.fill_mode = "constant", .fill_value = 0.5})(x);
  x = layers::GlobalAveragePooling2D()(x);
  x = layers::Dense(2, {.activation = "softmax", .seed = 1})(x);
  Model<float> m(in, x, "augmented");
  const auto dir = std::filesystem::temp_directory_path() / "kerascpp_test_augmentation_model";
  std::filesystem::remove_all(dir);
  io::save_model(m, dir.string());
  auto back = io::load_model<float>(dir.string());
  CHECK(back->get_config() == m.get_config());
  auto cfg = back->get_layer("flip")->get_config();
  CHECK(cfg["mode"] == "horizontal");
  CHECK(cfg["seed"] == 11);
  auto rot = back->get_layer("rot")->get_config();
  CHECK(rot["factor"] == json::array({-0.1, 0.1}));
  CHECK(rot["fill_mode"] == "nearest");
  // a Keras config with factor as one number and data_format loads
  json keras_cfg = {
      {"name", "rr"},      {"factor", 0.2},     {"fill_mode", "reflect"},         {"interpolation", "bilinear"},
      {"seed", nullptr},   {"fill_value", 0.0}, {"data_format", "channels_last"}, {"trainable", true},
      {"dtype", "float32"}};
  auto rr = layers::registry<float>().create("RandomRotation", keras_cfg);
  CHECK(rr->get_config()["factor"] == json::array({-0.2, 0.2}));
  keras_cfg["data_format"] = "channels_first";
  CHECK_THROWS_WITH(layers::registry<float>().create("RandomRotation", keras_cfg), Catch::Contains("channels_last"));
  // inference predictions are those of the model without the random layers
  Tensor<float> xs({3, 6, 6, 3});
  Random rng(2);
  for (auto& v : xs) v = static_cast<float>(rng.uniform());
  Tensor<float> p1 = m.predict(xs), p2 = back->predict(xs);
  for (Index i = 0; i < p1.size(); ++i) CHECK(p1[i] == Approx(p2[i]).margin(1e-6));
  std::filesystem::remove_all(dir);
}

namespace {
/// [RandomFlip] -> a frozen conv part -> a trainable head; the conv kernel is asymmetric, so a
/// mirrored image gives other features.
std::shared_ptr<Model<float>> flip_model(std::uint64_t seed, const std::string& mode) {
  set_random_seed(seed);
  auto in = Input<float>({8, 8, 1});
  auto x = layers::RandomFlip<float>(mode, {.seed = 21})(in);
  x = layers::Conv2D(6, 3, {.padding = "same", .name = "frozen_conv"})(x);
  x = layers::ReLU()(x);
  x = layers::Conv2D(4, 3, {.strides = {2, 2}, .name = "trainable_conv"})(x);
  x = layers::GlobalAveragePooling2D()(x);
  x = layers::Dense(4, {.activation = "softmax", .seed = 9})(x);
  auto m = std::make_shared<Model<float>>(in, x, "flip_model");
  m->get_layer("frozen_conv")->set_trainable(false);
  return m;
}

/// Images whose label depends on which side a bright bar is on, plus noise.
void bar_images(Index n, Tensor<float>& x, Tensor<float>& y) {
  Random rng(4);
  x.resize({n, 8, 8, 1});
  y.resize({n, 4});
  y.setZero();
  for (Index i = 0; i < n; ++i) {
    const Index q = static_cast<Index>(rng.index(4));
    for (Index h = 0; h < 8; ++h)
      for (Index w = 0; w < 8; ++w)
        x.at({i, h, w, 0}) = static_cast<float>((w == 2 * q ? 1.0 : 0.0) + 0.1 * h + rng.normal(0, 0.2));
    y.at({i, q}) = 1;
  }
}

}  // namespace

TEST_CASE("Training on features cached per RandomFlip outcome is uncached training with RandomFlip",
          "[augmentation][cache]") {
  Tensor<float> x, y;
  bar_images(160, x, y);
  for (std::string mode : {"horizontal", "horizontal_and_vertical"}) {
    auto run = [&](bool cache, std::string* log) {
      auto m = flip_model(3, mode);
      m->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>(),
                 {"accuracy"});
      FitOptions<float> o{
          .epochs = 4, .batch_size = 16, .validation_split = 0.25, .seed = 7, .verbose = 0, .cache_frozen = cache};
      if (!log) return m->fit(x, y, o);
      o.verbose = 2;
      History h;
      *log = capture_stdout([&] { h = m->fit(x, y, o); });
      return h;
    };
    std::string log;
    History cached = run(true, &log), uncached = run(false, nullptr);
    INFO(mode << ": " << log);
    CHECK(log.find("Cached the outputs of the frozen layers up to 're_lu") != std::string::npos);
    CHECK(log.find(std::string("each of the ") + (mode == "horizontal" ? "2" : "4") + " outcomes of RandomFlip") !=
          std::string::npos);
    for (std::string k : {"loss", "accuracy", "val_loss", "val_accuracy"})
      for (int e = 0; e < 4; ++e) {
        INFO(k << " epoch " << e << ": cached " << cached[k][e] << ", uncached " << uncached[k][e]);
        CHECK(std::abs(cached[k][e] - uncached[k][e]) <= 1e-5 * std::max(1.0, std::abs(uncached[k][e])));
      }
  }
  // the flips matter: without them (another model, no RandomFlip) the losses differ
  set_random_seed(3);
  auto in = Input<float>({8, 8, 1});
  auto x2 = layers::Conv2D(6, 3, {.padding = "same", .name = "frozen_conv"})(in);
  x2 = layers::ReLU()(x2);
  x2 = layers::Conv2D(4, 3, {.strides = {2, 2}, .name = "trainable_conv"})(x2);
  x2 = layers::GlobalAveragePooling2D()(x2);
  x2 = layers::Dense(4, {.activation = "softmax", .seed = 9})(x2);
  Model<float> plain(in, x2, "plain");
  plain.get_layer("frozen_conv")->set_trainable(false);
  plain.compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>());
  auto hp = plain.fit(x, y, {.epochs = 4, .batch_size = 16, .validation_split = 0.25, .seed = 7, .verbose = 0});
  auto m = flip_model(3, "horizontal");
  m->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>());
  auto hf = m->fit(x, y, {.epochs = 4, .batch_size = 16, .validation_split = 0.25, .seed = 7, .verbose = 0});
  CHECK(std::abs(hp["loss"][3] - hf["loss"][3]) > 1e-4);
}

TEST_CASE("A random layer with infinitely many outcomes turns the cache off, and the log says so",
          "[augmentation][cache]") {
  Tensor<float> x, y;
  bar_images(32, x, y);
  set_random_seed(1);
  auto in = Input<float>({8, 8, 1});
  auto h = layers::RandomRotation<float>(0.05, {.seed = 2})(in);
  h = layers::Conv2D(4, 3, {.name = "frozen_conv"})(h);
  h = layers::GlobalAveragePooling2D()(h);
  h = layers::Dense(4, {.activation = "softmax"})(h);
  Model<float> m(in, h);
  m.get_layer("frozen_conv")->set_trainable(false);
  m.compile("adam", "categorical_crossentropy");
  std::string out = capture_stdout([&] { m.fit(x, y, {.epochs = 1, .verbose = 2}); });
  CHECK(out.find("Not caching the frozen layers: RandomRotation 'random_rotation") != std::string::npos);
  CHECK(out.find("no finite set of outcomes") != std::string::npos);
  CHECK(out.find("Cached the outputs") == std::string::npos);
}

namespace {
/// Sequential[ Rescaling, RandomFlip, a nested "base" (4 layers: the top one trainable), GAP, Dense ].
std::shared_ptr<Sequential<float>> nested_model(std::uint64_t seed) {
  set_random_seed(seed);
  auto in = Input<float>({8, 8, 1});
  auto b = layers::Conv2D(6, 3, {.padding = "same", .use_bias = false, .name = "b_conv1"})(in);
  b = layers::BatchNormalization({.name = "b_bn1"})(b);
  b = layers::ReLU({.max_value = 6.0, .name = "b_relu1"})(b);
  b = layers::Conv2D(6, 3, {.strides = {2, 2}, .padding = "same", .name = "b_conv2"})(b);
  auto base = std::make_shared<Model<float>>(in, b, "base");
  base->set_trainable(true);
  for (auto& l : base->layers()) l->set_trainable(l->name() == "b_conv2");
  auto m = std::make_shared<Sequential<float>>("outer");
  m->add(layers::InputLayer({.shape = {8, 8, 1}}));
  m->add(layers::Rescaling<float>(0.5, 0.0, {.name = "rescale"}));
  m->add(layers::RandomFlip<float>("horizontal", {.seed = 5}));
  m->add(base);
  m->add(layers::GlobalAveragePooling2D());
  m->add(layers::Dense(4, {.activation = "softmax", .seed = 9}));
  return m;
}
}  // namespace

TEST_CASE("The cache cuts inside a partly unfrozen nested model, as if it were inlined",
          "[augmentation][cache][nested]") {
  Tensor<float> x, y;
  bar_images(96, x, y);
  FitOptions<float> o{.epochs = 3, .batch_size = 16, .validation_split = 0.25, .seed = 3, .verbose = 2};
  auto nested = nested_model(4);
  nested->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>());
  History hn;
  std::string log = capture_stdout([&] { hn = nested->fit(x, y, o); });
  INFO(log);
  CHECK(log.find("Cached the outputs of the frozen layers up to 'b_relu1'") != std::string::npos);
  // the same model uncached
  auto plain = nested_model(4);
  plain->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>());
  o.verbose = 0;
  o.cache_frozen = false;
  History hu = plain->fit(x, y, o);
  for (std::string k : {"loss", "val_loss"})
    for (int e = 0; e < 3; ++e) {
      INFO(k << " epoch " << e << ": nested cached " << hn[k][e] << ", uncached " << hu[k][e]);
      CHECK(std::abs(hn[k][e] - hu[k][e]) <= 1e-5 * std::max(1.0, std::abs(hu[k][e])));
    }
  // training reached the nested model's trainable layer, and not its frozen ones
  auto fresh = nested_model(4);
  auto w_fresh =
      std::dynamic_pointer_cast<Model<float>>(fresh->layers()[2])->get_layer("b_conv2")->variables()[0]->value;
  auto base = std::dynamic_pointer_cast<Model<float>>(nested->layers()[2]);
  REQUIRE(base);
  auto& w_trained = base->get_layer("b_conv2")->variables()[0]->value;
  auto& w_frozen = base->get_layer("b_conv1")->variables()[0]->value;
  auto w_frozen_fresh =
      std::dynamic_pointer_cast<Model<float>>(fresh->layers()[2])->get_layer("b_conv1")->variables()[0]->value;
  CHECK(!std::equal(w_trained.begin(), w_trained.end(), w_fresh.begin()));
  CHECK(std::equal(w_frozen.begin(), w_frozen.end(), w_frozen_fresh.begin()));
  // and the model still predicts through its own (nested) graph afterwards
  Tensor<float> p = nested->predict(x);
  CHECK(p.dim(0) == 96);
}

TEST_CASE("A fine-tuning fit starts from the features an earlier fit kept (keep_features_of)",
          "[augmentation][cache][keep]") {
  Tensor<float> x, y;
  bar_images(96, x, y);
  auto two_stages = [&](bool keep, std::string* log) {
    auto m = nested_model(6);
    auto base = std::dynamic_pointer_cast<Model<float>>(m->layers()[2]);
    base->set_trainable(false);  // stage 1: the whole base frozen, the head learns
    m->compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::CategoricalCrossentropy<float>());
    FitOptions<float> o{.epochs = 2, .batch_size = 16, .validation_split = 0.25, .seed = 3, .verbose = log ? 2 : 0};
    if (keep) o.keep_features_of = "b_relu1";
    std::string out;
    History h1;
    out += capture_stdout([&] { h1 = m->fit(x, y, o); });
    base->set_trainable(true);  // stage 2: the top of the base learns too
    for (auto& l : base->layers()) l->set_trainable(l->name() == "b_conv2");
    m->compile(optimizers::Adam<float>({.learning_rate = 0.003}), losses::CategoricalCrossentropy<float>());
    o.epochs = 4;
    o.initial_epoch = 2;
    History h2;
    out += capture_stdout([&] { h2 = m->fit(x, y, o); });
    if (log) *log = out;
    std::vector<double> losses = h1["loss"];
    for (double l : h2["val_loss"]) losses.push_back(l);
    return losses;
  };
  std::string log;
  auto kept = two_stages(true, &log), plain = two_stages(false, nullptr);
  INFO(log);
  CHECK(log.find("Cached the outputs of the frozen layers up to 'b_relu1'") != std::string::npos);
  CHECK(log.find("Computed the outputs of 'global_average_pooling2d") != std::string::npos);
  CHECK(log.find("Reusing the outputs of 'b_relu1' kept by an earlier fit") != std::string::npos);
  REQUIRE(kept.size() == plain.size());
  for (std::size_t i = 0; i < kept.size(); ++i) {
    INFO("loss " << i << ": kept " << kept[i] << ", recomputed " << plain[i]);
    CHECK(std::abs(kept[i] - plain[i]) <= 1e-5 * std::max(1.0, std::abs(plain[i])));
  }
  // changed weights below the kept layer: recomputed, not reused
  auto m = nested_model(6);
  auto base = std::dynamic_pointer_cast<Model<float>>(m->layers()[2]);
  base->set_trainable(false);
  m->compile("adam", "categorical_crossentropy");
  m->fit(x, y, {.epochs = 1, .verbose = 0, .keep_features_of = "b_relu1"});
  base->get_layer("b_conv1")->variables()[0]->value[0] += 1.0f;
  std::string out = capture_stdout([&] { m->fit(x, y, {.epochs = 1, .verbose = 2}); });
  CHECK(out.find("Reusing") == std::string::npos);
  // a fit that does not ask to keep uses what was kept, then lets it go: the next one recomputes
  m->fit(x, y, {.epochs = 1, .verbose = 0, .keep_features_of = "b_relu1"});
  out = capture_stdout([&] { m->fit(x, y, {.epochs = 1, .verbose = 2}); });
  CHECK(out.find("Reusing the outputs of 'b_relu1'") != std::string::npos);
  out = capture_stdout([&] { m->fit(x, y, {.epochs = 1, .verbose = 2}); });
  CHECK(out.find("Reusing") == std::string::npos);
  CHECK_THROWS_WITH(m->fit(x, y, {.epochs = 1, .verbose = 0, .keep_features_of = "dense_nope"}),
                    Catch::Contains("no such layer"));
}
