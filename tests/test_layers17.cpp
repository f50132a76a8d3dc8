// The layers of issue 17 (non-recurrent): gradient checks in double with the project's checker
// (tests/layer_check.hpp over keras/testing/layer_check.hpp: gradients, backward adds, NaN prefill,
// threads, config round trip through the registry), hand-computed Keras formulas, and the errors
// for unsupported options. The TF.js references and save/load round trips are in test_io_layers17.cpp.
#include "layer_check.hpp"

using namespace keras;
using testing::random_tensor;
using testing::require_gradients_ok;

namespace {
/// x with every entry moved at least `gap` away from 0 (kinks of the piecewise activations).
Tensor<double> away_from_zero(Tensor<double> x, double gap = 0.1) {
  for (auto& v : x) v += v >= 0 ? gap : -gap;
  return x;
}
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const keras::Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("LeakyReLU, ELU and PReLU: Keras formulas and gradients", "[layers17][gradcheck]") {
  Random rng(1);
  Tensor<double> x({1, 4}, {-2.0, -0.5, 0.25, 3.0});
  layers::LeakyReLU<double> lr;  // tf.keras 2 / TF.js default alpha 0.3
  auto y = lr.call(x);
  CHECK(y[0] == Approx(-0.6));
  CHECK(y[3] == 3.0);
  layers::ELU<double> elu(0.7);
  auto e = elu.call(x);
  CHECK(e[1] == Approx(0.7 * (std::exp(-0.5) - 1)));
  CHECK(e[2] == 0.25);
  layers::LeakyReLU<double> lr2(0.1);
  require_gradients_ok(lr2, {away_from_zero(random_tensor({3, 5}, rng))});
  layers::ELU<double> elu2(0.7);
  require_gradients_ok(elu2, {away_from_zero(random_tensor({3, 5}, rng))});

  layers::PReLU<double> p({.shared_axes = {1, 2}});
  auto xi = away_from_zero(random_tensor({2, 3, 4, 5}, rng));
  require_gradients_ok(p, {xi});
  CHECK(p.alpha().value.shape() == Shape{1, 1, 5});
  layers::PReLU<double> full;
  require_gradients_ok(full, {away_from_zero(random_tensor({2, 3, 4}, rng))});
  CHECK(full.alpha().value.shape() == Shape{3, 4});
  // y = alpha[c] * x for x < 0 (alpha shared over rows and cols)
  auto yp = p.call(xi);
  for (Index i = 0; i < xi.size(); ++i) {
    const double a = p.alpha().value[i % 5];
    CHECK(yp[i] == Approx(xi[i] > 0 ? xi[i] : a * xi[i]));
  }
  CHECK(layers::LeakyReLU<double>::from_config({{"name", "l"}, {"negative_slope", 0.2}})->get_config()["alpha"] == 0.2);
  CHECK_THAT(error_of([] {
               layers::PReLU<float>::from_config({{"name", "p"}, {"alpha_constraint", "non_neg"}});
             }),
             Catch::Contains("PReLU 'p'") && Catch::Contains("alpha_constraint"));
}

TEST_CASE("Multiply, Subtract, Average, Maximum, Minimum: values and gradients", "[layers17][gradcheck]") {
  Random rng(2);
  auto a = random_tensor({2, 3, 4}, rng), b = random_tensor({2, 3, 4}, rng), c = random_tensor({2, 3, 4}, rng);
  layers::Multiply<double> mul;
  layers::Subtract<double> sub;
  layers::Average<double> avg;
  layers::Maximum<double> mx;
  layers::Minimum<double> mn;
  for (layers::Layer<double>* l : std::vector<layers::Layer<double>*>{&mul, &avg, &mx, &mn}) {
    INFO(l->class_name());
    require_gradients_ok(*l, {a, b, c});
    Tensor<double> y;
    l->forward({&a, &b, &c}, y, false);
    for (Index i = 0; i < a.size(); ++i) {
      const double expect = l == &mul   ? a[i] * b[i] * c[i]
                            : l == &avg ? (a[i] + b[i] + c[i]) / 3
                            : l == &mx  ? std::max({a[i], b[i], c[i]})
                                        : std::min({a[i], b[i], c[i]});
      CHECK(y[i] == Approx(expect));
    }
  }
  require_gradients_ok(sub, {a, b});
  Tensor<double> d;
  sub.forward({&a, &b}, d, false);
  CHECK(d[5] == Approx(a[5] - b[5]));
  // broadcasting as Keras (each dimension equal or 1): a squeeze-and-excitation Multiply, and more
  auto img = random_tensor({2, 3, 4, 5}, rng), se = random_tensor({2, 1, 1, 5}, rng);
  layers::Multiply<double> se_mul;
  require_gradients_ok(se_mul, {img, se});
  Tensor<double> ys;
  se_mul.forward({&img, &se}, ys, false);
  CHECK(ys.shape() == img.shape());
  CHECK(ys[((1 * 3 + 2) * 4 + 3) * 5 + 4] == Approx(img[((1 * 3 + 2) * 4 + 3) * 5 + 4] * se[1 * 5 + 4]));
  layers::Maximum<double> bmax;
  require_gradients_ok(bmax,
                       {random_tensor({2, 3, 1}, rng), random_tensor({1, 3, 4}, rng), random_tensor({2, 3, 4}, rng)});
  CHECK(bmax.compute_output_shape({{-1, 3, 1}, {1, 3, 4}}) == Shape{-1, 3, 4});
  layers::Subtract<double> bsub;
  auto sa = random_tensor({2, 1, 4}, rng), sb = random_tensor({2, 3, 1}, rng);
  require_gradients_ok(bsub, {sa, sb});
  Tensor<double> yd;
  bsub.forward({&sa, &sb}, yd, false);
  CHECK(yd.shape() == Shape{2, 3, 4});
  CHECK(yd[(1 * 3 + 2) * 4 + 1] == Approx(sa[1 * 4 + 1] - sb[1 * 3 + 2]));
  CHECK_THAT(error_of([] {
               layers::Average<float>({.name = "r"}).compute_output_shape({{-1, 2, 3}, {-1, 3}});
             }),
             Catch::Contains("'r' (Average)") && Catch::Contains("same rank"));
  CHECK_THAT(error_of([] {
               layers::Subtract<float>({.name = "s"}).compute_output_shape({{-1, 2}, {-1, 2}, {-1, 2}});
             }),
             Catch::Contains("'s' (Subtract)") && Catch::Contains("exactly 2 inputs"));
  CHECK_THAT(error_of([] {
               layers::Maximum<float>({.name = "m"}).compute_output_shape({{-1, 2}, {-1, 3}});
             }),
             Catch::Contains("'m' (Maximum)") && Catch::Contains("(None, 2)") && Catch::Contains("(None, 3)") &&
                 Catch::Contains("cannot be broadcast"));
}

TEST_CASE("UpSampling2D, Cropping2D and Resizing: tf.image.resize values and gradients", "[layers17][gradcheck]") {
  Random rng(3);
  auto x = random_tensor({2, 3, 4, 2}, rng);
  for (std::string interp : {"nearest", "bilinear"}) {
    layers::UpSampling2D<double> up(layers::Size2(2, 3), {.interpolation = interp});
    INFO(interp);
    require_gradients_ok(up, {x});
    CHECK(up.compute_output_shape({{-1, 3, 4, 2}}) == Shape{-1, 6, 12, 2});
    layers::Resizing<double> rs(5, 3, {.interpolation = interp});
    require_gradients_ok(rs, {x});
    layers::Resizing<double> crop(2, 2, {.interpolation = interp, .crop_to_aspect_ratio = true});
    require_gradients_ok(crop, {x});
  }
  // nearest upsampling repeats; bilinear upsampling by 2 of [a, b] is [a, .75a+.25b, .25a+.75b, b]
  Tensor<double> row({1, 1, 2, 1}, {1.0, 5.0});
  auto yn = layers::UpSampling2D<double>(layers::Size2(1, 2)).call(row);
  CHECK(std::vector<double>(yn.begin(), yn.end()) == std::vector<double>{1, 1, 5, 5});
  auto yb = layers::UpSampling2D<double>(layers::Size2(1, 2), {.interpolation = "bilinear"}).call(row);
  CHECK(yb[0] == 1.0);
  CHECK(yb[1] == Approx(2.0));
  CHECK(yb[2] == Approx(4.0));
  CHECK(yb[3] == 5.0);
  // crop_to_aspect_ratio: a 3x4 image to 2x2 resizes the centred 3x3 window (cols 0..2)
  Tensor<double> img({1, 3, 4, 1}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  auto yc = layers::Resizing<double>(3, 3, {.interpolation = "nearest", .crop_to_aspect_ratio = true}).call(img);
  CHECK(std::vector<double>(yc.begin(), yc.end()) == std::vector<double>{0, 1, 2, 4, 5, 6, 8, 9, 10});

  layers::Cropping2D<double> cr(layers::Padding2D({1, 0}, {1, 2}));
  require_gradients_ok(cr, {random_tensor({2, 4, 5, 3}, rng)});
  CHECK(cr.compute_output_shape({{-1, 4, 5, 3}}) == Shape{-1, 3, 2, 3});
  auto yr = layers::Cropping2D<double>(layers::Padding2D({1, 1}, {1, 2})).call(img);
  CHECK(std::vector<double>(yr.begin(), yr.end()) == std::vector<double>{5});
  CHECK_THAT(error_of([] {
               layers::Resizing<float>::from_config(
                   {{"name", "r"}, {"height", 2}, {"width", 2}, {"interpolation", "bicubic"}});
             }),
             Catch::Contains("Resizing 'r'") && Catch::Contains("bicubic"));
  CHECK_THAT(error_of([] {
               layers::UpSampling2D<float>::from_config({{"name", "u"}, {"size", 2}, {"interpolation", "area"}});
             }),
             Catch::Contains("UpSampling2D 'u'") && Catch::Contains("area"));
  CHECK_THAT(error_of([] {
               layers::Cropping2D<float>(layers::Padding2D(2), {.name = "c"}).compute_output_shape({{-1, 4, 8, 1}});
             }),
             Catch::Contains("'c' (Cropping2D)"));
}

TEST_CASE("LayerNormalization and Normalization: Keras formulas and gradients", "[layers17][gradcheck]") {
  Random rng(4);
  auto x = random_tensor({3, 2, 6}, rng, -2, 2);
  layers::LayerNormalization<double> ln;
  require_gradients_ok(ln, {x});
  layers::LayerNormalization<double> ln_plain({.center = false, .scale = false});
  require_gradients_ok(ln_plain, {x});
  layers::LayerNormalization<double> ln_scale({.epsilon = 0.1, .center = false});
  require_gradients_ok(ln_scale, {x});
  CHECK(ln_scale.variables().size() == 1);
  // y = (x - mean) / sqrt(var + eps) * gamma + beta, over the last axis
  auto y = ln.call(x);
  auto vars = ln.variables();
  for (Index r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (Index i = 0; i < 6; ++i) m += x[r * 6 + i] / 6;
    for (Index i = 0; i < 6; ++i) v += (x[r * 6 + i] - m) * (x[r * 6 + i] - m) / 6;
    for (Index i = 0; i < 6; ++i)
      CHECK(y[r * 6 + i] == Approx((x[r * 6 + i] - m) / std::sqrt(v + 1e-3) * vars[0]->value[i] + vars[1]->value[i]));
  }

  layers::Normalization<double> norm;
  require_gradients_ok(norm, {x});
  auto w = norm.variables();
  REQUIRE(w.size() == 3);
  CHECK(w[0]->name == "mean");
  CHECK(w[1]->name == "variance");
  CHECK(w[2]->name == "count");
  CHECK(!w[0]->trainable);
  w[0]->value.setConstant(0.5);
  w[1]->value.setConstant(4.0);
  auto yn = norm.call(x);
  CHECK(yn[7] == Approx((x[7] - 0.5) / 2.0));
  // adapt(): per-feature mean and biased variance over the samples, so the data comes out standardised
  layers::Normalization<double> adapted;
  auto data = random_tensor({40, 2, 3}, rng, -2, 5);
  adapted.adapt(data);
  CHECK(adapted.variables()[2]->value[0] == 80);
  auto z = adapted.call(data);
  for (Index f = 0; f < 3; ++f) {
    double m = 0, v = 0;
    for (Index r = 0; r < 80; ++r) m += z[r * 3 + f] / 80;
    for (Index r = 0; r < 80; ++r) v += (z[r * 3 + f] - m) * (z[r * 3 + f] - m) / 80;
    CHECK(std::abs(m) < 1e-12);
    CHECK(v == Approx(1.0).epsilon(1e-12));
  }
  CHECK_THAT(error_of([] {
               layers::Normalization<double> given({.mean = {0.0}, .variance = {1.0}, .name = "g"});
               given.adapt(Tensor<double>({2, 3}, 1.0));
             }),
             Catch::Contains("'g' (Normalization)") && Catch::Contains("adapt"));
  layers::Normalization<double> fixed({.mean = {1.0}, .variance = {0.25}, .invert = true});
  require_gradients_ok(fixed, {x});
  CHECK(fixed.call(x)[3] == Approx(1.0 + x[3] * 0.5));
  CHECK(fixed.variables().empty());
  CHECK_THAT(error_of([] {
               layers::LayerNormalization<float>::from_config({{"name", "n"}, {"axis", json::array({1, 2})}});
             }),
             Catch::Contains("LayerNormalization 'n'") && Catch::Contains("axis"));
  CHECK_THAT(error_of([] {
               layers::LayerNormalization<float>({.axis = 1, .name = "n2"}).compute_output_shape({{-1, 3, 4}});
             }),
             Catch::Contains("'n2' (LayerNormalization)") && Catch::Contains("last axis"));
  CHECK_THAT(error_of([] { layers::Normalization<float>({.mean = {1.0}, .name = "q"}); }),
             Catch::Contains("both mean and variance"));
}

TEST_CASE("SeparableConv2D: depthwise then pointwise, gradients", "[layers17][gradcheck]") {
  Random rng(5);
  auto x = random_tensor({2, 6, 5, 3}, rng);
  layers::SeparableConv2D<double> sc(4, 3, {.strides = 2, .padding = "same", .depth_multiplier = 2});
  require_gradients_ok(sc, {x});
  auto v = sc.variables();
  REQUIRE(v.size() == 3);
  CHECK(v[0]->name == "depthwise_kernel");
  CHECK(v[0]->value.shape() == Shape{3, 3, 3, 2});
  CHECK(v[1]->name == "pointwise_kernel");
  CHECK(v[1]->value.shape() == Shape{1, 1, 6, 4});
  CHECK(v[2]->name == "bias");
  // equals DepthwiseConv2D then a 1x1 Conv2D with the same weights
  layers::DepthwiseConv2D<double> dw(3, {.strides = 2, .padding = "same", .depth_multiplier = 2, .use_bias = false});
  layers::Conv2D<double> pw(4, 1);
  auto mid = dw.call(x);
  pw.build(Shape{-1, mid.dim(1), mid.dim(2), mid.dim(3)});
  dw.variables()[0]->value = v[0]->value;
  pw.variables()[0]->value = v[1]->value;
  pw.variables()[1]->value = v[2]->value;
  auto a = sc.call(x), b = pw.call(dw.call(x));
  CHECK(testing::rel_error(a, b) < 1e-12);
  layers::SeparableConv2D<double> sc2(2, layers::Size2(2, 3),
                                      {.dilation_rate = 2, .activation = "tanh", .use_bias = false});
  require_gradients_ok(sc2, {x});
}

TEST_CASE("Conv2DTranspose: the adjoint of Conv2D, Keras output sizes, gradients", "[layers17][gradcheck]") {
  Random rng(6);
  auto x = random_tensor({2, 3, 4, 3}, rng);
  struct Case {
    layers::Size2 k, s;
    std::string padding;
    std::optional<layers::Size2> out_pad;
    Shape out;
  };
  for (const Case& c : std::vector<Case>{{3, 2, "same", {}, {-1, 6, 8, 5}},
                                         {3, 2, "valid", {}, {-1, 7, 9, 5}},
                                         {layers::Size2(2, 3), 1, "valid", {}, {-1, 4, 6, 5}},
                                         {1, 3, "valid", {}, {-1, 9, 12, 5}},
                                         {3, 2, "same", layers::Size2(1, 0), {-1, 6, 7, 5}}}) {
    layers::Conv2DTranspose<double> t(5, c.k, {.strides = c.s, .padding = c.padding, .output_padding = c.out_pad});
    INFO("kernel " << c.k.h << "x" << c.k.w << " strides " << c.s.h << " " << c.padding);
    CHECK(t.compute_output_shape({{-1, 3, 4, 3}}) == c.out);
    require_gradients_ok(t, {x});
    CHECK(t.kernel().value.shape() == Shape{c.k.h, c.k.w, 5, 3});
  }
  // <conv_transpose(x), y> == <x, conv(y)> with the same kernel (no bias): the adjoint identity
  layers::Conv2DTranspose<double> t(4, 3, {.strides = 2, .padding = "same", .use_bias = false});
  auto yt = t.call(x);
  layers::Conv2D<double> conv(3, 3, {.strides = 2, .padding = "same", .use_bias = false});
  conv.build(Shape{-1, yt.dim(1), yt.dim(2), 4});
  conv.variables()[0]->value = t.kernel().value;
  auto y = random_tensor(yt.shape(), rng);
  auto cy = conv.call(y);
  double lhs = 0, rhs = 0;
  for (Index i = 0; i < yt.size(); ++i) lhs += yt[i] * y[i];
  for (Index i = 0; i < x.size(); ++i) rhs += x[i] * cy[i];
  CHECK(lhs == Approx(rhs).epsilon(1e-12));
  layers::Conv2DTranspose<double> act(2, 2, {.strides = 2, .activation = "sigmoid"});
  require_gradients_ok(act, {x});
  CHECK_THAT(error_of([] { layers::Conv2DTranspose<float>(2, 3, {.strides = 2, .output_padding = layers::Size2(2)}); }),
             Catch::Contains("output_padding"));
  CHECK_THAT(error_of([] {
               layers::Conv2DTranspose<float>::from_config(
                   {{"name", "tp"}, {"filters", 2}, {"kernel_size", 3}, {"strides", 2}, {"output_padding", 2}});
             }),
             Catch::Contains("Conv2DTranspose 'tp'") && Catch::Contains("output_padding"));
  CHECK_THAT(error_of([] {
               layers::Conv2DTranspose<float>::from_config(
                   {{"name", "tg"}, {"filters", 2}, {"kernel_size", 3}, {"groups", 2}});
             }),
             Catch::Contains("Conv2DTranspose 'tg'") && Catch::Contains("groups"));
  CHECK_THAT(error_of([] {
               layers::SeparableConv2D<float>::from_config(
                   {{"name", "sp"}, {"filters", 2}, {"kernel_size", 3}, {"data_format", "channels_first"}});
             }),
             Catch::Contains("SeparableConv2D 'sp'") && Catch::Contains("channels_last"));
}

TEST_CASE("Conv1D (valid, same, causal, strides, dilation) and the 1-D poolings", "[layers17][gradcheck]") {
  Random rng(7);
  auto x = random_tensor({2, 9, 3}, rng);
  struct Case {
    std::string padding;
    Index k, s, d, steps;
  };
  for (const Case& c : std::vector<Case>{{"valid", 3, 1, 1, 7},
                                         {"same", 3, 2, 1, 5},
                                         {"causal", 3, 1, 2, 9},
                                         {"causal", 2, 2, 1, 5},
                                         {"valid", 2, 1, 3, 6},
                                         {"same", 4, 1, 1, 9}}) {
    layers::Conv1D<double> conv(4, c.k, {.strides = c.s, .padding = c.padding, .dilation_rate = c.d});
    INFO(c.padding << " k " << c.k << " s " << c.s << " d " << c.d);
    CHECK(conv.compute_output_shape({{-1, 9, 3}}) == Shape{-1, c.steps, 4});
    require_gradients_ok(conv, {x});
  }
  // causal: y[t] = sum_j x[t - (k-1-j)*d] w[j] (+ b), zeros before the start
  layers::Conv1D<double> causal(1, 2, {.padding = "causal", .dilation_rate = 2, .use_bias = false});
  Tensor<double> seq({1, 4, 1}, {1.0, 2.0, 3.0, 4.0});
  causal.build(Shape{-1, 4, 1});
  causal.kernel().value = Tensor<double>({2, 1, 1}, {10.0, 1.0});
  auto yc = causal.call(seq);
  CHECK(std::vector<double>(yc.begin(), yc.end()) == std::vector<double>{1, 2, 13, 24});
  layers::Conv1D<double> tanh_conv(2, 3, {.activation = "tanh"});
  require_gradients_ok(tanh_conv, {x});

  for (std::string padding : {"valid", "same"}) {
    layers::MaxPooling1D<double> mp(3, {.strides = 2, .padding = padding});
    layers::AveragePooling1D<double> ap(2, {.padding = padding});
    INFO(padding);
    require_gradients_ok(mp, {x});
    require_gradients_ok(ap, {x});
    CHECK(mp.compute_output_shape({{-1, 9, 3}}) == Shape{-1, padding == "same" ? 5 : 4, 3});
  }
  auto ya = layers::AveragePooling1D<double>(2, {.padding = "same"}).call(seq);
  CHECK(std::vector<double>(ya.begin(), ya.end()) == std::vector<double>{1.5, 3.5});
  layers::GlobalAveragePooling1D<double> gap;
  layers::GlobalMaxPooling1D<double> gmp({.keepdims = true});
  require_gradients_ok(gap, {x});
  require_gradients_ok(gmp, {x});
  CHECK(gmp.compute_output_shape({{-1, 9, 3}}) == Shape{-1, 1, 3});
  CHECK(layers::GlobalAveragePooling1D<double>().call(seq)[0] == Approx(2.5));
  CHECK_THAT(
      error_of([] {
        layers::Conv1D<float>::from_config({{"name", "c1"}, {"filters", 2}, {"kernel_size", 3}, {"padding", "full"}});
      }),
      Catch::Contains("Conv1D 'c1'") && Catch::Contains("full"));
  CHECK_THAT(error_of([] {
               layers::Conv1D<float>::from_config({{"name", "c2"}, {"filters", 2}, {"kernel_size", 3}, {"groups", 2}});
             }),
             Catch::Contains("Conv1D 'c2'") && Catch::Contains("groups"));
}
