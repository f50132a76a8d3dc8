// Merge layers: Add (element-wise sum of inputs of one shape), Concatenate (along an axis), and
// Multiply, Subtract (two inputs), Average, Maximum, Minimum (element-wise, broadcasting as Keras).
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
    if (in.size() < 2)
      throw ValueError("layer '" + this->name() + "' (Add) should be called on a list of at least 2 inputs, got " +
                       std::to_string(in.size()));
    for (auto& s : in)
      if (!shapes_compatible(s, in[0]))
        throw ShapeError("layer '" + this->name() + "' (Add): inputs must have the same shape, got " +
                         shape_str(in[0]) + " and " + shape_str(s));
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    for (std::size_t i = 1; i < in.size(); ++i)
      if (in[i]->shape() != in[0]->shape())
        throw ShapeError("layer '" + this->name() + "' (Add): inputs must have the same shape, got " +
                         shape_str(in[0]->shape()) + " and " + shape_str(in[i]->shape()));
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
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<Add>(LayerOptions{config::name(c, "Add"), {}});
  }
};

template <class T = float>
class Concatenate : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Concatenate)
  explicit Concatenate(int axis = -1, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), axis_(axis) {}
  /// Concatenate({.name = "cat"}): the default axis with options.
  explicit Concatenate(LayerOptions o) : Concatenate(-1, std::move(o)) {}
  bool multiple_inputs() const override { return true; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() < 2)
      throw ValueError("layer '" + this->name() + "' (Concatenate) should be called on a list of at least 2 inputs");
    int rank = static_cast<int>(in[0].size());
    int ax = axis_ < 0 ? axis_ + rank : axis_;
    if (ax <= 0 || ax >= rank)
      throw ValueError("layer '" + this->name() + "' (Concatenate): invalid axis " + std::to_string(axis_) +
                       " for inputs of rank " + std::to_string(rank));
    Shape out = in[0];
    for (std::size_t i = 1; i < in.size(); ++i) {
      bool ok = static_cast<int>(in[i].size()) == rank;
      for (int d = 0; ok && d < rank; ++d)
        if (d != ax && in[i][d] >= 0 && in[0][d] >= 0 && in[i][d] != in[0][d]) ok = false;
      if (!ok)
        throw ShapeError(
            "layer '" + this->name() +
            "' (Concatenate) requires inputs with matching shapes except for the concatenation axis. Received: " +
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
      for (Index o = 0; o < outer; ++o)
        std::copy(x->data() + o * inner, x->data() + (o + 1) * inner, y.data() + o * inner_y + off);
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
    return std::make_shared<Concatenate>(
        static_cast<int>(config::get_int(c, "axis", -1, config::where("Concatenate", c), -9, 9)),
        LayerOptions{config::name(c, "Concatenate"), {}});
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

/// The broadcast of input shapes of one rank, as Keras's merge layers (each dimension equal or 1;
/// -1 = unknown). Throws a ShapeError naming `who` otherwise.
inline Shape broadcast_shapes(const std::vector<Shape>& in, const std::string& who) {
  Shape out = in.at(0);
  for (auto& s : in) {
    if (s.size() != out.size())
      throw ShapeError(who + ": inputs must have the same rank, got " + shape_str(in[0]) + " and " + shape_str(s));
    for (std::size_t d = 0; d < s.size(); ++d) {
      const Index a = out[d], b = s[d];
      if (a == b || b == 1) continue;
      if (a == 1)
        out[d] = b;
      else if (a < 0 || b < 0)
        out[d] = -1;
      else
        throw ShapeError(who + ": inputs with shapes " + shape_str(in[0]) + " and " + shape_str(s) +
                         " cannot be broadcast (each dimension must be equal or 1)");
    }
  }
  return out;
}

/// Calls fn(i, offsets) for every element i of `out`; offsets[k] is the element of input k (of
/// shape shapes[k], broadcast to `out`) that element i reads.
template <class Fn>
void for_each_broadcast(const std::vector<Shape>& shapes, const Shape& out, Fn&& fn) {
  const std::size_t K = shapes.size();
  const int R = static_cast<int>(out.size());
  std::vector<Index> off(K, 0), idx(R, 0), st(K * R, 0);
  for (std::size_t k = 0; k < K; ++k)
    for (Index d = R - 1, s = 1; d >= 0; s *= shapes[k][d], --d) st[k * R + d] = shapes[k][d] == out[d] ? s : 0;
  const Index n = num_elements(out);
  for (Index i = 0; i < n; ++i) {
    fn(i, off.data());
    for (int d = R - 1; d >= 0; --d) {
      if (++idx[d] < out[d]) {
        for (std::size_t k = 0; k < K; ++k) off[k] += st[k * R + d];
        break;
      }
      for (std::size_t k = 0; k < K; ++k) off[k] -= st[k * R + d] * (out[d] - 1);
      idx[d] = 0;
    }
  }
}

/// The element-wise merges other than Add. Inputs of one rank broadcast as in Keras (each dimension
/// equal or 1, e.g. Multiply()({x, se}) with se [N, 1, 1, C]); inputs of different ranks are
/// refused. Maximum/Minimum send the gradient to the first input that attains the extremum, as TF's
/// maximum/minimum gradients do for ties.
template <class T, MergeOp Op>
class ElementwiseMerge : public Layer<T>, public ReentrantInference {
 public:
  explicit ElementwiseMerge(LayerOptions o) : Layer<T>(std::move(o.name), std::move(o.input_shape)) {}
  bool multiple_inputs() const override { return true; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    if (Op == MergeOp::Subtract && in.size() != 2)
      throw ValueError(who() + " should be called on exactly 2 inputs, got " + std::to_string(in.size()));
    if (in.size() < 2)
      throw ValueError(who() + " should be called on a list of at least 2 inputs, got " + std::to_string(in.size()));
    return broadcast_shapes(in, who());
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const std::vector<Shape> shapes = shapes_of(in);
    y.resize(broadcast_shapes(shapes, who()));
    T* yp = y.data();
    for_each_broadcast(shapes, y.shape(), [&](Index i, const Index* off) {
      T v = (*in[0])[off[0]];
      for (std::size_t k = 1; k < in.size(); ++k) {
        const T b = (*in[k])[off[k]];
        if constexpr (Op == MergeOp::Multiply)
          v *= b;
        else if constexpr (Op == MergeOp::Subtract)
          v -= b;
        else if constexpr (Op == MergeOp::Average)
          v += b;
        else if constexpr (Op == MergeOp::Maximum)
          v = std::max(v, b);
        else
          v = std::min(v, b);
      }
      if constexpr (Op == MergeOp::Average) v /= static_cast<T>(in.size());
      yp[i] = v;
    });
  }
  /// dx[k] sums the gradients of the outputs that input k's elements broadcast to.
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    for (std::size_t k = 0; k < in.size(); ++k)
      if (dx[k]) {
        dx[k]->resize(in[k]->shape());
        dx[k]->setZero();
      }
    for_each_broadcast(shapes_of(in), dy.shape(), [&](Index i, const Index* off) {
      for (std::size_t k = 0; k < in.size(); ++k)
        if (dx[k]) (*dx[k])[off[k]] += grad(in, y, dy, k, i, off);
    });
  }

 private:
  std::string who() const { return "layer '" + this->name() + "' (" + this->class_name() + ")"; }
  static std::vector<Shape> shapes_of(const typename Layer<T>::Inputs& in) {
    std::vector<Shape> s;
    for (auto* x : in) s.push_back(x->shape());
    return s;
  }
  static T grad(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy, std::size_t k, Index i,
                const Index* off) {
    if constexpr (Op == MergeOp::Multiply) {
      T p = dy[i];
      for (std::size_t j = 0; j < in.size(); ++j)
        if (j != k) p *= (*in[j])[off[j]];
      return p;
    } else if constexpr (Op == MergeOp::Subtract) {
      return k == 0 ? dy[i] : -dy[i];
    } else if constexpr (Op == MergeOp::Average) {
      return dy[i] / static_cast<T>(in.size());
    } else {  // the first input equal to the extremum takes the gradient
      std::size_t first = 0;
      while (first + 1 < in.size() && (*in[first])[off[first]] != y[i]) ++first;
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
