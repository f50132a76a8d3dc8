// Tests of the data module: decoding, TF-compatible resizing, image_dataset_from_directory,
// the Dataset pipeline and augmentation. Images are generated here with stb_image_write.
#include <catch2/catch.hpp>
#include <keras/data/data.hpp>

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

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;
using keras::Index;
using keras::Random;
using keras::Tensor;
using namespace keras::data;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::path(KERASCPP_BINARY_DIR) / "test_data_tmp" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_png(const fs::path& p, int w, int h, int c, const std::vector<unsigned char>& px) {
  fs::create_directories(p.parent_path());
  REQUIRE(stbi_write_png(p.string().c_str(), w, h, c, px.data(), w * c) != 0);
}

/// A w x h RGB image filled with one colour.
std::vector<unsigned char> solid(int w, int h, unsigned char r, unsigned char g, unsigned char b) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w * h * 3));
  for (int i = 0; i < w * h; ++i) {
    px[i * 3] = r;
    px[i * 3 + 1] = g;
    px[i * 3 + 2] = b;
  }
  return px;
}

std::vector<unsigned char> random_pixels(int w, int h, int c, std::uint64_t seed) {
  Random rng(seed);
  std::vector<unsigned char> px(static_cast<std::size_t>(w * h * c));
  for (auto& v : px) v = static_cast<unsigned char>(rng.index(256));
  return px;
}

/// Independent reference of TF's half-pixel bilinear resize, in double: clamp the source
/// coordinate into the image and interpolate between its two neighbours.
std::vector<double> reference_bilinear(const std::vector<unsigned char>& px, int w, int h, int c, int ow, int oh) {
  std::vector<double> out(static_cast<std::size_t>(ow * oh * c));
  auto coord = [](int o, int in, int out_size, int& i0, int& i1, double& t) {
    double s = (o + 0.5) * in / out_size - 0.5;
    s = std::min(std::max(s, 0.0), in - 1.0);
    i0 = static_cast<int>(std::floor(s));
    i1 = std::min(i0 + 1, in - 1);
    t = s - i0;
  };
  for (int y = 0; y < oh; ++y) {
    int y0, y1;
    double ty;
    coord(y, h, oh, y0, y1, ty);
    for (int x = 0; x < ow; ++x) {
      int x0, x1;
      double tx;
      coord(x, w, ow, x0, x1, tx);
      for (int k = 0; k < c; ++k) {
        auto p = [&](int yy, int xx) { return static_cast<double>(px[(yy * w + xx) * c + k]); };
        double top = p(y0, x0) * (1 - tx) + p(y0, x1) * tx;
        double bot = p(y1, x0) * (1 - tx) + p(y1, x1) * tx;
        out[(y * ow + x) * c + k] = top * (1 - ty) + bot * ty;
      }
    }
  }
  return out;
}

/// Three classes (names chosen so that sorted order differs from creation order), images of
/// varying sizes whose colour encodes (class, index): R = 40 + 60 * class, G = index.
fs::path make_class_tree(const std::string& name, const std::vector<int>& counts = {5, 7, 4}) {
  fs::path d = fresh_dir(name);
  const std::vector<std::string> classes = {"cats", "birds", "dogs"};  // sorted: birds, cats, dogs
  const std::map<std::string, int> sorted_index = {{"birds", 0}, {"cats", 1}, {"dogs", 2}};
  for (std::size_t c = 0; c < classes.size(); ++c) {
    int label = sorted_index.at(classes[c]);
    for (int i = 0; i < counts[c]; ++i) {
      int w = 10 + i, h = 8 + 2 * i;
      write_png(d / classes[c] / ("img" + std::to_string(i) + ".png"), w, h, 3,
                solid(w, h, static_cast<unsigned char>(40 + 60 * label), static_cast<unsigned char>(i), 7));
    }
  }
  // Ignored like Keras: hidden class folder, non-image extension; and hidden files.
  write_png(d / ".hidden_class" / "a.png", 4, 4, 3, solid(4, 4, 1, 2, 3));
  std::ofstream(d / "cats" / "notes.txt") << "not an image";
  write_png(d / "cats" / ".hidden.png", 4, 4, 3, solid(4, 4, 1, 2, 3));
  return d;
}

std::vector<Batch<float>> collect(const Dataset<float>& ds, std::uint64_t epoch) {
  std::vector<Batch<float>> v;
  for (auto it = ds.begin(epoch); it != ds.end(); ++it) v.push_back(std::move(*it));
  return v;
}

std::vector<float> flat_x(const std::vector<Batch<float>>& batches) {
  std::vector<float> v;
  for (auto& b : batches) v.insert(v.end(), b.x.begin(), b.x.end());
  return v;
}

ImageDatasetOptions quiet() {
  ImageDatasetOptions o;
  o.verbose = false;
  return o;
}

}  // namespace

TEST_CASE("numpy RandomState(seed).shuffle permutation is reproduced", "[data]") {
  // Values printed by numpy 1.24: x = list(range(n)); np.random.RandomState(seed).shuffle(x)
  CHECK(detail::numpy_shuffle_permutation(10, 123) == std::vector<std::size_t>{4, 0, 7, 5, 8, 3, 1, 6, 9, 2});
  CHECK(detail::numpy_shuffle_permutation(25, 1337) == std::vector<std::size_t>{13, 4,  5,  17, 3,  0,  11, 12, 2,
                                                                                14, 15, 1,  19, 21, 10, 16, 6,  9,
                                                                                24, 20, 18, 22, 7,  8,  23});
  CHECK(detail::numpy_shuffle_permutation(7, 4000000000u) == std::vector<std::size_t>{1, 5, 6, 0, 3, 2, 4});
}

TEST_CASE("decode PNG and BMP exactly, JPEG approximately; reject truncated and non-images", "[data]") {
  fs::path d = fresh_dir("decode");
  auto px = random_pixels(13, 9, 3, 1);
  write_png(d / "a.png", 13, 9, 3, px);
  REQUIRE(stbi_write_bmp((d / "a.bmp").string().c_str(), 13, 9, 3, px.data()) != 0);
  for (const char* f : {"a.png", "a.bmp"}) {
    Image img = decode_image((d / f).string(), 3);
    CHECK(img.height == 9);
    CHECK(img.width == 13);
    CHECK(img.pixels == px);
  }
  Image gray = decode_image((d / "a.png").string(), 1);
  CHECK(gray.channels == 1);
  CHECK(gray.pixels.size() == 13u * 9u);
  Image rgba = decode_image((d / "a.png").string(), 4);
  CHECK(rgba.pixels[3] == 255);

  auto smooth = solid(32, 24, 200, 100, 50);
  REQUIRE(stbi_write_jpg((d / "a.jpg").string().c_str(), 32, 24, 3, smooth.data(), 95) != 0);
  Image jpg = decode_image((d / "a.jpg").string(), 3);
  CHECK(jpg.width == 32);
  for (std::size_t i = 0; i < jpg.pixels.size(); ++i) CHECK(std::abs(int(jpg.pixels[i]) - int(smooth[i])) <= 3);

  auto bytes = read_file_bytes((d / "a.jpg").string());
  CHECK(detail::jpeg_is_complete(bytes.data(), bytes.size()));
  for (std::size_t cut : {bytes.size() - 2, bytes.size() / 2, std::size_t(10)}) {
    CHECK_FALSE(detail::jpeg_is_complete(bytes.data(), cut));
    CHECK_THROWS_AS(decode_image_bytes(bytes.data(), cut, 3, "cut.jpg"), keras::IOError);
  }
  auto png = read_file_bytes((d / "a.png").string());
  CHECK_THROWS_AS(decode_image_bytes(png.data(), png.size() - 20, 3, "cut.png"), keras::IOError);
  const unsigned char text[] = "hello, this is not an image at all";
  CHECK_THROWS_AS(decode_image_bytes(text, sizeof text, 3, "text.jpg"), keras::IOError);
  CHECK_THROWS_AS(decode_image((d / "missing.png").string()), keras::IOError);
  try {
    decode_image_bytes(text, sizeof text, 3, "text.jpg");
  } catch (const keras::IOError& e) {
    CHECK(std::string(e.what()).find("text.jpg") != std::string::npos);
  }
}

TEST_CASE("bilinear resize matches an independent half-pixel reference", "[data]") {
  for (auto [w, h, ow, oh] : std::vector<std::array<int, 4>>{
           {13, 9, 8, 5}, {13, 9, 30, 20}, {7, 11, 7, 11}, {320, 240, 192, 192}, {5, 3, 1, 1}}) {
    auto px = random_pixels(w, h, 3, static_cast<std::uint64_t>(w * 100 + ow));
    Image img{h, w, 3, px};
    auto out = resize_image<float>(img, oh, ow);
    auto ref = reference_bilinear(px, w, h, 3, ow, oh);
    REQUIRE(out.size() == ref.size());
    double max_err = 0;
    for (std::size_t i = 0; i < out.size(); ++i) max_err = std::max(max_err, std::abs(out[i] - ref[i]));
    INFO(w << "x" << h << " -> " << ow << "x" << oh);
    // TF (and we) compute the source coordinate in float: for 320 -> 192 that moves it by ~1e-5,
    // i.e. up to ~0.005 grey levels against this double reference. Far below uint8 rounding.
    CHECK(max_err < 1e-2);
  }
  // Same size: identity. Nearest: picks source pixels.
  auto px = random_pixels(6, 4, 1, 3);
  Image img{4, 6, 1, px};
  auto same = resize_image<float>(img, 4, 6);
  for (std::size_t i = 0; i < px.size(); ++i) CHECK(same[i] == px[i]);
  auto near = resize_image<float>(img, 2, 3, "nearest");  // scale 2: floor((o + .5) * 2) = 1, 3, 5
  CHECK(near[0] == px[1 * 6 + 1]);
  CHECK(near[5] == px[3 * 6 + 5]);
  // crop_to_aspect_ratio: the centred largest window with the target aspect ratio.
  Window win = crop_window_for_aspect(240, 320, 192, 192);
  CHECK(win.height == 240);
  CHECK(win.width == 240);
  CHECK(win.x0 == 40);
  CHECK(win.y0 == 0);
  CHECK_THROWS_AS(resize_image<float>(img, 2, 2, "bicubic"), keras::ValueError);
}

TEST_CASE("image_dataset_from_directory: classes, labels, shapes and pixel values", "[data]") {
  fs::path d = make_class_tree("classes");
  auto o = quiet();
  o.batch_size = 4;
  o.image_size = {6, 5};
  o.shuffle = false;
  auto ds = keras::utils::image_dataset_from_directory(d.string(), o);
  CHECK(ds.class_names() == std::vector<std::string>{"birds", "cats", "dogs"});
  REQUIRE(ds.file_paths().size() == 16);
  CHECK(ds.cardinality() == 4);
  CHECK(ds.skipped_files().empty());
  // Unshuffled: Keras's sorted order, class by class.
  CHECK(fs::path(ds.file_paths()[0]).parent_path().filename() == "birds");
  CHECK(fs::path(ds.file_paths()[15]).parent_path().filename() == "dogs");
  auto batches = collect(ds, 0);
  REQUIRE(batches.size() == 4);
  CHECK(batches[0].x.shape() == keras::Shape{4, 6, 5, 3});
  CHECK(batches[0].y.shape() == keras::Shape{4});
  Index n = 0;
  for (auto& b : batches) {
    for (Index i = 0; i < b.x.dim(0); ++i, ++n) {
      const float label = b.y[i];
      CHECK(b.x.at({i, 0, 0, 0}) == 40 + 60 * label);  // colour encodes the class
      CHECK(b.x.at({i, 5, 4, 2}) == 7);
    }
  }
  CHECK(n == 16);

  SECTION("categorical, binary, grayscale, unbatched, no labels") {
    o.label_mode = "categorical";
    auto cat = collect(keras::utils::image_dataset_from_directory(d.string(), o), 0);
    CHECK(cat[0].y.shape() == keras::Shape{4, 3});
    CHECK(cat[0].y.at({0, 0}) == 1);
    CHECK(cat[3].y.at({3, 2}) == 1);
    o.label_mode = "binary";
    CHECK_THROWS_AS(keras::utils::image_dataset_from_directory(d.string(), o), keras::ValueError);
    o.class_names = {"dogs", "cats"};  // explicit order, a subset
    auto bin = keras::utils::image_dataset_from_directory(d.string(), o);
    CHECK(bin.class_names() == std::vector<std::string>{"dogs", "cats"});
    auto bb = collect(bin, 0);
    CHECK(bb[0].y.shape() == keras::Shape{4, 1});
    CHECK(bb[0].y[0] == 0);                  // dogs first
    CHECK(bb[0].x.at({0, 0, 0, 0}) == 160);  // a dog (sorted index 2)
    o.class_names = {"cows"};
    CHECK_THROWS_AS(keras::utils::image_dataset_from_directory(d.string(), o), keras::ValueError);
    o.class_names = {};
    o.label_mode = "int";
    o.color_mode = "grayscale";
    o.batch_size = std::nullopt;
    auto un = keras::utils::image_dataset_from_directory(d.string(), o);
    CHECK(un.cardinality() == 16);
    auto first = *un.begin(0);
    CHECK(first.x.shape() == keras::Shape{6, 5, 1});
    CHECK(first.y.rank() == 0);
    o.label_mode = "none";
    auto nol = collect(keras::utils::image_dataset_from_directory(d.string(), o), 0);
    CHECK(nol[0].y.empty());
  }

  SECTION("pixel values after resize equal the reference bilinear") {
    fs::path d2 = fresh_dir("pixels");
    auto px = random_pixels(17, 11, 3, 99);
    write_png(d2 / "only" / "x.png", 17, 11, 3, px);
    auto p = quiet();
    p.image_size = {7, 9};
    p.shuffle = false;
    auto b = collect(keras::utils::image_dataset_from_directory(d2.string(), p), 0);
    auto ref = reference_bilinear(px, 17, 11, 3, 9, 7);
    REQUIRE(b[0].x.size() == static_cast<Index>(ref.size()));
    for (std::size_t i = 0; i < ref.size(); ++i) CHECK(std::abs(b[0].x[i] - ref[i]) < 1e-3);
    p.crop_to_aspect_ratio = true;  // 17x11 -> 7x9 keeps a centred 14x11 window
    auto c = collect(keras::utils::image_dataset_from_directory(d2.string(), p), 0);
    std::vector<unsigned char> window;
    for (int y = 0; y < 11; ++y)
      for (int x = 1; x < 15; ++x)
        for (int k = 0; k < 3; ++k) window.push_back(px[(y * 17 + x) * 3 + k]);
    auto cref = reference_bilinear(window, 14, 11, 3, 9, 7);
    for (std::size_t i = 0; i < cref.size(); ++i) CHECK(std::abs(c[0].x[i] - cref[i]) < 1e-3);
  }
}

TEST_CASE("image_dataset_from_directory: split sizes, disjointness, determinism", "[data]") {
  fs::path d = make_class_tree("split", {9, 12, 8});  // 29 files
  auto o = quiet();
  o.batch_size = 5;
  o.image_size = {4, 4};
  o.seed = 123;
  o.validation_split = 0.2;  // int(0.2 * 29) = 5 validation files
  o.subset = "training";
  auto train = keras::utils::image_dataset_from_directory(d.string(), o);
  o.subset = "validation";
  auto val = keras::utils::image_dataset_from_directory(d.string(), o);
  CHECK(train.file_paths().size() == 24);
  CHECK(val.file_paths().size() == 5);
  CHECK(train.cardinality() == 5);
  CHECK(val.cardinality() == 1);
  std::set<std::string> all(train.file_paths().begin(), train.file_paths().end());
  for (auto& p : val.file_paths()) CHECK(all.insert(p).second);  // disjoint
  CHECK(all.size() == 29);

  // Keras's order: the sorted list shuffled by numpy's RandomState(123), validation = the tail.
  auto idx = keras::utils::index_directory(d.string(), "inferred", {}, false, 0);
  auto perm = detail::numpy_shuffle_permutation(29, 123);
  for (std::size_t i = 0; i < 5; ++i) CHECK(val.file_paths()[i] == idx.file_paths[perm[24 + i]]);

  // "both" gives the same split; validation is not reshuffled.
  o.subset = "both";
  auto [t2, v2] = keras::utils::image_dataset_from_directory_both(d.string(), o);
  CHECK(t2.file_paths() == train.file_paths());
  CHECK(v2.file_paths() == val.file_paths());
  CHECK(flat_x(collect(v2, 0)) == flat_x(collect(v2, 1)));

  // Same seed: same data in the same order; each epoch is a new order; labels follow images.
  o.subset = "training";
  auto again = keras::utils::image_dataset_from_directory(d.string(), o);
  auto e0 = collect(train, 0), e1 = collect(train, 1);
  CHECK(flat_x(e0) == flat_x(collect(again, 0)));
  CHECK(flat_x(e0) != flat_x(e1));
  for (auto* epoch : {&e0, &e1})
    for (auto& b : *epoch)
      for (Index i = 0; i < b.x.dim(0); ++i) CHECK(b.x.at({i, 0, 0, 0}) == 40 + 60 * b.y[i]);
  // begin() advances the epoch counter: first loop = epoch 0, second = epoch 1.
  std::vector<float> first, second;
  for (auto& b : again) first.insert(first.end(), b.x.begin(), b.x.end());
  for (auto& b : again) second.insert(second.end(), b.x.begin(), b.x.end());
  CHECK(first == flat_x(e0));
  CHECK(second == flat_x(e1));
  // Another seed: another split.
  o.seed = 7;
  auto other = keras::utils::image_dataset_from_directory(d.string(), o);
  CHECK(other.file_paths() != train.file_paths());

  // Argument checks as Keras.
  o.seed.reset();
  CHECK_THROWS_AS(keras::utils::image_dataset_from_directory(d.string(), o), keras::ValueError);
  o.seed = 1;
  o.validation_split = 0;
  CHECK_THROWS_AS(keras::utils::image_dataset_from_directory(d.string(), o), keras::ValueError);
  o.validation_split = 0.2;
  o.subset = "both";
  CHECK_THROWS_AS(keras::utils::image_dataset_from_directory(d.string(), o), keras::ValueError);
}

TEST_CASE("bad files are skipped with a warning and counted; empty folders are errors", "[data]") {
  fs::path d = make_class_tree("bad", {3, 3, 3});
  // A truncated JPEG and a text file named .jpg.
  auto px = random_pixels(40, 30, 3, 5);
  REQUIRE(stbi_write_jpg((d / "cats" / "good.jpg").string().c_str(), 40, 30, 3, px.data(), 90) != 0);
  auto bytes = read_file_bytes((d / "cats" / "good.jpg").string());
  std::ofstream((d / "cats" / "truncated.jpg").string(), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() * 2 / 3));
  std::ofstream(d / "dogs" / "text.jpg") << "I am text, not a JPEG\n";

  for (bool check : {true, false}) {
    INFO("check_files = " << check);
    auto o = quiet();
    o.batch_size = 4;
    o.image_size = {8, 8};
    o.shuffle = false;
    o.check_files = check;
    auto ds = keras::utils::image_dataset_from_directory(d.string(), o);
    Index images = 0;
    for (auto& b : ds) images += b.x.dim(0);
    CHECK(images == 10);  // 9 PNGs + good.jpg
    auto skipped = ds.skipped_files();
    REQUIRE(skipped.size() == 2);
    std::set<std::string> names;
    for (auto& s : skipped) names.insert(fs::path(s).filename().string());
    CHECK(names == std::set<std::string>{"truncated.jpg", "text.jpg"});
    if (check) {
      CHECK(ds.cardinality() == 3);  // exact: bad files dropped up front
      CHECK(ds.file_paths().size() == 10);
    }
    Index again = 0;
    for (auto& b : ds) again += b.x.dim(0);
    CHECK(again == 10);
    CHECK(ds.skipped_files().size() == 2);
  }

  fs::path empty = fresh_dir("empty");
  CHECK_THROWS_AS(keras::utils::image_dataset_from_directory(empty.string(), quiet()), keras::ValueError);
  fs::create_directories(empty / "a");
  write_png(empty / "a" / "x.png", 3, 3, 3, solid(3, 3, 0, 0, 0));
  fs::create_directories(empty / "b_no_images");
  std::ofstream(empty / "b_no_images" / "readme.txt") << "x";
  try {
    keras::utils::image_dataset_from_directory(empty.string(), quiet());
    FAIL("expected an error");
  } catch (const keras::Error& e) {
    CHECK(std::string(e.what()).find("b_no_images") != std::string::npos);
  }
  CHECK_THROWS_AS(keras::utils::image_dataset_from_directory((empty / "nope").string(), quiet()), keras::IOError);
}

TEST_CASE("Dataset: slices, batch, unbatch, take, shuffle, map_random, cache, prefetch", "[data]") {
  Tensor<float> x({10, 2});
  Tensor<float> y({10});
  for (Index i = 0; i < 10; ++i) {
    x[2 * i] = static_cast<float>(i);
    x[2 * i + 1] = static_cast<float>(100 + i);
    y[i] = static_cast<float>(i % 3);
  }
  auto ds = Dataset<float>::from_tensor_slices(x, y);
  CHECK(ds.cardinality() == 10);
  auto b = ds.batch(4);
  CHECK(b.cardinality() == 3);
  CHECK(ds.batch(4, true).cardinality() == 2);
  auto bs = collect(b, 0);
  REQUIRE(bs.size() == 3);
  CHECK(bs[0].x.shape() == keras::Shape{4, 2});
  CHECK(bs[2].x.shape() == keras::Shape{2, 2});
  CHECK(bs[2].y.shape() == keras::Shape{2});
  CHECK(bs[2].x.at({1, 1}) == 109);
  CHECK(collect(ds.batch(4, true), 0).size() == 2);
  auto ub = collect(b.unbatch(), 0);
  REQUIRE(ub.size() == 10);
  CHECK(ub[7].x.shape() == keras::Shape{2});
  CHECK(ub[7].x[1] == 107);
  CHECK(ub[7].y[0] == 1);
  CHECK(collect(b.take(2), 0).size() == 2);
  CHECK(b.take(2).cardinality() == 2);

  auto whole = Dataset<float>::from_tensors(x, y);
  CHECK(whole.cardinality() == 1);
  CHECK(collect(whole, 0)[0].x.shape() == keras::Shape{10, 2});

  // shuffle: a permutation, deterministic for (seed, epoch), different across epochs.
  auto sh = ds.shuffle(10, 42);
  auto order = [](const std::vector<Batch<float>>& v) {
    std::vector<float> o;
    for (auto& e : v) o.push_back(e.x[0]);
    return o;
  };
  auto o0 = order(collect(sh, 0)), o1 = order(collect(sh, 1));
  CHECK(o0 == order(collect(ds.shuffle(10, 42), 0)));
  CHECK(o0 != o1);
  auto sorted = o0;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(o0 != order(collect(ds.shuffle(10, 43), 0)));

  // map and map_random: the rng depends on (seed, epoch, element) only.
  auto noisy = ds.map_random(
      [](Batch<float> e, Random& rng) {
        e.x[0] += static_cast<float>(rng.uniform());
        return e;
      },
      5);
  auto n0 = flat_x(collect(noisy, 0));
  CHECK(n0 == flat_x(collect(noisy, 0)));
  CHECK(n0 != flat_x(collect(noisy, 1)));
  auto doubled = collect(ds.map([](Batch<float> e) {
    e.x[1] *= 2;
    return e;
  }),
                         0);
  CHECK(doubled[3].x[1] == 206);

  // cache: the first complete epoch is replayed (even through a shuffle placed before it).
  int calls = 0;
  auto counted = ds.map([&calls](Batch<float> e) {
                     ++calls;
                     return e;
                   })
                     .shuffle(10, 3)
                     .cache(CacheStorage::exact);
  auto c0 = flat_x(collect(counted, 0));
  CHECK(calls == 10);
  CHECK(flat_x(collect(counted, 1)) == c0);
  CHECK(calls == 10);
  // uint8 storage rounds to [0, 255] integers, in the first epoch too.
  auto frac = ds.map([](Batch<float> e) {
                  e.x[0] += 0.4f;
                  e.x[1] = 300;
                  return e;
                }).cache(CacheStorage::uint8);
  auto f0 = collect(frac, 0);
  CHECK(f0[3].x[0] == 3);
  CHECK(f0[3].x[1] == 255);
  CHECK(flat_x(collect(frac, 1)) == flat_x(f0));

  // prefetch: same elements, in order; stopping early joins the thread cleanly.
  auto pf = b.prefetch(2);
  CHECK(flat_x(collect(pf, 0)) == flat_x(bs));
  {
    auto it = pf.begin(0);
    CHECK(it->x.dim(0) == 4);
  }
  // Errors from the pipeline reach the consumer (through prefetch too).
  auto failing = ds.map([](Batch<float> e) -> Batch<float> {
    if (e.x[0] == 5) throw keras::ValueError("boom");
    return e;
  });
  CHECK_THROWS_AS(collect(failing.prefetch(3), 0), keras::ValueError);
  // Batching elements of different shapes is a ShapeError naming both.
  auto ragged = Dataset<float>::from_indexed(2, [](Index i) {
    return std::optional<Batch<float>>(Batch<float>{Tensor<float>({i + 1}, 0.f), {}});
  });
  CHECK_THROWS_AS(collect(ragged.batch(2), 0), keras::ShapeError);
  CHECK_THROWS_AS(Dataset<float>::from_tensor_slices(x, Tensor<float>({3})), keras::ShapeError);
  CHECK_THROWS_AS(Dataset<float>().begin(), keras::StateError);
  // An iterator keeps its pipeline alive after the Dataset is gone.
  auto it = Dataset<float>::from_tensor_slices(x, y).map([](Batch<float> e) { return e; }).batch(3).begin(0);
  Index rows = 0;
  for (; it != Dataset<float>::iterator(); ++it) rows += it->x.dim(0);
  CHECK(rows == 10);
}

TEST_CASE("parallel sources keep the order, skip nullopt items and pass errors on", "[data]") {
  keras::set_num_threads(3);
  SourceOptions so;
  so.parallel = true;
  so.shuffle = true;
  so.seed = 11;
  so.chunk = 4;
  auto read = [](Index i) -> std::optional<Batch<float>> {
    if (i % 7 == 3) return std::nullopt;  // skipped item
    return Batch<float>{Tensor<float>({1}, static_cast<float>(i)), {}};
  };
  auto par = Dataset<float>::from_indexed(100, read, so);
  so.parallel = false;
  auto seq = Dataset<float>::from_indexed(100, read, so);
  for (std::uint64_t e : {0u, 1u}) {
    auto a = flat_x(collect(par, e)), b = flat_x(collect(seq, e));
    CHECK(a.size() == 86);
    CHECK(a == b);
  }
  so.parallel = true;
  auto bad = Dataset<float>::from_indexed(
      50,
      [](Index i) -> std::optional<Batch<float>> {
        if (i == 20) throw keras::IOError("bad item 20");
        return Batch<float>{Tensor<float>({1}, 0.f), {}};
      },
      so);
  CHECK_THROWS_AS(collect(bad, 0), keras::IOError);
  CHECK_THROWS_AS(collect(bad.batch(8).prefetch(2), 0), keras::IOError);
  {
    auto it = par.batch(5).prefetch(1).begin(0);
    CHECK(it->x.dim(0) == 5);
  }  // early stop joins all threads
  keras::set_num_threads(2);
}

TEST_CASE("Dataset::shard: disjoint shards that cover each epoch, read only at the source", "[data]") {
  keras::set_num_threads(2);
  std::atomic<int> reads{0};
  SourceOptions so;
  so.parallel = true;
  so.shuffle = true;
  so.seed = 5;
  auto src = Dataset<float>::from_indexed(
      23,
      [&](Index i) -> std::optional<Batch<float>> {
        ++reads;
        return Batch<float>{Tensor<float>({1}, static_cast<float>(i)), {}};
      },
      so);
  auto whole = src.batch(4).prefetch(2);  // 6 batches, the last of 3
  for (std::uint64_t e : {0u, 1u}) {
    auto all = collect(whole, e);
    std::vector<float> joined;
    Index items = 0;
    for (Index k = 0; k < 3; ++k) {
      reads = 0;
      auto part = collect(whole.shard(3, k), e);
      REQUIRE(part.size() == 2);
      for (std::size_t j = 0; j < part.size(); ++j) {
        const auto& ref = all[static_cast<std::size_t>(k) + 3 * j];  // tf.data: batches k, k + 3
        CHECK(flat_x({part[j]}) == flat_x({ref}));
        items += part[j].x.dim(0);
      }
      CHECK(reads == (k == 2 ? 7 : 8));  // pushed down to the source: only its own items are read
      CHECK(*whole.shard(3, k).cardinality() == 2);
    }
    CHECK(items == 23);
  }
  // after a stage that cannot push it down (map), the others are read and dropped: same elements
  auto mapped = src.map([](Batch<float> b) { return b; }).shard(4, 1);
  CHECK(*mapped.cardinality() == 6);
  std::vector<float> m = flat_x(collect(mapped, 0)), s = flat_x(collect(src, 0));
  REQUIRE(m.size() == 6);
  for (std::size_t j = 0; j < m.size(); ++j) CHECK(m[j] == s[1 + 4 * j]);
  CHECK(src.shard(1, 0).identity() == src.identity());
  CHECK_THROWS_WITH(src.shard(2, 2), Catch::Contains("index must be in [0, num_shards) = [0, 2), got 2"));
  CHECK_THROWS_WITH(src.shard(0, 0), Catch::Contains("num_shards must be >= 1"));
}

TEST_CASE("image datasets cache as uint8 and prefetch across epochs", "[data]") {
  fs::path d = make_class_tree("cache", {6, 6, 6});
  auto o = quiet();
  o.batch_size = 4;
  o.image_size = {5, 7};
  o.seed = 3;
  auto ds = keras::utils::image_dataset_from_directory(d.string(), o);
  CHECK(ds.info().uint8_images);
  auto cached = ds.cache();  // automatic: uint8 for image datasets
  auto e0 = collect(cached, 0);
  CHECK(flat_x(collect(cached, 1)) == flat_x(e0));
  CHECK(flat_x(e0) == flat_x(collect(ds, 0)));  // solid colours: integral values, nothing lost
  CHECK_FALSE(ds.map([](Batch<float> b) { return b; }).info().uint8_images);
  // The usual pipeline: cache, reshuffle batches every epoch, augment, prefetch.
  auto train = cached.shuffle(100, 1)
                   .map_random(
                       [](Batch<float> b, Random& rng) {
                         random_flip_left_right(b.x, rng);
                         return b;
                       },
                       9)
                   .prefetch(2);
  CHECK(train.class_names() == ds.class_names());
  Index seen = 0;
  for (auto& b : train) seen += b.x.dim(0);
  CHECK(seen == 18);
}

TEST_CASE("augmentation: flips, rotation, zoom and crop are seeded and geometric", "[data]") {
  Tensor<float> img({2, 4, 6, 2});
  for (Index i = 0; i < img.size(); ++i) img[i] = static_cast<float>(i % 97);

  auto run = [&](std::uint64_t seed) {
    Tensor<float> t = img;
    Random rng(seed);
    random_flip_left_right(t, rng);
    random_flip_up_down(t, rng);
    random_rotation(t, 0.2, rng);
    random_zoom(t, 0.3, std::nullopt, rng);
    Tensor<float> c = random_crop(t, 3, 4, rng);
    return std::vector<float>(c.begin(), c.end());
  };
  CHECK(run(1) == run(1));
  CHECK(run(1) != run(2));

  // A flip mirrors; two flips restore.
  Tensor<float> one({4, 6, 2});
  for (Index i = 0; i < one.size(); ++i) one[i] = static_cast<float>(i);
  Tensor<float> f = one;
  flip_left_right(f.data(), 4, 6, 2);
  CHECK(f.at({1, 0, 1}) == one.at({1, 5, 1}));
  flip_left_right(f.data(), 4, 6, 2);
  CHECK(std::equal(f.begin(), f.end(), one.begin()));

  // Rotation by a quarter turn of a square image is an exact pixel permutation.
  Tensor<float> sq({5, 5, 1});
  for (Index i = 0; i < 25; ++i) sq[i] = static_cast<float>(i);
  Tensor<float> r = sq;
  Random rng(0);
  random_rotation(r, 0.25, 0.25, rng);  // +90 degrees, counter-clockwise
  for (Index y = 0; y < 5; ++y)
    for (Index x = 0; x < 5; ++x) CHECK(r.at({y, x, 0}) == Approx(sq.at({x, 4 - y, 0})).margin(1e-3));
  // Zero factors change nothing; constant fill fills outside.
  Tensor<float> z = sq;
  random_zoom(z, 0.0, std::nullopt, rng);
  CHECK(std::equal(z.begin(), z.end(), sq.begin()));
  Tensor<float> out = sq;
  random_zoom(out, 1.0, 1.0, rng, FillMode::constant, -1.f);
  // Reflect keeps values within the image's range.
  Tensor<float> rf = sq;
  random_rotation(rf, 0.5, rng);
  for (float v : rf) CHECK((v >= 0 && v <= 24));
  // Crop picks a window of the source.
  Random crng(4);
  Tensor<float> crop = random_crop(sq, 2, 3, crng);
  CHECK(crop.shape() == keras::Shape{2, 3, 1});
  CHECK(crop.at({1, 2, 0}) - crop.at({0, 0, 0}) == 7);
  CHECK_THROWS_AS(random_crop(sq, 6, 1, crng), keras::ValueError);
}

TEST_CASE("Hostile images are refused from their headers, naming the file and the limit (fuzz regressions)",
          "[data][image][limits]") {
  const fs::path corpus = fs::path(KERASCPP_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "image";
  auto bytes_of = [&](const std::string& name) {
    std::ifstream f(corpus / name, std::ios::binary);
    REQUIRE(f);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return s.substr(3);  // the fuzz target's 3 option bytes (fuzz_image.cpp)
  };
  auto error_of = [&](const std::string& name) -> std::string {
    const std::string b = bytes_of(name);
    try {
      decode_image_bytes(reinterpret_cast<const unsigned char*>(b.data()), b.size(), 3, name);
    } catch (const keras::Error& e) {
      return e.what();
    }
    return "<decoded>";
  };
  REQUIRE(image_limits().max_pixels == 89478485);
  CHECK_THAT(error_of("regress_png_30000x30000.png"),
             Catch::Contains("regress_png_30000x30000.png") && Catch::Contains("30000 x 30000") &&
                 Catch::Contains("89478485") && Catch::Contains("image_limits().max_pixels"));
  // IHDR's 32-bit width and height multiply past 2^63 (a UBSan finding of CI's fuzzing)
  CHECK_THAT(error_of("regress_png_dims_overflow_4294967295.png"),
             Catch::Contains("4294967295 x 4294967295") && Catch::Contains("image_limits().max_pixels"));
  CHECK_THAT(error_of("regress_jpeg_bomb_8000x8000.jpg"),
             Catch::Contains("8000 x 8000") && Catch::Contains("decompression bomb"));
  CHECK_THAT(error_of("regress_bmp_bomb_4784143x12.bmp"),
             Catch::Contains("4784143 x 12") && Catch::Contains("decompression bomb"));
  CHECK_THAT(error_of("regress_jpeg_dht_overflow.jpg"), Catch::Contains("corrupt JPEG"));
  CHECK_THAT(error_of("regress_jpeg_fill_bytes_dht_overflow.jpg"), Catch::Contains("JPEG"));
  // legal, if odd: an empty IDAT chunk (stb 2.27 would memcpy from a null pointer); decodes or is refused cleanly
  CHECK(!error_of("regress_png_empty_idat.png").empty());
  // a file over the size limit is refused from its size (sparse: nothing is read)
  fs::path d = fresh_dir("limits");
  { std::ofstream f(d / "huge.png", std::ios::binary); }
  fs::resize_file(d / "huge.png", std::uintmax_t(1) << 30);
  try {
    decode_image((d / "huge.png").string());
    FAIL("no error");
  } catch (const keras::IOError& e) {
    CHECK_THAT(e.what(), Catch::Contains("huge.png") && Catch::Contains("max_file_bytes"));
  }
  fs::remove_all(d);
  // an image under the caps still decodes
  std::vector<unsigned char> px = solid(300, 200, 10, 20, 30);
  std::string png;
  stbi_write_png_to_func(
      [](void* ctx, void* data, int n) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), n); }, &png,
      300, 200, 3, px.data(), 900);
  auto img = decode_image_bytes(reinterpret_cast<const unsigned char*>(png.data()), png.size(), 3);
  CHECK(img.width == 300);
  CHECK(img.at(199, 299, 2) == 30);
}
