// One image through a model, as Keras's keras.utils: load_img, img_to_array, expand_dims and
// decode_predictions (top-k class names and scores).
//
//   auto img = utils::load_img("rose.jpg", {.target_size = {160, 160}, .interpolation = "bilinear"});
//   Tensor<float> x = utils::expand_dims(utils::img_to_array(img), 0);    // [1, 160, 160, 3]
//   auto top = utils::decode_predictions(model.predict(x), model.metadata["class_names"], 3);
//   top[0][0].class_name, top[0][0].score                                  // the best guess
//
// Resizing is TF's (data/image.hpp), the same code image_dataset_from_directory runs, so an image
// loaded here with the dataset's image_size and interpolation has exactly the dataset's pixels.
// Keras's load_img resizes with PIL instead (which antialiases when it shrinks and rounds to 8 bits),
// so its pixels differ slightly from tf.data's; here both paths agree.
#pragma once
#include <algorithm>
#include <array>
#include <numeric>
#include <string>
#include <vector>

#include "../core/core.hpp"
#include "image.hpp"

namespace keras::utils {

/// Options of load_img (Keras's arguments and defaults; target_size first, the one most calls set).
struct LoadImgOptions {
  std::array<Index, 2> target_size = {0, 0};  ///< (height, width); {0, 0}: the file's own size (Keras's None)
  std::string color_mode = "rgb";             ///< "rgb", "grayscale" or "rgba"
  std::string interpolation = "nearest";      ///< "nearest" (Keras's default) or "bilinear" (the dataset's default)
  bool keep_aspect_ratio = false;             ///< crop the centre to target_size's aspect ratio before resizing
};

/// What load_img returns (Keras: a PIL image): height x width x channels pixels in [0, 255], HWC.
/// Float, so that resized pixels are not rounded (they equal image_dataset_from_directory's).
struct LoadedImage {
  Index height = 0, width = 0, channels = 0;
  std::vector<float> pixels;
};

/// Keras's load_img: reads an image file (JPEG, PNG, BMP, GIF), converts it to color_mode and
/// resizes it to target_size. Throws IOError naming the file when it cannot be read or decoded.
inline LoadedImage load_img(const std::string& path, const LoadImgOptions& o = {}) {
  int channels = o.color_mode == "rgb" ? 3 : o.color_mode == "rgba" ? 4 : o.color_mode == "grayscale" ? 1 : 0;
  if (!channels)
    throw ValueError("load_img: color_mode must be \"grayscale\", \"rgb\" or \"rgba\". Received: color_mode=" +
                     o.color_mode);
  if (o.interpolation != "nearest" && o.interpolation != "bilinear")
    throw ValueError(
        "load_img: interpolation must be \"nearest\" or \"bilinear\" in kerascpp. Received: interpolation=" +
        o.interpolation);
  const bool resize = o.target_size[0] != 0 || o.target_size[1] != 0;
  if (resize && (o.target_size[0] <= 0 || o.target_size[1] <= 0))
    throw ValueError(
        "load_img: target_size must be two positive sizes (height, width), or {0, 0} for the file's size. Received: (" +
        std::to_string(o.target_size[0]) + ", " + std::to_string(o.target_size[1]) + ")");
  data::Image img = data::decode_image(path, channels);
  LoadedImage r;
  r.channels = img.channels;
  if (!resize) {
    r.height = img.height;
    r.width = img.width;
    r.pixels.assign(img.pixels.begin(), img.pixels.end());
    return r;
  }
  r.height = o.target_size[0];
  r.width = o.target_size[1];
  r.pixels = data::resize_image<float>(img, r.height, r.width, o.interpolation, o.keep_aspect_ratio);
  return r;
}

/// Keras's img_to_array: the image as a [height, width, channels] tensor of pixel values 0..255.
template <class T = float>
Tensor<T> img_to_array(const LoadedImage& img) {
  if (img.pixels.size() != static_cast<std::size_t>(img.height * img.width * img.channels))
    throw ShapeError(
        "img_to_array: the image holds " + std::to_string(img.pixels.size()) +
        " values, expected height x width x channels = " + shape_str({img.height, img.width, img.channels}));
  Tensor<T> x({img.height, img.width, img.channels});
  std::copy(img.pixels.begin(), img.pixels.end(), x.data());
  return x;
}
template <class T = float>
Tensor<T> img_to_array(const data::Image& img) {
  Tensor<T> x({img.height, img.width, img.channels});
  std::copy(img.pixels.begin(), img.pixels.end(), x.data());
  return x;
}

/// numpy's expand_dims: x with a new axis of size 1 at `axis` (negative counts from the end, as
/// numpy: -1 appends). expand_dims(img_to_array(img), 0) is a batch of one image.
template <class T>
Tensor<T> expand_dims(Tensor<T> x, int axis) {
  const int rank = x.rank();
  if (axis < -(rank + 1) || axis > rank)
    throw ValueError("expand_dims: axis " + std::to_string(axis) + " is out of bounds for a result of rank " +
                     std::to_string(rank + 1) + " (input shape " + shape_str(x.shape()) + ")");
  Shape s = x.shape();
  s.insert(s.begin() + (axis < 0 ? axis + rank + 1 : axis), 1);
  x.reshape(s);
  return x;
}

/// One entry of decode_predictions (Keras: the tuple (class_name, description, score)).
struct Prediction {
  std::string class_name;
  double score = 0;
  Index class_index = 0;  ///< the column of the prediction (the label's integer value)
};

/// Keras's decode_predictions for a model's own classes: for each row of `preds` ([samples,
/// classes] probabilities), the `top` classes by score, best first (ties: the lower index first).
/// class_names[i] names column i (image_dataset_from_directory's class_names, which the flowers
/// example saves as model.metadata["class_names"]). A sigmoid output [samples, 1] with two class
/// names reads as the probability of class_names[1], as label_mode "binary".
template <class T>
std::vector<std::vector<Prediction>> decode_predictions(const Tensor<T>& preds,
                                                        const std::vector<std::string>& class_names, int top = 5) {
  if (preds.rank() != 2)
    throw ValueError(
        "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape (samples, classes)). Received "
        "array with shape: " +
        shape_str(preds.shape()));
  if (top <= 0) throw ValueError("decode_predictions: top must be positive, got " + std::to_string(top));
  const Index n = preds.dim(0), cols = preds.dim(1);
  const bool binary = cols == 1 && class_names.size() == 2;
  const Index classes = binary ? 2 : cols;
  if (!binary && static_cast<Index>(class_names.size()) != cols)
    throw ValueError("decode_predictions: predictions have " + std::to_string(cols) + " classes (shape " +
                     shape_str(preds.shape()) + ") but " + std::to_string(class_names.size()) +
                     " class names were given");
  std::vector<std::vector<Prediction>> out(static_cast<std::size_t>(n));
  std::vector<double> score(static_cast<std::size_t>(classes));
  std::vector<Index> order(static_cast<std::size_t>(classes));
  for (Index r = 0; r < n; ++r) {
    if (binary) {
      score[1] = static_cast<double>(preds[r]);
      score[0] = 1.0 - score[1];
    } else {
      for (Index c = 0; c < cols; ++c) score[c] = static_cast<double>(preds[r * cols + c]);
    }
    std::iota(order.begin(), order.end(), Index(0));
    std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return score[a] > score[b]; });
    const Index k = std::min<Index>(top, classes);
    for (Index i = 0; i < k; ++i) out[r].push_back(Prediction{class_names[order[i]], score[order[i]], order[i]});
  }
  return out;
}

/// decode_predictions with the class names as a JSON list, e.g. model.metadata["class_names"]
/// (a template, so that this header does not need nlohmann/json; any json type works).
template <class T, class Json, class = decltype(std::declval<const Json&>().is_array()),
          class = decltype(std::declval<const Json&>().dump())>
std::vector<std::vector<Prediction>> decode_predictions(const Tensor<T>& preds, const Json& class_names, int top = 5) {
  std::vector<std::string> names;
  bool ok = class_names.is_array();
  if (ok)
    for (const auto& e : class_names) {
      if (!e.is_string()) {
        ok = false;
        break;
      }
      names.push_back(e.template get<std::string>());
    }
  if (!ok)
    throw ValueError(
        "decode_predictions: class_names must be a list of strings (e.g. the model's metadata[\"class_names\"]), got " +
        class_names.dump().substr(0, 80));
  return decode_predictions(preds, names, top);
}

}  // namespace keras::utils
