// The layer checker (keras/testing/layer_check.hpp) catches each bug it is meant to catch: a layer
// with one deliberate bug per mode fails exactly the matching check, the correct one passes all.
#include <catch2/catch.hpp>
#include <keras/keras.hpp>
#include <keras/testing/layer_check.hpp>

using namespace keras;

namespace {
/// y = x * a * factor (a: one weight per channel). `bug` selects a deliberate defect.
template <class T = float>
class CheckedScale : public layers::Layer<T> {
 public:
  KERAS_LAYER(CheckedScale)
  CheckedScale(int bug, double factor, std::string name = "")
      : layers::Layer<T>(std::move(name)), bug_(bug), factor_(factor) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override { return in.at(0); }
  void forward(const typename layers::Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    y.resize(x.shape());
    const Index C = x.dim(-1);
    const Index n = bug_ == 2 ? x.size() - 1 : x.size();  // 2: the last element is never written
    const T extra = bug_ == 4 ? T(1e-3) * static_cast<T>(get_num_threads()) : T(0);  // 4: depends on the thread count
    for (Index i = 0; i < n; ++i) y[i] = x[i] * a().value[i % C] * static_cast<T>(factor_) + extra;
  }
  void backward(const typename layers::Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename layers::Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in[0];
    const Index C = x.dim(-1);
    if (this->needs_variable_grads()) {
      if (bug_ == 1) a().grad.setZero();  // 1: assigns instead of adding
      for (Index i = 0; i < x.size(); ++i) a().grad[i % C] += dy[i] * x[i] * static_cast<T>(factor_);
    }
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      const Index n = bug_ == 6 ? x.size() - 1 : x.size();  // 6: one input-gradient element never written
      const T wrong = bug_ == 3 ? T(2) : T(1);              // 3: a wrong input gradient
      for (Index i = 0; i < n; ++i) (*dx[0])[i] = wrong * dy[i] * a().value[i % C] * static_cast<T>(factor_);
    }
  }
  json get_config() const override {
    json c = layers::Layer<T>::get_config();
    c["bug"] = bug_;
    if (bug_ != 5) c["factor"] = factor_;  // 5: the config loses an argument
    return c;
  }
  static std::shared_ptr<layers::Layer<T>> from_config(const json& c) {
    const int bug = c.at("bug").get<int>();
    return std::make_shared<CheckedScale>(bug, bug == 7 ? 1.0 : c.value("factor", 1.0),
                                          c.value("name", ""));  // 7: from_config drops it
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override { this->add_weight("a", {in[0].back()}); }

 private:
  Variable<T>& a() { return *this->variables_.at(0); }
  int bug_;
  double factor_;
};
KERAS_REGISTER_LAYER(CheckedScale)

bool has(const testing::LayerCheckReport& r, const std::string& text) {
  for (auto& f : r.failures)
    if (f.find(text) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST_CASE("check_layer passes a correct layer and catches each kind of bug", "[testing][layer_check]") {
  Random rng(3);
  auto x = testing::detail::random_like({3, 4}, rng);
  auto check = [&](int bug) {
    CheckedScale<double> l(bug, 0.5, "s" + std::to_string(bug));
    auto r = testing::check_layer(l, {x});
    INFO(r.str());
    return r;
  };
  auto ok = check(0);
  CHECK(ok.ok());
  CHECK(ok.skipped.empty());
  CHECK(ok.gradient_errors.size() == 2);
  CHECK(ok.max_gradient_error() < 1e-8);

  auto r1 = check(1);
  CHECK(has(r1, "does not add into the gradient of 'a'"));
  CHECK(r1.failures.size() == 1);
  auto r2 = check(2);
  CHECK(has(r2, "forward left 1 of 12 output elements unwritten"));
  auto r3 = check(3);
  CHECK(has(r3, "gradient d/d input 0"));
  CHECK_FALSE(has(r3, "gradient d/d a"));
  auto r4 = check(4);
  CHECK(has(r4, "forward differs between 1 and 2 threads"));
  CHECK(r4.failures.size() == 1);
  auto r5 = check(5);
  CHECK(has(r5, "the layer rebuilt from its config, given the same weights, computes a different output"));
  auto r7 = check(7);
  CHECK(has(r7, "from_config(get_config()) gives a different config"));
  auto r6 = check(6);
  CHECK(has(r6, "1 of 12 elements of d/d input 0 unwritten"));
  CHECK_THROWS_AS(testing::require_layer_ok(*std::make_shared<CheckedScale<double>>(3, 0.5), {x}), ValueError);
}

TEST_CASE("Every registered built-in layer passes the layer check", "[testing][layer_check][layers]") {
  struct Case {
    json config;
    std::vector<Shape> inputs;
    bool training = false;
    double thread_tolerance = 0;
    double lo = -1, hi = 1;  ///< the inputs' range (Embedding: indices)
  };
  // One representative configuration per registered class; a class registered without a case here
  // fails this test, so a new layer cannot skip the check.
  const std::map<std::string, std::vector<Case>> cases = {
      {"Activation", {{{{"activation", "tanh"}}, {{2, 3, 4}}}}},
      {"Add", {{json::object(), {{2, 3}, {2, 3}, {2, 3}}}}},
      {"AveragePooling2D", {{{{"pool_size", 2}, {"strides", 1}, {"padding", "same"}}, {{2, 5, 4, 3}}}}},
      {"BatchNormalization",
       {{json::object(), {{3, 2, 2, 4}}, true},
        {{{"center", false}}, {{3, 2, 2, 4}}, false},
        {{{"scale", false}}, {{5, 3}}, true}}},
      {"Concatenate", {{{{"axis", -1}}, {{2, 2, 3}, {2, 2, 1}}}, {{{"axis", 1}}, {{2, 2, 3}, {2, 4, 3}}}}},
      // Conv2D adds per-thread partial sums of dkernel/dbias in thread order (docs/performance.md)
      {"Conv2D",
       {{{{"filters", 3}, {"kernel_size", 3}, {"padding", "same"}}, {{2, 5, 5, 2}}, false, 1e-13},
        {{{"filters", 2}, {"kernel_size", 1}, {"strides", 2}}, {{2, 5, 4, 3}}, false, 1e-13}}},
      {"Dense",
       {{{{"units", 3}, {"activation", "sigmoid"}}, {{3, 5}}}, {{{"units", 2}, {"use_bias", false}}, {{2, 4, 5}}}}},
      {"DepthwiseConv2D",
       {{{{"kernel_size", 3}, {"depth_multiplier", 2}, {"strides", 2}, {"padding", "same"}}, {{2, 6, 5, 3}}},
        {{{"kernel_size", 3}}, {{2, 6, 7, 4}}}}},
      {"Dropout", {{{{"rate", 0.3}}, {{4, 3}}}}},
      {"Flatten", {{json::object(), {{2, 3, 2, 2}}}}},
      {"GlobalAveragePooling2D", {{{{"keepdims", true}}, {{2, 4, 4, 3}}}}},
      {"GlobalMaxPooling2D", {{json::object(), {{2, 4, 4, 3}}}}},
      {"InputLayer", {{{{"batch_input_shape", {nullptr, 3}}}, {{2, 3}}}}},
      {"MaxPooling2D",
       {{{{"pool_size", 2}}, {{2, 4, 4, 3}}},
        {{{"pool_size", 3}, {"strides", 2}, {"padding", "same"}}, {{2, 5, 5, 2}}}}},
      {"ReLU", {{{{"max_value", 0.8}, {"negative_slope", 0.1}}, {{2, 6}}}}},
      {"Rescaling", {{{{"scale", 0.5}, {"offset", 1.0}}, {{2, 4}}}}},
      {"Reshape", {{{{"target_shape", {3, -1}}}, {{2, 3, 2}}}}},
      {"Softmax", {{json::object(), {{3, 6}}}}},
      {"ZeroPadding2D", {{{{"padding", {{1, 0}, {2, 1}}}}, {{2, 3, 3, 2}}}}},
      // the random image layers in inference (the identity); their training backward is checked as
      // the exact transpose of their forward in test_augmentation
      {"RandomFlip", {{{{"mode", "horizontal"}, {"seed", 1}}, {{2, 4, 5, 3}}}}},
      // text and sequence layers (more cases in test_layers_recurrent)
      {"Embedding", {{{{"input_dim", 7}, {"output_dim", 3}}, {{2, 4}}, false, 0, 0.0, 6.4}}},
      {"SimpleRNN", {{{{"units", 3}, {"return_sequences", true}}, {{2, 4, 2}}}}},
      {"GRU",
       {{{{"units", 2}, {"go_backwards", true}}, {{2, 3, 2}}}, {{{"units", 2}, {"reset_after", false}}, {{2, 3, 2}}}}},
      {"LSTM", {{{{"units", 2}, {"return_sequences", true}}, {{2, 3, 2}}}}},
      {"RandomRotation", {{{{"factor", 0.2}, {"seed", 1}}, {{2, 4, 5, 3}}}}},
      {"RandomZoom", {{{{"height_factor", 0.2}, {"seed", 1}}, {{2, 4, 5, 3}}}}},
      {"RandomTranslation", {{{{"height_factor", 0.2}, {"width_factor", 0.1}, {"seed", 1}}, {{2, 4, 5, 3}}}}},
      // issue 17: activations, merges, resampling, normalizations, convolutions and 1-D poolings
      {"LeakyReLU", {{{{"alpha", 0.2}}, {{2, 6}}}}},
      {"ELU", {{{{"alpha", 0.5}}, {{2, 6}}}}},
      {"PReLU", {{{{"shared_axes", {1, 2}}}, {{2, 3, 4, 2}}}}},
      {"Multiply", {{json::object(), {{2, 3}, {2, 3}, {2, 3}}}}},
      {"Subtract", {{json::object(), {{2, 3}, {2, 3}}}}},
      {"Average", {{json::object(), {{2, 3}, {2, 3}}}}},
      {"Maximum", {{json::object(), {{2, 3}, {2, 3}, {2, 3}}}}},
      {"Minimum", {{json::object(), {{2, 3}, {2, 3}}}}},
      {"UpSampling2D", {{{{"size", {2, 3}}, {"interpolation", "bilinear"}}, {{2, 3, 2, 2}}}}},
      {"Cropping2D", {{{{"cropping", {{1, 0}, {0, 2}}}}, {{2, 4, 4, 2}}}}},
      {"Resizing",
       {{{{"height", 3}, {"width", 5}}, {{2, 4, 4, 2}}},
        {{{"height", 2}, {"width", 2}, {"interpolation", "nearest"}}, {{2, 4, 3, 2}}}}},
      {"Normalization", {{json::object(), {{3, 4}}}, {{{"mean", {0.5, 1.0, 0.0, 2.0}}, {"variance", 2.0}}, {{3, 4}}}}},
      {"LayerNormalization", {{{{"axis", {-1}}}, {{3, 2, 5}}}}},
      {"SeparableConv2D",
       {{{{"filters", 3}, {"kernel_size", 3}, {"depth_multiplier", 2}, {"padding", "same"}},
         {{2, 5, 4, 2}},
         false,
         1e-13}}},
      {"Conv2DTranspose",
       {{{{"filters", 3}, {"kernel_size", 3}, {"strides", 2}, {"padding", "same"}}, {{2, 3, 4, 2}}, false, 1e-13}}},
      {"Conv1D",
       {{{{"filters", 3}, {"kernel_size", 3}, {"padding", "causal"}, {"dilation_rate", 2}},
         {{2, 7, 2}},
         false,
         1e-13}}},
      {"MaxPooling1D", {{{{"pool_size", 3}, {"strides", 2}, {"padding", "same"}}, {{2, 7, 3}}}}},
      {"AveragePooling1D", {{{{"pool_size", 2}}, {{2, 6, 3}}}}},
      {"GlobalAveragePooling1D", {{json::object(), {{2, 5, 3}}}}},
      {"GlobalMaxPooling1D", {{{{"keepdims", true}}, {{2, 5, 3}}}}},
  };
  Random rng(21);
  for (const auto& name : layers::registry<double>().names()) {
    if (name == "CheckedScale") continue;  // this file's test layer
    INFO("registered layer " << name);
    auto it = cases.find(name);
    REQUIRE(it != cases.end());
    for (const auto& c : it->second) {
      auto layer = layers::registry<double>().create(name, c.config);
      std::vector<Tensor<double>> xs;
      for (auto& s : c.inputs) xs.push_back(testing::detail::random_like(s, rng, c.lo, c.hi));
      testing::LayerCheckOptions opt;
      opt.training = c.training;
      opt.thread_tolerance = c.thread_tolerance;
      auto r = testing::check_layer(*layer, xs, opt);
      INFO(r.str());
      CHECK(r.ok());
      CHECK(r.skipped.empty());
      CHECK_FALSE(r.gradient_errors.empty());
    }
  }
}
