// Image decoding (stb_image: JPEG, PNG, BMP, GIF first frame) and resizing.
//
// Resizing follows TensorFlow's tf.image.resize (v2, antialias=False):
//   bilinear: ResizeBilinear with half_pixel_centers=True. For output pixel o the source coordinate
//             is in = (o + 0.5) * (in_size / out_size) - 0.5; lower = max(floor(in), 0),
//             upper = min(ceil(in), in_size - 1), weight = in - floor(in); computed in float in
//             TF's order (top = tl + (tr - tl) * wx; bottom likewise; top + (bottom - top) * wy),
//             so results agree with TF to float rounding (given identical decoded pixels).
//   nearest:  ResizeNearestNeighbor with half_pixel_centers=True:
//             in = min(floor((o + 0.5) * scale), in_size - 1).
// Decoded pixels can differ from TF's libjpeg by a level or two (different IDCT / chroma
// upsampling); PNG, BMP and GIF decode identically.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "stb.hpp"

namespace keras::data {

/// A decoded image: height x width x channels, uint8, row-major (HWC).
struct Image {
  Index height = 0, width = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
  std::uint8_t& at(Index y, Index x, Index c) {
    return pixels[static_cast<std::size_t>((y * width + x) * channels + c)];
  }
  std::uint8_t at(Index y, Index x, Index c) const {
    return pixels[static_cast<std::size_t>((y * width + x) * channels + c)];
  }
};

/// Limits on untrusted images, checked from the file size and the image header before any pixel is
/// decoded (docs/reliability.md). The pixel cap is Pillow's MAX_IMAGE_PIXELS (89,478,485: about
/// 9459 x 9459, 256 MiB as RGB); a 30000 x 30000 image or a decompression bomb (a tiny file that
/// declares a huge canvas) is refused before stb allocates for it.
struct ImageLimits {
  Index max_pixels = 89478485;                            ///< width x height of one image
  std::uint64_t max_file_bytes = std::uint64_t(1) << 28;  ///< one image file (256 MiB)
};
inline ImageLimits& image_limits() {
  static ImageLimits l;
  return l;
}

/// Reads a whole file (a regular file of at most image_limits().max_file_bytes). Throws IOError
/// naming the file.
inline std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw IOError("cannot open file '" + path + "'");
  std::streamoff n = f.tellg();
  if (n < 0) throw IOError("cannot read file '" + path + "' (not a regular file?)");
  if (static_cast<std::uint64_t>(n) > image_limits().max_file_bytes)
    throw IOError("image file '" + path + "' is " + std::to_string(n) + " bytes, more than the limit of " +
                  std::to_string(image_limits().max_file_bytes) +
                  " bytes (keras::data::image_limits().max_file_bytes)");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(n));
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n)) throw IOError("cannot read file '" + path + "'");
  return bytes;
}

namespace detail {

/// True when a JPEG stream is structurally complete: walks the marker segments (skipping APPn
/// segments, so an embedded EXIF thumbnail's end marker does not count) and the entropy-coded data
/// of every scan, and requires the final EOI marker. stb_image silently decodes a truncated JPEG
/// (padding it with zeros); TF rejects one, and so do we.
inline std::string jpeg_dht_problem(const unsigned char* p, std::size_t n);
inline bool jpeg_is_complete(const unsigned char* p, std::size_t n, std::string* problem = nullptr) {
  // stb_image, like libjpeg, skips fill bytes (0xFF) before the SOI marker: so do we, so that
  // every segment stb will parse is checked here first.
  if (n < 4 || p[0] != 0xFF) return false;
  std::size_t i = 0;
  while (i < n && p[i] == 0xFF) ++i;
  if (i >= n || p[i] != 0xD8) return false;
  ++i;
  while (i + 1 < n) {
    if (p[i] != 0xFF) {  // stray bytes between segments: libjpeg tolerates them, so do we
      ++i;
      continue;
    }
    unsigned m = p[i + 1];
    if (m == 0xFF) {
      ++i;
      continue;
    }                            // fill byte
    if (m == 0xD9) return true;  // EOI
    if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;
      continue;
    }
    if (i + 3 >= n) return false;
    std::size_t len = (static_cast<std::size_t>(p[i + 2]) << 8) | p[i + 3];
    if (len < 2) return false;
    if (i + 2 + len > n) return false;
    if (m == 0xC4 && problem) {
      std::string why = jpeg_dht_problem(p + i + 4, len - 2);
      if (!why.empty()) {
        *problem = why;
        return false;
      }
    }
    i += 2 + len;
    if (m == 0xDA) {  // start of scan: skip entropy-coded data up to the next real marker
      while (i + 1 < n) {
        const void* ff = std::memchr(p + i, 0xFF, n - i - 1);
        if (!ff) return false;
        i = static_cast<std::size_t>(static_cast<const unsigned char*>(ff) - p);
        unsigned b = p[i + 1];
        if (b == 0x00 || (b >= 0xD0 && b <= 0xD7)) {
          i += 2;
          continue;
        }  // stuffed byte / restart
        if (b == 0xFF) {
          ++i;
          continue;
        }
        break;
      }
    }
  }
  return false;
}

/// Checks the Huffman tables of a JPEG DHT segment (payload p[0, n)): table class and id in range,
/// at most 256 codes per table, code lengths that form a valid prefix code, and the segment's
/// length consistent with its tables. stb_image 2.27 trusts the counts and writes past its
/// 257-entry size table on a corrupt segment (a 55-byte file triggers it). Empty when fine.
inline std::string jpeg_dht_problem(const unsigned char* p, std::size_t n) {
  std::size_t i = 0;
  if (n == 0) return "empty DHT segment";
  while (i < n) {
    if (i + 17 > n) return "DHT segment shorter than its table header";
    const unsigned q = p[i];
    if ((q >> 4) > 1 || (q & 15) > 3) return "bad DHT table class or id";
    unsigned total = 0;
    std::uint32_t code = 0;
    for (int len = 1; len <= 16; ++len) {
      const unsigned cnt = p[i + static_cast<std::size_t>(len)];
      total += cnt;
      code += cnt;
      if (code > (std::uint32_t(1) << len)) return "DHT code lengths do not form a prefix code";
      code <<= 1;
    }
    if (total > 256) return "DHT table with more than 256 codes";
    i += 17;
    if (i + total > n) return "DHT segment shorter than its symbols";
    i += total;
  }
  return {};
}

/// stb_image 2.27 passes a null pointer to memcpy (undefined behaviour) on a PNG whose first IDAT
/// chunk is empty. Empty IDAT chunks are legal and carry nothing: when there are any, `out` gets
/// the stream without them (whole chunks, so every CRC stays valid) and the function returns true.
inline bool png_without_empty_idat(const unsigned char* p, std::size_t n, std::vector<unsigned char>& out) {
  auto be32 = [&](std::size_t i) {
    return (std::uint32_t(p[i]) << 24) | (std::uint32_t(p[i + 1]) << 16) | (std::uint32_t(p[i + 2]) << 8) | p[i + 3];
  };
  auto empty_idat = [&](std::size_t i) { return be32(i) == 0 && std::memcmp(p + i + 4, "IDAT", 4) == 0; };
  bool found = false;
  for (std::size_t i = 8; i + 12 <= n && !found; i += 12 + be32(i)) {
    if (be32(i) > n - i - 12) break;
    found = empty_idat(i);
  }
  if (!found) return false;
  out.assign(p, p + 8);
  std::size_t i = 8;
  for (; i + 12 <= n; i += 12 + be32(i)) {
    if (be32(i) > n - i - 12) break;
    if (!empty_idat(i)) out.insert(out.end(), p + i, p + i + 12 + be32(i));
  }
  out.insert(out.end(), p + i, p + n);  // whatever follows the last whole chunk, as it was
  return true;
}

/// True when a PNG stream has its IEND chunk (truncated PNGs are rejected like TF does).
inline bool png_is_complete(const unsigned char* p, std::size_t n) {
  if (n < 20) return false;
  std::size_t from = n > 64 ? n - 64 : 0;
  for (std::size_t i = from; i + 4 <= n; ++i)
    if (std::memcmp(p + i, "IEND", 4) == 0) return true;
  return false;
}

}  // namespace detail

/// Checks without decoding that bytes hold a complete image stb can decode (header parse, plus a
/// structural walk for JPEG and an end-chunk check for PNG). Returns an empty string when fine,
/// else the reason.
inline std::string check_image_bytes(const unsigned char* data, std::size_t n) {
  if (n == 0) return "empty file";
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max())) return "file larger than 2 GiB";
  const bool jpeg = data[0] == 0xFF;  // stb takes any stream starting with 0xFF (fill bytes, then SOI) as a JPEG
  const bool png = n >= 8 && data[0] == 0x89 && data[1] == 'P';
  const bool bmp = n >= 2 && data[0] == 'B' && data[1] == 'M';
  const bool gif = n >= 4 && std::memcmp(data, "GIF8", 4) == 0;
  // JPEG structure first: stb_image parses the Huffman tables already in stbi_info.
  if (jpeg) {
    std::string problem;
    if (!detail::jpeg_is_complete(data, n, &problem))
      return problem.empty() ? "truncated JPEG" : "corrupt JPEG: " + problem;
  }
  // PNG: the limit is checked from IHDR first (stb refuses very large PNGs itself, but then
  // reports only "unknown image type").
  if (png && n >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto be32 = [&](std::size_t i) {
      return (Index(data[i]) << 24) | (Index(data[i + 1]) << 16) | (Index(data[i + 2]) << 8) | Index(data[i + 3]);
    };
    const Index pw = be32(16), ph = be32(20);  // each < 2^32: the product can overflow, so divide
    const Index limit = image_limits().max_pixels;
    if (pw > 0 && ph > 0 && (pw > limit || ph > limit / pw))
      return "the header declares " + std::to_string(pw) + " x " + std::to_string(ph) +
             " pixels, more than the limit of " + std::to_string(limit) +
             " pixels (keras::data::image_limits().max_pixels)";
  }
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(data, static_cast<int>(n), &w, &h, &c))
    return std::string("not a decodable image (") + stbi_failure_reason() + ")";
  if (w <= 0 || h <= 0) return "image has no pixels";
  const Index px = static_cast<Index>(w) * h;
  const std::string dims = std::to_string(w) + " x " + std::to_string(h);
  if (px > image_limits().max_pixels)
    return "the header declares " + dims + " = " + std::to_string(px) + " pixels, more than the limit of " +
           std::to_string(image_limits().max_pixels) + " pixels (keras::data::image_limits().max_pixels)";
  // Decompression bombs: stb decodes missing data as zeros, so a small file can declare a big
  // canvas and cost its full size. Each format has a most pixels per file byte that a complete
  // image can reach: JPEG >= 1 bit per 8x8 block of one component (512 px/byte; 1024 allowed),
  // uncompressed BMP >= 1 bit per pixel (8), GIF's 12-bit LZW codes of <= 4096 pixels (4096 x 8/12,
  // 4096 allowed), PNG's deflate (<= 1032:1) of 1-bit pixels (8256; 16384 allowed).
  const Index per_byte = jpeg ? 1024 : bmp ? 8 : gif ? 4096 : png ? 16384 : 0;
  if (per_byte && px > per_byte * static_cast<Index>(n))
    return "the header declares " + dims + " pixels, more than a complete " +
           (jpeg  ? "JPEG"
            : bmp ? "BMP"
            : gif ? "GIF"
                  : "PNG") +
           " of " + std::to_string(n) + " bytes can hold (truncated file or decompression bomb)";
  if (png && !detail::png_is_complete(data, n)) return "truncated PNG";
  return {};
}

/// Decodes an image held in memory to `channels` channels (1 grayscale, 3 RGB, 4 RGBA; 0 keeps the
/// file's own). Throws IOError (mentioning `name`) for unreadable, truncated or non-image data.
inline Image decode_image_bytes(const unsigned char* data, std::size_t n, int channels = 3,
                                const std::string& name = "<memory>") {
  if (channels < 0 || channels > 4 || channels == 2)
    throw ValueError("decode_image: channels must be 0, 1, 3 or 4, got " + std::to_string(channels));
  std::string why = check_image_bytes(data, n);
  if (!why.empty()) throw IOError("cannot decode image '" + name + "': " + why);
  std::vector<unsigned char> cleaned;
  if (n >= 8 && data[0] == 0x89 && data[1] == 'P' && detail::png_without_empty_idat(data, n, cleaned)) {
    data = cleaned.data();
    n = cleaned.size();
  }
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load_from_memory(data, static_cast<int>(n), &w, &h, &c, channels);
  if (!px) throw IOError("cannot decode image '" + name + "': " + stbi_failure_reason());
  Image img;
  img.height = h;
  img.width = w;
  img.channels = channels ? channels : c;
  img.pixels.assign(px, px + static_cast<std::size_t>(h) * w * img.channels);
  stbi_image_free(px);
  return img;
}

/// Reads and decodes an image file (see decode_image_bytes).
inline Image decode_image(const std::string& path, int channels = 3) {
  std::vector<unsigned char> bytes = read_file_bytes(path);
  return decode_image_bytes(bytes.data(), bytes.size(), channels, path);
}

/// A source window of an image: rows [y0, y0 + h), columns [x0, x0 + w).
struct Window {
  Index y0 = 0, x0 = 0, height = 0, width = 0;
};

/// Keras's smart_resize crop (crop_to_aspect_ratio=True): the largest centred window of the image
/// with the target aspect ratio.
inline Window crop_window_for_aspect(Index height, Index width, Index target_h, Index target_w) {
  Index ch =
      std::min(height, static_cast<Index>(static_cast<double>(width * target_h) / static_cast<double>(target_w)));
  Index cw =
      std::min(width, static_cast<Index>(static_cast<double>(height * target_w) / static_cast<double>(target_h)));
  ch = std::max<Index>(ch, 1);
  cw = std::max<Index>(cw, 1);
  return {static_cast<Index>(static_cast<double>(height - ch) / 2),
          static_cast<Index>(static_cast<double>(width - cw) / 2), ch, cw};
}

namespace detail {
struct LerpIndex {
  Index lower, upper;
  float lerp;
};
inline void bilinear_weights(Index in_size, Index out_size, std::vector<LerpIndex>& w) {
  w.resize(static_cast<std::size_t>(out_size));
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  for (Index o = 0; o < out_size; ++o) {
    const float in = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
    const float in_f = std::floor(in);
    w[o].lower = std::max<Index>(static_cast<Index>(in_f), 0);
    w[o].upper = std::min<Index>(static_cast<Index>(std::ceil(in)), in_size - 1);
    w[o].lerp = in - in_f;
  }
}
}  // namespace detail

/// Resizes the window `win` of an HWC uint8 image (row stride = src_width * channels) to
/// out_h x out_w, writing HWC values of type T to `dst`. interpolation: "bilinear" or "nearest"
/// (TF semantics, see the top of this file).
template <class T>
void resize_image(const std::uint8_t* src, Index src_width, Index channels, Window win, T* dst, Index out_h,
                  Index out_w, const std::string& interpolation = "bilinear") {
  if (win.height <= 0 || win.width <= 0 || out_h <= 0 || out_w <= 0)
    throw ValueError("resize_image: empty source window or output size");
  const Index C = channels;
  const Index stride = src_width * C;
  const std::uint8_t* base = src + win.y0 * stride + win.x0 * C;
  if (interpolation == "nearest") {
    const float sy = static_cast<float>(win.height) / static_cast<float>(out_h);
    const float sx = static_cast<float>(win.width) / static_cast<float>(out_w);
    for (Index y = 0; y < out_h; ++y) {
      Index iy = std::min<Index>(static_cast<Index>(std::floor((static_cast<float>(y) + 0.5f) * sy)), win.height - 1);
      for (Index x = 0; x < out_w; ++x) {
        Index ix = std::min<Index>(static_cast<Index>(std::floor((static_cast<float>(x) + 0.5f) * sx)), win.width - 1);
        const std::uint8_t* p = base + iy * stride + ix * C;
        for (Index c = 0; c < C; ++c) *dst++ = static_cast<T>(p[c]);
      }
    }
    return;
  }
  if (interpolation != "bilinear")
    throw ValueError("resize_image: interpolation '" + interpolation +
                     "' is not supported (use 'bilinear' or 'nearest')");
  thread_local std::vector<detail::LerpIndex> wy, wx;
  detail::bilinear_weights(win.height, out_h, wy);
  detail::bilinear_weights(win.width, out_w, wx);
  for (Index y = 0; y < out_h; ++y) {
    const std::uint8_t* top = base + wy[y].lower * stride;
    const std::uint8_t* bot = base + wy[y].upper * stride;
    const float ly = wy[y].lerp;
    for (Index x = 0; x < out_w; ++x) {
      const Index l = wx[x].lower * C, r = wx[x].upper * C;
      const float lx = wx[x].lerp;
      for (Index c = 0; c < C; ++c) {
        const float tl = top[l + c], tr = top[r + c], bl = bot[l + c], br = bot[r + c];
        const float t = tl + (tr - tl) * lx;
        const float b = bl + (br - bl) * lx;
        *dst++ = static_cast<T>(t + (b - t) * ly);
      }
    }
  }
}

/// Convenience: resizes a whole Image (optionally cropping to the target aspect ratio first, like
/// Keras's crop_to_aspect_ratio) into a float vector of out_h * out_w * channels values.
template <class T = float>
std::vector<T> resize_image(const Image& img, Index out_h, Index out_w, const std::string& interpolation = "bilinear",
                            bool crop_to_aspect_ratio = false) {
  Window win = crop_to_aspect_ratio ? crop_window_for_aspect(img.height, img.width, out_h, out_w)
                                    : Window{0, 0, img.height, img.width};
  std::vector<T> out(static_cast<std::size_t>(out_h * out_w * img.channels));
  resize_image(img.pixels.data(), img.width, img.channels, win, out.data(), out_h, out_w, interpolation);
  return out;
}

}  // namespace keras::data
