// keras::Variable<T>: one weight of a layer (Keras "weight"/"variable"), with its gradient.
#pragma once
#include <cstdint>
#include <string>

#include "tensor.hpp"

namespace keras {

template <class T = float>
struct Variable {
  std::string name;       ///< Keras weight name without the layer prefix, e.g. "kernel", "moving_mean"
  Tensor<T> value;        ///< the weight itself
  Tensor<T> grad;         ///< d(loss)/d(value), same shape; accumulated by backward, zeroed by the model
  bool trainable = true;  ///< intrinsic: false for statistics such as BatchNormalization's moving_mean
  /// Bumped whenever the value may have changed: by the optimizers, by weight loading, and whenever
  /// a layer hands out its variables (Layer::variables(), trainable_variables(), Conv2D::kernel()).
  /// Caches derived from the value (Conv2D's kernel packed for the GEMM micro-kernel) are keyed on
  /// it. Code that keeps a Variable& and writes its value after a prediction calls changed().
  std::uint64_t version = 0;
  void changed() { ++version; }
};

}  // namespace keras
