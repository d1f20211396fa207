// Process-wide resource limits (issue #11): how big an image, video, mesh, prompt, generation,
// job or checkpoint studio accepts, each with a safe default and overridable by an environment
// variable STUDIO_LIMIT_<NAME>, so hostile or mistaken inputs fail early with a clear message
// naming the file and the variable to raise. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace studio {

// The limits in force. Every member is a positive integer in the unit of its LimitSpec.
struct ResourceLimits {
  int64_t image_pixels = int64_t{64} * 1000 * 1000;  // width x height of one image file
  int64_t video_frames = 216000;                     // frames read or written (2 h at 30 fps)
  int64_t video_seconds = 7200;                      // seconds of video read or written
  int64_t video_side = 8192;                         // width and height of a video frame
  int64_t mesh_vertices = 20'000'000;                // all sub-meshes of a model
  int64_t mesh_faces = 20'000'000;                   // triangles after triangulation
  int64_t mesh_file_bytes = int64_t{512} << 20;      // a model file
  int64_t prompt_chars = 8192;                       // a prompt or brief field, in characters
  int64_t gen_tokens = 4096;                         // tokens one text generation asks for
  int64_t job_items = 100000;                        // work items a job expands to
  int64_t job_file_bytes = int64_t{16} << 20;        // a job file
  int64_t checkpoint_memory_percent = 90;            // of the memory available to a load
};

// One limit: its name (the variable is STUDIO_LIMIT_<NAME upper-cased>), the unit its value is
// in, the largest value accepted from the environment, and what it bounds.
struct LimitSpec {
  const char* name;
  const char* unit;  // "pixels", "frames", "seconds", "bytes", "characters", "tokens", ...
  int64_t max_value;
  const char* meaning;
  int64_t ResourceLimits::*member;
};

// Every limit, in the order of ResourceLimits.
const std::vector<LimitSpec>& limit_specs();
// The spec of `name` ("image_pixels"); UsageError for an unknown name.
const LimitSpec& limit_spec(const std::string& name);
// "STUDIO_LIMIT_IMAGE_PIXELS" for "image_pixels".
std::string limit_variable(const LimitSpec& spec);
// A value in the spec's unit for messages: "64 Mpx", "16 MiB", "8192 characters", "7200 s".
std::string format_limit_value(const LimitSpec& spec, int64_t value);

// The limits from environment variables (name -> value; names not starting with STUDIO_LIMIT_ are
// ignored), defaults for the unset (or empty) ones. ConfigError naming the variable for a value
// that is not a positive integer, overflows or exceeds the spec's max_value, and for an unknown
// STUDIO_LIMIT_* name (a typo would otherwise silently keep the default).
ResourceLimits read_resource_limits(const std::map<std::string, std::string>& env);

// The limits of this process: read from the environment on the first call (a bad variable is a
// ConfigError on every call), or the ones set by set_resource_limits. Thread-safe.
ResourceLimits resource_limits();
// Replaces the limits of this process (tests; programs embedding studio with their own budget).
// Returns the previous ones.
ResourceLimits set_resource_limits(const ResourceLimits& limits);

// Sets the limits for a scope and puts the previous ones back (tests).
class ScopedResourceLimits {
 public:
  explicit ScopedResourceLimits(const ResourceLimits& limits)
      : previous_(set_resource_limits(limits)) {}
  ~ScopedResourceLimits() { set_resource_limits(previous_); }
  ScopedResourceLimits(const ScopedResourceLimits&) = delete;
  ScopedResourceLimits& operator=(const ScopedResourceLimits&) = delete;

 private:
  ResourceLimits previous_;
};

// The message of a value over a limit: what = "<subject> <value>, over the limit of <limit>
// (<VARIABLE>)", hint = "<hint>, or raise <VARIABLE> ..." (see check_limit).
struct OverLimit {
  std::string what;
  std::string hint;
};
OverLimit describe_over_limit(const LimitSpec& spec, int64_t value, int64_t limit,
                              const std::string& subject, const std::string& hint);

// Throws E(what, where, hint) when value > limit. `subject` reads before the value: "the image is
// 20000x20000 =" gives "the image is 20000x20000 = 400 Mpx, over the limit of 64 Mpx
// (STUDIO_LIMIT_IMAGE_PIXELS)"; `where` names the file (or option, JSON path); `hint` says what to
// do short of raising the limit ("downscale it"). The limit is the process's unless given: sites
// with an explicit override (ImageReadOptions::max_pixels, ...) pass theirs.
template <typename E>
void check_limit(const std::string& name, int64_t value, int64_t limit, const std::string& subject,
                 const std::string& where, const std::string& hint = {}) {
  if (value <= limit) return;
  OverLimit o = describe_over_limit(limit_spec(name), value, limit, subject, hint);
  throw E(std::move(o.what), where, std::move(o.hint));
}
template <typename E>
void check_limit(const std::string& name, int64_t value, const std::string& subject,
                 const std::string& where, const std::string& hint = {}) {
  const ResourceLimits l = resource_limits();
  check_limit<E>(name, value, l.*(limit_spec(name).member), subject, where, hint);
}

// Characters (Unicode code points) of UTF-8 text, as prompt_chars counts them.
int64_t utf8_chars(const std::string& text);
// UsageError when `text` (a prompt, negative prompt, brief field) has more than prompt_chars
// characters; `where` names it ("--prompt", a file, a JSON path).
void check_prompt_chars(const std::string& text, const std::string& where);

// Memory a load can use: the smallest of MemAvailable (/proc/meminfo), the cgroup's memory.max
// less its memory.current, and RLIMIT_AS less the address space in use; `source` says which.
struct AvailableMemory {
  uint64_t bytes = 0;
  std::string source;  // "MemAvailable in /proc/meminfo", "cgroup memory.max", "RLIMIT_AS"
};
AvailableMemory available_memory();
// Replaces the probe available_memory() uses (tests); an empty function restores the real one.
// Returns the previous probe (empty for the real one).
using MemoryProbe = std::function<AvailableMemory()>;
MemoryProbe set_memory_probe(MemoryProbe probe);

// WeightsError naming `checkpoint` (the folder) when loading needs more than
// checkpoint_memory_percent of available_memory(): the message gives the bytes needed and
// available and the variable to change. CPU memory only: weights are loaded into modules on the
// CPU and moved to a GPU afterwards (where libtorch reports its own out-of-memory).
void check_checkpoint_memory(uint64_t bytes_needed, const std::string& checkpoint);

// "1.5 GiB (1610612736 bytes)" for messages.
std::string format_bytes(uint64_t bytes);

}  // namespace studio
