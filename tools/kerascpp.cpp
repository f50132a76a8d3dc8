// kerascpp: the command-line tool for saved models (TF.js layers format: model.json + shards).
//
//   kerascpp summary MODEL
//   kerascpp predict MODEL --input X.npy --output Y.npy [--batch-size N]
//   kerascpp predict MODEL IMAGE... [--top K]
//   kerascpp evaluate MODEL DIR [--batch-size N]
//
// MODEL is a model.json path or its folder. Images are decoded (JPEG, PNG, BMP, GIF), resized
// bilinearly to the model's input size and given to the model as pixels in [0, 255] (as
// image_dataset_from_directory yields them), unless the model's metadata says
// "preprocessing": "mobilenet_v2" (then x / 127.5 - 1). Class names come from the model's
// metadata "class_names" (userDefinedMetadata in model.json). evaluate reads a folder of class
// sub-folders with image_dataset_from_directory (no shuffling, categorical labels) and ends
// with the line "accuracy: 0.xxxx". Errors: one line on stderr, exit code 1.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/data/data.hpp>
#include <keras/io/npy.hpp>
#include <keras/io/tfjs.hpp>
#include <numeric>
#include <string>
#include <vector>

namespace {

using keras::Index;
using keras::Shape;
using keras::Tensor;

constexpr const char* kUsage =
    "usage: kerascpp summary MODEL\n"
    "       kerascpp predict MODEL --input X.npy --output Y.npy [--batch-size N]\n"
    "       kerascpp predict MODEL IMAGE... [--top K]\n"
    "       kerascpp evaluate MODEL DIR [--batch-size N]\n"
    "MODEL is a model.json file or its folder (TF.js layers format).\n";

struct UsageError : keras::ValueError {
  using keras::ValueError::ValueError;
};

struct Args {
  std::vector<std::string> positional;
  std::string input, output;
  Index top = 5, batch_size = 32;
};

Index parse_positive(const std::string& opt, const std::string& v) {
  try {
    std::size_t used = 0;
    long long n = std::stoll(v, &used);
    if (used == v.size() && n > 0) return static_cast<Index>(n);
  } catch (const std::exception&) {
  }
  throw UsageError(opt + " needs a positive integer, got '" + v + "'");
}

Args parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&]() -> std::string {
      auto eq = s.find('=');
      if (eq != std::string::npos) return s.substr(eq + 1);
      if (i + 1 >= argc) throw UsageError(s + " needs a value");
      return argv[++i];
    };
    std::string key = s.substr(0, s.find('='));
    if (key == "--input" || key == "-i") a.input = value();
    else if (key == "--output" || key == "-o") a.output = value();
    else if (key == "--top" || key == "-k") a.top = parse_positive("--top", value());
    else if (key == "--batch-size" || key == "-b") a.batch_size = parse_positive("--batch-size", value());
    else if (s.size() > 1 && s[0] == '-') throw UsageError("unknown option '" + s + "'");
    else a.positional.push_back(s);
  }
  return a;
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
  if (shapes.size() != 1) throw keras::ValueError("model '" + m.name() + "' has " + std::to_string(shapes.size()) + " inputs; images need one");
  const Shape& s = shapes[0];
  if (s.size() != 4 || s[1] <= 0 || s[2] <= 0 || s[3] <= 0)
    throw keras::ValueError("model '" + m.name() + "' takes input " + keras::shape_str(s) +
                            ", not images of a fixed size (batch, height, width, channels); use --input X.npy");
  if (s[3] != 1 && s[3] != 3 && s[3] != 4)
    throw keras::ValueError("model '" + m.name() + "' takes images with " + std::to_string(s[3]) + " channels (1, 3 or 4 supported)");
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
  throw keras::ValueError("model '" + m.name() + "': unknown metadata preprocessing '" + kind + "' (known: none, mobilenet_v2)");
}

Index classes_of(const keras::Model<float>& m) {
  const Shape& out = m.output_shape();
  if (out.size() != 2 || out[1] <= 0)
    throw keras::ValueError("model '" + m.name() + "' outputs " + keras::shape_str(out) + ", not class probabilities (batch, classes)");
  return out[1];
}

int cmd_summary(const Args& a) {
  if (a.positional.size() != 1) throw UsageError("summary takes one MODEL");
  auto m = load(a.positional[0]);
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
  if (a.positional.size() != 1) throw UsageError("predict with --input takes one MODEL and no images");
  if (a.output.empty()) throw UsageError("predict --input needs --output Y.npy");
  auto m = load(a.positional[0]);
  auto x = keras::io::load_npy<float>(a.input);
  auto y = m->predict(x, a.batch_size);
  keras::io::save_npy(a.output, y);
  std::cout << "predicted " << keras::shape_str(x.shape()) << " -> " << keras::shape_str(y.shape()) << ": wrote " << a.output << "\n";
  return 0;
}

int cmd_predict_images(const Args& a) {
  if (a.positional.size() < 2) throw UsageError("predict needs MODEL and IMAGE... (or --input X.npy --output Y.npy)");
  if (!a.output.empty()) throw UsageError("--output needs --input X.npy");
  auto m = load(a.positional[0]);
  auto [h, w, c] = image_input_size(*m);
  Index classes = classes_of(*m);
  auto names = class_names_of(*m);
  if (!names.empty() && static_cast<Index>(names.size()) != classes)
    throw keras::ValueError("model '" + m->name() + "' has " + std::to_string(names.size()) + " class names but " + std::to_string(classes) +
                            " outputs");
  const Index n = static_cast<Index>(a.positional.size()) - 1;
  Tensor<float> x({n, h, w, c});
  for (Index i = 0; i < n; ++i) {
    auto img = keras::data::decode_image(a.positional[static_cast<std::size_t>(i + 1)], static_cast<int>(c));
    auto px = keras::data::resize_image<float>(img, h, w);
    std::copy(px.begin(), px.end(), x.data() + i * h * w * c);
  }
  preprocess(*m, x);
  auto y = m->predict(x, a.batch_size);
  const Index k = std::min(a.top, classes);
  std::size_t width = 0;
  for (auto& s : names) width = std::max(width, s.size());
  for (Index i = 0; i < n; ++i) {
    std::cout << a.positional[static_cast<std::size_t>(i + 1)] << "\n";
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
  if (a.positional.size() != 2) throw UsageError("evaluate takes MODEL and DIR");
  auto m = load(a.positional[0]);
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
  auto ds = keras::utils::image_dataset_from_directory<float>(a.positional[1], o);
  const auto& found = ds.class_names();
  if (static_cast<Index>(found.size()) != classes)
    throw keras::ValueError("'" + a.positional[1] + "' has " + std::to_string(found.size()) + " classes but model '" + m->name() + "' outputs " +
                            std::to_string(classes));
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
  if (n == 0) throw keras::ValueError("no images found in '" + a.positional[1] + "'");
  for (Index k = 0; k < classes; ++k)
    if (total[static_cast<std::size_t>(k)])
      std::printf("  %-20s %lld/%lld correct\n", found[static_cast<std::size_t>(k)].c_str(), static_cast<long long>(right[static_cast<std::size_t>(k)]),
                  static_cast<long long>(total[static_cast<std::size_t>(k)]));
  std::printf("images: %lld\nloss: %.4f\naccuracy: %.4f\n", static_cast<long long>(n), loss / static_cast<double>(n),
              static_cast<double>(correct) / static_cast<double>(n));
  std::fflush(stdout);
  return 0;
}

std::string one_line(std::string s) {
  for (auto& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 1 : 0;
  }
  const std::string cmd = argv[1];
  try {
    Args a = parse(argc, argv, 2);
    if (cmd == "summary") return cmd_summary(a);
    if (cmd == "predict") return a.input.empty() ? cmd_predict_images(a) : cmd_predict_npy(a);
    if (cmd == "evaluate") return cmd_evaluate(a);
    throw UsageError("unknown command '" + cmd + "' (summary, predict, evaluate)");
  } catch (const UsageError& e) {
    std::cerr << "kerascpp " << cmd << ": error: " << one_line(e.what()) << " (kerascpp --help)\n";
  } catch (const keras::Error& e) {
    std::cerr << "kerascpp " << cmd << ": error: " << one_line(e.what()) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "kerascpp " << cmd << ": error: " << one_line(e.what()) << "\n";
  }
  return 1;
}
