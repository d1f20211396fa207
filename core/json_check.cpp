#include "core/json_check.h"

#include <cmath>

#include "core/error.h"

namespace studio {

std::string JsonChecker::show(const nlohmann::json& value) {
  std::string s = value.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  if (value.is_null()) return "null";
  return s;
}

void JsonChecker::error(const std::string& path, const std::string& message) {
  errors_.push_back((path.empty() ? std::string("/") : path) + ": " + message);
}

void JsonChecker::mismatch(const std::string& path, const nlohmann::json& found,
                           const std::string& expected) {
  error(path, "found " + show(found) + ", expected " + expected);
}

bool JsonChecker::object(const nlohmann::json& j, const std::string& path,
                         std::initializer_list<const char*> allowed) {
  return object(j, path, std::vector<std::string>(allowed.begin(), allowed.end()));
}

bool JsonChecker::object(const nlohmann::json& j, const std::string& path,
                         const std::vector<std::string>& allowed) {
  if (!j.is_object()) {
    mismatch(path, j, "an object");
    return false;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const auto& a : allowed) known = known || it.key() == a;
    if (known) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    error(path + "/" + it.key(), "unknown key (allowed: " + list + ")");
  }
  return true;
}

namespace {
const nlohmann::json* member(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}
}  // namespace

std::optional<std::string> JsonChecker::string(const nlohmann::json& obj, const std::string& path,
                                               const char* key, bool required, bool non_empty) {
  const std::string p = path + "/" + key;
  const nlohmann::json* v = member(obj, key);
  if (!v || (v->is_null() && !required)) {
    if (required) error(p, "missing (expected a string)");
    return std::nullopt;
  }
  if (!v->is_string()) {
    mismatch(p, *v, non_empty ? "a non-empty string" : "a string");
    return std::nullopt;
  }
  if (non_empty && v->get_ref<const std::string&>().empty()) {
    mismatch(p, *v, "a non-empty string");
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<int64_t> JsonChecker::integer(const nlohmann::json& obj, const std::string& path,
                                            const char* key, bool required, int64_t min,
                                            int64_t max) {
  const std::string p = path + "/" + key;
  const nlohmann::json* v = member(obj, key);
  auto expected = [&] {
    std::string e = "an integer";
    if (min != INT64_MIN && max != INT64_MAX)
      e += " in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    else if (min != INT64_MIN)
      e += " >= " + std::to_string(min);
    else if (max != INT64_MAX)
      e += " <= " + std::to_string(max);
    return e;
  };
  if (!v || (v->is_null() && !required)) {
    if (required) error(p, "missing (expected " + expected() + ")");
    return std::nullopt;
  }
  if (!v->is_number_integer()) {
    mismatch(p, *v, expected());
    return std::nullopt;
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) {
    mismatch(p, *v, expected());
    return std::nullopt;
  }
  const int64_t x = v->get<int64_t>();
  if (x < min || x > max) {
    mismatch(p, *v, expected());
    return std::nullopt;
  }
  return x;
}

std::optional<double> JsonChecker::number(const nlohmann::json& obj, const std::string& path,
                                          const char* key, bool required, double min,
                                          double max) {
  const std::string p = path + "/" + key;
  const nlohmann::json* v = member(obj, key);
  auto expected = [&] {
    std::string e = "a number";
    auto f = [](double d) {
      std::string s = std::to_string(d);
      s.erase(s.find_last_not_of('0') + 1);
      if (!s.empty() && s.back() == '.') s.pop_back();
      return s;
    };
    if (min > -1e308 && max < 1e308)
      e += " in [" + f(min) + ", " + f(max) + "]";
    else if (min > -1e308)
      e += " >= " + f(min);
    else if (max < 1e308)
      e += " <= " + f(max);
    return e;
  };
  if (!v || (v->is_null() && !required)) {
    if (required) error(p, "missing (expected " + expected() + ")");
    return std::nullopt;
  }
  if (!v->is_number()) {
    mismatch(p, *v, expected());
    return std::nullopt;
  }
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < min || x > max) {
    mismatch(p, *v, expected());
    return std::nullopt;
  }
  return x;
}

std::optional<bool> JsonChecker::boolean(const nlohmann::json& obj, const std::string& path,
                                         const char* key, bool required) {
  const std::string p = path + "/" + key;
  const nlohmann::json* v = member(obj, key);
  if (!v || (v->is_null() && !required)) {
    if (required) error(p, "missing (expected true or false)");
    return std::nullopt;
  }
  if (!v->is_boolean()) {
    mismatch(p, *v, "true or false");
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<std::vector<std::string>> JsonChecker::strings(const nlohmann::json& obj,
                                                             const std::string& path,
                                                             const char* key, bool required,
                                                             bool non_empty_items) {
  const std::string p = path + "/" + key;
  const nlohmann::json* v = member(obj, key);
  if (!v || (v->is_null() && !required)) {
    if (required) error(p, "missing (expected an array of strings)");
    return std::nullopt;
  }
  if (!v->is_array()) {
    mismatch(p, *v, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool good = true;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    if (!e.is_string() || (non_empty_items && e.get_ref<const std::string&>().empty())) {
      mismatch(p + "/" + std::to_string(i), e, non_empty_items ? "a non-empty string" : "a string");
      good = false;
      continue;
    }
    out.push_back(e.get<std::string>());
  }
  if (!good) return std::nullopt;
  return out;
}

void JsonChecker::absorb(const std::string& nested_message, const std::string& path) {
  const size_t first = nested_message.find('\n');
  if (first == std::string::npos) {
    error(path, nested_message);
    return;
  }
  size_t at = first;
  while (at != std::string::npos) {
    const size_t next = nested_message.find('\n', at + 1);
    std::string line = nested_message.substr(
        at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    line.erase(0, line.find_first_not_of(' '));
    if (!line.empty()) errors_.push_back(line);
    at = next;
  }
}

void JsonChecker::throw_if_errors(const std::string& what, const std::string& hint) const {
  if (errors_.empty()) return;
  std::string msg = what + " (" + std::to_string(errors_.size()) +
                    (errors_.size() == 1 ? " problem" : " problems") + "):";
  for (const auto& e : errors_) msg += "\n  " + e;
  throw ConfigError(msg, origin_, hint);
}

}  // namespace studio
