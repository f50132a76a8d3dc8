// SimpleRNN, GRU and LSTM over (batch, time, features), as Keras: weights `kernel` [F, G*units],
// `recurrent_kernel` [units, G*units], `bias` [G*units] (GRU reset_after=True: [2, 3*units], input
// bias then recurrent bias), with Keras's gate orders (LSTM i, f, c, o; GRU z, r, h). The input
// projection x . kernel (+ bias) runs as one GEMM over every time step; each step adds
// h_{t-1} . recurrent_kernel. backward is backpropagation through time over the stored steps.
//
//   SimpleRNN  h = act(x W + b + h_prev U)
//   LSTM       [i f c o] = x W + h_prev U + b;  c = ra(f) c_prev + ra(i) act(c~);  h = ra(o) act(c)
//   GRU        z = ra(x Wz + h_prev Uz + bz), r likewise;  h = z h_prev + (1 - z) hh, with
//              reset_after=True:  hh = act(x Wh + bh + r * (h_prev Uh + bh_rec))
//              reset_after=False: hh = act(x Wh + bh + (r * h_prev) Uh)
// go_backwards runs the steps from the last time step to the first and, as Keras, returns the
// sequence in that (reversed) order. The initial state is zero. return_state, stateful, masks and
// non-zero dropout / recurrent_dropout raise a ValueError naming the layer.
#pragma once
#include <algorithm>
#include <cmath>
#include <optional>

#include "../ops/activations.hpp"
#include "../ops/gemm.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct SimpleRNNOptions {
  std::string activation = "tanh";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer recurrent_initializer = "orthogonal";
  initializers::Initializer bias_initializer = "zeros";
  double dropout = 0.0;            ///< non-zero raises a ValueError
  double recurrent_dropout = 0.0;  ///< non-zero raises a ValueError
  bool return_sequences = false;
  bool return_state = false;  ///< true raises a ValueError (one output per layer)
  bool go_backwards = false;
  bool stateful = false;  ///< true raises a ValueError
  bool unroll = false;    ///< accepted; the computation is the same
  std::string name;
  std::optional<std::uint64_t> seed;  ///< seed for the kernel initializer (default: global seed)
  Shape input_shape;                  ///< per-sample input shape (time, features); see LayerOptions
};

struct GRUOptions {
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer recurrent_initializer = "orthogonal";
  initializers::Initializer bias_initializer = "zeros";
  double dropout = 0.0;
  double recurrent_dropout = 0.0;
  bool return_sequences = false;
  bool return_state = false;
  bool go_backwards = false;
  bool stateful = false;
  bool unroll = false;
  bool reset_after = true;  ///< Keras 2 / 3 default; TF.js 4 only has false
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;
};

struct LSTMOptions {
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer recurrent_initializer = "orthogonal";
  initializers::Initializer bias_initializer = "zeros";
  bool unit_forget_bias = true;  ///< the forget gate's bias starts at 1
  double dropout = 0.0;
  double recurrent_dropout = 0.0;
  bool return_sequences = false;
  bool return_state = false;
  bool go_backwards = false;
  bool stateful = false;
  bool unroll = false;
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;
};

namespace detail {

/// The element-wise activations a recurrent step computes itself (forward and derivative),
/// with the formulas of ops/activations.hpp.
inline bool recurrent_activation_supported(keras::Activation a) {
  switch (a) {
    case keras::Activation::Linear:
    case keras::Activation::ReLU:
    case keras::Activation::Sigmoid:
    case keras::Activation::Tanh:
    case keras::Activation::HardSigmoid:
    case keras::Activation::Softsign:
    case keras::Activation::ELU:
      return true;
    default:
      return false;
  }
}
template <class T>
inline T step_act(keras::Activation a, T x) {
  switch (a) {
    case keras::Activation::ReLU:
      return x > T(0) ? x : T(0);
    case keras::Activation::Sigmoid:
      return keras::detail::stable_sigmoid(x);
    case keras::Activation::Tanh:
      return std::tanh(x);
    case keras::Activation::HardSigmoid:
      return std::min(std::max(x + T(3), T(0)), T(6)) / T(6);
    case keras::Activation::Softsign:
      return x / (T(1) + std::abs(x));
    case keras::Activation::ELU:
      return x > T(0) ? x : std::expm1(x);
    default:
      return x;
  }
}
/// d act / dx at x, given y = act(x).
template <class T>
inline T step_act_grad(keras::Activation a, T x, T y) {
  switch (a) {
    case keras::Activation::ReLU:
      return x > T(0) ? T(1) : T(0);
    case keras::Activation::Sigmoid:
      return y * (T(1) - y);
    case keras::Activation::Tanh:
      return T(1) - y * y;
    case keras::Activation::HardSigmoid:
      return x > T(-3) && x < T(3) ? T(1) / T(6) : T(0);
    case keras::Activation::Softsign: {
      const T d = T(1) + std::abs(x);
      return T(1) / (d * d);
    }
    case keras::Activation::ELU:
      return x > T(0) ? T(1) : y + T(1);
    default:
      return T(1);
  }
}

}  // namespace detail

/// What SimpleRNN, GRU and LSTM share: Keras's RNN arguments, the weights, the time loop and BPTT.
/// A subclass is the cell: step_forward / step_backward for one time step over the whole batch.
template <class T>
class RecurrentBase : public Layer<T> {
 public:
  using Inputs = typename Layer<T>::Inputs;
  using GradInputs = typename Layer<T>::GradInputs;

  Index units() const { return units_; }
  Variable<T>& kernel() { return *this->variables_.at(0); }
  Variable<T>& recurrent_kernel() { return *this->variables_.at(1); }
  Variable<T>& bias() {
    if (!s_.use_bias) throw ValueError(this->class_name() + " '" + this->name() + "' has no bias");
    return *this->variables_.at(2);
  }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (in[0].size() != 3 || in[0][2] < 0)
      throw ShapeError("layer '" + this->name() + "' (" + this->class_name() +
                       "): expected input of shape (batch, time, features) with known features, got " +
                       shape_str(in[0]));
    return s_.return_sequences ? Shape{in[0][0], in[0][1], units_} : Shape{in[0][0], units_};
  }

  void forward(const Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    this->check_input_shapes({x.shape()});
    N_ = x.dim(0);
    T_ = x.dim(1);
    if (T_ < 1)
      throw ShapeError("layer '" + this->name() + "' (" + this->class_name() +
                       "): the input has no time steps: " + shape_str(x.shape()));
    const Index F = x.dim(2), G = gates_ * units_;
    xw_.resize({N_ * T_, G});
    ops::gemm<T>(false, false, N_ * T_, G, F, T(1), x.data(), F, kernel().value.data(), G, T(0), xw_.data(), G);
    if (s_.use_bias) add_rows(bias().value.data(), xw_.data(), N_ * T_, G);
    H_.resize({T_ + 1, N_, units_});
    std::fill(H_.data(), H_.data() + N_ * units_, T(0));
    Z_.resize({T_, N_, G});
    A_.resize({T_, N_, G});
    E_.resize({T_, N_, G});
    begin_sequence();
    for (Index s = 0; s < T_; ++s) step_forward(s, xw_.data() + time_of(s) * G, T_ * G);
    write_output(y);
  }

  void backward(const Inputs& in, const Tensor<T>&, const Tensor<T>& dy, const GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    const Index F = x.dim(2), G = gates_ * units_, NU = N_ * units_;
    grads_ = this->needs_variable_grads();
    dxw_.resize({N_ * T_, G});
    dh_.resize({N_, units_});
    dh_.setZero();
    dhp_.resize({N_, units_});
    begin_backward();
    for (Index s = T_ - 1; s >= 0; --s) {
      // d(loss)/d(h_s): from the next step, plus the output's gradient at this step
      const T* d = s_.return_sequences ? dy.data() : (s == T_ - 1 ? dy.data() : nullptr);
      if (d)
        for (Index n = 0; n < N_; ++n)
          for (Index j = 0; j < units_; ++j)
            dh_[n * units_ + j] += d[s_.return_sequences ? (n * T_ + s) * units_ + j : n * units_ + j];
      step_backward(s, dh_.data(), dxw_.data() + time_of(s) * G, T_ * G, dhp_.data());
      std::copy(dhp_.data(), dhp_.data() + NU, dh_.data());
    }
    if (grads_) {
      ops::gemm<T>(true, false, F, G, N_ * T_, T(1), x.data(), F, dxw_.data(), G, T(1), kernel().grad.data(), G);
      if (s_.use_bias) sum_rows(dxw_.data(), N_ * T_, G, bias().grad.data());
    }
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      ops::gemm<T>(false, true, N_ * T_, F, G, T(1), dxw_.data(), G, kernel().value.data(), G, T(0), dx[0]->data(), F);
    }
  }

 protected:
  /// The arguments the three layers share (from their options structs).
  struct Spec {
    std::string activation, recurrent_activation;
    bool use_bias = true;
    initializers::Initializer kernel_initializer, recurrent_initializer, bias_initializer;
    bool return_sequences = false, go_backwards = false, unroll = false;
    std::optional<std::uint64_t> seed;
  };
  template <class O>
  RecurrentBase(const char* cls, Index units, Index gates, const O& o, std::string recurrent_activation)
      : Layer<T>(o.name.empty() ? detail::unique_name(cls) : o.name, o.input_shape), units_(units), gates_(gates) {
    // (this->name() is safe here: the name is set, so the pure class_name() is not called)
    const std::string who = std::string(cls) + " '" + this->name() + "'";
    if (units <= 0) throw ValueError(who + ": units must be positive, got " + std::to_string(units));
    if (o.dropout != 0.0 || o.recurrent_dropout != 0.0)
      throw ValueError(who + ": dropout=" + json(o.dropout).dump() +
                       " and recurrent_dropout=" + json(o.recurrent_dropout).dump() +
                       ": only 0 is supported (use a Dropout layer before or after the recurrent layer)");
    if (o.return_state)
      throw ValueError(who + ": return_state=True is not supported (a kerascpp layer has one output)");
    if (o.stateful) throw ValueError(who + ": stateful=True is not supported (every batch starts from a zero state)");
    s_ = Spec{o.activation,
              std::move(recurrent_activation),
              o.use_bias,
              o.kernel_initializer,
              o.recurrent_initializer,
              o.bias_initializer,
              o.return_sequences,
              o.go_backwards,
              o.unroll,
              o.seed};
    act_ = activation_of(s_.activation, "activation", who);
    ract_ = s_.recurrent_activation.empty() ? keras::Activation::Linear
                                            : activation_of(s_.recurrent_activation, "recurrent_activation", who);
  }

  /// Processing step s reads time step time_of(s).
  Index time_of(Index s) const { return s_.go_backwards ? T_ - 1 - s : s; }
  T* state(Index s) { return H_.data() + s * N_ * units_; }           // h before step s (s = 0: zeros)
  T* pre(Index s) { return Z_.data() + s * N_ * gates_ * units_; }    // pre-activations of step s
  T* act(Index s) { return A_.data() + s * N_ * gates_ * units_; }    // activations of step s
  T* extra(Index s) { return E_.data() + s * N_ * gates_ * units_; }  // the cell's own values of step s
  T fa(T x) const { return detail::step_act(act_, x); }
  T ra(T x) const { return detail::step_act(ract_, x); }
  T fa_grad(T x, T y) const { return detail::step_act_grad(act_, x, y); }
  T ra_grad(T x, T y) const { return detail::step_act_grad(ract_, x, y); }

  /// C[rows, cols] (row stride ldc) (+)= A[rows, k] (lda) . B[k, cols] (ldb), with op = transpose.
  static void mm(bool ta, bool tb, Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta,
                 T* c, Index ldc) {
    ops::gemm<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
  }
  static void add_rows(const T* b, T* m, Index rows, Index cols) {
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) m[r * cols + c] += b[c];
  }
  static void sum_rows(const T* m, Index rows, Index cols, T* out, Index ldm = -1) {
    if (ldm < 0) ldm = cols;
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) out[c] += m[r * ldm + c];
  }

  /// Step s: p = x_t . kernel (+ input bias), rows n at p + n * ldp; writes state(s + 1).
  virtual void step_forward(Index s, const T* p, Index ldp) = 0;
  /// Step s backwards: dh = d(loss)/d(state(s + 1)); writes d/dp (rows at dp + n * ldp), adds
  /// the recurrent weights' gradients when grads_, and writes dh_prev = d(loss)/d(state(s)).
  virtual void step_backward(Index s, const T* dh, T* dp, Index ldp, T* dh_prev) = 0;
  virtual void begin_sequence() {}
  virtual void begin_backward() {}
  virtual Shape bias_shape() const { return {gates_ * units_}; }
  virtual void init_bias(Tensor<T>& b, double fan_in) const {
    s_.bias_initializer.fill(b, fan_in, double(units_), next_global_seed());
  }

  void build_variables(const std::vector<Shape>& in) override {
    const Index F = in[0][2], G = gates_ * units_;
    auto& k = this->add_weight("kernel", {F, G});
    s_.kernel_initializer.fill(k.value, double(F), double(G), s_.seed ? *s_.seed : next_global_seed());
    auto& r = this->add_weight("recurrent_kernel", {units_, G});
    s_.recurrent_initializer.fill(r.value, double(units_), double(G), next_global_seed());
    if (s_.use_bias) init_bias(this->add_weight("bias", bias_shape()).value, double(F));
  }

  /// The three weights (initializers::WeightOption), in Spec and in each layer's options struct.
  template <class O>
  static constexpr initializers::WeightOption<O> kWeights[3] = {
      {"kernel", &O::kernel_initializer}, {"recurrent", &O::recurrent_initializer}, {"bias", &O::bias_initializer}};
  /// Keras's config keys shared by the three layers.
  json rnn_config() const {
    json c = Layer<T>::get_config();
    c["units"] = units_;
    c["activation"] = s_.activation;
    if (!s_.recurrent_activation.empty()) c["recurrent_activation"] = s_.recurrent_activation;
    if (gates_ > 1) c["implementation"] = 2;  // the gated cells, LSTM and GRU
    c["use_bias"] = s_.use_bias;
    initializers::write_weight_options(c, s_, kWeights<Spec>);
    c["dropout"] = 0.0;
    c["recurrent_dropout"] = 0.0;
    c["return_sequences"] = s_.return_sequences;
    c["return_state"] = false;
    c["go_backwards"] = s_.go_backwards;
    c["stateful"] = false;
    c["unroll"] = s_.unroll;
    return c;
  }
  /// Reads the shared keys of a Keras config into an options struct.
  template <class O>
  static Index read_config(const json& c, O& o, const char* cls) {
    o.name = config::name(c, cls);
    const std::string who = std::string(cls) + " '" + o.name + "'";
    o.activation = config::get_string(c, "activation", o.activation, who);
    o.use_bias = config::get_bool(c, "use_bias", true, who);
    initializers::read_weight_options(c, o, kWeights<O>);
    o.dropout = config::get_number(c, "dropout", 0.0, who, 0.0, 1.0);
    o.recurrent_dropout = config::get_number(c, "recurrent_dropout", 0.0, who, 0.0, 1.0);
    o.return_sequences = config::get_bool(c, "return_sequences", false, who);
    o.return_state = config::get_bool(c, "return_state", false, who);
    o.go_backwards = config::get_bool(c, "go_backwards", false, who);
    o.stateful = config::get_bool(c, "stateful", false, who);
    o.unroll = config::get_bool(c, "unroll", false, who);
    if (config::get_bool(c, "time_major", false, who))
      throw ValueError(who + ": time_major=True is not supported (inputs are (batch, time, features))");
    const Index units = config::to_int(config::require(c, "units", who), who, "units", 1, config::kMaxDim);
    if constexpr (requires { o.recurrent_activation; })  // the gated cells, LSTM and GRU
      o.recurrent_activation = config::get_string(c, "recurrent_activation", o.recurrent_activation, who);
    return units;
  }

  Index units_, gates_;
  Spec s_;
  keras::Activation act_ = keras::Activation::Tanh, ract_ = keras::Activation::Sigmoid;
  Index N_ = 0, T_ = 0;
  bool grads_ = false;
  Tensor<T> xw_, H_, Z_, A_, E_, dxw_, dh_, dhp_;

 private:
  static keras::Activation activation_of(const std::string& name, const char* key, const std::string& who) {
    const keras::Activation a = activation_from_name(name);
    if (!detail::recurrent_activation_supported(a))
      throw ValueError(who + ": " + key + " '" + name +
                       "' is not supported in a recurrent layer (supported: linear, relu, sigmoid, tanh, hard_sigmoid, "
                       "softsign, elu)");
    return a;
  }
  void write_output(Tensor<T>& y) {
    if (!s_.return_sequences) {
      y.resize({N_, units_});
      std::copy(state(T_), state(T_) + N_ * units_, y.data());
      return;
    }
    y.resize({N_, T_, units_});
    for (Index s = 0; s < T_; ++s)
      for (Index n = 0; n < N_; ++n)
        std::copy(state(s + 1) + n * units_, state(s + 1) + (n + 1) * units_, y.data() + (n * T_ + s) * units_);
  }
};

/// keras.layers.SimpleRNN(units, activation="tanh", ...): h = act(x W + b + h_prev U).
template <class T = float>
class SimpleRNN : public RecurrentBase<T> {
  using B = RecurrentBase<T>;

 public:
  KERAS_LAYER(SimpleRNN)
  explicit SimpleRNN(Index units, SimpleRNNOptions o = {}) : B("SimpleRNN", units, 1, o, "") {}

  json get_config() const override { return this->rnn_config(); }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    SimpleRNNOptions o;
    const Index units = B::read_config(c, o, "SimpleRNN");
    return std::make_shared<SimpleRNN>(units, o);
  }

 protected:
  void step_forward(Index s, const T* p, Index ldp) override {
    const Index N = this->N_, U = this->units_;
    T* z = this->pre(s);
    for (Index n = 0; n < N; ++n) std::copy(p + n * ldp, p + n * ldp + U, z + n * U);
    B::mm(false, false, N, U, U, this->state(s), U, this->recurrent_kernel().value.data(), U, T(1), z, U);
    T* h = this->state(s + 1);
    for (Index i = 0; i < N * U; ++i) h[i] = this->fa(z[i]);
  }
  void step_backward(Index s, const T* dh, T* dp, Index ldp, T* dh_prev) override {
    const Index N = this->N_, U = this->units_;
    const T *z = this->pre(s), *h = this->state(s + 1);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) dp[n * ldp + j] = dh[n * U + j] * this->fa_grad(z[n * U + j], h[n * U + j]);
    if (this->grads_)
      B::mm(true, false, U, U, N, this->state(s), U, dp, ldp, T(1), this->recurrent_kernel().grad.data(), U);
    B::mm(false, true, N, U, U, dp, ldp, this->recurrent_kernel().value.data(), U, T(0), dh_prev, U);
  }
};

/// keras.layers.LSTM(units, ...): gates i, f, c, o along the last axis of kernel, recurrent_kernel, bias.
template <class T = float>
class LSTM : public RecurrentBase<T> {
  using B = RecurrentBase<T>;

 public:
  KERAS_LAYER(LSTM)
  explicit LSTM(Index units, LSTMOptions o = {})
      : B("LSTM", units, 4, o, o.recurrent_activation), unit_forget_bias_(o.unit_forget_bias) {}

  json get_config() const override {
    json c = this->rnn_config();
    c["unit_forget_bias"] = unit_forget_bias_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    LSTMOptions o;
    const Index units = B::read_config(c, o, "LSTM");
    o.unit_forget_bias = config::get_bool(c, "unit_forget_bias", true, "LSTM '" + o.name + "'");
    return std::make_shared<LSTM>(units, o);
  }

 protected:
  void init_bias(Tensor<T>& b, double fan_in) const override {
    B::init_bias(b, fan_in);
    if (unit_forget_bias_) std::fill(b.data() + this->units_, b.data() + 2 * this->units_, T(1));
  }
  void begin_sequence() override {
    C_.resize({this->T_ + 1, this->N_, this->units_});
    std::fill(C_.data(), C_.data() + this->N_ * this->units_, T(0));
  }
  void begin_backward() override {
    dc_.resize({this->N_, this->units_});
    dc_.setZero();
  }
  T* cell(Index s) { return C_.data() + s * this->N_ * this->units_; }

  void step_forward(Index s, const T* p, Index ldp) override {
    const Index N = this->N_, U = this->units_, G = 4 * U;
    T *z = this->pre(s), *a = this->act(s), *e = this->extra(s);
    for (Index n = 0; n < N; ++n) std::copy(p + n * ldp, p + n * ldp + G, z + n * G);
    B::mm(false, false, N, G, U, this->state(s), U, this->recurrent_kernel().value.data(), G, T(1), z, G);
    const T* cp = cell(s);
    T *c = cell(s + 1), *h = this->state(s + 1);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G;
        a[r + j] = this->ra(z[r + j]);
        a[r + U + j] = this->ra(z[r + U + j]);
        a[r + 2 * U + j] = this->fa(z[r + 2 * U + j]);
        a[r + 3 * U + j] = this->ra(z[r + 3 * U + j]);
        const Index k = n * U + j;
        c[k] = a[r + U + j] * cp[k] + a[r + j] * a[r + 2 * U + j];
        e[k] = this->fa(c[k]);
        h[k] = a[r + 3 * U + j] * e[k];
      }
  }
  void step_backward(Index s, const T* dh, T* dp, Index ldp, T* dh_prev) override {
    const Index N = this->N_, U = this->units_, G = 4 * U;
    const T *z = this->pre(s), *a = this->act(s), *e = this->extra(s), *cp = cell(s), *c = cell(s + 1);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G, k = n * U + j;
        const T i = a[r + j], f = a[r + U + j], g = a[r + 2 * U + j], o = a[r + 3 * U + j];
        const T dc = dc_[k] + dh[k] * o * this->fa_grad(c[k], e[k]);
        dc_[k] = dc * f;  // -> d(loss)/d(c_prev)
        T* d = dp + n * ldp;
        d[j] = dc * g * this->ra_grad(z[r + j], i);
        d[U + j] = dc * cp[k] * this->ra_grad(z[r + U + j], f);
        d[2 * U + j] = dc * i * this->fa_grad(z[r + 2 * U + j], g);
        d[3 * U + j] = dh[k] * e[k] * this->ra_grad(z[r + 3 * U + j], o);
      }
    if (this->grads_)
      B::mm(true, false, U, G, N, this->state(s), U, dp, ldp, T(1), this->recurrent_kernel().grad.data(), G);
    B::mm(false, true, N, U, G, dp, ldp, this->recurrent_kernel().value.data(), G, T(0), dh_prev, U);
  }

 private:
  bool unit_forget_bias_;
  Tensor<T> C_, dc_;
};

/// keras.layers.GRU(units, ...): gates z, r, h; reset_after (default True) as Keras 2 / 3.
template <class T = float>
class GRU : public RecurrentBase<T> {
  using B = RecurrentBase<T>;

 public:
  KERAS_LAYER(GRU)
  explicit GRU(Index units, GRUOptions o = {})
      : B("GRU", units, 3, o, o.recurrent_activation), reset_after_(o.reset_after) {}

  bool reset_after() const { return reset_after_; }
  json get_config() const override {
    json c = this->rnn_config();
    c["reset_after"] = reset_after_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    GRUOptions o;
    const Index units = B::read_config(c, o, "GRU");
    o.reset_after = config::get_bool(c, "reset_after", true, "GRU '" + o.name + "'");
    return std::make_shared<GRU>(units, o);
  }

 protected:
  Shape bias_shape() const override { return reset_after_ ? Shape{2, 3 * this->units_} : Shape{3 * this->units_}; }
  void begin_backward() override {
    dr_.resize({this->N_, 3 * this->units_});
    dq_.resize({this->N_, this->units_});
  }
  void step_forward(Index s, const T* p, Index ldp) override {
    if (reset_after_)
      forward_reset_after(s, p, ldp);
    else
      forward_reset_before(s, p, ldp);
  }
  void step_backward(Index s, const T* dh, T* dp, Index ldp, T* dh_prev) override {
    if (reset_after_)
      backward_reset_after(s, dh, dp, ldp, dh_prev);
    else
      backward_reset_before(s, dh, dp, ldp, dh_prev);
  }

 private:
  /// extra(s) = h_prev . U + recurrent bias [N, 3U]; hh = act(p_h + r * extra_h).
  void forward_reset_after(Index s, const T* p, Index ldp) {
    const Index N = this->N_, U = this->units_, G = 3 * U;
    T *z = this->pre(s), *a = this->act(s), *rec = this->extra(s), *h = this->state(s + 1);
    const T* hp = this->state(s);
    B::mm(false, false, N, G, U, hp, U, this->recurrent_kernel().value.data(), G, T(0), rec, G);
    if (this->s_.use_bias) B::add_rows(this->bias().value.data() + G, rec, N, G);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G, k = n * U + j;
        const T* pn = p + n * ldp;
        z[r + j] = pn[j] + rec[r + j];
        z[r + U + j] = pn[U + j] + rec[r + U + j];
        a[r + j] = this->ra(z[r + j]);
        a[r + U + j] = this->ra(z[r + U + j]);
        z[r + 2 * U + j] = pn[2 * U + j] + a[r + U + j] * rec[r + 2 * U + j];
        a[r + 2 * U + j] = this->fa(z[r + 2 * U + j]);
        h[k] = a[r + j] * hp[k] + (T(1) - a[r + j]) * a[r + 2 * U + j];
      }
  }
  void backward_reset_after(Index s, const T* dh, T* dp, Index ldp, T* dh_prev) {
    const Index N = this->N_, U = this->units_, G = 3 * U;
    const T *z = this->pre(s), *a = this->act(s), *rec = this->extra(s), *hp = this->state(s);
    T* dr = dr_.data();
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G, k = n * U + j;
        const T zt = a[r + j], rt = a[r + U + j], hh = a[r + 2 * U + j];
        const T dzh = dh[k] * (T(1) - zt) * this->fa_grad(z[r + 2 * U + j], hh);
        const T dzz = dh[k] * (hp[k] - hh) * this->ra_grad(z[r + j], zt);
        const T dzr = dzh * rec[r + 2 * U + j] * this->ra_grad(z[r + U + j], rt);
        T* d = dp + n * ldp;
        d[j] = dr[r + j] = dzz;
        d[U + j] = dr[r + U + j] = dzr;
        d[2 * U + j] = dzh;
        dr[r + 2 * U + j] = dzh * rt;
        dh_prev[k] = dh[k] * zt;
      }
    if (this->grads_) {
      B::mm(true, false, U, G, N, hp, U, dr, G, T(1), this->recurrent_kernel().grad.data(), G);
      if (this->s_.use_bias) B::sum_rows(dr, N, G, this->bias().grad.data() + G);
    }
    B::mm(false, true, N, U, G, dr, G, this->recurrent_kernel().value.data(), G, T(1), dh_prev, U);
  }

  /// extra(s): [h_prev . U_zr (2U) | q = r * h_prev (U)]; hh = act(p_h + q . U_h).
  void forward_reset_before(Index s, const T* p, Index ldp) {
    const Index N = this->N_, U = this->units_, G = 3 * U;
    T *z = this->pre(s), *a = this->act(s), *e = this->extra(s), *h = this->state(s + 1);
    const T *hp = this->state(s), *rk = this->recurrent_kernel().value.data();
    B::mm(false, false, N, 2 * U, U, hp, U, rk, G, T(0), e, G);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G;
        const T* pn = p + n * ldp;
        z[r + j] = pn[j] + e[r + j];
        z[r + U + j] = pn[U + j] + e[r + U + j];
        a[r + j] = this->ra(z[r + j]);
        a[r + U + j] = this->ra(z[r + U + j]);
        e[r + 2 * U + j] = a[r + U + j] * hp[n * U + j];
        z[r + 2 * U + j] = pn[2 * U + j];
      }
    B::mm(false, false, N, U, U, e + 2 * U, G, rk + 2 * U, G, T(1), z + 2 * U, G);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G, k = n * U + j;
        a[r + 2 * U + j] = this->fa(z[r + 2 * U + j]);
        h[k] = a[r + j] * hp[k] + (T(1) - a[r + j]) * a[r + 2 * U + j];
      }
  }
  void backward_reset_before(Index s, const T* dh, T* dp, Index ldp, T* dh_prev) {
    const Index N = this->N_, U = this->units_, G = 3 * U;
    const T *z = this->pre(s), *a = this->act(s), *e = this->extra(s), *hp = this->state(s);
    const T* rk = this->recurrent_kernel().value.data();
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G, k = n * U + j;
        const T zt = a[r + j], hh = a[r + 2 * U + j];
        T* d = dp + n * ldp;
        d[2 * U + j] = dh[k] * (T(1) - zt) * this->fa_grad(z[r + 2 * U + j], hh);
        d[j] = dh[k] * (hp[k] - hh) * this->ra_grad(z[r + j], zt);
        dh_prev[k] = dh[k] * zt;
      }
    B::mm(false, true, N, U, U, dp + 2 * U, ldp, rk + 2 * U, G, T(0), dq_.data(), U);  // d(loss)/dq
    if (this->grads_)
      B::mm(true, false, U, U, N, e + 2 * U, G, dp + 2 * U, ldp, T(1), this->recurrent_kernel().grad.data() + 2 * U, G);
    for (Index n = 0; n < N; ++n)
      for (Index j = 0; j < U; ++j) {
        const Index r = n * G, k = n * U + j;
        const T rt = a[r + U + j];
        dp[n * ldp + U + j] = dq_[k] * hp[k] * this->ra_grad(z[r + U + j], rt);
        dh_prev[k] += dq_[k] * rt;
      }
    if (this->grads_) B::mm(true, false, U, 2 * U, N, hp, U, dp, ldp, T(1), this->recurrent_kernel().grad.data(), G);
    B::mm(false, true, N, U, 2 * U, dp, ldp, rk, G, T(1), dh_prev, U);
  }

  bool reset_after_;
  Tensor<T> dr_, dq_;
};

}  // namespace keras::layers
