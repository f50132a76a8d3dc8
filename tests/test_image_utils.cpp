// One image through a model (issue 15, item 4): utils::load_img, img_to_array, expand_dims and
// decode_predictions. On real flower photos (read from the shared folder at run time), load_img +
// predict gives exactly what the image_dataset_from_directory path gives.
#include <catch2/catch.hpp>
#include <filesystem>
#include <keras/all.hpp>
#include <unistd.h>

using namespace keras;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
const fs::path kPhotos = fs::path(KERASCPP_SHARED_DIR) / "data" / "flower_photos";

/// The first .jpg of a class folder, in name order.
fs::path first_photo(const std::string& cls) {
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(kPhotos / cls))
    if (e.path().extension() == ".jpg") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE_FALSE(files.empty());
  return files.front();
}

/// A scratch folder per process under the build tree, removed at the end.
struct TempDir {
  fs::path path = fs::path(KERASCPP_BINARY_DIR) / "test_image_utils_tmp" / std::to_string(::getpid());
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};
}  // namespace

TEST_CASE("load_img + predict on one photo gives the dataset path's probabilities", "[image_utils][photos]") {
  if (!fs::is_directory(kPhotos / "roses")) {
    WARN("no flower photos in " << kPhotos << ": skipped");
    return;
  }
  // Two classes, one real photo each (copied to a scratch folder at run time, never into git).
  TempDir tmp;
  std::map<std::string, fs::path> source;
  for (const std::string cls : {"daisy", "roses"}) {
    source[cls] = first_photo(cls);
    fs::create_directories(tmp.path / cls);
    fs::copy_file(source[cls], tmp.path / cls / source[cls].filename());
  }
  for (const bool crop : {false, true}) {
    const Index H = 96, W = 80;  // not square, so that the crop and the (height, width) order matter
    auto ds = utils::image_dataset_from_directory(tmp.path.string(), {.label_mode = "categorical",
                                                                      .batch_size = 1,
                                                                      .image_size = {H, W},
                                                                      .shuffle = false,
                                                                      .crop_to_aspect_ratio = crop,
                                                                      .verbose = false});
    const auto class_names = ds.class_names();
    REQUIRE(class_names == std::vector<std::string>{"daisy", "roses"});

    set_random_seed(5);
    Sequential<float> model({layers::Rescaling(1.0 / 127.5, -1.0, {.input_shape = {H, W, 3}}),
                             layers::Conv2D(8, 3, {.strides = 2, .activation = "relu"}),
                             layers::GlobalAveragePooling2D(), layers::Dense(2, {.activation = "softmax"})});
    model.metadata = {{"class_names", class_names}};
    Tensor<float> p_ds = model.predict(ds);
    REQUIRE(p_ds.shape() == Shape{2, 2});

    Index row = 0;
    for (auto& batch : ds) {
      const std::string& cls = class_names[static_cast<std::size_t>(row)];
      auto img = utils::load_img(
          source[cls].string(),
          {.target_size = {H, W}, .color_mode = "rgb", .interpolation = "bilinear", .keep_aspect_ratio = crop});
      CHECK(img.height == H);
      CHECK(img.width == W);
      Tensor<float> a = utils::img_to_array(img);
      REQUIRE(a.shape() == Shape{H, W, 3});
      CHECK(a.array().minCoeff() >= 0.0f);
      CHECK(a.array().maxCoeff() <= 255.0f);
      Tensor<float> x = utils::expand_dims(a, 0);
      REQUIRE(x.shape() == batch.x.shape());                             // [1, H, W, 3]
      for (Index i = 0; i < x.size(); ++i) REQUIRE(x[i] == batch.x[i]);  // the same pixels, exactly
      Tensor<float> p = model.predict(x);
      REQUIRE(p.shape() == Shape{1, 2});
      for (Index c = 0; c < 2; ++c) CHECK(p[c] == p_ds.at({row, c}));

      // top-k with the class names from the model's metadata: sorted, the scores are the probabilities.
      auto top = utils::decode_predictions(p, model.metadata["class_names"], 5);
      REQUIRE(top.size() == 1);
      REQUIRE(top[0].size() == 2);  // top is capped at the number of classes
      const Index best = p[0] >= p[1] ? 0 : 1;
      CHECK(top[0][0].class_index == best);
      CHECK(top[0][0].class_name == class_names[static_cast<std::size_t>(best)]);
      CHECK(top[0][0].score == Approx(p[best]));
      CHECK(top[0][1].score == Approx(p[1 - best]));
      CHECK(top[0][0].score >= top[0][1].score);
      ++row;
    }
    CHECK(row == 2);
  }
  // Without target_size: the file's own size and pixels, as decode_image gives them.
  auto full = utils::load_img(source["roses"].string());
  auto raw = data::decode_image(source["roses"].string());
  CHECK(full.height == raw.height);
  CHECK(full.width == raw.width);
  Tensor<float> fa = utils::img_to_array(full), ra = utils::img_to_array(raw);
  REQUIRE(fa.shape() == ra.shape());
  for (Index i = 0; i < fa.size(); ++i) REQUIRE(fa[i] == ra[i]);
  CHECK(utils::load_img(source["roses"].string(), {.target_size = {10, 12}, .color_mode = "grayscale"}).channels == 1);
  // A model expecting a batch, given one image: the message says how to add the batch axis.
  Sequential<float> m({layers::Flatten({.input_shape = {raw.height, raw.width, 3}}), layers::Dense(1)});
  REQUIRE_THROWS_WITH(m.predict(fa), Contains("utils::expand_dims(x, 0)"));
}

TEST_CASE("decode_predictions ranks each row; a sigmoid output reads as two classes", "[image_utils]") {
  Tensor<float> p({3, 4}, {0.1f, 0.6f, 0.2f, 0.1f,  //
                           0.4f, 0.3f, 0.2f, 0.1f,  //
                           0.25f, 0.25f, 0.25f, 0.25f});
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  auto top = utils::decode_predictions(p, names, 3);
  REQUIRE(top.size() == 3);
  for (std::size_t r = 0; r < 3; ++r) {
    REQUIRE(top[r].size() == 3);
    // Each entry is a column of the row, best first; the best is the row's maximum.
    double row_max = 0;
    for (Index c = 0; c < 4; ++c) row_max = std::max<double>(row_max, p.at({static_cast<Index>(r), c}));
    CHECK(top[r][0].score == Approx(row_max));
    for (std::size_t k = 0; k < 3; ++k) {
      CHECK(top[r][k].class_name == names[static_cast<std::size_t>(top[r][k].class_index)]);
      CHECK(top[r][k].score == Approx(p.at({static_cast<Index>(r), top[r][k].class_index})));
      if (k) CHECK(top[r][k - 1].score >= top[r][k].score);
    }
  }
  CHECK(top[0][0].class_name == "b");
  CHECK(top[1][0].class_name == "a");
  // Ties keep the column order.
  CHECK(top[2][0].class_index == 0);
  CHECK(top[2][1].class_index == 1);
  CHECK(top[2][2].class_index == 2);

  // A sigmoid head ([samples, 1]) with two names: p is the probability of class_names[1].
  Tensor<float> s({2, 1}, {0.8f, 0.3f});
  auto bin = utils::decode_predictions(s, std::vector<std::string>{"cats", "dogs"}, 1);
  CHECK(bin[0][0].class_name == "dogs");
  CHECK(bin[0][0].score == Approx(s[0]));
  CHECK(bin[1][0].class_name == "cats");
  CHECK(bin[1][0].score == Approx(1.0 - s[1]));

  // Class names as JSON (a model's metadata) or a braced list.
  json meta = {{"class_names", names}};
  CHECK(utils::decode_predictions(p, meta["class_names"], 1)[0][0].class_name == "b");
  CHECK(utils::decode_predictions(p, {"w", "x", "y", "z"}, 1)[1][0].class_name == "w");
}

TEST_CASE("load_img, expand_dims and decode_predictions refuse bad input with clear messages",
          "[image_utils][errors]") {
  Tensor<float> p({2, 3}, 0.1f);
  REQUIRE_THROWS_WITH(utils::decode_predictions(Tensor<float>({3}, 0.1f), std::vector<std::string>{"a", "b", "c"}),
                      Contains("expects a batch of predictions") && Contains("(3,)"));
  REQUIRE_THROWS_WITH(utils::decode_predictions(p, std::vector<std::string>{"a", "b"}),
                      Contains("3 classes") && Contains("2 class names"));
  REQUIRE_THROWS_WITH(utils::decode_predictions(p, std::vector<std::string>{"a", "b", "c"}, 0),
                      Contains("top must be positive"));
  json bad = {{"class_names", {"a", 2, "c"}}};
  REQUIRE_THROWS_WITH(utils::decode_predictions(p, bad["class_names"]),
                      Contains("class_names must be a list of strings"));
  json missing = json::object();
  REQUIRE_THROWS_WITH(utils::decode_predictions(p, missing["class_names"]), Contains("got null"));

  REQUIRE_THROWS_WITH(utils::load_img("/nonexistent/photo.jpg"), Contains("/nonexistent/photo.jpg"));
  REQUIRE_THROWS_WITH(utils::load_img("x.jpg", {.color_mode = "bgr"}), Contains("color_mode=bgr"));
  REQUIRE_THROWS_WITH(utils::load_img("x.jpg", {.interpolation = "lanczos"}), Contains("interpolation=lanczos"));
  REQUIRE_THROWS_WITH(utils::load_img("x.jpg", {.target_size = {0, 5}}), Contains("target_size") && Contains("(0, 5)"));

  Tensor<float> x({2, 3});
  CHECK(utils::expand_dims(x, 0).shape() == Shape{1, 2, 3});
  CHECK(utils::expand_dims(x, 1).shape() == Shape{2, 1, 3});
  CHECK(utils::expand_dims(x, -1).shape() == Shape{2, 3, 1});
  CHECK(utils::expand_dims(x, -3).shape() == Shape{1, 2, 3});
  REQUIRE_THROWS_WITH(utils::expand_dims(x, 3), Contains("axis 3 is out of bounds") && Contains("(2, 3)"));
  REQUIRE_THROWS_WITH(utils::expand_dims(x, -4), Contains("axis -4"));
}
