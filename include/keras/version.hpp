// kerascpp's version: the one source of truth. CMake's project(VERSION) reads the three numbers
// below from this file, the saved model.json records KERASCPP_VERSION_STRING in `generatedBy`, and
// `kerascpp --version` prints it.
#pragma once

#define KERASCPP_VERSION_MAJOR 0
#define KERASCPP_VERSION_MINOR 1
#define KERASCPP_VERSION_PATCH 0

#define KERASCPP_VERSION_STRINGIFY_(x) #x
#define KERASCPP_VERSION_STRINGIFY(x) KERASCPP_VERSION_STRINGIFY_(x)
/// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
#define KERASCPP_VERSION_STRING                      \
  KERASCPP_VERSION_STRINGIFY(KERASCPP_VERSION_MAJOR) \
  "." KERASCPP_VERSION_STRINGIFY(KERASCPP_VERSION_MINOR) "." KERASCPP_VERSION_STRINGIFY(KERASCPP_VERSION_PATCH)
/// One number that orders versions: MAJOR * 10000 + MINOR * 100 + PATCH.
#define KERASCPP_VERSION (KERASCPP_VERSION_MAJOR * 10000 + KERASCPP_VERSION_MINOR * 100 + KERASCPP_VERSION_PATCH)

namespace keras {
/// The library's version, "MAJOR.MINOR.PATCH" (KERASCPP_VERSION_STRING).
inline constexpr const char* version_string = KERASCPP_VERSION_STRING;
}  // namespace keras
