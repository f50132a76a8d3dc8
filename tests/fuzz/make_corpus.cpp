// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) and the regression
// inputs of every finding (files named regress_*). Run by `tools/fuzz.sh --make-corpus`; the
// files are small and kept in the repository. Uses the library itself (save_model, save_npy) and
// stb_image_write for images, so the seeds are what kerascpp and common tools write.
#include <keras/all.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb_image_write.h>

#include "weights_model.hpp"

namespace fs = std::filesystem;
using namespace keras;

namespace {
fs::path g_root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root / target);
  std::ofstream f(g_root / target / name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string slurp(const fs::path& p) { return io::read_file(p.string()); }

/// model.json of a saved model, with its shard renamed to the one the target writes.
std::string saved_json(Model<float>& m) {
  fs::path d = fs::temp_directory_path() / "kerascpp_corpus_model";
  fs::remove_all(d);
  io::save_model(m, d.string());
  json j = json::parse(slurp(d / "model.json"));
  j["weightsManifest"][0]["paths"] = json::array({"group1-shard1of1.bin"});
  fs::remove_all(d);
  return j.dump();
}

void model_json_seeds() {
  const std::string t = "model_json";
  {
    Sequential<float> m("mlp");
    m.add(Input<float>({5}, "in"));
    m.add(layers::Dense<float>(4, {.activation = "relu", .name = "d1"}));
    m.add(layers::Dropout<float>(0.5));
    m.add(layers::Dense<float>(3, {.activation = "softmax", .name = "d2"}));
    put(t, "sequential_dense.json", saved_json(m));
  }
  {
    auto in = Input<float>({8, 8, 3}, "img");
    auto x = layers::Rescaling<float>(1.0 / 127.5, -1.0)(in);
    x = layers::ZeroPadding2D<float>(layers::Padding2D({0, 1}, {0, 1}))(x);
    x = layers::Conv2D<float>(4, 3, {.strides = 2, .name = "c1"})(x);
    x = layers::BatchNormalization<float>({.name = "bn"})(x);
    x = layers::ReLU<float>({.max_value = 6.0})(x);
    auto a = layers::DepthwiseConv2D<float>(3, {.padding = "same", .name = "dw"})(x);
    auto b = layers::Conv2D<float>(4, 1, {.name = "pw"})(x);
    auto s = layers::Add<float>()(std::vector<KerasTensor<float>>{a, b});
    auto c = layers::Concatenate<float>()(std::vector<KerasTensor<float>>{s, x});
    auto p = layers::MaxPooling2D<float>(2)(c);
    auto q = layers::AveragePooling2D<float>(1)(p);
    auto g = layers::GlobalAveragePooling2D<float>()(q);
    auto r = layers::Reshape<float>({2, 4})(g);
    auto f = layers::Flatten<float>()(r);
    auto o = layers::Dense<float>(2, {.name = "out"})(f);
    auto sm = layers::Softmax<float>()(o);
    auto act = layers::Activation<float>("linear")(sm);
    Model<float> m(in, act, "cnn");
    put(t, "functional_cnn.json", saved_json(m));
    auto g2 = layers::GlobalMaxPooling2D<float>()(x);
    Model<float> m2(in, g2, "gmp");
    put(t, "functional_gmp.json", saved_json(m2));
  }
  {
    Sequential<float> inner("inner");
    inner.add(Input<float>({4}, "inner_in"));
    inner.add(layers::Dense<float>(3, {.name = "id"}));
    Sequential<float> m("outer");
    m.add(Input<float>({4}, "in"));
    m.add(std::make_shared<Sequential<float>>(std::move(inner)));
    put(t, "nested.json", saved_json(m));
  }
  // A Keras 3 functional config (keras_history inbound nodes), as keras_h5_to_tfjs.py writes it.
  const std::string k3 =
      R"({"format":"layers-model","modelTopology":{"class_name":"Functional","config":{"name":"k3","layers":[
{"class_name":"InputLayer","name":"in","config":{"batch_shape":[null,3],"name":"in"},"inbound_nodes":[]},
{"class_name":"Dense","name":"d","config":{"name":"d","units":2},"inbound_nodes":[{"args":[{"class_name":"__keras_tensor__","config":{"shape":[null,3],"keras_history":["in",0,0]}}],"kwargs":{}}]}],
"input_layers":[["in",0,0]],"output_layers":[["d",0,0]]}},
"weightsManifest":[{"paths":["group1-shard1of1.bin"],"weights":[{"name":"d/kernel","shape":[3,2],"dtype":"float32"},{"name":"d/bias","shape":[2],"dtype":"float32"}]}]})";
  put(t, "keras3_functional.json", k3);
  // Regressions (issue 16).
  auto edit = [&](const std::string& base, const std::string& from, const std::string& to) {
    std::string s = base;
    auto p = s.find(from);
    if (p == std::string::npos) throw std::runtime_error("corpus: '" + from + "' not in the seed");
    return s.replace(p, from.size(), to);
  };
  const std::string zp = slurp(g_root / t / "functional_cnn.json");
  put(t, "regress_zeropadding_empty.json", edit(zp, "\"padding\":[[0,1],[0,1]]", "\"padding\":[]"));
  put(t, "regress_zeropadding_one_pair.json", edit(zp, "\"padding\":[[0,1],[0,1]]", "\"padding\":[[1,1]]"));
  put(t, "regress_keras_history_empty.json", edit(k3, "\"keras_history\":[\"in\",0,0]", "\"keras_history\":[]"));
  put(t, "regress_deep_nesting.json",
      "{\"modelTopology\":" + std::string(300000, '[') + std::string(300000, ']') + "}");
  put(t, "regress_number_1e400.json", edit(k3, "\"units\":2", "\"units\":1e400"));
  put(t, "regress_units_1e300.json", edit(k3, "\"units\":2", "\"units\":1e300"));
  put(t, "regress_dim_1e300.json", edit(k3, "\"batch_shape\":[null,3]", "\"batch_shape\":[null,1e300]"));
  put(t, "regress_weight_shape_1e300.json", edit(k3, "\"shape\":[3,2]", "\"shape\":[1e300,2]"));
  put(t, "regress_dims_2p32.json",
      edit(k3, "\"batch_shape\":[null,3]", "\"batch_shape\":[null,4294967296,4294967296]"));
  put(t, "regress_dense_100000x100000.json",
      edit(edit(k3, "\"batch_shape\":[null,3]", "\"batch_shape\":[null,100000]"), "\"units\":2", "\"units\":100000"));
  put(t, "regress_weight_1e12_elements.json", edit(k3, "\"shape\":[3,2]", "\"shape\":[1000000,1000000]"));
  put(t, "regress_shard_dev_zero.json", edit(k3, "\"paths\":[\"group1-shard1of1.bin\"]", "\"paths\":[\"/dev/zero\"]"));
  put(t, "regress_shard_parent_dev_zero.json",
      edit(k3, "\"paths\":[\"group1-shard1of1.bin\"]", "\"paths\":[\"../../../../../../dev/zero\"]"));
  put(t, "regress_output_layers_empty.json", edit(k3, "\"output_layers\":[[\"d\",0,0]]", "\"output_layers\":[]"));
}

void weights_seeds() {
  std::vector<std::string> shards;
  fs::path d = fs::temp_directory_path() / "kerascpp_corpus_weights";
  fs::remove_all(d);
  fuzz::weights_model_variants(d, &shards);
  fs::remove_all(d);
  for (std::size_t v = 0; v < shards.size(); ++v) {
    const std::string tag(1, static_cast<char>(v));
    const std::string name = fuzz::kWeightVariants[v];
    put("weights", name + "_valid.bin", tag + shards[v]);
    put("weights", "regress_" + name + "_truncated.bin", tag + shards[v].substr(0, shards[v].size() / 2));
    put("weights", "regress_" + name + "_longer.bin", tag + shards[v] + std::string(16, '\x7f'));
  }
  std::string nan_shard = shards[0];
  for (std::size_t i = 0; i + 4 <= nan_shard.size(); i += 4) {
    const float q = std::nanf("");
    std::memcpy(&nan_shard[i], &q, 4);
  }
  put("weights", "float32_nan.bin", std::string(1, '\0') + nan_shard);
}

std::string npy_bytes(const std::string& descr, const std::string& shape, const std::string& data, int version = 1) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t pre = version == 1 ? 10 : 12;
  header += std::string((64 - (pre + header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(version) + '\0';
  const std::uint32_t hl = static_cast<std::uint32_t>(header.size());
  out += static_cast<char>(hl & 0xff);
  out += static_cast<char>((hl >> 8) & 0xff);
  if (version > 1) {
    out += static_cast<char>((hl >> 16) & 0xff);
    out += static_cast<char>(hl >> 24);
  }
  return out + header + data;
}

void npy_seeds() {
  fs::path p = fs::temp_directory_path() / "kerascpp_corpus.npy";
  Tensor<float> a({2, 3}, {1, 2, 3, 4, 5, 6});
  io::save_npy(p.string(), a);
  put("npy", "f4_2x3.npy", slurp(p));
  Tensor<double> b({4}, {0.5, -1, 2, 1e300});
  io::save_npy(p.string(), b);
  put("npy", "f8_4.npy", slurp(p));
  Tensor<float> s({}, 0.0f);
  fs::remove(p);
  put("npy", "i4_3.npy", npy_bytes("<i4", "(3,)", std::string("\x01\0\0\0\xff\xff\xff\xff\x07\0\0\0", 12)));
  put("npy", "u1_2x2.npy", npy_bytes("|u1", "(2, 2)", "\x01\x02\x03\xff"));
  put("npy", "i1_2.npy", npy_bytes("|i1", "(2,)", "\x80\x7f"));
  put("npy", "i8_1.npy", npy_bytes("<i8", "(1,)", std::string("\x05\0\0\0\0\0\0\x80", 8)));
  put("npy", "scalar_f4.npy", npy_bytes("<f4", "()", std::string(4, '\0')));
  put("npy", "v2_f4_1.npy", npy_bytes("<f4", "(1,)", std::string(4, '\0'), 2));
  put("npy", "empty_0x3.npy", npy_bytes("<f4", "(0, 3)", ""));
  // Regressions (issue 16).
  put("npy", "regress_header_len_4g.npy", std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12));
  put("npy", "regress_shape_400gb.npy", npy_bytes("<f4", "(100000, 100000, 10)", std::string(16, '\0')));
  put("npy", "regress_shape_not_numeric.npy", npy_bytes("<f4", "(abc,)", ""));
  put("npy", "regress_shape_huge_digits.npy", npy_bytes("<f4", "(99999999999999999999999,)", ""));
  put("npy", "regress_shape_2p32x2p32.npy", npy_bytes("<f4", "(4294967296, 4294967296)", ""));
  put("npy", "regress_truncated_data.npy", npy_bytes("<f8", "(3,)", std::string(10, '\0')));
}

void write_cb(void* ctx, void* data, int n) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<std::size_t>(n));
}

void image_seeds() {
  // Byte 0: channels / interpolation / crop; bytes 1, 2: output size (fuzz_image.cpp).
  const std::string pre[] = {std::string("\x02\x07\x05", 3), std::string("\x05\x10\x03", 3),
                             std::string("\x0b\x01\x1f", 3), std::string("\x00\x08\x08", 3)};
  int k = 0;
  for (int comp : {1, 3, 4}) {
    const int w = 7 + comp, h = 5;
    std::vector<unsigned char> px(static_cast<std::size_t>(w * h * comp));
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>((i * 37) % 256);
    std::string png, bmp, jpg;
    stbi_write_png_to_func(write_cb, &png, w, h, comp, px.data(), w * comp);
    stbi_write_bmp_to_func(write_cb, &bmp, w, h, comp, px.data());
    stbi_write_jpg_to_func(write_cb, &jpg, w, h, comp, px.data(), 90);
    put("image", "c" + std::to_string(comp) + ".png", pre[k % 4] + png);
    put("image", "c" + std::to_string(comp) + ".bmp", pre[(k + 1) % 4] + bmp);
    put("image", "c" + std::to_string(comp) + ".jpg", pre[(k + 2) % 4] + jpg);
    ++k;
  }
  {  // a 16 x 16 JPEG (more than one MCU) and a 2 x 2 GIF
    std::vector<unsigned char> px(16 * 16 * 3);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i % 251);
    std::string jpg;
    stbi_write_jpg_to_func(write_cb, &jpg, 16, 16, 3, px.data(), 50);
    put("image", "c3_16x16.jpg", pre[3] + jpg);
  }
  const unsigned char gif[] = {'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x80, 0, 0, 0,    0,    0, 255, 255,
                               255, ',', 0,   0,   0,   0,   2, 0, 2, 0, 0,    2, 2, 0x44, 0x01, 0, ';'};
  put("image", "bw_2x2.gif", pre[0] + std::string(reinterpret_cast<const char*>(gif), sizeof(gif)));
  // Regressions (issue 16).
  // 55 bytes: a DHT whose code counts sum past 256 (stb 2.27 writes past its size table).
  std::string dht =
      std::string("\xFF\xD8\xFF\xC4\x00\x13\x00", 7) + std::string(16, '\x40') + std::string("\xFF\xD9", 2);
  dht += std::string(55 - dht.size(), '\0');
  put("image", "regress_jpeg_dht_overflow.jpg", pre[2] + dht);
  // JPEG bomb: a complete, tiny baseline JPEG that declares 8000 x 8000 (stb pads missing data).
  std::string dqt = std::string("\xFF\xDB\x00\x43\x00", 5) + std::string(64, '\x01');
  std::string sof = std::string("\xFF\xC0\x00\x0B\x08\x1F\x40\x1F\x40\x01\x01\x11\x00", 13);
  std::string h_dc = std::string("\xFF\xC4\x00\x14\x00\x01", 6) + std::string(15, '\0') + std::string("\x00", 1);
  std::string h_ac = std::string("\xFF\xC4\x00\x14\x10\x01", 6) + std::string(15, '\0') + std::string("\x00", 1);
  std::string sos = std::string("\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00", 10);
  put("image", "regress_jpeg_bomb_8000x8000.jpg",
      pre[1] + std::string("\xFF\xD8", 2) + dqt + sof + h_dc + h_ac + sos + std::string("\x00\x00\xFF\xD9", 4));
  // BMP declaring 4784143 x 12 in 1,270 bytes.
  std::string bmp = "BM";
  auto le32 = [](std::uint32_t v) {
    return std::string{char(v & 255), char((v >> 8) & 255), char((v >> 16) & 255), char(v >> 24)};
  };
  auto le16 = [](std::uint16_t v) { return std::string{char(v & 255), char(v >> 8)}; };
  bmp += le32(1270) + le32(0) + le32(54) + le32(40) + le32(4784143) + le32(12) + le16(1) + le16(24) + le32(0) +
         le32(0) + le32(2835) + le32(2835) + le32(0) + le32(0);
  bmp += std::string(1270 - bmp.size(), '\x55');
  put("image", "regress_bmp_bomb_4784143x12.bmp", pre[0] + bmp);
  // PNG whose header declares 30000 x 30000.
  std::string png;
  std::vector<unsigned char> one(3, 9);
  stbi_write_png_to_func(write_cb, &png, 1, 1, 3, one.data(), 3);
  png.replace(16, 8, std::string("\x00\x00\x75\x30\x00\x00\x75\x30", 8));
  put("image", "regress_png_30000x30000.png", pre[1] + png);
}

void layer_config_seeds() {
  // Byte 0: the input shape index (fuzz_layer_config.cpp); then {"class_name", "config"}.
  auto seed = [](int shape, const std::string& name, const json& j) {
    put("layer_config", name + ".json", std::string(1, char(shape)) + j.dump());
  };
  auto cfg = [](const layers::Layer<float>& l) {
    return json{{"class_name", l.class_name()}, {"config", l.get_config()}};
  };
  seed(0, "Conv2D", cfg(layers::Conv2D<float>(2, 3, {.strides = 2, .padding = "same", .name = "c"})));
  seed(0, "DepthwiseConv2D", cfg(layers::DepthwiseConv2D<float>(3, {.depth_multiplier = 2, .name = "dw"})));
  seed(0, "BatchNormalization", cfg(layers::BatchNormalization<float>({.name = "bn"})));
  seed(0, "MaxPooling2D", cfg(layers::MaxPooling2D<float>(2)));
  seed(4, "AveragePooling2D",
       cfg(layers::AveragePooling2D<float>(3, {.strides = layers::Size2(2, 1), .padding = "same"})));
  seed(0, "GlobalAveragePooling2D", cfg(layers::GlobalAveragePooling2D<float>({.keepdims = true})));
  seed(0, "GlobalMaxPooling2D", cfg(layers::GlobalMaxPooling2D<float>()));
  seed(0, "ZeroPadding2D", cfg(layers::ZeroPadding2D<float>(layers::Padding2D({1, 2}, {0, 1}))));
  seed(1, "Dense", cfg(layers::Dense<float>(3, {.activation = "relu"})));
  seed(1, "Dropout", cfg(layers::Dropout<float>(0.25)));
  seed(2, "Flatten", cfg(layers::Flatten<float>()));
  seed(2, "Reshape", cfg(layers::Reshape<float>({3, -1})));
  seed(1, "Rescaling", cfg(layers::Rescaling<float>(0.5, 1)));
  seed(1, "Activation", cfg(layers::Activation<float>("sigmoid")));
  seed(1, "ReLU", cfg(layers::ReLU<float>({.max_value = 6.0, .negative_slope = 0.1})));
  seed(2, "Softmax", cfg(layers::Softmax<float>()));
  seed(0, "Add", cfg(layers::Add<float>()));
  seed(0, "RandomFlip", cfg(layers::RandomFlip<float>("horizontal_and_vertical", {.seed = 1})));
  seed(0, "RandomRotation", cfg(layers::RandomRotation<float>(0.2, {.fill_mode = "wrap", .seed = 2})));
  seed(4, "RandomZoom",
       cfg(layers::RandomZoom<float>(layers::FactorRange{-0.5, 0.3}, layers::FactorRange{-0.2, 0.2},
                                     {.interpolation = "nearest"})));
  seed(0, "RandomTranslation",
       cfg(layers::RandomTranslation<float>(0.3, 0.2, {.fill_mode = "constant", .fill_value = 2})));
  seed(0, "Concatenate", cfg(layers::Concatenate<float>()));
  seed(1, "InputLayer",
       json{{"class_name", "InputLayer"}, {"config", {{"batch_input_shape", {nullptr, 5}}, {"name", "in"}}}});
  {
    Sequential<float> m("seq");
    m.add(Input<float>({5}, "in"));
    m.add(layers::Dense<float>(2, {.name = "d"}));
    seed(1, "Sequential", json{{"class_name", "Sequential"}, {"config", m.get_config()}});
    auto in = Input<float>({4, 3}, "in");
    Model<float> f(in, layers::Flatten<float>()(in), "fn");
    seed(2, "Functional", json{{"class_name", "Functional"}, {"config", f.get_config()}});
  }
  // Regressions (issue 16) and absurd values that must be refused before allocating.
  auto raw = [](int shape, const std::string& name, const std::string& text) {
    put("layer_config", name + ".json", std::string(1, char(shape)) + text);
  };
  raw(0, "regress_zeropadding_empty", R"({"class_name":"ZeroPadding2D","config":{"padding":[]}})");
  raw(0, "regress_zeropadding_one_pair", R"({"class_name":"ZeroPadding2D","config":{"padding":[[1,1]]}})");
  raw(1, "regress_dense_units_1e300", R"({"class_name":"Dense","config":{"units":1e300}})");
  raw(1, "regress_dense_units_negative", R"({"class_name":"Dense","config":{"units":-5}})");
  raw(1, "regress_dense_units_2p31", R"({"class_name":"Dense","config":{"units":2147483647}})");
  raw(0, "regress_conv_kernel_huge",
      R"({"class_name":"Conv2D","config":{"filters":4,"kernel_size":[1000000,1000000],"padding":"same"}})");
  raw(0, "regress_conv_strides_huge",
      R"({"class_name":"Conv2D","config":{"filters":4,"kernel_size":3,"strides":9223372036854775807}})");
  raw(0, "regress_dw_multiplier_huge",
      R"({"class_name":"DepthwiseConv2D","config":{"kernel_size":3,"depth_multiplier":1e18}})");
  raw(0, "regress_pool_size_float", R"({"class_name":"MaxPooling2D","config":{"pool_size":[2.5,2]}})");
  raw(1, "regress_input_dims_2p32",
      R"({"class_name":"InputLayer","config":{"batch_input_shape":[null,4294967296,4294967296]}})");
  raw(2, "regress_reshape_overflow",
      R"({"class_name":"Reshape","config":{"target_shape":[2147483647,2147483647,2147483647]}})");
  raw(0, "regress_bn_axis_1e300", R"({"class_name":"BatchNormalization","config":{"axis":1e300}})");
  raw(0, "regress_concat_axis_1e300", R"({"class_name":"Concatenate","config":{"axis":1e300}})");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_corpus OUT_DIR (tests/fuzz/corpus)\n";
    return 2;
  }
  g_root = argv[1];
  model_json_seeds();
  weights_seeds();
  npy_seeds();
  image_seeds();
  layer_config_seeds();
  std::cout << "seed corpora written to " << g_root << "\n";
  return 0;
}
