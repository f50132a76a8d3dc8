// Weight initializers with Keras's names, formulas and config format.
#pragma once
#include <cmath>
#include <cstddef>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../core/core.hpp"

namespace keras::initializers {

/// An initializer by Keras name: "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
/// "lecun_uniform", "lecun_normal", "zeros", "ones", "constant", "random_normal", "random_uniform",
/// "orthogonal" (Keras: QR of a normal matrix over (prod(shape[:-1]), shape[-1]), times `gain`).
struct Initializer {
  std::string name = "glorot_uniform";
  double value = 0.0;                    ///< constant
  double mean = 0.0, stddev = 0.05;      ///< random_normal
  double minval = -0.05, maxval = 0.05;  ///< random_uniform
  double gain = 1.0;                     ///< orthogonal
  std::optional<std::uint64_t> seed;

  Initializer() = default;
  Initializer(const char* n) : name(n) {}             // NOLINT: allows .kernel_initializer = "he_normal"
  Initializer(std::string n) : name(std::move(n)) {}  // NOLINT

  static const char* keras_class(const std::string& n) {
    if (n == "glorot_uniform") return "GlorotUniform";
    if (n == "glorot_normal") return "GlorotNormal";
    if (n == "he_uniform") return "HeUniform";
    if (n == "he_normal") return "HeNormal";
    if (n == "lecun_uniform") return "LecunUniform";
    if (n == "lecun_normal") return "LecunNormal";
    if (n == "zeros") return "Zeros";
    if (n == "ones") return "Ones";
    if (n == "constant") return "Constant";
    if (n == "random_normal") return "RandomNormal";
    if (n == "random_uniform") return "RandomUniform";
    if (n == "truncated_normal") return "TruncatedNormal";
    if (n == "orthogonal") return "Orthogonal";
    throw ValueError("Unknown initializer: '" + n + "'");
  }
  /// {"class_name": "GlorotUniform", "config": {"seed": null}}
  nlohmann::json to_json() const {
    nlohmann::json c = nlohmann::json::object();
    if (name == "constant")
      c["value"] = value;
    else if (name == "random_normal" || name == "truncated_normal")
      c = {{"mean", mean}, {"stddev", stddev}};
    else if (name == "random_uniform")
      c = {{"minval", minval}, {"maxval", maxval}};
    else if (name == "orthogonal")
      c = {{"gain", gain}};
    if (name != "zeros" && name != "ones" && name != "constant")
      c["seed"] = seed ? nlohmann::json(*seed) : nlohmann::json(nullptr);
    return {{"class_name", keras_class(name)}, {"config", c}};
  }
  static Initializer from_json(const nlohmann::json& j) {
    if (j.is_string()) return Initializer(j.get<std::string>());
    std::string cls = j.at("class_name").get<std::string>();
    static const char* names[] = {"glorot_uniform", "glorot_normal", "he_uniform",     "he_normal",
                                  "lecun_uniform",  "lecun_normal",  "zeros",          "ones",
                                  "constant",       "random_normal", "random_uniform", "truncated_normal",
                                  "orthogonal"};
    Initializer r;
    bool found = false;
    for (const char* n : names)
      if (cls == keras_class(n) || cls == n) {
        r.name = n;
        found = true;
      }
    if (cls == "VarianceScaling")
      r.name = "glorot_uniform";  // approximated; weights are loaded anyway
    else if (!found)
      throw ValueError("Unknown initializer: '" + cls + "'");
    if (j.contains("config")) {
      auto& c = j["config"];
      if (c.contains("value") && c["value"].is_number()) r.value = c["value"];
      if (c.contains("mean")) r.mean = c["mean"];
      if (c.contains("stddev")) r.stddev = c["stddev"];
      if (c.contains("minval")) r.minval = c["minval"];
      if (c.contains("maxval")) r.maxval = c["maxval"];
      if (c.contains("gain") && c["gain"].is_number()) r.gain = c["gain"];
      if (c.contains("seed") && c["seed"].is_number_integer()) r.seed = c["seed"].get<std::uint64_t>();
    }
    return r;
  }

  /// Fills t. fan_in/fan_out as Keras computes them (dense: in/out; conv: k_h*k_w*in / k_h*k_w*out).
  template <class T>
  void fill(Tensor<T>& t, double fan_in, double fan_out, std::uint64_t default_seed) const {
    Random rng(seed ? *seed : default_seed);
    auto uniform = [&](double limit) {
      for (auto& v : t) v = static_cast<T>(rng.uniform(-limit, limit));
    };
    auto truncated = [&](double sd, double mu = 0.0) {
      for (auto& v : t) {
        double x;
        do x = rng.normal(0.0, 1.0);
        while (std::abs(x) > 2.0);
        v = static_cast<T>(mu + sd * x);
      }
    };
    // Keras's VarianceScaling truncated-normal stddev correction: 0.87962566103423978
    const double tn = 0.87962566103423978;
    if (name == "glorot_uniform")
      uniform(std::sqrt(6.0 / (fan_in + fan_out)));
    else if (name == "glorot_normal")
      truncated(std::sqrt(2.0 / (fan_in + fan_out)) / tn);
    else if (name == "he_uniform")
      uniform(std::sqrt(6.0 / fan_in));
    else if (name == "he_normal")
      truncated(std::sqrt(2.0 / fan_in) / tn);
    else if (name == "lecun_uniform")
      uniform(std::sqrt(3.0 / fan_in));
    else if (name == "lecun_normal")
      truncated(std::sqrt(1.0 / fan_in) / tn);
    else if (name == "zeros")
      t.setZero();
    else if (name == "ones")
      t.setConstant(T(1));
    else if (name == "constant")
      t.setConstant(static_cast<T>(value));
    else if (name == "random_normal")
      for (auto& v : t) v = static_cast<T>(rng.normal(mean, stddev));
    else if (name == "truncated_normal")
      truncated(stddev, mean);
    else if (name == "random_uniform")
      for (auto& v : t) v = static_cast<T>(rng.uniform(minval, maxval));
    else if (name == "orthogonal")
      fill_orthogonal(t, rng);
    else
      throw ValueError("Unknown initializer: '" + name + "'");
  }

 private:
  /// Keras's Orthogonal: a normal matrix (rows = prod(shape[:-1]), cols = shape[-1]), made
  /// orthonormal along its longer side by modified Gram-Schmidt (= QR with sign(diag(R)) folded
  /// in, as Keras does), times gain.
  template <class T>
  void fill_orthogonal(Tensor<T>& t, Random& rng) const {
    const Index cols = t.rank() ? t.dim(-1) : 1, rows = cols ? t.size() / cols : 0;
    const bool tall = rows >= cols;
    const Index n = tall ? rows : cols, k = tall ? cols : rows;  // k orthonormal vectors of length n
    std::vector<double> q(static_cast<std::size_t>(n * k));
    for (auto& v : q) v = rng.normal(0.0, 1.0);
    for (Index j = 0; j < k; ++j) {
      double* qj = q.data() + j * n;
      for (Index i = 0; i < j; ++i) {
        const double* qi = q.data() + i * n;
        double d = 0;
        for (Index e = 0; e < n; ++e) d += qi[e] * qj[e];
        for (Index e = 0; e < n; ++e) qj[e] -= d * qi[e];
      }
      double norm = 0;
      for (Index e = 0; e < n; ++e) norm += qj[e] * qj[e];
      norm = std::sqrt(norm) > 0 ? std::sqrt(norm) : 1.0;
      for (Index e = 0; e < n; ++e) qj[e] /= norm;
    }
    // vector j is column j of a tall matrix, row j of a wide one
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c)
        t.data()[r * cols + c] = static_cast<T>(gain * (tall ? q[c * n + r] : q[r * n + c]));
  }
};

/// One weight of a layer, in the layer's options struct O: Keras's name of the weight ("kernel") and
/// the member of O that holds its initializer. A layer lists its weights once, in a table of these,
/// and the table drives the weights' config keys: `<weight>_initializer` (written and read), and
/// `<weight>_regularizer`, `<weight>_constraint` and `activity_regularizer` (written as null: not
/// supported), so that a new weight is written once.
template <class O>
struct WeightOption {
  const char* weight;
  Initializer O::*initializer;
};

/// Writes the config keys of a layer's table of weights (see WeightOption).
template <class O, std::size_t N>
void write_weight_options(nlohmann::json& c, const O& o, const WeightOption<O> (&weights)[N]) {
  for (const auto& w : weights) {
    const std::string k = w.weight;
    c[k + "_initializer"] = (o.*w.initializer).to_json();
    c[k + "_regularizer"] = nullptr;
    c[k + "_constraint"] = nullptr;
  }
  c["activity_regularizer"] = nullptr;
}

/// Reads the initializers of a layer's table of weights from its config (absent or null: O's default).
template <class O, std::size_t N>
void read_weight_options(const nlohmann::json& c, O& o, const WeightOption<O> (&weights)[N]) {
  for (const auto& w : weights) {
    const std::string k = std::string(w.weight) + "_initializer";
    if (c.contains(k) && !c[k].is_null()) o.*w.initializer = Initializer::from_json(c[k]);
  }
}

}  // namespace keras::initializers
