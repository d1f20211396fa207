#include "core/module_loading.h"

#include <torch/torch.h>

#include <map>

#include "core/error.h"

namespace studio {

namespace {
std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

void append_list(std::string& out, const char* title, const std::vector<std::string>& v,
                 std::size_t max) {
  if (v.empty()) return;
  out += "\n  " + std::to_string(v.size()) + " " + title + ":";
  for (std::size_t i = 0; i < v.size() && i < max; ++i) out += "\n    " + v[i];
  if (v.size() > max) out += "\n    ... and " + std::to_string(v.size() - max) + " more";
}
}  // namespace

std::string LoadReport::describe(std::size_t max_per_list) const {
  std::string out;
  append_list(out, "missing from the checkpoint (the model needs them)", missing, max_per_list);
  append_list(out, "unexpected in the checkpoint (the model has no such parameter)", unexpected,
              max_per_list);
  append_list(out, "with the wrong shape", mismatched, max_per_list);
  return out;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> module_tensor_shapes(
    const torch::nn::Module& module) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : module.named_parameters(true))
    out.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : module.named_buffers(true))
    out.emplace_back(b.key(), b.value().sizes().vec());
  return out;
}

LoadReport check_state_dict(const torch::nn::Module& module, const StateDict& weights,
                            const std::string& prefix) {
  LoadReport r;
  std::map<std::string, std::vector<int64_t>> expected;
  for (auto& [name, shape] : module_tensor_shapes(module)) expected[name] = shape;
  std::map<std::string, bool> used;
  for (const auto& full : weights.names()) {
    if (full.compare(0, prefix.size(), prefix) != 0) {
      r.unexpected.push_back(full);
      continue;
    }
    const std::string name = full.substr(prefix.size());
    auto it = expected.find(name);
    if (it == expected.end()) {
      r.unexpected.push_back(full);
      continue;
    }
    used[name] = true;
    const auto& info = weights.info(full);
    if (info.shape != it->second)
      r.mismatched.push_back(full + ": checkpoint " + shape_str(info.shape) + " vs model " +
                             shape_str(it->second));
  }
  for (const auto& [name, _] : expected)
    if (!used.count(name)) r.missing.push_back(prefix + name);
  return r;
}

void load_state_dict_strict(torch::nn::Module& module, const StateDict& weights,
                            const std::string& origin, const std::string& prefix) {
  const LoadReport r = check_state_dict(module, weights, prefix);
  if (!r.ok())
    throw WeightsError("weights do not match the model built from its config:" + r.describe(),
                       origin,
                       "check that config.json belongs to these weights (same model and version)");
  torch::NoGradGuard no_grad;
  auto copy_into = [&](const std::string& name, at::Tensor& target) {
    at::Tensor src = weights.tensor(prefix + name);
    target.copy_(src.to(target.scalar_type()));
  };
  for (auto& p : module.named_parameters(true)) copy_into(p.key(), p.value());
  for (auto& b : module.named_buffers(true)) copy_into(b.key(), b.value());
}

}  // namespace studio
