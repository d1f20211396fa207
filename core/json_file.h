// Reading JSON files with errors that name the file, line and column; typed access to config keys
// with errors that name the key and what was expected.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace studio {

// The whole file as bytes; IoError naming the file when it is missing (with `missing_hint`),
// unreadable or fails mid-read.
std::string read_file_bytes(const std::filesystem::path& path,
                            const std::string& missing_hint = "check the path");

// Parses a JSON file; IoError if unreadable, ConfigError with line/column if malformed.
nlohmann::json read_json_file(const std::filesystem::path& path);

// Typed optional access: returns `fallback` when the key is absent or null; ConfigError naming
// `origin` and the key when present with the wrong type.
template <typename T>
T json_get(const nlohmann::json& j, const std::string& key, const T& fallback,
           const std::string& origin);

// Required key: ConfigError when absent or of the wrong type.
template <typename T>
T json_require(const nlohmann::json& j, const std::string& key, const std::string& origin);

}  // namespace studio

#include "core/json_file_inl.h"
