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
    if (s[i] < 0) os << "None"; else os << s[i];
  }
  if (s.size() == 1) os << ',';
  os << ')';
  return os.str();
}

/// Number of elements; throws if a dimension is unknown.
inline Index num_elements(const Shape& s) {
  Index n = 1;
  for (Index d : s) {
    if (d < 0) throw ValueError("num_elements: shape " + shape_str(s) + " has an unknown dimension");
    n *= d;
  }
  return n;
}

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
