// Text and sequence layers: Embedding, SimpleRNN, GRU, LSTM. Gradient checks in double (inputs and
// every weight, several time steps, both return_sequences settings, go_backwards), forward
// passes against plain loops written from Keras's formulas, models that TF.js builds and saves
// (the ctest fixture tfjs_models), save -> load round trips and the error messages.
#include <fstream>

#include "layer_check.hpp"
#include "model_files.hpp"

using namespace keras;
using namespace model_files;
using Vec = std::vector<double>;

namespace {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no keras::Error thrown>";
}

/// Weights U(-0.6, 0.6): moderate, so that tanh/sigmoid do not saturate and gradients flow
/// through every time step (the checker's default U(+-[0.5, 1.5]) saturates a recurrence).
void moderate_weights(layers::Layer<double>& l, std::uint64_t seed) {
  Random rng(seed);
  for (auto* v : l.variables())
    for (auto& e : v->value) e = rng.uniform(-0.6, 0.6);
}

testing::LayerCheckReport check_recurrent(layers::Layer<double>& l, const Shape& x_shape, std::uint64_t seed) {
  Random rng(seed);
  Tensor<double> x = testing::random_tensor(x_shape, rng);
  l.build(Shape{-1, -1, x_shape[2]});  // any sequence length, as Keras's (None, None, F)
  moderate_weights(l, seed + 1);
  testing::LayerCheckOptions opt;
  opt.randomize_variables = false;
  return testing::require_layer_passes(l, {x}, opt);
}

// ---- plain-loop references from Keras's formulas (one sample, weights row-major) -------------
double sigm(double v) { return 1 / (1 + std::exp(-v)); }

struct Weights {
  const Tensor<double>& W;  // [F, G U]
  const Tensor<double>& U;  // [U, G U]
  const double* b;          // G U (or 2 G U for GRU reset_after), nullptr: no bias
};

/// sum_k v[k] * M[k, col] for a row vector v.
double dot_col(const Vec& v, const Tensor<double>& M, Index col) {
  double s = 0;
  for (Index k = 0; k < static_cast<Index>(v.size()); ++k) s += v[k] * M.data()[k * M.dim(1) + col];
  return s;
}

/// Runs one sample [T, F] through a step function; returns the states in processing order.
template <class Step>
std::vector<Vec> run_sequence(const Tensor<double>& x, Index n, Index units, bool backwards, Step step) {
  const Index T = x.dim(1), F = x.dim(2);
  Vec h(units, 0.0);
  std::vector<Vec> out;
  for (Index s = 0; s < T; ++s) {
    const Index t = backwards ? T - 1 - s : s;
    Vec xt(x.data() + (n * T + t) * F, x.data() + (n * T + t + 1) * F);
    h = step(xt, h);
    out.push_back(h);
  }
  return out;
}

std::vector<Vec> ref_lstm(const Tensor<double>& x, Index n, Index u, const Weights& w, bool backwards) {
  Vec c(u, 0.0);
  return run_sequence(x, n, u, backwards, [&](const Vec& xt, const Vec& h) {
    Vec hn(u);
    for (Index j = 0; j < u; ++j) {
      double g[4];
      for (int k = 0; k < 4; ++k)
        g[k] = dot_col(xt, w.W, k * u + j) + dot_col(h, w.U, k * u + j) + (w.b ? w.b[k * u + j] : 0);
      c[j] = sigm(g[1]) * c[j] + sigm(g[0]) * std::tanh(g[2]);  // i, f, c, o
      hn[j] = sigm(g[3]) * std::tanh(c[j]);
    }
    return hn;
  });
}

std::vector<Vec> ref_gru(const Tensor<double>& x, Index n, Index u, const Weights& w, bool backwards,
                         bool reset_after) {
  return run_sequence(x, n, u, backwards, [&](const Vec& xt, const Vec& h) {
    Vec z(u), r(u), hn(u);
    const double* bi = w.b;
    const double* br = w.b && reset_after ? w.b + 3 * u : nullptr;
    for (Index j = 0; j < u; ++j) {
      z[j] = sigm(dot_col(xt, w.W, j) + (bi ? bi[j] : 0) + dot_col(h, w.U, j) + (br ? br[j] : 0));
      r[j] = sigm(dot_col(xt, w.W, u + j) + (bi ? bi[u + j] : 0) + dot_col(h, w.U, u + j) + (br ? br[u + j] : 0));
    }
    Vec rh(u);
    for (Index j = 0; j < u; ++j) rh[j] = r[j] * h[j];
    for (Index j = 0; j < u; ++j) {
      const double xh = dot_col(xt, w.W, 2 * u + j) + (bi ? bi[2 * u + j] : 0);
      const double hh = reset_after ? std::tanh(xh + r[j] * (dot_col(h, w.U, 2 * u + j) + (br ? br[2 * u + j] : 0)))
                                    : std::tanh(xh + dot_col(rh, w.U, 2 * u + j));
      hn[j] = z[j] * h[j] + (1 - z[j]) * hh;
    }
    return hn;
  });
}

std::vector<Vec> ref_simple(const Tensor<double>& x, Index n, Index u, const Weights& w, bool backwards) {
  return run_sequence(x, n, u, backwards, [&](const Vec& xt, const Vec& h) {
    Vec hn(u);
    for (Index j = 0; j < u; ++j) hn[j] = std::tanh(dot_col(xt, w.W, j) + dot_col(h, w.U, j) + (w.b ? w.b[j] : 0));
    return hn;
  });
}

/// Compares a layer's output with the reference states (the whole sequence or the last state).
template <class Ref>
void check_against_reference(layers::Layer<double>& l, const Tensor<double>& x, Index units, bool sequences, Ref ref) {
  Tensor<double> y = l.call(x);
  const Index N = x.dim(0), T = x.dim(1);
  double worst = 0;
  for (Index n = 0; n < N; ++n) {
    auto states = ref(n);
    for (Index s = sequences ? 0 : T - 1; s < T; ++s)
      for (Index j = 0; j < units; ++j) {
        const double got = sequences ? y.data()[(n * T + s) * units + j] : y.data()[n * units + j];
        worst = std::max(worst, std::abs(got - states[s][j]));
      }
  }
  INFO(l.name() << ": max |layer - reference| = " << worst);
  CHECK(worst < 1e-12);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("Embedding: gather, gradient check, config, errors", "[layers][embedding]") {
  layers::Embedding<double> e(7, 4, {.name = "emb"});
  Random rng(3);
  Tensor<double> idx({3, 5});
  for (auto& v : idx) v = static_cast<double>(rng.index(7));
  auto r = testing::require_gradients_ok(e, {idx});
  CHECK(r.gradient_errors.size() == 2);  // d/d input (zero: indices) and d/d embeddings
  // forward is a gather of rows
  Tensor<double> y = e.call(idx);
  REQUIRE(y.shape() == Shape{3, 5, 4});
  for (Index i = 0; i < idx.size(); ++i)
    for (Index k = 0; k < 4; ++k) CHECK(y[i * 4 + k] == e.embeddings().value[static_cast<Index>(idx[i]) * 4 + k]);
  auto cfg = e.get_config();
  CHECK(cfg["input_dim"] == 7);
  CHECK(cfg["output_dim"] == 4);
  CHECK(cfg["mask_zero"] == false);
  CHECK(cfg["embeddings_initializer"]["class_name"] == "RandomUniform");

  idx[4] = 7;
  CHECK_THAT(error_of([&] { e.call(idx); }), Catch::Contains("layer 'emb' (Embedding): index 7") &&
                                                 Catch::Contains("out of range [0, 7)") && Catch::Contains("(3, 5)"));
  idx[4] = 6.7;
  CHECK_THAT(error_of([&] { e.call(idx); }), Catch::Contains("index 6.7 (rounded to 7) at position 4"));
  idx[4] = -1;
  CHECK_THAT(error_of([&] { e.call(idx); }), Catch::Contains("out of range"));
  CHECK_THAT(error_of([] { layers::Embedding<float>(5, 2, {.mask_zero = true, .name = "m"}); }),
             Catch::Contains("Embedding 'm': mask_zero=True is not supported"));
  CHECK_THAT(error_of([] {
               layers::registry<float>().create("Embedding", {{"name", "e0"}, {"input_dim", 0}, {"output_dim", 2}});
             }),
             Catch::Contains("Embedding 'e0': 'input_dim' must be an integer in [1,"));
}

TEST_CASE("SimpleRNN: BPTT gradient check and Keras's formula", "[layers][recurrent]") {
  for (bool seq : {false, true})
    for (bool back : {false, true})
      for (bool bias : {true, false}) {
        INFO("return_sequences " << seq << ", go_backwards " << back << ", use_bias " << bias);
        layers::SimpleRNN<double> l(4, {.use_bias = bias, .return_sequences = seq, .go_backwards = back});
        auto r = check_recurrent(l, {2, 5, 3}, 10);
        CHECK(r.gradient_errors.size() == (bias ? 4u : 3u));
        Random rng(5);
        Tensor<double> x = testing::random_tensor({3, 6, 3}, rng);
        Weights w{l.kernel().value, l.recurrent_kernel().value, bias ? l.bias().value.data() : nullptr};
        check_against_reference(l, x, 4, seq, [&](Index n) { return ref_simple(x, n, 4, w, back); });
      }
}

TEST_CASE("LSTM: BPTT gradient check, gate order i f c o", "[layers][recurrent]") {
  for (bool seq : {false, true})
    for (bool back : {false, true}) {
      INFO("return_sequences " << seq << ", go_backwards " << back);
      layers::LSTM<double> l(3, {.return_sequences = seq, .go_backwards = back});
      auto r = check_recurrent(l, {2, 5, 4}, 20);
      CHECK(r.gradient_errors.size() == 4u);
      REQUIRE(l.kernel().value.shape() == Shape{4, 12});
      REQUIRE(l.recurrent_kernel().value.shape() == Shape{3, 12});
      REQUIRE(l.bias().value.shape() == Shape{12});
      Random rng(6);
      Tensor<double> x = testing::random_tensor({2, 7, 4}, rng);
      Weights w{l.kernel().value, l.recurrent_kernel().value, l.bias().value.data()};
      check_against_reference(l, x, 3, seq, [&](Index n) { return ref_lstm(x, n, 3, w, back); });
    }
  // other activations, no bias: gradients still check
  layers::LSTM<double> l(
      3,
      {.activation = "softsign", .recurrent_activation = "hard_sigmoid", .use_bias = false, .return_sequences = true});
  check_recurrent(l, {2, 4, 2}, 21);
  // unit_forget_bias: the forget slice of the bias starts at 1, the others at the initializer's 0
  layers::LSTM<float> f(2);
  f.build(Shape{-1, 3, 2});
  const Tensor<float>& b = f.bias().value;
  CHECK(std::vector<float>(b.begin(), b.end()) == std::vector<float>{0, 0, 1, 1, 0, 0, 0, 0});
}

TEST_CASE("GRU: BPTT gradient check, reset_after True (bias [2, 3u]) and False", "[layers][recurrent]") {
  for (bool reset_after : {true, false})
    for (bool seq : {false, true})
      for (bool back : {false, true}) {
        INFO("reset_after " << reset_after << ", return_sequences " << seq << ", go_backwards " << back);
        layers::GRU<double> l(3, {.return_sequences = seq, .go_backwards = back, .reset_after = reset_after});
        auto r = check_recurrent(l, {2, 5, 4}, 30 + seq + 2 * back);
        CHECK(r.gradient_errors.size() == 4u);
        REQUIRE(l.bias().value.shape() == (reset_after ? Shape{2, 9} : Shape{9}));
        Random rng(7);
        Tensor<double> x = testing::random_tensor({2, 6, 4}, rng);
        Weights w{l.kernel().value, l.recurrent_kernel().value, l.bias().value.data()};
        check_against_reference(l, x, 3, seq, [&](Index n) { return ref_gru(x, n, 3, w, back, reset_after); });
      }
  layers::GRU<double> nb(3, {.use_bias = false, .return_sequences = true, .reset_after = false});
  check_recurrent(nb, {2, 4, 2}, 40);
  CHECK(layers::GRU<float>(2).get_config()["reset_after"] == true);  // Keras 2 / 3 default
}

TEST_CASE("Recurrent layers: Keras config keys and the options that raise", "[layers][recurrent]") {
  layers::LSTM<float> l(4, {.return_sequences = true, .go_backwards = true, .name = "lstm_x"});
  auto c = l.get_config();
  for (const char* k :
       {"units", "activation", "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
        "bias_initializer", "unit_forget_bias", "dropout", "recurrent_dropout", "return_sequences", "return_state",
        "go_backwards", "stateful", "unroll", "kernel_regularizer", "recurrent_constraint"})
    CHECK(c.contains(k));
  CHECK(c["recurrent_initializer"]["class_name"] == "Orthogonal");
  CHECK(c["go_backwards"] == true);
  auto& reg = layers::registry<float>();
  auto back = reg.create("LSTM", c);
  CHECK(back->get_config() == c);

  CHECK_THAT(error_of([] { layers::LSTM<float>(2, {.dropout = 0.2, .name = "d"}); }),
             Catch::Contains("LSTM 'd': dropout=0.2 and recurrent_dropout=0.0: only 0 is supported"));
  CHECK_THAT(error_of([] { layers::GRU<float>(2, {.recurrent_dropout = 0.5, .name = "g"}); }),
             Catch::Contains("GRU 'g': dropout=0.0 and recurrent_dropout=0.5"));
  CHECK_THAT(error_of([] { layers::SimpleRNN<float>(2, {.return_state = true, .name = "s"}); }),
             Catch::Contains("SimpleRNN 's': return_state=True is not supported"));
  CHECK_THAT(error_of([] { layers::SimpleRNN<float>(2, {.stateful = true, .name = "s"}); }),
             Catch::Contains("stateful=True is not supported"));
  CHECK_THAT(error_of([] { layers::SimpleRNN<float>(2, {.activation = "softmax", .name = "s"}); }),
             Catch::Contains("SimpleRNN 's': activation 'softmax' is not supported in a recurrent layer"));
  CHECK_THAT(error_of([&] {
               reg.create("GRU", {{"name", "g"}, {"units", 2}, {"time_major", true}});
             }),
             Catch::Contains("GRU 'g': time_major=True is not supported"));
  CHECK_THAT(error_of([] { layers::SimpleRNN<float>(0, {.name = "z"}); }),
             Catch::Contains("SimpleRNN 'z': units must be positive"));
  layers::GRU<float> g(2, {.name = "g2"});
  CHECK_THAT(error_of([&] {
               g.build(Shape{-1, 5});
             }),
             Catch::Contains("layer 'g2' (GRU): expected input of shape (batch, time, features)") &&
                 Catch::Contains("(None, 5)"));
}

TEST_CASE("Orthogonal initializer: Keras's recurrent default is orthonormal", "[layers][initializers]") {
  for (Shape s : {Shape{5, 5}, Shape{3, 12}, Shape{12, 3}}) {
    Tensor<double> t(s);
    initializers::Initializer init("orthogonal");
    init.gain = 2.0;
    init.fill(t, 1, 1, 99);
    const Index R = s[0], C = s[1];
    const bool tall = R >= C;
    const Index k = tall ? C : R, n = tall ? R : C;
    double worst = 0;
    for (Index a = 0; a < k; ++a)
      for (Index b = 0; b < k; ++b) {
        double d = 0;
        for (Index e = 0; e < n; ++e) d += tall ? t[e * C + a] * t[e * C + b] : t[a * C + e] * t[b * C + e];
        worst = std::max(worst, std::abs(d - (a == b ? 4.0 : 0.0)));
      }
    CHECK(worst < 1e-12);
  }
  auto j = initializers::Initializer("orthogonal").to_json();
  CHECK(j["class_name"] == "Orthogonal");
  CHECK(
      initializers::Initializer::from_json({{"class_name", "Orthogonal"}, {"config", {{"gain", 3}, {"seed", nullptr}}}})
          .gain == 3.0);
}

TEST_CASE("Text and sequence models written by TF.js predict what TF.js predicts", "[io][tfjs][recurrent]") {
  if (!have_tfjs_model("text_gru")) return;
  for (std::string name : {"text_lstm", "rnn_functional", "text_gru"}) {
    SECTION(name) {
      auto m = check_tfjs_model(name);  // and ours, saved again, reload bit for bit and load in TF.js
      if (name == "text_lstm") {
        CHECK(m->class_name() == "Sequential");
        CHECK(m->count_params() == 378);
        CHECK(m->get_layer("embedding")->class_name() == "Embedding");
      } else if (name == "text_gru") {  // an int32 Input: the indices arrive as floats all the same
        CHECK(m->class_name() == "Functional");
        CHECK(m->count_params() == 180);
        CHECK(m->get_layer("gru_back")->get_config()["reset_after"] == false);
      } else {
        CHECK(m->class_name() == "Functional");
        CHECK(m->count_params() == 320);
        CHECK(m->get_layer("lstm_back")->get_config()["go_backwards"] == true);
      }
    }
  }
}

TEST_CASE("Embedding -> GRU (reset_after) -> LSTM -> SimpleRNN: save, load, train", "[io][recurrent]") {
  using namespace layers;
  auto in = Input<float>({6}, "tokens");
  auto x = Embedding(12, 5, {.name = "emb"})(in);
  x = GRU(4, {.return_sequences = true, .name = "gru"})(x);
  x = LSTM(4, {.return_sequences = true, .go_backwards = true, .name = "lstm"})(x);
  x = SimpleRNN(3, {.name = "rnn"})(x);
  auto out = Dense(2, {.activation = "softmax", .name = "probs"})(x);
  auto m = std::make_shared<Model<float>>(in, out, "seq_model");
  Random rng(11);
  Tensor<float> tokens({16, 6}), labels({16, 2});
  labels.setZero();
  for (Index n = 0; n < 16; ++n) {
    Index ones = 0;
    for (Index t = 0; t < 6; ++t) {
      const Index v = static_cast<Index>(rng.index(12));
      tokens[n * 6 + t] = static_cast<float>(v);
      ones += v < 6;
    }
    labels[n * 2 + (ones >= 3 ? 1 : 0)] = 1;
  }
  m->compile("adam", "categorical_crossentropy");
  const double before = m->evaluate(tokens, labels, {.verbose = 0}).at("loss");
  m->fit(tokens, labels, {.epochs = 30, .batch_size = 8, .verbose = 0});
  const double after = m->evaluate(tokens, labels, {.verbose = 0}).at("loss");
  INFO("loss " << before << " -> " << after);
  CHECK(after < before * 0.8);

  fs::path dir = scratch("seq_model");
  models::save_model(*m, dir.string());
  auto back = models::load_model(dir.string());
  CHECK(max_abs_diff(back->predict(tokens, {.verbose = 0}), m->predict(tokens, {.verbose = 0})) == 0);
  CHECK(back->get_layer("gru")->variables().at(2)->value.shape() == Shape{2, 12});
  CHECK(back->get_layer("lstm")->get_config()["go_backwards"] == true);
}

TEST_CASE("Keras 2 recurrent weight names (lstm/lstm_cell/kernel) load as TF.js loads them", "[io][recurrent]") {
  using namespace layers;
  auto in = Input<float>({4, 3}, "x");
  auto x = LSTM(2, {.return_sequences = true, .name = "lstm"})(in);
  auto out = GRU(2, {.reset_after = false, .name = "gru_1"})(x);
  Model<float> m(in, out, "k2");
  fs::path dir = scratch("keras2_names");
  models::save_model(m, dir.string());
  json j;
  {
    std::ifstream f(dir / "model.json");
    f >> j;
  }
  int renamed = 0;
  for (auto& w : j["weightsManifest"][0]["weights"]) {
    std::string n = w["name"];
    const std::string layer = n.substr(0, n.find('/'));
    w["name"] = layer + "/" + (layer == "lstm" ? "lstm_cell" : "gru_cell_1") + n.substr(n.find('/'));
    ++renamed;
  }
  CHECK(renamed == 6);
  CHECK(j["weightsManifest"][0]["weights"][0]["name"] == "lstm/lstm_cell/kernel");
  {
    std::ofstream f(dir / "model.json");
    f << j.dump();
  }
  Random rng(2);
  Tensor<float> xs({2, 4, 3});
  for (auto& v : xs) v = static_cast<float>(rng.uniform(-1, 1));
  auto back = models::load_model(dir.string());
  CHECK(max_abs_diff(back->predict(xs, {.verbose = 0}), m.predict(xs, {.verbose = 0})) == 0);
}
