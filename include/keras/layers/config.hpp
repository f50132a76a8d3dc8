// Checked reads of Keras layer configs (from_config): every number a model file gives is checked
// for type, integrality and range before it is converted, so values such as 1e300, -5 or 2.5 as a
// kernel size give a keras::ValueError naming the layer, the key, the accepted range and what was
// received, never undefined behaviour (a double -> int64 conversion out of range is UB) or an
// allocation sized by a hostile file.
#pragma once
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace keras::layers::config {

using json = nlohmann::json;

/// The largest value accepted for a dimension, a unit count, a kernel size, a stride or a padding
/// (2^31 - 1). Together with kMaxElements (core/shape.hpp) this keeps shape arithmetic in int64.
inline constexpr Index kMaxDim = (Index(1) << 31) - 1;

/// "Dense 'dense_1'": how messages name a layer from its config.
inline std::string where(const char* cls, const json& c) {
  std::string n =
      c.is_object() && c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : std::string();
  return std::string(cls) + " '" + n + "'";
}

/// The layer's name from its config ("" when absent); a non-string name is an error.
inline std::string name(const json& c, const char* cls) {
  if (!c.is_object())
    throw ValueError(std::string(cls) + ": the layer config must be a JSON object, got " + c.dump().substr(0, 80));
  if (!c.contains("name") || c["name"].is_null()) return "";
  if (!c["name"].is_string())
    throw ValueError(std::string(cls) + ": config 'name' must be a string, got " + c["name"].dump().substr(0, 80));
  return c["name"].get<std::string>();
}

/// An integer from a JSON number in [lo, hi]. Integral floats (3.0) are accepted, as Keras does.
inline Index to_int(const json& v, const std::string& who, const std::string& key, Index lo, Index hi) {
  auto fail = [&](const std::string& got) -> Index {
    throw ValueError(who + ": '" + key + "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     "], got " + got);
  };
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(hi) || static_cast<Index>(u) < lo) return fail(v.dump());
    return static_cast<Index>(u);
  }
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (i < lo || i > hi) return fail(v.dump());
    return i;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
      return fail(v.dump());
    return static_cast<Index>(d);
  }
  return fail(v.dump().substr(0, 80));
}

/// c[key] as an integer in [lo, hi], or `def` when the key is absent or null.
inline Index get_int(const json& c, const char* key, Index def, const std::string& who, Index lo, Index hi) {
  if (!c.is_object() || !c.contains(key) || c[key].is_null()) return def;
  return to_int(c[key], who, key, lo, hi);
}

/// c[key] as a finite number in [lo, hi], or `def` when absent or null.
inline double get_number(const json& c, const char* key, double def, const std::string& who,
                         double lo = -std::numeric_limits<double>::max(),
                         double hi = std::numeric_limits<double>::max()) {
  if (!c.is_object() || !c.contains(key) || c[key].is_null()) return def;
  const json& v = c[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < lo || v.get<double>() > hi)
    throw ValueError(who + ": '" + key + "' must be a number in [" + json(lo).dump() + ", " + json(hi).dump() +
                     "], got " + v.dump().substr(0, 80));
  return v.get<double>();
}

/// c[key] as a string, or `def` when absent or null.
inline std::string get_string(const json& c, const char* key, const std::string& def, const std::string& who) {
  if (!c.is_object() || !c.contains(key) || c[key].is_null()) return def;
  if (!c[key].is_string())
    throw ValueError(who + ": '" + key + "' must be a string, got " + c[key].dump().substr(0, 80));
  return c[key].get<std::string>();
}

/// c[key] as a bool, or `def` when absent or null.
inline bool get_bool(const json& c, const char* key, bool def, const std::string& who) {
  if (!c.is_object() || !c.contains(key) || c[key].is_null()) return def;
  if (!c[key].is_boolean())
    throw ValueError(who + ": '" + key + "' must be true or false, got " + c[key].dump().substr(0, 80));
  return c[key].get<bool>();
}

/// Refuses a data_format other than channels_last (absent or null: channels_last).
inline void check_channels_last(const json& c, const std::string& who) {
  if (get_string(c, "data_format", "channels_last", who) != "channels_last")
    throw ValueError(who + ": only data_format channels_last is supported");
}

/// c[key], which must be present.
inline const json& require(const json& c, const char* key, const std::string& who) {
  if (!c.is_object() || !c.contains(key)) throw ValueError(who + ": config has no '" + key + "'");
  return c[key];
}

}  // namespace keras::layers::config
