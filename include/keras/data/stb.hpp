// stb_image, compiled into every translation unit that includes kerascpp's data headers.
//
// kerascpp is header-only, so the decoder is built with internal linkage (STB_IMAGE_STATIC): each
// translation unit gets its own private copy and any number of them link together. Only JPEG,
// PNG, BMP and GIF are compiled (the formats image_dataset_from_directory accepts).
//
// Constraint: in a translation unit that includes this header, do not also include <stb_image.h>
// yourself with different settings (stb's own include guard would merge the two). Other
// translation units may use their own stb_image freely.
#pragma once
#ifndef KERASCPP_STB_IMAGE_INCLUDED
#define KERASCPP_STB_IMAGE_INCLUDED

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO  // kerascpp reads files itself and decodes from memory
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#if !defined(__clang__)  // a GCC-only warning: clang would warn about the unknown option
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef STB_IMAGE_IMPLEMENTATION

#endif  // KERASCPP_STB_IMAGE_INCLUDED
