// Learning-rate schedules (optimizers/schedules.hpp) against Keras 3's formulas computed by hand,
// an optimizer stepping with one, and their configs as Keras serializes them.
#include <catch2/catch.hpp>

#include <cmath>
#include <keras/optimizers/optimizers.hpp>

using keras::Tensor;
using keras::Variable;
namespace opt = keras::optimizers;
namespace sch = keras::optimizers::schedules;

TEST_CASE("ExponentialDecay: lr0 * rate^(step / decay_steps), staircase floors the exponent", "[schedules]") {
  sch::ExponentialDecay e(0.1, 10, 0.5);
  CHECK(e(0) == Approx(0.1));
  CHECK(e(5) == Approx(0.1 * std::sqrt(0.5)));  // 0.0707106781
  CHECK(e(10) == Approx(0.05));
  CHECK(e(25) == Approx(0.1 * std::pow(0.5, 2.5)));
  sch::ExponentialDecay s(0.1, 10, 0.5, {.staircase = true, .name = "ExponentialDecay"});
  CHECK(s(9) == Approx(0.1));
  CHECK(s(10) == Approx(0.05));
  CHECK(s(25) == Approx(0.025));
  CHECK_THROWS_WITH(sch::ExponentialDecay(0.1, 0, 0.5),
                    Catch::Contains("`decay_steps` must be > 0") && Catch::Contains("decay_steps=0"));
}

TEST_CASE("PiecewiseConstantDecay: values[i] up to and including boundaries[i]", "[schedules]") {
  sch::PiecewiseConstantDecay p({10, 20}, {1.0, 0.5, 0.1});
  CHECK(p(0) == 1.0);
  CHECK(p(10) == 1.0);
  CHECK(p(11) == 0.5);
  CHECK(p(20) == 0.5);
  CHECK(p(21) == 0.1);
  CHECK(p(1000000) == 0.1);
  CHECK_THROWS_WITH(
      sch::PiecewiseConstantDecay({10, 20}, {1.0, 0.5}),
      Catch::Contains("boundaries should be 1 less than the length of values") && Catch::Contains("length 2"));
}

TEST_CASE("CosineDecay: alpha floor, clamp after decay_steps, linear warmup to warmup_target", "[schedules]") {
  sch::CosineDecay c(0.1, 100, {.alpha = 0.1, .name = "CosineDecay", .warmup_target = std::nullopt, .warmup_steps = 0});
  CHECK(c(0) == Approx(0.1));
  CHECK(c(50) == Approx(0.1 * (0.9 * 0.5 + 0.1)));  // cos(pi/2) = 0: 0.055
  CHECK(c(25) == Approx(0.1 * (0.9 * 0.5 * (1 + std::cos(M_PI / 4)) + 0.1)));
  CHECK(c(100) == Approx(0.01));
  CHECK(c(250) == Approx(0.01));  // clamped at decay_steps
  sch::CosineDecay w(0.0, 100, {.alpha = 0.0, .name = "CosineDecay", .warmup_target = 0.1, .warmup_steps = 10});
  CHECK(w(0) == Approx(0.0).margin(1e-15));
  CHECK(w(5) == Approx(0.05));   // (0.1 - 0) * 5 / 10 + 0
  CHECK(w(10) == Approx(0.1));   // the decay starts from warmup_target
  CHECK(w(60) == Approx(0.05));  // 50 of 100 decay steps
  CHECK(w(110) == Approx(0.0).margin(1e-15));
  CHECK(w(5000) == Approx(0.0).margin(1e-15));
  sch::CosineDecay from_lr0(0.02, 10, {.alpha = 0.0, .name = "CosineDecay", .warmup_target = 0.1, .warmup_steps = 4});
  CHECK(from_lr0(2) == Approx(0.02 + (0.1 - 0.02) * 0.5));
}

TEST_CASE("An optimizer with a schedule takes the rate of each step (at iterations before the update)", "[schedules]") {
  // SGD on w with gradient 1: w -= lr(step); ExponentialDecay(0.1, 1, 0.5): 0.1, 0.05, 0.025
  opt::SGD<double> sgd({.learning_rate = sch::ExponentialDecay(0.1, 1, 0.5)});
  Variable<double> v;
  v.name = "w";
  v.value = Tensor<double>({1}, {1.0});
  v.grad = Tensor<double>({1}, {1.0});
  CHECK(sgd.learning_rate() == Approx(0.1));
  sgd.apply_gradients({&v});
  CHECK(v.value[0] == Approx(0.9));
  sgd.apply_gradients({&v});
  CHECK(v.value[0] == Approx(0.85));
  sgd.apply_gradients({&v});
  CHECK(v.value[0] == Approx(0.825));
  CHECK(sgd.learning_rate() == Approx(0.0125));
  CHECK_THROWS_AS(sgd.set_learning_rate(0.5), keras::StateError);
  CHECK_THROWS_WITH(sgd.set_learning_rate(0.5),
                    Catch::Contains("LearningRateSchedule") && Catch::Contains("not settable"));
  // Keras 3 decays weights with the current rate: w -= w * wd * lr(step), then the step
  opt::Adam<double> adamw({.learning_rate = sch::PiecewiseConstantDecay({0}, {0.1, 0.01}),
                           .beta_1 = 0.9,
                           .beta_2 = 0.999,
                           .epsilon = 1e-7,
                           .amsgrad = false,
                           .weight_decay = 0.5,
                           .clipnorm = 0,
                           .clipvalue = 0,
                           .global_clipnorm = 0});
  Variable<double> u;
  u.value = Tensor<double>({1}, {2.0});
  u.grad = Tensor<double>({1}, {0.0});
  adamw.apply_gradients({&u});  // zero gradient: Adam moves nothing, decay 2 * 0.5 * 0.1
  CHECK(u.value[0] == Approx(1.9));
  adamw.apply_gradients({&u});  // step 1: lr 0.01
  CHECK(u.value[0] == Approx(1.9 - 1.9 * 0.5 * 0.01));
}

TEST_CASE("Schedules serialize in the optimizer config as Keras does, and come back from it", "[schedules]") {
  opt::Adam<float> adam(
      {.learning_rate = sch::CosineDecay(
           1e-3, 500, {.alpha = 0.1, .name = "CosineDecay", .warmup_target = 2e-3, .warmup_steps = 50})});
  auto c = adam.get_config();
  const auto& lr = c["learning_rate"];
  CHECK(lr["module"] == "keras.optimizers.schedules");
  CHECK(lr["class_name"] == "CosineDecay");
  CHECK(lr["registered_name"].is_null());
  CHECK(lr["config"]["initial_learning_rate"] == 1e-3);
  CHECK(lr["config"]["decay_steps"] == 500);
  CHECK(lr["config"]["alpha"] == 0.1);
  CHECK(lr["config"]["warmup_target"] == 2e-3);
  CHECK(lr["config"]["warmup_steps"] == 50);
  CHECK(lr["config"]["name"] == "CosineDecay");
  auto back = opt::from_config<float>({{"class_name", "Adam"}, {"config", c}});
  REQUIRE(back->learning_rate_schedule());
  for (keras::Index s : {0, 25, 50, 300, 550, 9999})
    CHECK((*back->learning_rate_schedule())(s) == Approx((*adam.learning_rate_schedule())(s)));
  // without "module" (TF.js / Keras 2 style) and the other two classes
  auto e = opt::from_config<float>(
      {{"class_name", "SGD"},
       {"config",
        {{"learning_rate",
          {{"class_name", "ExponentialDecay"},
           {"config",
            {{"initial_learning_rate", 0.1}, {"decay_steps", 10}, {"decay_rate", 0.5}, {"staircase", true}}}}}}}});
  CHECK((*e->learning_rate_schedule())(25) == Approx(0.025));
  auto p = sch::deserialize(sch::serialize(sch::PiecewiseConstantDecay({3}, {0.5, 0.25})));
  CHECK((*p)(3) == 0.5);
  CHECK((*p)(4) == 0.25);
  CHECK(p->get_config()["name"] == "PiecewiseConstant");
  CHECK_THROWS_WITH(sch::deserialize({{"class_name", "PolynomialDecay"}, {"config", nlohmann::json::object()}}),
                    Catch::Contains("Unknown learning rate schedule: 'PolynomialDecay'"));
  CHECK_THROWS_WITH(sch::deserialize({{"class_name", "CosineDecay"}, {"config", {{"decay_steps", 10}}}}),
                    Catch::Contains("CosineDecay: config has no 'initial_learning_rate'"));
  // a plain number stays a number
  CHECK(opt::Adam<float>({.learning_rate = 0.25}).get_config()["learning_rate"] == 0.25);
}
