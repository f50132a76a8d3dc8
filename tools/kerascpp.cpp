// kerascpp: the command-line tool for saved models (TF.js layers format: model.json + shards).
//
//   kerascpp summary MODEL
//   kerascpp predict MODEL --input X.npy --output Y.npy [--batch-size N]
//   kerascpp predict MODEL IMAGE... [--top K] [--batch-size N]
//   kerascpp evaluate MODEL DIR [--batch-size N]
//   kerascpp convert MODEL OUTPUT_DIR [--config CONFIG.json] [--quantize float16|uint8|uint16] [--shard-mb X] [--quiet]
//   kerascpp --version | --help | SUBCOMMAND --help
//
// MODEL is a model.json path or its folder. Images are decoded (JPEG, PNG, BMP, GIF), resized
// bilinearly to the model's input size and given to the model as pixels in [0, 255] (as
// image_dataset_from_directory yields them), unless the model's metadata says
// "preprocessing": "mobilenet_v2" (then x / 127.5 - 1). Class names come from the model's
// metadata "class_names" (userDefinedMetadata in model.json). evaluate reads a folder of class
// sub-folders with image_dataset_from_directory (no shuffling, categorical labels) and ends
// with the line "accuracy: 0.xxxx". convert runs tools/keras_h5_to_tfjs.py (Keras .h5 -> TF.js
// layers format) with /usr/bin/python3 (or $KERASCPP_PYTHON; it needs h5py and numpy).
//
// Arguments are parsed by CLI11 (typed options: `--top 5x` is refused, naming the option).
// Exit codes: 0 success, 1 runtime error (a file that does not load, a model that does not fit the
// data, a failed conversion), 2 usage error (unknown subcommand or option, a bad or missing value).
// Errors are one line on stderr: "kerascpp SUBCOMMAND: error: ...".
#include <CLI/CLI.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/data/data.hpp>
#include <keras/io/npy.hpp>
#include <keras/io/tfjs.hpp>
#include <keras/version.hpp>
#include <numeric>
#include <string>
#include <vector>

#ifndef KERASCPP_CONVERTER_SOURCE
#define KERASCPP_CONVERTER_SOURCE ""  // tools/keras_h5_to_tfjs.py in the source tree (set by CMake)
#endif
#ifndef KERASCPP_CONVERTER_FROM_BINDIR
#define KERASCPP_CONVERTER_FROM_BINDIR "../share/kerascpp/keras_h5_to_tfjs.py"  // installed layout
#endif
#ifndef KERASCPP_PYTHON_DEFAULT
#define KERASCPP_PYTHON_DEFAULT "/usr/bin/python3"
#endif

namespace {

namespace fs = std::filesystem;
using keras::Index;
using keras::Shape;
using keras::Tensor;

constexpr int kExitOk = 0, kExitRuntime = 1, kExitUsage = 2;

/// A command line that parses but does not make sense (exit code 2).
struct UsageError : keras::ValueError {
  using keras::ValueError::ValueError;
};

struct Args {
  std::string model, dir, input, output;
  std::vector<std::string> images;
  Index top = 5, batch_size = 32;
  // convert
  std::string h5, out_dir, quantize, config;
  double shard_mb = 4.0;
  bool quiet = false;
};

/// CLI11 check: a whole-string integer >= 1 (so "5x", "abc" and "0" are refused with the value).
CLI::Validator positive_integer() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        long long v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc::result_out_of_range) return "'" + s + "' is too large";
        if (ec != std::errc() || end != s.data() + s.size()) return "needs a positive integer, got '" + s + "'";
        if (v < 1) return "needs a positive integer, got " + s;
        return {};
      },
      "N>=1");
}

/// CLI11 check: a whole-string finite number > 0.
CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
          return "needs a number, got '" + s + "'";
        if (v <= 0) return "needs a positive number, got " + s;
        return {};
      },
      "X>0");
}

std::shared_ptr<keras::Model<float>> load(const std::string& path) { return keras::models::load_model<float>(path); }

std::vector<std::string> class_names_of(const keras::Model<float>& m) {
  std::vector<std::string> names;
  if (m.metadata.is_object() && m.metadata.contains("class_names") && m.metadata["class_names"].is_array())
    for (auto& n : m.metadata["class_names"]) names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  return names;
}

/// The model's input as (height, width, channels) for images.
std::array<Index, 3> image_input_size(const keras::Model<float>& m) {
  auto shapes = m.input_shapes();
  if (shapes.size() != 1)
    throw keras::ValueError("model '" + m.name() + "' has " + std::to_string(shapes.size()) +
                            " inputs; images need one");
  const Shape& s = shapes[0];
  if (s.size() != 4 || s[1] <= 0 || s[2] <= 0 || s[3] <= 0)
    throw keras::ValueError("model '" + m.name() + "' takes input " + keras::shape_str(s) +
                            ", not images of a fixed size (batch, height, width, channels); use --input X.npy");
  if (s[3] != 1 && s[3] != 3 && s[3] != 4)
    throw keras::ValueError("model '" + m.name() + "' takes images with " + std::to_string(s[3]) +
                            " channels (1, 3 or 4 supported)");
  return {s[1], s[2], s[3]};
}

/// Applies the preprocessing named in the model's metadata (none by default).
void preprocess(const keras::Model<float>& m, Tensor<float>& x) {
  if (!m.metadata.is_object() || !m.metadata.contains("preprocessing")) return;
  const auto& p = m.metadata["preprocessing"];
  std::string kind = p.is_string() ? p.get<std::string>() : p.dump();
  if (kind == "none" || kind.empty()) return;
  if (kind == "mobilenet_v2") {
    keras::applications::mobilenet_v2::preprocess_input_inplace(x);
    return;
  }
  throw keras::ValueError("model '" + m.name() + "': unknown metadata preprocessing '" + kind +
                          "' (known: none, mobilenet_v2)");
}

Index classes_of(const keras::Model<float>& m) {
  const Shape& out = m.output_shape();
  if (out.size() != 2 || out[1] <= 0)
    throw keras::ValueError("model '" + m.name() + "' outputs " + keras::shape_str(out) +
                            ", not class probabilities (batch, classes)");
  return out[1];
}

int cmd_summary(const Args& a) {
  auto m = load(a.model);
  m->summary(std::cout);
  auto names = class_names_of(*m);
  if (!names.empty()) {
    std::cout << "Classes (" << names.size() << "):";
    for (auto& n : names) std::cout << " " << n;
    std::cout << "\n";
  }
  return 0;
}

int cmd_predict_npy(const Args& a) {
  if (!a.images.empty()) throw UsageError("predict with --input takes one MODEL and no images");
  if (a.output.empty()) throw UsageError("predict --input needs --output Y.npy");
  auto m = load(a.model);
  auto x = keras::io::load_npy<float>(a.input);
  auto y = m->predict(x, a.batch_size);
  keras::io::save_npy(a.output, y);
  std::cout << "predicted " << keras::shape_str(x.shape()) << " -> " << keras::shape_str(y.shape()) << ": wrote "
            << a.output << "\n";
  return 0;
}

int cmd_predict_images(const Args& a) {
  if (a.images.empty()) throw UsageError("predict needs MODEL and IMAGE... (or --input X.npy --output Y.npy)");
  if (!a.output.empty()) throw UsageError("--output needs --input X.npy");
  auto m = load(a.model);
  auto [h, w, c] = image_input_size(*m);
  Index classes = classes_of(*m);
  auto names = class_names_of(*m);
  if (!names.empty() && static_cast<Index>(names.size()) != classes)
    throw keras::ValueError("model '" + m->name() + "' has " + std::to_string(names.size()) + " class names but " +
                            std::to_string(classes) + " outputs");
  const Index n = static_cast<Index>(a.images.size());
  Tensor<float> x({n, h, w, c});
  for (Index i = 0; i < n; ++i) {
    auto img = keras::data::decode_image(a.images[static_cast<std::size_t>(i)], static_cast<int>(c));
    auto px = keras::data::resize_image<float>(img, h, w);
    std::copy(px.begin(), px.end(), x.data() + i * h * w * c);
  }
  preprocess(*m, x);
  auto y = m->predict(x, a.batch_size);
  const Index k = std::min(a.top, classes);
  std::size_t width = 0;
  for (auto& s : names) width = std::max(width, s.size());
  for (Index i = 0; i < n; ++i) {
    std::cout << a.images[static_cast<std::size_t>(i)] << "\n";
    std::vector<Index> order(static_cast<std::size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    const float* p = y.data() + i * classes;
    std::stable_sort(order.begin(), order.end(), [&](Index u, Index v) { return p[u] > p[v]; });
    for (Index j = 0; j < k; ++j) {
      Index cls = order[static_cast<std::size_t>(j)];
      std::string label = names.empty() ? "class " + std::to_string(cls) : names[static_cast<std::size_t>(cls)];
      std::printf("  %-*s %.4f\n", static_cast<int>(std::max<std::size_t>(width, label.size())), label.c_str(), p[cls]);
    }
  }
  std::fflush(stdout);
  return 0;
}

int cmd_evaluate(const Args& a) {
  auto m = load(a.model);
  auto [h, w, c] = image_input_size(*m);
  Index classes = classes_of(*m);
  auto names = class_names_of(*m);
  keras::utils::ImageDatasetOptions o;
  o.label_mode = "categorical";
  o.image_size = {h, w};
  o.color_mode = c == 1 ? "grayscale" : c == 4 ? "rgba" : "rgb";
  o.batch_size = a.batch_size;
  o.shuffle = false;
  o.class_names = names;  // the model's class order (must match the sub-folders); none: sorted
  auto ds = keras::utils::image_dataset_from_directory<float>(a.dir, o);
  const auto& found = ds.class_names();
  if (static_cast<Index>(found.size()) != classes)
    throw keras::ValueError("'" + a.dir + "' has " + std::to_string(found.size()) + " classes but model '" + m->name() +
                            "' outputs " + std::to_string(classes));
  std::vector<Index> total(static_cast<std::size_t>(classes), 0), right(static_cast<std::size_t>(classes), 0);
  double loss = 0;
  Index n = 0, correct = 0;
  for (auto& b : ds) {
    Tensor<float> x = std::move(b.x);
    preprocess(*m, x);
    const Tensor<float>& y = (*m)(x);
    const Index rows = x.dim(0);
    for (Index i = 0; i < rows; ++i) {
      const float* p = y.data() + i * classes;
      const float* t = b.y.data() + i * classes;
      Index pred = std::max_element(p, p + classes) - p;
      Index truth = std::max_element(t, t + classes) - t;
      loss -= std::log(std::clamp(static_cast<double>(p[truth]), 1e-7, 1 - 1e-7));
      ++total[static_cast<std::size_t>(truth)];
      if (pred == truth) {
        ++correct;
        ++right[static_cast<std::size_t>(truth)];
      }
    }
    n += rows;
  }
  if (n == 0) throw keras::ValueError("no images found in '" + a.dir + "'");
  for (Index k = 0; k < classes; ++k)
    if (total[static_cast<std::size_t>(k)])
      std::printf("  %-20s %lld/%lld correct\n", found[static_cast<std::size_t>(k)].c_str(),
                  static_cast<long long>(right[static_cast<std::size_t>(k)]),
                  static_cast<long long>(total[static_cast<std::size_t>(k)]));
  std::printf("images: %lld\nloss: %.4f\naccuracy: %.4f\n", static_cast<long long>(n), loss / static_cast<double>(n),
              static_cast<double>(correct) / static_cast<double>(n));
  std::fflush(stdout);
  return 0;
}

/// tools/keras_h5_to_tfjs.py: $KERASCPP_CONVERTER, else installed beside this program
/// (<prefix>/share/kerascpp/), else in the source tree this program was built from.
std::string find_converter() {
  if (const char* e = std::getenv("KERASCPP_CONVERTER"); e && *e) {
    if (!fs::is_regular_file(e)) throw keras::ValueError(std::string("KERASCPP_CONVERTER='") + e + "' is not a file");
    return e;
  }
  std::vector<std::string> tried;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = (self.parent_path() / KERASCPP_CONVERTER_FROM_BINDIR).lexically_normal();
    if (fs::is_regular_file(installed, ec)) return installed.string();
    tried.push_back(installed.string());
  }
  if (*KERASCPP_CONVERTER_SOURCE) {
    if (fs::is_regular_file(KERASCPP_CONVERTER_SOURCE, ec)) return KERASCPP_CONVERTER_SOURCE;
    tried.push_back(KERASCPP_CONVERTER_SOURCE);
  }
  std::string msg = "keras_h5_to_tfjs.py not found (looked at";
  for (auto& t : tried) msg += " " + t;
  throw keras::ValueError(msg + "); set KERASCPP_CONVERTER to its path");
}

/// Runs the converter with Python (no shell: paths pass through unquoted). Its messages go to our
/// stdout/stderr; its exit code 2 (argparse: a usage error) stays 2, any other failure is 1.
int cmd_convert(const Args& a) {
  const std::string converter = find_converter();
  const char* env_python = std::getenv("KERASCPP_PYTHON");
  const std::string python = env_python && *env_python ? env_python : KERASCPP_PYTHON_DEFAULT;
  if (::access(python.c_str(), X_OK) != 0)
    throw keras::ValueError("cannot run Python '" + python +
                            "' (the converter needs Python 3 with h5py and numpy; on Debian: apt-get install "
                            "python3-h5py; or set KERASCPP_PYTHON)");
  std::vector<std::string> args = {python, converter, a.h5, a.out_dir};
  if (!a.quantize.empty()) args.insert(args.end(), {"--quantize", a.quantize});
  if (!a.config.empty()) args.insert(args.end(), {"--config", a.config});
  char mb[32];
  std::snprintf(mb, sizeof mb, "%.17g", a.shard_mb);
  args.insert(args.end(), {"--shard-mb", mb});
  if (a.quiet) args.push_back("--quiet");
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::cout.flush();
  const pid_t pid = ::fork();
  if (pid < 0) throw keras::ValueError(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    ::execv(python.c_str(), argv.data());
    std::fprintf(stderr, "kerascpp convert: error: cannot run %s: %s\n", python.c_str(), std::strerror(errno));
    ::_exit(kExitRuntime);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw keras::ValueError(std::string("waitpid failed: ") + std::strerror(errno));
  if (WIFEXITED(status)) {
    const int rc = WEXITSTATUS(status);
    return rc == 0 ? kExitOk : rc == kExitUsage ? kExitUsage : kExitRuntime;
  }
  std::fprintf(stderr, "kerascpp convert: error: the converter was killed by signal %d\n", WTERMSIG(status));
  return kExitRuntime;
}

std::string one_line(std::string s) {
  for (auto& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kerascpp " KERASCPP_VERSION_STRING
               ": summary, predict, evaluate and convert Keras models.\n"
               "MODEL is a model.json file or its folder (TF.js layers format).\n"
               "Exit codes: 0 success, 1 runtime error, 2 usage error.",
               "kerascpp"};
  app.set_version_flag("--version", "kerascpp " KERASCPP_VERSION_STRING);
  app.require_subcommand(1);
  app.fallthrough(false);
  Args a;

  auto* summary = app.add_subcommand(
      "summary", "Print the model's layers, shapes and parameter counts (as Keras's model.summary()).");
  summary->add_option("MODEL", a.model, "model.json or its folder")->required();

  auto* predict = app.add_subcommand("predict", "Predict images (top classes) or a .npy array (to a .npy file).");
  predict->add_option("MODEL", a.model, "model.json or its folder")->required();
  predict->add_option("IMAGE", a.images, "JPEG, PNG, BMP or GIF files (resized to the model's input)");
  auto* input = predict->add_option("-i,--input", a.input, "X.npy: a batch of inputs instead of images");
  predict->add_option("-o,--output", a.output, "Y.npy: where --input's predictions go")->needs(input);
  predict->add_option("-k,--top", a.top, "classes shown per image")->check(positive_integer())->capture_default_str();
  predict->add_option("-b,--batch-size", a.batch_size, "samples per forward pass")
      ->check(positive_integer())
      ->capture_default_str();

  auto* evaluate = app.add_subcommand("evaluate", "Accuracy and loss on a folder of class sub-folders of images.");
  evaluate->add_option("MODEL", a.model, "model.json or its folder")->required();
  evaluate->add_option("DIR", a.dir, "one sub-folder of images per class")->required();
  evaluate->add_option("-b,--batch-size", a.batch_size, "samples per forward pass")
      ->check(positive_integer())
      ->capture_default_str();

  auto* convert = app.add_subcommand("convert",
                                     "Convert a Keras model or weights file (Keras 2 .h5, Keras 3 .keras or "
                                     ".weights.h5) to the TF.js layers format (runs keras_h5_to_tfjs.py).");
  convert
      ->add_option("MODEL", a.h5,
                   "Keras 2 .h5 (model.save or save_weights), Keras 3 .keras (model.save) or .weights.h5 "
                   "(save_weights, with --config)")
      ->required();
  convert->add_option("OUTPUT_DIR", a.out_dir, "folder for model.json and the weight shards")->required();
  convert->add_option("--quantize", a.quantize, "store float32 weights quantized")
      ->check(CLI::IsMember({"float16", "uint8", "uint16"}));
  convert->add_option("--config", a.config,
                      "the model config of a Keras 3 .weights.h5 (model.to_json(), or a .keras file)");
  convert->add_option("--shard-mb", a.shard_mb, "maximum shard size in MiB")
      ->check(positive_number())
      ->capture_default_str();
  convert->add_flag("-q,--quiet", a.quiet, "print nothing on success");

  // The subcommand named on the command line, for the messages.
  std::string cmd;
  if (argc > 1 && argv[1][0] != '-') cmd = argv[1];
  const auto subs = app.get_subcommands([](const CLI::App*) { return true; });
  const bool known = std::any_of(subs.begin(), subs.end(), [&](const CLI::App* s) { return s->get_name() == cmd; });
  const std::string who = known ? "kerascpp " + cmd : std::string("kerascpp");
  try {
    if (argc < 2) {
      std::cerr << app.help();
      return kExitUsage;
    }
    if (cmd == "help") {  // `kerascpp help` as `kerascpp --help`
      std::cout << app.help();
      return kExitOk;
    }
    if (!cmd.empty() && !known)
      throw UsageError("unknown command '" + cmd + "': the commands are summary, predict, evaluate, convert");
    app.parse(argc, argv);
    if (summary->parsed()) return cmd_summary(a);
    if (predict->parsed()) return a.input.empty() ? cmd_predict_images(a) : cmd_predict_npy(a);
    if (evaluate->parsed()) return cmd_evaluate(a);
    if (convert->parsed()) return cmd_convert(a);
    throw UsageError("no command given (summary, predict, evaluate, convert)");
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version: printed on stdout
    std::cerr << who << ": error: " << one_line(e.what()) << " (" << who << " --help)\n";
    return kExitUsage;
  } catch (const UsageError& e) {
    std::cerr << who << ": error: " << one_line(e.what()) << " (" << who << " --help)\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << who << ": error: " << one_line(e.what()) << "\n";
  }
  return kExitRuntime;
}
