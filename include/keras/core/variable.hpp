// keras::Variable<T>: one weight of a layer (Keras "weight"/"variable"), with its gradient.
#pragma once
#include <string>

#include "tensor.hpp"

namespace keras {

template <class T = float>
struct Variable {
  std::string name;   ///< Keras weight name without the layer prefix, e.g. "kernel", "moving_mean"
  Tensor<T> value;    ///< the weight itself
  Tensor<T> grad;     ///< d(loss)/d(value), same shape; accumulated by backward, zeroed by the model
  bool trainable = true;  ///< intrinsic: false for statistics such as BatchNormalization's moving_mean
};

}  // namespace keras
