// Editing an existing clip by inversion with the AnimateDiff motion UNet: every frame's VAE latents
// are inverted together (DDIM inversion through the temporal layers, so the frames share one noise
// trajectory), then regenerated under an edited prompt, with a per-frame keep-mask (the product)
// held to the source's trajectory; optionally reconstructed under the source prompt to measure
// how faithful the inversion is.
#pragma once

#include <ATen/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "video/animatediff_pipeline.h"

namespace studio::video {

// kDdim: plain DDIM inversion; the regeneration's unconditional text is the negative prompt.
// kNegativePrompt: Miyake et al. 2023, the source prompt's embedding as the unconditional one.
// kDirect: Ju et al. 2023, the gap between the trajectory and the guided step from it is stored
//          per step and added back (exact reconstruction under the source prompt; one more
//          UNet pass over the clip).
enum class ClipInversion { kDdim, kNegativePrompt, kDirect };
// "ddim", "negative-prompt", "direct"; UsageError listing them for anything else.
ClipInversion parse_clip_inversion(const std::string& name);
const char* clip_inversion_name(ClipInversion method);

struct ClipEditProgress {
  std::string phase;  // "invert", "direct", "edit", "reconstruct"
  int step = 0;       // 1-based, of total
  int total = 0;
};

struct ClipEditOptions {
  std::string source_prompt;  // describes the source clip ("" allowed)
  std::string prompt;         // the edited prompt
  std::string negative_prompt;
  int steps = 25;
  double guidance = 7.5;
  // Fraction of the denoising steps regenerated, in (0, 1] (diffusers' img2img rule), starting
  // from the inversion trajectory at that depth.
  double strength = 1.0;
  ClipInversion method = ClipInversion::kDirect;
  // Where the source must stay (1 = keep, e.g. the product): [H, W] for every frame or [F, H, W],
  // pixel or latent size, in [0, 1]. After every step latents = m * trajectory + (1 - m) * latents.
  at::Tensor keep_mask;
  int context_frames = 0;  // motion windows (AnimateDiffPipeline::predict_noise)
  int context_overlap = 4;
  bool reconstruct = true;  // also regenerate under the source prompt (fidelity figures)
  std::function<bool(const ClipEditProgress&)> on_progress;  // return false to cancel
};

struct ClipEditResult {
  at::Tensor frames;          // the edit, [F, H, W, 3] in [0, 1] (CPU float32)
  at::Tensor reconstruction;  // under the source prompt (reconstruct), else undefined
  at::Tensor vae_roundtrip;   // the source through the VAE alone: the ceiling of any fidelity
  std::vector<double> timesteps;
  int unet_calls = 0;  // motion-UNet forward passes (one CFG batch over one window = one)
  double invert_s = 0, edit_s = 0, reconstruct_s = 0;
  std::string scheduler_note;  // what was changed in the model's scheduler config, if anything
  bool cancelled = false;
};

// Frames [F, H, W, 3] in [0, 1] with H and W multiples of the VAE scale factor. UsageError for bad
// input, a cancelled run returns cancelled = true and no frames.
ClipEditResult edit_clip(AnimateDiffPipeline& pipe, const at::Tensor& frames,
                         const ClipEditOptions& options);

}  // namespace studio::video
