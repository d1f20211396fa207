#include "image/prompt_to_prompt.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "core/checkpoint.h"
#include "core/error.h"
#include "image/attention_control.h"
#include "text/clip_tokenizer.h"

namespace studio::image {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// bos, content (cut to max_length - 2), eos: the unpadded ids the text encoder sees.
std::vector<int64_t> prompt_ids(const ClipTokenizer& tok, const std::string& prompt,
                                std::size_t max_length) {
  const ClipEncoding enc = tok.encode_padded(prompt, max_length);
  const std::size_t kept = std::min(enc.content_length, max_length - 2);
  return std::vector<int64_t>(enc.input_ids.begin(),
                              enc.input_ids.begin() + static_cast<long>(kept + 2));
}

// The keep-mask at latent size [1, 1, h, w] (same rules and messages as regenerate()).
at::Tensor prepare_keep_mask(const at::Tensor& mask, const at::Tensor& latents, int vae_factor) {
  if (!mask.defined()) return {};
  const char* where = "PromptToPromptOptions::keep_mask";
  at::Tensor m = mask.detach().to(at::kCPU, at::kFloat);
  while (m.dim() > 2 && m.size(0) == 1) m = m.squeeze(0);
  const int64_t h = latents.size(2), w = latents.size(3);
  if (m.dim() != 2) throw UsageError("keep-mask must be [h, w] (or [1, 1, h, w])", where);
  if (m.size(0) == h * vae_factor && m.size(1) == w * vae_factor && vae_factor > 1)
    m = at::adaptive_avg_pool2d(m.view({1, 1, m.size(0), m.size(1)}), {h, w}).view({h, w});
  if (m.size(0) != h || m.size(1) != w)
    throw UsageError("keep-mask is " + std::to_string(m.size(0)) + "x" + std::to_string(m.size(1)) +
                         ", the latents are " + std::to_string(h) + "x" + std::to_string(w),
                     where, "give the mask at latent size or at the image's pixel size");
  if (m.min().item<float>() < 0.f || m.max().item<float>() > 1.f)
    throw UsageError("keep-mask values must lie in [0, 1]", where);
  return m.view({1, 1, h, w}).to(latents.device(), latents.scalar_type());
}

void check_fraction(double v, const char* name) {
  if (!(v >= 0.0 && v <= 1.0))
    throw UsageError(
        std::string(name) + " must be a fraction of the steps in [0, 1], got " + std::to_string(v),
        std::string("PromptToPromptOptions::") + name,
        "0 disables the injection, 1 injects at every step");
}

}  // namespace

PromptToPromptController::PromptToPromptController(std::vector<int64_t> source_of,
                                                   std::vector<float> scale,
                                                   int64_t max_self_queries)
    : max_self_queries_(max_self_queries) {
  if (!source_of.empty()) source_of_ = torch::tensor(source_of, torch::kLong);
  if (!scale.empty()) scale_ = torch::tensor(scale, torch::kFloat);
}

void PromptToPromptController::set_injection(bool cross, bool self) {
  inject_cross_ = cross;
  inject_self_ = self;
}

at::Tensor PromptToPromptController::on_attention(const at::Tensor& probs, bool cross) {
  const int64_t b = probs.size(0);
  if (b < 2) return probs;
  if (cross ? !inject_cross_ : !(inject_self_ && probs.size(2) <= max_self_queries_)) return probs;
  const at::Tensor src = probs[b - 2], tgt = probs[b - 1];  // [heads, Lq, Lk]
  at::Tensor edited = src;
  if (cross) {
    const int64_t lk = probs.size(3);
    if (source_of_.defined()) {
      if (source_of_.size(0) != lk)
        throw UsageError("cross-attention has " + std::to_string(lk) + " keys, the alignment " +
                             std::to_string(source_of_.size(0)),
                         "PromptToPromptController", "align over the text encoder's length (77)");
      const at::Tensor map = source_of_.to(probs.device());
      edited = at::where(map.lt(0), tgt, src.index_select(-1, map.clamp_min(0)));
    }
    if (scale_.defined()) {
      if (scale_.size(0) != lk)
        throw UsageError("cross-attention has " + std::to_string(lk) + " keys, the re-weighting " +
                             std::to_string(scale_.size(0)),
                         "PromptToPromptController", "give one scale per key (77)");
      edited = edited * scale_.to(probs.device(), probs.scalar_type());
    }
    ++cross_edits_;
  } else {
    ++self_edits_;
  }
  at::Tensor out = probs.clone();
  out[b - 1].copy_(edited);
  return out;
}

const char* prompt_to_prompt_mode_name(PromptToPromptMode mode) {
  switch (mode) {
    case PromptToPromptMode::kAuto:
      return "auto";
    case PromptToPromptMode::kReplace:
      return "replace";
    case PromptToPromptMode::kRefine:
      return "refine";
  }
  return "?";
}

PromptToPromptMode parse_prompt_to_prompt_mode(const std::string& name) {
  for (PromptToPromptMode m :
       {PromptToPromptMode::kAuto, PromptToPromptMode::kReplace, PromptToPromptMode::kRefine})
    if (name == prompt_to_prompt_mode_name(m)) return m;
  throw UsageError("unknown prompt-to-prompt mode \"" + name + "\"", "--p2p-mode",
                   "use one of: auto, replace, refine");
}

TokenAlignment align_token_ids(const std::vector<int64_t>& x, const std::vector<int64_t>& y,
                               std::size_t max_length) {
  if (x.size() > max_length || y.size() > max_length)
    throw UsageError("token sequences of " + std::to_string(x.size()) + " and " +
                         std::to_string(y.size()) + " ids exceed max_length " +
                         std::to_string(max_length),
                     "align_token_ids");
  // The official seq_aligner.global_align: gap 0, match 1, mismatch -1; ties prefer left (a new
  // target token), then up (a dropped source token), then the diagonal.
  const std::size_t n = x.size(), m = y.size();
  std::vector<std::vector<int>> score(n + 1, std::vector<int>(m + 1, 0));
  std::vector<std::vector<int>> trace(n + 1, std::vector<int>(m + 1, 0));
  for (std::size_t j = 1; j <= m; ++j) trace[0][j] = 1;
  for (std::size_t i = 1; i <= n; ++i) trace[i][0] = 2;
  trace[0][0] = 4;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      const int left = score[i][j - 1], up = score[i - 1][j];
      const int diag = score[i - 1][j - 1] + (x[i - 1] == y[j - 1] ? 1 : -1);
      const int best = std::max({left, up, diag});
      score[i][j] = best;
      trace[i][j] = best == left ? 1 : best == up ? 2 : 3;
    }
  TokenAlignment a;
  a.source_length = static_cast<int64_t>(n);
  a.target_length = static_cast<int64_t>(m);
  a.source_of.assign(max_length, 0);
  for (std::size_t j = m; j < max_length; ++j) a.source_of[j] = static_cast<int64_t>(j);
  std::size_t i = n, j = m;
  while (i > 0 || j > 0) {
    const int t = trace[i][j];
    if (t == 3) {
      --i;
      --j;
      // A mismatched diagonal never wins (gap 0 beats -1), so this is a match.
      a.source_of[j] = static_cast<int64_t>(i);
      ++a.aligned;
    } else if (t == 1) {
      --j;
      a.source_of[j] = -1;
    } else if (t == 2) {
      --i;
    } else {
      break;
    }
  }
  return a;
}

TokenAlignment align_prompts(const ClipTokenizer& tokenizer, const std::string& source,
                             const std::string& target, std::size_t max_length) {
  return align_token_ids(prompt_ids(tokenizer, source, max_length),
                         prompt_ids(tokenizer, target, max_length), max_length);
}

std::vector<int64_t> word_token_positions(const ClipTokenizer& tokenizer, const std::string& prompt,
                                          const std::string& word, std::size_t max_length) {
  const std::vector<int64_t> ids = prompt_ids(tokenizer, prompt, max_length);
  const std::vector<int64_t> w = tokenizer.encode(word);
  std::vector<int64_t> out;
  if (w.empty() || ids.size() < w.size() + 2) return out;
  // Content positions only (1 .. size - 2): bos / eos never count as the word.
  for (std::size_t p = 1; p + w.size() <= ids.size() - 1; ++p)
    if (std::equal(w.begin(), w.end(), ids.begin() + static_cast<long>(p)))
      for (std::size_t k = 0; k < w.size(); ++k) out.push_back(static_cast<int64_t>(p + k));
  return out;
}

Regeneration prompt_to_prompt(SdPipeline& pipe, const Inversion& inv,
                              const PromptToPromptOptions& o) {
  const auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  if (!inv.trajectory.defined() || inv.trajectory.size(0) != inv.steps + 1)
    throw UsageError("the inversion has no trajectory", "prompt_to_prompt", "run invert() first");
  if (o.prompt.empty())
    throw UsageError("the edited prompt is empty", "PromptToPromptOptions::prompt",
                     "give the source caption with the words replaced or added");
  check_fraction(o.cross_replace_steps, "cross_replace_steps");
  check_fraction(o.self_replace_steps, "self_replace_steps");
  if (!(o.strength > 0.0 && o.strength <= 1.0))
    throw UsageError("strength must be in (0, 1], got " + std::to_string(o.strength), "--strength");
  if (o.self_replace_max_queries < 1)
    throw UsageError("self_replace_max_queries must be positive",
                     "PromptToPromptOptions::self_replace_max_queries");

  // Token alignment and re-weighting over the text encoder's sequence.
  const ClipTokenizer& tok = pipe.tokenizer();
  const std::size_t max_len = static_cast<std::size_t>(inv.prompt_embeds.size(1));
  const TokenAlignment align = align_prompts(tok, inv.prompt, o.prompt, max_len);
  PromptToPromptMode mode = o.mode;
  if (mode == PromptToPromptMode::kAuto)
    mode = align.source_length == align.target_length ? PromptToPromptMode::kReplace
                                                      : PromptToPromptMode::kRefine;
  if (mode == PromptToPromptMode::kReplace && align.source_length != align.target_length)
    throw UsageError("replace needs prompts with the same number of tokens: the source has " +
                         std::to_string(align.source_length - 2) + ", the edit " +
                         std::to_string(align.target_length - 2),
                     "PromptToPromptOptions::mode",
                     "use refine (or auto) when words are added or removed");
  std::vector<float> scale;
  if (!o.reweight.empty()) {
    scale.assign(max_len, 1.0f);
    for (const AttentionReweight& r : o.reweight) {
      if (!(std::isfinite(r.scale) && r.scale >= 0))
        throw UsageError("re-weight scale for \"" + r.word + "\" must be finite and >= 0",
                         "PromptToPromptOptions::reweight");
      const auto pos = word_token_positions(tok, o.prompt, r.word, max_len);
      if (pos.empty())
        throw UsageError(
            "re-weight word \"" + r.word + "\" is not in the edited prompt \"" + o.prompt + "\"",
            "PromptToPromptOptions::reweight", "name a word of the edited prompt");
      for (int64_t p : pos) scale[static_cast<std::size_t>(p)] = static_cast<float>(r.scale);
    }
  }
  PromptToPromptController control(
      mode == PromptToPromptMode::kRefine ? align.source_of : std::vector<int64_t>{}, scale,
      o.self_replace_max_queries);

  const double g = o.guidance < 0 ? inv.guidance : o.guidance;
  const bool cfg = g > 1.0;
  const at::Tensor cond_src = inv.prompt_embeds;
  const at::Tensor cond_tgt =
      pipe.encode_prompt({o.prompt}, inv.clip_skip).to(cond_src.device(), cond_src.scalar_type());

  auto sched = make_reconstruction_scheduler(pipe, inv.steps);
  const auto& ts = sched->timesteps();
  const std::size_t begin = sched->begin_index_for_strength(o.strength);
  if (begin >= ts.size())
    throw UsageError("strength " + std::to_string(o.strength) + " with " +
                         std::to_string(inv.steps) + " steps runs no step",
                     "--strength", "raise the strength or the number of steps");
  const int total = static_cast<int>(ts.size() - begin);
  const int cross_steps = static_cast<int>(o.cross_replace_steps * total);
  const int self_steps = static_cast<int>(o.self_replace_steps * total);

  auto traj_at = [&](std::size_t i) {  // the trajectory latent denoising step i lands on
    return inv.trajectory[inv.steps - static_cast<int64_t>(i) - 1];
  };
  const at::Tensor start = inv.trajectory[inv.steps - static_cast<int64_t>(begin)];
  at::Tensor latents = at::cat({start, start});  // [source, target]
  const at::Tensor mask = prepare_keep_mask(o.keep_mask, start, pipe.vae_scale_factor());
  const bool direct = inv.method == InversionMethod::kDirect;

  Regeneration out;
  auto rows_out = [&](const at::Tensor& lat) {  // [target] or [target, source]
    return o.include_source ? at::cat({lat.narrow(0, 1, 1), lat.narrow(0, 0, 1)})
                            : lat.narrow(0, 1, 1);
  };
  // Installed for the UNet calls only (the VAE decoder has attention layers too).
  std::optional<ScopedAttentionController> scope;
  scope.emplace(&control);
  for (std::size_t i = begin; i < ts.size(); ++i) {
    const int k = static_cast<int>(i - begin);
    control.set_injection(k < cross_steps, k < self_steps);
    at::Tensor uncond = unconditional_embedding(inv, i);
    at::Tensor eps;
    if (cfg) {
      uncond = uncond.to(cond_src.device(), cond_src.scalar_type());
      const at::Tensor e = pipe.predict_noise(at::cat({latents, latents}), ts[i],
                                              at::cat({uncond, uncond, cond_src, cond_tgt}));
      auto parts = e.chunk(2);
      eps = parts[0] + g * (parts[1] - parts[0]);
    } else {
      eps = pipe.predict_noise(latents, ts[i], at::cat({cond_src, cond_tgt}));
    }
    ++out.unet_calls;
    latents = sched->step(eps, i, latents);
    if (direct && i < inv.direct_steps.size()) {
      // Ju et al.: the source branch stays on the inversion trajectory.
      const at::Tensor on_traj = traj_at(i);
      at::Tensor tgt = latents.narrow(0, 1, 1);
      switch (o.direct_target) {
        case DirectTargetCorrection::kSourceStep:
          tgt = on_traj + (tgt - latents.narrow(0, 0, 1));
          break;
        case DirectTargetCorrection::kInversionStep:
          tgt = on_traj + (tgt - inv.direct_steps[i]);
          break;
        case DirectTargetCorrection::kNone:
          break;
      }
      latents = at::cat({on_traj, tgt});
    }
    if (mask.defined()) latents = mask * traj_at(i) + (1 - mask) * latents;
    out.timesteps.push_back(ts[i]);
    if (o.keep_step_latents) out.step_latents.push_back(rows_out(latents).to(at::kCPU, at::kFloat));
    if (o.on_step) {
      const at::Tensor target_row = latents.narrow(0, 1, 1);
      StepInfo info{k + 1, total, ts[i], &target_row};
      if (!o.on_step(info)) {
        out.cancelled = true;
        out.latents = rows_out(latents);
        out.seconds = seconds_since(t0);
        return out;
      }
    }
  }
  scope.reset();
  out.latents = rows_out(latents);
  out.images = pipe.vae_decode(out.latents);
  out.seconds = seconds_since(t0);
  return out;
}

}  // namespace studio::image
