#include "image/config_util.h"

#include "core/error.h"

namespace studio::image::detail {

std::vector<int64_t> int_per_block(const nlohmann::json& config, const std::string& key,
                                   std::size_t n, int64_t fallback, const std::string& origin) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::vector<int64_t>(n, fallback);
  if (it->is_number_integer()) return std::vector<int64_t>(n, it->get<int64_t>());
  if (!it->is_array())
    throw ConfigError(
        "key '" + key + "' must be an integer or a list of integers, found " + it->dump(), origin,
        "fix the value in the config file");
  if (it->size() != n)
    throw ConfigError("key '" + key + "' has " + std::to_string(it->size()) +
                          " entries but the model has " + std::to_string(n) + " blocks",
                      origin, "give one value per entry of down_block_types");
  std::vector<int64_t> out;
  for (const auto& v : *it) {
    if (v.is_array()) unsupported(key, *it, origin, "per-layer nested lists are not implemented");
    if (!v.is_number_integer())
      throw ConfigError("key '" + key + "' must hold integers, found " + it->dump(), origin);
    out.push_back(v.get<int64_t>());
  }
  return out;
}

std::vector<std::string> string_list(const nlohmann::json& config, const std::string& key,
                                     const std::string& origin) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null())
    throw ConfigError("required key '" + key + "' is missing", origin, "add it to the config file");
  if (!it->is_array() || it->empty())
    throw ConfigError("key '" + key + "' must be a non-empty list of strings, found " + it->dump(),
                      origin);
  std::vector<std::string> out;
  for (const auto& v : *it) {
    if (!v.is_string())
      throw ConfigError("key '" + key + "' must hold strings, found " + it->dump(), origin);
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<int64_t> int_list(const nlohmann::json& config, const std::string& key,
                              const std::string& origin) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null())
    throw ConfigError("required key '" + key + "' is missing", origin, "add it to the config file");
  if (!it->is_array() || it->empty())
    throw ConfigError("key '" + key + "' must be a non-empty list of integers, found " + it->dump(),
                      origin);
  std::vector<int64_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw ConfigError("key '" + key + "' must hold positive integers, found " + it->dump(),
                        origin);
    out.push_back(v.get<int64_t>());
  }
  return out;
}

void unsupported(const std::string& key, const nlohmann::json& value, const std::string& origin,
                 const std::string& hint) {
  throw ConfigError("key '" + key + "' = " + value.dump() + " is not supported yet", origin,
                    hint.empty() ? "this model variant is not implemented in studio" : hint);
}

void require_default(const nlohmann::json& config, const std::string& key,
                     const nlohmann::json& expected, const std::string& origin,
                     const std::string& hint) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null() || *it == expected) return;
  unsupported(
      key, *it, origin,
      hint.empty() ? "studio implements only " + key + " = " + expected.dump() + " for now" : hint);
}

double number(const nlohmann::json& config, const std::string& key, double fallback,
              const std::string& origin) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_number())
    throw ConfigError("key '" + key + "' must be a number, found " + it->dump(), origin);
  return it->get<double>();
}

}  // namespace studio::image::detail
