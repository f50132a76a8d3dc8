// Conv2D / DepthwiseConv2D kernels against independent naive direct-loop references, gradient
// checks by central differences, TF's same-padding rule, float vs double.
#include <catch2/catch.hpp>
#include <keras/core/core.hpp>
#include <keras/ops/conv2d.hpp>
#include <keras/ops/depthwise_conv2d.hpp>
#include <keras/ops/padding.hpp>

#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

using keras::Index;
using keras::Tensor;
namespace ops = keras::ops;

namespace {

template <class T>
Tensor<T> random_tensor(const keras::Shape& s, keras::Random& rng) {
  Tensor<T> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<T>(rng.uniform(-1.0, 1.0));
  return t;
}

// ---- independent references (double, direct loops, explicit TF padding arithmetic) ----------

struct RefGeom {
  Index oh, ow, pt, pl;
};

RefGeom ref_geom(Index h, Index w, Index kh, Index kw, Index sh, Index sw, const std::string& pad, Index dh = 1,
                 Index dw = 1) {
  RefGeom r{};
  const Index ekh = (kh - 1) * dh + 1, ekw = (kw - 1) * dw + 1;
  if (pad == "same") {
    r.oh = (h + sh - 1) / sh;
    r.ow = (w + sw - 1) / sw;
    r.pt = std::max<Index>((r.oh - 1) * sh + ekh - h, 0) / 2;
    r.pl = std::max<Index>((r.ow - 1) * sw + ekw - w, 0) / 2;
  } else {
    r.oh = (h - ekh) / sh + 1;
    r.ow = (w - ekw) / sw + 1;
    r.pt = r.pl = 0;
  }
  return r;
}

Tensor<double> ref_conv(const Tensor<double>& x, const Tensor<double>& k, const Tensor<double>* b, Index sh, Index sw,
                        const std::string& pad, Index dh = 1, Index dw = 1) {
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const Index KH = k.dim(0), KW = k.dim(1), F = k.dim(3);
  RefGeom g = ref_geom(H, W, KH, KW, sh, sw, pad, dh, dw);
  Tensor<double> y({N, g.oh, g.ow, F}, 0.0);
  for (Index n = 0; n < N; ++n)
    for (Index oh = 0; oh < g.oh; ++oh)
      for (Index ow = 0; ow < g.ow; ++ow)
        for (Index f = 0; f < F; ++f) {
          double s = b ? (*b)[f] : 0.0;
          for (Index i = 0; i < KH; ++i)
            for (Index j = 0; j < KW; ++j) {
              Index ih = oh * sh - g.pt + i * dh, iw = ow * sw - g.pl + j * dw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (Index c = 0; c < C; ++c) s += x.at({n, ih, iw, c}) * k.at({i, j, c, f});
            }
          y.at({n, oh, ow, f}) = s;
        }
  return y;
}

Tensor<double> ref_depthwise(const Tensor<double>& x, const Tensor<double>& k, const Tensor<double>* b, Index sh,
                             Index sw, const std::string& pad, Index dh = 1, Index dw = 1) {
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const Index KH = k.dim(0), KW = k.dim(1), M = k.dim(3);
  RefGeom g = ref_geom(H, W, KH, KW, sh, sw, pad, dh, dw);
  Tensor<double> y({N, g.oh, g.ow, C * M}, 0.0);
  for (Index n = 0; n < N; ++n)
    for (Index oh = 0; oh < g.oh; ++oh)
      for (Index ow = 0; ow < g.ow; ++ow)
        for (Index c = 0; c < C; ++c)
          for (Index m = 0; m < M; ++m) {
            double s = b ? (*b)[c * M + m] : 0.0;
            for (Index i = 0; i < KH; ++i)
              for (Index j = 0; j < KW; ++j) {
                Index ih = oh * sh - g.pt + i * dh, iw = ow * sw - g.pl + j * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x.at({n, ih, iw, c}) * k.at({i, j, c, m});
              }
            y.at({n, oh, ow, c * M + m}) = s;
          }
  return y;
}

double max_abs_diff(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

double max_abs(const Tensor<double>& a) {
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i]));
  return m;
}

struct Case {
  Index n, h, w, c, kh, kw, sh, sw;
  const char* pad;
  Index out;  // filters or depth multiplier
  Index dh = 1, dw = 1;
};

std::vector<Case> forward_cases() {
  std::vector<Case> cs;
  const Index ks[][2] = {{1, 1}, {3, 3}, {5, 5}, {2, 3}};
  const Index ss[][2] = {{1, 1}, {2, 2}, {2, 1}};
  const Index sizes[][2] = {{7, 7}, {8, 8}, {6, 9}, {5, 4}};
  const char* pads[] = {"same", "valid"};
  int i = 0;
  for (auto& k : ks)
    for (auto& s : ss)
      for (auto& sz : sizes)
        for (const char* p : pads) {
          ++i;
          Index n = (i % 2) ? 1 : 3;
          Index c = 1 + (i * 5) % 7;    // 1..7
          Index out = 1 + (i * 3) % 9;  // 1..9
          if (std::string(p) == "valid" && (sz[0] < k[0] || sz[1] < k[1])) continue;
          cs.push_back({n, sz[0], sz[1], c, k[0], k[1], s[0], s[1], p, out});
        }
  // dilation, and larger channel counts
  cs.push_back({2, 9, 8, 3, 3, 3, 1, 1, "same", 4, 2, 2});
  cs.push_back({1, 9, 10, 2, 3, 2, 1, 1, "valid", 3, 2, 3});
  cs.push_back({2, 12, 12, 24, 3, 3, 2, 2, "same", 40});
  cs.push_back({3, 10, 10, 32, 1, 1, 1, 1, "same", 48});
  cs.push_back({2, 11, 11, 17, 1, 1, 2, 2, "valid", 19});
  // few input channels (the direct path, no im2col): filter packets, leftovers, borders, dilation
  cs.push_back({1, 13, 15, 3, 3, 3, 2, 2, "same", 32});
  cs.push_back({2, 9, 11, 3, 3, 3, 1, 1, "valid", 40});
  cs.push_back({1, 10, 9, 4, 5, 5, 1, 2, "same", 24});
  cs.push_back({1, 12, 12, 2, 3, 3, 1, 1, "same", 33, 2, 2});
  return cs;
}

std::string describe(const Case& c) {
  std::ostringstream os;
  os << "N" << c.n << " " << c.h << "x" << c.w << "x" << c.c << " k" << c.kh << "x" << c.kw << " s" << c.sh << ","
     << c.sw << " d" << c.dh << "," << c.dw << " " << c.pad << " out" << c.out;
  return os.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("conv_geometry follows TF's padding rule", "[ops][conv]") {
  // stride 2 on an even size: pad 0 before, 1 after
  auto g = ops::conv_geometry(8, 8, 3, 3, 3, 2, 2, "same");
  CHECK(g.out_h == 4);
  CHECK(g.out_w == 4);
  CHECK(g.pad_top == 0);
  CHECK(g.pad_bottom == 1);
  CHECK(g.pad_left == 0);
  CHECK(g.pad_right == 1);
  // odd size: symmetric
  g = ops::conv_geometry(7, 7, 3, 3, 3, 2, 2, "same");
  CHECK(g.out_h == 4);
  CHECK(g.pad_top == 1);
  CHECK(g.pad_bottom == 1);
  // stride 1, even kernel: extra padding goes after
  g = ops::conv_geometry(5, 6, 1, 2, 4, 1, 1, "same");
  CHECK(g.out_h == 5);
  CHECK(g.out_w == 6);
  CHECK((g.pad_top == 0 && g.pad_bottom == 1));
  CHECK((g.pad_left == 1 && g.pad_right == 2));
  // 1x1 stride 2 same: no padding at all
  g = ops::conv_geometry(8, 7, 3, 1, 1, 2, 2, "same");
  CHECK((g.out_h == 4 && g.out_w == 4 && !g.padded()));
  // MobileNetV2 at 192: 3x3/2 same on 192 -> 96, pads (0, 1)
  g = ops::conv_geometry(192, 192, 3, 3, 3, 2, 2, "same");
  CHECK((g.out_h == 96 && g.pad_top == 0 && g.pad_bottom == 1));
  // valid
  g = ops::conv_geometry(7, 8, 2, 3, 3, 2, 2, "valid");
  CHECK((g.out_h == 3 && g.out_w == 3 && !g.padded()));
  g = ops::conv_geometry(10, 10, 1, 3, 3, 1, 1, ops::Padding::Valid, 2, 2);
  CHECK((g.out_h == 6 && g.out_w == 6));
  g = ops::conv_geometry(10, 10, 1, 3, 3, 1, 1, "same", 2, 2);
  CHECK((g.out_h == 10 && g.pad_top == 2 && g.pad_bottom == 2));
  CHECK(ops::conv_geometry(4, 4, 1, 1, 1, 1, 1, "valid").is_pointwise());
  // errors
  CHECK_THROWS_AS(ops::conv_geometry(2, 2, 1, 3, 3, 1, 1, "valid"), keras::ValueError);
  CHECK_THROWS_AS(ops::conv_geometry(5, 5, 1, 3, 3, 1, 1, "full"), keras::ValueError);
  CHECK_THROWS_AS(ops::conv_geometry(5, 5, 1, 3, 3, 0, 1, "same"), keras::ValueError);
  CHECK_THROWS_AS(ops::conv_geometry(5, 5, 0, 3, 3, 1, 1, "same"), keras::ValueError);
  CHECK_THROWS_AS(ops::conv_geometry(5, 5, 1, 3, 3, 2, 2, "same", 2, 2), keras::ValueError);
}

TEST_CASE("Conv2D forward matches a direct-loop reference on many shapes", "[ops][conv]") {
  keras::Random rng(7);
  ops::Conv2DWorkspace<double> ws;
  ops::Conv2DWorkspace<float> wsf;
  for (const Case& c : forward_cases()) {
    INFO(describe(c));
    auto x = random_tensor<double>({c.n, c.h, c.w, c.c}, rng);
    auto k = random_tensor<double>({c.kh, c.kw, c.c, c.out}, rng);
    auto b = random_tensor<double>({c.out}, rng);
    auto g = ops::conv_geometry(c.h, c.w, c.c, c.kh, c.kw, c.sh, c.sw, c.pad, c.dh, c.dw);
    Tensor<double> y;
    ops::conv2d_forward(g, x, k, &b, y, ws);
    auto ref = ref_conv(x, k, &b, c.sh, c.sw, c.pad, c.dh, c.dw);
    CHECK(max_abs_diff(y, ref) < 1e-12);
    // without bias
    ops::conv2d_forward(g, x, k, nullptr, y, ws);
    auto ref0 = ref_conv(x, k, nullptr, c.sh, c.sw, c.pad, c.dh, c.dw);
    CHECK(max_abs_diff(y, ref0) < 1e-12);
    // float agrees with double
    Tensor<float> yf;
    auto xf = x.cast<float>(), kf = k.cast<float>(), bf = b.cast<float>();
    ops::conv2d_forward(g, xf, kf, &bf, yf, wsf);
    CHECK(max_abs_diff(yf.cast<double>(), ref) <= 1e-4 * std::max(1.0, max_abs(ref)));
  }
}

TEST_CASE("Conv2D forward: blocking, thread count and workspace reuse do not change results", "[ops][conv]") {
  keras::Random rng(11);
  auto x = random_tensor<double>({3, 13, 11, 5}, rng);
  auto k = random_tensor<double>({3, 3, 5, 7}, rng);
  auto g = ops::conv_geometry(13, 11, 5, 3, 3, 1, 1, "same");
  auto ref = ref_conv(x, k, nullptr, 1, 1, "same");
  const int saved = keras::get_num_threads();
  for (int nt : {1, 2, 3}) {
    keras::set_num_threads(nt);
    for (Index bytes : {Index(1), Index(4096), Index(1) << 22}) {
      ops::Conv2DWorkspace<double> ws;
      ws.block_bytes = bytes;
      Tensor<double> y;
      ops::conv2d_forward(g, x, k, nullptr, y, ws);
      CHECK(max_abs_diff(y, ref) < 1e-12);
      const double* p = ws.col.data();
      ops::conv2d_forward(g, x, k, nullptr, y, ws);
      CHECK(ws.col.data() == p);  // steady state: no reallocation
    }
  }
  keras::set_num_threads(saved);
}

TEST_CASE("Conv2D rejects mismatched shapes", "[ops][conv]") {
  ops::Conv2DWorkspace<float> ws;
  auto g = ops::conv_geometry(8, 8, 3, 3, 3, 1, 1, "same");
  Tensor<float> x({1, 8, 8, 4}, 0.f), k({3, 3, 3, 2}, 0.f), y;
  CHECK_THROWS_AS(ops::conv2d_forward(g, x, k, nullptr, y, ws), keras::ShapeError);
  Tensor<float> x2({1, 8, 8, 3}, 0.f), k2({3, 3, 4, 2}, 0.f), b({3}, 0.f);
  CHECK_THROWS_AS(ops::conv2d_forward(g, x2, k2, nullptr, y, ws), keras::ShapeError);
  CHECK_THROWS_AS(ops::conv2d_forward(g, x2, k, &b, y, ws), keras::ShapeError);
}

// ---------------------------------------------------------------------------------------------
// Gradient checks. loss = sum(y * R) for a fixed random R, so dy = R.

namespace {

template <class Fwd>
double loss_of(Fwd&& fwd, const Tensor<double>& r) {
  Tensor<double> y = fwd();
  double s = 0;
  for (Index i = 0; i < y.size(); ++i) s += y[i] * r[i];
  return s;
}

/// Central differences of loss w.r.t. every element of `p` (p is perturbed in place).
template <class Fwd>
void check_grad(Tensor<double>& p, const Tensor<double>& analytic, Fwd&& fwd, const Tensor<double>& r,
                const char* what) {
  INFO(what);
  REQUIRE(analytic.shape() == p.shape());
  const double h = 1e-5;
  double worst = 0;
  for (Index i = 0; i < p.size(); ++i) {
    const double v = p[i];
    p[i] = v + h;
    const double lp = loss_of(fwd, r);
    p[i] = v - h;
    const double lm = loss_of(fwd, r);
    p[i] = v;
    const double num = (lp - lm) / (2 * h);
    const double rel = std::abs(num - analytic[i]) / std::max({std::abs(num), std::abs(analytic[i]), 1e-2});
    worst = std::max(worst, rel);
  }
  CHECK(worst <= 1e-6);
}

}  // namespace

TEST_CASE("Conv2D gradients match central differences", "[ops][conv][grad]") {
  keras::Random rng(3);
  const std::vector<Case> cases = {
      {2, 5, 5, 3, 3, 3, 1, 1, "same", 4},  {1, 6, 6, 2, 3, 3, 2, 2, "same", 3},
      {2, 7, 6, 3, 2, 3, 2, 1, "same", 2},  {1, 7, 7, 2, 3, 3, 2, 2, "valid", 3},
      {2, 4, 5, 4, 1, 1, 1, 1, "valid", 3}, {2, 6, 5, 3, 1, 1, 2, 2, "same", 2},
      {1, 8, 7, 2, 5, 5, 1, 1, "same", 2},  {1, 8, 8, 2, 3, 3, 1, 1, "same", 2, 2, 2},
      {3, 5, 4, 2, 2, 2, 1, 2, "valid", 2},
  };
  for (const Case& c : cases) {
    INFO(describe(c));
    auto x = random_tensor<double>({c.n, c.h, c.w, c.c}, rng);
    auto k = random_tensor<double>({c.kh, c.kw, c.c, c.out}, rng);
    auto b = random_tensor<double>({c.out}, rng);
    auto g = ops::conv_geometry(c.h, c.w, c.c, c.kh, c.kw, c.sh, c.sw, c.pad, c.dh, c.dw);
    ops::Conv2DWorkspace<double> ws;
    ws.block_bytes = 2048;  // several blocks per image
    auto fwd = [&] {
      Tensor<double> y;
      ops::conv2d_forward(g, x, k, &b, y, ws);
      return y;
    };
    Tensor<double> y0 = fwd();
    auto r = random_tensor<double>(y0.shape(), rng);
    Tensor<double> dx, dk(k.shape(), 0.0), db(b.shape(), 0.0);
    ops::conv2d_backward(g, x, k, r, &dx, &dk, &db, ws);
    check_grad(x, dx, fwd, r, "dx");
    check_grad(k, dk, fwd, r, "dkernel");
    check_grad(b, db, fwd, r, "dbias");

    // dkernel and dbias accumulate; dx is overwritten; nullptr skips
    Tensor<double> dx2(x.shape(), 5.0), dk2 = dk, db2 = db;
    ops::conv2d_backward(g, x, k, r, &dx2, &dk2, &db2, ws);
    CHECK(max_abs_diff(dx2, dx) < 1e-12);
    for (Index i = 0; i < dk.size(); ++i) CHECK(dk2[i] == Approx(2 * dk[i]).margin(1e-12));
    for (Index i = 0; i < db.size(); ++i) CHECK(db2[i] == Approx(2 * db[i]).margin(1e-12));
    Tensor<double> dk3(k.shape(), 0.0);
    ops::conv2d_backward<double>(g, x, k, r, nullptr, &dk3, nullptr, ws);
    CHECK(max_abs_diff(dk3, dk) < 1e-12);
    Tensor<double> dx3;
    ops::conv2d_backward<double>(g, x, k, r, &dx3, nullptr, nullptr, ws);
    CHECK(max_abs_diff(dx3, dx) < 1e-12);
  }
}

TEST_CASE("Conv2D backward: float agrees with double, 1 and 2 threads agree", "[ops][conv][grad]") {
  keras::Random rng(5);
  auto x = random_tensor<double>({3, 9, 10, 6}, rng);
  auto k = random_tensor<double>({3, 3, 6, 8}, rng);
  auto g = ops::conv_geometry(9, 10, 6, 3, 3, 2, 2, "same");
  auto g1 = ops::conv_geometry(9, 10, 6, 1, 1, 1, 1, "same");
  auto k1 = random_tensor<double>({1, 1, 6, 8}, rng);
  const int saved = keras::get_num_threads();
  for (auto [gg, kk] : {std::pair{g, k}, std::pair{g1, k1}}) {
    auto r = random_tensor<double>({3, gg.out_h, gg.out_w, 8}, rng);
    Tensor<double> dx, dk(kk.shape(), 0.0), db({8}, 0.0);
    ops::Conv2DWorkspace<double> ws;
    keras::set_num_threads(1);
    ops::conv2d_backward(gg, x, kk, r, &dx, &dk, &db, ws);
    keras::set_num_threads(2);
    Tensor<double> dx2, dk2(kk.shape(), 0.0), db2({8}, 0.0);
    ops::conv2d_backward(gg, x, kk, r, &dx2, &dk2, &db2, ws);
    CHECK(max_abs_diff(dx, dx2) < 1e-12);
    CHECK(max_abs_diff(dk, dk2) < 1e-12);
    CHECK(max_abs_diff(db, db2) < 1e-12);
    ops::Conv2DWorkspace<float> wsf;
    Tensor<float> dxf, dkf(kk.shape(), 0.f), dbf({8}, 0.f);
    ops::conv2d_backward(gg, x.cast<float>(), kk.cast<float>(), r.cast<float>(), &dxf, &dkf, &dbf, wsf);
    CHECK(max_abs_diff(dxf.cast<double>(), dx) <= 1e-4 * std::max(1.0, max_abs(dx)));
    CHECK(max_abs_diff(dkf.cast<double>(), dk) <= 1e-4 * std::max(1.0, max_abs(dk)));
    CHECK(max_abs_diff(dbf.cast<double>(), db) <= 1e-4 * std::max(1.0, max_abs(db)));
  }
  keras::set_num_threads(saved);
}

// ---------------------------------------------------------------------------------------------
// DepthwiseConv2D

TEST_CASE("DepthwiseConv2D forward matches a direct-loop reference on many shapes", "[ops][depthwise]") {
  keras::Random rng(17);
  int i = 0;
  std::vector<Case> cases = forward_cases();
  // wide channel counts exercise the register-blocked path and its tail
  cases.push_back({2, 9, 8, 37, 3, 3, 1, 1, "same", 1});
  cases.push_back({1, 10, 10, 64, 3, 3, 2, 2, "same", 1});
  cases.push_back({1, 11, 10, 72, 3, 3, 2, 2, "valid", 1});
  cases.push_back({2, 7, 7, 20, 3, 3, 1, 1, "same", 3});
  // several 4-pixel groups of the 3x3 interior kernel, stride 1 and 2, with border pixels
  cases.push_back({1, 5, 20, 16, 3, 3, 1, 1, "same", 1});
  cases.push_back({1, 13, 21, 48, 3, 3, 2, 2, "valid", 1});
  cases.push_back({2, 9, 18, 24, 3, 3, 2, 2, "same", 1});
  for (Case c : cases) {
    if (c.out > 2 && c.c < 8) c.out = 1 + (++i % 2);  // depth multiplier 1 and 2
    INFO(describe(c));
    auto x = random_tensor<double>({c.n, c.h, c.w, c.c}, rng);
    auto k = random_tensor<double>({c.kh, c.kw, c.c, c.out}, rng);
    auto b = random_tensor<double>({c.c * c.out}, rng);
    auto g = ops::conv_geometry(c.h, c.w, c.c, c.kh, c.kw, c.sh, c.sw, c.pad, c.dh, c.dw);
    Tensor<double> y;
    ops::depthwise_conv2d_forward(g, x, k, &b, y);
    auto ref = ref_depthwise(x, k, &b, c.sh, c.sw, c.pad, c.dh, c.dw);
    CHECK(max_abs_diff(y, ref) < 1e-12);
    ops::depthwise_conv2d_forward(g, x, k, nullptr, y);
    CHECK(max_abs_diff(y, ref_depthwise(x, k, nullptr, c.sh, c.sw, c.pad, c.dh, c.dw)) < 1e-12);
    Tensor<float> yf;
    auto bf = b.cast<float>();
    ops::depthwise_conv2d_forward(g, x.cast<float>(), k.cast<float>(), &bf, yf);
    CHECK(max_abs_diff(yf.cast<double>(), ref) <= 1e-4 * std::max(1.0, max_abs(ref)));
  }
}

TEST_CASE("DepthwiseConv2D gradients match central differences", "[ops][depthwise][grad]") {
  keras::Random rng(23);
  const std::vector<Case> cases = {
      {2, 5, 5, 3, 3, 3, 1, 1, "same", 1},
      {1, 6, 6, 2, 3, 3, 2, 2, "same", 2},
      {2, 7, 6, 3, 2, 3, 2, 1, "same", 1},
      {1, 7, 7, 2, 3, 3, 2, 2, "valid", 1},
      {2, 6, 5, 3, 1, 1, 2, 2, "same", 2},
      {1, 8, 7, 2, 5, 5, 1, 1, "same", 1},
      {1, 8, 8, 2, 3, 3, 1, 1, "same", 2, 2, 2},
      {3, 5, 4, 2, 2, 2, 1, 2, "valid", 2},
      {1, 5, 6, 40, 3, 3, 1, 1, "same", 1},
      // 3x3 interiors wide enough for the register-blocked backward paths (4-pixel blocks and a
      // remainder, whole channel packets and leftover channels)
      {2, 7, 11, 20, 3, 3, 1, 1, "valid", 1},
      {1, 9, 10, 20, 3, 3, 2, 2, "same", 1},
      {1, 8, 12, 17, 3, 3, 1, 2, "same", 1},
      // stride 2 3x3 input gradient (taps summed per pixel): even and odd sides, valid and same
      {2, 8, 9, 20, 3, 3, 2, 2, "valid", 1},
      {1, 10, 7, 17, 3, 3, 2, 2, "same", 1},
  };
  for (const Case& c : cases) {
    INFO(describe(c));
    auto x = random_tensor<double>({c.n, c.h, c.w, c.c}, rng);
    auto k = random_tensor<double>({c.kh, c.kw, c.c, c.out}, rng);
    auto b = random_tensor<double>({c.c * c.out}, rng);
    auto g = ops::conv_geometry(c.h, c.w, c.c, c.kh, c.kw, c.sh, c.sw, c.pad, c.dh, c.dw);
    ops::DepthwiseConv2DWorkspace<double> ws;
    auto fwd = [&] {
      Tensor<double> y;
      ops::depthwise_conv2d_forward(g, x, k, &b, y);
      return y;
    };
    Tensor<double> y0 = fwd();
    auto r = random_tensor<double>(y0.shape(), rng);
    Tensor<double> dx, dk(k.shape(), 0.0), db(b.shape(), 0.0);
    ops::depthwise_conv2d_backward(g, x, k, r, &dx, &dk, &db, ws);
    check_grad(x, dx, fwd, r, "dx");
    check_grad(k, dk, fwd, r, "dkernel");
    check_grad(b, db, fwd, r, "dbias");

    Tensor<double> dx2(x.shape(), 3.0), dk2 = dk, db2 = db;
    ops::depthwise_conv2d_backward(g, x, k, r, &dx2, &dk2, &db2, ws);
    CHECK(max_abs_diff(dx2, dx) < 1e-12);
    for (Index i = 0; i < dk.size(); ++i) CHECK(dk2[i] == Approx(2 * dk[i]).margin(1e-12));
    for (Index i = 0; i < db.size(); ++i) CHECK(db2[i] == Approx(2 * db[i]).margin(1e-12));
    Tensor<double> dk3(k.shape(), 0.0);
    ops::depthwise_conv2d_backward<double>(g, x, k, r, nullptr, &dk3, nullptr, ws);
    CHECK(max_abs_diff(dk3, dk) < 1e-12);
  }
}

TEST_CASE("DepthwiseConv2D backward: float vs double, deterministic across thread counts", "[ops][depthwise][grad]") {
  keras::Random rng(29);
  for (Index stride : {1, 2}) {
    INFO("stride " << stride);
    auto x = random_tensor<double>({3, 12, 11, 40}, rng);
    auto k = random_tensor<double>({3, 3, 40, 1}, rng);
    auto g = ops::conv_geometry(12, 11, 40, 3, 3, stride, stride, "same");
    auto r = random_tensor<double>({3, g.out_h, g.out_w, 40}, rng);
    const int saved = keras::get_num_threads();
    ops::DepthwiseConv2DWorkspace<double> ws;
    Tensor<double> dx, dk(k.shape(), 0.0), db({40}, 0.0);
    keras::set_num_threads(1);
    ops::depthwise_conv2d_backward(g, x, k, r, &dx, &dk, &db, ws);
    keras::set_num_threads(2);
    Tensor<double> dx2, dk2(k.shape(), 0.0), db2({40}, 0.0);
    ops::depthwise_conv2d_backward(g, x, k, r, &dx2, &dk2, &db2, ws);
    CHECK(max_abs_diff(dx, dx2) < 1e-12);
    CHECK(max_abs_diff(dk, dk2) < 1e-12);
    CHECK(max_abs_diff(db, db2) < 1e-12);
    Tensor<double> dk3(k.shape(), 0.0), db3({40}, 0.0);
    ops::depthwise_conv2d_backward<double>(g, x, k, r, nullptr, &dk3, &db3, ws);
    CHECK(max_abs_diff(dk2, dk3) == 0.0);  // bitwise deterministic for a fixed thread count
    keras::set_num_threads(saved);
    ops::DepthwiseConv2DWorkspace<float> wsf;
    Tensor<float> dxf, dkf(k.shape(), 0.f), dbf({40}, 0.f);
    ops::depthwise_conv2d_backward(g, x.cast<float>(), k.cast<float>(), r.cast<float>(), &dxf, &dkf, &dbf, wsf);
    CHECK(max_abs_diff(dxf.cast<double>(), dx) <= 1e-4 * std::max(1.0, max_abs(dx)));
    CHECK(max_abs_diff(dkf.cast<double>(), dk) <= 1e-4 * std::max(1.0, max_abs(dk)));
    CHECK(max_abs_diff(dbf.cast<double>(), db) <= 1e-4 * std::max(1.0, max_abs(db)));
  }
}

TEST_CASE("Conv2D forward: small images split over the filters give the reference, epilogue included", "[ops][conv]") {
  // Few output rows (6x6 = 36) and many filters: the work is cut over the filters when there are
  // fewer row blocks than threads. The fused epilogue must then see the right channel offsets.
  keras::Random rng(19);
  const int saved = keras::get_num_threads();
  struct C {
    Index c, k, f;
  };
  for (C c : {C{160, 1, 96}, C{32, 3, 48}, C{64, 1, 1280}}) {
    INFO("C " << c.c << " kernel " << c.k << " filters " << c.f);
    auto x = random_tensor<double>({1, 6, 6, c.c}, rng);
    auto k = random_tensor<double>({c.k, c.k, c.c, c.f}, rng);
    auto b = random_tensor<double>({c.f}, rng);
    auto scale = random_tensor<double>({c.f}, rng), shift = random_tensor<double>({c.f}, rng);
    auto res = random_tensor<double>({1, 6, 6, c.f}, rng);
    auto g = ops::conv_geometry(6, 6, c.c, c.k, c.k, 1, 1, "same");
    auto ref = ref_conv(x, k, &b, 1, 1, "same");
    Tensor<double> ref_ep = ref;
    for (Index i = 0; i < ref_ep.size(); ++i) {
      const Index ch = i % c.f;
      ref_ep[i] = std::min(std::max(ref[i] * scale[ch] + shift[ch], 0.0), 0.5) + res[i];
    }
    ops::Epilogue<double> ep;
    ep.scale = scale.data();
    ep.shift = shift.data();
    ep.clamp = true;
    ep.lo = 0.0;
    ep.hi = 0.5;
    ep.residual = res.data();
    for (int nt : {1, 2, 3}) {
      keras::set_num_threads(nt);
      ops::Conv2DWorkspace<double> ws;
      Tensor<double> y;
      ops::conv2d_forward(g, x, k, &b, y, ws);
      CHECK(max_abs_diff(y, ref) < 1e-12);
      ops::conv2d_forward(g, x, k, &b, y, ws, &ep);
      CHECK(max_abs_diff(y, ref_ep) < 1e-12);
    }
  }
  keras::set_num_threads(saved);
}

TEST_CASE(
    "Conv2D forward (float: own micro-kernel, direct RGB kernel): the split over 1-4 threads does not change a bit",
    "[ops][conv]") {
  // Batch-1 shapes of MobileNetV2: few output rows, cut into row blocks and filter parts so that
  // every thread gets several work items. Each output element must be computed the same way in
  // any item, so the results are bit-identical for every thread count (and near the reference).
  keras::Random rng(23);
  const int saved = keras::get_num_threads();
  struct C {
    Index h, c, k, f;
  };
  for (C c : {C{12, 96, 1, 576}, C{12, 576, 1, 96}, C{6, 160, 1, 960}, C{6, 320, 1, 1280}, C{48, 24, 1, 144},
              C{24, 16, 3, 32}, C{20, 3, 3, 32}}) {
    INFO("size " << c.h << " C " << c.c << " kernel " << c.k << " filters " << c.f);
    auto x = random_tensor<float>({1, c.h, c.h, c.c}, rng);
    auto k = random_tensor<float>({c.k, c.k, c.c, c.f}, rng);
    auto b = random_tensor<float>({c.f}, rng);
    auto res = random_tensor<float>({1, c.h, c.h, c.f}, rng);
    auto g = ops::conv_geometry(c.h, c.h, c.c, c.k, c.k, 1, 1, "same");
    g.batch = 1;
    Tensor<double> xd({1, c.h, c.h, c.c}), kd({c.k, c.k, c.c, c.f}), bd({c.f});
    for (Index i = 0; i < x.size(); ++i) xd[i] = x[i];
    for (Index i = 0; i < k.size(); ++i) kd[i] = k[i];
    for (Index i = 0; i < b.size(); ++i) bd[i] = b[i];
    auto ref = ref_conv(xd, kd, &bd, 1, 1, "same");
    ops::Epilogue<float> ep;
    ep.clamp = true;
    ep.lo = 0.f;
    ep.hi = 6.f;
    ep.residual = res.data();
    Tensor<float> first, first_ep;
    for (int nt : {1, 2, 3, 4}) {
      keras::set_num_threads(nt);
      ops::Conv2DWorkspace<float> ws;
      Tensor<float> y({1, c.h, c.h, c.f}), y_ep({1, c.h, c.h, c.f});
      ops::conv2d_forward(g, c.f, x.data(), k.data(), b.data(), y.data(), ws);
      ops::conv2d_forward(g, c.f, x.data(), k.data(), b.data(), y_ep.data(), ws, &ep);
      if (nt == 1) {
        double err = 0;
        for (Index i = 0; i < y.size(); ++i) err = std::max(err, std::abs(double(y[i]) - ref[i]));
        CHECK(err < 1e-3);
        double err_ep = 0;
        for (Index i = 0; i < y.size(); ++i)
          err_ep = std::max(err_ep, std::abs(double(y_ep[i]) - (std::min(std::max(y[i], 0.f), 6.f) + res[i])));
        CHECK(err_ep < 1e-5);
        first = y;
        first_ep = y_ep;
        continue;
      }
      INFO("threads " << nt);
      CHECK(std::memcmp(y.data(), first.data(), sizeof(float) * y.size()) == 0);
      CHECK(std::memcmp(y_ep.data(), first_ep.data(), sizeof(float) * y.size()) == 0);
    }
  }
  keras::set_num_threads(saved);
}

TEST_CASE("Pointwise conv backward with a fused BN/ReLU6 epilogue equals epilogue_backward + conv2d_backward",
          "[ops][conv][fusion]") {
  keras::Random rng(21);
  const Index N = 3, H = 7, W = 5, C = 6, F = 10;
  auto x = random_tensor<double>({N, H, W, C}, rng);
  auto k = random_tensor<double>({1, 1, C, F}, rng);
  Tensor<double> scale({F}), shift({F});
  for (Index f = 0; f < F; ++f) {
    scale[f] = rng.uniform(0.5, 1.5);
    shift[f] = rng.uniform(-0.5, 0.5);
  }
  auto g = ops::conv_geometry(H, W, C, 1, 1, 1, 1, "same");
  for (bool clamp : {true, false}) {
    ops::Epilogue<double> ep;
    ep.scale = scale.data();
    ep.shift = shift.data();
    ep.clamp = clamp;
    ep.lo = 0.0;
    ep.hi = clamp ? 0.8 : ep.hi;  // a low ceiling: both sides of the mask are hit
    ops::Conv2DWorkspace<double> ws;
    Tensor<double> y;
    ops::conv2d_forward(g, x, k, nullptr, y, ws, &ep);
    auto dy = random_tensor<double>(y.shape(), rng);
    // reference: the unfused path
    Tensor<double> dz(y.shape()), dx_ref, dk_ref(k.shape(), 0.5), db_ref({F}, 0.5);
    ops::epilogue_backward(ep, y.data(), dy.data(), dz.data(), N * H * W, F);
    ops::conv2d_backward(g, x, k, dz, &dx_ref, &dk_ref, &db_ref, ws);
    Tensor<double> first_dk;
    for (int nt : {1, 2, 3}) {
      keras::set_num_threads(nt);
      for (Index bytes : {Index(64), Index(1) << 20}) {  // many blocks and groups, or one
        INFO("clamp " << clamp << ", " << nt << " threads, block_bytes " << bytes);
        ops::Conv2DWorkspace<double> w2;
        w2.block_bytes = bytes;
        Tensor<double> dx(x.shape()), dk(k.shape(), 0.5), db({F}, 0.5);
        auto g2 = g;
        g2.batch = N;
        ops::conv2d_backward_pointwise_fused(g2, F, x.data(), k.data(), y.data(), dy.data(), ep, dx.data(), dk.data(),
                                             db.data(), w2);
        CHECK(max_abs_diff(dx, dx_ref) < 1e-12);
        CHECK(max_abs_diff(dk, dk_ref) < 1e-12);
        CHECK(max_abs_diff(db, db_ref) < 1e-12);
        if (bytes == 64) {
          if (nt == 1)
            first_dk = dk;
          else
            CHECK(std::memcmp(first_dk.data(), dk.data(), sizeof(double) * dk.size()) ==
                  0);  // thread count: bit-identical
        }
      }
    }
    keras::set_num_threads(2);
  }
}
