// Fuzz target: weights shards against a fixed valid model.json (weights_model.hpp: Conv2D,
// BatchNormalization, DepthwiseConv2D, a nested Sequential with Dense). Input byte 0 picks the
// manifest variant (float32, uint8-quantized, float16); the rest is the shard. A loaded model
// also predicts once.
#include "weights_model.hpp"

#include "fuzz_common.hpp"

namespace {
std::vector<std::string> g_texts;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_texts = fuzz::weights_model_variants(fuzz::scratch() / "saved");
  for (std::size_t i = 0; i < g_texts.size(); ++i) {
    auto d = fuzz::scratch() / ("v" + std::to_string(i));
    std::filesystem::create_directories(d);
    fuzz::write(d / "model.json", g_texts[i]);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto d = fuzz::scratch() / ("v" + std::to_string(data[0] % g_texts.size()));
  fuzz::write(d / "group1-shard1of1.bin", data + 1, size - 1);
  try {
    auto m = keras::models::load_model<float>(d.string());
    keras::Tensor<float> x({2, 6, 6, 2}, 0.5f);
    auto y = m->predict(x);
    if (y.shape() != keras::Shape{2, 3}) __builtin_trap();  // a loaded model must predict its declared shape
  } catch (const keras::Error&) {}
  return 0;
}
