// Fuzz target: the model loader (io::load_model) from model.json text. The input is the text of
// model.json; next to it the target writes a small valid weights shard sized to what the manifest
// asks for (capped at 64 KiB, deterministic values), so that well-formed inputs get past the
// weights and into model building, weight assignment and a prediction.
#include <keras/all.hpp>

#include "fuzz_common.hpp"

using keras::Index;

namespace {

/// Bytes the manifest describes (best effort, harness-side: any surprise gives the fixed size).
std::size_t manifest_bytes(const std::string& text) {
  const std::size_t fallback = 1024;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("weightsManifest") || !j["weightsManifest"].is_array()) return fallback;
  double total = 0;
  for (auto& g : j["weightsManifest"]) {
    if (!g.is_object() || !g.contains("weights") || !g["weights"].is_array()) return fallback;
    for (auto& w : g["weights"]) {
      if (!w.is_object() || !w.contains("shape") || !w["shape"].is_array()) return fallback;
      double n = 1;
      for (auto& d : w["shape"]) n *= d.is_number() ? d.get<double>() : 1.0;
      std::string dt = w.contains("dtype") && w["dtype"].is_string() ? w["dtype"].get<std::string>() : "float32";
      if (w.contains("quantization") && w["quantization"].is_object() && w["quantization"].contains("dtype") &&
          w["quantization"]["dtype"].is_string())
        dt = w["quantization"]["dtype"].get<std::string>();
      total += n * (dt == "uint8" || dt == "bool" ? 1 : dt == "float16" || dt == "uint16" ? 2 : 4);
    }
  }
  return total >= 0 && total <= 65536 ? static_cast<std::size_t>(total) : fallback;
}

/// Largest per-sample element count of any layer output (nested models included), or -1 if unknown.
Index largest_output(keras::Model<float>& m) {
  Index big = 0;
  for (auto& l : m.layers()) {
    if (auto* sub = dynamic_cast<keras::Model<float>*>(l.get())) {
      Index b = largest_output(*sub);
      if (b < 0) return -1;
      big = std::max(big, b);
    }
    if (!l->built()) return -1;
    keras::Shape s = l->output_shape();
    Index n = 1;
    for (std::size_t i = 1; i < s.size(); ++i) {
      if (s[i] < 0) return -1;
      if (s[i] > (Index(1) << 20) / n) return -1;
      n *= s[i];
    }
    big = std::max(big, n);
  }
  return big;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = fuzz::scratch() / "model";
  std::filesystem::create_directories(dir);
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::write(dir / "model.json", text);
  std::string shard(manifest_bytes(text), '\0');
  for (std::size_t i = 0; i + 4 <= shard.size(); i += 4) {
    float v = 0.01f * static_cast<float>(static_cast<int>(i % 97) - 48);
    std::memcpy(&shard[i], &v, 4);
  }
  fuzz::write(dir / "group1-shard1of1.bin", shard);
  try {
    auto m = keras::models::load_model<float>(dir.string());
    (void)m->get_config().dump();
    auto shapes = m->input_shapes();
    Index big = largest_output(*m);
    if (big < 0 || big > (1 << 16) || shapes.empty()) return 0;
    std::vector<keras::Tensor<float>> xs;
    for (auto s : shapes) {
      for (std::size_t i = 1; i < s.size(); ++i)
        if (s[i] < 0) return 0;
      if (!s.empty()) s[0] = 2;
      xs.emplace_back(s);
      for (Index i = 0; i < xs.back().size(); ++i) xs.back()[i] = 0.1f * static_cast<float>(i % 7);
    }
    if (xs.size() == 1) (void)m->predict(xs[0]);
  } catch (const keras::Error&) {}
  return 0;
}
