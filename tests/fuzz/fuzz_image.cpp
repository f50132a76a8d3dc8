// Fuzz target: image decode (stb_image behind kerascpp's checks) + resize. Byte 0 picks the
// channels (0, 1, 3, 4), the interpolation and crop_to_aspect_ratio; byte 1 and 2 the output
// size (1..32); the rest is the image file. The pixel cap is lowered to 2^22 so that a run stays
// fast; the default cap (89,478,485 pixels) is tested in tests/test_data.cpp.
#include <keras/data/image.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  keras::data::image_limits().max_pixels = 1 << 22;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  static const int channels[] = {0, 1, 3, 4};
  const int ch = channels[data[0] & 3];
  const char* interp = (data[0] & 4) ? "nearest" : "bilinear";
  const bool crop = data[0] & 8;
  const keras::Index oh = 1 + data[1] % 32, ow = 1 + data[2] % 32;
  try {
    auto img = keras::data::decode_image_bytes(data + 3, size - 3, ch, "fuzz");
    if (img.pixels.size() != static_cast<std::size_t>(img.height * img.width * img.channels)) __builtin_trap();
    auto out = keras::data::resize_image<float>(img, oh, ow, interp, crop);
    for (float v : out)
      if (!(v >= 0.0f && v <= 255.0f)) __builtin_trap();  // interpolated pixels stay in range
  } catch (const keras::Error&) {}
  return 0;
}
