#include "core/limits.h"

#include <sys/resource.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>

extern char** environ;

namespace studio {

namespace {

constexpr const char* kPrefix = "STUDIO_LIMIT_";
constexpr int64_t kMaxCount = int64_t{1} << 50;  // any count or byte size that fits comfortably

// A function-local static: limits may be read while other translation units initialise.
const std::vector<LimitSpec>& specs() {
  static const std::vector<LimitSpec> v = {
      {"image_pixels", "pixels", kMaxCount,
       "width x height of an image file, checked from its header before decoding (decompression "
       "bombs)",
       &ResourceLimits::image_pixels},
      {"video_frames", "frames", kMaxCount, "frames a video reader returns or a writer takes",
       &ResourceLimits::video_frames},
      {"video_seconds", "seconds", int64_t{1} << 40,
       "seconds of video read (the range) or written (the clip)", &ResourceLimits::video_seconds},
      {"video_side", "pixels", 1 << 16, "width and height of a video's frames, read or written",
       &ResourceLimits::video_side},
      {"mesh_vertices", "vertices", kMaxCount, "vertices of an imported model, all parts together",
       &ResourceLimits::mesh_vertices},
      {"mesh_faces", "faces", kMaxCount, "triangles of an imported model, all parts together",
       &ResourceLimits::mesh_faces},
      {"mesh_file_bytes", "bytes", kMaxCount, "size of a model file to import",
       &ResourceLimits::mesh_file_bytes},
      {"prompt_chars", "characters", kMaxCount,
       "characters of one prompt, negative prompt or brief field (job file, brief, command line)",
       &ResourceLimits::prompt_chars},
      {"gen_tokens", "tokens", kMaxCount,
       "tokens one text generation asks for (the model's max_sequence_length is checked too)",
       &ResourceLimits::gen_tokens},
      {"job_items", "work items", kMaxCount, "work items a job expands to (its plan)",
       &ResourceLimits::job_items},
      {"job_file_bytes", "bytes", kMaxCount, "size of a job file", &ResourceLimits::job_file_bytes},
      {"checkpoint_memory_percent", "percent", 1000,
       "share of the available memory a checkpoint's tensors may take once loaded; checked before "
       "any tensor is allocated",
       &ResourceLimits::checkpoint_memory_percent},
  };
  return v;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// A short decimal: 64 -> "64", 1.5 -> "1.5", 2.25 -> "2.3" (one decimal, trailing zero dropped).
std::string short_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

// Parses a positive decimal integer; nullopt when it is not one or overflows int64.
std::optional<int64_t> parse_positive(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const int d = c - '0';
    if (v > (std::numeric_limits<int64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (v <= 0) return std::nullopt;
  return v;
}

std::map<std::string, std::string> process_limit_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    if (kv.compare(0, std::char_traits<char>::length(kPrefix), kPrefix) != 0) continue;
    const auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

std::mutex& limits_mutex() {
  static std::mutex m;
  return m;
}
std::optional<ResourceLimits>& current_limits() {
  static std::optional<ResourceLimits> l;
  return l;
}

std::mutex& probe_mutex() {
  static std::mutex m;
  return m;
}
MemoryProbe& current_probe() {
  static MemoryProbe p;
  return p;
}

// The first line of a file, trimmed; "" when unreadable.
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

// "key:   123 kB" lines of /proc/meminfo or /proc/self/status; nullopt when absent.
std::optional<uint64_t> proc_kb(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    std::istringstream rest(line.substr(key.size() + 1));
    uint64_t kb = 0;
    if (rest >> kb) return kb * 1024;
    return std::nullopt;
  }
  return std::nullopt;
}

// cgroup v2: memory.max - memory.current of this process's cgroup, when it has a limit.
std::optional<uint64_t> cgroup_available() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, rel;
  while (std::getline(in, line))
    if (line.compare(0, 3, "0::") == 0) rel = line.substr(3);
  if (rel.empty()) return std::nullopt;
  const std::string dir = "/sys/fs/cgroup" + (rel == "/" ? std::string() : rel);
  const std::string max = first_line(dir + "/memory.max");
  const auto limit = parse_positive(max);  // "max" (no limit) and unreadable -> nullopt
  if (!limit) return std::nullopt;
  const auto used = parse_positive(first_line(dir + "/memory.current")).value_or(0);
  return used >= *limit ? 0 : static_cast<uint64_t>(*limit - used);
}

AvailableMemory probe_available_memory() {
  AvailableMemory best{std::numeric_limits<uint64_t>::max(), "no limit found"};
  auto consider = [&](std::optional<uint64_t> bytes, const char* source) {
    if (bytes && *bytes < best.bytes) best = {*bytes, source};
  };
  consider(proc_kb("/proc/meminfo", "MemAvailable"), "MemAvailable in /proc/meminfo");
  consider(cgroup_available(), "the cgroup's memory.max less memory.current");
  rlimit rl{};
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const uint64_t in_use = proc_kb("/proc/self/status", "VmSize").value_or(0);
    const uint64_t cap = static_cast<uint64_t>(rl.rlim_cur);
    consider(cap > in_use ? cap - in_use : 0, "RLIMIT_AS less the address space in use");
  }
  return best;
}

}  // namespace

const std::vector<LimitSpec>& limit_specs() { return specs(); }

const LimitSpec& limit_spec(const std::string& name) {
  for (const auto& s : specs())
    if (name == s.name) return s;
  throw UsageError("unknown limit '" + name + "'", "core/limits.h",
                   "use one of the names of limit_specs()");
}

std::string limit_variable(const LimitSpec& spec) { return kPrefix + upper(spec.name); }

std::string format_limit_value(const LimitSpec& spec, int64_t value) {
  const std::string unit = spec.unit;
  if (unit == "pixels") {
    if (value >= 1000 * 1000) return short_number(static_cast<double>(value) / 1e6) + " Mpx";
    return std::to_string(value) + " px";
  }
  if (unit == "bytes") return format_bytes(static_cast<uint64_t>(value));
  if (unit == "seconds") return std::to_string(value) + " s";
  if (unit == "percent") return std::to_string(value) + "%";
  return std::to_string(value) + " " + unit;
}

std::string format_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::string s = short_number(v) + " " + kUnits[u];
  // Exact sizes (16 MiB) need no byte count; others get it for precision.
  if (bytes % (uint64_t{1} << (10 * (u + 1))) != 0) s += " (" + std::to_string(bytes) + " bytes)";
  return s;
}

ResourceLimits read_resource_limits(const std::map<std::string, std::string>& env) {
  ResourceLimits l;
  for (const auto& [var, value] : env) {
    if (var.compare(0, std::char_traits<char>::length(kPrefix), kPrefix) != 0) continue;
    const LimitSpec* spec = nullptr;
    for (const auto& s : specs())
      if (var == limit_variable(s)) spec = &s;
    if (!spec) {
      std::string known;
      for (const auto& s : specs()) known += (known.empty() ? "" : ", ") + limit_variable(s);
      throw ConfigError("unknown limit variable " + var, var, "unset it, or use one of: " + known);
    }
    const std::string how = "set it to a whole number of " + std::string(spec->unit) +
                            " from 1 to " + std::to_string(spec->max_value) + " (default " +
                            std::to_string(ResourceLimits{}.*(spec->member)) + "), or unset it";
    if (value.empty()) continue;  // set but empty: unset (as STUDIO_PRESETS)
    const auto v = parse_positive(value);
    if (!v) {
      const bool digits =
          !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
      const bool zero = digits && value.find_first_not_of('0') == std::string::npos;
      throw ConfigError(var + " is \"" + value + "\", " +
                            (digits && !zero ? "too large (it overflows a 64-bit integer)"
                                             : "not a positive integer"),
                        var, how);
    }
    if (*v > spec->max_value)
      throw ConfigError(var + " is " + value + ", more than the largest accepted value " +
                            std::to_string(spec->max_value),
                        var, how);
    l.*(spec->member) = *v;
  }
  return l;
}

ResourceLimits resource_limits() {
  std::lock_guard<std::mutex> lock(limits_mutex());
  auto& l = current_limits();
  if (!l) l = read_resource_limits(process_limit_env());  // throws (and retries next time)
  return *l;
}

ResourceLimits set_resource_limits(const ResourceLimits& limits) {
  std::lock_guard<std::mutex> lock(limits_mutex());
  auto& l = current_limits();
  ResourceLimits previous = l ? *l : ResourceLimits{};
  if (!l) {
    try {
      previous = read_resource_limits(process_limit_env());
    } catch (const ConfigError&) {
      // The environment is broken; the caller replaces it anyway and gets the defaults back.
    }
  }
  l = limits;
  return previous;
}

OverLimit describe_over_limit(const LimitSpec& spec, int64_t value, int64_t limit,
                              const std::string& subject, const std::string& hint) {
  const std::string var = limit_variable(spec);
  OverLimit o;
  o.what = (subject.empty() ? std::string() : subject + " ") + format_limit_value(spec, value) +
           ", over the limit of " + format_limit_value(spec, limit) + " (" + var + ")";
  o.hint = (hint.empty() ? std::string() : hint + ", or ") + "raise the limit with " + var + "=N" +
           " if the input is trusted";
  return o;
}

int64_t utf8_chars(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

void check_prompt_chars(const std::string& text, const std::string& where) {
  // Cheap first: a text of at most prompt_chars bytes has at most that many characters.
  const ResourceLimits l = resource_limits();
  if (static_cast<int64_t>(text.size()) <= l.prompt_chars) return;
  check_limit<UsageError>("prompt_chars", utf8_chars(text), l.prompt_chars, "the text has", where,
                          "shorten it");
}

AvailableMemory available_memory() {
  MemoryProbe probe;
  {
    std::lock_guard<std::mutex> lock(probe_mutex());
    probe = current_probe();
  }
  return probe ? probe() : probe_available_memory();
}

MemoryProbe set_memory_probe(MemoryProbe probe) {
  std::lock_guard<std::mutex> lock(probe_mutex());
  MemoryProbe previous = std::move(current_probe());
  current_probe() = std::move(probe);
  return previous;
}

void check_checkpoint_memory(uint64_t bytes_needed, const std::string& checkpoint) {
  const ResourceLimits l = resource_limits();
  const AvailableMemory avail = available_memory();
  const long double budget =
      static_cast<long double>(avail.bytes) * l.checkpoint_memory_percent / 100.0L;
  if (static_cast<long double>(bytes_needed) <= budget) return;
  const std::string var = limit_variable(limit_spec("checkpoint_memory_percent"));
  throw WeightsError("loading the weights needs " + format_bytes(bytes_needed) +
                         " of memory, more than " + std::to_string(l.checkpoint_memory_percent) +
                         "% of the " + format_bytes(avail.bytes) + " available (" + avail.source +
                         "; " + var + "=" + std::to_string(l.checkpoint_memory_percent) +
                         "); refused before allocating any tensor",
                     checkpoint,
                     "free memory (close other programs or runs), use a smaller model, or raise " +
                         var + " (a share of the available memory, in percent)");
}

}  // namespace studio
