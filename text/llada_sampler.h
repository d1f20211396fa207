// Samplers for LLaDA (masked diffusion LM): ML-GSAI LLaDA's generate() (semi-autoregressive
// blocks, low-confidence / random remasking, Gumbel-max temperature, classifier-free guidance)
// and NVlabs Fast-dLLM's (confidence-threshold parallel decoding, prefix and dual KV caches).
// With the same model and arguments both give the reference implementations' tokens.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "text/llada_model.h"

namespace studio {

// kLLaDA: ML-GSAI generate.py: every block runs exactly steps / num_blocks forward calls (also
// those that commit nothing), confidences softmax(logits) in fp32, supports cfg_scale.
// kFastDLLM: Fast-dLLM llada/generate.py: a block ends as soon as it has no mask left,
// confidences in fp64, optional threshold / tokens_per_step / KV cache.
enum class LLaDASampler { kLLaDA, kFastDLLM };
enum class LLaDARemasking { kLowConfidence, kRandom };
// kPrefix: per block, one full forward that also returns K/V; the following calls feed the block
// and everything after it with the cache of the positions before the block (never updated inside
// the block). kDual: the same first call; the following calls feed only the block, replacing its
// rows of the full-length cache. Both cost one extra call per block when the first call fills
// the block (as the reference).
enum class LLaDACacheMode { kNone, kPrefix, kDual };

// One model call, for tracing and tests.
struct LLaDAForwardCall {
  const at::Tensor* input_ids = nullptr;  // [model batch, fed length] as fed (CFG: cond ++ uncond)
  int64_t past_length = 0;                // KV cache positions passed (0: none)
  int64_t replace_start = -1;             // dual cache: first position fed (-1 otherwise)
  bool return_cache = false;
};

// After every forward call and its commits. Return false to cancel (the result then holds the
// canvas so far, masks included, and cancelled = true).
struct LLaDAStepInfo {
  int64_t step = 0;   // 1-based forward-call index
  int64_t block = 0;  // 0-based block index, of num_blocks
  int64_t num_blocks = 0;
  int64_t committed = 0;               // tokens committed by this step (all rows)
  const at::Tensor* canvas = nullptr;  // [batch, prompt + gen_length] int64 on the CPU, after it
};
using LLaDAStepCallback = std::function<bool(const LLaDAStepInfo&)>;

struct LLaDASamplerOptions {
  LLaDASampler sampler = LLaDASampler::kLLaDA;
  int64_t gen_length = 128;
  int64_t block_length = 128;  // must divide gen_length
  int64_t steps = 128;         // must be a multiple of the number of blocks (also when unused)
  double temperature = 0.0;    // > 0: Gumbel-max sampling, noise in fp64 from `seed`
  double cfg_scale = 0.0;      // > 0: logits = un + (cfg + 1) (cond - un), un = prompt masked
  LLaDARemasking remasking = LLaDARemasking::kLowConfidence;
  // Fast-dLLM only. threshold: per step, commit the most confident masked token of the block and
  // every other one whose confidence >= threshold. tokens_per_step > 0: commit that many (the
  // most confident) per step. Neither: the fixed schedule of steps / num_blocks calls per block.
  std::optional<double> threshold;
  int64_t tokens_per_step = 0;
  LLaDACacheMode cache = LLaDACacheMode::kNone;
  // kLLaDA only (Appendix B.4 of the LLaDA paper). logits_eos_inf: the EOS logit (config
  // eos_token_id) is -inf before the argmax and the confidences. confidence_eos_eot_inf, exactly as
  // the reference code behaves: after the argmax, the logit of eot_token_id (<|eot_id|>, 126348
  // for LLaDA-8B; required) and, at temperature 0 only, the EOS logit are -inf in the confidence
  // softmax, so positions predicted as those get confidence 0 (committed last in their block).
  bool logits_eos_inf = false;
  bool confidence_eos_eot_inf = false;
  int64_t eot_token_id = -1;
  // Seeds a CPU generator for the Gumbel noise and random remasking; the noise is drawn on the
  // CPU (fp64) and moved to the model's device: the same noise for a seed on any device.
  uint64_t seed = 0;
  LLaDAStepCallback on_step;
  std::function<void(const LLaDAForwardCall&)> on_forward;
};

struct LLaDASamplerResult {
  at::Tensor output_ids;  // [batch, prompt_length + gen_length] int64, CPU (prompts left-padded)
  // Per row: the gen_length generated ids (llada_infill: the ids at the positions that were
  // masked, in order).
  std::vector<std::vector<int64_t>> generated_ids;
  int64_t prompt_length = 0;  // padded prompt length (longest prompt); 0 for llada_infill
  int64_t nfe = 0;                       // forward calls (a CFG pair is one batched call)
  int64_t steps = 0;                     // denoising steps run (one forward call each, so = nfe)
  std::vector<int64_t> tokens_per_step;  // tokens committed by each step, all rows
  // Start to the end of the first step committing a generated token (total_seconds if none).
  double ttft_seconds = 0;
  double total_seconds = 0;  // start to end
  bool cancelled = false;

  int64_t generated_tokens() const;  // all rows' generated ids
  // (total - ttft) / (generated_tokens - 1); 0 with fewer than 2 tokens.
  double tpot_seconds() const;
};

// Generates after each prompt (ids without padding; prompts of different lengths are left-padded
// with the config's pad_token_id and a key-padding mask hides the padding; no mask when all have
// the same length). The model runs in its own device and dtype; no autograd.
// UsageError (before any forward) for: no or empty prompts; padding needed while pad_token_id
// equals mask_token_id; gen_length not a positive multiple of block_length; steps not a positive
// multiple of the number of blocks; prompt + gen_length over max_sequence_length; options of the
// other sampler (threshold / tokens_per_step / cache with kLLaDA; cfg_scale and the EOS options
// with kFastDLLM); a threshold outside (0, 1]; threshold with tokens_per_step;
// confidence_eos_eot_inf without eot_token_id; ids outside the embedding table.
LLaDASamplerResult llada_generate(LLaDAModelLM& model,
                                  const std::vector<std::vector<int64_t>>& prompts,
                                  const LLaDASamplerOptions& options);

// Fills the mask tokens (config mask_token_id) wherever they are in `canvases` and keeps every
// other token: the sampler behind Instant Edit and the copywriter's repairs. Rows of different
// lengths are left-padded (key-padding mask). All masked positions form one block: kLLaDA runs
// min(steps, most masked in a row) forward calls committing the transfer schedule of each row's
// masked count; kFastDLLM commits by threshold / tokens_per_step / that schedule until no mask is
// left. gen_length and block_length are not used; KV caches are refused (UsageError), as are the
// invalid options and rows llada_generate refuses. output_ids are the left-padded canvases.
LLaDASamplerResult llada_infill(LLaDAModelLM& model,
                                const std::vector<std::vector<int64_t>>& canvases,
                                const LLaDASamplerOptions& options);

// get_num_transfer_tokens: `masked` tokens over `steps` steps, masked / steps each, the first
// masked % steps steps one more (10 over 4: 3, 3, 2, 2).
std::vector<int64_t> llada_transfer_schedule(int64_t masked, int64_t steps);

}  // namespace studio
