// ModelCheckpoint: saves the model (TF.js layers format) after epochs, optionally only when the
// monitored value improves, or only its weights (save_weights_only: io::save_weights). Saving is
// crash-safe and durable (see io::save_model: temp file, fsync, rename, fsync of the folder): a run
// killed at any moment, or a power cut, leaves the last complete checkpoint loadable.
//
// The path is formatted as Keras's filepath.format(epoch=epoch + 1, **logs): "{epoch}",
// "{epoch:02d}", "{val_loss:.2f}", "{accuracy:.4f}", ... -- a name in braces, optionally with a
// format spec [[fill]align][sign][0][width][.precision][type], type one of d f e g % (or none);
// "{{" and "}}" are literal braces. A name that is neither "epoch" nor in the logs raises
// ValueError ('Failed to format this callback filepath: ...', as Keras's KeyError).
#pragma once
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "../io/tfjs.hpp"
#include "callbacks.hpp"

namespace keras::callbacks {

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  int verbose = 0;
  bool save_best_only = false;
  bool save_weights_only = false;  ///< write io::save_weights (model.json without topology + shard)
  std::string mode = "auto";
  std::optional<double> initial_value_threshold;  ///< the best value to beat first (save_best_only)
};

namespace detail {
/// One replacement field of a Python format string: the value formatted with the spec.
inline std::string format_field(const std::string& path, const std::string& key, const std::string& spec, double value,
                                bool integral) {
  // [[fill]align][sign][0][width][.precision][type]; fill/align other than '>' / '<' are not supported.
  std::size_t i = 0;
  std::string flags;
  if (spec.size() >= 1 && (spec[0] == '<' || spec[0] == '>')) {
    if (spec[0] == '<') flags += '-';
    i = 1;
  }
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) {
    if (spec[i] != '-') flags += spec[i];
    ++i;
  }
  if (i < spec.size() && spec[i] == '0') {
    flags += '0';
    ++i;
  }
  std::string width, precision;
  while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) width += spec[i++];
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) precision += spec[i++];
    if (precision.empty()) i = spec.size() + 1;  // malformed
  }
  char type = i < spec.size() ? spec[i++] : '\0';
  if (i != spec.size() || (type && std::string("dfFeEgG%").find(type) == std::string::npos))
    throw ValueError("Failed to format this callback filepath: \"" + path + "\". Reason: unsupported format spec '" +
                     spec + "' for '" + key + "'");
  if (type == 'd' && !integral && value != std::floor(value))
    throw ValueError("Failed to format this callback filepath: \"" + path +
                     "\". Reason: Unknown format code 'd' for object of type 'float' ('" + key + "')");
  char buf[128];
  std::string f = "%" + flags + width;
  if (type == 'd' || (!type && integral)) {
    std::snprintf(buf, sizeof buf, (f + "lld").c_str(), static_cast<long long>(value));
  } else if (type == '%') {
    std::snprintf(buf, sizeof buf, (f + "." + (precision.empty() ? "6" : precision) + "f%%").c_str(), value * 100);
  } else if (!type) {  // Python's str(float): the shortest repr
    std::snprintf(buf, sizeof buf, "%.17g", value);
    for (int p = 1; p <= 17; ++p) {
      char t[64];
      std::snprintf(t, sizeof t, "%.*g", p, value);
      if (std::strtod(t, nullptr) == value) {
        std::snprintf(buf, sizeof buf, "%s%s", t,
                      std::strchr(t, '.') || std::strchr(t, 'e') || std::strchr(t, 'n') ? "" : ".0");
        break;
      }
    }
  } else {
    std::snprintf(buf, sizeof buf, (f + (precision.empty() ? "" : "." + precision) + type).c_str(), value);
  }
  return buf;
}
}  // namespace detail

/// Keras's filepath.format(epoch=epoch + 1, **logs) (see the header comment).
inline std::string format_checkpoint_path(const std::string& path, int epoch, const Logs& logs) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char ch = path[i];
    if ((ch == '{' || ch == '}') && i + 1 < path.size() && path[i + 1] == ch) {
      out += ch;
      ++i;
      continue;
    }
    if (ch == '}')
      throw ValueError("Failed to format this callback filepath: \"" + path +
                       "\". Reason: Single '}' encountered in format string");
    if (ch != '{') {
      out += ch;
      continue;
    }
    const std::size_t close = path.find('}', i);
    if (close == std::string::npos)
      throw ValueError("Failed to format this callback filepath: \"" + path +
                       "\". Reason: Single '{' encountered in format string");
    const std::string field = path.substr(i + 1, close - i - 1);
    const std::size_t colon = field.find(':');
    const std::string key = field.substr(0, colon), spec = colon == std::string::npos ? "" : field.substr(colon + 1);
    if (key == "epoch") {
      out += detail::format_field(path, key, spec, static_cast<double>(epoch + 1), true);
    } else {
      auto it = logs.find(key);
      if (it == logs.end())
        throw ValueError("Failed to format this callback filepath: \"" + path + "\". Reason: KeyError '" + key +
                         "' (not 'epoch' nor in the logs)");
      out += detail::format_field(path, key, spec, it->second, false);
    }
    i = close;
  }
  return out;
}

template <class T = float>
class ModelCheckpoint : public Callback<T> {
 public:
  /// `filepath` (a folder) may hold "{epoch:02d}", "{val_loss:.2f}", ... (format_checkpoint_path).
  explicit ModelCheckpoint(std::string filepath, ModelCheckpointOptions o = {})
      : path_(std::move(filepath)), o_(std::move(o)), max_(detail::monitor_is_max(o_.monitor, o_.mode)) {}
  bool chief_only() const override { return true; }
  void on_train_begin(const Logs&) override {
    best_ = o_.initial_value_threshold ? *o_.initial_value_threshold : max_ ? -INFINITY : INFINITY;
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    if (o_.save_best_only) {
      auto it = logs.find(o_.monitor);
      if (it == logs.end()) {
        std::cerr << "Can save best model only with " << o_.monitor << " available, skipping.\n";
        return;
      }
      double cur = it->second;
      if (!(max_ ? cur > best_ : cur < best_)) {
        if (o_.verbose)
          std::cout << "\nEpoch " << epoch + 1 << ": " << o_.monitor << " did not improve from " << best_ << "\n";
        return;
      }
      const std::string path = format_checkpoint_path(path_, epoch, logs);
      if (o_.verbose)
        std::cout << "\nEpoch " << epoch + 1 << ": " << o_.monitor << " improved from " << best_ << " to " << cur
                  << ", saving model to " << path << "\n";
      best_ = cur;
      save(path);
      return;
    }
    const std::string path = format_checkpoint_path(path_, epoch, logs);
    if (o_.verbose) std::cout << "\nEpoch " << epoch + 1 << ": saving model to " << path << "\n";
    save(path);
  }
  double best() const { return best_; }

 private:
  std::string path_;
  ModelCheckpointOptions o_;
  bool max_;
  double best_ = INFINITY;
  void save(const std::string& path) {
    if (o_.save_weights_only)
      io::save_weights(*this->model_, path);
    else
      io::save_model(*this->model_, path);
  }
};

}  // namespace keras::callbacks
