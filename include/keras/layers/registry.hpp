// The layer registry: Keras class_name -> factory from a Keras config. A user layer registers
// with one line after its class:
//   KERAS_REGISTER_LAYER(MyLayer)   // MyLayer<T> template: registers float and double
//   KERAS_REGISTER_LAYER_T(MyLayer, float)  // a non-template layer class for one scalar type
// A registered class needs `static std::shared_ptr<Layer<T>> from_config(const json&)`.
// The built-in layers are added on first use of layers::registry<T>() (layers/builtin.hpp),
// which is what load_model reads.
#pragma once
#include <functional>
#include <map>

#include "config.hpp"
#include "layer.hpp"

namespace keras::layers {

template <class T>
class Registry {
 public:
  using Factory = std::function<std::shared_ptr<Layer<T>>(const json& config)>;
  static Registry& instance() {
    static Registry r;
    return r;
  }
  bool add(const std::string& class_name, Factory f) {
    factories_[class_name] = std::move(f);
    return true;
  }
  bool contains(const std::string& class_name) const { return factories_.count(class_name) > 0; }
  std::shared_ptr<Layer<T>> create(const std::string& class_name, const json& config) const {
    auto it = factories_.find(class_name);
    if (it == factories_.end()) {
      std::string known;
      for (auto& [k, v] : factories_) known += (known.empty() ? "" : ", ") + k;
      throw ValueError("Unknown layer: '" + class_name +
                       "'. Register it with KERAS_REGISTER_LAYER. Known layers: " + known);
    }
    return it->second(config);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> r;
    for (auto& [k, v] : factories_) r.push_back(k);
    return r;
  }

 private:
  std::map<std::string, Factory> factories_;
};

}  // namespace keras::layers

#define KERAS_DETAIL_CAT2(a, b) a##b
#define KERAS_DETAIL_CAT(a, b) KERAS_DETAIL_CAT2(a, b)
/// Registers a layer class template under its name for float and double.
#define KERAS_REGISTER_LAYER(Cls)                                                     \
  inline const bool KERAS_DETAIL_CAT(keras_registered_, Cls) =                        \
      ::keras::layers::Registry<float>::instance().add(                               \
          #Cls, [](const ::keras::json& c) { return Cls<float>::from_config(c); }) && \
      ::keras::layers::Registry<double>::instance().add(                              \
          #Cls, [](const ::keras::json& c) { return Cls<double>::from_config(c); });
/// Registers a non-template layer class (for scalar type T) under its name.
#define KERAS_REGISTER_LAYER_T(Cls, T)                         \
  inline const bool KERAS_DETAIL_CAT(keras_registered_, Cls) = \
      ::keras::layers::Registry<T>::instance().add(#Cls, [](const ::keras::json& c) { return Cls::from_config(c); });
