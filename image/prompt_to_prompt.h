// Prompt-to-Prompt editing of an inverted photo (Hertz et al. 2022): the source caption and the
// edited caption run as one batch; the edit's cross/self-attention maps are taken from the source's.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "image/attention_control.h"
#include "image/inversion.h"
#include "image/sd_pipeline.h"

namespace studio {
class ClipTokenizer;
}

namespace studio::image {

// How the edited prompt's cross-attention columns take the source's (the official AttentionReplace
// / AttentionRefine controllers):
//   kReplace  word swap with the same token count ("a red mug" -> "a blue mug"): every column of
//             the target takes the source's column at the same position.
//   kRefine   words added or changed freely ("a mug" -> "a mug on snow"): the target's tokens are
//             aligned to the source's by a global alignment of CLIP token ids (the official
//             seq_aligner: match +1, mismatch -1, gap 0, i.e. a longest common subsequence);
//             aligned columns take the source's probabilities, new tokens keep their own.
//   kAuto     kReplace when the two prompts have the same number of tokens, else kRefine.
enum class PromptToPromptMode { kAuto, kReplace, kRefine };
// "auto", "replace", "refine".
const char* prompt_to_prompt_mode_name(PromptToPromptMode mode);
// UsageError listing the names for anything else.
PromptToPromptMode parse_prompt_to_prompt_mode(const std::string& name);

// Which source column each target cross-attention column reads (the official get_mapper / get
// refinement mapper, over max_length positions).
struct TokenAlignment {
  // source_of[j]: the source position target position j takes its probabilities from; -1 for a
  // token new in the target (it keeps its own). Positions past the target's eos map to themselves
  // (padding columns, as the official mapper does).
  std::vector<int64_t> source_of;
  int64_t source_length = 0, target_length = 0;  // ids with bos and eos (<= max_length)
  int64_t aligned = 0;                           // target positions with a source column
};

// Aligns two id sequences (each bos, content, eos) by the official global alignment; the result
// has max_length entries (UsageError if either sequence is longer).
TokenAlignment align_token_ids(const std::vector<int64_t>& source_ids,
                               const std::vector<int64_t>& target_ids, std::size_t max_length = 77);
// The same over the two prompts' CLIP ids (bos, content cut to max_length - 2, eos).
TokenAlignment align_prompts(const ClipTokenizer& tokenizer, const std::string& source,
                             const std::string& target, std::size_t max_length = 77);

// Positions (in the padded sequence: bos = 0) of every occurrence of `word`'s tokens in `prompt`'s
// CLIP ids; empty when absent. A multi-token word contributes all its positions.
std::vector<int64_t> word_token_positions(const ClipTokenizer& tokenizer, const std::string& prompt,
                                          const std::string& word, std::size_t max_length = 77);

// Word re-weighting (the official AttentionReweight / get_equalizer): the target's cross-attention
// columns of `word` (in the target prompt) are multiplied by `scale` during the cross-replace steps.
struct AttentionReweight {
  std::string word;
  double scale = 1.0;
};

// The attention controller prompt_to_prompt() installs (the official AttentionControlEdit for one
// source / one target): in a batch whose last two rows are the conditional [source, target] (any
// rows before them, the unconditional half, are left alone), while cross injection is on the
// target's cross-attention becomes the source's (replace: every column; refine: the columns with
// source_of >= 0, the others keep the target's own), then its columns are multiplied by `scale`;
// while self injection is on, the target's self-attention becomes the source's in layers with
// Lq <= max_self_queries. A batch of one row passes through.
class PromptToPromptController : public AttentionController {
 public:
  // source_of: TokenAlignment::source_of for refine, empty for replace (identity); scale: one
  // multiplier per key column of the target (empty: none). Both, when given, must match the
  // cross-attention key count (UsageError at the layer otherwise).
  PromptToPromptController(std::vector<int64_t> source_of, std::vector<float> scale,
                           int64_t max_self_queries = 32 * 32);
  // What the next UNet call injects.
  void set_injection(bool cross, bool self);
  at::Tensor on_attention(const at::Tensor& probs, bool cross) override;
  // Layer calls whose target row was edited so far.
  int cross_edits() const { return cross_edits_; }
  int self_edits() const { return self_edits_; }

 private:
  at::Tensor source_of_, scale_;  // CPU int64 / float [Lk], or undefined
  int64_t max_self_queries_;
  bool inject_cross_ = false, inject_self_ = false;
  int cross_edits_ = 0, self_edits_ = 0;
};

// Direct inversion's correction of the target row after DDIM step i (the source row is always put
// back on the trajectory):
//   kSourceStep     trajectory + (target step - the source row's step in the same batch): the
//                   direct-inversion offset measured on this batch, so an identity edit stays on
//                   the source row exactly whatever the batch shape does to rounding.
//   kInversionStep  trajectory + (target step - Inversion::direct_steps[i]): regenerate()'s rule,
//                   so with no attention control the target is regenerate() with the edited
//                   prompt (to rounding, which a chaotic UNet can amplify: the offsets were
//                   measured on a batch of 2, this one has 4 rows).
//   kNone           left uncorrected, as PnP-Inversion's released P2P editing does.
enum class DirectTargetCorrection { kSourceStep, kInversionStep, kNone };

struct PromptToPromptOptions {
  std::string prompt;  // the edited (target) prompt; must not be empty
  PromptToPromptMode mode = PromptToPromptMode::kAuto;
  // Fractions of the denoising steps run, in [0, 1]: step k (0-based among the int(steps *
  // strength) steps run, n of them) has its target cross-attention replaced while k < int(
  // cross_replace_steps * n) and its self-attention while k < int(self_replace_steps * n) (the
  // official rule; with strength 1, n = the inversion's steps). The official defaults: 0.8 / 0.4
  // (Hertz et al.'s notebooks), 0.4 / 0.6 (PnP-Inversion's benchmark).
  double cross_replace_steps = 0.8;
  double self_replace_steps = 0.4;
  // Self-attention is replaced only in layers whose query count Lq <= this (the official rule is
  // 32 * 32 for SD at 512 px: every layer but the 64 x 64 ones; the first notebook used 16 * 16).
  int64_t self_replace_max_queries = 32 * 32;
  std::vector<AttentionReweight> reweight;
  // Classifier-free guidance; < 0: the inversion's. Same unconditional embeddings per method as
  // regenerate() (both rows: null-text per-step embeddings, negative-prompt = the source prompt,
  // ddim and direct = the inversion's negative prompt).
  double guidance = -1;
  double strength = 1.0;  // as RegenerateOptions::strength
  // Direct inversion: the source row is put back on the trajectory after every step (Ju et al.);
  // the target row is corrected by `direct_target` (see DirectTargetCorrection).
  DirectTargetCorrection direct_target = DirectTargetCorrection::kSourceStep;
  at::Tensor keep_mask;  // as RegenerateOptions::keep_mask, applied to both rows
  // Also decode the source row: images / latents / step_latents then hold 2 rows, [target, source].
  bool include_source = false;
  bool keep_step_latents = false;
  StepCallback on_step;  // after every step, latents = the target row; false cancels
};

// Runs source (the inversion's prompt) and target (options.prompt) as one batch of 2 rows from the
// inversion's latent at depth `strength`, DDIM (eta 0), one UNet call per step on the CFG batch
// [uncond_src, uncond_tgt, cond_src, cond_tgt]; only the conditional rows are controlled. Returns
// the target row's image (and the source row's with include_source). UsageError for an empty
// prompt, kReplace with different token counts, fractions outside [0, 1], unknown re-weight words,
// a bad strength or keep-mask, or an inversion without a trajectory.
Regeneration prompt_to_prompt(SdPipeline& pipe, const Inversion& inversion,
                              const PromptToPromptOptions& options);

}  // namespace studio::image
