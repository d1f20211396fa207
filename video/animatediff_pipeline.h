// AnimateDiff text-to-video (diffusers 0.29 AnimateDiffPipeline): a Stable Diffusion 1.x pipeline
// folder plus a MotionAdapter; the same seed, scheduler and prompt give the same latents at every
// step as diffusers. Frames are decoded through the image VAE one frame per batch row. Also
// image/video-to-video (init frames with strength, a product keep-mask blended in latent space)
// and clips longer than the motion module reaches (overlapping context windows over frames).
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "video/video_io.h"

namespace studio::video {

// Called after every scheduler step; return false to cancel the run.
struct VideoStepInfo {
  int step = 0;  // 1-based, of `total`
  int total = 0;
  double timestep = 0;
  const at::Tensor* latents = nullptr;  // [1, C, F, h, w] after the step
};
using VideoStepCallback = std::function<bool(const VideoStepInfo&)>;

struct VideoRequest {
  std::string prompt;
  std::string negative_prompt;  // "" = unconditional
  uint64_t seed = 0;
  int num_frames = 16;  // at most the adapter's motion_max_seq_length
  int steps = 25;
  double guidance = 7.5;      // <= 1 disables classifier-free guidance
  int width = 0, height = 0;  // 0: the UNet's sample_size times the VAE scale factor
  double eta = 0.0;           // DDIM only
  // Precomputed text conditioning [1, 77, D] instead of encoding the prompts (both or neither).
  std::optional<at::Tensor> prompt_embeds, negative_prompt_embeds;
  // Start from these latents [1, C, F, h, w] instead of seeded noise (used as given).
  std::optional<at::Tensor> latents;
  // Image-to-video / video-to-video (diffusers' AnimateDiffVideoToVideoPipeline rule): the init
  // frames' VAE latents are noised to the depth `strength` gives and the last int(steps * strength)
  // steps run. init_frames: [H, W, 3] (one picture, every frame starts from it) or [F, H, W, 3],
  // float in [0, 1] at the output size.
  std::optional<at::Tensor> init_frames;
  double strength = 0.8;
  // With init_frames: where the init must stay (1 = keep, e.g. the product): [H, W] or [F, H, W] at
  // pixel or latent size, in [0, 1]. After every step latents = m * init noised to that step's
  // level + (1 - m) * latents (blended latent diffusion), so kept regions end as the init's
  // latents.
  at::Tensor keep_mask;
  bool keep_first_frame = false;  // with init_frames: frame 0 is kept whole (the photo itself)
  // Frames per motion-module window. 0: all frames in one window (at most max_frames()). Longer
  // clips run the motion UNet on windows of this many frames that overlap by `context_overlap`,
  // and average the predictions (weights ramp down across each overlap, so seams blend).
  int context_frames = 0;
  int context_overlap = 4;
  // A whole scheduler config (its _class_name picks the class); empty: the pipeline's default.
  std::optional<nlohmann::json> scheduler_config;
  bool keep_step_latents = false;
  VideoStepCallback on_step;
};

struct VideoResult {
  at::Tensor frames;                     // [F, H, W, 3] float32 in [0, 1] on the CPU
  at::Tensor init_latents;               // [1, C, F, h, w] before the first step
  std::vector<at::Tensor> step_latents;  // after each step (keep_step_latents)
  at::Tensor prompt_embeds, negative_prompt_embeds;
  std::vector<double> timesteps;
  int unet_calls = 0;
  bool cancelled = false;
};

class AnimateDiffPipeline {
 public:
  // sd_dir: a diffusers Stable Diffusion pipeline folder (tokenizer, text_encoder, unet, vae,
  // scheduler). motion_dir: a MotionAdapter folder (config.json + weights), or a folder holding
  // motion_adapter/ and optionally scheduler/, whose scheduler then replaces sd_dir's as default.
  // Everything loads strictly; the models are moved to `device` in `dtype`.
  static std::unique_ptr<AnimateDiffPipeline> load(const std::filesystem::path& sd_dir,
                                                   const std::filesystem::path& motion_dir,
                                                   const std::string& device = "cpu",
                                                   const std::string& dtype = "auto");
  ~AnimateDiffPipeline();

  VideoResult generate(const VideoRequest& request);

  // [N, 77, D] conditioning for prompts, as diffusers' encode_prompt (no attention mask).
  at::Tensor encode_prompt(const std::vector<std::string>& prompts);
  // Scaled video latents [B, C, F, h, w] → frames [B, F, H, W, 3] in [0, 1] (VAE per frame).
  at::Tensor decode_latents(const at::Tensor& latents);
  // Frames [F, H, W, 3] in [0, 1] → scaled latents [1, C, F, h, w] (VAE posterior mean per frame;
  // H and W multiples of vae_scale_factor()). Pipeline device and dtype.
  at::Tensor encode_frames(const at::Tensor& frames);
  // The motion UNet's noise prediction for video latents [B, C, F, h, w] at `timestep` under
  // context [B, 77, D] (moved to the pipeline's device and dtype), over context windows when
  // context_frames > 0 and F > context_frames (see VideoRequest::context_frames).
  at::Tensor predict_noise(const at::Tensor& latents, double timestep, const at::Tensor& context,
                           int context_frames = 0, int context_overlap = 4);
  int vae_scale_factor() const;
  int default_size() const;  // pixels
  int max_frames() const;    // the adapter's motion_max_seq_length
  const nlohmann::json& scheduler_config() const;

 private:
  AnimateDiffPipeline();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The windows [start, end) over num_frames frames that predict_noise uses: one window [0, F) when
// context_frames is 0 or >= F; else windows of context_frames frames, `overlap` apart from the
// next, the last one ending at F. UsageError unless 0 <= overlap < context_frames.
std::vector<std::pair<int, int>> context_windows(int num_frames, int context_frames, int overlap);

// A keep-mask [H, W] / [F, H, W] (pixel or latent size; values in [0, 1]) brought to video latents
// [1, C, F, h, w]: [1, 1, F|1, h, w] on their device and dtype (area-averaged from pixel size);
// frame 0 set to 1 when keep_first. Undefined when there is nothing to keep. UsageError for a bad
// shape or values.
at::Tensor video_keep_mask(const at::Tensor& mask, const at::Tensor& latents, int vae_factor,
                           bool keep_first = false);

// Writes frames [F, H, W, 3] in [0, 1] (a VideoResult's) as a video file with VideoWriter
// (round(255·x) RGB8); options.width/height 0 take the frames' size. Returns the encoder used.
std::string write_frames(const at::Tensor& frames, const std::filesystem::path& path,
                         WriterOptions options = {});

}  // namespace studio::video
