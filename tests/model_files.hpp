// Catch2 helpers of the model-file tests (test_io, test_io_layers17, test_layers_recurrent): scratch
// folders, comparing predictions, TF.js's own prediction of a saved model (tests/tfjs/run_reference.sh)
// and the models TF.js wrote (the ctest fixture tfjs_models, under the build tree's tfjs_models/).
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <keras/io/npy.hpp>
#include <keras/io/tfjs.hpp>
#include <memory>
#include <optional>
#include <string>

namespace model_files {

using namespace keras;
namespace fs = std::filesystem;

inline const std::string kSource = KERASCPP_SOURCE_DIR;
inline const std::string kBinary = KERASCPP_BINARY_DIR;

/// A fresh scratch folder under the build tree, one per name and process.
inline fs::path scratch(const std::string& name) {
  fs::path p = fs::path(kBinary) / "test_io_tmp" / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

inline double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::abs(a[i] - b[i])));
  return m;
}

inline bool bit_identical(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0;
}

/// U(-1, 1) values.
inline Tensor<float> random_input(const Shape& s, std::uint64_t seed) {
  Random rng(seed);
  Tensor<float> t(s);
  for (auto& v : t) v = static_cast<float>(rng.uniform(-1, 1));
  return t;
}

/// TF.js (Node) predicts `dir`'s model on x; nullopt when node is unavailable (exit 77).
inline std::optional<Tensor<float>> tfjs_predict(const fs::path& dir, const Tensor<float>& x) {
  io::save_npy((dir / "X_in.npy").string(), x);
  std::string cmd = "sh '" + kSource + "/tests/tfjs/run_reference.sh' predict '" + dir.string() + "' '" +
                    (dir / "X_in.npy").string() + "' '" + (dir / "Y_tfjs.npy").string() + "' > '" +
                    (dir / "tfjs.log").string() + "' 2>&1";
  int rc = std::system(cmd.c_str());
  int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code == 77) return std::nullopt;
  INFO("TF.js log:\n" << io::read_file((dir / "tfjs.log").string()));
  REQUIRE(code == 0);
  return io::load_npy<float>((dir / "Y_tfjs.npy").string());
}

/// The folder of the models TF.js wrote (each with model.json, X.npy and TF.js's prediction Y.npy).
inline fs::path tfjs_models() { return fs::path(kBinary) / "tfjs_models"; }

/// Whether the fixture wrote the model `name`; when not, WARNs that the test is skipped.
inline bool have_tfjs_model(const std::string& name) {
  if (fs::exists(tfjs_models() / name / "model.json")) return true;
  WARN("no TF.js fixture in " << tfjs_models().string() << " (run ctest, which runs tfjs_make_models first): skipped");
  return false;
}

/// Loads the TF.js-written model `name` (its folder, or the file `file` in it) and checks that it
/// predicts TF.js's Y.npy on X.npy within 1e-5; then that ours, saved again, reloads bit for bit and
/// that TF.js reads it back to the same prediction. Returns the model for the caller's own checks.
inline std::shared_ptr<Model<float>> check_tfjs_model(const std::string& name, const std::string& file = "") {
  const fs::path dir = tfjs_models() / name;
  auto m = models::load_model(file.empty() ? dir.string() : (dir / file).string());
  auto x = io::load_npy<float>((dir / "X.npy").string());
  auto y = io::load_npy<float>((dir / "Y.npy").string());
  auto p = m->predict(x, {.verbose = 0});
  const double d = max_abs_diff(p, y);
  INFO(name << ": max |kerascpp - TF.js| = " << d);
  CHECK(d <= 1e-5);
  std::printf("TF.js model %-15s -> kerascpp: max abs diff %.3g\n", name.c_str(), d);
  fs::path again = scratch("fixture_" + name);
  models::save_model(*m, again.string());
  CHECK(bit_identical(models::load_model(again.string())->predict(x, {.verbose = 0}), p));
  if (auto t = tfjs_predict(again, x)) CHECK(max_abs_diff(*t, y) <= 1e-5);
  return m;
}

}  // namespace model_files
