// keras::utils::image_dataset_from_directory: Keras's loader of an image-per-file folder tree.
//
// Semantics follow keras/utils/image_dataset_utils.py and dataset_utils.py:
//  - class names are the sorted names of the non-hidden sub-folders (or opts.class_names, which
//    must be a subset of them, in the order given); images are found recursively in each class
//    folder, in sorted order; only .bmp .gif .jpeg .jpg .png (any case) are taken;
//  - with shuffle, the file list is shuffled with the seed BEFORE the split, with the very
//    algorithm of numpy.random.RandomState(seed).shuffle (MT19937 + Fisher-Yates with masked
//    rejection), so a seed selects the same training/validation files as Keras does;
//  - validation takes the last int(validation_split * n) files, training the rest;
//  - images come out as float in [0, 255], x of shape [batch, h, w, channels]; y is
//    "int": [batch] class indices, "categorical": [batch, classes] one-hot, "binary": [batch, 1];
//  - the training (or single) subset is reshuffled every epoch when shuffle is set (Keras uses a
//    buffered shuffle of batch_size * 8; we permute the whole list, seeded by (seed, epoch)).
// Differences, all deliberate:
//  - hidden files (names starting with '.', e.g. macOS "._x.jpg") are ignored, not only hidden
//    folders; a class folder without images is an error naming it (Keras silently has no samples);
//  - unreadable, truncated and non-image files are skipped with one warning each (stderr) and the
//    number of skipped files is reported, instead of failing in the middle of training. With
//    check_files (default) each file is read once at construction for a structural check, so
//    cardinality() is exact; files that still fail to decode later are skipped then;
//  - validation_split so small that int(split * n) == 0 leaves every file in training (Keras
//    returns no training files then);
//  - interpolation supports "bilinear" and "nearest" (TF's, see image.hpp);
//  - labels may be "inferred" or "none" (explicit label lists are not supported);
//  - subset "both" is a separate function returning a pair: image_dataset_from_directory_both.
#pragma once
#include <array>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../core/core.hpp"
#include "dataset.hpp"
#include "image.hpp"

namespace keras::data {

/// Options of image_dataset_from_directory, named and defaulted as Keras's arguments.
struct ImageDatasetOptions {
  std::string labels = "inferred";               ///< "inferred" (from sub-folders) or "none"
  std::string label_mode = "int";                ///< "int", "categorical", "binary" or "none"
  std::vector<std::string> class_names = {};     ///< explicit class order; empty: sorted sub-folders
  std::string color_mode = "rgb";                ///< "rgb", "grayscale" or "rgba"
  std::optional<Index> batch_size = 32;          ///< std::nullopt: unbatched (one image per element)
  std::array<Index, 2> image_size = {256, 256};  ///< (height, width)
  bool shuffle = true;
  std::optional<std::uint64_t> seed = {};  ///< required with validation_split and shuffle
  double validation_split = 0.0;
  std::string subset = "";                 ///< "training" or "validation" (with validation_split)
  std::string interpolation = "bilinear";  ///< "bilinear" or "nearest"
  bool follow_links = false;
  bool crop_to_aspect_ratio = false;
  bool verbose = true;      ///< print "Found N files belonging to C classes."
  bool check_files = true;  ///< check every file up front (see the top of this file)
  Index prefetch = 2;       ///< batches decoded ahead on a background thread (0: none)
};

/// The images of a directory tree and their labels, in Keras's order.
struct DirectoryIndex {
  std::vector<std::string> file_paths;
  std::vector<int> labels;  ///< empty when labels == "none"
  std::vector<std::string> class_names;
};

namespace detail {

inline const std::vector<std::string>& allowed_image_formats() {
  static const std::vector<std::string> f = {".bmp", ".gif", ".jpeg", ".jpg", ".png"};
  return f;
}

inline bool has_image_extension(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& ext : allowed_image_formats())
    if (lower.size() >= ext.size() && lower.compare(lower.size() - ext.size(), ext.size(), ext) == 0) return true;
  return false;
}

inline std::mutex& log_mutex() {
  static std::mutex m;
  return m;
}

inline void warn_skipped(const std::string& path, const std::string& why) {
  std::lock_guard<std::mutex> lock(log_mutex());
  std::cerr << "Warning: skipping '" << path << "': " << why << "\n";
}

/// Image files under dir, found recursively, in Keras's order: directories sorted by path, files
/// sorted by name within each. Hidden files and folders are ignored.
inline std::vector<std::string> list_image_files(const std::filesystem::path& dir, bool follow_links) {
  namespace fs = std::filesystem;
  std::map<std::string, std::vector<std::string>> by_dir;  // sorted by directory path
  auto add_dir = [&](const fs::path& d) {
    auto& files = by_dir[d.string()];
    std::error_code ec;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.' || !has_image_extension(name)) continue;
      std::error_code ec2;
      if (fs::is_directory(it->path(), ec2)) continue;
      files.push_back(name);
    }
    std::sort(files.begin(), files.end());
  };
  add_dir(dir);
  auto opts = follow_links ? fs::directory_options::follow_directory_symlink : fs::directory_options::none;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, opts | fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::error_code ec2;
    bool is_dir = follow_links ? it->is_directory(ec2) : (it->is_directory(ec2) && !it->is_symlink(ec2));
    if (!is_dir) continue;
    if (!name.empty() && name[0] == '.') {
      it.disable_recursion_pending();
      continue;
    }
    add_dir(it->path());
  }
  std::vector<std::string> out;
  for (auto& [d, files] : by_dir)
    for (auto& f : files) out.push_back((fs::path(d) / f).string());
  return out;
}

/// The permutation numpy.random.RandomState(seed).shuffle applies to a list of n items.
inline std::vector<std::size_t> numpy_shuffle_permutation(std::size_t n, std::uint32_t seed) {
  std::mt19937 mt(seed);  // RandomState(int) seeds MT19937 with init_genrand(seed), as std::mt19937 does
  std::vector<std::size_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = i;
  for (std::size_t i = n; i-- > 1;) {  // numpy: for i in reversed(range(1, n)): j = random_interval(i)
    std::uint64_t max = i, mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    std::uint64_t j;
    while ((j = (static_cast<std::uint64_t>(mt()) & mask)) > max) {}
    std::swap(p[i], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

inline std::uint64_t resolve_seed(const ImageDatasetOptions& o) {
  return o.seed ? *o.seed : next_global_seed() % 1000000;
}

}  // namespace detail

/// Lists a directory like Keras's index_directory: files, integer labels and class names, shuffled
/// with `seed` (numpy-compatible) when `shuffle`. Throws ValueError for an empty directory or a class
/// folder without images (naming it), IOError when `directory` is not a readable folder.
inline DirectoryIndex index_directory(const std::string& directory, const std::string& labels,
                                      const std::vector<std::string>& class_names, bool shuffle, std::uint64_t seed,
                                      bool follow_links = false) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(directory, ec))
    throw IOError("image_dataset_from_directory: '" + directory + "' is not a directory");
  DirectoryIndex idx;
  if (labels == "inferred") {
    std::vector<std::string> subdirs;
    for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      std::error_code ec2;
      if (!name.empty() && name[0] != '.' && fs::is_directory(it->path(), ec2)) subdirs.push_back(name);
    }
    if (ec) throw IOError("image_dataset_from_directory: cannot list '" + directory + "': " + ec.message());
    std::sort(subdirs.begin(), subdirs.end());
    if (subdirs.empty()) {  // say so first: an empty folder is not a class-name mismatch
      std::string expect;
      for (const auto& c : class_names) expect += (expect.empty() ? "" : ", ") + c;
      throw ValueError("No images found in directory '" + directory +
                       "': it has no class sub-folders (labels=\"inferred\" expects one folder per class" +
                       (expect.empty() ? std::string() : ": " + expect) + ")");
    }
    if (!class_names.empty()) {
      for (const auto& c : class_names)
        if (std::find(subdirs.begin(), subdirs.end(), c) == subdirs.end()) {
          std::string list;
          for (const auto& s : subdirs) list += (list.empty() ? "" : ", ") + s;
          throw ValueError(
              "The `class_names` passed did not match the names of the subdirectories of the target "
              "directory. Expected: [" +
              list + "] (or a subset of it), but received class name '" + c + "'");
        }
      subdirs = class_names;
    }
    if (subdirs.empty())
      throw ValueError("No images found in directory '" + directory +
                       "': it has no class sub-folders "
                       "(labels=\"inferred\" expects one folder per class)");
    for (std::size_t c = 0; c < subdirs.size(); ++c) {
      fs::path cdir = fs::path(directory) / subdirs[c];
      auto files = detail::list_image_files(cdir, follow_links);
      if (files.empty())
        throw ValueError("Class folder '" + cdir.string() +
                         "' contains no images. Allowed formats: .bmp .gif .jpeg .jpg .png");
      for (auto& f : files) {
        idx.file_paths.push_back(std::move(f));
        idx.labels.push_back(static_cast<int>(c));
      }
    }
    idx.class_names = subdirs;
  } else if (labels == "none") {
    if (!class_names.empty())
      throw ValueError("When `labels=\"none\"` (no labels), argument `class_names` cannot be specified.");
    idx.file_paths = detail::list_image_files(directory, follow_links);
  } else {
    throw ValueError("`labels` must be \"inferred\" or \"none\", received: \"" + labels + "\"");
  }
  if (idx.file_paths.empty())
    throw ValueError("No images found in directory '" + directory + "'. Allowed formats: .bmp .gif .jpeg .jpg .png");
  if (shuffle) {
    auto p = detail::numpy_shuffle_permutation(idx.file_paths.size(), static_cast<std::uint32_t>(seed));
    DirectoryIndex s;
    s.class_names = idx.class_names;
    for (std::size_t i : p) {
      s.file_paths.push_back(idx.file_paths[i]);
      if (!idx.labels.empty()) s.labels.push_back(idx.labels[i]);
    }
    idx = std::move(s);
  }
  return idx;
}

namespace detail {

inline int channels_for(const std::string& color_mode) {
  if (color_mode == "rgb") return 3;
  if (color_mode == "rgba") return 4;
  if (color_mode == "grayscale") return 1;
  throw ValueError("`color_mode` must be one of {\"rgb\", \"rgba\", \"grayscale\"}. Received: color_mode=" +
                   color_mode);
}

inline void check_options(const ImageDatasetOptions& o) {
  if (o.label_mode != "int" && o.label_mode != "categorical" && o.label_mode != "binary" && o.label_mode != "none")
    throw ValueError(
        "`label_mode` argument must be one of \"int\", \"categorical\", \"binary\", or \"none\". Received: "
        "label_mode=" +
        o.label_mode);
  channels_for(o.color_mode);
  if (o.image_size[0] <= 0 || o.image_size[1] <= 0)
    throw ValueError("Invalid `image_size` value: (" + std::to_string(o.image_size[0]) + ", " +
                     std::to_string(o.image_size[1]) + ")");
  if (o.batch_size && *o.batch_size < 1)
    throw ValueError("`batch_size` must be >= 1 (or std::nullopt for no batching)");
  if (o.interpolation != "bilinear" && o.interpolation != "nearest")
    throw ValueError(
        "Argument `interpolation` should be \"bilinear\" or \"nearest\" in kerascpp. Received: interpolation=" +
        o.interpolation);
  if (o.validation_split != 0 && !(o.validation_split > 0 && o.validation_split < 1))
    throw ValueError("`validation_split` must be between 0 and 1, received: " + std::to_string(o.validation_split));
  if ((o.validation_split != 0) != !o.subset.empty())
    throw ValueError("If `subset` is set, `validation_split` must be set, and inversely.");
  if (!o.subset.empty() && o.subset != "training" && o.subset != "validation" && o.subset != "both")
    throw ValueError("`subset` must be either \"training\", \"validation\" or \"both\", received: " + o.subset);
  if (o.validation_split != 0 && o.shuffle && !o.seed)
    throw ValueError(
        "If using `validation_split` and shuffling the data, you must provide a `seed` argument, to make sure "
        "that there is no overlap between the training and validation subset.");
}

/// Builds the dataset of one subset from its (already split) files.
template <class T>
Dataset<T> paths_to_dataset(std::vector<std::string> paths, std::vector<int> labels,
                            const std::vector<std::string>& class_names, const ImageDatasetOptions& o, bool shuffle,
                            std::uint64_t seed) {
  const int channels = channels_for(o.color_mode);
  auto skipped = std::make_shared<SkipLog>();
  if (o.check_files) {  // read every file once; drop the bad ones before the first epoch
    std::vector<std::string> why(paths.size());
    const Index n = static_cast<Index>(paths.size());
    keras::parallel_for(n, 16, std::max(1, get_num_threads()), [&](Index i_begin, Index i_end) {
      for (Index i = i_begin; i < i_end; ++i) {
        try {
          auto bytes = read_file_bytes(paths[i]);
          why[i] = check_image_bytes(bytes.data(), bytes.size());
        } catch (const std::exception& e) {
          why[i] = e.what();
        }
      }
    });
    std::vector<std::string> good_paths;
    std::vector<int> good_labels;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      if (!why[i].empty()) {
        if (skipped->add(paths[i])) warn_skipped(paths[i], why[i]);
        continue;
      }
      good_paths.push_back(paths[i]);
      if (!labels.empty()) good_labels.push_back(labels[i]);
    }
    if (!skipped->files.empty()) {
      std::lock_guard<std::mutex> lock(log_mutex());
      std::cerr << "Skipped " << skipped->files.size() << " file" << (skipped->files.size() == 1 ? "" : "s")
                << " that could not be read as images.\n";
    }
    if (good_paths.empty())
      throw ValueError("No readable images found (all " + std::to_string(paths.size()) + " files were skipped)");
    paths = std::move(good_paths);
    labels = std::move(good_labels);
  }

  struct Shared {
    std::vector<std::string> paths;
    std::vector<int> labels;
    std::string label_mode, interpolation;
    Index num_classes, h, w;
    int channels;
    bool crop;
    std::shared_ptr<SkipLog> skipped;
    std::size_t reported = 0;
    std::mutex m;
  };
  auto s = std::make_shared<Shared>();
  s->paths = paths;
  s->labels = std::move(labels);
  s->label_mode = (o.labels == "none") ? "none" : o.label_mode;
  s->interpolation = o.interpolation;
  s->num_classes = static_cast<Index>(class_names.size());
  s->h = o.image_size[0];
  s->w = o.image_size[1];
  s->channels = channels;
  s->crop = o.crop_to_aspect_ratio;
  s->skipped = skipped;
  {
    std::lock_guard<std::mutex> lock(s->m);
    s->reported = skipped->files.size();
  }

  auto read = [s](Index i) -> std::optional<Batch<T>> {
    const std::string& path = s->paths[static_cast<std::size_t>(i)];
    Batch<T> b;
    try {
      Image img = decode_image(path, s->channels);
      Window win =
          s->crop ? crop_window_for_aspect(img.height, img.width, s->h, s->w) : Window{0, 0, img.height, img.width};
      b.x.resize({s->h, s->w, static_cast<Index>(s->channels)});
      resize_image(img.pixels.data(), img.width, img.channels, win, b.x.data(), s->h, s->w, s->interpolation);
    } catch (const IOError& e) {
      if (s->skipped->add(path)) {
        std::lock_guard<std::mutex> lock(log_mutex());
        std::cerr << "Warning: skipping: " << e.what() << "\n";
      }
      return std::nullopt;
    }
    if (s->label_mode != "none") {
      const int label = s->labels[static_cast<std::size_t>(i)];
      if (s->label_mode == "int") {
        b.y = Tensor<T>(Shape{}, static_cast<T>(label));
      } else if (s->label_mode == "binary") {
        b.y = Tensor<T>(Shape{1}, static_cast<T>(label));
      } else {
        b.y = Tensor<T>(Shape{s->num_classes}, T(0));
        b.y[label] = T(1);
      }
    }
    return b;
  };
  SourceOptions so;
  so.shuffle = shuffle;
  so.seed = seed;
  so.parallel = true;
  so.chunk = o.batch_size ? *o.batch_size : 0;
  so.on_epoch_end = [s](std::uint64_t) {
    std::size_t now = s->skipped->list().size();
    std::lock_guard<std::mutex> lock(s->m);
    if (now > s->reported) {
      std::lock_guard<std::mutex> lock2(log_mutex());
      std::cerr << "Skipped " << (now - s->reported) << " more file" << (now - s->reported == 1 ? "" : "s")
                << " that could not be decoded (" << now << " in all).\n";
      s->reported = now;
    }
  };
  DatasetInfo info;
  info.class_names = (o.labels == "none") ? std::vector<std::string>{} : class_names;
  info.file_paths = std::move(paths);
  info.labels = s->labels;
  info.skipped = skipped;
  info.uint8_images = true;
  Index n = static_cast<Index>(info.file_paths.size());
  Dataset<T> ds = Dataset<T>::from_indexed(n, std::move(read), std::move(so), std::move(info));
  if (o.batch_size) ds = ds.batch(*o.batch_size);
  if (o.prefetch > 0) ds = ds.prefetch(o.prefetch);
  return ds;
}

template <class T>
std::pair<Dataset<T>, Dataset<T>> image_datasets(const std::string& directory, const ImageDatasetOptions& o,
                                                 bool both) {
  check_options(o);
  const std::uint64_t seed = resolve_seed(o);
  DirectoryIndex idx = index_directory(directory, o.labels, o.class_names, o.shuffle, seed, o.follow_links);
  if (o.label_mode == "binary" && o.labels != "none" && idx.class_names.size() != 2)
    throw ValueError("When passing `label_mode=\"binary\"`, there must be exactly 2 class_names. Received: " +
                     std::to_string(idx.class_names.size()) + " classes in '" + directory + "'");
  if (o.verbose) {
    if (o.labels == "none")
      std::cout << "Found " << idx.file_paths.size() << " files.\n";
    else
      std::cout << "Found " << idx.file_paths.size() << " files belonging to " << idx.class_names.size()
                << " classes.\n";
  }
  const std::size_t n = idx.file_paths.size();
  const std::size_t n_val =
      o.validation_split != 0 ? static_cast<std::size_t>(o.validation_split * static_cast<double>(n)) : 0;
  auto part = [&](std::size_t from, std::size_t to) {
    std::vector<std::string> p(idx.file_paths.begin() + from, idx.file_paths.begin() + to);
    std::vector<int> l;
    if (!idx.labels.empty()) l.assign(idx.labels.begin() + from, idx.labels.begin() + to);
    return std::make_pair(std::move(p), std::move(l));
  };
  if (o.subset.empty()) {
    auto [p, l] = part(0, n);
    return {paths_to_dataset<T>(std::move(p), std::move(l), idx.class_names, o, o.shuffle, seed), Dataset<T>()};
  }
  auto [tp, tl] = part(0, n - n_val);
  auto [vp, vl] = part(n - n_val, n);
  if ((both || o.subset == "training") && tp.empty())
    throw ValueError("No training images found in directory '" + directory + "'");
  if ((both || o.subset == "validation") && vp.empty())
    throw ValueError("No validation images found in directory '" + directory +
                     "' (validation_split * number of files < 1)");
  if (both) {
    if (o.verbose)
      std::cout << "Using " << tp.size() << " files for training.\nUsing " << vp.size() << " files for validation.\n";
    return {paths_to_dataset<T>(std::move(tp), std::move(tl), idx.class_names, o, o.shuffle, seed),
            paths_to_dataset<T>(std::move(vp), std::move(vl), idx.class_names, o, false, seed)};
  }
  if (o.subset == "training") {
    if (o.verbose) std::cout << "Using " << tp.size() << " files for training.\n";
    return {paths_to_dataset<T>(std::move(tp), std::move(tl), idx.class_names, o, o.shuffle, seed), Dataset<T>()};
  }
  if (o.verbose) std::cout << "Using " << vp.size() << " files for validation.\n";
  return {paths_to_dataset<T>(std::move(vp), std::move(vl), idx.class_names, o, o.shuffle, seed), Dataset<T>()};
}

}  // namespace detail

/// Keras's image_dataset_from_directory (see the top of this file). Returns a batched dataset
/// (unless batch_size is nullopt) of float images in [0, 255]. For subset "both" use
/// image_dataset_from_directory_both.
template <class T = float>
Dataset<T> image_dataset_from_directory(const std::string& directory, const ImageDatasetOptions& options = {}) {
  if (options.subset == "both")
    throw ValueError(
        "subset=\"both\" returns two datasets: call image_dataset_from_directory_both(directory, options)");
  return detail::image_datasets<T>(directory, options, false).first;
}

/// subset="both": the (training, validation) pair; the validation dataset is never shuffled.
template <class T = float>
std::pair<Dataset<T>, Dataset<T>> image_dataset_from_directory_both(const std::string& directory,
                                                                    ImageDatasetOptions options) {
  if (options.subset.empty() && options.validation_split != 0) options.subset = "both";
  if (options.subset != "both")
    throw ValueError(
        "image_dataset_from_directory_both needs validation_split and subset=\"both\" (or subset left empty)");
  return detail::image_datasets<T>(directory, options, true);
}

}  // namespace keras::data

namespace keras::utils {
using data::image_dataset_from_directory;
using data::image_dataset_from_directory_both;
using data::ImageDatasetOptions;
using data::index_directory;
}  // namespace keras::utils
