// keras::Tensor<T>: a dense, row-major (C order) n-d array with a dynamic shape.
//
// Storage is one aligned buffer; views of any rank are Eigen::TensorMap (row-major), matrices are
// Eigen::Map. resize() keeps the buffer when the new size fits, so a layer's activation and
// gradient buffers are allocated once and reused for every batch of the same (or smaller) size.
// Images are NHWC, as in Keras/TF.
#pragma once
#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <utility>

#include "error.hpp"
#include "shape.hpp"

namespace keras {

template <class T = float>
class Tensor {
 public:
  using Scalar = T;
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatrixMap = Eigen::Map<Matrix, Eigen::Aligned16>;
  using ConstMatrixMap = Eigen::Map<const Matrix, Eigen::Aligned16>;
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  using ArrayMap = Eigen::Map<Array, Eigen::Aligned16>;
  using ConstArrayMap = Eigen::Map<const Array, Eigen::Aligned16>;
  template <int R>
  using TensorMap = Eigen::TensorMap<Eigen::Tensor<T, R, Eigen::RowMajor, Index>, Eigen::Aligned16>;
  template <int R>
  using ConstTensorMap = Eigen::TensorMap<Eigen::Tensor<const T, R, Eigen::RowMajor, Index>, Eigen::Aligned16>;

  Tensor() = default;
  explicit Tensor(const Shape& shape) { resize(shape); }
  Tensor(const Shape& shape, T fill) {
    resize(shape);
    setConstant(fill);
  }
  /// Tensor({2, 2}, {1, 2, 3, 4})
  Tensor(const Shape& shape, std::initializer_list<T> values) {
    resize(shape);
    if (static_cast<Index>(values.size()) != size_)
      throw ShapeError("Tensor: " + std::to_string(values.size()) + " values given for shape " + shape_str(shape));
    std::copy(values.begin(), values.end(), data_.get());
  }
  Tensor(const Tensor& o) { *this = o; }
  Tensor(Tensor&& o) noexcept { swap(o); }
  Tensor& operator=(const Tensor& o) {
    if (this != &o && !o.data_) {  // default-constructed: empty
      shape_ = o.shape_;
      size_ = 0;
    } else if (this != &o) {
      resize(o.shape_);
      if (size_) std::memcpy(data_.get(), o.data_.get(), sizeof(T) * size_);
    }
    return *this;
  }
  Tensor& operator=(Tensor&& o) noexcept {
    swap(o);
    return *this;
  }
  void swap(Tensor& o) noexcept {
    std::swap(shape_, o.shape_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }

  /// Sets the shape. Keeps the buffer (and its contents) when it is big enough.
  void resize(const Shape& shape) {
    Index n = num_elements(shape);
    if (n > capacity_) {
      data_.reset(static_cast<T*>(Eigen::internal::aligned_malloc(sizeof(T) * static_cast<std::size_t>(n))));
      capacity_ = n;
    }
    shape_ = shape;
    size_ = n;
  }
  /// Grows the storage (never shrinks it, keeps shape and contents) to hold as many elements as
  /// `other` holds, so a later resize to that size allocates nothing.
  void reserve_like(const Tensor& other) {
    if (other.capacity_ <= capacity_) return;
    T* fresh = static_cast<T*>(Eigen::internal::aligned_malloc(sizeof(T) * static_cast<std::size_t>(other.capacity_)));
    if (size_) std::copy(data_.get(), data_.get() + size_, fresh);
    data_.reset(fresh);
    capacity_ = other.capacity_;
  }
  /// Changes the shape without touching data; the element count must stay the same.
  void reshape(const Shape& shape) {
    if (num_elements(shape) != size_)
      throw ShapeError("Tensor::reshape: cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
    shape_ = shape;
  }

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  Index dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  Index size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T* begin() { return data_.get(); }
  T* end() { return data_.get() + size_; }
  const T* begin() const { return data_.get(); }
  const T* end() const { return data_.get() + size_; }
  T& operator[](Index i) { return data_.get()[i]; }
  const T& operator[](Index i) const { return data_.get()[i]; }

  /// Element access by full index, e.g. t.at({n, h, w, c}) (bounds checked; not for hot loops).
  T& at(std::initializer_list<Index> idx) { return data_.get()[offset(idx)]; }
  const T& at(std::initializer_list<Index> idx) const { return data_.get()[offset(idx)]; }

  void setZero() {
    if (size_) std::memset(data_.get(), 0, sizeof(T) * size_);
  }
  void setConstant(T v) { std::fill(begin(), end(), v); }

  /// Row-major Eigen::TensorMap view of rank R (R must equal rank()).
  template <int R>
  TensorMap<R> tensor() {
    check_rank(R);
    return TensorMap<R>(data_.get(), dims<R>());
  }
  template <int R>
  ConstTensorMap<R> tensor() const {
    check_rank(R);
    return ConstTensorMap<R>(data_.get(), dims<R>());
  }
  /// The tensor as a matrix [prod(leading dims), last dim]: the GEMM view of NHWC data.
  MatrixMap matrix() { return MatrixMap(data_.get(), size_ / last(), last()); }
  ConstMatrixMap matrix() const { return ConstMatrixMap(data_.get(), size_ / last(), last()); }
  MatrixMap matrix(Index rows, Index cols) {
    check_mat(rows, cols);
    return MatrixMap(data_.get(), rows, cols);
  }
  ConstMatrixMap matrix(Index rows, Index cols) const {
    check_mat(rows, cols);
    return ConstMatrixMap(data_.get(), rows, cols);
  }
  /// Flat 1-d array view (element-wise arithmetic).
  ArrayMap array() { return ArrayMap(data_.get(), size_); }
  ConstArrayMap array() const { return ConstArrayMap(data_.get(), size_); }

  /// Copies with a different scalar type.
  template <class U>
  Tensor<U> cast() const {
    Tensor<U> r(shape_);
    for (Index i = 0; i < size_; ++i) r[i] = static_cast<U>(data_.get()[i]);
    return r;
  }

  /// Copies rows [begin, begin+count) along the first axis.
  Tensor slice_rows(Index begin, Index count) const {
    Shape s = shape_;
    if (s.empty() || begin < 0 || begin + count > s[0])
      throw ShapeError("Tensor::slice_rows: rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                       ") out of range for shape " + shape_str(shape_));
    Index row = s[0] ? size_ / s[0] : 0;
    s[0] = count;
    Tensor r(s);
    if (count > 0 && row > 0) std::memcpy(r.data(), data_.get() + begin * row, sizeof(T) * count * row);
    return r;
  }

 private:
  struct Free {
    void operator()(T* p) const { Eigen::internal::aligned_free(p); }
  };
  Shape shape_;
  std::unique_ptr<T, Free> data_;
  Index size_ = 0;
  Index capacity_ = 0;

  Index last() const { return shape_.empty() ? 1 : std::max<Index>(shape_.back(), 1); }
  void check_rank(int r) const {
    if (r != rank())
      throw ShapeError("Tensor: rank-" + std::to_string(r) + " view of a tensor of shape " + shape_str(shape_));
  }
  void check_mat(Index rows, Index cols) const {
    if (rows * cols != size_)
      throw ShapeError("Tensor: " + std::to_string(rows) + "x" + std::to_string(cols) +
                       " matrix view of a tensor of shape " + shape_str(shape_));
  }
  template <int R>
  Eigen::array<Index, R> dims() const {
    Eigen::array<Index, R> d;
    for (int i = 0; i < R; ++i) d[i] = shape_[i];
    return d;
  }
  Index offset(std::initializer_list<Index> idx) const {
    if (static_cast<int>(idx.size()) != rank())
      throw ShapeError("Tensor::at: " + std::to_string(idx.size()) + " indices for shape " + shape_str(shape_));
    Index off = 0;
    int i = 0;
    for (Index v : idx) {
      if (v < 0 || v >= shape_[i]) throw ShapeError("Tensor::at: index out of range for shape " + shape_str(shape_));
      off = off * shape_[i++] + v;
    }
    return off;
  }
};

}  // namespace keras
