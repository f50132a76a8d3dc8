// Keras's model.summary() table, for a Functional model (with "Connected to") or a Sequential one.
#pragma once
#include <sstream>
#include <string>
#include <vector>

#include "../engine/graph.hpp"

namespace keras::detail {

inline std::string with_commas(Index v) {
  std::string s = std::to_string(v), r;
  int c = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (c && c % 3 == 0 && *it != '-') r.insert(r.begin(), ',');
    r.insert(r.begin(), *it);
    ++c;
  }
  return r;
}

/// The table for a model `name` running `graph`, with `total` and `trainable` parameter counts.
template <class T>
std::string summary_table(const std::string& name, const engine::Graph<T>& graph, bool sequential, Index total,
                          Index trainable) {
  const bool functional = !sequential;
  std::vector<int> widths = functional ? std::vector<int>{32, 21, 12, 33} : std::vector<int>{29, 26, 10};
  int total_w = 0;
  for (int w : widths) total_w += w;
  std::ostringstream os;
  auto row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      std::string c = " " + cells[i];
      if (static_cast<int>(c.size()) > widths[i] - 1 && i + 1 < cells.size()) c = c.substr(0, widths[i] - 1);
      line += c + std::string(std::max<int>(0, widths[i] - static_cast<int>(c.size())), ' ');
    }
    os << line << "\n";
  };
  os << "Model: \"" << name << "\"\n" << std::string(total_w, '_') << "\n";
  if (functional)
    row({"Layer (type)", "Output Shape", "Param #", "Connected to"});
  else
    row({"Layer (type)", "Output Shape", "Param #"});
  os << std::string(total_w, '=') << "\n";
  auto& nodes = graph.nodes();
  bool first = true;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    auto& n = nodes[i];
    if (!functional && n.input_index >= 0) continue;
    if (!first) os << std::string(total_w, ' ') << "\n";
    first = false;
    std::string label = n.layer->name() + " (" + n.layer->class_name() + ")";
    std::string params = with_commas(n.layer->count_params());
    if (functional) {
      std::string conn;
      for (int j : n.inputs) conn += (conn.empty() ? "" : ", ") + nodes[j].layer->name() + "[0][0]";
      row({label, shape_str(n.shape), params, "[" + conn + "]"});
    } else {
      row({label, shape_str(n.shape), params});
    }
  }
  os << std::string(total_w, '=') << "\n";
  os << "Total params: " << with_commas(total) << "\n";
  os << "Trainable params: " << with_commas(trainable) << "\n";
  os << "Non-trainable params: " << with_commas(total - trainable) << "\n";
  os << std::string(total_w, '_') << "\n";
  return os.str();
}

}  // namespace keras::detail
