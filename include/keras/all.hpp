// Everything: the core API (keras.hpp) plus model files, applications, image data and callbacks
// that write files. Heavier to compile (stb, file I/O); include what you use if build time matters.
#pragma once
#include "keras.hpp"
#include "io/npy.hpp"
#include "io/tfjs.hpp"
#include "callbacks/model_checkpoint.hpp"
#include "applications/mobilenet_v2.hpp"
#include "data/data.hpp"
