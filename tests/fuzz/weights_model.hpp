// The fixed model of the weights-shard fuzz target (and its seeds, tools/fuzz_corpus.cpp): a
// Sequential with Conv2D, BatchNormalization, DepthwiseConv2D and a nested Sequential (global
// average pooling + Dense), saved as model.json in three manifest variants: float32, uint8
// quantized and float16. The fuzzed bytes are the shard.
#pragma once
#include <keras/all.hpp>

namespace fuzz {

inline const char* const kWeightVariants[] = {"float32", "uint8", "float16"};

/// Saves the model into `dir` and returns the model.json text of each variant; `shards` gets the
/// matching valid shard of each variant.
inline std::vector<std::string> weights_model_variants(const std::filesystem::path& dir,
                                                       std::vector<std::string>* shards = nullptr) {
  using namespace keras;
  keras::set_random_seed(7);
  Sequential<float> inner("inner");
  inner.add(Input<float>({4, 4, 4}, "inner_in"));
  inner.add(layers::GlobalAveragePooling2D<float>({.name = "gap"}));
  inner.add(layers::Dense<float>(3, {.activation = "softmax", .name = "dense"}));
  Sequential<float> m("outer");
  m.add(Input<float>({6, 6, 2}, "in"));
  m.add(layers::Conv2D<float>(4, 3, {.padding = "same", .name = "conv"}));
  m.add(layers::BatchNormalization<float>({.name = "bn"}));
  m.add(layers::DepthwiseConv2D<float>(3, {.name = "dw"}));
  m.add(std::make_shared<Sequential<float>>(std::move(inner)));
  io::save_model(m, dir.string());
  json j = json::parse(io::read_file((dir / "model.json").string()));
  std::string f32;
  for (auto& p : j["weightsManifest"][0]["paths"]) f32 += io::read_file((dir / p.get<std::string>()).string());
  j["weightsManifest"][0]["paths"] = json::array({"group1-shard1of1.bin"});
  std::vector<std::string> texts;
  std::vector<std::string> valid;
  for (const char* v : kWeightVariants) {
    json jv = j;
    std::string shard;
    std::size_t off = 0;
    for (auto& w : jv["weightsManifest"][0]["weights"]) {
      Index n = 1;
      for (auto& d : w["shape"]) n *= d.get<Index>();
      for (Index i = 0; i < n; ++i, off += 4) {
        float f;
        std::memcpy(&f, f32.data() + off, 4);
        if (std::string(v) == "uint8")
          shard += static_cast<char>(static_cast<std::uint8_t>(std::clamp((f + 1.0f) * 127.5f, 0.0f, 255.0f)));
        else if (std::string(v) == "float16") {
          std::uint16_t h = 0x3c00;  // 1.0: the exact values do not matter, only the layout
          if (f < 0) h = 0xbc00;
          shard.append(reinterpret_cast<const char*>(&h), 2);
        } else
          shard.append(reinterpret_cast<const char*>(&f), 4);
      }
      if (std::string(v) == "uint8") w["quantization"] = {{"dtype", "uint8"}, {"scale", 2.0 / 255.0}, {"min", -1.0}};
      if (std::string(v) == "float16") w["quantization"] = {{"dtype", "float16"}};
    }
    texts.push_back(jv.dump());
    valid.push_back(shard);
  }
  if (shards) *shards = valid;
  return texts;
}

}  // namespace fuzz
