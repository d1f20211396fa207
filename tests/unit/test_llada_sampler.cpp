// The LLaDA samplers' contract on a tiny random-weight model: argument checks (block / step
// divisibility, sequence length, options of the other sampler), the transfer schedule, NFE and
// tokens per step for every cache mode, batched left-padded prompts, seeded sampling,
// cancellation and the timing fields.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json_file.h"
#include "tests/support/fixtures.h"
#include "text/llada_model.h"
#include "text/llada_sampler.h"

using namespace studio;
using nlohmann::json;

namespace {

LLaDAModelLM& tiny_model() {
  static LLaDAModelLM model = [] {
    json j = read_json_file(test::source_dir() / "configs" / "llada-8b" / "config.json");
    j["d_model"] = 32;
    j["n_layers"] = 2;
    j["n_heads"] = 4;
    j["n_kv_heads"] = 2;
    j["mlp_hidden_size"] = 64;
    j["vocab_size"] = 100;
    j["embedding_size"] = 104;
    j["mask_token_id"] = 99;
    j["eos_token_id"] = 98;
    j["pad_token_id"] = 98;
    j["max_sequence_length"] = 64;
    LLaDAModelLM m(LLaDAConfig::from_json(j, "tiny"));
    torch::NoGradGuard no_grad;
    at::manual_seed(3);
    for (auto& p : m->named_parameters()) {
      if (p.key().find("norm") != std::string::npos || p.key().find("ln_f") != std::string::npos)
        p.value().uniform_(0.5, 1.5);
      else
        p.value().normal_(0.0, 0.3);
    }
    m->eval();
    return m;
  }();
  return model;
}

const std::vector<int64_t> kPrompt = {5, 17, 42, 8, 23};

LLaDASamplerOptions options(int64_t gen_length, int64_t block_length, int64_t steps) {
  LLaDASamplerOptions o;
  o.gen_length = gen_length;
  o.block_length = block_length;
  o.steps = steps;
  return o;
}

std::string usage_message(const std::vector<std::vector<int64_t>>& prompts,
                          const LLaDASamplerOptions& o) {
  try {
    llada_generate(tiny_model(), prompts, o);
  } catch (const UsageError& e) {
    return e.what();
  }
  FAIL("no UsageError");
  return {};
}

int64_t sum(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), 0L); }

}  // namespace

TEST_CASE("LLaDA transfer schedule spreads the masks evenly, the first steps one more",
          "[unit][llada]") {
  CHECK(llada_transfer_schedule(10, 4) == std::vector<int64_t>{3, 3, 2, 2});
  CHECK(llada_transfer_schedule(8, 4) == std::vector<int64_t>{2, 2, 2, 2});
  CHECK(llada_transfer_schedule(3, 5) == std::vector<int64_t>{1, 1, 1, 0, 0});
  CHECK_THROWS_AS(llada_transfer_schedule(3, 0), UsageError);
}

TEST_CASE("LLaDA sampler refuses invalid requests before any forward", "[unit][llada]") {
  int forwards = 0;
  auto o = options(16, 5, 8);
  o.on_forward = [&](const LLaDAForwardCall&) { ++forwards; };
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("multiple of block_length"));
  o = options(16, 8, 3);  // 2 blocks
  o.on_forward = [&](const LLaDAForwardCall&) { ++forwards; };
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("multiple of the number of blocks"));
  o.steps = 0;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("steps"));
  o = options(0, 8, 8);
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("gen_length"));

  // max_sequence_length 64: a 60-token prompt + 8 is too long, named with both lengths.
  const std::vector<int64_t> long_prompt(60, 7);
  const std::string msg = usage_message({long_prompt}, options(8, 8, 8));
  CHECK_THAT(msg, Catch::Contains("max_sequence_length") && Catch::Contains("60") &&
                      Catch::Contains("(64)"));
  CHECK_NOTHROW(llada_generate(tiny_model(), {std::vector<int64_t>(56, 7)}, options(8, 8, 8)));

  CHECK_THAT(usage_message({}, options(8, 8, 8)), Catch::Contains("no prompt"));
  CHECK_THAT(usage_message({{}}, options(8, 8, 8)), Catch::Contains("empty"));
  CHECK_THAT(usage_message({{1, 104}}, options(8, 8, 8)), Catch::Contains("104"));

  // Options of the other sampler.
  o = options(8, 8, 8);
  o.threshold = 0.9;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("kFastDLLM"));
  o = options(8, 8, 8);
  o.cache = LLaDACacheMode::kDual;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("kFastDLLM"));
  o = options(8, 8, 8);
  o.sampler = LLaDASampler::kFastDLLM;
  o.cfg_scale = 1.0;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("kLLaDA"));
  o.cfg_scale = 0;
  o.threshold = 1.5;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("threshold"));
  o.threshold = 0.5;
  o.tokens_per_step = 2;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("exclusive"));
  o = options(8, 8, 8);
  o.confidence_eos_eot_inf = true;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("eot_token_id"));
  o.temperature = -1;
  CHECK_THAT(usage_message({kPrompt}, o), Catch::Contains("temperature"));
  CHECK(forwards == 0);
}

TEST_CASE("LLaDA sampler NFE and tokens per step for every sampler and cache mode",
          "[unit][llada]") {
  struct Case {
    LLaDASampler sampler;
    LLaDACacheMode cache;
    int64_t steps, tokens_per_step, nfe;
  };
  // gen_length 16 in 4 blocks of 4.
  const std::vector<Case> cases = {
      // One token per step: 16 calls whatever the cache.
      {LLaDASampler::kLLaDA, LLaDACacheMode::kNone, 16, 0, 16},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kNone, 16, 0, 16},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kPrefix, 16, 0, 16},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kDual, 16, 0, 16},
      // One step per block: the cached samplers add a call that commits nothing.
      {LLaDASampler::kLLaDA, LLaDACacheMode::kNone, 4, 0, 4},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kNone, 4, 0, 4},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kPrefix, 4, 0, 8},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kDual, 4, 0, 8},
      // kLLaDA runs steps / blocks calls per block even when there is nothing left to commit.
      {LLaDASampler::kLLaDA, LLaDACacheMode::kNone, 32, 0, 32},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kNone, 32, 0, 16},
      // A fixed number of tokens per step.
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kNone, 4, 2, 8},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kPrefix, 4, 2, 8},
      {LLaDASampler::kFastDLLM, LLaDACacheMode::kDual, 4, 3, 8},
  };
  for (const Case& c : cases) {
    auto o = options(16, 4, c.steps);
    o.sampler = c.sampler;
    o.cache = c.cache;
    o.tokens_per_step = c.tokens_per_step;
    INFO("sampler " << int(c.sampler) << ", cache " << int(c.cache) << ", steps " << c.steps
                    << ", tokens_per_step " << c.tokens_per_step);
    int64_t calls = 0, cached_calls = 0;
    o.on_forward = [&](const LLaDAForwardCall& call) {
      ++calls;
      if (call.past_length > 0) ++cached_calls;
    };
    const LLaDASamplerResult r = llada_generate(tiny_model(), {kPrompt}, o);
    CHECK(r.nfe == c.nfe);
    CHECK(calls == c.nfe);
    CHECK(r.steps == r.nfe);
    CHECK(int64_t(r.tokens_per_step.size()) == r.nfe);
    CHECK(sum(r.tokens_per_step) == 16);
    CHECK((cached_calls > 0) == (c.cache != LLaDACacheMode::kNone));
    CHECK_FALSE(r.cancelled);
    REQUIRE(r.generated_ids.size() == 1);
    for (int64_t id : r.generated_ids[0]) CHECK(id != 99);
    CHECK(r.output_ids.sizes() == at::IntArrayRef({1, 21}));
  }

  // A threshold commits at least one token per call.
  auto o = options(16, 8, 4);
  o.sampler = LLaDASampler::kFastDLLM;
  o.threshold = 0.01;
  const LLaDASamplerResult r = llada_generate(tiny_model(), {kPrompt}, o);
  CHECK(r.nfe <= 16);
  CHECK(sum(r.tokens_per_step) == 16);
}

TEST_CASE("LLaDA sampler batches left-padded prompts like each prompt alone", "[unit][llada]") {
  const std::vector<int64_t> short_prompt = {9, 3, 61};
  for (auto cache : {LLaDACacheMode::kNone, LLaDACacheMode::kPrefix, LLaDACacheMode::kDual}) {
    auto o = options(8, 4, 8);
    if (cache != LLaDACacheMode::kNone) o.sampler = LLaDASampler::kFastDLLM;
    o.cache = cache;
    INFO("cache " << int(cache));
    const LLaDASamplerResult batched = llada_generate(tiny_model(), {kPrompt, short_prompt}, o);
    CHECK(batched.prompt_length == 5);
    CHECK(batched.output_ids.sizes() == at::IntArrayRef({2, 13}));
    // Padding: pad_token_id left of the short prompt.
    CHECK(batched.output_ids[1][0].item<int64_t>() == 98);
    CHECK(batched.output_ids[1][1].item<int64_t>() == 98);
    CHECK(batched.output_ids[1][2].item<int64_t>() == 9);
    CHECK(batched.generated_ids.at(0) ==
          llada_generate(tiny_model(), {kPrompt}, o).generated_ids.at(0));
    CHECK(batched.generated_ids.at(1) ==
          llada_generate(tiny_model(), {short_prompt}, o).generated_ids.at(0));
    CHECK(batched.generated_tokens() == 16);
  }
}

TEST_CASE("LLaDA sampler temperature and random remasking follow the seed", "[unit][llada]") {
  for (auto remasking : {LLaDARemasking::kLowConfidence, LLaDARemasking::kRandom}) {
    auto o = options(16, 8, 8);
    o.temperature = 2.0;
    o.remasking = remasking;
    o.seed = 11;
    const auto a = llada_generate(tiny_model(), {kPrompt}, o).generated_ids;
    CHECK(llada_generate(tiny_model(), {kPrompt}, o).generated_ids == a);
    o.seed = 12;
    CHECK(llada_generate(tiny_model(), {kPrompt}, o).generated_ids != a);
  }
  // Greedy decoding does not depend on the seed.
  auto o = options(16, 8, 8);
  const auto greedy = llada_generate(tiny_model(), {kPrompt}, o).generated_ids;
  o.seed = 99;
  CHECK(llada_generate(tiny_model(), {kPrompt}, o).generated_ids == greedy);
}

TEST_CASE("LLaDA sampler CFG and EOS options change the forward batch and the tokens",
          "[unit][llada]") {
  auto o = options(8, 8, 4);
  o.cfg_scale = 1.5;
  std::vector<at::Tensor> inputs;
  o.on_forward = [&](const LLaDAForwardCall& call) { inputs.push_back(call.input_ids->clone()); };
  llada_generate(tiny_model(), {kPrompt}, o);
  REQUIRE(inputs.size() == 4);
  REQUIRE(inputs[0].size(0) == 2);
  // Unconditional row: the prompt masked, the generated part as the conditional row.
  CHECK(inputs[2][1].narrow(0, 0, 5).eq(99).all().item<bool>());
  CHECK(inputs[2][1].narrow(0, 5, 8).equal(inputs[2][0].narrow(0, 5, 8)));

  o = options(16, 16, 16);
  o.logits_eos_inf = true;
  const LLaDASamplerResult no_eos = llada_generate(tiny_model(), {kPrompt}, o);
  for (int64_t id : no_eos.generated_ids[0]) CHECK(id != 98);
  o.logits_eos_inf = false;
  o.confidence_eos_eot_inf = true;
  o.eot_token_id = 97;
  CHECK_NOTHROW(llada_generate(tiny_model(), {kPrompt}, o));
}

TEST_CASE("LLaDA sampler step callback streams the canvas and cancels", "[unit][llada]") {
  auto o = options(16, 8, 8);
  std::vector<int64_t> seen;
  int64_t committed = 0;
  o.on_step = [&](const LLaDAStepInfo& info) {
    seen.push_back(info.step);
    CHECK(info.num_blocks == 2);
    CHECK(info.block == (info.step <= 4 ? 0 : 1));
    REQUIRE(info.canvas != nullptr);
    CHECK(info.canvas->sizes() == at::IntArrayRef({1, 21}));
    committed += info.committed;
    // The canvas holds exactly the tokens committed so far.
    CHECK(info.canvas->narrow(1, 5, 16).ne(99).sum().item<int64_t>() == committed);
    return info.step < 3;
  };
  const LLaDASamplerResult r = llada_generate(tiny_model(), {kPrompt}, o);
  CHECK(r.cancelled);
  CHECK(seen == std::vector<int64_t>{1, 2, 3});
  CHECK(r.nfe == 3);
  CHECK(r.steps == 3);
  CHECK(r.output_ids[0].narrow(0, 5, 16).eq(99).sum().item<int64_t>() == 16 - committed);

  // Timings: TTFT within the total; TPOT from them.
  const LLaDASamplerResult full = llada_generate(tiny_model(), {kPrompt}, options(16, 8, 8));
  CHECK(full.ttft_seconds > 0);
  CHECK(full.ttft_seconds <= full.total_seconds);
  CHECK(full.tpot_seconds() ==
        Approx((full.total_seconds - full.ttft_seconds) / 15.0).epsilon(1e-12));
}
