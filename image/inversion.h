// Real-photo editing by inversion: DDIM inversion of a photo into a Stable Diffusion model's noise
// (diffusers' DDIMInverseScheduler semantics), faithful reconstruction under classifier-free
// guidance (negative-prompt inversion, null-text optimisation, direct inversion), and the
// regenerate / edit loop (edited prompt, strength, blended-latent keep-mask) built on it.
#pragma once

#include <ATen/Tensor.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/scheduler.h"
#include "image/sd_pipeline.h"

namespace studio::image {

struct Image;

// diffusers' VaeImageProcessor.preprocess for one image: the size (width x height, or the image's
// own when 0) is rounded down to a multiple of vae_scale_factor, the image resized to it (Lanczos;
// OpenCV's, so pixels differ slightly from PIL's when a resize happens) when it differs, RGB kept
// (alpha dropped), then NCHW [1, 3, H, W] float32 in [-1, 1] (2x - 1). hwc01: [H, W, C] in [0, 1].
at::Tensor preprocess_for_inversion(const at::Tensor& hwc01, int vae_scale_factor, int width = 0,
                                    int height = 0);
at::Tensor preprocess_for_inversion(const Image& image, int vae_scale_factor, int width = 0,
                                    int height = 0);

// How the reconstruction stays faithful under classifier-free guidance (guidance > 1):
//   kDdim           plain DDIM inversion; the reconstruction uses the negative prompt ("" by
//                   default) as the unconditional text, so guidance > 1 drifts from the photo.
//   kNegativePrompt Miyake et al. 2023, "Negative-prompt Inversion": the source prompt's embedding
//                   replaces the unconditional one at reconstruction. No optimisation, no extra NFE.
//   kNullText       Mokady et al. 2023, "Null-text Inversion": per denoising step, Adam optimises
//                   the unconditional embedding so the guided DDIM step from the pivot latent lands
//                   on the DDIM-inversion trajectory; regeneration uses those embeddings per step.
//   kDirect         Ju et al. 2023, "Direct Inversion" (PnP inversion): per step, the gap between
//                   the trajectory and the guided step from it is stored and added back at
//                   regeneration (exact reconstruction for the source prompt; one guided UNet call
//                   per step at inversion time, no optimisation).
enum class InversionMethod { kDdim, kNegativePrompt, kNullText, kDirect };
// "ddim", "negative-prompt", "null-text", "direct".
const char* inversion_method_name(InversionMethod method);
// UsageError listing the names for anything else.
InversionMethod parse_inversion_method(const std::string& name);
std::vector<std::string> inversion_method_names();

// Progress of invert(): phase "invert" (the inverse DDIM pass), "null-text" or "direct" (the
// per-step reconstruction pass). Return false to cancel (invert() then throws UsageError).
struct InversionProgress {
  std::string phase;
  int step = 0;  // 1-based, of `total`
  int total = 0;
  int iterations = 0;  // null-text: Adam iterations run at this step
  double loss = 0;     // null-text: the last MSE at this step
};
using InversionCallback = std::function<bool(const InversionProgress&)>;

struct InversionOptions {
  std::string prompt;  // the source prompt, describing the photo ("" is allowed)
  int steps = 50;      // DDIM steps (inverse pass and regeneration)
  InversionMethod method = InversionMethod::kDdim;
  // The classifier-free guidance scale the reconstruction / edit will use: null-text and direct
  // inversion fit the reconstruction at exactly this scale.
  double guidance = 7.5;
  // Guidance during the inverse DDIM pass (<= 1: conditional only, as Mokady et al. and the
  // diffusers DiffEdit / pix2pix-zero inversions do).
  double inversion_guidance = 1.0;
  // The unconditional text of plain-DDIM reconstruction and of inversion_guidance > 1; also the
  // starting point of the null-text optimisation. "" = unconditional, as diffusers.
  std::string negative_prompt;
  int clip_skip = 0;
  // Null-text optimisation (Mokady et al.'s defaults): Adam iterations per step at most, the
  // learning rate (decayed linearly to half over the steps, which is their lr * (1 - i / 100) at
  // 50 steps), and early stop once the step's MSE < tolerance + i * 2e-5 (i = 0-based step).
  int null_text_iterations = 10;
  double null_text_lr = 1e-2;
  double null_text_tolerance = 1e-5;
  InversionCallback on_progress;
};

struct Inversion {
  InversionMethod method = InversionMethod::kDdim;
  std::string prompt, negative_prompt;
  int steps = 0;
  double guidance = 1.0;  // the guidance the reconstruction was fitted at
  int clip_skip = 0;
  int width = 0, height = 0;  // pixels
  at::Tensor image;       // the preprocessed input, NCHW [1, 3, H, W] in [-1, 1] (CPU float32)
  at::Tensor z0;          // [1, C, h, w]: VAE posterior mean x scaling factor
  // [steps + 1, 1, C, h, w]: z0, then the latents after each inverse step (the last = `latents`,
  // the noise a regeneration at strength 1 starts from). Pipeline device and dtype.
  at::Tensor trajectory;
  at::Tensor latents;
  std::vector<double> inverse_timesteps;  // ascending (1, 101, ..., 901 for 10 steps)
  at::Tensor prompt_embeds;   // [1, 77, D] source prompt
  at::Tensor uncond_embeds;   // [1, 77, D] the negative prompt's
  // kNullText: the optimised unconditional embedding of each denoising step (index 0 = the
  // noisiest step), [1, 77, D] each; their final losses.
  std::vector<at::Tensor> null_embeds;
  std::vector<double> null_text_losses;
  std::vector<int> null_text_iterations;
  // kDirect: the guided DDIM step i taken from trajectory[steps - i] (at `guidance`, source
  // prompt); regeneration adds trajectory[steps - i - 1] - direct_steps[i] to its own step i,
  // computed as trajectory + (step - direct_steps[i]) so an unchanged step lands on the
  // trajectory bit for bit.
  std::vector<at::Tensor> direct_steps;
  nlohmann::json scheduler_config;  // the model's; DDIM(Inverse)Scheduler is built over it
  int unet_calls = 0;      // UNet forward calls (NFE; one CFG batch = one call)
  int unet_backwards = 0;  // null-text: backward passes through the UNet
  double seconds = 0;      // wall time of invert()
};

// The DDIM inverse scheduler over the pipeline's scheduler config, set to `steps`.
std::unique_ptr<Scheduler> make_inverse_scheduler(const SdPipeline& pipe, int steps);
// The DDIM (forward) scheduler over the pipeline's scheduler config, set to `steps`.
std::unique_ptr<Scheduler> make_reconstruction_scheduler(const SdPipeline& pipe, int steps);

// One inverse DDIM step at position `index` of the inverse schedule: step(eps, t, latents) with
// eps = unet(latents, t, cond), or eps_u + g (eps_c - eps_u) with uncond when guidance > 1.
// latents [1, C, h, w]; cond / uncond [1, 77, D].
at::Tensor inverse_step(SdPipeline& pipe, Scheduler& inverse, std::size_t index,
                        const at::Tensor& latents, const at::Tensor& cond,
                        const at::Tensor& uncond = {}, double guidance = 1.0);

// Inverts a preprocessed image (NCHW [1, 3, H, W] in [-1, 1], H and W multiples of the VAE scale
// factor): z0 = VAE mean x scaling, then `steps` inverse DDIM steps, then the method's
// reconstruction pass (null-text, direct). UsageError for bad inputs or a cancelled run.
Inversion invert(SdPipeline& pipe, const at::Tensor& image_nchw, const InversionOptions& options);

struct RegenerateOptions {
  // The prompt to regenerate with: empty optional = the inversion's prompt (reconstruction),
  // else the edited prompt.
  std::optional<std::string> prompt;
  // Classifier-free guidance; < 0: the inversion's `guidance`. Null-text embeddings and direct
  // offsets were fitted at that scale; another one still runs but reconstructs less faithfully.
  double guidance = -1;
  // Fraction of the denoising steps re-generated, in (0, 1] (diffusers' img2img rule: the last
  // int(steps * strength) steps run, starting from the trajectory latent at that depth).
  double strength = 1.0;
  // Optional keep-mask in [0, 1], 1 = keep the original: [h, w] at latent size or [H, W] at
  // pixel size (area-averaged down), also [1, 1, ., .]. After every step
  // latents = m * trajectory_at_that_step + (1 - m) * latents (blended latent diffusion).
  at::Tensor keep_mask;
  bool keep_step_latents = false;
  StepCallback on_step;  // after every step; return false to cancel
};

struct Regeneration {
  at::Tensor images;  // NHWC [1, H, W, 3] float32 in [0, 1] on the CPU (undefined if cancelled)
  at::Tensor latents;  // the final latents
  std::vector<at::Tensor> step_latents;  // keep_step_latents: after each step (CPU float32)
  std::vector<double> timesteps;         // those run
  int unet_calls = 0;
  double seconds = 0;  // wall time including the VAE decode
  bool cancelled = false;
};

// The unconditional embedding the reconstruction uses at denoising step `step` (index into the
// forward schedule), per method: the negative prompt's (ddim, direct), the source prompt's
// (negative-prompt), the optimised one of that step (null-text).
at::Tensor unconditional_embedding(const Inversion& inversion, std::size_t step);

// Regenerates (reconstructs or edits) from an inversion with DDIM (eta 0), using per method the
// unconditional embedding described at InversionMethod.
Regeneration regenerate(SdPipeline& pipe, const Inversion& inversion,
                        const RegenerateOptions& options = {});

}  // namespace studio::image
