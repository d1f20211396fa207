// The LLaDA samplers against the reference generate() implementations on llada-tiny: every run of
// llada-tiny-ref/generate.json, generate_cfg.json (ML-GSAI LLaDA) and fastdllm.json (Fast-dLLM,
// plain / prefix cache / dual cache, fixed schedule and thresholds). Ids, every forward call's
// input, the positions committed per call and NFE must be exact (README-llada.md: no fixture
// relies on a tie; the decision margins are >= 3.3e-6 in probability, far above our rounding).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "tests/support/fixtures.h"
#include "text/llada_model.h"
#include "text/llada_sampler.h"

using namespace studio;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

LLaDAModelLM& tiny_model() {
  static LLaDAModelLM model = [] {
    const CheckpointInfo info = inspect_checkpoint(test::fixtures_root() / "llada-tiny");
    REQUIRE(info.components.size() == 1);
    return load_llada(info.components[0]);
  }();
  return model;
}

std::vector<int64_t> row(const at::Tensor& t, int64_t r) {
  const at::Tensor c = t[r].contiguous().to(at::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.size(0));
}

// What a run observed: every forward call and the canvas after every step.
struct Trace {
  std::vector<at::Tensor> inputs;  // fed ids per call
  std::vector<int64_t> past_lengths, replace_starts;
  std::vector<at::Tensor> canvases;  // after each step
};

LLaDASamplerResult run_traced(const std::vector<int64_t>& prompt, LLaDASamplerOptions options,
                              Trace* trace) {
  options.on_forward = [trace](const LLaDAForwardCall& call) {
    trace->inputs.push_back(call.input_ids->clone());
    trace->past_lengths.push_back(call.past_length);
    trace->replace_starts.push_back(call.replace_start);
  };
  options.on_step = [trace](const LLaDAStepInfo& info) {
    trace->canvases.push_back(info.canvas->clone());
    return true;
  };
  return llada_generate(tiny_model(), {prompt}, options);
}

// Positions (ascending) that were masked in `before` and are not in `after`, and their ids.
std::pair<std::vector<int64_t>, std::vector<int64_t>> commits(const at::Tensor& before,
                                                              const at::Tensor& after,
                                                              int64_t mask_id) {
  std::pair<std::vector<int64_t>, std::vector<int64_t>> out;
  const std::vector<int64_t> b = row(before, 0), a = row(after, 0);
  for (size_t i = 0; i < b.size(); ++i)
    if (b[i] == mask_id && a[i] != mask_id) {
      out.first.push_back(int64_t(i));
      out.second.push_back(a[i]);
    }
  return out;
}

at::Tensor initial_canvas(const std::vector<int64_t>& prompt, int64_t gen_length, int64_t mask_id) {
  at::Tensor x = at::full({1, int64_t(prompt.size()) + gen_length}, mask_id, at::kLong);
  x[0].narrow(0, 0, int64_t(prompt.size())).copy_(at::tensor(prompt, at::kLong));
  return x;
}

// Runs every ML-GSAI generate() case of `file` and compares.
size_t check_llada_file(const std::string& file) {
  const json fixture = test::read_json(test::fixtures_root() / "llada-tiny-ref" / file);
  const int64_t mask_id = tiny_model()->config().mask_token_id;
  size_t runs = 0;
  for (const auto& r : fixture.at("runs")) {
    const auto prompt = r.at("prompt_ids").get<std::vector<int64_t>>();
    LLaDASamplerOptions o;
    o.sampler = LLaDASampler::kLLaDA;
    o.gen_length = r.at("gen_length").get<int64_t>();
    o.block_length = r.at("block_length").get<int64_t>();
    o.steps = r.at("steps").get<int64_t>();
    o.temperature = r.at("temperature").get<double>();
    o.cfg_scale = r.at("cfg_scale").get<double>();
    REQUIRE(r.at("remasking") == "low_confidence");
    REQUIRE(r.at("mask_id").get<int64_t>() == mask_id);
    o.logits_eos_inf = r.at("logits_eos_inf").get<bool>();
    REQUIRE_FALSE(r.at("confidence_eos_eot_inf").get<bool>());
    INFO(file << ": prompt " << r.at("prompt_index") << ", gen " << o.gen_length << ", block "
              << o.block_length << ", steps " << o.steps << ", cfg " << o.cfg_scale << ", eos_inf "
              << o.logits_eos_inf << "; reference min confidence margin "
              << r.at("min_topk_confidence_margin").get<double>());

    Trace trace;
    const LLaDASamplerResult result = run_traced(prompt, o, &trace);
    CHECK(row(result.output_ids, 0) == r.at("output_ids").get<std::vector<int64_t>>());
    CHECK(result.generated_ids.at(0) == r.at("generated_ids").get<std::vector<int64_t>>());
    CHECK(result.nfe == r.at("num_forward_calls").get<int64_t>());
    CHECK(result.steps == result.nfe);

    const auto& inputs = r.at("model_inputs_per_step");
    REQUIRE(trace.inputs.size() == inputs.size());
    const int64_t batch = r.value("forward_batch_size", int64_t(1));
    for (size_t i = 0; i < inputs.size(); ++i) {
      INFO("forward call " << i);
      REQUIRE(trace.inputs[i].size(0) == batch);
      CHECK(row(trace.inputs[i], 0) == inputs[i].get<std::vector<int64_t>>());
      if (r.contains("uncond_inputs_per_step"))
        CHECK(row(trace.inputs[i], 1) ==
              r.at("uncond_inputs_per_step")[i].get<std::vector<int64_t>>());
      CHECK(trace.past_lengths[i] == 0);
      // The canvas after step i is the input of call i + 1.
      if (i + 1 < inputs.size())
        CHECK(row(trace.canvases.at(i), 0) == inputs[i + 1].get<std::vector<int64_t>>());
    }
    if (r.contains("step_log")) {
      REQUIRE(trace.canvases.size() == r.at("step_log").size());
      at::Tensor before = initial_canvas(prompt, o.gen_length, mask_id);
      for (size_t i = 0; i < trace.canvases.size(); ++i) {
        INFO("step " << i);
        const auto [positions, tokens] = commits(before, trace.canvases[i], mask_id);
        CHECK(positions == r.at("step_log")[i].at("positions").get<std::vector<int64_t>>());
        CHECK(tokens == r.at("step_log")[i].at("tokens").get<std::vector<int64_t>>());
        before = trace.canvases[i];
      }
    }
    ++runs;
  }
  return runs;
}

}  // namespace

TEST_CASE("LLaDA generate() matches ML-GSAI on every generate.json run", "[parity][llada]") {
  CHECK(check_llada_file("generate.json") == 9);
}

TEST_CASE("LLaDA generate() with CFG and logits_eos_inf matches every generate_cfg.json run",
          "[parity][llada]") {
  CHECK(check_llada_file("generate_cfg.json") == 12);
}

TEST_CASE("Fast-dLLM samplers match every fastdllm.json run", "[parity][llada]") {
  const json fixture = test::read_json(test::fixtures_root() / "llada-tiny-ref" / "fastdllm.json");
  const int64_t mask_id = tiny_model()->config().mask_token_id;
  size_t runs = 0, same_as_llada = 0;
  for (const auto& r : fixture.at("runs")) {
    const std::string sampler = r.at("sampler").get<std::string>();
    const auto prompt = r.at("prompt_ids").get<std::vector<int64_t>>();
    LLaDASamplerOptions o;
    o.sampler = LLaDASampler::kFastDLLM;
    o.gen_length = r.at("gen_length").get<int64_t>();
    o.block_length = r.at("block_length").get<int64_t>();
    o.steps = r.at("steps").get<int64_t>();
    o.temperature = r.at("temperature").get<double>();
    REQUIRE(r.at("remasking") == "low_confidence");
    REQUIRE(r.at("mask_id").get<int64_t>() == mask_id);
    if (!r.at("threshold").is_null()) o.threshold = r.at("threshold").get<double>();
    if (sampler == "generate") {
      o.cache = LLaDACacheMode::kNone;
    } else if (sampler == "generate_with_prefix_cache") {
      o.cache = LLaDACacheMode::kPrefix;
    } else {
      REQUIRE(sampler == "generate_with_dual_cache");
      o.cache = LLaDACacheMode::kDual;
    }
    INFO(sampler << ": prompt " << r.at("prompt_index") << ", gen " << o.gen_length << ", block "
                 << o.block_length << ", steps " << o.steps << ", threshold "
                 << r.at("threshold").dump() << "; reference min select gap "
                 << r.at("min_select_gap").get<double>());

    Trace trace;
    const LLaDASamplerResult result = run_traced(prompt, o, &trace);
    CHECK(row(result.output_ids, 0) == r.at("output_ids").get<std::vector<int64_t>>());
    CHECK(result.generated_ids.at(0) == r.at("generated_ids").get<std::vector<int64_t>>());
    CHECK(result.nfe == r.at("nfe").get<int64_t>());
    CHECK(result.tokens_per_step == r.at("tokens_per_step").get<std::vector<int64_t>>());

    const auto& calls = r.at("forward_calls");
    REQUIRE(trace.inputs.size() == calls.size());
    REQUIRE(trace.canvases.size() == calls.size());
    at::Tensor before = initial_canvas(prompt, o.gen_length, mask_id);
    for (size_t i = 0; i < calls.size(); ++i) {
      INFO("forward call " << i);
      const auto& call = calls[i];
      CHECK(trace.inputs[i].size(0) == 1);
      CHECK(row(trace.inputs[i], 0) == call.at("input_ids").get<std::vector<int64_t>>());
      CHECK(trace.past_lengths[i] == call.at("past_length").get<int64_t>());
      if (call.contains("replace_range"))
        CHECK(trace.replace_starts[i] == call.at("replace_range")[0].get<int64_t>());
      else
        CHECK(trace.replace_starts[i] == -1);
      const auto& log = r.at("step_log")[i];
      REQUIRE(log.at("call").get<size_t>() == i);
      const auto [positions, tokens] = commits(before, trace.canvases[i], mask_id);
      CHECK(positions == log.at("positions").get<std::vector<int64_t>>());
      CHECK(tokens == log.at("tokens").get<std::vector<int64_t>>());
      before = trace.canvases[i];
    }

    // Plain generate with the fixed schedule: the ML-GSAI sampler gives the same output.
    const json same = r.value("same_output_as_llada_generate", json());
    if (same.is_boolean() && same.get<bool>()) {
      LLaDASamplerOptions l;
      l.gen_length = o.gen_length;
      l.block_length = o.block_length;
      l.steps = o.steps;
      CHECK(llada_generate(tiny_model(), {prompt}, l).generated_ids.at(0) ==
            r.at("generated_ids").get<std::vector<int64_t>>());
      ++same_as_llada;
    }
    ++runs;
  }
  CHECK(runs == 54);
  CHECK(same_as_llada > 0);
}
