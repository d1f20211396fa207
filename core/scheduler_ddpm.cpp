// DDPM ancestral sampling (Ho et al. 2020) as diffusers' DDPMScheduler: posterior mean plus noise
// with the configured variance_type; coefficients in float32 like diffusers' 0-d tensors.
#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "core/scheduler_impl.h"

namespace studio::sched {
namespace {

enum class VarianceType { kFixedSmall, kFixedSmallLog, kFixedLarge, kLearned, kLearnedRange };

class DDPMScheduler final : public Scheduler {
 public:
  DDPMScheduler(const ConfigReader& r, std::vector<float> alphas_cumprod, PredictionType pred)
      : Scheduler(r.effective(), r.origin()) {
    num_train_timesteps_ = static_cast<int>(alphas_cumprod.size());
    alphas_cumprod_ = std::move(alphas_cumprod);
    prediction_type_ = pred;
    spacing_ = read_spacing(r, {"leading", "trailing", "linspace"});
    steps_offset_ = r.get_int("steps_offset", 0, num_train_timesteps_);
    const auto v = r.get_choice("variance_type", {"fixed_small", "fixed_small_log", "fixed_large",
                                                  "learned", "learned_range"});
    variance_type_ = v == "fixed_small"       ? VarianceType::kFixedSmall
                     : v == "fixed_small_log" ? VarianceType::kFixedSmallLog
                     : v == "fixed_large"     ? VarianceType::kFixedLarge
                     : v == "learned"         ? VarianceType::kLearned
                                              : VarianceType::kLearnedRange;
    clip_sample_ = r.get_bool("clip_sample");
    clip_sample_range_ = r.get_number("clip_sample_range");
    if (clip_sample_ && !(clip_sample_range_ > 0))
      r.fail("clip_sample_range", "clip_sample_range must be positive", "DDPM's default is 1.0");
    thresholding_ = Thresholding::read(r);
  }

  std::string class_name() const override { return "DDPMScheduler"; }

  void set_timesteps(int n) override {
    if (n < 1 || n > num_train_timesteps_)
      throw UsageError(
          "DDPMScheduler::set_timesteps: " + std::to_string(n) + " inference steps requested",
          origin_, "use 1.." + std::to_string(num_train_timesteps_));
    num_inference_steps_ = n;
    timesteps_ = spaced_timesteps(spacing_, num_train_timesteps_, n, steps_offset_, true);
    for (double t : timesteps_)
      if (t < 0 || t >= num_train_timesteps_)
        throw UsageError("DDPMScheduler: steps_offset " + std::to_string(steps_offset_) +
                             " puts timestep " + std::to_string(static_cast<int64_t>(t)) +
                             " outside the training range",
                         origin_, "lower steps_offset or use another timestep_spacing");
  }

  at::Tensor step(const at::Tensor& model_output_in, std::size_t step_index,
                  const at::Tensor& sample, at::Generator* generator) override {
    check_step_index(step_index, "step");
    at::Tensor model_output = model_output_in;
    at::Tensor predicted_variance;
    const bool learned =
        variance_type_ == VarianceType::kLearned || variance_type_ == VarianceType::kLearnedRange;
    if (learned && model_output.dim() >= 2 && sample.dim() >= 2 &&
        model_output.size(1) == 2 * sample.size(1)) {
      auto parts = at::split(model_output, sample.size(1), 1);
      model_output = parts[0];
      predicted_variance = parts[1];
    }
    if (model_output.sizes() != sample.sizes())
      throw UsageError(
          "DDPMScheduler::step: model_output and sample must have the same shape", origin_,
          "pass the model's prediction for this sample (learned variance: 2x channels)");

    const auto t = static_cast<int64_t>(timesteps_[step_index]);
    const int64_t prev_t = t - num_train_timesteps_ / num_inference_steps_;
    const float alpha_prod_t = alphas_cumprod_[static_cast<std::size_t>(t)];
    const float alpha_prod_t_prev =
        prev_t >= 0 ? alphas_cumprod_[static_cast<std::size_t>(prev_t)] : 1.0f;
    const float beta_prod_t = 1.0f - alpha_prod_t;
    const float beta_prod_t_prev = 1.0f - alpha_prod_t_prev;
    const float current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
    const float current_beta_t = 1.0f - current_alpha_t;

    at::Tensor x0;
    switch (prediction_type_) {
      case PredictionType::kEpsilon:
        x0 = (sample - model_output * static_cast<double>(std::sqrt(beta_prod_t))) /
             static_cast<double>(std::sqrt(alpha_prod_t));
        break;
      case PredictionType::kSample:
        x0 = model_output;
        break;
      case PredictionType::kVPrediction:
        x0 = sample * static_cast<double>(std::sqrt(alpha_prod_t)) -
             model_output * static_cast<double>(std::sqrt(beta_prod_t));
        break;
    }
    if (thresholding_.enabled)
      x0 = thresholding_.apply(x0);
    else if (clip_sample_)
      x0 = x0.clamp(-clip_sample_range_, clip_sample_range_);

    const float x0_coeff = (std::sqrt(alpha_prod_t_prev) * current_beta_t) / beta_prod_t;
    const float sample_coeff = std::sqrt(current_alpha_t) * beta_prod_t_prev / beta_prod_t;
    at::Tensor prev =
        x0 * static_cast<double>(x0_coeff) + sample * static_cast<double>(sample_coeff);

    if (t > 0) {
      at::Tensor noise = draw_noise(model_output.sizes(), model_output.scalar_type(),
                                    model_output.device(), generator);
      // diffusers' _get_variance: posterior variance beta~_t, clamped at 1e-20.
      float variance = (1.0f - alpha_prod_t_prev) / (1.0f - alpha_prod_t) * current_beta_t;
      variance = std::max(variance, 1e-20f);
      switch (variance_type_) {
        case VarianceType::kFixedSmall:
          prev = prev + noise * static_cast<double>(std::sqrt(variance));
          break;
        case VarianceType::kFixedSmallLog:
          prev = prev + noise * static_cast<double>(torch_exp(0.5f * torch_log(variance)));
          break;
        case VarianceType::kFixedLarge:
          prev = prev + noise * static_cast<double>(std::sqrt(current_beta_t));
          break;
        case VarianceType::kLearned:
          if (!predicted_variance.defined())
            throw UsageError(
                "DDPMScheduler: variance_type \"learned\" needs a model output with "
                "twice the sample's channels",
                origin_, "use a model that predicts its variance, or fixed_small");
          prev = prev + predicted_variance.pow(0.5) * noise;
          break;
        case VarianceType::kLearnedRange: {
          if (!predicted_variance.defined())
            throw UsageError(
                "DDPMScheduler: variance_type \"learned_range\" needs a model output "
                "with twice the sample's channels",
                origin_, "use a model that predicts its variance, or fixed_small");
          const double min_log = torch_log(variance);
          const double max_log = torch_log(current_beta_t);
          at::Tensor frac = (predicted_variance + 1) / 2;
          at::Tensor log_var = frac * max_log + (1 - frac) * min_log;
          prev = prev + at::exp(0.5 * log_var) * noise;
          break;
        }
      }
    }
    return prev;
  }

 private:
  Spacing spacing_ = Spacing::kLeading;
  int steps_offset_ = 0;
  VarianceType variance_type_ = VarianceType::kFixedSmall;
  bool clip_sample_ = true;
  double clip_sample_range_ = 1.0;
  Thresholding thresholding_;
};

}  // namespace

std::unique_ptr<Scheduler> make_ddpm(const nlohmann::json& config, const std::string& origin) {
  auto d = common_defaults();
  d["variance_type"] = "fixed_small";
  d["clip_sample"] = true;
  d["thresholding"] = false;
  d["dynamic_thresholding_ratio"] = 0.995;
  d["clip_sample_range"] = 1.0;
  d["sample_max_value"] = 1.0;
  d["timestep_spacing"] = "leading";
  ConfigReader r(config, std::move(d), "DDPMScheduler", origin);
  auto alphas_cumprod = make_alphas_cumprod(r, /*allow_sigmoid=*/true, false);
  const auto pred = read_prediction_type(r, {"epsilon", "sample", "v_prediction"});
  return std::make_unique<DDPMScheduler>(r, std::move(alphas_cumprod), pred);
}

}  // namespace studio::sched
