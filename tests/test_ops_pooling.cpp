// Pooling and ZeroPadding2D kernels against naive references; gradient checks by central differences.
#include <catch2/catch.hpp>
#include <keras/core/core.hpp>
#include <keras/ops/padding.hpp>
#include <keras/ops/pooling.hpp>

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

using keras::Index;
using keras::Tensor;
namespace ops = keras::ops;

namespace {

Tensor<double> random_tensor(const keras::Shape& s, keras::Random& rng) {
  Tensor<double> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = rng.uniform(-1.0, 1.0);
  return t;
}

/// Distinct values (no ties), randomly permuted: max-pool gradients are then well defined.
Tensor<double> distinct_tensor(const keras::Shape& s, keras::Random& rng) {
  Tensor<double> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = double(i) / double(t.size()) - 0.5;
  for (Index i = t.size() - 1; i > 0; --i) std::swap(t[i], t[static_cast<Index>(rng.index(i + 1))]);
  return t;
}

double max_abs_diff(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Independent reference: explicit TF padding arithmetic, padded cells skipped.
Tensor<double> ref_pool(const Tensor<double>& x, Index ph, Index pw, Index sh, Index sw, const std::string& pad,
                        bool is_max) {
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Index oh, ow, pt = 0, pl = 0;
  if (pad == "same") {
    oh = (H + sh - 1) / sh;
    ow = (W + sw - 1) / sw;
    pt = std::max<Index>((oh - 1) * sh + ph - H, 0) / 2;
    pl = std::max<Index>((ow - 1) * sw + pw - W, 0) / 2;
  } else {
    oh = (H - ph) / sh + 1;
    ow = (W - pw) / sw + 1;
  }
  Tensor<double> y({N, oh, ow, C}, 0.0);
  for (Index n = 0; n < N; ++n)
    for (Index i = 0; i < oh; ++i)
      for (Index j = 0; j < ow; ++j)
        for (Index c = 0; c < C; ++c) {
          double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
          int cnt = 0;
          for (Index a = 0; a < ph; ++a)
            for (Index b = 0; b < pw; ++b) {
              Index ih = i * sh - pt + a, iw = j * sw - pl + b;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              double v = x.at({n, ih, iw, c});
              acc = is_max ? std::max(acc, v) : acc + v;
              ++cnt;
            }
          y.at({n, i, j, c}) = is_max ? acc : acc / cnt;
        }
  return y;
}

struct PCase {
  Index n, h, w, c, ph, pw, sh, sw;
  const char* pad;
};

std::vector<PCase> pool_cases() {
  std::vector<PCase> cs;
  const Index pools[][2] = {{2, 2}, {3, 3}, {2, 3}, {1, 1}};
  const Index strides[][2] = {{0, 0}, {1, 1}, {2, 2}, {2, 1}};  // 0 = pool size
  const Index sizes[][2] = {{7, 7}, {8, 8}, {5, 6}};
  int i = 0;
  for (auto& p : pools)
    for (auto& s : strides)
      for (auto& sz : sizes)
        for (const char* pad : {"same", "valid"}) {
          ++i;
          cs.push_back({(i % 2) ? 1 : 3, sz[0], sz[1], 1 + (i * 7) % 19, p[0], p[1], s[0], s[1], pad});
        }
  cs.push_back({2, 9, 9, 40, 3, 3, 2, 2, "same"});
  cs.push_back({1, 12, 10, 70, 2, 2, 0, 0, "valid"});
  return cs;
}

std::string describe(const PCase& c) {
  std::ostringstream os;
  os << "N" << c.n << " " << c.h << "x" << c.w << "x" << c.c << " pool " << c.ph << "x" << c.pw << " s" << c.sh << ","
     << c.sw << " " << c.pad;
  return os.str();
}

template <class Fwd>
double check_grad(Tensor<double>& p, const Tensor<double>& analytic, Fwd&& fwd, const Tensor<double>& r) {
  const double h = 1e-6;
  double worst = 0;
  auto loss = [&] {
    Tensor<double> y = fwd();
    double s = 0;
    for (Index i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  for (Index i = 0; i < p.size(); ++i) {
    const double v = p[i];
    p[i] = v + h;
    const double lp = loss();
    p[i] = v - h;
    const double lm = loss();
    p[i] = v;
    const double num = (lp - lm) / (2 * h);
    worst = std::max(worst, std::abs(num - analytic[i]) / std::max({std::abs(num), std::abs(analytic[i]), 1e-2}));
  }
  return worst;
}

}  // namespace

TEST_CASE("pool_geometry: default strides and TF same padding", "[ops][pooling]") {
  auto g = ops::pool_geometry(8, 8, 3, 2, 2, 0, 0, "same");
  CHECK((g.stride_h == 2 && g.stride_w == 2 && g.out_h == 4 && !g.padded()));
  g = ops::pool_geometry(8, 8, 3, 3, 3, 2, 2, "same");
  CHECK((g.out_h == 4 && g.pad_top == 0 && g.pad_bottom == 1));
  g = ops::pool_geometry(7, 7, 3, 2, 2, 0, 0, "valid");
  CHECK(g.out_h == 3);
  CHECK_THROWS_AS(ops::pool_geometry(1, 1, 3, 2, 2, 0, 0, "valid"), keras::ValueError);
  CHECK_THROWS_AS(ops::pool_geometry(4, 4, 3, 2, 2, 0, 0, "causal"), keras::ValueError);
}

TEST_CASE("MaxPooling2D / AveragePooling2D forward match a naive reference", "[ops][pooling]") {
  keras::Random rng(1);
  for (const PCase& c : pool_cases()) {
    INFO(describe(c));
    auto x = random_tensor({c.n, c.h, c.w, c.c}, rng);
    auto g = ops::pool_geometry(c.h, c.w, c.c, c.ph, c.pw, c.sh, c.sw, c.pad);
    const Index sh = g.stride_h, sw = g.stride_w;
    Tensor<double> y;
    ops::max_pool2d_forward(g, x, y);
    CHECK(max_abs_diff(y, ref_pool(x, c.ph, c.pw, sh, sw, c.pad, true)) == 0.0);
    auto ref = ref_pool(x, c.ph, c.pw, sh, sw, c.pad, false);
    ops::avg_pool2d_forward(g, x, y);
    CHECK(max_abs_diff(y, ref) < 1e-14);
    Tensor<float> yf;
    ops::avg_pool2d_forward(g, x.cast<float>(), yf);
    CHECK(max_abs_diff(yf.cast<double>(), ref) < 1e-5);
  }
}

TEST_CASE("TF average pooling with 'same' divides by the non-padded count", "[ops][pooling]") {
  // 1x3x3x1 with values 1..9, pool 2x2 stride 2 same: pads 0 before, 1 after
  Tensor<float> x({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto g = ops::pool_geometry(3, 3, 1, 2, 2, 2, 2, "same");
  Tensor<float> y;
  ops::avg_pool2d_forward(g, x, y);
  REQUIRE(y.shape() == keras::Shape{1, 2, 2, 1});
  CHECK(y[0] == Approx(3.0));  // (1+2+4+5)/4
  CHECK(y[1] == Approx(4.5));  // (3+6)/2
  CHECK(y[2] == Approx(7.5));  // (7+8)/2
  CHECK(y[3] == Approx(9.0));  // 9/1
  ops::max_pool2d_forward(g, x, y);
  CHECK(y[0] == 5);
  CHECK(y[1] == 6);
  CHECK(y[2] == 8);
  CHECK(y[3] == 9);
}

TEST_CASE("Pooling gradients match central differences", "[ops][pooling][grad]") {
  keras::Random rng(2);
  const std::vector<PCase> cases = {
      {2, 5, 5, 3, 2, 2, 0, 0, "valid"}, {1, 6, 6, 2, 3, 3, 2, 2, "same"},  {2, 7, 6, 3, 2, 3, 2, 1, "same"},
      {1, 7, 7, 2, 3, 3, 1, 1, "same"},  {2, 5, 4, 3, 3, 2, 1, 2, "valid"}, {1, 6, 7, 20, 3, 3, 2, 2, "same"},
      {1, 4, 4, 9, 1, 1, 2, 2, "valid"},
  };
  for (const PCase& c : cases) {
    INFO(describe(c));
    auto g = ops::pool_geometry(c.h, c.w, c.c, c.ph, c.pw, c.sh, c.sw, c.pad);
    auto x = distinct_tensor({c.n, c.h, c.w, c.c}, rng);
    auto r = random_tensor({c.n, g.out_h, g.out_w, c.c}, rng);
    Tensor<double> dx;
    ops::max_pool2d_backward(g, x, r, dx);
    CHECK(check_grad(
              x, dx,
              [&] {
                Tensor<double> y;
                ops::max_pool2d_forward(g, x, y);
                return y;
              },
              r) <= 1e-6);
    ops::avg_pool2d_backward(g, r, dx);
    CHECK(check_grad(
              x, dx,
              [&] {
                Tensor<double> y;
                ops::avg_pool2d_forward(g, x, y);
                return y;
              },
              r) <= 1e-6);
  }
}

TEST_CASE("Max pooling gradient goes to the first maximum on ties", "[ops][pooling]") {
  Tensor<double> x({1, 2, 2, 1}, {1, 3, 3, 3});
  auto g = ops::pool_geometry(2, 2, 1, 2, 2, 0, 0, "valid");
  Tensor<double> dy({1, 1, 1, 1}, {1.0}), dx;
  ops::max_pool2d_backward(g, x, dy, dx);
  CHECK(dx[0] == 0);
  CHECK(dx[1] == 1);
  CHECK(dx[2] == 0);
  CHECK(dx[3] == 0);
}

TEST_CASE("Max pooling backward is the same for 1 and 2 threads and any batch", "[ops][pooling]") {
  keras::Random rng(4);
  const int saved = keras::get_num_threads();
  for (Index n : {1, 3}) {
    auto x = distinct_tensor({n, 33, 31, 37}, rng);
    auto g = ops::pool_geometry(33, 31, 37, 3, 3, 2, 2, "same");
    auto r = random_tensor({n, g.out_h, g.out_w, 37}, rng);
    Tensor<double> dx1, dx2;
    keras::set_num_threads(1);
    ops::max_pool2d_backward(g, x, r, dx1);
    keras::set_num_threads(2);
    ops::max_pool2d_backward(g, x, r, dx2);
    CHECK(max_abs_diff(dx1, dx2) == 0.0);
    ops::avg_pool2d_backward(g, r, dx2);
    keras::set_num_threads(1);
    ops::avg_pool2d_backward(g, r, dx1);
    CHECK(max_abs_diff(dx1, dx2) == 0.0);
  }
  keras::set_num_threads(saved);
}

TEST_CASE("GlobalAveragePooling2D forward and backward", "[ops][pooling]") {
  keras::Random rng(5);
  auto x = random_tensor({3, 4, 5, 6}, rng);
  Tensor<double> y;
  ops::global_avg_pool2d_forward(x, y);
  REQUIRE(y.shape() == keras::Shape{3, 6});
  for (Index n = 0; n < 3; ++n)
    for (Index c = 0; c < 6; ++c) {
      double s = 0;
      for (Index i = 0; i < 4; ++i)
        for (Index j = 0; j < 5; ++j) s += x.at({n, i, j, c});
      CHECK(y.at({n, c}) == Approx(s / 20).margin(1e-14));
    }
  auto r = random_tensor({3, 6}, rng);
  Tensor<double> dx;
  ops::global_avg_pool2d_backward(r, x.shape(), dx);
  CHECK(check_grad(
            x, dx,
            [&] {
              Tensor<double> yy;
              ops::global_avg_pool2d_forward(x, yy);
              return yy;
            },
            r) <= 1e-6);
  CHECK_THROWS_AS(ops::global_avg_pool2d_backward(r, keras::Shape{3, 4, 5, 7}, dx), keras::ShapeError);
}

TEST_CASE("ZeroPadding2D forward and backward", "[ops][padding]") {
  keras::Random rng(6);
  auto x = random_tensor({2, 3, 4, 5}, rng);
  Tensor<double> y;
  ops::zero_padding2d_forward(x, 0, 1, 2, 1, y);
  REQUIRE(y.shape() == keras::Shape{2, 4, 7, 5});
  for (Index n = 0; n < 2; ++n)
    for (Index i = 0; i < 4; ++i)
      for (Index j = 0; j < 7; ++j)
        for (Index c = 0; c < 5; ++c) {
          const bool inside = i < 3 && j >= 2 && j < 6;
          CHECK(y.at({n, i, j, c}) == (inside ? x.at({n, i, j - 2, c}) : 0.0));
        }
  auto r = random_tensor(y.shape(), rng);
  Tensor<double> dx;
  ops::zero_padding2d_backward(r, 0, 1, 2, 1, dx);
  REQUIRE(dx.shape() == x.shape());
  CHECK(check_grad(
            x, dx,
            [&] {
              Tensor<double> yy;
              ops::zero_padding2d_forward(x, 0, 1, 2, 1, yy);
              return yy;
            },
            r) <= 1e-6);
  CHECK_THROWS_AS(ops::zero_padding2d_forward(x, -1, 0, 0, 0, y), keras::ValueError);
}
