// Merge layers: Add (element-wise sum of inputs of one shape), Concatenate (along an axis), and
// Multiply, Subtract (two inputs), Average, Maximum, Minimum (element-wise, inputs of one shape).
#pragma once
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

template <class T = float>
class Add : public Layer<T>, public ReentrantInference, public ElementwiseSum {
 public:
  KERAS_LAYER(Add)
  explicit Add(LayerOptions o = {}) : Layer<T>(std::move(o.name), std::move(o.input_shape)) {}
  bool multiple_inputs() const override { return true; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() < 2) throw ValueError("layer '" + this->name() + "' (Add) should be called on a list of at least 2 inputs, got " + std::to_string(in.size()));
    for (auto& s : in)
      if (!shapes_compatible(s, in[0]))
        throw ShapeError("layer '" + this->name() + "' (Add): inputs must have the same shape, got " + shape_str(in[0]) + " and " + shape_str(s));
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    for (std::size_t i = 1; i < in.size(); ++i)
      if (in[i]->shape() != in[0]->shape())
        throw ShapeError("layer '" + this->name() + "' (Add): inputs must have the same shape, got " + shape_str(in[0]->shape()) + " and " + shape_str(in[i]->shape()));
    y.resize(in[0]->shape());
    const Index n = y.size();
    T* yp = y.data();
    const T* a = in[0]->data();
    const T* b = in[1]->data();
    keras::parallel_for(n, 1, (n > 262144) ? get_num_threads() : 1, [yp, a, b](Index i_begin, Index i_end) {
#pragma omp simd
      for (Index i = i_begin; i < i_end; ++i) yp[i] = a[i] + b[i];
    });
    for (std::size_t i = 2; i < in.size(); ++i) y.array() += in[i]->array();
  }
  void backward(const typename Layer<T>::Inputs& /*in*/, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    for (auto* d : dx)
      if (d) *d = dy;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) { return std::make_shared<Add>(LayerOptions{config::name(c, "Add"), {}}); }
};

template <class T = float>
class Concatenate : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Concatenate)
  explicit Concatenate(int axis = -1, LayerOptions o = {}) : Layer<T>(std::move(o.name), std::move(o.input_shape)), axis_(axis) {}
  /// Concatenate({.name = "cat"}): the default axis with options.
  explicit Concatenate(LayerOptions o) : Concatenate(-1, std::move(o)) {}
  bool multiple_inputs() const override { return true; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() < 2) throw ValueError("layer '" + this->name() + "' (Concatenate) should be called on a list of at least 2 inputs");
    int rank = static_cast<int>(in[0].size());
    int ax = axis_ < 0 ? axis_ + rank : axis_;
    if (ax <= 0 || ax >= rank) throw ValueError("layer '" + this->name() + "' (Concatenate): invalid axis " + std::to_string(axis_) + " for inputs of rank " + std::to_string(rank));
    Shape out = in[0];
    for (std::size_t i = 1; i < in.size(); ++i) {
      bool ok = static_cast<int>(in[i].size()) == rank;
      for (int d = 0; ok && d < rank; ++d)
        if (d != ax && in[i][d] >= 0 && in[0][d] >= 0 && in[i][d] != in[0][d]) ok = false;
      if (!ok)
        throw ShapeError("layer '" + this->name() + "' (Concatenate) requires inputs with matching shapes except for the concatenation axis. Received: " +
                         shape_str(in[0]) + " and " + shape_str(in[i]));
      out[ax] = (out[ax] < 0 || in[i][ax] < 0) ? -1 : out[ax] + in[i][ax];
    }
    return out;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    std::vector<Shape> shapes;
    for (auto* x : in) shapes.push_back(x->shape());
    Shape out = compute_output_shape(shapes);
    out[0] = in[0]->dim(0);
    y.resize(out);
    Index outer, inner_y;
    split(out, outer, inner_y);
    Index off = 0;
    for (auto* x : in) {
      Index o2, inner;
      split(x->shape(), o2, inner);
      for (Index o = 0; o < outer; ++o) std::copy(x->data() + o * inner, x->data() + (o + 1) * inner, y.data() + o * inner_y + off);
      off += inner;
    }
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    Index outer, inner_y;
    split(dy.shape(), outer, inner_y);
    Index off = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      Index o2, inner;
      split(in[i]->shape(), o2, inner);
      if (dx[i]) {
        dx[i]->resize(in[i]->shape());
        for (Index o = 0; o < outer; ++o)
          std::copy(dy.data() + o * inner_y + off, dy.data() + o * inner_y + off + inner, dx[i]->data() + o * inner);
      }
      off += inner;
    }
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["axis"] = axis_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<Concatenate>(static_cast<int>(config::get_int(c, "axis", -1, config::where("Concatenate", c), -9, 9)), LayerOptions{config::name(c, "Concatenate"), {}});
  }

 private:
  int axis_;
  /// outer = product of dims before the axis; inner = product of dims from the axis on.
  void split(const Shape& s, Index& outer, Index& inner) const {
    int rank = static_cast<int>(s.size());
    int ax = axis_ < 0 ? axis_ + rank : axis_;
    outer = 1;
    inner = 1;
    for (int d = 0; d < rank; ++d) (d < ax ? outer : inner) *= s[d];
  }
};

namespace detail {
enum class MergeOp { Multiply, Subtract, Average, Maximum, Minimum };

/// The element-wise merges other than Add: inputs of one shape (Keras's broadcasting of unequal
/// shapes is refused with a ShapeError). Maximum/Minimum send the gradient to the first input
/// that attains the extremum, as TF's maximum/minimum gradients do for ties.
template <class T, MergeOp Op>
class ElementwiseMerge : public Layer<T>, public ReentrantInference {
 public:
  explicit ElementwiseMerge(LayerOptions o) : Layer<T>(std::move(o.name), std::move(o.input_shape)) {}
  bool multiple_inputs() const override { return true; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    const std::string who = "layer '" + this->name() + "' (" + this->class_name() + ")";
    if (Op == MergeOp::Subtract && in.size() != 2)
      throw ValueError(who + " should be called on exactly 2 inputs, got " + std::to_string(in.size()));
    if (in.size() < 2)
      throw ValueError(who + " should be called on a list of at least 2 inputs, got " + std::to_string(in.size()));
    for (auto& s : in)
      if (!shapes_compatible(s, in[0]))
        throw ShapeError(who + ": inputs must have the same shape (broadcasting is not supported), got " +
                         shape_str(in[0]) + " and " + shape_str(s));
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    check_runtime(in);
    y = *in[0];
    const Index n = y.size();
    for (std::size_t k = 1; k < in.size(); ++k) {
      const T* b = in[k]->data();
      T* yp = y.data();
      for (Index i = 0; i < n; ++i) {
        if constexpr (Op == MergeOp::Multiply)
          yp[i] *= b[i];
        else if constexpr (Op == MergeOp::Subtract)
          yp[i] -= b[i];
        else if constexpr (Op == MergeOp::Average)
          yp[i] += b[i];
        else if constexpr (Op == MergeOp::Maximum)
          yp[i] = std::max(yp[i], b[i]);
        else
          yp[i] = std::min(yp[i], b[i]);
      }
    }
    if constexpr (Op == MergeOp::Average) y.array() *= T(1) / static_cast<T>(in.size());
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Index n = dy.size();
    for (std::size_t k = 0; k < in.size(); ++k) {
      if (!dx[k]) continue;
      dx[k]->resize(in[k]->shape());
      T* d = dx[k]->data();
      for (Index i = 0; i < n; ++i) d[i] = grad(in, y, dy, k, i);
    }
  }

 private:
  void check_runtime(const typename Layer<T>::Inputs& in) const {
    for (std::size_t i = 1; i < in.size(); ++i)
      if (in[i]->shape() != in[0]->shape())
        throw ShapeError("layer '" + this->name() + "' (" + this->class_name() +
                         "): inputs must have the same shape, got " + shape_str(in[0]->shape()) + " and " +
                         shape_str(in[i]->shape()));
  }
  static T grad(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy, std::size_t k, Index i) {
    if constexpr (Op == MergeOp::Multiply) {
      T p = dy[i];
      for (std::size_t j = 0; j < in.size(); ++j)
        if (j != k) p *= (*in[j])[i];
      return p;
    } else if constexpr (Op == MergeOp::Subtract) {
      return k == 0 ? dy[i] : -dy[i];
    } else if constexpr (Op == MergeOp::Average) {
      return dy[i] / static_cast<T>(in.size());
    } else {  // the first input equal to the extremum takes the gradient
      std::size_t first = 0;
      while (first + 1 < in.size() && (*in[first])[i] != y[i]) ++first;
      return first == k ? dy[i] : T(0);
    }
  }
};
}  // namespace detail

#define KERAS_DETAIL_MERGE_LAYER(Cls, Op)                                                                 \
  template <class T = float>                                                                              \
  class Cls : public detail::ElementwiseMerge<T, detail::MergeOp::Op> {                                   \
   public:                                                                                                \
    KERAS_LAYER(Cls)                                                                                      \
    explicit Cls(LayerOptions o = {}) : detail::ElementwiseMerge<T, detail::MergeOp::Op>(std::move(o)) {} \
    static std::shared_ptr<Layer<T>> from_config(const json& c) {                                         \
      return std::make_shared<Cls>(LayerOptions{config::name(c, #Cls), {}});                              \
    }                                                                                                     \
  };
KERAS_DETAIL_MERGE_LAYER(Multiply, Multiply)
KERAS_DETAIL_MERGE_LAYER(Subtract, Subtract)
KERAS_DETAIL_MERGE_LAYER(Average, Average)
KERAS_DETAIL_MERGE_LAYER(Maximum, Maximum)
KERAS_DETAIL_MERGE_LAYER(Minimum, Minimum)
#undef KERAS_DETAIL_MERGE_LAYER

}  // namespace keras::layers
