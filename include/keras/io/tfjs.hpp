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
#include "../version.hpp"
#include "file_utils.hpp"

namespace keras::io {

namespace fs = std::filesystem;

/// A weight read from a manifest, dequantized to float.
struct NamedWeight {
  std::string name;
  Shape shape;
  std::vector<float> values;  ///< empty until the shards are read (read_weight_data)
  // Where the weight is stored (from the manifest): shards of group `group`, bytes [offset, offset + bytes).
  std::size_t group = 0, offset = 0, bytes = 0;
  std::string stored = "float32";  ///< stored dtype (float32, int32, float16, uint16, uint8, bool)
  double scale = 1, min = 0;       ///< dequantization of uint8/uint16
};

/// One weightsManifest group: its shard files and the bytes the manifest says they hold.
struct ManifestGroup {
  std::vector<std::string> paths;  ///< resolved shard paths
  std::uint64_t shard_bytes = 0;   ///< sum of the shard file sizes
  std::uint64_t manifest_bytes = 0;
  std::size_t first_weight = 0, num_weights = 0;
};

struct LoadedArtifacts {
  json topology;  ///< modelTopology (may be null for weights-only files)
  json metadata;  ///< userDefinedMetadata (may be null)
  json training;  ///< trainingConfig (may be null)
  std::vector<NamedWeight> weights;
  std::vector<ManifestGroup> groups;
  std::string path;  ///< model.json path
  /// Total elements of all weights in the manifest.
  Index weight_elements() const {
    Index n = 0;
    for (auto& w : weights) n += num_elements(w.shape);
    return n;
  }
};

namespace detail {

inline float half_to_float(std::uint16_t h) {
  std::uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    v = mant ? std::nanf("") : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

inline std::string model_json_path(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) p /= "model.json";
  if (!fs::exists(p)) throw IOError("model file '" + p.string() + "' does not exist");
  return p.string();
}

/// Refuses JSON text nested deeper than `max_depth` (nlohmann copies and prints values
/// recursively: a 300,000-deep file would overflow the stack). Linear scan, strings skipped.
inline void check_json_depth(const std::string& text, const std::string& path, int max_depth) {
  int depth = 0;
  bool in_string = false, escape = false;
  for (char ch : text) {
    if (in_string) {
      if (escape)
        escape = false;
      else if (ch == '\\')
        escape = true;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > max_depth)
        throw IOError("'" + path + "' is nested more than " + std::to_string(max_depth) +
                      " levels deep (keras::io::limits().max_json_depth)");
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
}

/// A weight dimension from the manifest: an integer in [0, 2^31 - 1].
inline Index manifest_dim(const json& d, const std::string& json_path, const std::string& name) {
  try {
    return layers::config::to_int(d, "'" + json_path + "': weight '" + name + "'", "shape", 0, layers::config::kMaxDim);
  } catch (const ValueError& e) {
    throw IOError(e.what());
  }
}

/// Parses one manifest group (names, shapes, dtypes, byte ranges) and checks its shard files
/// (regular files within the size limit). Reads no weight data.
inline void parse_group(const json& group, const fs::path& dir, const std::string& json_path,
                        std::vector<NamedWeight>& out, std::vector<ManifestGroup>& groups) {
  if (!group.is_object() || !group.contains("paths") || !group.contains("weights") || !group["paths"].is_array() ||
      !group["weights"].is_array())
    throw IOError("'" + json_path + "': a weightsManifest group lacks a 'paths' or a 'weights' list");
  ManifestGroup g;
  g.first_weight = out.size();
  for (auto& p : group["paths"]) {
    if (!p.is_string()) throw IOError("'" + json_path + "': a shard path is not a string: " + p.dump().substr(0, 80));
    fs::path rel(p.get<std::string>());
    if (rel.empty() || rel.is_absolute())
      throw IOError("'" + json_path + "': shard path '" + rel.string() + "' must be relative to the model.json folder");
    fs::path shard = dir / rel;
    g.shard_bytes += checked_file_size(shard.string(), limits().max_file_bytes);
    if (g.shard_bytes > limits().max_file_bytes)
      throw IOError("'" + json_path + "': the shards of a weights group hold " + std::to_string(g.shard_bytes) +
                    " bytes, more than the limit of " + std::to_string(limits().max_file_bytes) +
                    " bytes (keras::io::limits().max_file_bytes)");
    g.paths.push_back(shard.string());
  }
  std::uint64_t off = 0;
  for (auto& w : group["weights"]) {
    NamedWeight nw;
    if (!w.is_object() || !w.contains("name") || !w["name"].is_string())
      throw IOError("'" + json_path + "': a weight of the weightsManifest has no name: " + w.dump().substr(0, 80));
    nw.name = w["name"].get<std::string>();
    if (!w.contains("shape") || !w["shape"].is_array() || w["shape"].size() > 8)
      throw IOError("'" + json_path + "': weight '" + nw.name + "' has no shape list of at most 8 dimensions");
    for (auto& d : w["shape"]) nw.shape.push_back(manifest_dim(d, json_path, nw.name));
    Index n = 1;
    for (Index d : nw.shape) {
      if (d != 0 && n > limits().max_weight_elements / d) {
        n = -1;
        break;
      }
      n *= d;
    }
    if (n < 0 || n > limits().max_weight_elements)
      throw IOError("'" + json_path + "': weight '" + nw.name + "' has shape " + shape_str(nw.shape) +
                    ", more than the limit of " + std::to_string(limits().max_weight_elements) +
                    " elements per weight (keras::io::limits().max_weight_elements)");
    std::string dtype = w.contains("dtype") && w["dtype"].is_string() ? w["dtype"].get<std::string>() : "float32";
    std::string qdtype;
    if (w.contains("quantization") && !w["quantization"].is_null()) {
      auto& q = w["quantization"];
      if (!q.is_object() || !q.contains("dtype") || !q["dtype"].is_string())
        throw IOError("'" + json_path + "': weight '" + nw.name + "' has a quantization without a dtype");
      qdtype = q["dtype"].get<std::string>();
      if (qdtype != "float16") {
        if (!q.contains("scale") || !q["scale"].is_number() || !q.contains("min") || !q["min"].is_number())
          throw IOError("'" + json_path + "': weight '" + nw.name + "' is quantized to " + qdtype +
                        " without a numeric scale and min");
        nw.scale = q["scale"].get<double>();
        nw.min = q["min"].get<double>();
      }
    }
    nw.stored = qdtype.empty() ? dtype : qdtype;
    const std::string& st = nw.stored;
    std::size_t item = st == "float32" || st == "int32"    ? 4
                       : st == "float16" || st == "uint16" ? 2
                       : st == "uint8" || st == "bool"     ? 1
                                                           : 0;
    if (!item) throw IOError("'" + json_path + "': weight '" + nw.name + "' has unsupported dtype '" + st + "'");
    nw.group = groups.size();
    nw.offset = static_cast<std::size_t>(off);
    nw.bytes = item * static_cast<std::size_t>(n);
    off += nw.bytes;
    out.push_back(std::move(nw));
  }
  g.manifest_bytes = off;
  g.num_weights = out.size() - g.first_weight;
  groups.push_back(std::move(g));
}

/// The shard files of group `g`, named for messages.
inline std::string shard_list(const ManifestGroup& g) {
  std::string r;
  for (auto& p : g.paths) r += (r.empty() ? "" : ", ") + fs::path(p).filename().string();
  return "[" + r + "]";
}

/// Checks that every group's shards hold exactly the bytes its manifest describes.
inline void check_group_sizes(const LoadedArtifacts& a) {
  for (std::size_t gi = 0; gi < a.groups.size(); ++gi) {
    const auto& g = a.groups[gi];
    if (g.manifest_bytes == g.shard_bytes) continue;
    std::string why;
    if (g.shard_bytes < g.manifest_bytes) {
      why = " (truncated shard?";
      for (std::size_t wi = g.first_weight; wi < g.first_weight + g.num_weights; ++wi) {
        const auto& w = a.weights[wi];
        if (w.offset + w.bytes > g.shard_bytes) {
          why += " the data ends inside weight '" + w.name + "', which needs bytes [" + std::to_string(w.offset) +
                 ", " + std::to_string(w.offset + w.bytes) + ")";
          break;
        }
      }
      why += ")";
    } else {
      why = " (extra data: a weight is missing from the manifest, or its shape there is too small)";
    }
    throw IOError("'" + a.path + "': manifest/shard size mismatch: weights group " + std::to_string(gi + 1) +
                  " describes " + std::to_string(g.num_weights) + " weights of " + std::to_string(g.manifest_bytes) +
                  " bytes in total, but its shards " + shard_list(g) + " hold " + std::to_string(g.shard_bytes) +
                  " bytes" + why);
  }
}

/// Reads the shards and decodes the values of every weight (after check_group_sizes).
inline void read_weight_data(LoadedArtifacts& a) {
  check_group_sizes(a);
  for (std::size_t gi = 0; gi < a.groups.size(); ++gi) {
    const auto& g = a.groups[gi];
    std::string data;
    data.reserve(static_cast<std::size_t>(g.shard_bytes));
    for (auto& p : g.paths) data += read_file(p);
    if (data.size() != g.manifest_bytes)
      throw IOError("'" + a.path + "': the shards " + shard_list(g) + " changed size while being read");
    for (std::size_t wi = g.first_weight; wi < g.first_weight + g.num_weights; ++wi) {
      NamedWeight& nw = a.weights[wi];
      const Index n = num_elements(nw.shape);
      nw.values.resize(static_cast<std::size_t>(n));
      const char* p = data.data() + nw.offset;
      const std::string& st = nw.stored;
      for (Index i = 0; i < n; ++i) {
        if (st == "float32") {
          float v;
          std::memcpy(&v, p + 4 * i, 4);
          nw.values[i] = v;
        } else if (st == "int32") {
          std::int32_t v;
          std::memcpy(&v, p + 4 * i, 4);
          nw.values[i] = static_cast<float>(v);
        } else if (st == "float16") {
          std::uint16_t v;
          std::memcpy(&v, p + 2 * i, 2);
          nw.values[i] = half_to_float(v);
        } else if (st == "uint16") {
          std::uint16_t v;
          std::memcpy(&v, p + 2 * i, 2);
          nw.values[i] = static_cast<float>(v * nw.scale + nw.min);
        } else {
          auto v = static_cast<std::uint8_t>(p[i]);
          nw.values[i] = static_cast<float>(v * nw.scale + nw.min);
        }
      }
    }
  }
}

}  // namespace detail

/// Reads model.json (path to the file or its folder) and its weights manifest. With
/// `with_data` (the default) also reads and decodes every weight; without it only the manifest's
/// names, shapes and byte ranges (checked against the shard file sizes) are read.
inline LoadedArtifacts read_artifacts(const std::string& path, bool with_data = true) {
  LoadedArtifacts a;
  a.path = detail::model_json_path(path);
  json j;
  try {
    std::string text = read_file(a.path, limits().max_json_bytes, "max_json_bytes");
    detail::check_json_depth(text, a.path, limits().max_json_depth);
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers such as 1e400
    throw IOError("'" + a.path + "' is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw IOError("'" + a.path + "' is not a TF.js model.json (expected a JSON object)");
  if (j.contains("modelTopology")) a.topology = std::move(j["modelTopology"]);
  if (a.topology.is_object() && a.topology.contains("model_config")) {
    json mc = std::move(a.topology["model_config"]);
    a.topology = std::move(mc);
  }
  if (j.contains("userDefinedMetadata")) a.metadata = std::move(j["userDefinedMetadata"]);
  if (j.contains("trainingConfig")) a.training = std::move(j["trainingConfig"]);
  if (!j.contains("weightsManifest")) throw IOError("'" + a.path + "' has no weightsManifest");
  if (!j["weightsManifest"].is_array()) throw IOError("'" + a.path + "': weightsManifest must be a list of groups");
  fs::path dir = fs::path(a.path).parent_path();
  try {
    for (auto& g : j["weightsManifest"]) detail::parse_group(g, dir, a.path, a.weights, a.groups);
    Index total = 0;
    for (auto& w : a.weights) {
      total += num_elements(w.shape);
      if (total > kMaxElements)
        throw IOError("'" + a.path + "': the weights manifest describes more than 2^48 elements");
    }
    if (with_data) detail::read_weight_data(a);
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
    if (first && cls != "InputLayer" && c.is_object() &&
        (c.contains("batch_input_shape") || c.contains("batch_shape"))) {
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
/// Keras 3: {"args": [...], "kwargs": {}} with {"class_name": "__keras_tensor__", "config": {"keras_history": [name, n,
/// t]}}.
inline std::vector<std::string> inbound_names(const json& node, const std::string& layer) {
  std::vector<std::string> names;
  auto bad = [&](const json& e) {
    throw ValueError(
        "layer '" + layer + "': malformed inbound node " + e.dump().substr(0, 120) +
        " (expected [layer_name, node_index, tensor_index, ...] or a Keras 3 {\"keras_history\": [layer_name, ...]})");
  };
  if (node.is_array()) {
    for (auto& e : node) {
      if (!e.is_array() || e.empty() || !e[0].is_string()) bad(e);
      names.push_back(e[0].get<std::string>());
    }
  } else if (node.is_object() && node.contains("args")) {
    // Iterative walk (an explicit stack), so a deeply nested 'args' cannot overflow the call stack.
    std::vector<const json*> todo{&node["args"]};
    std::vector<std::string> found;
    while (!todo.empty()) {
      const json* a = todo.back();
      todo.pop_back();
      if (a->is_object() && a->contains("config") && (*a)["config"].is_object() &&
          (*a)["config"].contains("keras_history")) {
        const json& h = (*a)["config"]["keras_history"];
        if (!h.is_array() || h.empty() || !h[0].is_string()) bad(*a);
        names.push_back(h[0].get<std::string>());
      } else if (a->is_array()) {
        for (auto it = a->rbegin(); it != a->rend(); ++it) todo.push_back(&*it);
      }
    }
  } else {
    bad(node);
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
      std::string name =
          lj.contains("name") ? lj["name"].get<std::string>() : lj.at("config").at("name").get<std::string>();
      std::string cls = lj.at("class_name").get<std::string>();
      static const json no_nodes = json::array();
      const json& inbound = lj.contains("inbound_nodes") ? lj["inbound_nodes"] : no_nodes;
      if (!inbound.is_array())
        throw ValueError("layer '" + name + "': 'inbound_nodes' must be a list, got " + inbound.dump().substr(0, 80));
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
      if (inbound.empty())
        throw ValueError("layer '" + name + "' in model '" + config.value("name", "") + "' has no inbound nodes");
      if (inbound.size() > 1)
        throw ValueError("layer '" + name + "' is called " + std::to_string(inbound.size()) +
                         " times (shared layers are not supported)");
      auto in_names = inbound_names(inbound[0], name);
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
    if (remaining == before)
      throw ValueError("model '" + config.value("name", "") + "': inbound nodes refer to unknown layers");
  }
  auto refs = [&](const json& list) {
    std::vector<KerasTensor<T>> r;
    auto add = [&](const std::string& n) {
      if (!outputs.count(n))
        throw ValueError("model '" + config.value("name", "") + "' refers to unknown layer '" + n + "'");
      r.push_back(outputs.at(n));
    };
    // [[name, 0, 0], ...] or a single [name, 0, 0]
    if (!list.empty() && list[0].is_string())
      add(list[0].get<std::string>());
    else
      for (auto& e : list) add(e.at(0).get<std::string>());
    return r;
  };
  auto ins = refs(config.at("input_layers")), outs = refs(config.at("output_layers"));
  if (ins.empty() || outs.empty())
    throw ValueError("model '" + config.value("name", "") + "': '" + (ins.empty() ? "input_layers" : "output_layers") +
                     "' is empty (a model needs at least one input and one output)");
  return std::make_shared<Model<T>>(ins, outs, config.value("name", ""));
}

}  // namespace detail

/// A layer (or nested model) from {"class_name": ..., "config": ...}.
template <class T>
std::shared_ptr<layers::Layer<T>> layer_from_config(const json& lj) {
  try {
    std::string cls = lj.at("class_name").get<std::string>();
    const json& c = lj.at("config");
    std::shared_ptr<layers::Layer<T>> l;
    if (cls == "Sequential")
      l = detail::sequential_from_config<T>(c);
    else if (cls == "Functional" || cls == "Model")
      l = detail::functional_from_config<T>(c);
    else if (cls == "BatchNormalizationV1" || cls == "BatchNormalizationV2")
      l = layers::registry<T>().create("BatchNormalization", c);
    else
      l = layers::registry<T>().create(cls, c);
    if (c.is_object() && c.contains("trainable") && c["trainable"].is_boolean() && !c["trainable"].get<bool>())
      l->set_trainable(false);
    return l;
  } catch (const json::exception& e) {
    throw ValueError("bad layer config " + lj.dump().substr(0, 200) + ": " + e.what());
  }
}

/// A model from a Keras model config {"class_name": "Sequential" | "Functional" | "Model", "config": ...}.
template <class T = float>
std::shared_ptr<Model<T>> model_from_config(const json& topology) {
  std::string cls = topology.value("class_name", "");
  if (!detail::is_model_class(cls))
    throw ValueError("model_from_config: expected a Sequential or Functional model config, got class '" + cls + "'");
  return std::dynamic_pointer_cast<Model<T>>(layer_from_config<T>(topology));
}

// ---------------------------------------------------------------------------------------------
// Weights by name

/// Every variable with its full names: "layer/var" and the nested "outer/.../layer/var".
template <class T>
void collect_named_variables(layers::Layer<T>& layer, const std::string& prefix,
                             std::vector<std::pair<std::string, Variable<T>*>>& out) {
  if (auto* m = dynamic_cast<Model<T>*>(&layer)) {
    for (auto& l : m->layers()) collect_named_variables(*l, prefix + m->name() + "/", out);
    return;
  }
  for (auto* v : layer.variables()) out.push_back({prefix + layer.name() + "/" + v->name, v});
}

/// Matches the model's variables to manifest weights by name and checks every shape (no values
/// are needed). The manifest may name a weight "layer/var" or with any model prefixes
/// ("model/layer/var"). Every variable must be found; with `allow_unused` false every weight must
/// be used. Returns, per variable, the index of its weight.
template <class T>
std::vector<std::pair<Variable<T>*, std::size_t>> match_weights(Model<T>& model,
                                                                const std::vector<NamedWeight>& weights,
                                                                const std::string& source, bool allow_unused = false) {
  std::vector<std::pair<std::string, Variable<T>*>> vars;
  for (auto& l : model.layers()) collect_named_variables(*l, "", vars);
  std::map<std::string, const NamedWeight*> by_name;
  for (auto& w : weights) by_name[w.name] = &w;
  // Keras 2 (TF >= 2.2) names a recurrent layer's weights "lstm/lstm_cell/kernel": also known as
  // "lstm/kernel" (TF.js's loader drops the cell token the same way), unless that name is taken.
  for (auto& w : weights) {
    const std::size_t last = w.name.rfind('/');
    const std::size_t prev = last == std::string::npos || last == 0 ? std::string::npos : w.name.rfind('/', last - 1);
    const std::size_t from = prev == std::string::npos ? 0 : prev + 1;
    if (last == std::string::npos || w.name.substr(from, last - from).find("cell") == std::string::npos) continue;
    const std::string alias = w.name.substr(0, from == 0 ? 0 : from - 1) + w.name.substr(from == 0 ? last + 1 : last);
    if (from > 0 && !by_name.count(alias)) by_name[alias] = &w;
  }
  std::vector<bool> used(weights.size(), false);
  auto index_of = [&](const NamedWeight* w) { return static_cast<std::size_t>(w - weights.data()); };
  std::vector<std::pair<Variable<T>*, std::size_t>> r;
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
        if (!used[index_of(&nw)] && nw.name.size() > suffix.size() &&
            nw.name.compare(nw.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
          if (w)
            throw IOError("'" + source + "': weight for '" + full + "' is ambiguous: '" + w->name + "' and '" +
                          nw.name + "'");
          w = &nw;
        }
      }
    }
    if (!w)
      throw IOError("'" + source + "': no weight named '" + full + "' (layer '" + full.substr(0, full.rfind('/')) +
                    "', weight '" + var->name + "')");
    if (w->shape != var->value.shape())
      throw ShapeError("'" + source + "': layer '" + full.substr(0, full.rfind('/')) + "' weight '" + var->name +
                       "' expects shape " + shape_str(var->value.shape()) + ", the file has " + shape_str(w->shape) +
                       " ('" + w->name + "')");
    used[index_of(w)] = true;
    r.push_back({var, index_of(w)});
  }
  if (!allow_unused)
    for (std::size_t i = 0; i < weights.size(); ++i)
      if (!used[i])
        throw IOError("'" + source + "': weight '" + weights[i].name + "' matches no variable of model '" +
                      model.name() + "'");
  return r;
}

/// Assigns weights (with their values read) to the model's variables by name (see match_weights).
template <class T>
void assign_weights(Model<T>& model, const std::vector<NamedWeight>& weights, const std::string& source,
                    bool allow_unused = false) {
  for (auto& [var, wi] : match_weights(model, weights, source, allow_unused)) {
    const NamedWeight& w = weights[wi];
    if (static_cast<Index>(w.values.size()) != var->value.size())
      throw IOError("'" + source + "': weight '" + w.name +
                    "' has no values (read_artifacts was called without its data)");
    for (Index i = 0; i < var->value.size(); ++i) var->value[i] = static_cast<T>(w.values[i]);
    var->changed();
  }
}

/// Loads a weights manifest (model.json, with or without topology) into a built model by name.
/// Names and shapes are checked against the model before any weight data is read.
template <class T>
void load_weights(Model<T>& model, const std::string& path, bool allow_unused = false) {
  auto a = read_artifacts(path, false);
  match_weights(model, a.weights, a.path, allow_unused);
  detail::read_weight_data(a);
  assign_weights(model, a.weights, a.path, allow_unused);
}

/// Loads a TF.js layers model (model.json path or its folder): topology and weights.
/// Order (docs/reliability.md): model.json and the manifest are parsed and checked against the
/// limits and the shard file sizes; the model is built under a WeightBudget of the manifest's
/// element count (a config asking for more parameters than the file holds is refused before it
/// allocates); names and shapes are matched; only then are the shards read.
template <class T = float>
std::shared_ptr<Model<T>> load_model(const std::string& path) {
  auto a = read_artifacts(path, false);
  if (a.topology.is_null())
    throw IOError("'" + a.path + "' holds weights only (no modelTopology): build the model and call load_weights");
  std::shared_ptr<Model<T>> m;
  try {
    WeightBudget budget(a.weight_elements(), "'" + a.path + "'");
    m = model_from_config<T>(a.topology);
  } catch (const Error& e) {
    const std::string w = e.what();
    throw ValueError(w.rfind("'" + a.path + "'", 0) == 0 ? w : "'" + a.path + "': " + w);
  } catch (const json::exception& e) {
    throw ValueError("'" + a.path + "': malformed modelTopology: " + e.what());
  }
  if (!m) throw ValueError("'" + a.path + "': modelTopology is not a model");
  match_weights(*m, a.weights, a.path);
  detail::read_weight_data(a);
  assign_weights(*m, a.weights, a.path);
  if (a.metadata.is_object()) m->metadata = a.metadata;
  if (!a.training.is_null()) {  // as Keras and TF.js: a file with a training config loads compiled
    try {
      m->compile_from_config(a.training);
    } catch (const Error& e) {
      throw ValueError("'" + a.path + "': trainingConfig: " + e.what());
    } catch (const json::exception& e) {
      throw ValueError("'" + a.path + "': malformed trainingConfig: " + e.what());
    }
  }
  return m;
}

/// Writes model.json + one float32 weights shard into `dir`. Crash-safe: the shard gets a fresh
/// name, model.json is replaced by an atomic rename, and only then are the previous shards
/// removed, so the folder always holds a complete model (the old one or the new one).
namespace detail {
template <class T>
void save_artifacts(Model<T>& model, const std::string& dir, bool weights_only);
}  // namespace detail

template <class T>
void save_model(Model<T>& model, const std::string& dir) {
  detail::save_artifacts(model, dir, false);
}

/// Keras's model.save_weights: the weights alone in the TF.js weights format (model.json with
/// "modelTopology": null, as tensorflowjs_converter writes for a Keras weights file, + one float32
/// shard), crash-safe as save_model. load_weights(model, dir) reads them back by name.
template <class T>
void save_weights(Model<T>& model, const std::string& dir) {
  detail::save_artifacts(model, dir, true);
}

template <class T>
void detail::save_artifacts(Model<T>& model, const std::string& dir, bool weights_only) {
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
    } catch (...) {}
    for (int i = 1; fs::exists(fs::path(dir) / shard); ++i) shard = "group1-shard1of1-v" + std::to_string(i) + ".bin";
  }
  write_file_atomic((fs::path(dir) / shard).string(), data);
  json topology = {{"class_name", model.class_name()},
                   {"config", model.get_config()},
                   {"keras_version", "tfjs-layers 4.22.0"},
                   {"backend", "tensor_flow.js"}};
  // generatedBy names the producer and its version, as TF.js writes "TensorFlow.js tfjs-layers v4.22.0"
  // and tensorflowjs_converter "keras v2.13.1".
  json j = {{"format", "layers-model"},
            {"generatedBy", "kerascpp v" KERASCPP_VERSION_STRING},
            {"convertedBy", nullptr},
            {"modelTopology", weights_only ? json(nullptr) : topology},
            {"weightsManifest", json::array({{{"paths", json::array({shard})}, {"weights", weights}}})}};
  if (!model.metadata.is_null() && !weights_only) j["userDefinedMetadata"] = model.metadata;
  if (model.compiled() && !weights_only) j["trainingConfig"] = model.training_config();
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
                std::all_of(f.begin() + static_cast<std::ptrdiff_t>(t + 4), f.end(),
                            [](char c) { return c >= '0' && c <= '9'; }) &&
                (f.rfind("model.json", 0) == 0 || f.rfind("group1-shard1of1", 0) == 0);
    bool orphan = f.rfind("group1-shard1of1-v", 0) == 0 && f.size() > 4 && f.compare(f.size() - 4, 4, ".bin") == 0;
    if (temp || orphan) fs::remove(e.path(), ec);
  }
}

}  // namespace keras::io

namespace keras::models {
using io::load_model;
using io::load_weights;
using io::save_model;
using io::save_weights;
}  // namespace keras::models
