// keras::layers::Layer<T>: the interface every layer implements, built-in or user-defined.
//
// A layer is built once from its input shapes (batch dimension first, -1 = unknown), then
// called on batches: forward() writes its output into a buffer the model owns and reuses;
// backward() receives d(loss)/d(output), writes d(loss)/d(input) for each input that needs it
// (nullptr otherwise) and ADDS d(loss)/d(variable) into variable.grad when the variable is
// trainable. A layer may keep what it needs from forward() for backward() (masks, im2col, ...).
//
// Writing a layer: derive from Layer<T>, put KERAS_LAYER(ClassName) in the class, implement
// compute_output_shape, build_variables (optional), forward, backward, get_config; register it
// with KERAS_REGISTER_LAYER (layers/registry.hpp) to load it from a saved model.
//
// That is the whole interface. The engine's fast inference paths (batch slices on several
// threads, fused conv epilogues) are optional interfaces in layers/fast_paths.hpp; calling a layer
// on symbolic tensors (y = Dense(4)(x)) is defined by the engine (engine/keras_tensor.hpp).
#pragma once
#include <algorithm>
#include <initializer_list>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../core/core.hpp"
#include "../core/variable.hpp"

namespace keras {

using json = nlohmann::json;

namespace layers {

namespace detail {
inline bool ascii_upper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool ascii_lower(char c) { return c >= 'a' && c <= 'z'; }
/// Keras's to_snake_case: "GlobalAveragePooling2D" -> "global_average_pooling2d", "ReLU" -> "re_lu".
/// The two substitutions of Keras, re.sub("(.)([A-Z][a-z]+)", r"\1_\2") then
/// re.sub("([a-z])([A-Z])", r"\1_\2"), scanned left to right without overlaps as re.sub does.
inline std::string snake_case(const std::string& name) {
  std::string a;
  for (std::size_t i = 0; i < name.size();) {
    if (name[i] != '\n' && i + 2 < name.size() && ascii_upper(name[i + 1]) && ascii_lower(name[i + 2])) {
      std::size_t j = i + 3;
      while (j < name.size() && ascii_lower(name[j])) ++j;
      a += name[i];
      a += '_';
      a.append(name, i + 1, j - i - 1);
      i = j;
    } else {
      a += name[i++];
    }
  }
  std::string s;
  for (std::size_t i = 0; i < a.size();) {
    if (ascii_lower(a[i]) && i + 1 < a.size() && ascii_upper(a[i + 1])) {
      s += a[i];
      s += '_';
      s += a[i + 1];
      i += 2;
    } else {
      s += a[i++];
    }
  }
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
/// Keras's automatic names: "dense", "dense_1", "dense_2", ... per snake_case class name.
inline std::string unique_name(const std::string& class_name) {
  static std::map<std::string, int> counters;
  std::string base = snake_case(class_name);
  int n = counters[base]++;
  return n == 0 ? base : base + "_" + std::to_string(n);
}
}  // namespace detail

/// The keyword arguments every layer takes (Keras's **kwargs of the base Layer), for layers that
/// have none of their own: Flatten, Reshape, ZeroPadding2D, Rescaling, Activation, Softmax, Add,
/// Concatenate. Layers with their own options (DenseOptions, ...) end with these two fields.
struct LayerOptions {
  std::string name;  ///< empty: Keras's automatic name ("flatten", "flatten_1", ...)
  Shape
      input_shape;  ///< per-sample input shape (no batch axis); on a Sequential's first layer it creates the InputLayer
};

template <class T = float>
class Layer : public std::enable_shared_from_this<Layer<T>> {
 public:
  using Scalar = T;
  using TensorT = Tensor<T>;
  using Inputs = std::vector<const Tensor<T>*>;
  using GradInputs = std::vector<Tensor<T>*>;

  /// `input_shape` is Keras's legacy keyword (per-sample shape, no batch dimension; empty: none):
  /// on the first layer of a Sequential it creates the InputLayer, elsewhere it is ignored.
  explicit Layer(std::string name = "", Shape input_shape = {})
      : name_(std::move(name)), input_shape_arg_(std::move(input_shape)) {}
  virtual ~Layer() = default;
  Layer(Layer&&) = default;
  Layer& operator=(Layer&&) = default;

  /// Keras class name, e.g. "Dense" (the key used in saved model configs).
  virtual std::string class_name() const = 0;

  const std::string& name() const {
    if (name_.empty()) name_ = detail::unique_name(class_name());
    return name_;
  }
  void set_name(const std::string& n) { name_ = n; }
  /// The input_shape the layer was created with (empty when none was given).
  const Shape& input_shape_arg() const { return input_shape_arg_; }

  // ---- shapes and building ------------------------------------------------------------------
  /// Output shape (batch dimension first) for the given input shapes; throws ShapeError on misuse.
  virtual Shape compute_output_shape(const std::vector<Shape>& input_shapes) const = 0;

  /// Builds the layer (creates its variables) for these input shapes. Idempotent for equal
  /// shapes; a built layer called with incompatible shapes throws a ShapeError naming it.
  void build(const std::vector<Shape>& input_shapes) {
    if (built_) {
      check_input_shapes(input_shapes);
      return;
    }
    output_shape_ = compute_output_shape(input_shapes);
    build_variables(input_shapes);
    input_shapes_ = input_shapes;
    built_ = true;
  }
  void build(const Shape& input_shape) { build(std::vector<Shape>{input_shape}); }
  bool built() const { return built_; }
  const std::vector<Shape>& input_shapes() const { return input_shapes_; }
  const Shape& input_shape() const {
    require_built("input_shape");
    return input_shapes_.at(0);
  }
  const Shape& output_shape() const {
    require_built("output_shape");
    return output_shape_;
  }
  /// Number of inputs the layer takes (Add/Concatenate: 2 or more).
  virtual bool multiple_inputs() const { return false; }

  // ---- computation --------------------------------------------------------------------------
  virtual void forward(const Inputs& inputs, Tensor<T>& output, bool training) = 0;
  virtual void backward(const Inputs& inputs, const Tensor<T>& output, const Tensor<T>& grad_output,
                        const GradInputs& grad_inputs) = 0;

  /// Eager call on one tensor (builds on first use): y = layer(x).
  Tensor<T> call(const Tensor<T>& x, bool training = false) {
    if (built_)
      check_input_shapes({x.shape()});
    else
      build(with_unknown_batch(x.shape()));
    Tensor<T> y;
    forward({&x}, y, training);
    return y;
  }

  /// True when forward() is a pure function of the inputs and weights that gives the same result
  /// in training and inference mode (false for Dropout, for BatchNormalization while trainable).
  /// fit() caches the outputs of a frozen, cacheable leading part of a model.
  virtual bool cacheable() const { return true; }

  // ---- variables ----------------------------------------------------------------------------
  /// All variables of this layer (and of its sub-layers, for models), in Keras weight order.
  /// The caller may write them: each one's version is bumped (Variable::version).
  virtual std::vector<Variable<T>*> variables() {
    std::vector<Variable<T>*> r;
    for (auto& v : variables_) {
      v->changed();
      r.push_back(v.get());
    }
    return r;
  }
  /// Variables the optimizer updates: intrinsic trainable ones of trainable layers (versions bumped).
  virtual std::vector<Variable<T>*> trainable_variables() {
    std::vector<Variable<T>*> r;
    if (!trainable_) return r;
    for (auto& v : variables_)
      if (v->trainable) {
        v->changed();
        r.push_back(v.get());
      }
    return r;
  }
  std::vector<Variable<T>*> non_trainable_variables() {
    auto all = variables();
    auto tr = trainable_variables();
    std::vector<Variable<T>*> r;
    for (auto* v : all)
      if (std::find(tr.begin(), tr.end(), v) == tr.end()) r.push_back(v);
    return r;
  }
  Index count_params() const {
    Index n = 0;
    for (auto* v : const_cast<Layer*>(this)->variables()) n += v->value.size();
    return n;
  }

  bool trainable() const { return trainable_; }
  /// Freezes (false) or unfreezes the layer; a model applies it to all its layers, as Keras.
  virtual void set_trainable(bool t) { trainable_ = t; }
  /// Whether backward() must produce variable gradients.
  bool needs_variable_grads() const { return trainable_ && !const_cast<Layer*>(this)->trainable_variables().empty(); }

  /// Keras config (JSON-compatible): name, trainable, dtype and the layer's own arguments.
  virtual json get_config() const { return json{{"name", name()}, {"trainable", trainable_}, {"dtype", dtype_name()}}; }
  static const char* dtype_name() { return sizeof(T) == 8 ? "float64" : "float32"; }

  // ---- functional API ---------------------------------------------------------------------
  /// y = layer(x) on symbolic tensors (keras::Input and other layers' outputs) builds a graph.
  /// The call itself is the engine's (keras::call_layer in engine/keras_tensor.hpp, found when the
  /// argument's type is known), so this header knows nothing of graphs.
  template <class X>
  auto operator()(const X& x) & {
    return call_layer(*this, false, x);
  }
  template <class X>
  auto operator()(const X& x) && {
    return call_layer(*this, true, x);
  }
  template <class X>
  auto operator()(std::initializer_list<X> xs) & {
    return call_layer(*this, false, std::vector<X>(xs));
  }
  template <class X>
  auto operator()(std::initializer_list<X> xs) && {
    return call_layer(*this, true, std::vector<X>(xs));
  }

  /// Moves this layer into a shared_ptr (so a temporary layer can join a graph). KERAS_LAYER
  /// implements it; layers without it must be created with std::make_shared.
  virtual std::shared_ptr<Layer<T>> move_to_shared() {
    throw StateError(
        "layer '" + name() + "' (" + class_name() +
        ") cannot be moved into a model: add KERAS_LAYER(ClassName) to the class or create it with std::make_shared");
  }

 protected:
  /// Creates the layer's variables. Called once by build().
  virtual void build_variables(const std::vector<Shape>& /*input_shapes*/) {}

  Variable<T>& add_weight(const std::string& name, const Shape& shape, bool trainable = true) {
    WeightBudget::charge(this->name(), class_name(), name, shape);  // refuses absurd shapes before allocating
    auto v = std::make_unique<Variable<T>>();
    v->name = name;
    v->value.resize(shape);
    v->value.setZero();
    v->grad.resize(shape);
    v->grad.setZero();
    v->trainable = trainable;
    variables_.push_back(std::move(v));
    return *variables_.back();
  }

  void require_built(const char* what) const {
    if (!built_) throw StateError("layer '" + name() + "': " + what + " is not available before the layer is built");
  }
  /// Checks that runtime/new input shapes agree with the shapes the layer was built for.
  void check_input_shapes(const std::vector<Shape>& shapes) const {
    if (shapes.size() != input_shapes_.size())
      throw ShapeError("layer '" + name() + "' expects " + std::to_string(input_shapes_.size()) + " input(s), got " +
                       std::to_string(shapes.size()));
    for (std::size_t i = 0; i < shapes.size(); ++i)
      if (!shapes_compatible(shapes[i], input_shapes_[i]))
        throw ShapeError("layer '" + name() + "' (" + class_name() + "): expected input shape " +
                         shape_str(input_shapes_[i]) + ", got " + shape_str(shapes[i]));
  }
  static Shape with_unknown_batch(Shape s) {
    if (!s.empty()) s[0] = -1;
    return s;
  }
  /// Throws unless exactly n inputs were given.
  void expect_inputs(const std::vector<Shape>& shapes, std::size_t n) const {
    if (shapes.size() != n)
      throw ShapeError("layer '" + name() + "' (" + class_name() + ") expects " + std::to_string(n) +
                       " input(s), got " + std::to_string(shapes.size()));
  }
  /// Throws unless the input has the given rank (batch included).
  void expect_rank(const Shape& s, std::size_t rank, const char* what = "input") const {
    if (s.size() != rank)
      throw ShapeError("layer '" + name() + "' (" + class_name() + "): expected " + what + " of rank " +
                       std::to_string(rank) + " (batch included), got shape " + shape_str(s));
  }

  /// For containers (models) that are built on construction.
  void mark_built(const std::vector<Shape>& input_shapes, const Shape& output_shape) {
    input_shapes_ = input_shapes;
    output_shape_ = output_shape;
    built_ = true;
  }

  std::vector<std::unique_ptr<Variable<T>>> variables_;

 private:
  mutable std::string name_;
  Shape input_shape_arg_;
  bool trainable_ = true;
  bool built_ = false;
  std::vector<Shape> input_shapes_;
  Shape output_shape_;
};

}  // namespace layers
}  // namespace keras

/// Put inside a layer class: its Keras class name and the ability to join a model as a temporary.
#define KERAS_LAYER(ClassName)                                                                    \
  std::string class_name() const override { return #ClassName; }                                  \
  std::shared_ptr<::keras::layers::Layer<typename ClassName::Scalar>> move_to_shared() override { \
    return std::make_shared<ClassName>(std::move(*this));                                         \
  }
