// LLaDA on CUDA in fp32 against the CPU reference fixtures (llada-tiny-ref): the forward logits
// at README-llada.md's atol 1e-4, the KV-cache forwards, and every Fast-dLLM run of fastdllm.json
// (ids, NFE and tokens per step exact). Tagged [gpu]: not run by default; skipped without CUDA.
#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/tensor_io.h"
#include "tests/support/fixtures.h"
#include "text/llada_model.h"
#include "text/llada_sampler.h"

using namespace studio;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kLogitsAtol = 1e-4;  // README-llada.md

LLaDAModelLM& cuda_model() {
  static LLaDAModelLM model = [] {
    const CheckpointInfo info = inspect_checkpoint(test::fixtures_root() / "llada-tiny");
    REQUIRE(info.components.size() == 1);
    LLaDAModelLM m = load_llada(info.components[0]);
    m->to(at::Device(at::kCUDA, 0), at::kFloat);
    m->eval();
    return m;
  }();
  return model;
}

std::vector<int64_t> row(const at::Tensor& t, int64_t r) {
  const at::Tensor c = t[r].contiguous().to(at::kCPU).to(at::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.size(0));
}

}  // namespace

TEST_CASE("LLaDA forward on CUDA fp32 matches the reference logits", "[gpu][llada]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  torch::NoGradGuard no_grad;
  const fs::path ref = test::fixtures_root() / "llada-tiny-ref";
  const std::string suffix = ".input_ids.npy";
  std::vector<fs::path> inputs;
  for (const auto& entry : fs::directory_iterator(ref)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("forward_", 0) == 0 && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      inputs.push_back(entry.path());
  }
  std::sort(inputs.begin(), inputs.end());
  REQUIRE(inputs.size() >= 2);
  LLaDAModelLM& model = cuda_model();
  for (const fs::path& input : inputs) {
    const std::string stem = input.filename().string();
    INFO(stem);
    const at::Tensor ids = load_npy(input).to(at::kCUDA);
    const at::Tensor expected =
        load_npy(ref / (stem.substr(0, stem.size() - suffix.size()) + ".logits.npy"));
    const at::Tensor logits = model->forward(ids);
    CHECK(logits.is_cuda());
    CHECK(logits.scalar_type() == at::kFloat);
    REQUIRE(logits.sizes() == expected.sizes());
    const double diff = test::max_abs_diff(logits.cpu(), expected);
    INFO("max |diff| " << diff);
    CHECK(diff <= kLogitsAtol);

    // Prefix and dual KV caches on the GPU reproduce the uncached logits.
    const int64_t len = ids.size(1), start = len / 2, end = std::min(len, start + 4);
    LLaDAForwardOptions full_options;
    full_options.return_cache = true;
    const LLaDAOutput full = model->forward_with_cache(ids, full_options);
    const LLaDAKVCache prefix = full.cache.slice(0, start);
    LLaDAForwardOptions prefix_options;
    prefix_options.past = &prefix;
    const LLaDAOutput tail = model->forward_with_cache(ids.narrow(1, start, len - start),
                                                       prefix_options);
    CHECK(test::max_abs_diff(tail.logits.cpu(), expected.narrow(1, start, len - start)) <=
          kLogitsAtol);
    LLaDAForwardOptions dual_options;
    dual_options.past = &full.cache;
    dual_options.replace_start = start;
    const LLaDAOutput block =
        model->forward_with_cache(ids.narrow(1, start, end - start), dual_options);
    CHECK(test::max_abs_diff(block.logits.cpu(), expected.narrow(1, start, end - start)) <=
          kLogitsAtol);
  }
}

TEST_CASE("Fast-dLLM samplers on CUDA fp32 match every fastdllm.json run", "[gpu][llada]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  const json fixture = test::read_json(test::fixtures_root() / "llada-tiny-ref" / "fastdllm.json");
  LLaDAModelLM& model = cuda_model();
  size_t runs = 0;
  for (const auto& r : fixture.at("runs")) {
    const std::string sampler = r.at("sampler").get<std::string>();
    LLaDASamplerOptions o;
    o.sampler = LLaDASampler::kFastDLLM;
    o.gen_length = r.at("gen_length").get<int64_t>();
    o.block_length = r.at("block_length").get<int64_t>();
    o.steps = r.at("steps").get<int64_t>();
    o.temperature = r.at("temperature").get<double>();
    if (!r.at("threshold").is_null()) o.threshold = r.at("threshold").get<double>();
    o.cache = sampler == "generate"                     ? LLaDACacheMode::kNone
              : sampler == "generate_with_prefix_cache" ? LLaDACacheMode::kPrefix
                                                        : LLaDACacheMode::kDual;
    INFO(sampler << ": prompt " << r.at("prompt_index") << ", gen " << o.gen_length
                 << ", threshold " << r.at("threshold").dump());
    const LLaDASamplerResult result =
        llada_generate(model, {r.at("prompt_ids").get<std::vector<int64_t>>()}, o);
    CHECK(row(result.output_ids, 0) == r.at("output_ids").get<std::vector<int64_t>>());
    CHECK(result.nfe == r.at("nfe").get<int64_t>());
    CHECK(result.tokens_per_step == r.at("tokens_per_step").get<std::vector<int64_t>>());
    ++runs;
  }
  CHECK(runs == 54);
}
