// Strict validation of JSON documents written by people (job files, presets, briefs): every
// problem is collected with its JSON path ("/items/3/preset: found ..., expected ...") so one
// error can list them all, instead of stopping at the first.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace studio {

class JsonChecker {
 public:
  explicit JsonChecker(std::string origin) : origin_(std::move(origin)) {}

  // `j` must be an object whose keys are all in `allowed` (each other key is an error naming the
  // allowed ones). False (and an error) when it is not an object.
  bool object(const nlohmann::json& j, const std::string& path,
              std::initializer_list<const char*> allowed);
  bool object(const nlohmann::json& j, const std::string& path,
              const std::vector<std::string>& allowed);

  // Typed members of an object already checked with object(). Absent (or null when
  // !required) -> nullopt; wrong type or out of range -> an error and nullopt.
  std::optional<std::string> string(const nlohmann::json& obj, const std::string& path,
                                    const char* key, bool required = false,
                                    bool non_empty = false);
  std::optional<int64_t> integer(const nlohmann::json& obj, const std::string& path,
                                 const char* key, bool required = false,
                                 int64_t min = INT64_MIN, int64_t max = INT64_MAX);
  std::optional<double> number(const nlohmann::json& obj, const std::string& path, const char* key,
                               bool required = false, double min = -1e308, double max = 1e308);
  std::optional<bool> boolean(const nlohmann::json& obj, const std::string& path, const char* key,
                              bool required = false);
  // An array of strings (each non-empty when non_empty_items).
  std::optional<std::vector<std::string>> strings(const nlohmann::json& obj,
                                                  const std::string& path, const char* key,
                                                  bool required = false,
                                                  bool non_empty_items = true);

  // "<path>: <message>"
  void error(const std::string& path, const std::string& message);
  // "<path>: found <value>, expected <expected>"
  void mismatch(const std::string& path, const nlohmann::json& found, const std::string& expected);

  // Adds the problems of a nested check that threw (its throw_if_errors() lines, or its whole
  // message at `path` when it is a single problem), so they join this list.
  void absorb(const std::string& nested_message, const std::string& path);

  bool ok() const { return errors_.empty(); }
  const std::vector<std::string>& errors() const { return errors_; }
  const std::string& origin() const { return origin_; }
  // ConfigError: "<what> (N problems):\n  <error>\n  ..." naming origin, when there are errors.
  void throw_if_errors(const std::string& what, const std::string& hint) const;

  // A short rendering of a value for messages (strings quoted, long values cut).
  static std::string show(const nlohmann::json& value);

 private:
  std::string origin_;
  std::vector<std::string> errors_;
};

}  // namespace studio
