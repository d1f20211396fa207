// Stable-Diffusion-family latent diffusion (txt2img, img2img) with diffusers' semantics: the same
// seed, scheduler and prompt give the same latents at every step as diffusers' pipelines.
// Classifier-free guidance runs the unconditional and conditional rows in one batched UNet call.
#pragma once

#include <ATen/Tensor.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/scheduler.h"

namespace studio {
class ClipTokenizer;
}

namespace studio::image {

// Called after every scheduler step; return false to cancel the run.
struct StepInfo {
  int step = 0;        // 1-based, of `total`
  int total = 0;
  double timestep = 0;
  const at::Tensor* latents = nullptr;  // after the step
};
using StepCallback = std::function<bool(const StepInfo&)>;

struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;  // "" = unconditional
  uint64_t seed = 0;
  int steps = 25;
  double guidance = 7.5;        // <= 1 disables classifier-free guidance
  int width = 0, height = 0;    // 0: the UNet's sample_size times the VAE scale factor
  int num_images = 1;
  double eta = 0.0;             // DDIM only
  int clip_skip = 0;
  // img2img: the init image NCHW [1, 3, H, W] in [-1, 1] (size = output size) and strength.
  std::optional<at::Tensor> init_image;
  double strength = 0.8;
  // txt2img: start from these latents [N, C, h, w] instead of seeded noise (diffusers' latents=,
  // e.g. the result of an inversion); they are used as given, not scaled by init_noise_sigma.
  std::optional<at::Tensor> latents;
  // Scheduler: a class name or alias (see scheduler_names()), applied over the model's
  // scheduler_config.json; or a whole config (its _class_name picks the class). Empty: the model's.
  std::string scheduler;
  std::optional<nlohmann::json> scheduler_config;
  bool keep_step_latents = false;
  StepCallback on_step;
};

struct GenerateResult {
  at::Tensor images;  // NHWC float32 [0, 1] on the CPU
  at::Tensor init_latents;  // the latents before the first step
  std::vector<at::Tensor> step_latents;  // after each step (keep_step_latents)
  at::Tensor prompt_embeds, negative_prompt_embeds;
  std::vector<double> timesteps;  // those actually run
  std::string scheduler_class;
  int unet_calls = 0;  // network function evaluations (one per step, CFG batched)
  bool cancelled = false;
};

class SdPipeline {
 public:
  // Loads a diffusers pipeline folder (tokenizer, text_encoder, unet, vae, scheduler) strictly,
  // then moves the models to `device` in `dtype`.
  static std::unique_ptr<SdPipeline> load(const std::filesystem::path& dir,
                                          const std::string& device = "cpu",
                                          const std::string& dtype = "auto",
                                          const std::string& variant = "");
  ~SdPipeline();

  GenerateResult generate(const GenerateRequest& request);

  // [N, 77, D] conditioning for prompts, as diffusers' encode_prompt (no attention mask).
  at::Tensor encode_prompt(const std::vector<std::string>& prompts, int clip_skip = 0);
  // Builds the scheduler a request asks for (validating names and configs).
  std::unique_ptr<Scheduler> make_request_scheduler(const GenerateRequest& request) const;
  int vae_scale_factor() const;
  int default_size() const;  // pixels
  const std::filesystem::path& path() const;
  // What was loaded (components, weight files), as inspect_checkpoint found it.
  const CheckpointInfo& checkpoint() const;
  const nlohmann::json& scheduler_config() const;
  // The VAE, for image encoding/decoding outside the denoising loop (inversion, editing).
  at::Tensor vae_encode_mean(const at::Tensor& image_nchw);  // scaled latents (posterior mean)
  at::Tensor vae_decode(const at::Tensor& latents);          // scaled latents -> NHWC [0, 1]

  // One UNet noise prediction eps(latents, timestep, context) for custom loops (inversion, null-text
  // optimisation, editing): latents [B, C, h, w], context [B, 77, D], both moved to the pipeline's
  // device and dtype. Gradients flow to the inputs when grad mode is on (the weights are frozen:
  // requires_grad is false on every parameter); hold torch::NoGradGuard for plain inference.
  at::Tensor predict_noise(const at::Tensor& latents, double timestep, const at::Tensor& context);
  c10::Device device() const;
  c10::ScalarType dtype() const;
  int64_t latent_channels() const;
  // The pipeline's CLIP tokenizer (prompt alignment for Prompt-to-Prompt).
  const ClipTokenizer& tokenizer() const;

 private:
  SdPipeline();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace studio::image
