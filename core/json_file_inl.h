// Template definitions for core/json_file.h.
#pragma once

#include "core/error.h"

namespace studio {
namespace detail {
template <typename T>
const char* json_type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else return "a value of the expected type";
}
template <typename T>
bool json_type_ok(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
  else if constexpr (std::is_integral_v<T>) return v.is_number_integer();
  else if constexpr (std::is_floating_point_v<T>) return v.is_number();
  else if constexpr (std::is_same_v<T, std::string>) return v.is_string();
  else return true;
}
}  // namespace detail

template <typename T>
T json_get(const nlohmann::json& j, const std::string& key, const T& fallback,
           const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!detail::json_type_ok<T>(*it))
    throw ConfigError("key '" + key + "' must be " + detail::json_type_name<T>() + ", found " +
                          it->dump(),
                      origin, "fix the value in the config file");
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("key '" + key + "' has an invalid value " + it->dump() + ": " + e.what(),
                      origin);
  }
}

template <typename T>
T json_require(const nlohmann::json& j, const std::string& key, const std::string& origin) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null())
    throw ConfigError("required key '" + key + "' is missing", origin,
                      "add it to the config file");
  return json_get<T>(j, key, T{}, origin);
}

}  // namespace studio
