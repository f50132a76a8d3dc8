// File helpers: whole-file reads with clear errors and size limits checked before anything is
// allocated, and durable atomic writes (temp file, fsync, rename, fsync of the folder), so an
// interrupted save never leaves a broken or half-written file behind, even after a power cut.
#pragma once
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "../core/error.hpp"
#include "../core/shape.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define KERASCPP_HAVE_POSIX_IO 1
#endif

namespace keras::io {

/// Limits on what the readers accept from a file, checked from the file's size and headers before
/// anything is allocated (docs/reliability.md). Raise them (keras::io::limits().x = ...) for
/// unusually large trusted files; lower them to bound the memory an untrusted file may take.
struct Limits {
  std::uint64_t max_file_bytes = std::uint64_t(1)
                                 << 32;  ///< any one file read whole: model.json, a shard, a .npy (4 GiB)
  std::uint64_t max_json_bytes = std::uint64_t(1) << 28;  ///< model.json (256 MiB)
  int max_json_depth = 100;                               ///< nesting of model.json (real models: < 20)
  Index max_weight_elements = Index(1) << 31;             ///< one weight of a weights manifest
  Index max_npy_elements = Index(1) << 32;                ///< one .npy array
  std::uint32_t max_npy_header_bytes = 1 << 16;           ///< a .npy header (numpy writes < 4 KiB)
};
inline Limits& limits() {
  static Limits l;
  return l;
}

/// The size of a regular file, checked against `limit` (its name in the message: `what`). Refuses
/// devices, pipes and folders (a shard named /dev/zero would otherwise be read forever).
inline std::uint64_t checked_file_size(const std::string& path, std::uint64_t limit,
                                       const char* what = "max_file_bytes") {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) throw IOError("cannot open '" + path + "': no such file");
  if (!std::filesystem::is_regular_file(st)) throw IOError("cannot read '" + path + "': not a regular file");
  std::uint64_t n = std::filesystem::file_size(path, ec);
  if (ec) throw IOError("cannot read the size of '" + path + "': " + ec.message());
  if (n > limit)
    throw IOError("'" + path + "' is " + std::to_string(n) + " bytes, more than the limit of " + std::to_string(limit) +
                  " bytes (keras::io::limits()." + what + ")");
  return n;
}

/// Reads a whole regular file of at most `limit` bytes (default limits().max_file_bytes).
inline std::string read_file(const std::string& path, std::uint64_t limit = 0, const char* what = "max_file_bytes") {
  const std::uint64_t n =
      checked_file_size(path, limit ? limit : limits().max_file_bytes, limit ? what : "max_file_bytes");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError("cannot open '" + path + "'");
  std::string s(static_cast<std::size_t>(n), '\0');
  if (n && !f.read(s.data(), static_cast<std::streamsize>(n)))
    throw IOError("error reading '" + path + "' (file shrank while reading?)");
  return s;
}

/// A temporary name next to `path` (same filesystem, so rename is atomic).
inline std::string temp_path_for(const std::string& path) {
  std::random_device rd;
  return path + ".tmp" + std::to_string(rd() % 1000000);
}

namespace detail {
#ifdef KERASCPP_HAVE_POSIX_IO
/// fsync of a file or folder by path (folders: makes a rename inside it durable).
inline bool fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_WRONLY);
  if (fd < 0) return false;
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  ::close(fd);
  return rc == 0;
}
#endif
}  // namespace detail

/// Writes `data` to `path` durably and atomically: a temp file next to it is written, fsync'ed,
/// renamed over `path`, then the folder is fsync'ed. Readers see the old file or the new one,
/// never a mix, also after a crash or a power cut.
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
#ifdef KERASCPP_HAVE_POSIX_IO
  if (!detail::fsync_path(tmp, false)) {
    std::error_code ec2;
    std::filesystem::remove(tmp, ec2);
    throw IOError("cannot fsync '" + tmp + "': " + std::strerror(errno));
  }
#endif
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw IOError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  }
#ifdef KERASCPP_HAVE_POSIX_IO
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!detail::fsync_path(dir.string(), true))
    throw IOError("cannot fsync the folder '" + dir.string() + "': " + std::strerror(errno));
#endif
}

}  // namespace keras::io
