#include "image/inversion.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "image/image_io.h"

namespace studio::image {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Guided noise prediction: one batched UNet call on [uncond, cond] when guidance > 1.
at::Tensor guided_eps(SdPipeline& pipe, const at::Tensor& latents, double t, const at::Tensor& cond,
                      const at::Tensor& uncond, double guidance) {
  if (guidance <= 1.0 || !uncond.defined()) return pipe.predict_noise(latents, t, cond);
  const at::Tensor eps =
      pipe.predict_noise(at::cat({latents, latents}), t, at::cat({uncond, cond}));
  auto parts = eps.chunk(2);
  return parts[0] + guidance * (parts[1] - parts[0]);
}

// The trajectory latent that denoising step i (of `steps`) lands on.
at::Tensor target_of_step(const Inversion& inv, std::size_t i) {
  return inv.trajectory[inv.steps - static_cast<int64_t>(i) - 1];
}

at::Tensor prepare_keep_mask(const at::Tensor& mask, const at::Tensor& latents, int vae_factor) {
  if (!mask.defined()) return {};
  at::Tensor m = mask.detach().to(at::kCPU, at::kFloat);
  while (m.dim() > 2 && m.size(0) == 1) m = m.squeeze(0);
  const int64_t h = latents.size(2), w = latents.size(3);
  if (m.dim() != 2)
    throw UsageError("keep-mask must be [h, w] (or [1, 1, h, w])", "RegenerateOptions::keep_mask");
  if (m.size(0) == h * vae_factor && m.size(1) == w * vae_factor && vae_factor > 1)
    m = at::adaptive_avg_pool2d(m.view({1, 1, m.size(0), m.size(1)}), {h, w}).view({h, w});
  if (m.size(0) != h || m.size(1) != w)
    throw UsageError("keep-mask is " + std::to_string(m.size(0)) + "x" + std::to_string(m.size(1)) +
                         ", the latents are " + std::to_string(h) + "x" + std::to_string(w),
                     "RegenerateOptions::keep_mask",
                     "give the mask at latent size or at the image's pixel size");
  if (m.min().item<float>() < 0.f || m.max().item<float>() > 1.f)
    throw UsageError("keep-mask values must lie in [0, 1]", "RegenerateOptions::keep_mask");
  return m.view({1, 1, h, w}).to(latents.device(), latents.scalar_type());
}

}  // namespace

at::Tensor preprocess_for_inversion(const at::Tensor& hwc01, int vae_scale_factor, int width,
                                    int height) {
  if (!hwc01.defined() || hwc01.dim() != 3 || hwc01.size(2) < 1 || hwc01.size(2) > 4)
    throw UsageError("preprocess_for_inversion expects an [H, W, C] image",
                     "preprocess_for_inversion");
  if (vae_scale_factor < 1 || width < 0 || height < 0)
    throw UsageError("invalid size or VAE scale factor", "preprocess_for_inversion");
  int w = width > 0 ? width : static_cast<int>(hwc01.size(1));
  int h = height > 0 ? height : static_cast<int>(hwc01.size(0));
  // diffusers' get_default_height_width: x - x % vae_scale_factor.
  w -= w % vae_scale_factor;
  h -= h % vae_scale_factor;
  if (w < vae_scale_factor || h < vae_scale_factor)
    throw UsageError("image size " + std::to_string(w) + "x" + std::to_string(h) +
                         " is smaller than the VAE scale factor " +
                         std::to_string(vae_scale_factor),
                     "preprocess_for_inversion", "use a larger image or target size");
  at::Tensor x = hwc01;
  if (x.size(2) == 4) x = x.narrow(2, 0, 3);  // PIL's convert("RGB"): alpha dropped
  if (x.size(0) != h || x.size(1) != w)
    x = resize_image(x.contiguous(), w, h, ResizeFilter::kLanczos);
  return to_model_input(x);
}

at::Tensor preprocess_for_inversion(const Image& image, int vae_scale_factor, int width,
                                    int height) {
  return preprocess_for_inversion(image.pixels, vae_scale_factor, width, height);
}

const char* inversion_method_name(InversionMethod method) {
  switch (method) {
    case InversionMethod::kDdim:
      return "ddim";
    case InversionMethod::kNegativePrompt:
      return "negative-prompt";
    case InversionMethod::kNullText:
      return "null-text";
    case InversionMethod::kDirect:
      return "direct";
  }
  return "?";
}

std::vector<std::string> inversion_method_names() {
  return {"ddim", "negative-prompt", "null-text", "direct"};
}

InversionMethod parse_inversion_method(const std::string& name) {
  for (InversionMethod m : {InversionMethod::kDdim, InversionMethod::kNegativePrompt,
                            InversionMethod::kNullText, InversionMethod::kDirect})
    if (name == inversion_method_name(m)) return m;
  throw UsageError("unknown inversion method \"" + name + "\"", "--inversion",
                   "use one of: ddim, negative-prompt, null-text, direct");
}

std::unique_ptr<Scheduler> make_inverse_scheduler(const SdPipeline& pipe, int steps) {
  auto s = make_scheduler("DDIMInverseScheduler", pipe.scheduler_config(),
                          (pipe.path() / "scheduler/scheduler_config.json").string());
  s->set_timesteps(steps);
  return s;
}

std::unique_ptr<Scheduler> make_reconstruction_scheduler(const SdPipeline& pipe, int steps) {
  auto s = make_scheduler("DDIMScheduler", pipe.scheduler_config(),
                          (pipe.path() / "scheduler/scheduler_config.json").string());
  s->set_timesteps(steps);
  return s;
}

at::Tensor inverse_step(SdPipeline& pipe, Scheduler& inverse, std::size_t index,
                        const at::Tensor& latents, const at::Tensor& cond, const at::Tensor& uncond,
                        double guidance) {
  torch::NoGradGuard no_grad;
  if (index >= inverse.timesteps().size())
    throw UsageError("inverse step index out of range", "inverse_step");
  const at::Tensor x = latents.to(pipe.device(), pipe.dtype());
  const at::Tensor eps = guided_eps(pipe, x, inverse.timesteps()[index], cond, uncond, guidance);
  return inverse.step(eps, index, x);
}

Inversion invert(SdPipeline& pipe, const at::Tensor& image_nchw, const InversionOptions& o) {
  const auto t0 = Clock::now();
  const int f = pipe.vae_scale_factor();
  if (!image_nchw.defined() || image_nchw.dim() != 4 || image_nchw.size(0) != 1 ||
      image_nchw.size(1) != 3 || image_nchw.size(2) % f != 0 || image_nchw.size(3) % f != 0)
    throw UsageError("invert expects one preprocessed image [1, 3, H, W] with H, W multiples of " +
                         std::to_string(f),
                     "invert", "run preprocess_for_inversion first");
  if (o.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  if (o.method == InversionMethod::kNullText &&
      (o.null_text_iterations < 1 || !(o.null_text_lr > 0)))
    throw UsageError("null-text needs at least 1 iteration and a positive learning rate",
                     "InversionOptions");
  auto progress = [&](InversionProgress p) {
    if (o.on_progress && !o.on_progress(p)) throw UsageError("inversion cancelled", "invert");
  };

  Inversion inv;
  inv.method = o.method;
  inv.prompt = o.prompt;
  inv.negative_prompt = o.negative_prompt;
  inv.steps = o.steps;
  inv.guidance = o.guidance;
  inv.clip_skip = o.clip_skip;
  inv.height = static_cast<int>(image_nchw.size(2));
  inv.width = static_cast<int>(image_nchw.size(3));
  inv.image = image_nchw.detach().to(at::kCPU, at::kFloat);
  inv.scheduler_config = pipe.scheduler_config();

  torch::NoGradGuard no_grad;
  inv.prompt_embeds = pipe.encode_prompt({o.prompt}, o.clip_skip);
  inv.uncond_embeds = pipe.encode_prompt({o.negative_prompt}, o.clip_skip);
  inv.z0 = pipe.vae_encode_mean(image_nchw);

  auto inverse = make_inverse_scheduler(pipe, o.steps);
  inv.inverse_timesteps = inverse->timesteps();
  std::vector<at::Tensor> traj{inv.z0};
  for (std::size_t k = 0; k < inverse->timesteps().size(); ++k) {
    traj.push_back(inverse_step(pipe, *inverse, k, traj.back(), inv.prompt_embeds,
                                inv.uncond_embeds, o.inversion_guidance));
    ++inv.unet_calls;
    progress({"invert", static_cast<int>(k) + 1, o.steps, 0, 0});
  }
  inv.trajectory = at::stack(traj);
  inv.latents = traj.back();

  const bool cfg = o.guidance > 1.0;
  if (o.method == InversionMethod::kDirect) {
    // Ju et al.: the gap between the trajectory and the guided step taken from it.
    auto sched = make_reconstruction_scheduler(pipe, o.steps);
    const auto& ts = sched->timesteps();
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const at::Tensor from = inv.trajectory[o.steps - static_cast<int64_t>(i)];
      const at::Tensor eps =
          guided_eps(pipe, from, ts[i], inv.prompt_embeds, inv.uncond_embeds, o.guidance);
      ++inv.unet_calls;
      inv.direct_steps.push_back(sched->step(eps, i, from));
      progress({"direct", static_cast<int>(i) + 1, o.steps, 0, 0});
    }
  } else if (o.method == InversionMethod::kNullText) {
    // Mokady et al. 2023, Algorithm 1: from the pivot z_T, per step optimise the unconditional
    // embedding (initialised with the previous step's) so that the guided DDIM step lands on the
    // inversion trajectory, then take that step with the result.
    auto sched = make_reconstruction_scheduler(pipe, o.steps);
    const auto& ts = sched->timesteps();
    at::Tensor uncond = inv.uncond_embeds.detach().clone();
    at::Tensor cur = inv.latents;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const at::Tensor target = target_of_step(inv, i);
      const at::Tensor eps_c = pipe.predict_noise(cur, ts[i], inv.prompt_embeds);
      ++inv.unet_calls;
      at::Tensor param = uncond.detach().clone();
      double loss_value = 0;
      int iters = 0;
      if (cfg) {
        param.set_requires_grad(true);
        const double lr = o.null_text_lr * (1.0 - 0.5 * static_cast<double>(i) / o.steps);
        torch::optim::Adam adam({param}, torch::optim::AdamOptions(lr));
        const double stop = o.null_text_tolerance + static_cast<double>(i) * 2e-5;
        for (int j = 0; j < o.null_text_iterations; ++j) {
          torch::AutoGradMode grad(true);
          const at::Tensor eps_u = pipe.predict_noise(cur, ts[i], param);
          ++inv.unet_calls;
          const at::Tensor eps = eps_u + o.guidance * (eps_c - eps_u);
          const at::Tensor loss = (sched->step(eps, i, cur) - target).pow(2).mean();
          adam.zero_grad();
          loss.backward();
          ++inv.unet_backwards;
          adam.step();
          ++iters;
          loss_value = loss.item<double>();
          if (loss_value < stop) break;
        }
        param = param.detach();
      }
      uncond = param;
      inv.null_embeds.push_back(uncond);
      inv.null_text_losses.push_back(loss_value);
      inv.null_text_iterations.push_back(iters);
      const at::Tensor eps_u = cfg ? pipe.predict_noise(cur, ts[i], uncond) : eps_c;
      if (cfg) ++inv.unet_calls;
      cur = sched->step(cfg ? eps_u + o.guidance * (eps_c - eps_u) : eps_c, i, cur);
      progress({"null-text", static_cast<int>(i) + 1, o.steps, iters, loss_value});
    }
  }
  inv.seconds = seconds_since(t0);
  return inv;
}

at::Tensor unconditional_embedding(const Inversion& inv, std::size_t step) {
  switch (inv.method) {
    case InversionMethod::kNegativePrompt:
      return inv.prompt_embeds;
    case InversionMethod::kNullText:
      return step < inv.null_embeds.size() ? inv.null_embeds[step] : inv.uncond_embeds;
    case InversionMethod::kDdim:
    case InversionMethod::kDirect:
      break;
  }
  return inv.uncond_embeds;
}

Regeneration regenerate(SdPipeline& pipe, const Inversion& inv, const RegenerateOptions& o) {
  const auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  if (!inv.trajectory.defined() || inv.trajectory.size(0) != inv.steps + 1)
    throw UsageError("the inversion has no trajectory", "regenerate", "run invert() first");
  if (!(o.strength > 0.0 && o.strength <= 1.0))
    throw UsageError("strength must be in (0, 1], got " + std::to_string(o.strength), "--strength");
  const double g = o.guidance < 0 ? inv.guidance : o.guidance;
  const at::Tensor cond =
      o.prompt ? pipe.encode_prompt({*o.prompt}, inv.clip_skip) : inv.prompt_embeds;

  auto sched = make_reconstruction_scheduler(pipe, inv.steps);
  const auto& ts = sched->timesteps();
  const std::size_t begin = sched->begin_index_for_strength(o.strength);
  if (begin >= ts.size())
    throw UsageError("strength " + std::to_string(o.strength) + " with " +
                         std::to_string(inv.steps) + " steps runs no step",
                     "--strength", "raise the strength or the number of steps");
  at::Tensor latents = inv.trajectory[inv.steps - static_cast<int64_t>(begin)].clone();
  const at::Tensor mask = prepare_keep_mask(o.keep_mask, latents, pipe.vae_scale_factor());

  Regeneration out;
  const int total = static_cast<int>(ts.size() - begin);
  for (std::size_t i = begin; i < ts.size(); ++i) {
    const at::Tensor uncond = unconditional_embedding(inv, i);
    const at::Tensor eps = guided_eps(pipe, latents, ts[i], cond, uncond, g);
    ++out.unet_calls;
    latents = sched->step(eps, i, latents);
    if (inv.method == InversionMethod::kDirect && i < inv.direct_steps.size())
      latents = target_of_step(inv, i) + (latents - inv.direct_steps[i]);
    if (mask.defined()) latents = mask * target_of_step(inv, i) + (1 - mask) * latents;
    out.timesteps.push_back(ts[i]);
    if (o.keep_step_latents) out.step_latents.push_back(latents.to(at::kCPU, at::kFloat));
    if (o.on_step) {
      StepInfo info{static_cast<int>(i - begin) + 1, total, ts[i], &latents};
      if (!o.on_step(info)) {
        out.cancelled = true;
        out.latents = latents;
        out.seconds = seconds_since(t0);
        return out;
      }
    }
  }
  out.latents = latents;
  out.images = pipe.vae_decode(latents);
  out.seconds = seconds_since(t0);
  return out;
}

}  // namespace studio::image
