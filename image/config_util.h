// Reading diffusers model configs: "int or per-block list" keys, string lists, and the standard
// "not supported yet" ConfigError, shared by the UNet and VAE config parsers (image/ internal).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace studio::image::detail {

// The key's value as one int per block: an int is repeated n times, a list must have n ints.
// Absent or null gives `fallback` n times.
std::vector<int64_t> int_per_block(const nlohmann::json& config, const std::string& key,
                                   std::size_t n, int64_t fallback, const std::string& origin);
// A required non-empty list of strings.
std::vector<std::string> string_list(const nlohmann::json& config, const std::string& key,
                                     const std::string& origin);
// A required non-empty list of positive ints.
std::vector<int64_t> int_list(const nlohmann::json& config, const std::string& key,
                              const std::string& origin);
// Throws ConfigError("key 'k' = <value> is not supported yet ...") naming `origin`.
[[noreturn]] void unsupported(const std::string& key, const nlohmann::json& value,
                              const std::string& origin, const std::string& hint = {});
// Unsupported unless the key is absent, null or equal to `expected`.
void require_default(const nlohmann::json& config, const std::string& key,
                     const nlohmann::json& expected, const std::string& origin,
                     const std::string& hint = {});
// Ints and floats given as JSON numbers of either kind (diffusers writes 1 and 1.0 alike).
double number(const nlohmann::json& config, const std::string& key, double fallback,
              const std::string& origin);

}  // namespace studio::image::detail
