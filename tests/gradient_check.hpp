// Central-difference gradient checker, shared by the tests (activations, losses, layers).
//
// Usage (double precision only):
//   Tensor<double> x = ...;                       // the input whose gradient is checked
//   Tensor<double> analytic = ...;                // d f / d x from the code under test, same shape as x
//   auto f = [&] { return loss_of(x); };          // recomputes the scalar from the CURRENT x
//   REQUIRE(keras::testing::max_rel_error(f, x, analytic) <= 1e-6);
//
// f() is called with x perturbed in place (x[i] += h, x[i] -= h); x is restored bit-for-bit afterwards.
//
// Definition of the error (documented because "relative error" has several definitions):
//   numeric_i = (f(x + h e_i) - f(x - h e_i)) / (2 h),   h = eps * max(1, |x_i|)
//   err_i     = |analytic_i - numeric_i| / max(|analytic_i| + |numeric_i|, floor * max(1, |f(x)|))
//   result    = max_i err_i
// The denominator |a| + |n| is symmetric and makes err_i <= 1 whenever the floor is not active. The floor
// exists because a central difference has an absolute noise of roughly
//   eps_mach * |f| / h  (rounding)  +  h^2 |f'''| / 6  (truncation)  ~  1e-11 .. 1e-10 * max(1, |f|)
// for h = 1e-5 in double, so entries whose true gradient is (near) zero cannot be checked relatively.
// With floor = 1e-4 such entries are checked absolutely to tol * 1e-4 * max(1, |f|) (1e-10 for tol 1e-6),
// far below any real gradient bug; entries larger than the floor are checked truly relatively.
// Keep f of order one (e.g. a loss, or sum(w * y) with w ~ U(-1, 1)) and sample x away from kinks.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include <keras/core/tensor.hpp>

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
    os << "max_rel_error " << max_rel_error << " at index " << worst_index << " (analytic " << analytic
       << ", numeric " << numeric << ", " << checked << " entries checked)";
    return os.str();
  }
};

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

}  // namespace keras::testing
