#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <keras/optimizers/optimizers.hpp>

using keras::Index;
using keras::Tensor;
using keras::Variable;
namespace opt = keras::optimizers;

namespace {

// Problem: f(w) = sum(c * w^2), gradient 2 c w, for three weights.
const std::vector<double> kC = {1.0, 0.5, 2.0};
const std::vector<double> kW0 = {1.0, -2.0, 0.3};

Variable<double> make_var() {
  Variable<double> v;
  v.name = "kernel";
  v.value = Tensor<double>({3}, {kW0[0], kW0[1], kW0[2]});
  v.grad = Tensor<double>({3}, 0.0);
  return v;
}
void set_grad(Variable<double>& v) {
  for (Index i = 0; i < 3; ++i) v.grad[i] = 2.0 * kC[i] * v.value[i];
}

/// Runs `steps` optimizer steps on the problem and returns the weights after each step.
std::vector<std::vector<double>> run(opt::Optimizer<double>& o, int steps = 3) {
  Variable<double> v = make_var();
  std::vector<std::vector<double>> out;
  for (int s = 0; s < steps; ++s) {
    set_grad(v);
    o.apply_gradients({&v});
    out.push_back({v.value[0], v.value[1], v.value[2]});
  }
  return out;
}

void check_close(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t s = 0; s < got.size(); ++s)
    for (std::size_t i = 0; i < got[s].size(); ++i) {
      INFO("step " << s + 1 << " weight " << i);
      CHECK(got[s][i] == Approx(want[s][i]).epsilon(1e-12).margin(1e-15));
    }
}

}  // namespace

// Each reference below is Keras's update rule written out per scalar, independently of optimizers.hpp.

TEST_CASE("SGD: plain, momentum and Nesterov match hand computation", "[optimizers]") {
  SECTION("plain") {
    opt::SGD<double> sgd({.learning_rate = 0.1});
    auto got = run(sgd);
    // w <- w - lr * 2 c w = w (1 - 0.2 c): weight 0: 1 -> 0.8 -> 0.64 -> 0.512
    CHECK(got[0][0] == Approx(0.8));
    CHECK(got[1][0] == Approx(0.64));
    CHECK(got[2][0] == Approx(0.512));
    CHECK(got[2][1] == Approx(-2.0 * 0.9 * 0.9 * 0.9));
    CHECK(got[2][2] == Approx(0.3 * 0.6 * 0.6 * 0.6));
    CHECK(sgd.iterations() == 3);
    CHECK(sgd.name() == "SGD");
  }
  SECTION("momentum 0.9") {
    opt::SGD<double> sgd({.learning_rate = 0.1, .momentum = 0.9});
    auto got = run(sgd);
    // weight 0 (c = 1): m = -0.2, w = 0.8; g = 1.6, m = -0.34, w = 0.46; g = 0.92, m = -0.398, w = 0.062
    CHECK(got[0][0] == Approx(0.8));
    CHECK(got[1][0] == Approx(0.46));
    CHECK(got[2][0] == Approx(0.062));
    std::vector<std::vector<double>> want;
    std::vector<double> w = kW0, m(3, 0.0);
    for (int s = 0; s < 3; ++s) {
      for (int i = 0; i < 3; ++i) {
        double g = 2 * kC[i] * w[i];
        m[i] = 0.9 * m[i] - 0.1 * g;
        w[i] = w[i] + m[i];
      }
      want.push_back(w);
    }
    check_close(got, want);
  }
  SECTION("nesterov") {
    opt::SGD<double> sgd({.learning_rate = 0.1, .momentum = 0.9, .nesterov = true});
    auto got = run(sgd);
    // weight 0: 1 -> 0.62 -> 0.2224 -> -0.108352
    CHECK(got[0][0] == Approx(0.62));
    CHECK(got[1][0] == Approx(0.2224));
    CHECK(got[2][0] == Approx(-0.108352));
    std::vector<std::vector<double>> want;
    std::vector<double> w = kW0, m(3, 0.0);
    for (int s = 0; s < 3; ++s) {
      for (int i = 0; i < 3; ++i) {
        double g = 2 * kC[i] * w[i];
        m[i] = 0.9 * m[i] - 0.1 * g;
        w[i] = w[i] + 0.9 * m[i] - 0.1 * g;
      }
      want.push_back(w);
    }
    check_close(got, want);
  }
}

TEST_CASE("Adam matches hand computation (bias-corrected, epsilon hat)", "[optimizers]") {
  auto reference = [](double lr, bool amsgrad) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
    std::vector<std::vector<double>> want;
    std::vector<double> w = kW0, m(3, 0.0), v(3, 0.0), vh(3, 0.0);
    for (int t = 1; t <= 3; ++t) {
      const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
      for (int i = 0; i < 3; ++i) {
        double g = 2 * kC[i] * w[i];
        m[i] = m[i] + (g - m[i]) * (1 - b1);
        v[i] = v[i] + (g * g - v[i]) * (1 - b2);
        vh[i] = std::max(vh[i], v[i]);
        w[i] = w[i] - alpha * m[i] / (std::sqrt(amsgrad ? vh[i] : v[i]) + eps);
      }
      want.push_back(w);
    }
    return want;
  };
  SECTION("defaults, lr 0.1") {
    opt::Adam<double> adam({.learning_rate = 0.1});
    auto got = run(adam);
    // First step on weight 0 (g = 2): m = 0.2, v = 0.004, alpha = 0.1 sqrt(0.001) / 0.1 = sqrt(0.001):
    // w = 1 - sqrt(0.001) * 0.2 / (sqrt(0.004) + 1e-7), i.e. almost exactly 1 - lr.
    CHECK(got[0][0] == Approx(1 - std::sqrt(0.001) * 0.2 / (std::sqrt(0.004) + 1e-7)).epsilon(1e-14));
    CHECK(got[0][0] == Approx(0.9).epsilon(1e-5));
    check_close(got, reference(0.1, false));
    CHECK(adam.num_tracked_variables() == 1);
    CHECK(adam.options().beta_2 == 0.999);
    CHECK(adam.options().epsilon == 1e-7);
  }
  SECTION("amsgrad") {
    opt::Adam<double> adam({.learning_rate = 0.1, .amsgrad = true});
    check_close(run(adam), reference(0.1, true));
  }
  SECTION("Keras defaults") {
    opt::Adam<double> adam;
    CHECK(adam.learning_rate() == 0.001);
    check_close(run(adam), reference(0.001, false));
  }
}

TEST_CASE("RMSprop: plain, momentum and centered match hand computation", "[optimizers]") {
  SECTION("Keras docstring example") {
    // opt = RMSprop(learning_rate=0.1); var = 10; loss = var^2 / 2 -> 9.683772
    opt::RMSprop<double> rms({.learning_rate = 0.1});
    Variable<double> v;
    v.value = Tensor<double>({1}, {10.0});
    v.grad = Tensor<double>({1}, {10.0});
    rms.apply_gradients({&v});
    CHECK(v.value[0] == Approx(9.683772).epsilon(1e-7));
    CHECK(v.value[0] == Approx(10.0 - 0.1 * 10.0 / std::sqrt(0.1 * 100.0 + 1e-7)).epsilon(1e-14));
  }
  auto reference = [](double lr, double rho, double mom, bool centered) {
    const double eps = 1e-7;
    std::vector<std::vector<double>> want;
    std::vector<double> w = kW0, vel(3, 0.0), mo(3, 0.0), avg(3, 0.0);
    for (int s = 0; s < 3; ++s) {
      for (int i = 0; i < 3; ++i) {
        double g = 2 * kC[i] * w[i];
        vel[i] = rho * vel[i] + (1 - rho) * g * g;
        double denom = vel[i] + eps;
        if (centered) {
          avg[i] = rho * avg[i] + (1 - rho) * g;
          denom = vel[i] - avg[i] * avg[i] + eps;
        }
        double inc = lr * g / std::sqrt(denom);
        if (mom > 0) {
          mo[i] = mom * mo[i] + inc;
          w[i] -= mo[i];
        } else {
          w[i] -= inc;
        }
      }
      want.push_back(w);
    }
    return want;
  };
  SECTION("plain") {
    opt::RMSprop<double> rms({.learning_rate = 0.01});
    check_close(run(rms), reference(0.01, 0.9, 0.0, false));
  }
  SECTION("momentum") {
    opt::RMSprop<double> rms({.learning_rate = 0.01, .rho = 0.8, .momentum = 0.5});
    CHECK(rms.num_slots() == 2);
    check_close(run(rms), reference(0.01, 0.8, 0.5, false));
  }
  SECTION("centered") {
    opt::RMSprop<double> rms({.learning_rate = 0.01, .centered = true});
    check_close(run(rms), reference(0.01, 0.9, 0.0, true));
  }
  SECTION("centered with momentum") {
    opt::RMSprop<double> rms({.learning_rate = 0.01, .momentum = 0.9, .centered = true});
    CHECK(rms.num_slots() == 3);
    check_close(run(rms), reference(0.01, 0.9, 0.9, true));
  }
}

TEST_CASE("frozen variables are untouched bit for bit", "[optimizers]") {
  for (const char* name : {"sgd", "adam", "rmsprop", "adamw"}) {
    auto o = opt::get<float>(name);
    Variable<float> live, frozen, nograd;
    live.value = Tensor<float>({2, 2}, {1.f, 2.f, 3.f, 4.f});
    live.grad = Tensor<float>({2, 2}, 0.5f);
    frozen.name = "moving_mean";
    frozen.value = Tensor<float>({2, 2}, {0.1f, -0.2f, 0.3f, 1e-30f});
    frozen.grad = Tensor<float>({2, 2}, 7.f);
    frozen.trainable = false;
    nograd.value = Tensor<float>({3}, {1.f, 2.f, 3.f});  // empty grad: skipped (Keras: None gradient)
    const Tensor<float> before = frozen.value, before_ng = nograd.value;
    for (int s = 0; s < 3; ++s) o->apply_gradients({&live, &frozen, &nograd});
    INFO(name);
    CHECK(std::memcmp(frozen.value.data(), before.data(), sizeof(float) * 4) == 0);
    CHECK(std::memcmp(nograd.value.data(), before_ng.data(), sizeof(float) * 3) == 0);
    CHECK(o->slots(&frozen) == nullptr);
    CHECK(o->slots(&nograd) == nullptr);
    CHECK(live.value[0] < 1.f);
    CHECK(o->iterations() == 3);
  }
}

TEST_CASE("clipping, weight decay, bad gradients, float", "[optimizers]") {
  Variable<double> a, b;
  a.value = Tensor<double>({2}, {0.0, 0.0});
  b.value = Tensor<double>({1}, {0.0});
  SECTION("clipnorm: per variable") {
    opt::SGD<double> sgd({.learning_rate = 1.0, .clipnorm = 1.0});
    a.grad = Tensor<double>({2}, {3.0, 4.0});
    b.grad = Tensor<double>({1}, {0.5});
    sgd.apply_gradients({&a, &b});
    CHECK(a.value[0] == Approx(-0.6));
    CHECK(a.value[1] == Approx(-0.8));
    CHECK(b.value[0] == Approx(-0.5));
  }
  SECTION("global_clipnorm: jointly") {
    opt::SGD<double> sgd({.learning_rate = 1.0, .global_clipnorm = 2.5});
    a.grad = Tensor<double>({2}, {3.0, 4.0});
    b.grad = Tensor<double>({1}, {0.0});  // global norm 5 -> scale 0.5
    sgd.apply_gradients({&a, &b});
    CHECK(a.value[0] == Approx(-1.5));
    CHECK(a.value[1] == Approx(-2.0));
  }
  SECTION("clipvalue") {
    opt::SGD<double> sgd({.learning_rate = 1.0, .clipvalue = 1.0});
    a.grad = Tensor<double>({2}, {3.0, -0.25});
    sgd.apply_gradients({&a});
    CHECK(a.value[0] == -1.0);
    CHECK(a.value[1] == 0.25);
  }
  SECTION("only one clipping option") {
    CHECK_THROWS_AS(opt::SGD<double>({.clipnorm = 1.0, .clipvalue = 1.0}), keras::ValueError);
  }
  SECTION("AdamW decays before the Adam step") {
    opt::AdamW<double> adamw;  // lr 0.001, weight_decay 0.004
    CHECK(adamw.weight_decay() == 0.004);
    Variable<double> w;
    w.value = Tensor<double>({1}, {1.0});
    w.grad = Tensor<double>({1}, {0.0});  // zero gradient: the Adam step is 0 / (0 + eps) = 0
    adamw.apply_gradients({&w});
    CHECK(w.value[0] == Approx(1.0 - 1.0 * 0.004 * 0.001).epsilon(1e-15));
    CHECK(adamw.name() == "adamw");
  }
  SECTION("gradient shape mismatch names the variable") {
    opt::Adam<double> adam;
    a.name = "bias";
    a.grad = Tensor<double>({3}, 1.0);
    CHECK_THROWS_AS(adam.apply_gradients({&a}), keras::ShapeError);
    CHECK_THROWS_WITH(adam.apply_gradients({&a}), Catch::Contains("'bias'") && Catch::Contains("(3,)"));
  }
  SECTION("float instantiation, designated initializers, learning rate setter") {
    opt::Adam<float> adam({.learning_rate = 1e-4});
    CHECK(adam.learning_rate() == Approx(1e-4));
    adam.set_learning_rate(0.5);
    CHECK(adam.learning_rate() == 0.5);
    Variable<float> v;
    v.value = Tensor<float>({2}, {1.f, -1.f});
    v.grad = Tensor<float>({2}, {1.f, -1.f});
    adam.apply_gradients({&v});
    CHECK(v.value[0] == Approx(0.5f).epsilon(1e-5));  // first Adam step moves by ~lr * sign(g)
    CHECK(v.value[1] == Approx(-0.5f).epsilon(1e-5));
    adam.reset();
    CHECK(adam.iterations() == 0);
    CHECK(adam.num_tracked_variables() == 0);
    CHECK(adam.get_config()["beta_1"] == 0.9);
  }
}

TEST_CASE("optimizers::get resolves Keras names", "[optimizers]") {
  CHECK(opt::get<float>("adam")->class_name() == "Adam");
  CHECK(opt::get<float>("Adam")->learning_rate() == Approx(0.001));
  CHECK(opt::get<float>("sgd")->learning_rate() == Approx(0.01));
  CHECK(opt::get<float>("SGD")->class_name() == "SGD");
  CHECK(opt::get<float>("rmsprop")->name() == "rmsprop");
  CHECK(opt::get<double>("adamw")->class_name() == "AdamW");
  CHECK_THROWS_AS(opt::get<float>("adagrad2"), keras::ValueError);
  CHECK_THROWS_WITH(opt::get<float>("adagrad2"), Catch::Contains("'adagrad2'"));
  CHECK_THROWS_AS(opt::SGD<float>({.momentum = 1.5}), keras::ValueError);
}
