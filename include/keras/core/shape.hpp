// Shapes: a list of dimensions. The batch dimension comes first; -1 means "unknown" (Keras None).
#pragma once
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "error.hpp"

namespace keras {

using Index = std::int64_t;
using Shape = std::vector<Index>;

/// Formats a shape like Keras: (None, 32, 32, 3).
inline std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '(';
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) os << ", ";
    if (s[i] < 0)
      os << "None";
    else
      os << s[i];
  }
  if (s.size() == 1) os << ',';
  os << ')';
  return os.str();
}

/// The largest element count a shape may describe (2^48): far beyond any real tensor, small
/// enough that a byte count (x 8) and further products of dimensions cannot overflow int64.
inline constexpr Index kMaxElements = Index(1) << 48;

/// Number of elements; throws if a dimension is unknown, or if the product exceeds kMaxElements
/// (so absurd shapes such as 2^32 x 2^32 are refused instead of overflowing a signed multiply).
inline Index num_elements(const Shape& s) {
  Index n = 1;
  bool zero = false;
  for (Index d : s) {
    if (d < 0) throw ValueError("num_elements: shape " + shape_str(s) + " has an unknown dimension");
    if (d == 0) zero = true;
  }
  if (zero) return 0;
  for (Index d : s) {
    if (d > kMaxElements / n)
      throw ValueError("shape " + shape_str(s) + " has more than 2^48 elements (the limit for one tensor)");
    n *= d;
  }
  return n;
}

/// A scoped, per-thread limit on the number of weight elements that layers may create while it
/// lives (Layer::add_weight charges it before allocating). The model loader opens one holding the
/// element count of the file's weights manifest: a model config that asks for more parameters than
/// its file can provide is refused before anything is allocated, with a message naming the file
/// and the limit. Nested budgets: the innermost one applies.
class WeightBudget {
 public:
  WeightBudget(Index max_elements, std::string source)
      : prev_(current()), left_(max_elements), limit_(max_elements), source_(std::move(source)) {
    current() = this;
  }
  ~WeightBudget() { current() = prev_; }
  WeightBudget(const WeightBudget&) = delete;
  WeightBudget& operator=(const WeightBudget&) = delete;

  /// Called before a layer allocates a weight. Throws ValueError when the active budget (if any)
  /// cannot hold it; always throws for shapes with more than kMaxElements elements.
  static void charge(const std::string& layer, const std::string& cls, const std::string& weight, const Shape& shape) {
    Index n;
    try {
      n = num_elements(shape);
    } catch (const ValueError& e) {
      throw ValueError("layer '" + layer + "' (" + cls + "): weight '" + weight + "': " + e.what());
    }
    WeightBudget* b = current();
    if (!b) return;
    if (n > b->left_)
      throw ValueError(b->source_ + ": layer '" + layer + "' (" + cls + ") needs a weight '" + weight + "' of shape " +
                       shape_str(shape) + " (" + std::to_string(n) + " elements), more than the " +
                       std::to_string(b->left_) + " of the " + std::to_string(b->limit_) +
                       " weight elements the file provides are left");
    b->left_ -= n;
  }

 private:
  static WeightBudget*& current() {
    thread_local WeightBudget* c = nullptr;
    return c;
  }
  WeightBudget* prev_;
  Index left_, limit_;
  std::string source_;
};

/// Prepends a batch dimension (default unknown).
inline Shape with_batch(const Shape& s, Index batch = -1) {
  Shape r;
  r.reserve(s.size() + 1);
  r.push_back(batch);
  r.insert(r.end(), s.begin(), s.end());
  return r;
}

/// Drops the leading (batch) dimension.
inline Shape without_batch(const Shape& s) {
  if (s.empty()) return s;
  return Shape(s.begin() + 1, s.end());
}

/// True when the shapes agree, treating -1 in either as a wildcard.
inline bool shapes_compatible(const Shape& a, const Shape& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] >= 0 && b[i] >= 0 && a[i] != b[i]) return false;
  return true;
}

}  // namespace keras
