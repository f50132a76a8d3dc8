// NumPy .npy files (format 1.0/2.0/3.0): read float32/float64/int/uint8 arrays into a Tensor<T>,
// write float32 (or float64 for Tensor<double>). C order only.
#pragma once
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../core/core.hpp"
#include "file_utils.hpp"

namespace keras::io {

namespace detail {
template <class S, class T>
void convert_into(const std::vector<char>& raw, Tensor<T>& t) {
  // memcpy per element: the raw buffer has no alignment guarantee for S (UB through a cast pointer)
  for (Index i = 0; i < t.size(); ++i) {
    S v;
    std::memcpy(&v, raw.data() + sizeof(S) * static_cast<std::size_t>(i), sizeof(S));
    t[i] = static_cast<T>(v);
  }
}
}  // namespace detail

namespace detail {
/// What an .npy header says: where the data starts, its dtype and its shape.
struct NpyHeader {
  std::uint64_t data_offset = 0;  ///< magic + length field + header
  std::string descr;              ///< e.g. "<f4"
  std::string kind;               ///< descr without the byte order: "f4", "i8", ...
  std::size_t item = 0;           ///< bytes per element
  Shape shape;
};

/// The tuple of an .npy header's 'shape' value, e.g. "(3, 4), }" -> {3, 4}.
inline Shape parse_npy_shape(std::string sh, const std::string& path) {
  if (sh.find('(') == std::string::npos || sh.find(')', sh.find('(')) == std::string::npos)
    throw IOError("'" + path + "': malformed .npy header (shape is not a tuple)");
  sh = sh.substr(sh.find('(') + 1);
  sh = sh.substr(0, sh.find(')'));
  Shape shape;
  std::size_t pos = 0;
  while (pos < sh.size()) {
    while (pos < sh.size() && (sh[pos] == ' ' || sh[pos] == ',')) ++pos;
    if (pos >= sh.size()) break;
    std::size_t end = pos;
    Index d = 0;
    while (end < sh.size() && sh[end] >= '0' && sh[end] <= '9') {
      if (d > (Index(1) << 40))
        throw IOError("'" + path + "': .npy shape (" + sh.substr(0, 60) + ") has a dimension over 2^40");
      d = d * 10 + (sh[end] - '0');
      ++end;
    }
    if (end == pos) throw IOError("'" + path + "': bad shape (" + sh.substr(0, 60) + ") in .npy header");
    shape.push_back(d);
    if (shape.size() > 16) throw IOError("'" + path + "': .npy shape has more than 16 dimensions");
    pos = end;
  }
  return shape;
}

/// Reads the magic, the header length and the header dictionary, checked against the file size.
inline NpyHeader read_npy_header(std::ifstream& f, const std::string& path, std::uint64_t file_bytes) {
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw IOError("'" + path + "' is not a .npy file (bad magic)");
  if (magic[6] < 1 || magic[6] > 3)
    throw IOError("'" + path + "': unsupported .npy format version " + std::to_string(int(magic[6])) +
                  " (1, 2 and 3 are)");
  const int len_bytes = magic[6] == 1 ? 2 : 4;
  unsigned char b[4] = {0, 0, 0, 0};
  if (!f.read(reinterpret_cast<char*>(b), len_bytes)) throw IOError("'" + path + "': truncated .npy header");
  const std::uint32_t hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
  if (hlen > limits().max_npy_header_bytes)
    throw IOError("'" + path + "': the .npy header claims " + std::to_string(hlen) + " bytes, more than the limit of " +
                  std::to_string(limits().max_npy_header_bytes) + " (keras::io::limits().max_npy_header_bytes)");
  NpyHeader h;
  h.data_offset = 8 + len_bytes + std::uint64_t(hlen);
  if (h.data_offset > file_bytes)
    throw IOError("'" + path + "': truncated .npy header (it claims " + std::to_string(hlen) + " bytes, the file has " +
                  std::to_string(file_bytes) + ")");
  std::string header(hlen, '\0');
  if (!f.read(header.data(), hlen)) throw IOError("'" + path + "': truncated .npy header");
  auto field = [&](const std::string& key) {
    auto k = header.find("'" + key + "'");
    if (k == std::string::npos) throw IOError("'" + path + "': .npy header has no '" + key + "'");
    auto colon = header.find(':', k);
    if (colon == std::string::npos) throw IOError("'" + path + "': malformed .npy header (no value for '" + key + "')");
    return header.substr(colon + 1);
  };
  h.descr = field("descr");
  if (h.descr.find('\'') == std::string::npos)
    throw IOError("'" + path + "': malformed .npy header (descr is not a string)");
  h.descr = h.descr.substr(h.descr.find('\'') + 1);
  h.descr = h.descr.substr(0, h.descr.find('\''));
  std::string fo = field("fortran_order");
  if (fo.find("True") < fo.find(',')) throw IOError("'" + path + "': Fortran-order arrays are not supported");
  h.shape = parse_npy_shape(field("shape"), path);
  if (!h.descr.empty() && h.descr[0] == '>') throw IOError("'" + path + "': big-endian arrays are not supported");
  h.kind = h.descr.size() > 1 ? h.descr.substr(1) : h.descr;
  const std::string& k = h.kind;
  h.item = k == "f4" ? 4 : k == "f8" ? 8 : k == "i4" ? 4 : k == "i8" ? 8 : k == "u1" ? 1 : k == "i1" ? 1 : 0;
  if (!h.item)
    throw IOError("'" + path + "': unsupported dtype '" + h.descr + "' (float32, float64, int32, int64, uint8, int8)");
  return h;
}
}  // namespace detail

/// Reads an .npy file. Throws keras::IOError naming the file on any problem. The header length,
/// the shape and the data size are checked against the file's size and keras::io::limits()
/// before anything is allocated.
template <class T = float>
Tensor<T> load_npy(const std::string& path) {
  const std::uint64_t file_bytes = checked_file_size(path, limits().max_file_bytes);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError("cannot open '" + path + "'");
  const detail::NpyHeader h = detail::read_npy_header(f, path, file_bytes);
  Index n = 1;
  for (Index d : h.shape) {
    if (d != 0 && n > limits().max_npy_elements / d) {
      n = -1;
      break;
    }
    n *= d;
  }
  if (n < 0 || n > limits().max_npy_elements)
    throw IOError("'" + path + "': the .npy shape " + shape_str(h.shape) + " has more than the limit of " +
                  std::to_string(limits().max_npy_elements) + " elements (keras::io::limits().max_npy_elements)");
  const std::uint64_t need = static_cast<std::uint64_t>(n) * h.item, have = file_bytes - h.data_offset;
  if (need > have)
    throw IOError("'" + path + "': truncated .npy data (expected " + std::to_string(need) + " bytes for shape " +
                  shape_str(h.shape) + " of " + h.descr + ", the file holds " + std::to_string(have) + ")");
  std::vector<char> raw(static_cast<std::size_t>(need));
  if (!f.read(raw.data(), static_cast<std::streamsize>(raw.size())))
    throw IOError("'" + path + "': truncated .npy data (expected " + std::to_string(raw.size()) + " bytes for shape " +
                  shape_str(h.shape) + ")");
  Tensor<T> t(h.shape);
  if (h.kind == "f4")
    detail::convert_into<float>(raw, t);
  else if (h.kind == "f8")
    detail::convert_into<double>(raw, t);
  else if (h.kind == "i4")
    detail::convert_into<std::int32_t>(raw, t);
  else if (h.kind == "i8")
    detail::convert_into<std::int64_t>(raw, t);
  else if (h.kind == "u1")
    detail::convert_into<std::uint8_t>(raw, t);
  else
    detail::convert_into<std::int8_t>(raw, t);
  return t;
}

/// Writes t as .npy (float32 for Tensor<float>, float64 for Tensor<double>), atomically.
template <class T>
void save_npy(const std::string& path, const Tensor<T>& t) {
  std::string shape = "(";
  for (std::size_t i = 0; i < t.shape().size(); ++i)
    shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 || i + 1 < t.shape().size() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '<") + (sizeof(T) == 8 ? "f8" : "f4") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  std::size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  std::uint16_t hl = static_cast<std::uint16_t>(header.size());
  out += static_cast<char>(hl & 0xff);
  out += static_cast<char>(hl >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(t.data()), sizeof(T) * static_cast<std::size_t>(t.size()));
  write_file_atomic(path, out);
}

}  // namespace keras::io
