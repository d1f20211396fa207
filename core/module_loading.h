// Strict loading of a StateDict into a torch::nn::Module by parameter name: every parameter and
// buffer must be present with the right shape, and every tensor in the checkpoint must be used.
// Violations are one WeightsError listing missing, unexpected and mis-shaped names.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <string>

#include "core/checkpoint.h"

namespace studio {

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not in the module
  std::vector<std::string> mismatched;  // "name: checkpoint [a,b] vs model [c,d]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string describe(std::size_t max_per_list = 12) const;
};

// Names the module expects (parameters then buffers), with their shapes.
std::vector<std::pair<std::string, std::vector<int64_t>>> module_tensor_shapes(
    const torch::nn::Module& module);

// Compares without copying.
LoadReport check_state_dict(const torch::nn::Module& module, const StateDict& weights,
                            const std::string& prefix = "");

// Copies weights into the module (converting dtype to the module's). `prefix` is stripped from
// checkpoint names first (e.g. "model." for a wrapper); names outside the prefix are unexpected.
// Throws WeightsError naming `origin` unless the report is clean.
void load_state_dict_strict(torch::nn::Module& module, const StateDict& weights,
                            const std::string& origin, const std::string& prefix = "");

}  // namespace studio
