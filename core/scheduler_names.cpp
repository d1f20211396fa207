#include "core/scheduler_names.h"

namespace studio {

const std::vector<std::string>& scheduler_class_names() {
  static const std::vector<std::string> v = {
      "DDIMScheduler",
      "DDIMInverseScheduler",
      "DDPMScheduler",
      "EulerDiscreteScheduler",
      "EulerAncestralDiscreteScheduler",
      "DPMSolverMultistepScheduler",
  };
  return v;
}

const std::vector<SchedulerAlias>& scheduler_aliases() {
  static const std::vector<SchedulerAlias> v = {
      {"ddim", "DDIMScheduler", "{}"},
      {"ddim_inverse", "DDIMInverseScheduler", "{}"},
      {"ddpm", "DDPMScheduler", "{}"},
      {"euler", "EulerDiscreteScheduler", "{}"},
      {"euler_a", "EulerAncestralDiscreteScheduler", "{}"},
      {"dpmpp_2m", "DPMSolverMultistepScheduler",
       R"({"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": false})"},
      {"dpmpp_2m_karras", "DPMSolverMultistepScheduler",
       R"({"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": true})"},
  };
  return v;
}

std::vector<std::string> scheduler_names() {
  std::vector<std::string> names = scheduler_class_names();
  for (const auto& a : scheduler_aliases()) names.emplace_back(a.alias);
  return names;
}

}  // namespace studio
