// Embedding: integer indices (given as a float tensor, any shape, batch first) -> rows of an
// `embeddings` matrix [input_dim, output_dim]; the output is the input shape + [output_dim].
// Indices are rounded to the nearest integer (Keras casts to int32; the two agree on the integer
// values an index tensor holds) and must lie in [0, input_dim). mask_zero=True is refused:
// kerascpp has no masks.
#pragma once
#include <cmath>
#include <optional>
#include <sstream>

#include "fast_paths.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct EmbeddingOptions {
  initializers::Initializer embeddings_initializer = "random_uniform";  ///< Keras "uniform": U(-0.05, 0.05)
  bool mask_zero = false;             ///< true raises a ValueError (no masking in kerascpp)
  std::optional<Index> input_length;  ///< Keras 2 / TF.js: the (checked) sequence length
  std::string name;
  std::optional<std::uint64_t> seed;  ///< seed for the initializer (default: global seed)
  Shape input_shape;                  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class Embedding : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Embedding)
  Embedding(Index input_dim, Index output_dim, EmbeddingOptions o = {})
      : Layer<T>(o.name, o.input_shape), input_dim_(input_dim), output_dim_(output_dim), o_(std::move(o)) {
    const std::string who = "Embedding '" + this->name() + "'";
    if (input_dim <= 0 || output_dim <= 0)
      throw ValueError(who + ": input_dim and output_dim must be positive, got " + std::to_string(input_dim) + " and " +
                       std::to_string(output_dim));
    if (o_.mask_zero)
      throw ValueError(who + ": mask_zero=True is not supported (kerascpp has no masking); use mask_zero=False");
    if (o_.input_length && *o_.input_length <= 0)
      throw ValueError(who + ": input_length must be positive, got " + std::to_string(*o_.input_length));
  }

  Index input_dim() const { return input_dim_; }
  Index output_dim() const { return output_dim_; }
  Variable<T>& embeddings() { return *this->variables_.at(0); }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (in[0].empty())
      throw ShapeError("layer '" + this->name() + "' (Embedding): expected a batch of indices, got a scalar shape");
    if (o_.input_length && in[0].size() == 2 && in[0][1] >= 0 && in[0][1] != *o_.input_length)
      throw ShapeError("layer '" + this->name() + "' (Embedding): input_length is " + std::to_string(*o_.input_length) +
                       ", got input shape " + shape_str(in[0]));
    Shape s = in[0];
    s.push_back(output_dim_);
    return s;
  }

  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    Shape s = x.shape();
    s.push_back(output_dim_);
    y.resize(s);
    const T* table = this->variables_.at(0)->value.data();
    for (Index i = 0; i < x.size(); ++i) {
      const T* row = table + index_at(x, i) * output_dim_;
      std::copy(row, row + output_dim_, y.data() + i * output_dim_);
    }
  }

  /// d/d(embeddings) scatters dy into the rows used; indices get a zero gradient (not differentiable).
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    if (this->needs_variable_grads()) {
      T* g = embeddings().grad.data();
      for (Index i = 0; i < x.size(); ++i) {
        T* row = g + index_at(x, i) * output_dim_;
        const T* d = dy.data() + i * output_dim_;
        for (Index k = 0; k < output_dim_; ++k) row[k] += d[k];
      }
    }
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      dx[0]->setZero();
    }
  }

  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<EmbeddingOptions> kWeights[] = {
      {"embeddings", &EmbeddingOptions::embeddings_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["input_dim"] = input_dim_;
    c["output_dim"] = output_dim_;
    initializers::write_weight_options(c, o_, kWeights);
    c["mask_zero"] = o_.mask_zero;
    c["input_length"] = o_.input_length ? json(*o_.input_length) : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    EmbeddingOptions o;
    o.name = config::name(c, "Embedding");
    const std::string who = "Embedding '" + o.name + "'";
    o.mask_zero = config::get_bool(c, "mask_zero", false, who);
    if (c.contains("input_length") && !c["input_length"].is_null()) {
      if (!c["input_length"].is_number())
        throw ValueError(who + ": input_length must be one integer (kerascpp supports rank-2 index inputs), got " +
                         c["input_length"].dump().substr(0, 80));
      o.input_length = config::to_int(c["input_length"], who, "input_length", 1, config::kMaxDim);
    }
    initializers::read_weight_options(c, o, kWeights);
    const Index in = config::to_int(config::require(c, "input_dim", who), who, "input_dim", 1, config::kMaxDim);
    const Index out = config::to_int(config::require(c, "output_dim", who), who, "output_dim", 1, config::kMaxDim);
    return std::make_shared<Embedding>(in, out, o);
  }

 protected:
  void build_variables(const std::vector<Shape>&) override {
    auto& e = this->add_weight("embeddings", {input_dim_, output_dim_});
    o_.embeddings_initializer.fill(e.value, double(input_dim_), double(output_dim_),
                                   o_.seed ? *o_.seed : next_global_seed());
  }

 private:
  /// The row for element i of x, checked.
  Index index_at(const Tensor<T>& x, Index i) const {
    const double v = static_cast<double>(x[i]);
    const double r = std::nearbyint(v);
    if (!(r >= 0 && r < static_cast<double>(input_dim_))) {
      std::ostringstream value;
      value << v;
      if (r != v && std::isfinite(r)) value << " (rounded to " << r << ")";
      throw ValueError("layer '" + this->name() + "' (Embedding): index " + value.str() + " at position " +
                       std::to_string(i) + " of the input (shape " + shape_str(x.shape()) + ") is out of range [0, " +
                       std::to_string(input_dim_) + ") (input_dim " + std::to_string(input_dim_) + ")");
    }
    return static_cast<Index>(r);
  }

  Index input_dim_, output_dim_;
  EmbeddingOptions o_;
};

}  // namespace keras::layers
