// Fuzz target: Keras config -> layer construction (io::layer_from_config) for every registered
// layer and for nested models. Byte 0 picks the input shape the layer is built for, the rest is the
// layer's JSON {"class_name": ..., "config": ...} (the seeds hold one per registered layer, and
// Sequential and Functional; the dictionary holds the class names and config keys). The layer is built under a
// WeightBudget of 2^22 elements: absurd kernel sizes, strides, units or shapes must be refused (keras::Error) before
// they allocate. A built layer runs forward and backward on a batch of 2 when its output is small, and its config must
// round-trip: from_config(get_config()) rebuilds a layer with the same config.
#include <keras/all.hpp>

#include "fuzz_common.hpp"

using keras::Index;
using keras::Shape;

namespace {
const std::vector<Shape> kShapes = {{-1, 6, 6, 3}, {-1, 5}, {-1, 4, 3}, {-1, 1, 1, 2}, {-1, 9, 7, 1}, {-1, 2, 2, 2, 2}};

Index per_sample(const Shape& s) {
  Index n = 1;
  for (std::size_t i = 1; i < s.size(); ++i) {
    if (s[i] < 0 || s[i] > (Index(1) << 20) / n) return -1;
    n *= s[i];
  }
  return n;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const Shape& in_shape = kShapes[data[0] % kShapes.size()];
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    keras::io::detail::check_json_depth(text, "fuzz", 100);  // as the loader does
  } catch (const keras::Error&) {
    return 0;
  }
  nlohmann::json lj = nlohmann::json::parse(text, nullptr, false);
  if (lj.is_discarded()) return 0;  // JSON syntax is the model_json target's business
  try {
    keras::WeightBudget budget(Index(1) << 22, "fuzz");
    auto layer = keras::io::layer_from_config<float>(lj);
    const bool multi = layer->multiple_inputs();
    std::vector<Shape> shapes = layer->built()
                                    ? layer->input_shapes()
                                    : (multi ? std::vector<Shape>{in_shape, in_shape} : std::vector<Shape>{in_shape});
    layer->build(shapes);
    // config round trip
    const auto c1 = layer->get_config();
    auto again = keras::io::layer_from_config<float>({{"class_name", layer->class_name()}, {"config", c1}});
    if (again->get_config() != c1) __builtin_trap();  // from_config(get_config()) must rebuild an equal layer
    const Shape out = layer->output_shape();
    Index n_out = per_sample(out);
    for (auto& s : shapes)
      if (per_sample(s) < 0) n_out = -1;
    if (n_out < 0 || n_out > (1 << 16)) return 0;
    std::vector<keras::Tensor<float>> xs;
    for (auto s : shapes) {
      s[0] = 2;
      xs.emplace_back(s);
      for (Index i = 0; i < xs.back().size(); ++i) xs.back()[i] = 0.25f * static_cast<float>(i % 9) - 1.0f;
    }
    typename keras::layers::Layer<float>::Inputs in;
    for (auto& x : xs) in.push_back(&x);
    keras::Tensor<float> y;
    layer->forward(in, y, true);
    keras::Tensor<float> dy(y.shape(), 1.0f);
    std::vector<keras::Tensor<float>> dxs(xs.size());
    typename keras::layers::Layer<float>::GradInputs dx;
    for (auto& d : dxs) dx.push_back(&d);
    layer->backward(in, y, dy, dx);
    for (std::size_t k = 0; k < xs.size(); ++k)
      if (dxs[k].shape() != xs[k].shape()) __builtin_trap();  // a gradient has its input's shape
  } catch (const keras::Error&) {}
  return 0;
}
