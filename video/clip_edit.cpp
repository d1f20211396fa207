#include "video/clip_edit.h"

#include <torch/torch.h>

#include <chrono>

#include "core/error.h"
#include "core/scheduler.h"

namespace studio::video {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

ClipInversion parse_clip_inversion(const std::string& name) {
  if (name == "ddim") return ClipInversion::kDdim;
  if (name == "negative-prompt") return ClipInversion::kNegativePrompt;
  if (name == "direct") return ClipInversion::kDirect;
  throw UsageError("unknown inversion '" + name + "'", "--inversion",
                   "use one of: direct, negative-prompt, ddim (null-text inversion needs "
                   "gradients through the motion UNet and is offered for photos only)");
}

const char* clip_inversion_name(ClipInversion method) {
  switch (method) {
    case ClipInversion::kDdim:
      return "ddim";
    case ClipInversion::kNegativePrompt:
      return "negative-prompt";
    case ClipInversion::kDirect:
      return "direct";
  }
  return "?";
}

ClipEditResult edit_clip(AnimateDiffPipeline& pipe, const at::Tensor& frames,
                         const ClipEditOptions& o) {
  torch::NoGradGuard no_grad;
  if (o.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  if (!(o.strength > 0.0 && o.strength <= 1.0))
    throw UsageError("strength must be in (0, 1], got " + std::to_string(o.strength), "--strength");
  const auto windows =
      context_windows(static_cast<int>(frames.size(0)), o.context_frames, o.context_overlap);
  const int per_pass = static_cast<int>(windows.size());
  ClipEditResult out;
  const auto tell = [&](const char* phase, int step, int total) {
    return !o.on_progress || o.on_progress({phase, step, total});
  };

  auto t0 = Clock::now();
  const at::Tensor z0 = pipe.encode_frames(frames);  // UsageError for bad frames
  const at::Tensor keep = video_keep_mask(o.keep_mask, z0, pipe.vae_scale_factor());
  const at::Tensor cond_src = pipe.encode_prompt({o.source_prompt});
  const at::Tensor uncond = pipe.encode_prompt({o.negative_prompt});
  const at::Tensor cond_edit = pipe.encode_prompt({o.prompt});
  const bool cfg = o.guidance > 1.0;
  const auto guided = [&](const at::Tensor& x, double t, const at::Tensor& cond,
                          const at::Tensor& un) {
    if (!cfg) return pipe.predict_noise(x, t, cond, o.context_frames, o.context_overlap);
    const at::Tensor eps = pipe.predict_noise(at::cat({x, x}), t, at::cat({un, cond}),
                                              o.context_frames, o.context_overlap);
    const auto parts = eps.chunk(2);
    return parts[0] + o.guidance * (parts[1] - parts[0]);
  };

  // The inverse DDIM pass under the source prompt (conditional only): all frames at once, so the
  // temporal layers see the whole clip and the frames share one trajectory.
  const std::string origin = "the motion adapter's / model's scheduler_config.json";
  // DDIM inversion walks the forward schedule backwards; DDIMInverseScheduler (as diffusers')
  // knows "leading" and "trailing" spacing only, so a "linspace" config (AnimateDiff's) runs both
  // directions with "leading", the same timesteps apart from the end points.
  nlohmann::json config = pipe.scheduler_config();
  if (config.value("timestep_spacing", std::string("leading")) == "linspace") {
    config["timestep_spacing"] = "leading";
    out.scheduler_note = "timestep_spacing linspace -> leading (DDIM inversion)";
  }
  auto inverse = make_scheduler("DDIMInverseScheduler", config, origin);
  inverse->set_timesteps(o.steps);
  std::vector<at::Tensor> traj{z0};
  for (std::size_t k = 0; k < inverse->timesteps().size(); ++k) {
    const at::Tensor eps = pipe.predict_noise(traj.back(), inverse->timesteps()[k], cond_src,
                                              o.context_frames, o.context_overlap);
    out.unet_calls += per_pass;
    traj.push_back(inverse->step(eps, k, traj.back()));
    if (!tell("invert", static_cast<int>(k) + 1, o.steps)) {
      out.cancelled = true;
      return out;
    }
  }
  // traj[j]: the latents after j inverse steps; denoising step i goes from traj[steps - i] to
  // traj[steps - i - 1].
  auto sched = make_scheduler("DDIMScheduler", config, origin);
  sched->set_timesteps(o.steps);
  const auto& ts = sched->timesteps();
  const auto target = [&](std::size_t i) { return traj[o.steps - static_cast<int64_t>(i) - 1]; };
  const at::Tensor& un_regen = o.method == ClipInversion::kNegativePrompt ? cond_src : uncond;
  std::vector<at::Tensor> direct_steps;
  if (o.method == ClipInversion::kDirect) {
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const at::Tensor& from = traj[o.steps - static_cast<int64_t>(i)];
      direct_steps.push_back(sched->step(guided(from, ts[i], cond_src, un_regen), i, from));
      out.unet_calls += per_pass;
      if (!tell("direct", static_cast<int>(i) + 1, o.steps)) {
        out.cancelled = true;
        return out;
      }
    }
  }
  out.invert_s = seconds_since(t0);

  const std::size_t begin = sched->begin_index_for_strength(o.strength);
  if (begin >= ts.size())
    throw UsageError("strength " + std::to_string(o.strength) + " with " + std::to_string(o.steps) +
                         " steps runs no step",
                     "--strength", "raise the strength or the number of steps");
  const auto regenerate = [&](const at::Tensor& cond, const at::Tensor& mask,
                              const char* phase) -> at::Tensor {
    at::Tensor latents = traj[o.steps - static_cast<int64_t>(begin)].clone();
    const int total = static_cast<int>(ts.size() - begin);
    for (std::size_t i = begin; i < ts.size(); ++i) {
      latents = sched->step(guided(latents, ts[i], cond, un_regen), i, latents);
      out.unet_calls += per_pass;
      if (!direct_steps.empty()) latents = target(i) + (latents - direct_steps[i]);
      if (mask.defined()) latents = mask * target(i) + (1 - mask) * latents;
      if (!tell(phase, static_cast<int>(i - begin) + 1, total)) return {};
    }
    return pipe.decode_latents(latents)[0];
  };
  t0 = Clock::now();
  out.frames = regenerate(cond_edit, keep, "edit");
  out.edit_s = seconds_since(t0);
  for (std::size_t i = begin; i < ts.size(); ++i) out.timesteps.push_back(ts[i]);
  if (!out.frames.defined()) {
    out.cancelled = true;
    return out;
  }
  if (o.reconstruct) {
    t0 = Clock::now();
    out.reconstruction = regenerate(cond_src, {}, "reconstruct");
    out.reconstruct_s = seconds_since(t0);
    if (!out.reconstruction.defined()) {
      out.cancelled = true;
      return out;
    }
  }
  out.vae_roundtrip = pipe.decode_latents(z0)[0];
  return out;
}

}  // namespace studio::video
