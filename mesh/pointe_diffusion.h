// Point-E's sampling: the Gaussian diffusion tables (cosine / linear, float64 as Point-E keeps
// them), the Karras Heun sampler over a GaussianDiffusion with classifier-free guidance, and the
// PointCloudSampler chain (base -> upsampler). Randomness comes from a NoiseFn so a run can be
// seeded (torch's CPU generator reproduces Point-E's draws) or fed recorded noise.
#pragma once

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mesh/pointe_models.h"

namespace studio::pointe {

// Point-E's `diffusion_config` (point_e/diffusion/configs.py).
struct DiffusionConfig {
  std::string schedule = "cosine";  // "cosine" | "linear"
  int64_t timesteps = 1024;
  std::vector<double> channel_scales, channel_biases;  // may be empty
  // Reads the dict; mean_type must be "epsilon" (learned_range variance is implied).
  static DiffusionConfig from_json(const nlohmann::json& j, const std::string& origin);
};

// GaussianDiffusion with epsilon prediction; only what the Karras sampler needs plus the tables.
class GaussianDiffusion {
 public:
  explicit GaussianDiffusion(const DiffusionConfig& config);
  const DiffusionConfig& config() const { return config_; }
  int64_t num_timesteps() const { return static_cast<int64_t>(betas_.size()); }

  // float64 tables, [timesteps] each.
  const std::vector<double>& betas() const { return betas_; }
  const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }
  const std::vector<double>& alphas_cumprod_prev() const { return alphas_cumprod_prev_; }
  const std::vector<double>& sqrt_recip_alphas_cumprod() const { return sqrt_recip_; }
  const std::vector<double>& sqrt_recipm1_alphas_cumprod() const { return sqrt_recipm1_; }
  const std::vector<double>& posterior_variance() const { return posterior_variance_; }
  const std::vector<double>& posterior_log_variance_clipped() const { return posterior_log_var_; }
  const std::vector<double>& posterior_mean_coef1() const { return posterior_coef1_; }
  const std::vector<double>& posterior_mean_coef2() const { return posterior_coef2_; }

  // GaussianToKarrasDenoiser.sigma_to_t: the (fractional) timestep whose alpha-bar is
  // 1 / (sigma^2 + 1), by linear interpolation; clamped to [0, timesteps - 1].
  double sigma_to_t(double sigma) const;

  // x * scale + bias per channel (dim 1), and its inverse; no-ops without scales/biases.
  at::Tensor scale_channels(const at::Tensor& x) const;
  at::Tensor unscale_channels(const at::Tensor& x) const;

  // x0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps (coefficients cast to fp32), clamped to
  // [-1, 1] when `clip`.
  at::Tensor predict_xstart(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& eps,
                            bool clip) const;

 private:
  DiffusionConfig config_;
  std::vector<double> betas_, alphas_cumprod_, alphas_cumprod_prev_, sqrt_recip_, sqrt_recipm1_,
      posterior_variance_, posterior_log_var_, posterior_coef1_, posterior_coef2_;
};

// get_sigmas_karras: fp32 [n + 1], descending, trailing 0.
at::Tensor karras_sigmas(int64_t n, double sigma_min, double sigma_max, double rho = 7.0);

// Draws standard normal noise of a shape (x_T, then one per Heun step).
using NoiseFn = std::function<at::Tensor(at::IntArrayRef shape)>;
// torch's global CPU generator (seed it with torch::manual_seed for Point-E's exact draws).
NoiseFn global_noise();

// The model with its conditioning bound: (x_in [Bm,C,N], t int64 [Bm]) -> [Bm, 2C, N].
using ModelFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t)>;

// One GaussianToKarrasDenoiser.denoise call, for tests and debugging.
struct DenoiseCall {
  int64_t step = 0;
  at::Tensor x_t, sigma, t_float, model_x, model_t, model_out, denoised;
};
using CallObserver = std::function<void(const DenoiseCall&)>;

// denoise(x_t, sigma): t = trunc(sigma_to_t(sigma)), x_in = x_t / sqrt(sigma^2 + 1), x0 from the
// model's epsilon (first C output channels). `sigma` is fp32 [Bm].
at::Tensor karras_denoise(const GaussianDiffusion& diffusion, const ModelFn& model,
                          const at::Tensor& x_t, const at::Tensor& sigma, bool clip_denoised,
                          DenoiseCall* record = nullptr);

struct KarrasOptions {
  int64_t steps = 64;
  double sigma_min = 1e-3;
  double sigma_max = 120.0;
  double rho = 7.0;
  double s_churn = 0.0;
  double s_tmin = 0.0;
  double s_tmax = std::numeric_limits<double>::infinity();
  double s_noise = 1.0;
  // Classifier-free guidance: 0 or 1 = off; else the model gets [x, x] with conditional then
  // unconditional kwargs and x0 = uncond + scale * (cond - uncond).
  double guidance_scale = 0.0;
  bool clip_denoised = true;
  // Where the samples live (the model's device). Noise is drawn by the NoiseFn (on the CPU for
  // Point-E's exact draws) and moved here.
  c10::Device device{c10::kCPU};
};

// One yield of karras_sample_progressive, unscaled ((v - bias) / scale).
struct KarrasYield {
  at::Tensor x, pred_xstart;
};

// Heun sampling (Karras et al. 2022, Algorithm 2) of `shape` = [B, C, N]. Returns steps + 1
// yields (x after churn / guided x0 per step, then the final pair).
std::vector<KarrasYield> karras_sample(const GaussianDiffusion& diffusion, const ModelFn& model,
                                       at::IntArrayRef shape, const KarrasOptions& options,
                                       const NoiseFn& noise, const CallObserver& observer = {});

// One PointCloudSampler stage.
struct SamplerStage {
  PointDiffusionTransformer model{nullptr};
  GaussianDiffusion diffusion{DiffusionConfig{}};
  int64_t num_points = 1024;
  KarrasOptions karras;
  // model_kwargs_key_filter: false = the stage does not see the caller's conditioning (Point-E's
  // text2pointcloud upsampler, filter ''), so it gets zeros.
  bool use_conditioning = true;
};

// PointCloudSampler (Karras stages only): stage k samples num_points[k] new points, conditioned
// (from stage 1 on) on everything sampled so far as `low_res`.
class PointCloudSampler {
 public:
  explicit PointCloudSampler(std::vector<SamplerStage> stages, int64_t channels = 6);
  const std::vector<SamplerStage>& stages() const { return stages_; }

  // embeddings: CLIP vector [B, 768] or latent grid [B, 1024, 256] for the stages that use
  // conditioning. on_yield(stage, step, samples) sees every sample_batch_progressive yield
  // (unscaled, [B, C, N_so_far]); observers[k] every denoise call of stage k. Returns the final
  // samples [B, C, sum(num_points)] (RGB in 0..255).
  at::Tensor sample(const at::Tensor& embeddings, const NoiseFn& noise,
                    const std::function<void(int, int, const at::Tensor&)>& on_yield = {},
                    const std::vector<CallObserver>& observers = {}) const;

  // The model kwargs stage `k` gets (after guidance doubling): embeddings (undefined = zeros for
  // the upsampler) and low_res. Exposed for tests.
  std::pair<at::Tensor, at::Tensor> stage_conditioning(size_t k, const at::Tensor& embeddings,
                                                       const at::Tensor& low_res) const;

 private:
  std::vector<SamplerStage> stages_;
  int64_t channels_;
};

// output_to_point_clouds: coords [B, N, 3] and RGB [B, N, 3] = clamp(0, 255).round() / 255.
struct PointClouds {
  at::Tensor coords, rgb;
};
PointClouds split_point_clouds(const at::Tensor& samples);

}  // namespace studio::pointe
