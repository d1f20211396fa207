#include "pipeline/json_check.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

namespace studio {

void Problems::add(std::string path, std::string message) {
  list_.push_back({std::move(path), std::move(message)});
}

void Problems::append(const Problems& other, const std::string& prefix) {
  for (const auto& pr : other.list_) list_.push_back({prefix + pr.path, pr.message});
}

void Problems::throw_if_any(const std::string& origin, const std::string& what) const {
  if (list_.empty()) return;
  std::vector<Problem> unique;  // a shared default reported once per item is said once
  for (const auto& p : list_) {
    bool seen = false;
    for (const auto& u : unique) seen = seen || (u.path == p.path && u.message == p.message);
    if (!seen) unique.push_back(p);
  }
  throw ValidationError(origin, what, std::move(unique));
}

namespace {
std::string compose(const std::string& what, const std::vector<Problem>& problems) {
  std::string msg = what + " (" + std::to_string(problems.size()) +
                    (problems.size() == 1 ? " problem):" : " problems):");
  for (const auto& p : problems)
    msg += "\n  " + (p.path.empty() ? std::string() : p.path + ": ") + p.message;
  return msg;
}
}  // namespace

ValidationError::ValidationError(const std::string& origin, const std::string& what,
                                 std::vector<Problem> problems)
    : ConfigError(compose(what, problems), origin), problems_(std::move(problems)) {}

std::string json_path(const std::string& base, const std::string& key) {
  std::string out = base + "/";
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string json_path(const std::string& base, std::size_t index) {
  return base + "/" + std::to_string(index);
}

std::string describe_json(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  if (v.is_object()) return "an object " + s;
  if (v.is_array()) return "an array " + s;
  return s;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

namespace check {
namespace {

const nlohmann::json* get(const nlohmann::json& obj, const std::string& path,
                          const std::string& key, bool required, Problems& p) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) p.add(json_path(path, key), "missing required key");
    return nullptr;
  }
  return &*it;
}

void wrong(const nlohmann::json& v, const std::string& path, const std::string& expected,
           Problems& p) {
  p.add(path, "found " + describe_json(v) + ", expected " + expected);
}

std::string fmt_num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

std::string int_range(int64_t min, int64_t max) {
  constexpr int64_t lo = std::numeric_limits<int64_t>::min();
  constexpr int64_t hi = std::numeric_limits<int64_t>::max();
  if (min == lo && max == hi) return "an integer";
  if (max == hi) return "an integer >= " + std::to_string(min);
  if (min == lo) return "an integer <= " + std::to_string(max);
  return "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

bool int_value(const nlohmann::json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return false;
    *out = static_cast<int64_t>(v.get<uint64_t>());
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

}  // namespace

void keys(const nlohmann::json& obj, const std::string& path,
          const std::vector<std::string>& allowed, Problems& p) {
  if (!obj.is_object()) return;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == it.key();
    if (!ok) p.add(json_path(path, it.key()), "unknown key (allowed: " + join_names(allowed) + ")");
  }
}

bool object(const nlohmann::json& v, const std::string& path, Problems& p) {
  if (v.is_object()) return true;
  wrong(v, path, "an object", p);
  return false;
}

bool is_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

std::optional<std::string> string(const nlohmann::json& obj, const std::string& path,
                                  const std::string& key, bool required, Problems& p,
                                  bool non_empty) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  if (!v->is_string() || (non_empty && v->get<std::string>().empty())) {
    wrong(*v, json_path(path, key), non_empty ? "a non-empty string" : "a string", p);
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<std::string> name(const nlohmann::json& obj, const std::string& path,
                                const std::string& key, bool required, Problems& p) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  if (!v->is_string() || !is_name(v->get<std::string>())) {
    wrong(*v, json_path(path, key), "a name of letters, digits, '.', '_' and '-'", p);
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<int64_t> integer(const nlohmann::json& obj, const std::string& path,
                               const std::string& key, bool required, Problems& p, int64_t min,
                               int64_t max) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  int64_t x = 0;
  if (!int_value(*v, &x) || x < min || x > max) {
    wrong(*v, json_path(path, key), int_range(min, max), p);
    return std::nullopt;
  }
  return x;
}

std::optional<double> number(const nlohmann::json& obj, const std::string& path,
                             const std::string& key, bool required, Problems& p, double min,
                             double max, bool min_exclusive) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  const bool finite_max = std::isfinite(max);
  std::string expected;
  if (finite_max)
    expected = std::string("a number in ") + (min_exclusive ? "(" : "[") + fmt_num(min) + ", " +
               fmt_num(max) + "]";
  else
    expected = std::string("a number ") + (min_exclusive ? "> " : ">= ") + fmt_num(min);
  if (!v->is_number()) {
    wrong(*v, json_path(path, key), expected, p);
    return std::nullopt;
  }
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < min || (min_exclusive && x == min) || x > max) {
    wrong(*v, json_path(path, key), expected, p);
    return std::nullopt;
  }
  return x;
}

std::optional<bool> boolean(const nlohmann::json& obj, const std::string& path,
                            const std::string& key, bool required, Problems& p) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) {
    wrong(*v, json_path(path, key), "true or false", p);
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<std::vector<std::string>> strings(const nlohmann::json& obj, const std::string& path,
                                                const std::string& key, bool required,
                                                Problems& p, bool names, bool allow_empty) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  const std::string here = json_path(path, key);
  const std::string element = names ? "a name of letters, digits, '.', '_' and '-'" : "a string";
  if (!v->is_array() || (!allow_empty && v->empty())) {
    wrong(*v, here, std::string(allow_empty ? "an array of " : "a non-empty array of ") +
                        (names ? "names" : "strings"),
          p);
    return std::nullopt;
  }
  std::vector<std::string> out;
  std::map<std::string, std::size_t> seen;
  bool ok = true;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    if (!e.is_string() || (names && !is_name(e.get<std::string>()))) {
      wrong(e, json_path(here, i), element, p);
      ok = false;
      continue;
    }
    const auto s = e.get<std::string>();
    if (names) {
      auto [it, fresh] = seen.emplace(s, i);
      if (!fresh) {
        p.add(json_path(here, i), "duplicate \"" + s + "\" (first at " +
                                      json_path(here, it->second) + ")");
        continue;
      }
    }
    out.push_back(s);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<int64_t>> integers(const nlohmann::json& obj, const std::string& path,
                                             const std::string& key, bool required, Problems& p,
                                             int64_t min, int64_t max) {
  const auto* v = get(obj, path, key, required, p);
  if (!v) return std::nullopt;
  const std::string here = json_path(path, key);
  if (!v->is_array() || v->empty()) {
    wrong(*v, here, "a non-empty array of integers", p);
    return std::nullopt;
  }
  std::vector<int64_t> out;
  std::map<int64_t, std::size_t> seen;
  bool ok = true;
  for (std::size_t i = 0; i < v->size(); ++i) {
    int64_t x = 0;
    if (!int_value((*v)[i], &x) || x < min || x > max) {
      wrong((*v)[i], json_path(here, i), int_range(min, max), p);
      ok = false;
      continue;
    }
    auto [it, fresh] = seen.emplace(x, i);
    if (!fresh) {
      p.add(json_path(here, i), "duplicate " + std::to_string(x) + " (first at " +
                                    json_path(here, it->second) + ")");
      continue;
    }
    out.push_back(x);
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace check
}  // namespace studio
