// DDIM (Song et al. 2021, with eta) and DDIM inversion, as diffusers' DDIMScheduler and
// DDIMInverseScheduler: step coefficients in float32 like diffusers' 0-d tensors, latents in the
// sample's dtype.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/scheduler_impl.h"

namespace studio::sched {
namespace {

// x0 and eps from the model output at alpha_prod_t (float32 scalars, as diffusers computes them).
void predict_x0_eps(PredictionType type, const at::Tensor& model_output, const at::Tensor& sample,
                    float alpha_prod_t, at::Tensor& x0, at::Tensor& eps) {
  const float beta_prod_t = 1.0f - alpha_prod_t;
  const double sqrt_a = std::sqrt(alpha_prod_t);
  const double sqrt_b = std::sqrt(beta_prod_t);
  switch (type) {
    case PredictionType::kEpsilon:
      x0 = (sample - model_output * sqrt_b) / sqrt_a;
      eps = model_output;
      break;
    case PredictionType::kSample:
      x0 = model_output;
      eps = (sample - x0 * sqrt_a) / sqrt_b;
      break;
    case PredictionType::kVPrediction:
      x0 = sample * sqrt_a - model_output * sqrt_b;
      eps = model_output * sqrt_a + sample * sqrt_b;
      break;
  }
}

struct DdimOptions {
  Spacing spacing = Spacing::kLeading;
  int steps_offset = 0;
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  Thresholding thresholding;  // DDIM only; the inverse scheduler has none
  float edge_alpha_cumprod = 1.0f;  // final (DDIM) / initial (inverse) alpha_cumprod
};

nlohmann::json ddim_defaults(bool inverse) {
  auto d = common_defaults();
  d["clip_sample"] = true;
  d["set_alpha_to_one"] = true;
  d["clip_sample_range"] = 1.0;
  d["timestep_spacing"] = "leading";
  if (inverse) {
    d["set_alpha_to_zero"] = nullptr;  // deprecated alias of set_alpha_to_one
  } else {
    d["thresholding"] = false;
    d["dynamic_thresholding_ratio"] = 0.995;
    d["sample_max_value"] = 1.0;
  }
  return d;
}

DdimOptions read_ddim_options(const ConfigReader& r, bool inverse,
                              const std::vector<float>& alphas_cumprod) {
  DdimOptions o;
  o.spacing = inverse ? read_spacing(r, {"leading", "trailing"})
                      : read_spacing(r, {"leading", "trailing", "linspace"});
  o.steps_offset = r.get_int("steps_offset", 0, r.get_int("num_train_timesteps", 2, 1 << 20));
  o.clip_sample = r.get_bool("clip_sample");
  o.clip_sample_range = r.get_number("clip_sample_range");
  if (o.clip_sample && !(o.clip_sample_range > 0))
    r.fail("clip_sample_range", "clip_sample_range must be positive", "SD-style models use 1.0");
  bool alpha_to_one = r.get_bool("set_alpha_to_one");
  if (inverse && !r.is_null("set_alpha_to_zero")) alpha_to_one = r.get_bool("set_alpha_to_zero");
  o.edge_alpha_cumprod = alpha_to_one ? 1.0f : alphas_cumprod.front();
  if (!inverse) {
    o.thresholding = Thresholding::read(r);
  }
  return o;
}

void check_steps(const Scheduler& s, int n) {
  if (n < 1 || n > s.num_train_timesteps())
    throw UsageError(
        s.class_name() + "::set_timesteps: " + std::to_string(n) + " inference steps requested",
        s.origin(), "use 1.." + std::to_string(s.num_train_timesteps()) + " (num_train_timesteps)");
}

class DDIMScheduler final : public Scheduler {
 public:
  DDIMScheduler(const ConfigReader& r, std::vector<float> alphas_cumprod, PredictionType pred)
      : Scheduler(r.effective(), r.origin()) {
    num_train_timesteps_ = static_cast<int>(alphas_cumprod.size());
    alphas_cumprod_ = std::move(alphas_cumprod);
    prediction_type_ = pred;
    o_ = read_ddim_options(r, false, alphas_cumprod_);
  }

  std::string class_name() const override { return "DDIMScheduler"; }

  void set_timesteps(int n) override {
    check_steps(*this, n);
    num_inference_steps_ = n;
    timesteps_ = spaced_timesteps(o_.spacing, num_train_timesteps_, n, o_.steps_offset, true);
    for (double t : timesteps_)
      if (t < 0 || t >= num_train_timesteps_)
        throw UsageError("DDIMScheduler: steps_offset " + std::to_string(o_.steps_offset) +
                             " puts timestep " + std::to_string(static_cast<int64_t>(t)) +
                             " outside the training range",
                         origin_, "lower steps_offset or use another timestep_spacing");
  }

  void set_eta(double eta) override {
    if (!(eta >= 0.0 && std::isfinite(eta)))
      throw UsageError("DDIM eta must be a finite number >= 0, got " + std::to_string(eta), origin_,
                       "use 0 (deterministic) .. 1");
    eta_ = eta;
  }

  at::Tensor step(const at::Tensor& model_output, std::size_t step_index, const at::Tensor& sample,
                  at::Generator* generator) override {
    check_step_index(step_index, "step");
    check_shapes(model_output, sample, class_name());
    const auto t = static_cast<int64_t>(timesteps_[step_index]);
    // diffusers uses num_train // num_inference for the previous timestep whatever the spacing.
    const int64_t prev_t = t - num_train_timesteps_ / num_inference_steps_;
    const float alpha_prod_t = alphas_cumprod_[static_cast<std::size_t>(t)];
    const float alpha_prod_t_prev =
        prev_t >= 0 ? alphas_cumprod_[static_cast<std::size_t>(prev_t)] : o_.edge_alpha_cumprod;

    at::Tensor x0, eps;
    predict_x0_eps(prediction_type_, model_output, sample, alpha_prod_t, x0, eps);
    if (o_.thresholding.enabled)
      x0 = o_.thresholding.apply(x0);
    else if (o_.clip_sample)
      x0 = x0.clamp(-o_.clip_sample_range, o_.clip_sample_range);

    const float beta_prod_t = 1.0f - alpha_prod_t;
    const float beta_prod_t_prev = 1.0f - alpha_prod_t_prev;
    const float variance =
        (beta_prod_t_prev / beta_prod_t) * (1.0f - alpha_prod_t / alpha_prod_t_prev);
    const float std_dev_t = static_cast<float>(eta_) * std::sqrt(variance);
    const float dir_coeff = std::sqrt(1.0f - alpha_prod_t_prev - std_dev_t * std_dev_t);
    at::Tensor direction = eps * static_cast<double>(dir_coeff);
    at::Tensor prev = x0 * static_cast<double>(std::sqrt(alpha_prod_t_prev)) + direction;
    if (eta_ > 0) {
      at::Tensor noise = draw_noise(model_output.sizes(), model_output.scalar_type(),
                                    model_output.device(), generator);
      prev = prev + noise * static_cast<double>(std_dev_t);
    }
    return prev;
  }

 private:
  DdimOptions o_;
  double eta_ = 0.0;
};

class DDIMInverseScheduler final : public Scheduler {
 public:
  DDIMInverseScheduler(const ConfigReader& r, std::vector<float> alphas_cumprod,
                       PredictionType pred)
      : Scheduler(r.effective(), r.origin()) {
    num_train_timesteps_ = static_cast<int>(alphas_cumprod.size());
    alphas_cumprod_ = std::move(alphas_cumprod);
    prediction_type_ = pred;
    o_ = read_ddim_options(r, true, alphas_cumprod_);
  }

  std::string class_name() const override { return "DDIMInverseScheduler"; }

  void set_timesteps(int n) override {
    check_steps(*this, n);
    num_inference_steps_ = n;
    // Ascending: the reverse of DDIM's leading / trailing schedule.
    timesteps_ = spaced_timesteps(o_.spacing, num_train_timesteps_, n, o_.steps_offset, true);
    std::reverse(timesteps_.begin(), timesteps_.end());
    for (double t : timesteps_)
      if (t < 0 || t >= num_train_timesteps_)
        throw UsageError("DDIMInverseScheduler: steps_offset " + std::to_string(o_.steps_offset) +
                             " puts timestep " + std::to_string(static_cast<int64_t>(t)) +
                             " outside the training range",
                         origin_, "lower steps_offset or use another timestep_spacing");
  }

  at::Tensor step(const at::Tensor& model_output, std::size_t step_index, const at::Tensor& sample,
                  at::Generator* /*generator*/) override {
    check_step_index(step_index, "step");
    check_shapes(model_output, sample, class_name());
    // The step goes from the timestep one stride below t up to t.
    const auto prev_t = static_cast<int64_t>(timesteps_[step_index]);
    const int64_t t = std::min<int64_t>(prev_t - num_train_timesteps_ / num_inference_steps_,
                                        num_train_timesteps_ - 1);
    const float alpha_prod_t =
        t >= 0 ? alphas_cumprod_[static_cast<std::size_t>(t)] : o_.edge_alpha_cumprod;
    const float alpha_prod_t_prev = alphas_cumprod_[static_cast<std::size_t>(prev_t)];

    at::Tensor x0, eps;
    predict_x0_eps(prediction_type_, model_output, sample, alpha_prod_t, x0, eps);
    if (o_.clip_sample) x0 = x0.clamp(-o_.clip_sample_range, o_.clip_sample_range);
    at::Tensor direction = eps * static_cast<double>(std::sqrt(1.0f - alpha_prod_t_prev));
    return x0 * static_cast<double>(std::sqrt(alpha_prod_t_prev)) + direction;
  }

 private:
  DdimOptions o_;
};

const std::vector<std::string> kPredictionTypes = {"epsilon", "sample", "v_prediction"};

}  // namespace

std::unique_ptr<Scheduler> make_ddim(const nlohmann::json& config, const std::string& origin) {
  ConfigReader r(config, ddim_defaults(false), "DDIMScheduler", origin);
  auto alphas_cumprod = make_alphas_cumprod(r, false, false);
  const auto pred = read_prediction_type(r, kPredictionTypes);
  return std::make_unique<DDIMScheduler>(r, std::move(alphas_cumprod), pred);
}

std::unique_ptr<Scheduler> make_ddim_inverse(const nlohmann::json& config,
                                             const std::string& origin) {
  ConfigReader r(config, ddim_defaults(true), "DDIMInverseScheduler", origin);
  auto alphas_cumprod = make_alphas_cumprod(r, false, false);
  const auto pred = read_prediction_type(r, kPredictionTypes);
  return std::make_unique<DDIMInverseScheduler>(r, std::move(alphas_cumprod), pred);
}

}  // namespace studio::sched
