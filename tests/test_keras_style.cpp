// Building and training models reads like Keras (issue 15, item 5): the list form of Sequential
// with layer temporaries and input_shape, one constructor style for every layer (Keras's positional
// arguments plus an options struct with .name), a dataset as FitOptions::validation_data, and
// compile() with any mix of names and objects.
#include <catch2/catch.hpp>
#include <keras/keras.hpp>

using namespace keras;
using Catch::Matchers::Contains;

TEST_CASE("The codelab's list-form Sequential compiles as written; input_shape creates the InputLayer",
          "[models][style]") {
  // Written exactly as in issue 15.
  Sequential<float> model({layers::Flatten({.input_shape = {192, 192, 3}}), layers::Dense(500, {.activation = "relu"}),
                           layers::Dense(50, {.activation = "relu"}), layers::Dense(5, {.activation = "softmax"})});
  REQUIRE(model.built());
  auto ls = model.layers();
  REQUIRE(ls.size() == 4);
  CHECK(ls[0]->class_name() == "Flatten");
  CHECK(ls[3]->class_name() == "Dense");
  REQUIRE(model.input_layer());
  CHECK(model.input_layer()->batch_input_shape() == Shape{-1, 192, 192, 3});
  CHECK(model.input_layer()->name() == ls[0]->name() + "_input");  // Keras 2: layer.name + "_input"
  CHECK(model.output_shape() == Shape{-1, 5});
  const Index in = 192 * 192 * 3;
  CHECK(model.count_params() == (in * 500 + 500) + (500 * 50 + 50) + (50 * 5 + 5));
  // The saved config starts with that InputLayer, as Keras's Sequential config does.
  json cfg = model.get_config();
  CHECK(cfg["layers"][0]["class_name"] == "InputLayer");
  CHECK(cfg["layers"][1]["class_name"] == "Flatten");

  Tensor<float> x({2, 192, 192, 3});
  Random rng(3);
  for (auto& v : x) v = static_cast<float>(rng.uniform());
  Tensor<float> p = model.predict(x);
  REQUIRE(p.shape() == Shape{2, 5});
  for (Index r = 0; r < 2; ++r) {
    double s = 0;
    for (Index c = 0; c < 5; ++c) s += p.at({r, c});
    CHECK(s == Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE(
    "The list form takes a keras::Input, shared_ptrs and temporaries; input_shape after the first layer is ignored",
    "[models][style]") {
  auto shared = std::make_shared<layers::Dense<float>>(3, layers::DenseOptions{.name = "shared_dense"});
  Sequential<float> a({Input<float>({4}), shared, layers::Dense(2, {.input_shape = {99}})}, "list_mixed");
  CHECK(a.name() == "list_mixed");
  REQUIRE(a.layers().size() == 2);
  CHECK(a.layers()[0] == std::static_pointer_cast<layers::Layer<float>>(shared));  // kept shared, not copied
  CHECK(a.input_layer()->batch_input_shape() == Shape{-1, 4});
  CHECK(a.output_shape() == Shape{-1, 2});

  // A Dense first layer with input_shape, as Keras's Dense(32, input_shape=(16,)).
  Sequential<float> b({layers::Dense(8, {.activation = "relu", .input_shape = {16}}), layers::Dense(1)});
  CHECK(b.input_layer()->batch_input_shape() == Shape{-1, 16});
  CHECK(b.count_params() == (16 * 8 + 8) + (8 + 1));

  // Without any input shape the model builds on first data, as before.
  Sequential<float> c({layers::Dense(2)});
  CHECK_FALSE(c.built());
}

TEST_CASE("A bad input_shape names the layer and the shape", "[models][style][errors]") {
  REQUIRE_THROWS_WITH(Sequential<float>({layers::Flatten({.name = "flat_bad", .input_shape = {0, 3}})}),
                      Contains("flat_bad") && Contains("Flatten") && Contains("input_shape (0, 3)"));
  // A first layer that cannot take that shape: the layer's own shape error, and the model stays empty.
  Sequential<float> m;
  REQUIRE_THROWS_WITH(m.add(layers::Conv2D(4, 3, {.name = "conv_rank", .input_shape = {8, 8}})), Contains("conv_rank"));
  CHECK(m.layers().empty());
  CHECK_FALSE(m.input_layer());
}

TEST_CASE("Every layer takes Keras's positional arguments plus an options struct with .name", "[layers][style]") {
  auto in = Input<float>({4, 4, 2});
  auto x = layers::Rescaling(1.0 / 255, 0.5, {.name = "st_rescale"})(in);
  auto pad = layers::ZeroPadding2D(1, {.name = "st_pad"})(x);
  auto pool = layers::MaxPooling2D(2, {.name = "st_pool"})(pad);  // [3, 3, 2]
  auto conv = layers::Conv2D(2, 3, {.padding = "same", .name = "st_conv"})(pool);
  auto bn = layers::BatchNormalization({.name = "st_bn"})(conv);
  auto relu = layers::ReLU({.max_value = 6.0, .name = "st_relu"})(bn);
  auto sum = layers::Add({.name = "st_add"})({relu, pool});
  auto act = layers::Activation("relu", {.name = "st_act"})(sum);
  auto dw = layers::DepthwiseConv2D(3, {.padding = "same", .name = "st_dw"})(act);
  auto cat = layers::Concatenate({.name = "st_cat"})({dw, act});
  auto cat2 = layers::Concatenate(-1, {.name = "st_cat_axis"})({cat, act});
  auto gap = layers::GlobalAveragePooling2D({.name = "st_gap"})(cat2);
  auto flat = layers::Flatten({.name = "st_flat"})(layers::Reshape({2, 3}, {.name = "st_reshape"})(gap));
  auto drop = layers::Dropout(0.25, {.seed = 7, .name = "st_drop"})(flat);
  auto logits = layers::Dense(3, {.name = "st_dense"})(drop);
  auto out = layers::Softmax({.name = "st_softmax"})(logits);
  Model<float> model(in, out, "style_model");
  for (const char* n :
       {"st_rescale", "st_pad", "st_pool", "st_conv", "st_bn", "st_relu", "st_add", "st_act", "st_dw", "st_cat",
        "st_cat_axis", "st_gap", "st_reshape", "st_flat", "st_drop", "st_dense", "st_softmax"})
    CHECK(model.get_layer(n)->name() == n);
  // The positional arguments land where Keras puts them (the configs say so).
  CHECK(model.get_layer("st_rescale")->get_config()["scale"] == Approx(1.0 / 255));
  CHECK(model.get_layer("st_rescale")->get_config()["offset"] == Approx(0.5));
  CHECK(model.get_layer("st_drop")->get_config()["rate"] == Approx(0.25));
  CHECK(model.get_layer("st_drop")->get_config()["seed"] == 7);
  CHECK(model.get_layer("st_cat_axis")->get_config()["axis"] == -1);
  CHECK(model.get_layer("st_reshape")->get_config()["target_shape"] == json::array({2, 3}));
  CHECK(model.output_shape() == Shape{-1, 3});
}

namespace {
void toy_data(Index n, std::uint64_t seed, Tensor<float>& x, Tensor<float>& y) {
  Random rng(seed);
  x.resize({n, 3});
  y.resize({n, 1});
  for (Index i = 0; i < n; ++i) {
    double s = 0;
    for (Index j = 0; j < 3; ++j) s += (x.at({i, j}) = static_cast<float>(rng.uniform() * 2 - 1));
    y.at({i, 0}) = s > 0 ? 1.0f : 0.0f;
  }
}
Sequential<float> toy_model() {
  return Sequential<float>({layers::Dense(4, {.activation = "relu", .seed = 11, .input_shape = {3}}),
                            layers::Dense(1, {.activation = "sigmoid", .seed = 12})});
}
}  // namespace

TEST_CASE("FitOptions::validation_data takes tensors or a dataset, with the same results", "[train][style]") {
  Tensor<float> x, y, vx, vy;
  toy_data(64, 1, x, y);
  toy_data(24, 2, vx, vy);
  auto val_ds = data::Dataset<float>::from_tensor_slices(vx, vy).batch(8);

  auto tensors = toy_model();
  tensors.compile("adam", "binary_crossentropy", {"accuracy"});
  History ht = tensors.fit(x, y, {.epochs = 3, .batch_size = 8, .validation_data = {vx, vy}, .seed = 5, .verbose = 0});

  auto dataset = toy_model();
  dataset.compile("adam", "binary_crossentropy", {"accuracy"});
  History hd = dataset.fit(x, y, {.epochs = 3, .batch_size = 8, .validation_data = val_ds, .seed = 5, .verbose = 0});
  REQUIRE(ht["val_loss"].size() == 3);
  CHECK(hd["val_loss"] == ht["val_loss"]);
  CHECK(hd["val_accuracy"] == ht["val_accuracy"]);
  CHECK(hd["loss"] == ht["loss"]);

  // fit(dataset): validation in the options or positionally gives the same history.
  auto train_ds = data::Dataset<float>::from_tensor_slices(x, y).batch(8);
  auto in_options = toy_model();
  in_options.compile("adam", "binary_crossentropy", {"accuracy"});
  History ho = in_options.fit(train_ds, {.epochs = 2, .validation_data = val_ds, .verbose = 0});
  auto positional = toy_model();
  positional.compile("adam", "binary_crossentropy", {"accuracy"});
  History hp = positional.fit(train_ds, {.epochs = 2, .verbose = 0}, val_ds);
  REQUIRE(hp["val_loss"].size() == 2);
  CHECK(ho["val_loss"] == hp["val_loss"]);
  CHECK(ho["loss"] == hp["loss"]);
  // ... and tensors in the options of a dataset fit are batched with the options' batch_size.
  auto tensors_in_ds_fit = toy_model();
  tensors_in_ds_fit.compile("adam", "binary_crossentropy", {"accuracy"});
  History hx =
      tensors_in_ds_fit.fit(train_ds, {.epochs = 2, .batch_size = 8, .validation_data = {vx, vy}, .verbose = 0});
  CHECK(hx["val_loss"] == hp["val_loss"]);

  REQUIRE_THROWS_WITH(positional.fit(train_ds, {.validation_data = val_ds, .verbose = 0}, val_ds),
                      Contains("validation data given twice"));
}

TEST_CASE("compile() takes any mix of Keras names and objects", "[train][style]") {
  Tensor<float> x, y;
  toy_data(32, 3, x, y);
  auto by_name = toy_model();
  by_name.compile("adam", "binary_crossentropy");
  auto mixed = toy_model();
  mixed.compile("adam", losses::BinaryCrossentropy<float>());
  auto mixed2 = toy_model();
  mixed2.compile(optimizers::Adam<float>(), "binary_crossentropy", {"accuracy"});
  auto objects = toy_model();
  objects.compile(optimizers::Adam<float>(), losses::BinaryCrossentropy<float>());
  CHECK(mixed.optimizer().class_name() == "Adam");
  CHECK(mixed.loss().class_name() == "BinaryCrossentropy");
  CHECK(mixed2.loss().class_name() == "BinaryCrossentropy");
  for (int step = 0; step < 3; ++step) {
    const double l = by_name.train_on_batch(x, y);
    CHECK(mixed.train_on_batch(x, y) == l);
    CHECK(mixed2.train_on_batch(x, y) == l);
    CHECK(objects.train_on_batch(x, y) == l);
  }
  // A loss object keeps its arguments: label smoothing changes the loss.
  auto smoothed = toy_model();
  smoothed.compile("adam", losses::BinaryCrossentropy<float>({.label_smoothing = 0.2}));
  auto plain = toy_model();
  plain.compile("adam", "binary_crossentropy");
  CHECK(smoothed.train_on_batch(x, y) != plain.train_on_batch(x, y));
}
