// File helpers: whole-file reads with clear errors, and atomic writes (temp file + rename), so
// an interrupted save never leaves a broken file behind.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "../core/error.hpp"

namespace keras::io {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError("cannot open '" + path + "'" + (std::filesystem::exists(path) ? "" : ": no such file"));
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw IOError("error reading '" + path + "'");
  return s;
}

/// A temporary name next to `path` (same filesystem, so rename is atomic).
inline std::string temp_path_for(const std::string& path) {
  std::random_device rd;
  return path + ".tmp" + std::to_string(rd() % 1000000);
}

inline void write_file_atomic(const std::string& path, const std::string& data) {
  std::string tmp = temp_path_for(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IOError("cannot write '" + tmp + "'");
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f) {
      std::filesystem::remove(tmp);
      throw IOError("error writing '" + tmp + "' (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw IOError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  }
}

}  // namespace keras::io
