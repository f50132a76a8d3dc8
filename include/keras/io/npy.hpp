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
  const S* p = reinterpret_cast<const S*>(raw.data());
  for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<T>(p[i]);
}
}  // namespace detail

/// Reads an .npy file. Throws keras::IOError naming the file on any problem.
template <class T = float>
Tensor<T> load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError("cannot open '" + path + "'");
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw IOError("'" + path + "' is not a .npy file (bad magic)");
  std::uint32_t hlen = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) throw IOError("'" + path + "': truncated .npy header");
    hlen = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) throw IOError("'" + path + "': truncated .npy header");
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
  }
  std::string header(hlen, '\0');
  if (!f.read(header.data(), hlen)) throw IOError("'" + path + "': truncated .npy header");
  auto field = [&](const std::string& key) {
    auto k = header.find("'" + key + "'");
    if (k == std::string::npos) throw IOError("'" + path + "': .npy header has no '" + key + "'");
    return header.substr(header.find(':', k) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  std::string fo = field("fortran_order");
  if (fo.find("True") < fo.find(',')) throw IOError("'" + path + "': Fortran-order arrays are not supported");
  std::string sh = field("shape");
  sh = sh.substr(sh.find('(') + 1);
  sh = sh.substr(0, sh.find(')'));
  Shape shape;
  std::size_t pos = 0;
  while (pos < sh.size()) {
    while (pos < sh.size() && (sh[pos] == ' ' || sh[pos] == ',')) ++pos;
    if (pos >= sh.size()) break;
    std::size_t end = pos;
    while (end < sh.size() && std::isdigit(static_cast<unsigned char>(sh[end]))) ++end;
    if (end == pos) throw IOError("'" + path + "': bad shape in .npy header");
    shape.push_back(std::stoll(sh.substr(pos, end - pos)));
    pos = end;
  }
  if (!descr.empty() && descr[0] == '>') throw IOError("'" + path + "': big-endian arrays are not supported");
  std::string kind = descr.size() > 1 ? descr.substr(1) : descr;
  std::size_t item = kind == "f4" ? 4 : kind == "f8" ? 8 : kind == "i4" ? 4 : kind == "i8" ? 8 : kind == "u1" ? 1 : kind == "i1" ? 1 : kind == "f2" ? 2 : 0;
  if (!item || kind == "f2") throw IOError("'" + path + "': unsupported dtype '" + descr + "' (float32, float64, int32, int64, uint8, int8)");
  Tensor<T> t(shape);
  std::vector<char> raw(static_cast<std::size_t>(t.size()) * item);
  if (!f.read(raw.data(), static_cast<std::streamsize>(raw.size())))
    throw IOError("'" + path + "': truncated .npy data (expected " + std::to_string(raw.size()) + " bytes for shape " + shape_str(shape) + ")");
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
