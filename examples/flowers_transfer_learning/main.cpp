// "Your first Keras model, with transfer learning" (the Keras codelab) in C++ with kerascpp.
//
// A MobileNetV2 pretrained on ImageNet, frozen, with a small classification head, learns the 5
// classes of the TensorFlow flowers photos. The Python original, for comparison:
//
//   pretrained_model = tf.keras.applications.MobileNetV2(input_shape=[192, 192, 3], include_top=False)
//   pretrained_model.trainable = False
//   model = tf.keras.Sequential([
//       tf.keras.layers.Rescaling(1. / 127.5, offset=-1),   # preprocess_input, inside the model
//       pretrained_model,
//       tf.keras.layers.GlobalAveragePooling2D(),           # the codelab's Flatten(): --head flatten
//       tf.keras.layers.Dropout(0.2),
//       tf.keras.layers.Dense(5, activation='softmax')])
//   model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
//   model.fit(train_ds, validation_data=val_ds, epochs=10)
//
// Run `flowers_transfer_learning --help` for the options; tools/flowers.sh builds and runs it.
//
// Built with MPI (the CMake target kerascpp::mpi exists), it also runs data-parallel on several
// processes: `mpirun -np 2 flowers_transfer_learning ...` (docs/distributed.md). --batch-size is
// then the global batch, each process reads its shard of the photos and computes its shard of
// the frozen features, and rank 0 alone prints and writes the outputs.
#include <CLI/CLI.hpp>
#include <keras/all.hpp>
#if KERASCPP_FLOWERS_MPI
#include <keras/distribute/mpi.hpp>
#endif

#include <sys/stat.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "report.hpp"

namespace fs = std::filesystem;
using namespace keras;

#ifndef KERASCPP_SOURCE_DIR
#define KERASCPP_SOURCE_DIR "."
#endif
#ifndef KERASCPP_BINARY_DIR
#define KERASCPP_BINARY_DIR "."
#endif

namespace {

const char* kWeightsFile = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5";
const char* kWeightsUrl =
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5";
const char* kDataUrl = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz";

struct Options {
  std::string data, weights, output = "runs/flowers";
  int epochs = 10;
  Index batch_size = 64;
  Index image_size = 192;
  std::string head = "gap";  // "gap" or "flatten"
  double dropout = 0.2;
  double learning_rate = 1e-3;
  double validation_split = 0.19;
  std::uint64_t seed = 123;
  std::string recipe = "default";  // "default" or "codelab" (sets the defaults of the options below)
  std::string fine_tune_from;      // then unfreeze the base from this layer for a second stage ("" none)
  int fine_tune_epochs = 10;
  double fine_tune_lr = 1e-4;
  double label_smoothing = 0.1;  // of the fine-tuning stage
  int fine_tune_warmup = 0;      // steps over which its learning rate rises linearly from 0
  bool flip = false;             // a RandomFlip("horizontal") layer first in the model
  int threads = 0;
  int report_photos = 30;
  bool cache = true;
  int verbose = 1;
};

// ---- options (CLI11): typed, checked, one clear line and exit code 2 on a bad value ------------------
/// A check that the whole value is an integer >= lo ("5x" and "abc" are refused, not read as 5 / 0).
CLI::Validator integer_at_least(long long lo) {
  return CLI::Validator(
      [lo](std::string& s) -> std::string {
        long long v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size()) return "needs an integer, got '" + s + "'";
        return v < lo ? "needs an integer >= " + std::to_string(lo) + ", got " + s : "";
      },
      "N>=" + std::to_string(lo));
}

/// A check that the whole value is a number in [lo, hi] (or (lo, hi] / [lo, hi) when open).
CLI::Validator number_in(double lo, double hi, bool lo_open = false, bool hi_open = false) {
  std::ostringstream range;
  range << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
  return CLI::Validator(
      [=, r = range.str()](std::string& s) -> std::string {
        double v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
          return "needs a number, got '" + s + "'";
        if (v < lo || v > hi || (lo_open && v == lo) || (hi_open && v == hi))
          return "needs a number in " + r + ", got " + s;
        return "";
      },
      "X in " + range.str());
}

/// The recipes' defaults (docs/flowers_recipe.md has the sweep behind "default").
void apply_recipe(Options& o) {
  if (o.recipe == "codelab") {
    o.flip = false;
    o.fine_tune_from.clear();
    o.epochs = 10;
  } else if (o.recipe == "default") {
    o.flip = true;
    o.epochs = 10;
    o.fine_tune_from = "block_13";
    o.fine_tune_epochs = 8;
    o.fine_tune_lr = 2e-4;
    o.label_smoothing = 0.1;
  }
}

Options parse(int argc, char** argv) {
  Options o;
  // the recipe sets the defaults of the other options, which the command line then overrides
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--recipe" && i + 1 < argc)
      o.recipe = argv[i + 1];
    else if (a.rfind("--recipe=", 0) == 0)
      o.recipe = a.substr(9);
  }
  apply_recipe(o);
  CLI::App app{"Transfer learning on the flowers photos with a frozen MobileNetV2 (the Keras codelab).",
               "flowers_transfer_learning"};
  app.get_formatter()->column_width(34);
  app.add_option("--data", o.data,
                 "flower_photos folder (default: $KERASCPP_SHARED_DIR/data/flower_photos, "
                 "<repo>/../shared/data/flower_photos, ~/.keras/datasets/flower_photos)");
  app.add_option("--weights", o.weights,
                 "MobileNetV2 no-top weights: Keras .h5 (converted automatically) or a converted model.json / folder "
                 "(default: searched like --data)");
  app.add_option("-o,--output", o.output, "outputs: model/, history.csv, report.html, validation/")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs of the frozen-backbone stage")
      ->check(integer_at_least(1))
      ->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "batch size")->check(integer_at_least(1))->capture_default_str();
  app.add_option("--image-size", o.image_size, "square input size")->check(integer_at_least(32))->capture_default_str();
  app.add_option("--head", o.head, "GlobalAveragePooling2D (gap) or the codelab's Flatten")
      ->check(CLI::IsMember({"gap", "flatten"}))
      ->capture_default_str();
  app.add_option("--dropout", o.dropout, "dropout rate before the classifier (0 to disable)")
      ->check(number_in(0, 1, false, true))
      ->capture_default_str();
  app.add_option("--lr", o.learning_rate, "Adam learning rate of the first stage")
      ->check(number_in(0, 1e3, true))
      ->capture_default_str();
  app.add_option("--validation-split", o.validation_split, "fraction of the photos held out for validation")
      ->check(number_in(0, 1, true, true))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "split and shuffling seed")->check(integer_at_least(0))->capture_default_str();
  app.add_option("--recipe", o.recipe,
                 "default: RandomFlip, the head, then fine-tuning (the values below); codelab: the codelab's frozen "
                 "backbone, no flips, 10 epochs")
      ->check(CLI::IsMember({"default", "codelab"}))
      ->capture_default_str();
  app.add_option("--fine-tune-from", o.fine_tune_from,
                 "then unfreeze the base from layer L (e.g. block_13; BatchNorm stays frozen)")
      ->capture_default_str();
  bool no_fine_tune = false;
  app.add_flag("--no-fine-tune", no_fine_tune, "no second stage");
  app.add_option("--fine-tune-epochs", o.fine_tune_epochs, "epochs of that second stage")
      ->check(integer_at_least(0))
      ->capture_default_str();
  app.add_option("--fine-tune-lr", o.fine_tune_lr, "its Adam learning rate")
      ->check(number_in(0, 1e3, true))
      ->capture_default_str();
  app.add_option("--fine-tune-warmup", o.fine_tune_warmup,
                 "steps over which its learning rate rises linearly from 0 (then constant)")
      ->check(integer_at_least(0))
      ->capture_default_str();
  app.add_option("--label-smoothing", o.label_smoothing, "its label smoothing")
      ->check(number_in(0, 1))
      ->capture_default_str();
  app.add_flag(
      "--flip,!--no-flip", o.flip,
      "a RandomFlip(\"horizontal\") layer first in the model (fit still caches the frozen layers: once per photo "
      "and once for its mirror image)");
  bool no_cache = false;
  app.add_flag("--no-cache", no_cache, "do not cache the frozen layers' outputs (fit recomputes them every epoch)");
  app.add_option("--report-photos", o.report_photos, "validation photos in the report's grid")
      ->check(integer_at_least(0))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "threads (default 0: all cores)")->check(integer_at_least(0));
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "no progress bars");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) std::exit(app.exit(e));  // --help
    std::cerr << "flowers_transfer_learning: error: " << e.what() << " (see --help)\n";
    std::exit(2);
  }
  if (quiet) o.verbose = 0;
  if (no_fine_tune) o.fine_tune_from.clear();
  if (no_cache) o.cache = false;
  return o;
}

// ---- where the data and the weights come from -----------------------------------------------------
std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

std::vector<fs::path> shared_dirs() {
  std::vector<fs::path> r;
  if (!env("KERASCPP_SHARED_DIR").empty()) r.push_back(env("KERASCPP_SHARED_DIR"));
  r.push_back(fs::path(KERASCPP_SOURCE_DIR) / ".." / "shared");
  return r;
}

fs::path keras_home() {
  return env("KERAS_HOME").empty() ? fs::path(env("HOME")) / ".keras" : fs::path(env("KERAS_HOME"));
}

std::string find_data(const Options& o) {
  if (!o.data.empty()) {
    if (!fs::is_directory(o.data)) throw IOError("--data '" + o.data + "' is not a folder");
    return o.data;
  }
  std::vector<fs::path> c;
  for (auto& s : shared_dirs()) c.push_back(s / "data" / "flower_photos");
  c.push_back(keras_home() / "datasets" / "flower_photos");
  for (auto& p : c)
    if (fs::is_directory(p / "daisy")) return fs::weakly_canonical(p).string();
  return "";
}

std::string find_weights_h5() {
  std::vector<fs::path> c;
  for (auto& s : shared_dirs()) c.push_back(s / "models" / "mobilenet_v2" / kWeightsFile);
  c.push_back(keras_home() / "models" / kWeightsFile);
  for (auto& p : c)
    if (fs::is_regular_file(p)) return fs::weakly_canonical(p).string();
  return "";
}

/// Where converted weights are kept: $KERASCPP_CACHE_DIR, $XDG_CACHE_HOME/kerascpp, ~/.cache/kerascpp,
/// else the build folder. Never the (read-only) shared folder.
fs::path cache_dir() {
  if (!env("KERASCPP_CACHE_DIR").empty()) return env("KERASCPP_CACHE_DIR");
  if (!env("XDG_CACHE_HOME").empty()) return fs::path(env("XDG_CACHE_HOME")) / "kerascpp";
  if (!env("HOME").empty()) return fs::path(env("HOME")) / ".cache" / "kerascpp";
  return fs::path(KERASCPP_BINARY_DIR) / "kerascpp-cache";
}

/// A converted (TF.js) copy of the Keras .h5, made with tools/keras_h5_to_tfjs.py when missing or stale.
std::string converted_weights(const std::string& h5) {
  fs::path out = cache_dir() / "mobilenet_v2_1.0_224_no_top";
  fs::path json = out / "model.json";
  std::error_code ec;
  if (fs::exists(json) && fs::last_write_time(json, ec) >= fs::last_write_time(h5, ec)) return out.string();
  std::string py = env("KERASCPP_PYTHON");
  if (py.empty()) py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  fs::path tool = fs::path(KERASCPP_SOURCE_DIR) / "tools" / "keras_h5_to_tfjs.py";
  fs::create_directories(out.parent_path(), ec);
  if (ec) {  // e.g. a read-only home: fall back to the build folder
    out = fs::path(KERASCPP_BINARY_DIR) / "kerascpp-cache" / "mobilenet_v2_1.0_224_no_top";
    fs::create_directories(out.parent_path());
  }
  std::string cmd = "'" + py + "' '" + tool.string() + "' '" + h5 + "' '" + out.string() + "' -q";
  std::cout << "Converting the Keras weights to TF.js layers format: " << out.string() << "\n" << std::flush;
  if (std::system(cmd.c_str()) != 0)
    throw IOError("weight conversion failed: " + cmd +
                  "\n(needs h5py and numpy: apt-get install python3-h5py; or run tools/deps.sh)");
  return out.string();
}

std::string resolve_weights(const Options& o) {
  std::string w = o.weights;
  if (!w.empty()) {
    if (!fs::exists(w)) throw IOError("--weights '" + w + "' does not exist");
    if (fs::path(w).extension() == ".h5") return converted_weights(w);
    return w;
  }
  std::string h5 = find_weights_h5();
  return h5.empty() ? "" : converted_weights(h5);
}

[[noreturn]] void missing_inputs(bool data, bool weights) {
  std::cerr << "\nThe flowers example needs the flower photos and the MobileNetV2 ImageNet weights.\n";
  if (data)
    std::cerr << "  - flower photos: not found (looked for $KERASCPP_SHARED_DIR/data/flower_photos, "
                 "../shared/data/flower_photos "
                 "next to the repository, ~/.keras/datasets/flower_photos)\n";
  if (weights)
    std::cerr << "  - weights: not found (looked for " << kWeightsFile
              << " in $KERASCPP_SHARED_DIR/models/mobilenet_v2, "
                 "../shared/models/mobilenet_v2, ~/.keras/models)\n";
  std::cerr << "\nDownload them into Keras's own cache (the same files tf.keras downloads):\n";
  if (data) std::cerr << "  mkdir -p ~/.keras/datasets && curl -L " << kDataUrl << " | tar xz -C ~/.keras/datasets\n";
  if (weights)
    std::cerr << "  mkdir -p ~/.keras/models && curl -L -o ~/.keras/models/" << kWeightsFile << " \\\n      "
              << kWeightsUrl << "\n";
  std::cerr << "then run again:\n  tools/flowers.sh\n(or pass --data DIR / --weights FILE.h5 explicitly).\n";
  std::exit(2);
}

// ---- helpers of main() ------------------------------------------------------------------------------
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The validation files, one folder per class (symbolic links), so that
///   kerascpp evaluate <output>/model <output>/validation
/// evaluates the same photos; and as a plain list.
void write_validation_files(const fs::path& out, const data::Dataset<float>& val_ds) {
  fs::path vdir = out / "validation";
  fs::remove_all(vdir);
  std::ofstream list(out / "validation_files.txt");
  for (std::size_t i = 0; i < val_ds.file_paths().size(); ++i) {
    const std::string& p = val_ds.file_paths()[i];
    const std::string& c = val_ds.class_names().at(static_cast<std::size_t>(val_ds.labels().at(i)));
    fs::create_directories(vdir / c);
    std::error_code ec;
    fs::create_symlink(fs::absolute(p), vdir / c / fs::path(p).filename(), ec);
    if (ec) fs::copy_file(p, vdir / c / fs::path(p).filename(), ec);
    list << c << "\t" << fs::absolute(p).string() << "\n";
  }
}

/// The index in base.layers() of the first layer named `from` or starting with `from` + "_" (e.g. "block_13").
std::size_t first_layer(Model<float>& base, const std::string& from) {
  auto ls = base.layers();
  std::size_t first = 0;
  while (first < ls.size() && ls[first]->name() != from && ls[first]->name().rfind(from + "_", 0) != 0) ++first;
  if (first == 0 || first == ls.size())
    throw ValueError("--fine-tune-from '" + from + "': no such layer in " + base.name());
  return first;
}

/// Keras's fine-tuning recipe: unfreeze the base from layer `from` on, BatchNormalization kept
/// frozen (inference mode).
void unfreeze_from(Model<float>& base, const std::string& from, bool verbose) {
  auto ls = base.layers();
  const std::size_t first = first_layer(base, from);
  base.set_trainable(true);
  for (std::size_t i = 0; i < ls.size(); ++i)
    ls[i]->set_trainable(i >= first && ls[i]->class_name() != "BatchNormalization");
  if (verbose)
    std::cout << "\nFine-tuning " << base.name() << " from '" << ls[first]->name() << "' (" << ls.size() - first
              << " of " << ls.size() << " layers; BatchNormalization stays frozen)\n";
}

/// The report's photo grid: the first validation photos, then more of the misclassified ones.
std::vector<flowers_report::Photo> grid_photos(const data::Dataset<float>& val_ds, const Tensor<float>& probs,
                                               const std::vector<int>& pred, int count) {
  std::vector<flowers_report::Photo> grid, wrong;
  std::size_t seen = 0;
  for (auto& b : val_ds) {
    const Index n = b.x.dim(0), hw = b.x.size() / n, classes = probs.dim(1);
    for (Index i = 0; i < n; ++i, ++seen) {
      const int t = val_ds.labels().at(seen), q = pred.at(seen);
      const bool in_grid = static_cast<int>(seen) < count;
      if (!in_grid && (t == q || static_cast<int>(wrong.size()) >= count / 2)) continue;
      flowers_report::Photo ph;
      ph.height = static_cast<int>(b.x.dim(1));
      ph.width = static_cast<int>(b.x.dim(2));
      ph.true_label = t;
      ph.predicted_label = q;
      ph.confidence = probs[static_cast<Index>(seen) * classes + q];
      ph.file = fs::path(val_ds.file_paths().at(seen)).filename().string();
      ph.rgb.resize(static_cast<std::size_t>(hw));
      for (Index k = 0; k < hw; ++k)
        ph.rgb[k] = static_cast<std::uint8_t>(std::clamp(std::lround(b.x[i * hw + k]), 0L, 255L));
      (in_grid ? grid : wrong).push_back(std::move(ph));
    }
  }
  for (auto& w : wrong) grid.push_back(std::move(w));
  return grid;
}

std::string fixed(double v, int d) { return flowers_report::fmt(v, d); }

/// Under mpirun (and built with MPI): the data-parallel group of this process.
struct Replicas {
#if KERASCPP_FLOWERS_MPI
  std::unique_ptr<distribute::MPI> mpi;
#endif
  std::shared_ptr<trainers::Distribution<float>> dist;
  int rank = 0, size = 1;
  bool chief() const { return rank == 0; }
};

/// The process group (a static: MPI ends when the program does, after main returns).
Replicas replicas;

void start_replicas(int& argc, char**& argv) {
  Replicas& r = replicas;
  const bool launched = !env("OMPI_COMM_WORLD_SIZE").empty() || !env("PMI_SIZE").empty() || !env("PMIX_RANK").empty();
#if KERASCPP_FLOWERS_MPI
  if (launched) {
    r.mpi = std::make_unique<distribute::MPI>(argc, argv);
    r.rank = r.mpi->rank();
    r.size = r.mpi->size();
    if (r.size > 1) r.dist = distribute::DataParallel<float>::make(*r.mpi);
  }
#else
  (void)argc;
  (void)argv;
  if (launched && (env("OMPI_COMM_WORLD_SIZE") != "1"))
    std::cerr
        << "flowers_transfer_learning: started by mpirun, but built without MPI: every process runs the whole job "
           "(install libopenmpi-dev and rebuild for data-parallel training)\n";
#endif
}

}  // namespace

int main(int argc, char** argv) try {
  start_replicas(argc, argv);
  const auto t_start = std::chrono::steady_clock::now();
  Options o = parse(argc, argv);
  if (replicas.size > 1) {
    if (o.batch_size % replicas.size != 0)
      throw ValueError("--batch-size " + std::to_string(o.batch_size) +
                       " (the global batch) must be a multiple of the " + std::to_string(replicas.size) + " processes");
    if (o.threads == 0) o.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / replicas.size);
    if (!replicas.chief()) o.verbose = 0;
  }
  if (o.threads > 0) set_num_threads(o.threads);
  set_random_seed(o.seed);
  // several processes: rank 0 converts the weights (when needed) before the others look for them
  if (replicas.dist && !replicas.chief()) replicas.dist->broadcast(std::uint64_t{0});
  std::string data_dir = find_data(o), weights = resolve_weights(o);
  if (replicas.dist && replicas.chief()) replicas.dist->broadcast(std::uint64_t{0});
  if (data_dir.empty() || weights.empty()) missing_inputs(data_dir.empty(), weights.empty());
  fs::create_directories(o.output);

  // ---- data: 81% training, 19% validation, same seed => disjoint subsets (Keras's split) ----------
  // several processes: each batch of the datasets is one process's part of a global batch (every
  // process takes every size-th batch), so that a step trains on o.batch_size photos as one process
  auto [train_ds, val_ds] =
      utils::image_dataset_from_directory_both<float>(data_dir, {.label_mode = "categorical",
                                                                 .batch_size = o.batch_size / replicas.size,
                                                                 .image_size = {o.image_size, o.image_size},
                                                                 .seed = o.seed,
                                                                 .validation_split = o.validation_split,
                                                                 .subset = "both"});
  const auto class_names = train_ds.class_names();
  const Index num_classes = static_cast<Index>(class_names.size());
  if (replicas.chief()) write_validation_files(o.output, val_ds);

  // ---- the model: [random flips] + preprocessing + frozen MobileNetV2 + a new classification head -----
  auto base = applications::MobileNetV2<float>(
      {.input_shape = {o.image_size, o.image_size, 3}, .include_top = false, .weights = weights});
  base->set_trainable(false);  // freeze the pretrained weights
  auto model = std::make_shared<Sequential<float>>("flowers");
  model->add(layers::InputLayer<float>({.shape = {o.image_size, o.image_size, 3}, .name = "image"}));
  if (o.flip) model->add(layers::RandomFlip<float>("horizontal", {.seed = o.seed, .name = "random_flip"}));
  model->add(layers::Rescaling<float>(1.0 / 127.5, -1.0, {.name = "rescaling"}));  // [0, 255] -> [-1, 1]
  model->add(std::static_pointer_cast<layers::Layer<float>>(base));
  if (o.head == "flatten")
    model->add(layers::Flatten<float>({.name = "flatten"}));
  else
    model->add(layers::GlobalAveragePooling2D<float>({.name = "global_average_pooling2d"}));
  if (o.dropout > 0) model->add(layers::Dropout<float>(o.dropout, {.seed = o.seed, .name = "dropout"}));
  model->add(layers::Dense<float>(num_classes, {.activation = "softmax", .name = "predictions", .seed = o.seed}));
  model->metadata = {
      {"class_names", class_names},
      {"image_size", {o.image_size, o.image_size}},
      {"preprocessing", "none"},
      {"input", "RGB pixels in [0, 255]"},
      {"validation", {{"validation_split", o.validation_split}, {"seed", o.seed}, {"files", "validation_files.txt"}}}};
  if (o.verbose) model->summary();
  if (replicas.dist) {
    model->set_distribution(replicas.dist);
    if (o.verbose)
      std::cout << "Data-parallel on " << replicas.size << " processes x " << get_num_threads()
                << " threads: global batch " << o.batch_size << ", " << o.batch_size / replicas.size
                << " per process\n";
  }

  // ---- stage 1: train the head on the frozen base ------------------------------------------------------
  model->compile(optimizers::Adam<float>({.learning_rate = o.learning_rate}), losses::CategoricalCrossentropy<float>(),
                 {"accuracy"});
  const std::string csv = (fs::path(o.output) / "history.csv").string();
  FitOptions<float> fo{.epochs = o.epochs, .seed = o.seed, .verbose = o.verbose, .cache_frozen = o.cache};
  fo.callbacks = {std::make_shared<callbacks::CSVLogger<float>>(csv)};
  if (!o.fine_tune_from.empty())  // stage 2's frozen part ends below this layer: stage 1 keeps those outputs
    fo.keep_features_of = base->layers()[first_layer(*base, o.fine_tune_from) - 1]->name();
  const auto t_fit = std::chrono::steady_clock::now();
  History history = model->fit(train_ds, fo, val_ds);
  const double head_seconds = seconds_since(t_fit);

  // ---- stage 2: fine-tune the top of the base at a low learning rate ------------------------------------
  if (!o.fine_tune_from.empty()) {
    unfreeze_from(*base, o.fine_tune_from, o.verbose > 0);
    // a warmup: Keras's CosineDecay from 0 to the rate over the warmup steps, then alpha = 1 (constant)
    optimizers::LearningRate lr = o.fine_tune_lr;
    if (o.fine_tune_warmup > 0)
      lr = optimizers::schedules::CosineDecay(
          0.0, 1, {.alpha = 1.0, .warmup_target = o.fine_tune_lr, .warmup_steps = o.fine_tune_warmup});
    model->compile(optimizers::Adam<float>({.learning_rate = lr}),
                   losses::CategoricalCrossentropy<float>({.label_smoothing = o.label_smoothing}), {"accuracy"});
    FitOptions<float> f2 = fo;
    f2.initial_epoch = o.epochs;
    f2.epochs = o.epochs + o.fine_tune_epochs;
    f2.keep_features_of.clear();  // stage 2 starts from stage 1's features and keeps nothing for later
    f2.callbacks = {std::make_shared<callbacks::CSVLogger<float>>(csv, ',', /*append=*/true)};
    History h2 = model->fit(train_ds, f2, val_ds);
    for (auto& [k, v] : h2.history) history.history[k].insert(history.history[k].end(), v.begin(), v.end());
  }
  const double fit_seconds = seconds_since(t_fit);

  // ---- evaluate on the validation photos: confusion matrix and per-class report ---------------------------
  const Tensor<float> probs = model->predict(val_ds, o.verbose);  // several processes: on rank 0 only
  if (!replicas.chief()) return 0;
  const std::vector<int> pred = metrics::argmax_rows(probs);
  flowers_report::ReportData rep;
  rep.class_names = class_names;
  rep.history = history.history;
  rep.fine_tune_epoch = o.fine_tune_from.empty() ? -1 : o.epochs;
  rep.confusion = metrics::confusion_matrix(val_ds.labels(), pred, static_cast<int>(num_classes));
  const auto report = metrics::classification_report(rep.confusion, class_names);
  if (o.verbose) std::cout << "\n" << report.str();
  rep.photos = grid_photos(val_ds, probs, pred, o.report_photos);
  const double val_acc = report.accuracy;
  const long correct = std::lround(val_acc * double(report.total)), total = report.total;

  // ---- outputs ---------------------------------------------------------------------------------------
  const std::string model_dir = (fs::path(o.output) / "model").string();
  io::save_model(*model, model_dir);
  const double total_seconds = seconds_since(t_start);
  rep.facts = {
      {"Model", std::string(o.flip ? "RandomFlip + " : "") + "MobileNetV2 (ImageNet, frozen" +
                    (o.fine_tune_from.empty() ? "" : ", fine-tuned from " + o.fine_tune_from) + ") + " +
                    (o.head == "flatten" ? "Flatten" : "GlobalAveragePooling2D") +
                    (o.dropout > 0 ? " + Dropout(" + fixed(o.dropout, 2) + ")" : "") + " + Dense(" +
                    std::to_string(num_classes) + ", softmax)"},
      {"Data", data_dir + ": " + std::to_string(train_ds.file_paths().size()) + " training, " +
                   std::to_string(val_ds.file_paths().size()) + " validation photos (split " +
                   fixed(o.validation_split, 2) + ", seed " + std::to_string(o.seed) + ")"},
      {"Input", std::to_string(o.image_size) + "x" + std::to_string(o.image_size) + " RGB, batch " +
                    std::to_string(o.batch_size)},
      {"Training",
       std::to_string(o.epochs) + " epochs, Adam " + fixed(o.learning_rate, 4) +
           (o.fine_tune_from.empty() ? "" : " + " + std::to_string(o.fine_tune_epochs) + " fine-tuning epochs") + ", " +
           fixed(fit_seconds, 1) + " s in fit, " + fixed(total_seconds, 1) + " s in all, " +
           std::to_string(get_num_threads()) + " threads" +
           (replicas.size > 1 ? " x " + std::to_string(replicas.size) + " processes (mpirun)" : "")},
      {"Validation accuracy", fixed(val_acc, 4) + " (" + std::to_string(correct) + "/" + std::to_string(total) + ")"},
      {"Saved model", model_dir + " (TF.js layers format)"}};
  const std::string html = (fs::path(o.output) / "report.html").string();
  flowers_report::write_report(html, rep);

  std::cout << "\nSaved: " << model_dir << "/model.json, " << csv << ", " << html << "\n"
            << "Validation photos: " << (fs::path(o.output) / "validation").string() << "/ (kerascpp evaluate "
            << model_dir << " " << (fs::path(o.output) / "validation").string() << ")\n"
            << "Time: " << fixed(fit_seconds, 1) << " s in fit, " << fixed(total_seconds, 1) << " s in all\n"
            << "Stages: head " << fixed(head_seconds, 1) << " s, fine-tuning " << fixed(fit_seconds - head_seconds, 1)
            << " s\n";
  std::cout << "val_accuracy: " << fixed(val_acc, 4) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "flowers_transfer_learning: error"
            << (replicas.size > 1 ? " (rank " + std::to_string(replicas.rank) + ")" : "") << ": " << e.what() << "\n";
#if KERASCPP_FLOWERS_MPI
  if (replicas.mpi && replicas.size > 1) replicas.mpi->mark_failed();  // end every process, not only this one
#endif
  return 1;
}
