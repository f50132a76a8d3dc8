// The data module: image decoding/resizing, the Dataset pipeline, image_dataset_from_directory and
// augmentation. Includes stb_image (compiled static in each translation unit, see stb.hpp).
#pragma once
#include "augmentation.hpp"
#include "dataset.hpp"
#include "image.hpp"
#include "image_dataset.hpp"
#include "image_utils.hpp"
