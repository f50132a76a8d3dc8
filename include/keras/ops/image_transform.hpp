// Geometric image transforms on NHWC batches, forward and backward: flips, and the projective
// (here affine) resampling of TensorFlow's ImageProjectiveTransformV3 that Keras's RandomRotation,
// RandomZoom and RandomTranslation use. A transform maps each OUTPUT pixel (x, y) to the input
// point (a0 x + a1 y + a2, b0 x + b1 y + b2); points outside the image are mapped back in by the
// fill mode ("reflect" d c b a | a b c d | d c b a, "wrap", "nearest") or read as fill_value
// ("constant"); "bilinear" interpolates the 4 neighbours, "nearest" rounds.
#pragma once
#include <array>
#include <cmath>
#include <string>

#include "../core/tensor.hpp"

namespace keras::ops {

/// Reverses the order of columns (horizontal) or rows (vertical) of one [h, w, c] image, in place.
template <class T>
void flip_image(T* img, Index h, Index w, Index c, bool horizontal) {
  if (horizontal) {
    for (Index y = 0; y < h; ++y) {
      T* row = img + y * w * c;
      for (Index a = 0, b = w - 1; a < b; ++a, --b)
        for (Index k = 0; k < c; ++k) std::swap(row[a * c + k], row[b * c + k]);
    }
  } else {
    for (Index a = 0, b = h - 1; a < b; ++a, --b)
      std::swap_ranges(img + a * w * c, img + (a + 1) * w * c, img + b * w * c);
  }
}

enum class FillMode { Reflect, Wrap, Constant, Nearest };

inline FillMode fill_mode_from(const std::string& s, const std::string& who) {
  if (s == "reflect") return FillMode::Reflect;
  if (s == "wrap") return FillMode::Wrap;
  if (s == "constant") return FillMode::Constant;
  if (s == "nearest") return FillMode::Nearest;
  throw ValueError(who + ": unknown fill_mode '" + s + "' (expected one of reflect, wrap, constant, nearest)");
}

/// An input coordinate mapped into [0, len - 1] by the fill mode (Constant: unchanged).
inline double map_coordinate(double v, Index len, FillMode mode) {
  const double n = static_cast<double>(len);
  switch (mode) {
    case FillMode::Reflect:
      if (len <= 1) return 0;
      if (v < 0) {
        const double s2 = 2 * n;
        if (v < -s2) v += s2 * std::floor(-v / s2);
        v = v < -n ? v + s2 : -v - 1;
      } else if (v > n - 1) {
        const double s2 = 2 * n;
        v -= s2 * std::floor(v / s2);
        if (v >= n) v = s2 - v - 1;
      }
      return std::clamp(v, 0.0, n - 1);
    case FillMode::Wrap:
      if (len <= 1) return 0;
      if (v < 0) {
        const double s = n - 1;
        v += n * (std::floor(-v / s) + 1);
      } else if (v > n - 1) {
        const double s = n - 1;
        v -= n * std::floor(v / s);
      }
      return std::clamp(v, 0.0, n - 1);
    case FillMode::Nearest:
      return std::clamp(v, 0.0, n - 1);
    case FillMode::Constant:
      return v;
  }
  return v;
}

/// The (input pixel index, weight) pairs one output pixel reads: at most 4. An index of -1 reads
/// fill_value. The forward pass and its transpose (backward) walk the same taps.
struct Taps {
  std::array<Index, 4> index{-1, -1, -1, -1};
  std::array<double, 4> weight{0, 0, 0, 0};
  int count = 0;
};

inline Taps affine_taps(const std::array<double, 8>& t, Index ox, Index oy, Index h, Index w, FillMode mode,
                        bool bilinear) {
  const double proj = t[6] * ox + t[7] * oy + 1.0;
  Taps taps;
  if (proj == 0) {  // (not reached by Keras's affine transforms) the fill value
    taps.count = 1;
    taps.weight[0] = 1;
    return taps;
  }
  const double px = (t[0] * ox + t[1] * oy + t[2]) / proj, py = (t[3] * ox + t[4] * oy + t[5]) / proj;
  if (!std::isfinite(px) || !std::isfinite(py)) {  // (absurd zoom factors) nothing to read: the fill value
    taps.count = 1;
    taps.weight[0] = 1;
    return taps;
  }
  const double x = map_coordinate(px, w, mode);
  const double y = map_coordinate(py, h, mode);
  auto at = [&](double yy, double xx) -> Index {
    if (yy < 0 || yy > static_cast<double>(h - 1) || xx < 0 || xx > static_cast<double>(w - 1)) return -1;
    return static_cast<Index>(yy) * w + static_cast<Index>(xx);
  };
  if (!bilinear) {
    taps.count = 1;
    taps.index[0] = at(std::round(y), std::round(x));  // TF rounds halves away from zero
    taps.weight[0] = 1;
    return taps;
  }
  const double y0 = std::floor(y), x0 = std::floor(x), y1 = y0 + 1, x1 = x0 + 1;
  taps.count = 4;
  taps.index = {at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)};
  taps.weight = {(y1 - y) * (x1 - x), (y1 - y) * (x - x0), (y - y0) * (x1 - x), (y - y0) * (x - x0)};
  return taps;
}

/// out = the image `in` [h, w, c] resampled through transform t (output pixel -> input point).
template <class T>
void affine_transform(const T* in, T* out, Index h, Index w, Index c, const std::array<double, 8>& t, FillMode mode,
                      bool bilinear, T fill_value) {
  for (Index oy = 0; oy < h; ++oy)
    for (Index ox = 0; ox < w; ++ox) {
      const Taps tp = affine_taps(t, ox, oy, h, w, mode, bilinear);
      T* o = out + (oy * w + ox) * c;
      for (Index k = 0; k < c; ++k) {
        double v = 0;
        for (int j = 0; j < tp.count; ++j)
          v += tp.weight[j] * static_cast<double>(tp.index[j] < 0 ? fill_value : in[tp.index[j] * c + k]);
        o[k] = static_cast<T>(v);
      }
    }
}

/// The transpose of affine_transform for its input: din += d(out)/d(in)^T dout (fill_value is a
/// constant and gets no gradient).
template <class T>
void affine_transform_backward(const T* dout, T* din, Index h, Index w, Index c, const std::array<double, 8>& t,
                               FillMode mode, bool bilinear) {
  for (Index oy = 0; oy < h; ++oy)
    for (Index ox = 0; ox < w; ++ox) {
      const Taps tp = affine_taps(t, ox, oy, h, w, mode, bilinear);
      const T* g = dout + (oy * w + ox) * c;
      for (int j = 0; j < tp.count; ++j) {
        if (tp.index[j] < 0 || tp.weight[j] == 0) continue;
        T* d = din + tp.index[j] * c;
        for (Index k = 0; k < c; ++k) d[k] += static_cast<T>(tp.weight[j]) * g[k];
      }
    }
}

/// Keras's transforms (output pixel -> input point) for an image of h x w pixels.
/// Rotation by `angle` radians counter-clockwise about the image centre.
inline std::array<double, 8> rotation_transform(double angle, Index h, Index w) {
  const double c = std::cos(angle), s = std::sin(angle), W = static_cast<double>(w - 1), H = static_cast<double>(h - 1);
  const double x_off = (W - (c * W - s * H)) / 2.0, y_off = (H - (s * W + c * H)) / 2.0;
  return {c, -s, x_off, s, c, y_off, 0, 0};
}
/// Zoom: zx, zy > 1 shows more of the image (zoom out), < 1 less (zoom in), about the centre.
inline std::array<double, 8> zoom_transform(double zx, double zy, Index h, Index w) {
  const double x_off = (static_cast<double>(w - 1) / 2.0) * (1 - zx),
               y_off = (static_cast<double>(h - 1) / 2.0) * (1 - zy);
  return {zx, 0, x_off, 0, zy, y_off, 0, 0};
}
/// Translation of the content by (dx, dy) pixels (right and down positive).
inline std::array<double, 8> translation_transform(double dx, double dy) { return {1, 0, -dx, 0, 1, -dy, 0, 0}; }

}  // namespace keras::ops
