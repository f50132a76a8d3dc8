// The TF.js "layers" model format, kerascpp's file format:
//   model.json = {"format": "layers-model", "modelTopology": <Keras model config>,
//                 "weightsManifest": [{"paths": [shards...], "weights": [{name, shape, dtype, quantization?}]}],
//                 "userDefinedMetadata": {"class_names": [...]}}
//   + binary shards: each group's weights concatenated (little-endian) in manifest order.
// load_model builds Sequential / Functional / nested models from the Keras config through the
// layer registry and loads the weights by name; save_model writes the same format (float32).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "../layers/builtin.hpp"
#include "../models/sequential.hpp"
#include "file_utils.hpp"

namespace keras::io {

namespace fs = std::filesystem;

/// A weight read from a manifest, dequantized to float.
struct NamedWeight {
  std::string name;
  Shape shape;
  std::vector<float> values;
};

struct LoadedArtifacts {
  json topology;   ///< modelTopology (may be null for weights-only files)
  json metadata;   ///< userDefinedMetadata (may be null)
  std::vector<NamedWeight> weights;
  std::string path;  ///< model.json path
};

namespace detail {

inline float half_to_float(std::uint16_t h) {
  std::uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? std::nanf("") : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

inline std::string model_json_path(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) p /= "model.json";
  if (!fs::exists(p)) throw IOError("model file '" + p.string() + "' does not exist");
  return p.string();
}

/// Reads the weights of one manifest group from its shard files.
inline void read_group(const json& group, const fs::path& dir, const std::string& json_path, std::vector<NamedWeight>& out) {
  if (!group.contains("paths") || !group.contains("weights"))
    throw IOError("'" + json_path + "': a weightsManifest group lacks 'paths' or 'weights'");
  std::string data;
  for (auto& p : group["paths"]) {
    fs::path shard = dir / p.get<std::string>();
    data += read_file(shard.string());
  }
  std::size_t off = 0;
  for (auto& w : group["weights"]) {
    NamedWeight nw;
    nw.name = w.at("name").get<std::string>();
    Index n = 1;
    for (auto& d : w.at("shape")) {
      nw.shape.push_back(d.get<Index>());
      if (nw.shape.back() < 0 || (nw.shape.back() > 0 && n > static_cast<Index>(data.size()) / nw.shape.back() + 1))
        throw IOError("'" + json_path + "': weight '" + nw.name + "' has an invalid shape " + shape_str(nw.shape) +
                      " for shards of " + std::to_string(data.size()) + " bytes");
      n *= nw.shape.back();
    }
    std::string dtype = w.value("dtype", "float32");
    std::string qdtype;
    double scale = 1, minv = 0;
    if (w.contains("quantization") && !w["quantization"].is_null()) {
      auto& q = w["quantization"];
      qdtype = q.at("dtype").get<std::string>();
      if (qdtype != "float16") {
        scale = q.at("scale").get<double>();
        minv = q.at("min").get<double>();
      }
    }
    std::string stored = qdtype.empty() ? dtype : qdtype;
    std::size_t item = stored == "float32" || stored == "int32" ? 4 : stored == "float16" || stored == "uint16" ? 2 : stored == "uint8" || stored == "bool" ? 1 : 0;
    if (!item) throw IOError("'" + json_path + "': weight '" + nw.name + "' has unsupported dtype '" + stored + "'");
    // (compared by element count first, so absurd shapes cannot overflow the byte count)
    std::size_t bytes = static_cast<std::size_t>(n) <= data.size() ? item * static_cast<std::size_t>(n) : data.size() + 1;
    if (off + bytes > data.size())
      throw IOError("'" + json_path + "': weight '" + nw.name + "' needs bytes [" + std::to_string(off) + ", " + std::to_string(off + bytes) +
                    ") but the group's shards hold only " + std::to_string(data.size()) + " bytes (truncated shard?)");
    nw.values.resize(n);
    const char* p = data.data() + off;
    for (Index i = 0; i < n; ++i) {
      if (stored == "float32") {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        nw.values[i] = v;
      } else if (stored == "int32") {
        std::int32_t v;
        std::memcpy(&v, p + 4 * i, 4);
        nw.values[i] = static_cast<float>(v);
      } else if (stored == "float16") {
        std::uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        nw.values[i] = half_to_float(v);
      } else if (stored == "uint16") {
        std::uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        nw.values[i] = static_cast<float>(v * scale + minv);
      } else {
        auto v = static_cast<std::uint8_t>(p[i]);
        nw.values[i] = static_cast<float>(v * scale + minv);
      }
    }
    off += bytes;
    out.push_back(std::move(nw));
  }
  if (off != data.size())
    throw IOError("'" + json_path + "': manifest/shard size mismatch: the manifest describes " + std::to_string(off) +
                  " bytes but the shards hold " + std::to_string(data.size()));
}

}  // namespace detail

/// Reads model.json (path to the file or its folder) and all its weights.
inline LoadedArtifacts read_artifacts(const std::string& path) {
  LoadedArtifacts a;
  a.path = detail::model_json_path(path);
  json j;
  try {
    j = json::parse(read_file(a.path));
  } catch (const json::parse_error& e) {
    throw IOError("'" + a.path + "' is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw IOError("'" + a.path + "' is not a TF.js model.json (expected a JSON object)");
  a.topology = j.value("modelTopology", json(nullptr));
  if (a.topology.is_object() && a.topology.contains("model_config")) a.topology = a.topology["model_config"];
  a.metadata = j.value("userDefinedMetadata", json(nullptr));
  if (!j.contains("weightsManifest")) throw IOError("'" + a.path + "' has no weightsManifest");
  fs::path dir = fs::path(a.path).parent_path();
  try {
    for (auto& g : j["weightsManifest"]) detail::read_group(g, dir, a.path, a.weights);
  } catch (const json::exception& e) {
    throw IOError("'" + a.path + "': malformed weightsManifest: " + e.what());
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Model configs -> models

template <class T>
std::shared_ptr<layers::Layer<T>> layer_from_config(const json& layer_json);

namespace detail {

inline bool is_model_class(const std::string& c) { return c == "Functional" || c == "Model" || c == "Sequential"; }

template <class T>
std::shared_ptr<Sequential<T>> sequential_from_config(const json& config) {
  const json& ls = config.is_array() ? config : config.at("layers");
  auto m = std::make_shared<Sequential<T>>(config.is_object() ? config.value("name", "") : std::string());
  bool first = true;
  for (auto& lj : ls) {
    std::string cls = lj.at("class_name").get<std::string>();
    const json& c = lj.at("config");
    // Keras 2 puts batch_input_shape on the first layer when there is no InputLayer.
    if (first && cls != "InputLayer" && c.is_object() && (c.contains("batch_input_shape") || c.contains("batch_shape"))) {
      json ic = {{"batch_input_shape", c.contains("batch_input_shape") ? c["batch_input_shape"] : c["batch_shape"]}};
      m->add(layers::registry<T>().create("InputLayer", ic));
    }
    first = false;
    m->add(layer_from_config<T>(lj));
  }
  // A Sequential whose first layer is a (built) nested model takes that model's input shape, as
  // Keras does; otherwise its later layers would have no weights to load until the first call.
  if (!m->input_layer() && !m->layers().empty() && m->layers()[0]->built() && !m->layers()[0]->input_shapes().empty())
    m->build_model(m->layers()[0]->input_shapes()[0]);
  return m;
}

/// Keras 2 inbound node entry: [[name, node_index, tensor_index, kwargs], ...] per call;
/// Keras 3: {"args": [...], "kwargs": {}} with {"class_name": "__keras_tensor__", "config": {"keras_history": [name, n, t]}}.
inline std::vector<std::string> inbound_names(const json& node) {
  std::vector<std::string> names;
  if (node.is_array()) {
    for (auto& e : node) names.push_back(e.at(0).get<std::string>());
  } else if (node.is_object() && node.contains("args")) {
    std::function<void(const json&)> walk = [&](const json& a) {
      if (a.is_object() && a.contains("config") && a["config"].contains("keras_history")) names.push_back(a["config"]["keras_history"][0]);
      else if (a.is_array())
        for (auto& x : a) walk(x);
    };
    walk(node["args"]);
  }
  return names;
}

template <class T>
std::shared_ptr<Model<T>> functional_from_config(const json& config) {
  std::map<std::string, KerasTensor<T>> outputs;
  std::map<std::string, std::shared_ptr<layers::Layer<T>>> made;
  const json& ls = config.at("layers");
  // Layers may be listed before their inputs are available (rare); iterate until stable.
  std::vector<bool> done(ls.size(), false);
  std::size_t remaining = ls.size();
  while (remaining) {
    std::size_t before = remaining;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      if (done[i]) continue;
      auto& lj = ls[i];
      std::string name = lj.contains("name") ? lj["name"].get<std::string>() : lj.at("config").at("name").get<std::string>();
      std::string cls = lj.at("class_name").get<std::string>();
      const json inbound = lj.value("inbound_nodes", json::array());
      if (cls == "InputLayer") {
        auto layer = std::dynamic_pointer_cast<layers::InputLayer<T>>(layer_from_config<T>(lj));
        auto node = std::make_shared<SymbolicNode<T>>();
        node->layer = layer;
        node->shape = layer->batch_input_shape();
        outputs[name] = KerasTensor<T>(node);
        done[i] = true;
        --remaining;
        continue;
      }
      if (inbound.empty()) throw ValueError("layer '" + name + "' in model '" + config.value("name", "") + "' has no inbound nodes");
      if (inbound.size() > 1)
        throw ValueError("layer '" + name + "' is called " + std::to_string(inbound.size()) + " times (shared layers are not supported)");
      auto in_names = inbound_names(inbound[0]);
      bool ready = true;
      for (auto& n : in_names) ready = ready && outputs.count(n);
      if (!ready) continue;
      auto layer = layer_from_config<T>(lj);
      std::vector<KerasTensor<T>> ins;
      for (auto& n : in_names) ins.push_back(outputs.at(n));
      outputs[name] = ins.size() == 1 && !layer->multiple_inputs() ? (*layer)(ins[0]) : (*layer)(ins);
      done[i] = true;
      --remaining;
    }
    if (remaining == before) throw ValueError("model '" + config.value("name", "") + "': inbound nodes refer to unknown layers");
  }
  auto refs = [&](const json& list) {
    std::vector<KerasTensor<T>> r;
    auto add = [&](const std::string& n) {
      if (!outputs.count(n)) throw ValueError("model '" + config.value("name", "") + "' refers to unknown layer '" + n + "'");
      r.push_back(outputs.at(n));
    };
    // [[name, 0, 0], ...] or a single [name, 0, 0]
    if (!list.empty() && list[0].is_string()) add(list[0].get<std::string>());
    else
      for (auto& e : list) add(e.at(0).get<std::string>());
    return r;
  };
  return std::make_shared<Model<T>>(refs(config.at("input_layers")), refs(config.at("output_layers")), config.value("name", ""));
}

}  // namespace detail

/// A layer (or nested model) from {"class_name": ..., "config": ...}.
template <class T>
std::shared_ptr<layers::Layer<T>> layer_from_config(const json& lj) {
  try {
    std::string cls = lj.at("class_name").get<std::string>();
    const json& c = lj.at("config");
    std::shared_ptr<layers::Layer<T>> l;
    if (cls == "Sequential") l = detail::sequential_from_config<T>(c);
    else if (cls == "Functional" || cls == "Model") l = detail::functional_from_config<T>(c);
    else if (cls == "BatchNormalizationV1" || cls == "BatchNormalizationV2") l = layers::registry<T>().create("BatchNormalization", c);
    else l = layers::registry<T>().create(cls, c);
    if (c.is_object() && c.contains("trainable") && c["trainable"].is_boolean() && !c["trainable"].get<bool>()) l->set_trainable(false);
    return l;
  } catch (const json::exception& e) {
    throw ValueError("bad layer config " + lj.dump().substr(0, 200) + ": " + e.what());
  }
}

/// A model from a Keras model config {"class_name": "Sequential" | "Functional" | "Model", "config": ...}.
template <class T = float>
std::shared_ptr<Model<T>> model_from_config(const json& topology) {
  std::string cls = topology.value("class_name", "");
  if (!detail::is_model_class(cls)) throw ValueError("model_from_config: expected a Sequential or Functional model config, got class '" + cls + "'");
  return std::dynamic_pointer_cast<Model<T>>(layer_from_config<T>(topology));
}

// ---------------------------------------------------------------------------------------------
// Weights by name

/// Every variable with its full names: "layer/var" and the nested "outer/.../layer/var".
template <class T>
void collect_named_variables(layers::Layer<T>& layer, const std::string& prefix, std::vector<std::pair<std::string, Variable<T>*>>& out) {
  if (auto* m = dynamic_cast<Model<T>*>(&layer)) {
    for (auto& l : m->layers()) collect_named_variables(*l, prefix + m->name() + "/", out);
    return;
  }
  for (auto* v : layer.variables()) out.push_back({prefix + layer.name() + "/" + v->name, v});
}

/// Assigns weights to the model's variables by name. The manifest may name a weight
/// "layer/var" or with any model prefixes ("model/layer/var"). Checks every shape; every
/// variable must be found; with `allow_unused` false every weight must be used.
template <class T>
void assign_weights(Model<T>& model, const std::vector<NamedWeight>& weights, const std::string& source, bool allow_unused = false) {
  std::vector<std::pair<std::string, Variable<T>*>> vars;
  for (auto& l : model.layers()) collect_named_variables(*l, "", vars);
  std::map<std::string, const NamedWeight*> by_name;
  for (auto& w : weights) by_name[w.name] = &w;
  std::vector<bool> used(weights.size(), false);
  auto index_of = [&](const NamedWeight* w) { return static_cast<std::size_t>(w - weights.data()); };
  for (auto& [full, var] : vars) {
    const NamedWeight* w = nullptr;
    // exact, then "<model>/<full>", then the unique manifest name ending with "/<layer>/<var>"
    std::size_t cut = full.rfind('/', full.rfind('/') - 1);
    std::string leaf = cut == std::string::npos ? full : full.substr(cut + 1);  // "layer/var"
    for (const std::string& cand : {full, model.name() + "/" + full, leaf})
      if (!w && by_name.count(cand) && !used[index_of(by_name[cand])]) w = by_name[cand];
    if (!w) {
      for (auto& nw : weights) {
        const std::string suffix = "/" + leaf;
        if (!used[index_of(&nw)] && nw.name.size() > suffix.size() && nw.name.compare(nw.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
          if (w) throw IOError("'" + source + "': weight for '" + full + "' is ambiguous: '" + w->name + "' and '" + nw.name + "'");
          w = &nw;
        }
      }
    }
    if (!w) throw IOError("'" + source + "': no weight named '" + full + "' (layer '" + full.substr(0, full.rfind('/')) + "', weight '" + var->name + "')");
    if (w->shape != var->value.shape())
      throw ShapeError("'" + source + "': layer '" + full.substr(0, full.rfind('/')) + "' weight '" + var->name + "' expects shape " +
                       shape_str(var->value.shape()) + ", the file has " + shape_str(w->shape) + " ('" + w->name + "')");
    for (Index i = 0; i < var->value.size(); ++i) var->value[i] = static_cast<T>(w->values[i]);
    used[index_of(w)] = true;
  }
  if (!allow_unused)
    for (std::size_t i = 0; i < weights.size(); ++i)
      if (!used[i]) throw IOError("'" + source + "': weight '" + weights[i].name + "' matches no variable of model '" + model.name() + "'");
}

/// Loads a weights manifest (model.json, with or without topology) into a built model by name.
template <class T>
void load_weights(Model<T>& model, const std::string& path, bool allow_unused = false) {
  auto a = read_artifacts(path);
  assign_weights(model, a.weights, a.path, allow_unused);
}

/// Loads a TF.js layers model (model.json path or its folder): topology and weights.
template <class T = float>
std::shared_ptr<Model<T>> load_model(const std::string& path) {
  auto a = read_artifacts(path);
  if (a.topology.is_null()) throw IOError("'" + a.path + "' holds weights only (no modelTopology): build the model and call load_weights");
  std::shared_ptr<Model<T>> m;
  try {
    m = model_from_config<T>(a.topology);
  } catch (const Error& e) {
    throw ValueError("'" + a.path + "': " + e.what());
  } catch (const json::exception& e) {
    throw ValueError("'" + a.path + "': malformed modelTopology: " + e.what());
  }
  assign_weights(*m, a.weights, a.path);
  if (a.metadata.is_object()) m->metadata = a.metadata;
  return m;
}

/// Writes model.json + one float32 weights shard into `dir`. Crash-safe: the shard gets a fresh
/// name, model.json is replaced by an atomic rename, and only then are the previous shards
/// removed, so the folder always holds a complete model (the old one or the new one).
template <class T>
void save_model(Model<T>& model, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Variable<T>*>> vars;
  for (auto& l : model.layers()) collect_named_variables(*l, "", vars);
  json weights = json::array();
  std::string data;
  for (auto& [full, v] : vars) {
    // TF.js names weights by their original "layer/weight" name, without model prefixes.
    std::size_t cut = full.rfind('/', full.rfind('/') - 1);
    std::string name = cut == std::string::npos ? full : full.substr(cut + 1);
    weights.push_back({{"name", name}, {"shape", v->value.shape()}, {"dtype", "float32"}});
    for (Index i = 0; i < v->value.size(); ++i) {
      float f = static_cast<float>(v->value[i]);
      data.append(reinterpret_cast<const char*>(&f), 4);
    }
  }
  json old;
  fs::path json_path = fs::path(dir) / "model.json";
  std::string shard = "group1-shard1of1.bin";
  if (fs::exists(json_path)) {  // keep the old shard until the new model.json is in place
    try {
      old = json::parse(read_file(json_path.string()));
    } catch (...) {
    }
    for (int i = 1; fs::exists(fs::path(dir) / shard); ++i) shard = "group1-shard1of1-v" + std::to_string(i) + ".bin";
  }
  write_file_atomic((fs::path(dir) / shard).string(), data);
  json topology = {{"class_name", model.class_name()}, {"config", model.get_config()}, {"keras_version", "tfjs-layers 4.22.0"}, {"backend", "tensor_flow.js"}};
  json j = {{"format", "layers-model"}, {"generatedBy", "kerascpp"}, {"convertedBy", nullptr}, {"modelTopology", topology},
            {"weightsManifest", json::array({{{"paths", json::array({shard})}, {"weights", weights}}})}};
  if (!model.metadata.is_null()) j["userDefinedMetadata"] = model.metadata;
  write_file_atomic(json_path.string(), j.dump());
  // Only now remove what the previous model.json referenced, and what an interrupted save left
  // behind: our temp files ("<name>.tmp<digits>") and our shards that no manifest refers to.
  std::error_code ec;
  if (old.is_object() && old.contains("weightsManifest") && old["weightsManifest"].is_array())
    for (auto& g : old["weightsManifest"])
      if (g.is_object() && g.contains("paths") && g["paths"].is_array())
        for (auto& p : g["paths"])
          if (p.is_string() && p.get<std::string>() != shard && p.get<std::string>().find('/') == std::string::npos)
            fs::remove(fs::path(dir) / p.get<std::string>(), ec);
  for (auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (f == shard) continue;
    auto t = f.rfind(".tmp");
    bool temp = t != std::string::npos && t + 4 < f.size() &&
                std::all_of(f.begin() + static_cast<std::ptrdiff_t>(t + 4), f.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                (f.rfind("model.json", 0) == 0 || f.rfind("group1-shard1of1", 0) == 0);
    bool orphan = f.rfind("group1-shard1of1-v", 0) == 0 && f.size() > 4 && f.compare(f.size() - 4, 4, ".bin") == 0;
    if (temp || orphan) fs::remove(e.path(), ec);
  }
}

}  // namespace keras::io

namespace keras::models {
using io::load_model;
using io::save_model;
}  // namespace keras::models
