// Private to the scheduler .cpp files: typed config reading with diffusers' defaults and actionable
// errors, the float32 training schedule, NumPy-exact timestep spacing, and the per-family
// factories.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/scheduler.h"

namespace studio::sched {

// One scheduler class's view of a (possibly shared) diffusers config: values of the keys this class
// knows, validated, with the class's defaults for absent or null keys. Keys it does not know are
// kept in the effective config and otherwise ignored, as diffusers' from_config does.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& user, nlohmann::json defaults, std::string class_name,
               std::string origin);

  // The user's value if present and not null, else the default. The key must be a default's key.
  const nlohmann::json& raw(const std::string& key) const;
  bool is_null(const std::string& key) const { return raw(key).is_null(); }
  int get_int(const std::string& key, int min_value, int max_value) const;
  double get_number(const std::string& key) const;
  std::optional<double> get_optional_number(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_choice(const std::string& key, const std::vector<std::string>& accepted) const;
  // ConfigError naming origin and key.
  [[noreturn]] void fail(const std::string& key, const std::string& what,
                         const std::string& hint) const;
  // Normalises a value in the effective config (diffusers' register_to_config in __init__).
  void set(const std::string& key, nlohmann::json value) { effective_[key] = std::move(value); }

  const nlohmann::json& effective() const { return effective_; }
  const std::string& origin() const { return origin_; }
  const std::string& class_name() const { return class_name_; }

 private:
  nlohmann::json user_;
  nlohmann::json defaults_;
  nlohmann::json effective_;
  std::string class_name_;
  std::string origin_;
};

// Keys every scheduler of this family shares, with diffusers' defaults.
nlohmann::json common_defaults();

enum class Spacing { kLeading, kTrailing, kLinspace };
Spacing read_spacing(const ConfigReader& r, const std::vector<std::string>& accepted);
PredictionType read_prediction_type(const ConfigReader& r,
                                    const std::vector<std::string>& accepted);

// betas from beta_start/beta_end/beta_schedule/trained_betas (+ rescale_betas_zero_snr), then
// alphas_cumprod, computed with the same float32 libtorch ops as diffusers. allow_sigmoid: DDPM's
// extra schedule. pin_terminal: Euler/DPM set alphas_cumprod[-1] = 2^-24 after a zero-SNR rescale.
std::vector<float> make_alphas_cumprod(const ConfigReader& r, bool allow_sigmoid,
                                       bool pin_terminal);

// float32 sigma_t = sqrt((1 - a) / a) per training timestep (ascending t), as diffusers computes
// it.
std::vector<float> training_sigmas(const std::vector<float>& alphas_cumprod);

// NumPy re-implementations (float64) used by diffusers' set_timesteps.
std::vector<double> np_linspace(double start, double stop, int num);
// np.arange(start, 0, -step) for a positive step, without entries that would round below 1 (a
// diffusers bug for some step counts produced a trailing timestep of -1).
std::vector<double> np_arange_down(double start, double step);
// np.interp(x, [0, 1, ..., n-1], fp).
double np_interp_index(double x, const std::vector<double>& fp);

// Descending timesteps for DDIM/DDPM/Euler-style spacing over num_train_timesteps; linspace values
// are rounded when round_linspace (integer schedulers) and kept as float32 otherwise (Euler).
std::vector<double> spaced_timesteps(Spacing spacing, int num_train_timesteps, int n,
                                     int steps_offset, bool round_linspace);

// diffusers' _sigma_to_t: fractional training timestep of sigma, interpolating log-sigma linearly
// (log_sigmas float32 ascending), with NumPy 1.x float32 arithmetic.
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);
// Karras et al. (2022) rho = 7 ramp from sigma_max down to sigma_min, n values (float64).
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n);

// randn of shape drawn as diffusers' randn_tensor does: on the generator's device (CPU for a CPU
// generator) in dtype, then moved to device. Null generator: libtorch's default generator.
at::Tensor draw_noise(at::IntArrayRef shape, at::ScalarType dtype, at::Device device,
                      at::Generator* generator);

// Imagen dynamic thresholding of a predicted x0 (per batch item): s = clamp(quantile(|x|, ratio),
// 1, max_value); x -> clamp(x, -s, s) / s.
at::Tensor threshold_sample(const at::Tensor& x0, double ratio, double max_value);

// UsageError unless a step's model output and sample are defined and of one shape.
void check_shapes(const at::Tensor& model_output, const at::Tensor& sample,
                  const std::string& who);

// Dynamic thresholding options shared by DDIM, DDPM and DPM-Solver: `thresholding`,
// `dynamic_thresholding_ratio` and `sample_max_value`, read and validated once.
struct Thresholding {
  bool enabled = false;
  double ratio = 0.995;
  double max_value = 1.0;
  static Thresholding read(const ConfigReader& r);
  at::Tensor apply(const at::Tensor& x0) const {
    return enabled ? threshold_sample(x0, ratio, max_value) : x0;
  }
};

// Position of a model timestep in timesteps as diffusers' index_for_timestep finds it: the second
// match when there are several, else the first; UsageError when absent.
std::size_t index_for_timestep(const std::vector<double>& timesteps, double timestep,
                               const std::string& class_name);

// float32 log / exp of a scalar through libtorch's kernels, as diffusers' 0-d float32 tensors
// compute them (libm differs in the last bit for some inputs, enough to break bit parity).
float torch_log(float x);
float torch_exp(float x);

// Per-family factories (in scheduler_<family>.cpp).
std::unique_ptr<Scheduler> make_ddim(const nlohmann::json& config, const std::string& origin);
std::unique_ptr<Scheduler> make_ddim_inverse(const nlohmann::json& config,
                                             const std::string& origin);
std::unique_ptr<Scheduler> make_ddpm(const nlohmann::json& config, const std::string& origin);
std::unique_ptr<Scheduler> make_euler(const nlohmann::json& config, const std::string& origin);
std::unique_ptr<Scheduler> make_euler_ancestral(const nlohmann::json& config,
                                                const std::string& origin);
std::unique_ptr<Scheduler> make_dpm_solver(const nlohmann::json& config, const std::string& origin);

// np.round: the default floating-point environment rounds to nearest, ties to even.
inline double np_round(double v) { return std::nearbyint(v); }

}  // namespace studio::sched
