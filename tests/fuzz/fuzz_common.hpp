// Shared by the libFuzzer targets (tools/fuzz.sh builds them with clang, ASan and UBSan).
// Contract: bad input must end in a keras::Error (a clean rejection). Anything else that leaves
// the target (another exception, a crash, a sanitizer report, a timeout, a memory blow-up) is a
// finding: libFuzzer saves the input and stops.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fuzz {

/// A scratch folder private to this process (libFuzzer -jobs/-fork run several processes).
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base =
        std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto d = base / ("kerascpp_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline void write(const std::filesystem::path& p, const std::uint8_t* data, std::size_t n) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
}
inline void write(const std::filesystem::path& p, const std::string& s) {
  write(p, reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

}  // namespace fuzz
