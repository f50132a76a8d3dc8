// keras::testing: checks for any Layer<double>, built-in or user-written, in the spirit of dlib's
// test_layer(). Catch2-free: check_layer() returns a LayerCheckReport (ok(), str()); assert on it
// in your test framework, or call require_layer_ok() to throw a keras::Error with the report.
//
//   keras::layers::Dense<double> d(3, {.activation = "tanh"});
//   auto report = keras::testing::check_layer(d, {x});          // x: Tensor<double>, batch first
//   if (!report.ok()) std::cerr << report.str();
//
// What check_layer verifies (each one has caught real bugs elsewhere):
//  1. gradients: backward() against central differences of L = sum(w * layer(x)) for a random w,
//     w.r.t. every input and every trainable variable, with the error formula below;
//  2. backward ADDS into variable gradients: they are prefilled with non-zero values, and what
//     backward adds must equal what it gives from zero (an assignment fails);
//  3. every element is written: outputs and input gradients are prefilled with NaN;
//  4. results do not depend on the thread count: forward and backward at 1 and at 2 threads
//     (keras::set_num_threads) agree bit for bit (kerascpp's reductions are deterministic);
//  5. inference: forward_inference() of a layers::InferenceKernel equals forward(training = false);
//  6. config round trip: Registry<double>::create(class_name, get_config()) rebuilds a layer with
//     the same config, the same variables (names, shapes) and, given the same weights, the same
//     output. Layers that are not registered are reported as skipped (never silently passed).
//
// Gradient error (one definition for the whole test suite; "relative error" has several):
//   numeric_i = (f(x + h e_i) - f(x - h e_i)) / (2 h),   h = eps * max(1, |x_i|)
//   err_i     = |analytic_i - numeric_i| / max(|analytic_i| + |numeric_i|, floor * max(1, |f(x)|))
//   result    = max_i err_i
// The denominator |a| + |n| is symmetric and makes err_i <= 1 whenever the floor is not active. The floor
// exists because a central difference has an absolute noise of roughly
//   eps_mach * |f| / h  (rounding)  +  h^2 |f'''| / 6  (truncation)  ~  1e-11 .. 1e-10 * max(1, |f|)
// for h = 1e-5 in double, so entries whose true gradient is (near) zero cannot be checked relatively.
// With floor = 1e-4 such entries are checked absolutely to tol * 1e-4 * max(1, |f|) (1e-10 for tol 1e-6),
// far below any real gradient bug; entries larger than the floor are checked truly relatively.
// Keep f of order one (sum(w * y) with w ~ U(-1, 1) is) and sample x away from kinks (ReLU at 0,
// max-pooling ties).
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "../core/core.hpp"
#include "../layers/layer.hpp"
#include "../layers/builtin.hpp"

namespace keras::testing {

struct GradCheckOptions {
  double eps = 1e-5;     ///< step (relative to max(1, |x_i|))
  double floor = 1e-4;   ///< denominator floor, scaled by max(1, |f(x)|)
  Index max_checks = 0;  ///< check at most this many evenly spaced entries (0: all)
};

struct GradCheckResult {
  double max_rel_error = 0;  ///< max_i err_i as defined above
  Index worst_index = -1;    ///< flat index of the worst entry
  double analytic = 0;       ///< analytic gradient at worst_index
  double numeric = 0;        ///< numeric gradient at worst_index
  Index checked = 0;         ///< number of entries checked
  std::string str() const {
    std::ostringstream os;
    os.precision(12);
    os << "max_rel_error " << max_rel_error << " at index " << worst_index << " (analytic " << analytic << ", numeric "
       << numeric << ", " << checked << " entries checked)";
    return os.str();
  }
};

/// Compares `analytic` = d f / d x with central differences of f (which recomputes the scalar
/// from the CURRENT x; x is perturbed in place and restored bit for bit).
template <class F>
GradCheckResult check_gradient(F&& f, Tensor<double>& x, const Tensor<double>& analytic, GradCheckOptions opt = {}) {
  if (analytic.shape() != x.shape())
    throw ShapeError("check_gradient: analytic gradient shape " + shape_str(analytic.shape()) +
                     " differs from input shape " + shape_str(x.shape()));
  GradCheckResult r;
  const double f0 = static_cast<double>(f());
  const double floor = opt.floor * std::max(1.0, std::abs(f0));
  const Index n = x.size();
  const Index stride = (opt.max_checks > 0 && n > opt.max_checks) ? (n + opt.max_checks - 1) / opt.max_checks : 1;
  for (Index i = 0; i < n; i += stride) {
    const double orig = x[i];
    const double h = opt.eps * std::max(1.0, std::abs(orig));
    x[i] = orig + h;
    const double fp = static_cast<double>(f());
    x[i] = orig - h;
    const double fm = static_cast<double>(f());
    x[i] = orig;
    // The step actually taken is (orig + h) - (orig - h) in floating point.
    const double numeric = (fp - fm) / ((orig + h) - (orig - h));
    const double a = analytic[i];
    const double err = std::abs(a - numeric) / std::max(std::abs(a) + std::abs(numeric), floor);
    ++r.checked;
    if (err > r.max_rel_error || r.worst_index < 0 || std::isnan(err)) {
      r.max_rel_error = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
      r.worst_index = i;
      r.analytic = a;
      r.numeric = numeric;
      if (std::isnan(err)) break;
    }
  }
  return r;
}

/// max_i err_i (see the definition at the top of this file).
template <class F>
double max_rel_error(F&& f, Tensor<double>& x, const Tensor<double>& analytic, double eps = 1e-5, double floor = 1e-4) {
  return check_gradient(f, x, analytic, GradCheckOptions{eps, floor, 0}).max_rel_error;
}

/// max |a - b| / max(max |a|, max |b|, 1e-300): how far apart two tensors of the same shape are,
/// relative to their scale (for comparing two computations, not for gradient checks).
template <class T>
double max_rel_diff(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 1e-300;
  for (Index i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (std::isnan(x) != std::isnan(y)) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(x - y));
    scale = std::max({scale, std::abs(x), std::abs(y)});
  }
  return diff / scale;
}

/// What check_layer verifies, and how strictly.
struct LayerCheckOptions {
  bool training = false;            ///< forward in training mode (BatchNormalization batch statistics)
  std::uint64_t seed = 42;          ///< for w, the variables and the gradient prefills
  double tolerance = 1e-6;          ///< on the gradient error (formula at the top of this file)
  bool randomize_variables = true;  ///< U(+-[0.5, 1.5]) weights: zeros/ones initialisers hide errors
  bool gradients = true;            ///< 1: numeric gradient check
  bool accumulate = true;           ///< 2: backward adds into variable gradients
  bool all_written = true;          ///< 3: NaN prefill of outputs and input gradients
  bool threads = true;              ///< 4: 1 vs 2 threads
  /// 4: 0 demands bit-identical results (what kerascpp promises for its deterministic reductions,
  /// e.g. BatchNormalization); > 0 allows this max relative difference (for kernels whose
  /// per-thread partial sums are added in thread order, such as Conv2D's dkernel/dbias).
  double thread_tolerance = 0;
  bool inference = true;  ///< 5: InferenceKernel::forward_inference == forward(training = false)
  bool config = true;     ///< 6: from_config(get_config()) round trip
  GradCheckOptions grad;  ///< eps, floor, max_checks of the numeric check
};

struct LayerCheckReport {
  std::string layer;                                            ///< "name (ClassName)"
  std::vector<std::pair<std::string, double>> gradient_errors;  ///< "d/d input 0", "d/d kernel" -> error
  std::vector<std::string> failures;                            ///< one line per failed check
  std::vector<std::string> skipped;                             ///< checks that could not run, and why
  bool ok() const { return failures.empty(); }
  double max_gradient_error() const {
    double m = 0;
    for (auto& e : gradient_errors) m = std::max(m, e.second);
    return m;
  }
  std::string str() const {
    std::ostringstream os;
    os << "layer check of " << layer << ": " << (ok() ? "ok" : std::to_string(failures.size()) + " failure(s)") << "\n";
    for (auto& f : failures) os << "  FAIL " << f << "\n";
    for (auto& [k, e] : gradient_errors) os << "  gradient " << k << ": error " << e << "\n";
    for (auto& s : skipped) os << "  skipped " << s << "\n";
    return os.str();
  }
};

namespace detail {
inline Tensor<double> random_like(const Shape& s, Random& rng, double lo = -1, double hi = 1) {
  Tensor<double> t(s);
  for (auto& v : t) v = rng.uniform(lo, hi);
  return t;
}
inline bool bit_equal(const Tensor<double>& a, const Tensor<double>& b) {
  return a.shape() == b.shape() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0);
}
inline Index count_nan(const Tensor<double>& t) {
  Index n = 0;
  for (double v : t) n += std::isnan(v);
  return n;
}
/// Restores the thread count when it goes out of scope.
struct ThreadsGuard {
  int saved = get_num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};
}  // namespace detail

namespace detail {
/// One run of check_layer: the layer, its inputs and what the checks share (the output shape,
/// the loss weights w, the gradients from a zero start). One method per check, in the order
/// check_layer runs them (the random draws depend on that order). A template only so that a
/// project can compile it once (extern_templates.hpp declares it extern when that header comes first;
/// KERASCPP_INSTANTIATE_TESTING() below defines it): it is most of the code of a layer test.
template <class Unused = void>
class LayerCheckerT {
 public:
  using L = layers::Layer<double>;
  LayerCheckerT(L& layer, std::vector<Tensor<double>> inputs, const LayerCheckOptions& opt)
      : layer_(layer), inputs_(std::move(inputs)), opt_(opt), rng_(opt.seed) {
    r_.layer = "'" + layer.name() + "' (" + layer.class_name() + ")";
  }

  LayerCheckReport run() {
    ThreadsGuard threads_guard;
    try {
      set_up();
      check_forward_and_backward();
      if (opt_.accumulate && !vars_.empty()) check_accumulates();
      if (opt_.gradients) check_gradients();
      if (opt_.threads) check_threads();
      if (opt_.inference) check_inference();
      if (opt_.config) check_config();
    } catch (const Error& e) {
      fail(std::string("threw keras::Error: ") + e.what());
    }
    return r_;
  }

 private:
  static constexpr double nan_ = std::numeric_limits<double>::quiet_NaN();
  void fail(const std::string& what) { r_.failures.push_back(what); }

  // Builds the layer for the inputs' shapes (batch unknown), randomises its variables and finds
  // the output shape.
  void set_up() {
    std::vector<Shape> shapes;
    for (auto& x : inputs_) {
      Shape s = x.shape();
      if (!s.empty()) s[0] = -1;
      shapes.push_back(s);
    }
    if (!layer_.built()) layer_.build(shapes);
    // Trainable weights get random signs; statistics (non-trainable, such as a moving variance)
    // stay positive.
    if (opt_.randomize_variables)
      for (auto* v : layer_.variables())
        for (auto& e : v->value) e = rng_.uniform(0.5, 1.5) * (v->trainable && rng_.uniform() < 0.5 ? -1 : 1);
    for (auto& x : inputs_) in_.push_back(&x);
    std::vector<Shape> actual;
    for (auto& x : inputs_) actual.push_back(x.shape());
    out_shape_ = layer_.compute_output_shape(actual);
    // (a layer may report the batch as unknown, as InputLayer does: the batch is the input's)
    if (!out_shape_.empty() && out_shape_[0] < 0 && !inputs_.empty() && inputs_[0].rank() > 0)
      out_shape_[0] = inputs_[0].dim(0);
    for (Index d : out_shape_)
      if (d < 0)
        throw ValueError("compute_output_shape(" + shape_str(actual.empty() ? Shape{} : actual[0]) +
                         ") leaves a dimension unknown: " + shape_str(out_shape_));
  }

  // forward, into a NaN-filled buffer of the right size
  void run_forward(Tensor<double>& y) {
    y.resize(out_shape_);
    y.setConstant(nan_);
    layer_.forward(in_, y, opt_.training);
  }

  // backward: input gradients prefilled with NaN, variable gradients with `prefill` (or zeros)
  std::vector<Tensor<double>> run_backward(std::vector<Tensor<double>>& dx,
                                           const std::vector<Tensor<double>>* prefill) {
    Tensor<double> yy;
    run_forward(yy);
    dx.assign(inputs_.size(), Tensor<double>());
    L::GradInputs dxp;
    for (std::size_t k = 0; k < inputs_.size(); ++k) {
      dx[k].resize(inputs_[k].shape());
      dx[k].setConstant(nan_);
      dxp.push_back(&dx[k]);
    }
    for (std::size_t v = 0; v < vars_.size(); ++v) {
      if (prefill)
        vars_[v]->grad = (*prefill)[v];
      else
        vars_[v]->grad.setZero();
    }
    layer_.backward(in_, yy, w_, dxp);
    std::vector<Tensor<double>> g;
    for (auto* v : vars_) g.push_back(v->grad);
    return g;
  }

  // 3. shapes, and every output and input-gradient element written (NaN prefill)
  void check_forward_and_backward() {
    Tensor<double> y;
    run_forward(y);
    if (y.shape() != out_shape_)
      fail("forward wrote shape " + shape_str(y.shape()) + ", compute_output_shape says " + shape_str(out_shape_));
    if (opt_.all_written && count_nan(y))
      fail("forward left " + std::to_string(count_nan(y)) + " of " + std::to_string(y.size()) +
           " output elements unwritten (NaN prefill)");
    w_ = random_like(y.shape(), rng_);
    vars_ = layer_.trainable_variables();
    g0_ = run_backward(dx_, nullptr);
    for (std::size_t k = 0; k < inputs_.size(); ++k) {
      if (dx_[k].shape() != inputs_[k].shape())
        fail("backward wrote d/d input " + std::to_string(k) + " of shape " + shape_str(dx_[k].shape()) +
             " for an input of shape " + shape_str(inputs_[k].shape()));
      else if (opt_.all_written && count_nan(dx_[k]))
        fail("backward left " + std::to_string(count_nan(dx_[k])) + " of " + std::to_string(dx_[k].size()) +
             " elements of d/d input " + std::to_string(k) + " unwritten (NaN prefill)");
    }
  }

  // 2. backward adds into variable gradients
  void check_accumulates() {
    std::vector<Tensor<double>> pre;
    for (auto* v : vars_) pre.push_back(random_like(v->grad.shape(), rng_, 0.5, 1.5));
    std::vector<Tensor<double>> dx2;
    auto g1 = run_backward(dx2, &pre);
    for (std::size_t v = 0; v < vars_.size(); ++v) {
      Tensor<double> added = g1[v];
      for (Index i = 0; i < added.size(); ++i) added[i] -= pre[v][i];
      if (max_rel_diff(added, g0_[v]) > 1e-9)
        fail("backward does not add into the gradient of '" + vars_[v]->name +
             "' (prefilled with non-zero values, it added " + std::to_string(max_rel_diff(added, g0_[v])) +
             " relative away from the gradient it gives from zero: an assignment?)");
    }
  }

  // 1. numeric gradients of sum(w * y) against the analytic ones
  void check_gradients() {
    auto loss = [&]() {
      Tensor<double> yy;
      layer_.forward(in_, yy, opt_.training);
      double s = 0;
      for (Index i = 0; i < yy.size(); ++i) s += w_[i] * yy[i];
      return s;
    };
    auto record = [&](const std::string& what, const GradCheckResult& res) {
      r_.gradient_errors.push_back({what, res.max_rel_error});
      if (!(res.max_rel_error <= opt_.tolerance)) fail("gradient " + what + ": " + res.str());
    };
    for (std::size_t k = 0; k < inputs_.size(); ++k) {
      if (dx_[k].shape() != inputs_[k].shape()) continue;
      record("d/d input " + std::to_string(k), check_gradient(loss, inputs_[k], dx_[k], opt_.grad));
    }
    for (std::size_t v = 0; v < vars_.size(); ++v)
      record("d/d " + vars_[v]->name, check_gradient(loss, vars_[v]->value, g0_[v], opt_.grad));
  }

  // 4. the same results on 1 and 2 threads
  void check_threads() {
    if (opt_.training && !layer_.cacheable() && layer_.class_name() == "Dropout") {
      r_.skipped.push_back("thread check: Dropout draws a new mask on every training forward");
      return;
    }
    set_num_threads(1);
    Tensor<double> y1;
    run_forward(y1);
    std::vector<Tensor<double>> dx1;
    auto gv1 = run_backward(dx1, nullptr);
    set_num_threads(2);
    Tensor<double> y2;
    run_forward(y2);
    std::vector<Tensor<double>> dx2;
    auto gv2 = run_backward(dx2, nullptr);
    const std::string how = opt_.thread_tolerance > 0 ? " by more than " + std::to_string(opt_.thread_tolerance)
                                                      : std::string(" (not bit-identical)");
    auto compare = [&](const std::string& what, const Tensor<double>& a, const Tensor<double>& b) {
      const bool same = opt_.thread_tolerance > 0 ? max_rel_diff(a, b) <= opt_.thread_tolerance : bit_equal(a, b);
      if (!same)
        fail(what + " differs between 1 and 2 threads" + how + ": max relative difference " +
             std::to_string(max_rel_diff(a, b)));
    };
    compare("forward", y1, y2);
    for (std::size_t k = 0; k < dx1.size(); ++k) compare("d/d input " + std::to_string(k), dx1[k], dx2[k]);
    for (std::size_t v = 0; v < gv1.size(); ++v) compare("the gradient of '" + vars_[v]->name + "'", gv1[v], gv2[v]);
  }

  // 5. InferenceKernel::forward_inference == forward(training = false)
  void check_inference() {
    Tensor<double> yf, yi;
    yf.resize(out_shape_);
    yf.setConstant(nan_);
    layer_.forward(in_, yf, false);
    yi.resize(out_shape_);
    yi.setConstant(nan_);
    if (auto* kernel = dynamic_cast<layers::InferenceKernel<double>*>(&layer_))
      kernel->forward_inference(in_, yi);
    else
      layer_.forward(in_, yi, false);  // no separate kernel: the engine runs forward(.., false)
    if (max_rel_diff(yf, yi) > 1e-12)
      fail("forward_inference differs from forward(training = false) (max relative difference " +
           std::to_string(max_rel_diff(yf, yi)) + ")");
  }

  // 6. from_config(get_config()) gives the same config, variables and outputs
  void check_config() {
    auto& reg = layers::registry<double>();
    if (!reg.contains(layer_.class_name())) {
      r_.skipped.push_back("config round trip: class '" + layer_.class_name() +
                           "' is not registered (KERAS_REGISTER_LAYER)");
      return;
    }
    const json c1 = layer_.get_config();
    auto again = reg.create(layer_.class_name(), c1);
    const json c2 = again->get_config();
    if (c1 != c2)
      fail("from_config(get_config()) gives a different config:\n    before " + c1.dump() + "\n    after  " +
           c2.dump());
    again->build(layer_.input_shapes());
    auto va = layer_.variables(), vb = again->variables();
    if (va.size() != vb.size()) {
      fail("from_config(get_config()) rebuilt " + std::to_string(vb.size()) + " variables, the layer has " +
           std::to_string(va.size()));
      return;
    }
    bool same = true;
    for (std::size_t v = 0; v < va.size(); ++v) {
      if (va[v]->name != vb[v]->name || va[v]->value.shape() != vb[v]->value.shape()) {
        fail("from_config(get_config()) rebuilt variable '" + vb[v]->name + "' " + shape_str(vb[v]->value.shape()) +
             " where the layer has '" + va[v]->name + "' " + shape_str(va[v]->value.shape()));
        same = false;
      } else {
        vb[v]->value = va[v]->value;
      }
    }
    if (!same) return;
    Tensor<double> ya, yb;
    layer_.forward(in_, ya, false);
    again->forward(in_, yb, false);
    if (!bit_equal(ya, yb))
      fail("the layer rebuilt from its config, given the same weights, computes a different output");
  }

  L& layer_;
  std::vector<Tensor<double>> inputs_;
  const LayerCheckOptions& opt_;
  Random rng_;
  LayerCheckReport r_;
  L::Inputs in_;
  Shape out_shape_;
  Tensor<double> w_;                     ///< the loss is sum(w * y)
  std::vector<Variable<double>*> vars_;  ///< the trainable variables
  std::vector<Tensor<double>> dx_, g0_;  ///< input and variable gradients from a zero start
};
using LayerChecker = LayerCheckerT<>;
// The checker compiled once per program (see extern_templates.hpp): one .cpp says
// KERASCPP_INSTANTIATE_TESTING() at namespace scope, the others see this declaration.
#ifdef KERASCPP_EXTERN_TEMPLATES
extern template class LayerCheckerT<void>;
#endif
}  // namespace detail
#define KERASCPP_INSTANTIATE_TESTING() template class ::keras::testing::detail::LayerCheckerT<void>;

/// Runs the checks listed at the top of this file on `layer` (built here for the inputs' shapes
/// with an unknown batch, unless already built) with the given inputs (batch dimension first).
/// Never throws for a failed check: every problem, including a keras::Error thrown by the layer,
/// is a line of the report.
inline LayerCheckReport check_layer(layers::Layer<double>& layer, std::vector<Tensor<double>> inputs,
                                    LayerCheckOptions opt = {}) {
  return detail::LayerChecker(layer, std::move(inputs), opt).run();
}

/// check_layer, throwing a keras::ValueError with the report when a check fails.
inline LayerCheckReport require_layer_ok(layers::Layer<double>& layer, std::vector<Tensor<double>> inputs,
                                         LayerCheckOptions opt = {}) {
  auto r = check_layer(layer, std::move(inputs), opt);
  if (!r.ok()) throw ValueError(r.str());
  return r;
}

}  // namespace keras::testing
