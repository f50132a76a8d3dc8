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
#include <keras/all.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

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
  int fine_tune = 0;  // unfreeze the top N layers of the base for a second stage
  int fine_tune_epochs = 10;
  double fine_tune_lr = 1e-5;
  double label_smoothing = 0.1;  // of the fine-tuning stage
  bool flip = false;             // random horizontal flips in the fine-tuning stage
  bool flip_copies = false;      // each training photo and its mirror image (keeps the feature cache)
  int threads = 0;
  int report_photos = 30;
  bool cache = true;
  int verbose = 1;
};

void usage(const char* argv0) {
  std::cout << "Usage: " << argv0 << " [options]\n"
            << "Transfer learning on the flowers photos with a frozen MobileNetV2 (the Keras codelab).\n\n"
            << "  --data DIR            flower_photos folder (default: $KERASCPP_SHARED_DIR/data/flower_photos,\n"
            << "                        <repo>/../shared/data/flower_photos, ~/.keras/datasets/flower_photos)\n"
            << "  --weights PATH        MobileNetV2 no-top weights: Keras .h5 (converted automatically) or a\n"
            << "                        converted model.json / folder (default: searched like --data)\n"
            << "  --output DIR          outputs: model/, history.csv, report.html, validation/ (default runs/flowers)\n"
            << "  --epochs N            epochs of the frozen-backbone stage (default 10)\n"
            << "  --batch-size N        (default 64)\n"
            << "  --image-size N        square input size (default 192)\n"
            << "  --head gap|flatten    GlobalAveragePooling2D (default) or the codelab's Flatten\n"
            << "  --dropout R           dropout rate before the classifier (default 0.2; 0 to disable)\n"
            << "  --lr X                Adam learning rate of the first stage (default 1e-3)\n"
            << "  --validation-split F  (default 0.19)\n"
            << "  --seed N              split and shuffling seed (default 123)\n"
            << "  --fine-tune N         then unfreeze the top N layers of the base (BatchNorm stays frozen)\n"
            << "  --fine-tune-epochs N  epochs of that second stage (default 10)\n"
            << "  --fine-tune-lr X      its Adam learning rate (default 1e-5)\n"
            << "  --label-smoothing X   its label smoothing (default 0.1)\n"
            << "  --flip                random horizontal flips in the fine-tuning stage (slower: no feature cache)\n"
            << "  --flip-copies         instead, train the fine-tuning stage on every photo and its mirror image\n"
            << "                        (deterministic, so the frozen part's outputs are still cached)\n"
            << "  --no-cache            do not cache the frozen layers' outputs (fit recomputes them every epoch)\n"
            << "  --report-photos N     validation photos in the report's grid (default 30)\n"
            << "  --threads N           threads (default: all cores)\n"
            << "  --quiet               no progress bars\n";
}

Options parse(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw ValueError(std::string("option ") + argv[i] + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else if (a == "--data") o.data = need(i);
    else if (a == "--weights") o.weights = need(i);
    else if (a == "--output" || a == "-o") o.output = need(i);
    else if (a == "--epochs") o.epochs = std::stoi(need(i));
    else if (a == "--batch-size") o.batch_size = std::stol(need(i));
    else if (a == "--image-size") o.image_size = std::stol(need(i));
    else if (a == "--head") o.head = need(i);
    else if (a == "--dropout") o.dropout = std::stod(need(i));
    else if (a == "--lr") o.learning_rate = std::stod(need(i));
    else if (a == "--validation-split") o.validation_split = std::stod(need(i));
    else if (a == "--seed") o.seed = std::stoull(need(i));
    else if (a == "--fine-tune") o.fine_tune = std::stoi(need(i));
    else if (a == "--fine-tune-epochs") o.fine_tune_epochs = std::stoi(need(i));
    else if (a == "--fine-tune-lr") o.fine_tune_lr = std::stod(need(i));
    else if (a == "--label-smoothing") o.label_smoothing = std::stod(need(i));
    else if (a == "--flip") o.flip = true;
    else if (a == "--flip-copies") o.flip_copies = true;
    else if (a == "--no-cache") o.cache = false;
    else if (a == "--report-photos") o.report_photos = std::stoi(need(i));
    else if (a == "--threads") o.threads = std::stoi(need(i));
    else if (a == "--quiet" || a == "-q") o.verbose = 0;
    else throw ValueError("unknown option '" + a + "' (see --help)");
  }
  if (o.head != "gap" && o.head != "flatten") throw ValueError("--head must be gap or flatten");
  if (o.epochs < 1 || o.batch_size < 1 || o.image_size < 32) throw ValueError("invalid --epochs, --batch-size or --image-size");
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

fs::path keras_home() { return env("KERAS_HOME").empty() ? fs::path(env("HOME")) / ".keras" : fs::path(env("KERAS_HOME")); }

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
    throw IOError("weight conversion failed: " + cmd + "\n(needs h5py and numpy: apt-get install python3-h5py; or run tools/deps.sh)");
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
  if (data) std::cerr << "  - flower photos: not found (looked for $KERASCPP_SHARED_DIR/data/flower_photos, ../shared/data/flower_photos "
                         "next to the repository, ~/.keras/datasets/flower_photos)\n";
  if (weights) std::cerr << "  - weights: not found (looked for " << kWeightsFile << " in $KERASCPP_SHARED_DIR/models/mobilenet_v2, "
                            "../shared/models/mobilenet_v2, ~/.keras/models)\n";
  std::cerr << "\nDownload them into Keras's own cache (the same files tf.keras downloads):\n";
  if (data)
    std::cerr << "  mkdir -p ~/.keras/datasets && curl -L " << kDataUrl << " | tar xz -C ~/.keras/datasets\n";
  if (weights)
    std::cerr << "  mkdir -p ~/.keras/models && curl -L -o ~/.keras/models/" << kWeightsFile << " \\\n      " << kWeightsUrl << "\n";
  std::cerr << "then run again:\n  tools/flowers.sh\n(or pass --data DIR / --weights FILE.h5 explicitly).\n";
  std::exit(2);
}

// ---- model helpers -----------------------------------------------------------------------------------
/// A Functional model over the same layer objects as `m`, with nested models inlined. Training it
/// trains `m`; fit() can then cache the frozen part of the backbone itself (not only a whole
/// frozen nested model), which is what makes fine-tuning the top layers fast.
std::shared_ptr<Model<float>> inlined(Model<float>& m) {
  auto input = Input<float>(without_batch(m.input_shapes_of_graph().at(0)), "flat_input");
  std::function<KerasTensor<float>(Model<float>&, const KerasTensor<float>&)> replay = [&](Model<float>& mm, const KerasTensor<float>& x) {
    auto& nodes = mm.graph().nodes();
    std::vector<KerasTensor<float>> val(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      auto& n = nodes[i];
      if (n.input_index >= 0) {
        val[i] = x;
        continue;
      }
      std::vector<KerasTensor<float>> ins;
      for (int j : n.inputs) ins.push_back(val[j]);
      if (auto sub = std::dynamic_pointer_cast<Model<float>>(n.layer)) val[i] = replay(*sub, ins.at(0));
      else val[i] = (*n.layer)(ins);
    }
    return val[mm.graph().outputs().at(0)];
  };
  auto out = replay(m, input);
  return std::make_shared<Model<float>>(input, out, m.name() + "_inlined");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// model(x) in inference mode, on chunks of `chunk` samples: the backbone's activation buffers
/// stay as small as during fit's feature caching (FitOptions::cache_batch_size).
Tensor<float> predict_in_chunks(Model<float>& model, const Tensor<float>& x, Index chunk) {
  const Index n = x.dim(0), row = x.size() / n;
  Tensor<float> out, part;
  for (Index b0 = 0; b0 < n; b0 += chunk) {
    Shape s = x.shape();
    s[0] = std::min(chunk, n - b0);
    part.resize(s);
    std::copy(x.data() + b0 * row, x.data() + (b0 + s[0]) * row, part.data());
    const Tensor<float>& y = model(part);
    if (out.empty()) out.resize({n, y.dim(1)});
    std::copy(y.data(), y.data() + y.size(), out.data() + b0 * y.dim(1));
  }
  return out;
}

std::string fixed(double v, int d) { return flowers_report::fmt(v, d); }

}  // namespace

int main(int argc, char** argv) try {
  const auto t_start = std::chrono::steady_clock::now();
  Options o = parse(argc, argv);
  if (o.threads > 0) set_num_threads(o.threads);
  set_random_seed(o.seed);

  std::string data_dir = find_data(o);
  std::string weights = resolve_weights(o);
  if (data_dir.empty() || weights.empty()) missing_inputs(data_dir.empty(), weights.empty());
  fs::create_directories(o.output);

  // ---- data: 81% training, 19% validation, same seed => disjoint subsets (Keras's split) ----------
  data::ImageDatasetOptions dopt;
  dopt.label_mode = "categorical";
  dopt.image_size = {o.image_size, o.image_size};
  dopt.batch_size = o.batch_size;
  dopt.validation_split = o.validation_split;
  dopt.subset = "both";
  dopt.seed = o.seed;
  auto [train_ds, val_ds] = utils::image_dataset_from_directory_both<float>(data_dir, dopt);
  const auto class_names = train_ds.class_names();
  const Index num_classes = static_cast<Index>(class_names.size());

  // The validation files, one folder per class (symbolic links), so that
  //   kerascpp evaluate <output>/model <output>/validation
  // evaluates the same photos; and as a plain list.
  {
    fs::path vdir = fs::path(o.output) / "validation";
    fs::remove_all(vdir);
    std::ofstream list(fs::path(o.output) / "validation_files.txt");
    std::map<std::string, int> label_of;
    // labels of the validation files: iterate nothing, re-index the directory like the loader did
    auto idx = utils::index_directory(data_dir, "inferred", {}, true, o.seed);
    for (std::size_t i = 0; i < idx.file_paths.size(); ++i) label_of[idx.file_paths[i]] = idx.labels[i];
    for (auto& p : val_ds.file_paths()) {
      const std::string& c = class_names.at(static_cast<std::size_t>(label_of.at(p)));
      fs::create_directories(vdir / c);
      std::error_code ec;
      fs::create_symlink(fs::absolute(p), vdir / c / fs::path(p).filename(), ec);
      if (ec) fs::copy_file(p, vdir / c / fs::path(p).filename(), ec);
      list << c << "\t" << fs::absolute(p).string() << "\n";
    }
  }

  // ---- the model: preprocessing + frozen MobileNetV2 + a new classification head --------------------
  auto base = applications::MobileNetV2<float>(
      {.input_shape = {o.image_size, o.image_size, 3}, .include_top = false, .weights = weights});
  base->set_trainable(false);  // freeze the pretrained weights

  auto model = std::make_shared<Sequential<float>>("flowers");
  model->add(layers::InputLayer<float>({.shape = {o.image_size, o.image_size, 3}, .name = "image"}));
  model->add(layers::Rescaling<float>(1.0 / 127.5, -1.0, {.name = "rescaling"}));  // [0, 255] -> [-1, 1]
  model->add(std::static_pointer_cast<layers::Layer<float>>(base));
  if (o.head == "flatten") model->add(layers::Flatten<float>({.name = "flatten"}));
  else model->add(layers::GlobalAveragePooling2D<float>({.name = "global_average_pooling2d"}));
  if (o.dropout > 0) model->add(layers::Dropout<float>(o.dropout, {.seed = o.seed, .name = "dropout"}));
  model->add(layers::Dense<float>(num_classes, {.activation = "softmax", .name = "predictions", .seed = o.seed}));
  model->metadata = {{"class_names", class_names},
                     {"image_size", {o.image_size, o.image_size}},
                     {"preprocessing", "none"},  // the model rescales raw [0, 255] RGB pixels itself
                     {"input", "RGB pixels in [0, 255]"},
                     {"validation", {{"validation_split", o.validation_split}, {"seed", o.seed}, {"files", "validation_files.txt"}}}};
  if (o.verbose) model->summary();

  model->compile(optimizers::Adam<float>({.learning_rate = o.learning_rate}), losses::CategoricalCrossentropy<float>(), {"accuracy"});

  const std::string csv = (fs::path(o.output) / "history.csv").string();
  FitOptions<float> fo;
  fo.epochs = o.epochs;
  fo.seed = o.seed;
  fo.verbose = o.verbose;
  fo.cache_frozen = o.cache;
  fo.callbacks = {std::make_shared<callbacks::CSVLogger<float>>(csv)};
  const auto t_fit = std::chrono::steady_clock::now();
  History history = model->fit(train_ds, fo, val_ds);
  double fit_seconds = seconds_since(t_fit);

  // ---- optional second stage: fine-tune the top layers of the base at a low learning rate ------------
  int fine_tune_epoch = -1;
  if (o.fine_tune > 0) {
    auto base_layers = base->layers();  // InputLayer first
    const int n = static_cast<int>(base_layers.size());
    const int first = std::max(1, n - o.fine_tune);
    base->set_trainable(true);
    for (int i = 0; i < n; ++i) {
      bool is_bn = base_layers[i]->class_name() == "BatchNormalization";
      // Keras's recommendation: keep BatchNormalization in inference mode (frozen) when fine-tuning.
      base_layers[i]->set_trainable(i >= first && !is_bn);
    }
    std::cout << "\nFine-tuning the top " << (n - first) << " of " << n << " layers of " << base->name() << " (from '"
              << base_layers[first]->name() << "'), learning rate " << o.fine_tune_lr << ", label smoothing " << o.label_smoothing
              << (o.flip ? ", random horizontal flips" : o.flip_copies ? ", mirrored copies" : "") << "\n";
    // Train an inlined view of the same layers: fit() then caches the frozen lower part of the base.
    auto flat = inlined(*model);
    flat->compile(optimizers::Adam<float>({.learning_rate = o.fine_tune_lr}),
                  losses::CategoricalCrossentropy<float>({.label_smoothing = o.label_smoothing}), {"accuracy"});
    data::Dataset<float> ft_train = train_ds;
    if (o.flip_copies)  // deterministic: fit() still caches (2x the training features)
      ft_train = train_ds
                     .map([](data::Batch<float> b) {
                       const Index n = b.x.dim(0), h = b.x.dim(1), w = b.x.dim(2), c = b.x.dim(3), row = b.x.size() / n;
                       Shape sx = b.x.shape(), sy = b.y.shape();
                       sx[0] = sy[0] = 2 * n;
                       data::Batch<float> d{Tensor<float>(sx), Tensor<float>(sy)};
                       std::copy(b.x.begin(), b.x.end(), d.x.data());
                       std::copy(b.x.begin(), b.x.end(), d.x.data() + n * row);
                       for (Index i = 0; i < n; ++i) data::flip_left_right(d.x.data() + (n + i) * row, h, w, c);
                       std::copy(b.y.begin(), b.y.end(), d.y.data());
                       std::copy(b.y.begin(), b.y.end(), d.y.data() + b.y.size());
                       return d;
                     })
                     .unbatch()
                     .batch(o.batch_size);
    else if (o.flip)
      ft_train = train_ds.map_random([](data::Batch<float> b, Random& rng) {
        data::random_flip_left_right(b.x, rng);
        return b;
      }, o.seed);
    FitOptions<float> f2 = fo;
    f2.initial_epoch = o.epochs;
    f2.epochs = o.epochs + o.fine_tune_epochs;
    f2.callbacks = {std::make_shared<callbacks::CSVLogger<float>>(csv, ',', /*append=*/true)};
    const auto t2 = std::chrono::steady_clock::now();
    History h2 = flat->fit(ft_train, f2, val_ds);
    fit_seconds += seconds_since(t2);
    for (auto& [k, v] : h2.history) {
      auto& dst = history.history[k];
      dst.insert(dst.end(), v.begin(), v.end());
    }
    fine_tune_epoch = o.epochs;
  }

  // ---- predictions on the validation set: confusion matrix and photo grid ---------------------------
  flowers_report::ReportData rep;
  rep.class_names = class_names;
  rep.history = history.history;
  rep.fine_tune_epoch = fine_tune_epoch;
  rep.confusion.assign(static_cast<std::size_t>(num_classes), std::vector<long>(static_cast<std::size_t>(num_classes), 0));
  std::vector<flowers_report::Photo> wrong_photos;
  Index seen = 0;
  const auto& val_files = val_ds.file_paths();
  for (auto& b : val_ds) {
    const Tensor<float> p = predict_in_chunks(*model, b.x, 8);
    const Index n = b.x.dim(0), hw = o.image_size * o.image_size * 3;
    for (Index i = 0; i < n; ++i, ++seen) {
      int t = 0, q = 0;
      for (Index c = 1; c < num_classes; ++c) {
        if (b.y[i * num_classes + c] > b.y[i * num_classes + t]) t = static_cast<int>(c);
        if (p[i * num_classes + c] > p[i * num_classes + q]) q = static_cast<int>(c);
      }
      rep.confusion[t][q]++;
      bool in_grid = seen < o.report_photos;
      if (!in_grid && (t == q || static_cast<int>(wrong_photos.size()) >= o.report_photos / 2)) continue;
      flowers_report::Photo ph;
      ph.width = ph.height = static_cast<int>(o.image_size);
      ph.true_label = t;
      ph.predicted_label = q;
      ph.confidence = p[i * num_classes + q];
      ph.file = seen < static_cast<Index>(val_files.size()) ? fs::path(val_files[seen]).filename().string() : "";
      ph.rgb.resize(static_cast<std::size_t>(hw));
      for (Index k = 0; k < hw; ++k)
        ph.rgb[k] = static_cast<std::uint8_t>(std::clamp(std::lround(b.x[i * hw + k]), 0L, 255L));
      if (in_grid) rep.photos.push_back(std::move(ph));
      else wrong_photos.push_back(std::move(ph));
    }
  }
  // The grid: the first validation photos, then more of the misclassified ones.
  for (auto& w : wrong_photos) rep.photos.push_back(std::move(w));
  long correct = 0, total = 0;
  for (Index i = 0; i < num_classes; ++i)
    for (Index j = 0; j < num_classes; ++j) total += rep.confusion[i][j], correct += i == j ? rep.confusion[i][j] : 0;
  const double val_acc = total ? double(correct) / double(total) : 0.0;

  // ---- outputs ---------------------------------------------------------------------------------------
  const std::string model_dir = (fs::path(o.output) / "model").string();
  io::save_model(*model, model_dir);
  const double total_seconds = seconds_since(t_start);
  rep.facts = {{"Model", "MobileNetV2 (ImageNet, frozen" + std::string(o.fine_tune ? ", top " + std::to_string(o.fine_tune) + " layers fine-tuned" : "") +
                             ") + " + (o.head == "flatten" ? "Flatten" : "GlobalAveragePooling2D") +
                             (o.dropout > 0 ? " + Dropout(" + fixed(o.dropout, 2) + ")" : "") + " + Dense(" +
                             std::to_string(num_classes) + ", softmax)"},
               {"Data", data_dir + ": " + std::to_string(train_ds.file_paths().size()) + " training, " +
                            std::to_string(val_ds.file_paths().size()) + " validation photos (split " + fixed(o.validation_split, 2) +
                            ", seed " + std::to_string(o.seed) + ")"},
               {"Input", std::to_string(o.image_size) + "x" + std::to_string(o.image_size) + " RGB, batch " + std::to_string(o.batch_size)},
               {"Training", std::to_string(o.epochs) + " epochs, Adam " + fixed(o.learning_rate, 4) +
                                (o.fine_tune ? " + " + std::to_string(o.fine_tune_epochs) + " fine-tuning epochs" : "") + ", " +
                                fixed(fit_seconds, 1) + " s in fit, " + fixed(total_seconds, 1) + " s in all, " +
                                std::to_string(get_num_threads()) + " threads"},
               {"Validation accuracy", fixed(val_acc, 4) + " (" + std::to_string(correct) + "/" + std::to_string(total) + ")"},
               {"Saved model", model_dir + " (TF.js layers format)"}};
  const std::string report = (fs::path(o.output) / "report.html").string();
  flowers_report::write_report(report, rep);

  std::cout << "\nSaved: " << model_dir << "/model.json, " << csv << ", " << report << "\n"
            << "Validation photos: " << (fs::path(o.output) / "validation").string() << "/ (kerascpp evaluate " << model_dir << " "
            << (fs::path(o.output) / "validation").string() << ")\n"
            << "Time: " << fixed(fit_seconds, 1) << " s in fit, " << fixed(total_seconds, 1) << " s in all\n";
  std::cout << "val_accuracy: " << fixed(val_acc, 4) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "flowers_transfer_learning: error: " << e.what() << "\n";
  return 1;
}
