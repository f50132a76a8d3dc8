// Fuzz target: the .npy reader (io::load_npy), as float and as double.
#include <keras/io/npy.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto p = fuzz::scratch() / "x.npy";
  fuzz::write(p, data, size);
  try {
    auto t = keras::io::load_npy<float>(p.string());
    auto d = keras::io::load_npy<double>(p.string());
    if (t.size() != d.size()) __builtin_trap();
  } catch (const keras::Error&) {}
  return 0;
}
