// Seeded data augmentation for images (NHWC): plain functions, usable in Dataset::map_random:
//
//   ds = ds.map_random([](data::Batch<float> b, Random& rng) {
//          data::random_flip_left_right(b.x, rng);
//          data::random_rotation(b.x, 0.1, rng);        // like keras.layers.RandomRotation(0.1)
//          data::random_zoom(b.x, 0.2, std::nullopt, rng);
//          return b; }, /*seed=*/42);
//
// Every function accepts one image [h, w, c] or a batch [n, h, w, c] and draws its random numbers
// per image, in order, from the given Random: the same seed gives the same augmentation.
// Geometry follows Keras's RandomRotation / RandomZoom (TF's ImageProjectiveTransformV3): the output
// pixel (x, y) samples the input at an affine image of (x, y) around the image centre
// ((w - 1) / 2, (h - 1) / 2), bilinearly; points outside are filled by `FillMode` (Keras default
// "reflect": d c b a | a b c d | d c b a).
#pragma once
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "../core/core.hpp"

namespace keras::data {

enum class FillMode { reflect, wrap, constant, nearest };

namespace detail {

/// Splits an image tensor into (count, h, w, c).
template <class T>
void image_dims(const Tensor<T>& t, Index& n, Index& h, Index& w, Index& c, const char* fn) {
  if (t.rank() == 3) {
    n = 1;
    h = t.dim(0);
    w = t.dim(1);
    c = t.dim(2);
  } else if (t.rank() == 4) {
    n = t.dim(0);
    h = t.dim(1);
    w = t.dim(2);
    c = t.dim(3);
  } else {
    throw ShapeError(std::string(fn) + ": expected an image [h, w, c] or a batch [n, h, w, c], got " +
                     shape_str(t.shape()));
  }
}

/// TF's map_coordinate for the non-constant fill modes (result within [0, len - 1]).
inline float map_coordinate(float in, Index len_i, FillMode mode) {
  const float len = static_cast<float>(len_i);
  switch (mode) {
    case FillMode::reflect:
      if (in < 0) {
        if (len_i <= 1) return 0;
        const float sz2 = 2 * len;
        if (in < -sz2) in = sz2 * static_cast<float>(static_cast<Index>(-in / sz2)) + in;
        in = (in < -len) ? in + sz2 : -in - 1;
      } else if (in > len - 1) {
        if (len_i <= 1) return 0;
        const float sz2 = 2 * len;
        in -= sz2 * static_cast<float>(static_cast<Index>(in / sz2));
        if (in >= len) in = sz2 - in - 1;
      }
      break;
    case FillMode::wrap:
      if (in < 0) {
        if (len_i <= 1) return 0;
        const float sz = len - 1;
        in += len * static_cast<float>(static_cast<Index>(-in / sz) + 1);
      } else if (in > len - 1) {
        if (len_i <= 1) return 0;
        const float sz = len - 1;
        in -= len * static_cast<float>(static_cast<Index>(in / sz));
      }
      break;
    case FillMode::nearest:
    case FillMode::constant:
      break;
  }
  return std::clamp(in, 0.0f, len - 1);
}

/// out(x, y) = in(a0 x + a1 y + a2, b0 x + b1 y + b2), bilinear, one image (HWC).
template <class T>
void affine_sample(const T* src, T* dst, Index h, Index w, Index c, const float a[3], const float b[3], FillMode mode,
                   T fill_value) {
  for (Index y = 0; y < h; ++y) {
    for (Index x = 0; x < w; ++x, dst += c) {
      float xi = a[0] * static_cast<float>(x) + a[1] * static_cast<float>(y) + a[2];
      float yi = b[0] * static_cast<float>(x) + b[1] * static_cast<float>(y) + b[2];
      if (mode == FillMode::constant) {
        if (xi < -1 || yi < -1 || xi > static_cast<float>(w) || yi > static_cast<float>(h)) {
          for (Index k = 0; k < c; ++k) dst[k] = fill_value;
          continue;
        }
      } else {
        xi = map_coordinate(xi, w, mode);
        yi = map_coordinate(yi, h, mode);
      }
      const float xf = std::floor(xi), yf = std::floor(yi);
      const Index x0 = static_cast<Index>(xf), y0 = static_cast<Index>(yf), x1 = x0 + 1, y1 = y0 + 1;
      const float dx = xi - xf, dy = yi - yf;
      auto px = [&](Index yy, Index xx, Index k) -> float {
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) return static_cast<float>(fill_value);
        return static_cast<float>(src[(yy * w + xx) * c + k]);
      };
      for (Index k = 0; k < c; ++k) {
        const float top = (1 - dx) * px(y0, x0, k) + dx * px(y0, x1, k);
        const float bot = (1 - dx) * px(y1, x0, k) + dx * px(y1, x1, k);
        dst[k] = static_cast<T>((1 - dy) * top + dy * bot);
      }
    }
  }
}

template <class T, class MakeMatrix>
void affine_each(Tensor<T>& images, FillMode mode, T fill_value, const char* fn, MakeMatrix make) {
  Index n, h, w, c;
  image_dims(images, n, h, w, c, fn);
  std::vector<T> tmp(static_cast<std::size_t>(h * w * c));
  for (Index i = 0; i < n; ++i) {
    float a[3], b[3];
    if (!make(h, w, a, b)) continue;  // identity
    T* img = images.data() + i * h * w * c;
    std::copy(img, img + h * w * c, tmp.begin());
    affine_sample(tmp.data(), img, h, w, c, a, b, mode, fill_value);
  }
}

}  // namespace detail

/// Mirrors one HWC image horizontally in place.
template <class T>
void flip_left_right(T* img, Index h, Index w, Index c) {
  for (Index y = 0; y < h; ++y) {
    T* row = img + y * w * c;
    for (Index x = 0; x < w / 2; ++x)
      for (Index k = 0; k < c; ++k) std::swap(row[x * c + k], row[(w - 1 - x) * c + k]);
  }
}

/// Flips each image left-right with probability 1/2 (keras.layers.RandomFlip("horizontal")).
template <class T>
void random_flip_left_right(Tensor<T>& images, Random& rng) {
  Index n, h, w, c;
  detail::image_dims(images, n, h, w, c, "random_flip_left_right");
  for (Index i = 0; i < n; ++i)
    if (rng.uniform() < 0.5) flip_left_right(images.data() + i * h * w * c, h, w, c);
}

/// Flips each image upside down with probability 1/2 (RandomFlip("vertical")).
template <class T>
void random_flip_up_down(Tensor<T>& images, Random& rng) {
  Index n, h, w, c;
  detail::image_dims(images, n, h, w, c, "random_flip_up_down");
  for (Index i = 0; i < n; ++i) {
    if (rng.uniform() >= 0.5) continue;
    T* img = images.data() + i * h * w * c;
    for (Index y = 0; y < h / 2; ++y)
      std::swap_ranges(img + y * w * c, img + (y + 1) * w * c, img + (h - 1 - y) * w * c);
  }
}

/// Rotates each image by an angle drawn uniformly from [lower, upper] * 2 pi (counter-clockwise
/// for positive angles), as keras.layers.RandomRotation(factor=(lower, upper)).
template <class T>
void random_rotation(Tensor<T>& images, double lower, double upper, Random& rng, FillMode fill = FillMode::reflect,
                     T fill_value = T(0)) {
  if (lower > upper) throw ValueError("random_rotation: factor lower bound is greater than the upper bound");
  detail::affine_each(images, fill, fill_value, "random_rotation", [&](Index h, Index w, float a[3], float b[3]) {
    const double angle = rng.uniform(lower, upper) * 2 * 3.14159265358979323846;
    const double cs = std::cos(angle), sn = std::sin(angle);
    const double cx = (static_cast<double>(w) - 1) / 2, cy = (static_cast<double>(h) - 1) / 2;
    a[0] = static_cast<float>(cs);
    a[1] = static_cast<float>(-sn);
    a[2] = static_cast<float>(cx - cs * cx + sn * cy);
    b[0] = static_cast<float>(sn);
    b[1] = static_cast<float>(cs);
    b[2] = static_cast<float>(cy - sn * cx - cs * cy);
    return angle != 0.0;
  });
}
/// RandomRotation(factor): angle in [-factor, factor] * 2 pi.
template <class T>
void random_rotation(Tensor<T>& images, double factor, Random& rng, FillMode fill = FillMode::reflect,
                     T fill_value = T(0)) {
  random_rotation(images, -std::abs(factor), std::abs(factor), rng, fill, fill_value);
}

/// Zooms each image as keras.layers.RandomZoom(height_factor, width_factor): the sampled region is
/// scaled by 1 + U(-height_factor, height_factor) vertically (> 1: zoom out, < 1: zoom in) and by
/// 1 + U(-width_factor, width_factor) horizontally, or by the same factor when width_factor is
/// nullopt (aspect ratio kept).
template <class T>
void random_zoom(Tensor<T>& images, double height_factor, std::optional<double> width_factor, Random& rng,
                 FillMode fill = FillMode::reflect, T fill_value = T(0)) {
  const double hf = std::abs(height_factor);
  if (hf > 1 || (width_factor && std::abs(*width_factor) > 1))
    throw ValueError("random_zoom: factors must be in [-1, 1]");
  detail::affine_each(images, fill, fill_value, "random_zoom", [&](Index h, Index w, float a[3], float b[3]) {
    const double zy = 1 + rng.uniform(-hf, hf);
    const double zx = width_factor ? 1 + rng.uniform(-std::abs(*width_factor), std::abs(*width_factor)) : zy;
    const double cx = (static_cast<double>(w) - 1) / 2, cy = (static_cast<double>(h) - 1) / 2;
    a[0] = static_cast<float>(zx);
    a[1] = 0;
    a[2] = static_cast<float>(cx * (1 - zx));
    b[0] = 0;
    b[1] = static_cast<float>(zy);
    b[2] = static_cast<float>(cy * (1 - zy));
    return zx != 1.0 || zy != 1.0;
  });
}

/// Crops a random height x width window out of each image (keras.layers.RandomCrop in training).
/// Images must be at least that large.
template <class T>
Tensor<T> random_crop(const Tensor<T>& images, Index height, Index width, Random& rng) {
  Index n, h, w, c;
  detail::image_dims(images, n, h, w, c, "random_crop");
  if (height < 1 || width < 1 || height > h || width > w)
    throw ValueError("random_crop: cannot crop " + std::to_string(height) + "x" + std::to_string(width) +
                     " out of images of shape " + shape_str(images.shape()));
  Tensor<T> out(images.rank() == 3 ? Shape{height, width, c} : Shape{n, height, width, c});
  for (Index i = 0; i < n; ++i) {
    const Index y0 = static_cast<Index>(rng.index(static_cast<std::uint64_t>(h - height + 1)));
    const Index x0 = static_cast<Index>(rng.index(static_cast<std::uint64_t>(w - width + 1)));
    const T* src = images.data() + i * h * w * c;
    T* dst = out.data() + i * height * width * c;
    for (Index y = 0; y < height; ++y)
      std::copy(src + ((y0 + y) * w + x0) * c, src + ((y0 + y) * w + x0 + width) * c, dst + y * width * c);
  }
  return out;
}

}  // namespace keras::data
