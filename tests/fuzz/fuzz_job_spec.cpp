// libFuzzer target: the job-file validator (pipeline/job_spec.cpp with the channel presets and
// tiers of pipeline/presets.cpp, the JSON checks and the caption rules) on arbitrary bytes as a
// job file's content, against the source tree's presets/ folder. Each input must load or be
// refused with a studio::Error (bad JSON with line and column, or every problem with its JSON
// path); another exception (e.g. nlohmann's type_error or out_of_range), a crash, a sanitizer
// report, a hang or > 2 GB RSS is a finding. A job that loads must be complete: every item has a
// channel, and every channel it uses has a resolved preset.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "pipeline/job_spec.h"
#include "pipeline/presets.h"
#include "tests/fuzz/fuzz_temp.h"

namespace {
std::unique_ptr<studio::PresetLibrary> presets;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  studio::fuzz::temp_dir();
  presets = std::make_unique<studio::PresetLibrary>(STUDIO_FUZZ_PRESETS);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = studio::fuzz::temp_dir().write("job.json", data, size);
  try {
    const studio::JobSpec job = studio::load_job(path, *presets);
    if (job.items.empty()) std::abort();
    for (const auto& item : job.items) {
      if (item.id.empty() || item.channels.empty() || item.make.empty()) std::abort();
      for (const auto& ch : item.channels)
        if (job.presets.count(ch) == 0) std::abort();
    }
  } catch (const studio::Error&) {
  }
  return 0;
}
