// Noise schedulers with diffusers 0.29 semantics (DDPM, DDIM, DDIM inverse, Euler, Euler ancestral,
// DPM-Solver++ multistep), configured from a diffusers scheduler_config.json and generic over any
// latent shape (image [B,C,H,W], video [B,C,F,H,W], 3D) so every modality shares them.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>
#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/scheduler_names.h"

namespace studio {

enum class PredictionType { kEpsilon, kVPrediction, kSample };

// The base of every scheduler. A denoising loop is:
//   s->set_timesteps(n);  x = noise * s->init_noise_sigma();
//   for i in [begin, n):
//     x = s->step(model(s->scale_model_input(x, i), s->timesteps()[i]), i, x, gen);
// Schedule quantities (alphas_cumprod, sigmas, step coefficients) follow diffusers' float32/float64
// choices so traces match diffusers bit for bit on the same libtorch; latent arithmetic runs in the
// sample's dtype (Euler and DPM-Solver upcast to fp32 inside step, as diffusers does).
class Scheduler {
 public:
  virtual ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The diffusers class name, e.g. "DDIMScheduler".
  virtual std::string class_name() const = 0;

  // Computes the inference schedule; resets multistep history. UsageError unless
  // 1 <= num_inference_steps <= num_train_timesteps.
  virtual void set_timesteps(int num_inference_steps) = 0;

  // Values fed to the model as its timestep (integers for DDIM/DDPM/DPM-Solver, float32 values for
  // Euler), in the order they are run. Empty before set_timesteps.
  const std::vector<double>& timesteps() const { return timesteps_; }
  // Sigma-based schedulers (Euler, Euler ancestral, DPM-Solver): timesteps().size() + 1 float32
  // values, the last one the final sigma. Empty for the others.
  const std::vector<double>& sigmas() const { return sigmas_; }
  int num_inference_steps() const { return num_inference_steps_; }
  int num_train_timesteps() const { return num_train_timesteps_; }
  PredictionType prediction_type() const { return prediction_type_; }
  // Training schedule, float32 as diffusers keeps it (after any zero-SNR rescale).
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }

  // Standard deviation of the initial noise (multiply randn by it).
  virtual double init_noise_sigma() const;
  // Input scaling before the model call at position step_index (identity except for Euler).
  virtual at::Tensor scale_model_input(const at::Tensor& sample, std::size_t step_index) const;
  // One denoising step at position step_index of timesteps(). Stateful multistep schedulers keep
  // history and require consecutive indices (index 0, or reset(), starts afresh). generator feeds
  // the noise of stochastic steps (DDPM, DDIM eta > 0, Euler ancestral, SDE DPM-Solver); a null
  // generator uses libtorch's default one. When given, it is advanced exactly as diffusers advances
  // it.
  virtual at::Tensor step(const at::Tensor& model_output, std::size_t step_index,
                          const at::Tensor& sample, at::Generator* generator = nullptr) = 0;

  // q(x_t | x_0) at a model timestep (img2img, inversion editing). Alpha-based schedulers accept
  // any integer training timestep; sigma-based ones need a value of timesteps() (diffusers'
  // lookup).
  virtual at::Tensor add_noise(const at::Tensor& original, const at::Tensor& noise,
                               double timestep) const;
  // The same at position step_index of the schedule: what diffusers does after set_begin_index().
  virtual at::Tensor add_noise_at(const at::Tensor& original, const at::Tensor& noise,
                                  std::size_t step_index) const;

  // img2img, diffusers' get_timesteps(strength): the first step index that is run
  // (num_inference_steps() when strength makes no step run). UsageError outside [0, 1].
  std::size_t begin_index_for_strength(double strength) const;

  // Clears multistep history (DPM-Solver); no-op for one-step schedulers.
  virtual void reset();

  // DDIM's eta (0 = deterministic DDIM, 1 = DDPM-like). UsageError for eta != 0 on schedulers
  // without it.
  virtual void set_eta(double eta);

  // The effective config: the class's diffusers defaults, overridden by the given config (keys this
  // class does not use are kept, as diffusers keeps them), "_class_name" set to class_name().
  const nlohmann::json& config() const { return *config_; }
  // Where the config came from (file path or a description), used in error messages.
  const std::string& origin() const { return origin_; }

 protected:
  Scheduler(const nlohmann::json& effective_config, std::string origin);
  // Throws UsageError unless set_timesteps was called and step_index is in range.
  void check_step_index(std::size_t step_index, const char* what) const;

  std::string origin_;
  int num_train_timesteps_ = 1000;
  int num_inference_steps_ = 0;
  PredictionType prediction_type_ = PredictionType::kEpsilon;
  std::vector<float> alphas_cumprod_;
  std::vector<double> timesteps_;
  std::vector<double> sigmas_;

 private:
  std::unique_ptr<nlohmann::json> config_;
};

// Builds the scheduler named by config["_class_name"]. origin names the config in errors.
// ConfigError for an unknown class, unsupported values or wrong types (naming origin and key).
std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& config, const std::string& origin);
// Same, but class_or_alias (a class name or an alias of scheduler_names()) overrides
// config["_class_name"], e.g. `--scheduler euler` with the model's DDIM config. Aliases may also
// set keys: dpmpp_2m = DPM-Solver++ order 2, dpmpp_2m_karras adds Karras sigmas.
std::unique_ptr<Scheduler> make_scheduler(const std::string& class_or_alias,
                                          const nlohmann::json& base_config,
                                          const std::string& origin);
// Class names and short aliases accepted by make_scheduler: scheduler_names() in
// core/scheduler_names.h (torch-free, included above).
// Reads a scheduler_config.json (or a folder holding one) and builds its scheduler.
std::unique_ptr<Scheduler> load_scheduler_config(
    const std::filesystem::path& scheduler_config_json);

}  // namespace studio
