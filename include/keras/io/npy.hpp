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

/// Reads an .npy file. Throws keras::IOError naming the file on any problem. The header length,
/// the shape and the data size are checked against the file's size and keras::io::limits()
/// before anything is allocated.
template <class T = float>
Tensor<T> load_npy(const std::string& path) {
  const std::uint64_t file_bytes = checked_file_size(path, limits().max_file_bytes);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError("cannot open '" + path + "'");
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw IOError("'" + path + "' is not a .npy file (bad magic)");
  if (magic[6] < 1 || magic[6] > 3) throw IOError("'" + path + "': unsupported .npy format version " + std::to_string(int(magic[6])) + " (1, 2 and 3 are)");
  std::uint32_t hlen = 0;
  std::uint64_t prefix = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) throw IOError("'" + path + "': truncated .npy header");
    hlen = b[0] | (b[1] << 8);
    prefix = 10;
  } else {
    unsigned char b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) throw IOError("'" + path + "': truncated .npy header");
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
    prefix = 12;
  }
  if (hlen > limits().max_npy_header_bytes)
    throw IOError("'" + path + "': the .npy header claims " + std::to_string(hlen) + " bytes, more than the limit of " +
                  std::to_string(limits().max_npy_header_bytes) + " (keras::io::limits().max_npy_header_bytes)");
  if (prefix + hlen > file_bytes)
    throw IOError("'" + path + "': truncated .npy header (it claims " + std::to_string(hlen) + " bytes, the file has " + std::to_string(file_bytes) + ")");
  std::string header(hlen, '\0');
  if (!f.read(header.data(), hlen)) throw IOError("'" + path + "': truncated .npy header");
  auto field = [&](const std::string& key) {
    auto k = header.find("'" + key + "'");
    if (k == std::string::npos) throw IOError("'" + path + "': .npy header has no '" + key + "'");
    auto colon = header.find(':', k);
    if (colon == std::string::npos) throw IOError("'" + path + "': malformed .npy header (no value for '" + key + "')");
    return header.substr(colon + 1);
  };
  std::string descr = field("descr");
  if (descr.find('\'') == std::string::npos) throw IOError("'" + path + "': malformed .npy header (descr is not a string)");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  std::string fo = field("fortran_order");
  if (fo.find("True") < fo.find(',')) throw IOError("'" + path + "': Fortran-order arrays are not supported");
  std::string sh = field("shape");
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
      if (d > (Index(1) << 40)) throw IOError("'" + path + "': .npy shape (" + sh.substr(0, 60) + ") has a dimension over 2^40");
      d = d * 10 + (sh[end] - '0');
      ++end;
    }
    if (end == pos) throw IOError("'" + path + "': bad shape (" + sh.substr(0, 60) + ") in .npy header");
    shape.push_back(d);
    if (shape.size() > 16) throw IOError("'" + path + "': .npy shape has more than 16 dimensions");
    pos = end;
  }
  if (!descr.empty() && descr[0] == '>') throw IOError("'" + path + "': big-endian arrays are not supported");
  std::string kind = descr.size() > 1 ? descr.substr(1) : descr;
  std::size_t item = kind == "f4" ? 4 : kind == "f8" ? 8 : kind == "i4" ? 4 : kind == "i8" ? 8 : kind == "u1" ? 1 : kind == "i1" ? 1 : kind == "f2" ? 2 : 0;
  if (!item || kind == "f2") throw IOError("'" + path + "': unsupported dtype '" + descr + "' (float32, float64, int32, int64, uint8, int8)");
  Index n = 1;
  for (Index d : shape) {
    if (d != 0 && n > limits().max_npy_elements / d) {
      n = -1;
      break;
    }
    n *= d;
  }
  if (n < 0 || n > limits().max_npy_elements)
    throw IOError("'" + path + "': the .npy shape " + shape_str(shape) + " has more than the limit of " + std::to_string(limits().max_npy_elements) +
                  " elements (keras::io::limits().max_npy_elements)");
  const std::uint64_t need = static_cast<std::uint64_t>(n) * item, have = file_bytes - prefix - hlen;
  if (need > have)
    throw IOError("'" + path + "': truncated .npy data (expected " + std::to_string(need) + " bytes for shape " + shape_str(shape) + " of " + descr +
                  ", the file holds " + std::to_string(have) + ")");
  std::vector<char> raw(static_cast<std::size_t>(need));
  if (!f.read(raw.data(), static_cast<std::streamsize>(raw.size())))
    throw IOError("'" + path + "': truncated .npy data (expected " + std::to_string(raw.size()) + " bytes for shape " + shape_str(shape) + ")");
  Tensor<T> t(shape);
  if (kind == "f4") detail::convert_into<float>(raw, t);
  else if (kind == "f8") detail::convert_into<double>(raw, t);
  else if (kind == "i4") detail::convert_into<std::int32_t>(raw, t);
  else if (kind == "i8") detail::convert_into<std::int64_t>(raw, t);
  else if (kind == "u1") detail::convert_into<std::uint8_t>(raw, t);
  else detail::convert_into<std::int8_t>(raw, t);
  return t;
}

/// Writes t as .npy (float32 for Tensor<float>, float64 for Tensor<double>), atomically.
template <class T>
void save_npy(const std::string& path, const Tensor<T>& t) {
  std::string shape = "(";
  for (std::size_t i = 0; i < t.shape().size(); ++i) shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 || i + 1 < t.shape().size() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '<") + (sizeof(T) == 8 ? "f8" : "f4") + "', 'fortran_order': False, 'shape': " + shape + ", }";
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
