// Strict checking of user-written JSON (job files, presets) that collects every problem with its
// JSON path instead of stopping at the first, so one run of `studio plan` lists all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace studio {

// The largest seed a job or preset may name: 2^53, exact in every JSON reader.
inline constexpr int64_t kMaxJsonSeed = int64_t{1} << 53;

// One problem: the JSON pointer of the bad value ("/items/3/channels/0") and what is wrong.
struct Problem {
  std::string path;
  std::string message;
};

class Problems {
 public:
  void add(std::string path, std::string message);
  // Appends `other`, each path prefixed with `prefix` (a JSON pointer).
  void append(const Problems& other, const std::string& prefix = {});
  bool empty() const { return list_.empty(); }
  std::size_t size() const { return list_.size(); }
  const std::vector<Problem>& list() const { return list_; }
  // Throws ValidationError(origin, what, *this) when there is any problem.
  void throw_if_any(const std::string& origin, const std::string& what) const;

 private:
  std::vector<Problem> list_;
};

// Everything wrong with one file, one line per problem: "<path>: <message>". `where()` is the
// file; what_failed() is "<what> (N problems):\n  /a/b: ...\n  /c: ...".
class ValidationError : public ConfigError {
 public:
  ValidationError(const std::string& origin, const std::string& what, std::vector<Problem> problems);
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::vector<Problem> problems_;
};

// JSON pointer of a member / an element below `base` ("~" and "/" in keys escaped per RFC 6901).
std::string json_path(const std::string& base, const std::string& key);
std::string json_path(const std::string& base, std::size_t index);

// A value for a message: strings quoted, long values shortened ("found ...").
std::string describe_json(const nlohmann::json& v);
// "a, b, c" of names.
std::string join_names(const std::vector<std::string>& names);

// The strict readers. Each reads obj[key] (obj must be an object) at `path` (the object's own
// pointer); an absent or null key returns nullopt, recording "missing required key" when
// `required`; a value of the wrong type or out of range is recorded as
// `found <value>, expected <what>` and returns nullopt.
namespace check {

// Records unknown keys of `obj`: "<path>/<key>: unknown key (allowed: ...)".
void keys(const nlohmann::json& obj, const std::string& path,
          const std::vector<std::string>& allowed, Problems& p);
// True when v is an object; records "found ..., expected an object" otherwise.
bool object(const nlohmann::json& v, const std::string& path, Problems& p);

std::optional<std::string> string(const nlohmann::json& obj, const std::string& path,
                                  const std::string& key, bool required, Problems& p,
                                  bool non_empty = false);
// A name of [A-Za-z0-9._-]+ (ids, preset and variant names: safe as file names).
std::optional<std::string> name(const nlohmann::json& obj, const std::string& path,
                                const std::string& key, bool required, Problems& p);
bool is_name(const std::string& s);
std::optional<int64_t> integer(const nlohmann::json& obj, const std::string& path,
                               const std::string& key, bool required, Problems& p,
                               int64_t min = std::numeric_limits<int64_t>::min(),
                               int64_t max = std::numeric_limits<int64_t>::max());
// [min, max], or (min, max] with min_exclusive; max = +inf for none.
std::optional<double> number(const nlohmann::json& obj, const std::string& path,
                             const std::string& key, bool required, Problems& p, double min,
                             double max = std::numeric_limits<double>::infinity(),
                             bool min_exclusive = false);
std::optional<bool> boolean(const nlohmann::json& obj, const std::string& path,
                            const std::string& key, bool required, Problems& p);
// An array of strings (names with `names`); duplicates are recorded as
// "<path>/<key>/<i>: duplicate "x" (first at .../<j>)"; an empty array when !allow_empty.
std::optional<std::vector<std::string>> strings(const nlohmann::json& obj, const std::string& path,
                                                const std::string& key, bool required,
                                                Problems& p, bool names = false,
                                                bool allow_empty = true);
// An array of unique integers in [min, max], non-empty.
std::optional<std::vector<int64_t>> integers(const nlohmann::json& obj, const std::string& path,
                                             const std::string& key, bool required, Problems& p,
                                             int64_t min, int64_t max);

}  // namespace check
}  // namespace studio
