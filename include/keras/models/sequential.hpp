// keras::Sequential<T>: a plain stack of layers, each with one input and one output.
#pragma once
#include <initializer_list>
#include <type_traits>

#include "model.hpp"

namespace keras {

template <class T = float>
class Sequential : public Model<T> {
 public:
  using Layer = layers::Layer<T>;
  std::string class_name() const override { return "Sequential"; }
  std::shared_ptr<Layer> move_to_shared() override { return std::make_shared<Sequential>(std::move(*this)); }

  /// One element of the list form Sequential<float>({layers::Flatten(...), layers::Dense(10), ...}):
  /// a layer temporary (moved into the model), a shared_ptr to a layer (kept shared), or a
  /// keras::Input. Only the constructor below takes it.
  class Entry {
   public:
    template <class L,
              class = std::enable_if_t<std::is_base_of_v<Layer, std::decay_t<L>> && !std::is_lvalue_reference_v<L>>>
    Entry(L&& layer) : layer_(std::forward<L>(layer).move_to_shared()) {}  // NOLINT: implicit by design
    template <class L, class = std::enable_if_t<std::is_base_of_v<Layer, L>>>
    Entry(std::shared_ptr<L> layer) : layer_(std::move(layer)) {}                                         // NOLINT
    Entry(const KerasTensor<T>& input) : layer_(std::static_pointer_cast<Layer>(input.node()->layer)) {}  // NOLINT
    std::shared_ptr<Layer> layer() const { return layer_; }

   private:
    std::shared_ptr<Layer> layer_;
  };

  explicit Sequential(const std::string& name = "")
      : Model<T>(name.empty() ? layers::detail::unique_name("sequential") : name) {}
  Sequential(std::vector<std::shared_ptr<Layer>> ls, const std::string& name = "") : Sequential(name) {
    for (auto& l : ls) add(std::move(l));
  }
  /// Keras's Sequential([...]): layers as temporaries, shared_ptrs or a leading keras::Input.
  Sequential(std::initializer_list<Entry> ls, const std::string& name = "") : Sequential(name) {
    for (auto& e : ls) add(e.layer());
  }
  Sequential(Sequential&&) = default;

  /// Adds a layer (a temporary, or a shared_ptr to keep a handle). An InputLayer (or
  /// keras::Input), or an `input_shape` option on the first layer, fixes the input shape;
  /// otherwise the model builds on first data.
  void add(std::shared_ptr<Layer> layer) {
    if (!layer) throw ValueError("Sequential.add: null layer");
    if (!input_ && layers_.empty() && !layer->input_shape_arg().empty() &&
        !std::dynamic_pointer_cast<layers::InputLayer<T>>(layer)) {
      // Keras 2's Sequential.add: Input(batch_shape=(None, *input_shape), name=layer.name + "_input").
      try {
        input_ = std::make_shared<layers::InputLayer<T>>(
            layers::InputLayerOptions{layer->input_shape_arg(), -1, layer->name() + "_input"});
      } catch (const ValueError& e) {
        throw ValueError("Sequential '" + this->name() + "': layer '" + layer->name() + "' (" + layer->class_name() +
                         "): invalid input_shape " + shape_str(layer->input_shape_arg()) +
                         " (dimensions must be positive or -1)");
      }
      try {
        layers_.push_back(layer);
        rebuild();
        return;
      } catch (...) {
        layers_.clear();
        input_.reset();
        throw;
      }
    }
    if (auto in = std::dynamic_pointer_cast<layers::InputLayer<T>>(layer)) {
      if (input_ || !layers_.empty())
        throw ValueError("Sequential '" + this->name() + "': an InputLayer can only be the first layer");
      input_ = in;
      rebuild();
      return;
    }
    if (layer->multiple_inputs())
      throw ValueError("Sequential '" + this->name() + "': layer '" + layer->name() + "' takes several inputs");
    for (auto& l : layers_)
      if (l->name() == layer->name())
        throw ValueError("All layers added to a Sequential model should have unique names. Name '" + layer->name() +
                         "' is already the name of a layer in this model.");
    layers_.push_back(std::move(layer));
    if (input_) {
      try {
        rebuild();
      } catch (...) {
        layers_.pop_back();
        rebuild();
        throw;
      }
    }
  }
  template <class L,
            class = std::enable_if_t<std::is_base_of_v<Layer, std::decay_t<L>> && !std::is_lvalue_reference_v<L>>>
  void add(L&& layer) {
    add(std::shared_ptr<Layer>(std::forward<L>(layer).move_to_shared()));
  }
  void add(const KerasTensor<T>& input) { add(std::static_pointer_cast<Layer>(input.node()->layer)); }
  /// Removes the last layer.
  void pop() {
    if (layers_.empty()) throw ValueError("Sequential.pop: there are no layers in the model");
    layers_.pop_back();
    if (input_) rebuild();
  }

  /// Builds for inputs of this shape (batch dimension first, -1 for None).
  void build_model(const Shape& batch_input_shape) {
    if (batch_input_shape.size() < 2)
      throw ShapeError("Sequential.build: input shape " + shape_str(batch_input_shape) + " has no feature dimensions");
    input_ =
        std::make_shared<layers::InputLayer<T>>(layers::InputLayerOptions{without_batch(batch_input_shape), -1, ""});
    rebuild();
  }

  std::vector<std::shared_ptr<Layer>> layers() const override { return layers_; }
  std::shared_ptr<layers::InputLayer<T>> input_layer() const { return input_; }

  json get_config() const override {
    json ls = json::array();
    if (input_) ls.push_back(json{{"class_name", "InputLayer"}, {"config", input_->get_config()}});
    for (auto& l : layers_) ls.push_back(json{{"class_name", l->class_name()}, {"config", l->get_config()}});
    return json{{"name", this->name()}, {"layers", ls}};
  }

 protected:
  bool is_sequential() const override { return true; }
  void ensure_built(const Shape& x_shape) override {
    if (this->built() && !this->graph_.empty()) return;
    if (layers_.empty()) throw StateError("Sequential '" + this->name() + "' has no layers");
    Shape s = x_shape;
    if (s.empty()) throw ShapeError("Sequential '" + this->name() + "': input of rank 0");
    s[0] = -1;
    build_model(s);
  }

 private:
  std::shared_ptr<layers::InputLayer<T>> input_;
  std::vector<std::shared_ptr<Layer>> layers_;

  void rebuild() {
    this->graph_ = engine::Graph<T>::chain(input_, layers_);
    this->mark_built_from_graph();
  }
};

}  // namespace keras
