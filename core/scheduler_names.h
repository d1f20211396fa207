// The scheduler names make_scheduler accepts (diffusers class names and short aliases), torch-free
// so that validators (presets, job files) and their fuzz target can check a name without libtorch.
#pragma once

#include <string>
#include <vector>

namespace studio {

// A short name for a scheduler class with settings merged over the model's config.
struct SchedulerAlias {
  const char* alias;       // "dpmpp_2m_karras"
  const char* class_name;  // "DPMSolverMultistepScheduler"
  const char* overrides;   // JSON object merged over the base config
};

// The diffusers class names make_scheduler builds, in the order they are listed to users.
const std::vector<std::string>& scheduler_class_names();
// The aliases, in the order they are listed to users.
const std::vector<SchedulerAlias>& scheduler_aliases();
// Class names, then aliases: everything make_scheduler accepts as a name.
std::vector<std::string> scheduler_names();

}  // namespace studio
