// Writing your own layer: a Swish activation with a learnable slope per channel,
//
//     y = x * sigmoid(beta_c * x),     beta: one trainable weight per channel (initialised to 1)
//
// The example (also run by ctest as example_custom_layer):
//   1. runs keras::testing::check_layer on it (gradients against central differences in double,
//      backward adds, every element written, thread count, config round trip);
//   2. trains a small model that uses it (float);
//   3. saves the model (TF.js layers format) and loads it back: the registry recreates the layer
//      from its class name, and the loaded model predicts exactly the same.
// Usage: custom_layer [output_dir]        exit code 0 when every check passes.
#include <keras/keras.hpp>
#include <keras/io/tfjs.hpp>
#include <keras/testing/layer_check.hpp>

#include <cmath>
#include <iostream>

namespace my {

using keras::Index;
using keras::json;
using keras::Shape;
using keras::Tensor;

template <class T = float>
class LearnableSwish : public keras::layers::Layer<T> {
 public:
  using Base = keras::layers::Layer<T>;
  // The Keras class name ("LearnableSwish", the key in saved models) and move_to_shared(), which
  // lets a temporary join a model: model.add(LearnableSwish<float>()).
  KERAS_LAYER(LearnableSwish)

  explicit LearnableSwish(keras::layers::LayerOptions o = {}) : Base(std::move(o.name), std::move(o.input_shape)) {}

  // Same shape out as in; the channel (last) axis must be known to size beta.
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (in[0].size() < 2 || in[0].back() < 0)
      throw keras::ShapeError("layer '" + this->name() + "' (LearnableSwish): needs a known last axis, got " +
                              keras::shape_str(in[0]));
    return in[0];
  }

  keras::Variable<T>& beta() { return *this->variables_.at(0); }

  void forward(const typename Base::Inputs& in, Tensor<T>& y, bool /*training*/) override {
    const Tensor<T>& x = *in.at(0);
    const Index C = x.dim(-1), rows = x.size() / C;
    y.resize(x.shape());  // buffers are owned by the model and reused between batches
    const T* b = beta().value.data();
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < C; ++c) {
        const T v = x[r * C + c];
        y[r * C + c] = v * sigmoid(b[c] * v);
      }
  }

  // dy: d(loss)/d(y). Writes d(loss)/d(x) into dx[0] (when requested: it is nullptr otherwise) and
  // ADDS d(loss)/d(beta) into beta().grad (the model zeroes the gradients before each step).
  void backward(const typename Base::Inputs& in, const Tensor<T>& /*y*/, const Tensor<T>& dy,
                const typename Base::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    const Index C = x.dim(-1), rows = x.size() / C;
    const T* b = beta().value.data();
    const bool want_dx = dx.at(0) != nullptr, want_db = this->needs_variable_grads();
    if (want_dx) dx[0]->resize(x.shape());
    T* gb = beta().grad.data();
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < C; ++c) {
        const Index i = r * C + c;
        const T v = x[i], s = sigmoid(b[c] * v), ds = s * (T(1) - s);
        if (want_dx) (*dx[0])[i] = dy[i] * (s + v * ds * b[c]);  // d/dx [x s(bx)] = s + x s' b
        if (want_db) gb[c] += dy[i] * v * v * ds;                // d/db [x s(bx)] = x^2 s'
      }
  }

  // Saved in model.json next to name/trainable/dtype; from_config must read it back.
  json get_config() const override { return Base::get_config(); }
  static std::shared_ptr<Base> from_config(const json& c) {
    return std::make_shared<LearnableSwish>(keras::layers::LayerOptions{c.value("name", "")});
  }

 protected:
  // Called once with the input shapes: create the weights (saved as "<layer name>/beta").
  void build_variables(const std::vector<Shape>& in) override {
    auto& b = this->add_weight("beta", {in[0].back()});
    b.value.setConstant(T(1));
  }

 private:
  static T sigmoid(T z) { return T(1) / (T(1) + std::exp(-z)); }
};

}  // namespace my

// One line makes the layer loadable by name, for float and double models.
using my::LearnableSwish;
KERAS_REGISTER_LAYER(LearnableSwish)

using namespace keras;

// ---- 1. the layer check (double) --------------------------------------------------------------------
// keras::testing::check_layer (keras/testing/layer_check.hpp) runs every check kerascpp runs on its
// own layers: backward() against central differences of L = sum(w * y) for the input and beta,
// backward ADDS into beta.grad (prefilled with non-zero values), every output and input-gradient
// element is written (NaN prefill), 1 and 2 threads give the same bits, and
// from_config(get_config()) rebuilds an equal layer. It returns a report; no test framework needed.
bool layer_check() {
  Random rng(7);
  LearnableSwish<double> layer({.name = "swish_check"});
  Tensor<double> x({4, 3, 5});
  for (auto& v : x) v = rng.uniform(-3, 3);
  keras::testing::LayerCheckOptions opt;
  opt.training = true;
  auto report = keras::testing::check_layer(layer, {x}, opt);
  std::cout << report.str();
  return report.ok() && report.skipped.empty();
}

// ---- 2. training, 3. save and load ------------------------------------------------------------------
int main(int argc, char** argv) try {
  const std::string out = argc > 1 ? argv[1] : "runs/custom_layer";
  bool ok = layer_check();

  // Data: y = sin(2 x0) + x1^2 / 2 on [-1.5, 1.5]^2.
  set_random_seed(1);
  Random rng(3);
  const Index n = 1024;
  Tensor<float> x({n, 2}), y({n, 1});
  for (Index i = 0; i < n; ++i) {
    float a = static_cast<float>(rng.uniform(-1.5, 1.5)), b = static_cast<float>(rng.uniform(-1.5, 1.5));
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = std::sin(2 * a) + 0.5f * b * b;
  }

  Sequential<float> model("swish_regressor");
  model.add(layers::InputLayer<float>({.shape = {2}}));
  model.add(layers::Dense<float>(32));
  model.add(LearnableSwish<float>({.name = "swish"}));  // used like any built-in layer
  model.add(layers::Dense<float>(32));
  model.add(LearnableSwish<float>({.name = "swish_2"}));
  model.add(layers::Dense<float>(1));
  model.summary();
  model.compile(optimizers::Adam<float>({.learning_rate = 0.01}), losses::MeanSquaredError<float>());

  const double before = model.evaluate(x, y).at("loss");
  auto h = model.fit(x, y, {.epochs = 60, .batch_size = 32, .validation_split = 0.2, .seed = 5, .verbose = 0});
  const double after = model.evaluate(x, y).at("loss");
  std::cout << "Training: loss " << before << " -> " << after << " (val_loss " << h["val_loss"].back() << ")\n";
  auto* swish = dynamic_cast<LearnableSwish<float>*>(model.get_layer("swish").get());
  std::cout << "Learned beta of 'swish' (first 4 of 32):";
  for (Index c = 0; c < 4; ++c) std::cout << " " << swish->beta().value[c];
  std::cout << "\n";
  if (!(after < 0.05 * before)) {
    std::cout << "FAILED: the model did not learn\n";
    ok = false;
  }

  io::save_model(model, out);
  auto loaded = io::load_model<float>(out);  // LearnableSwish is recreated from its class name
  auto* lswish = dynamic_cast<LearnableSwish<float>*>(loaded->get_layer("swish").get());
  const Tensor<float> p0 = model.predict(x), p1 = loaded->predict(x);
  double max_diff = 0;
  for (Index i = 0; i < p0.size(); ++i) max_diff = std::max(max_diff, double(std::abs(p0[i] - p1[i])));
  std::cout << "Saved to " << out << "/model.json and loaded back: layer 'swish' is a "
            << (lswish ? lswish->class_name() : "?") << ", max |prediction difference| " << max_diff << "\n";
  if (!lswish || max_diff != 0) {
    std::cout << "FAILED: the loaded model differs\n";
    ok = false;
  }
  std::cout << (ok ? "OK" : "FAILED") << "\n";
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "custom_layer: error: " << e.what() << "\n";
  return 1;
}
