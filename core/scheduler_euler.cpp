// Euler (Karras et al. 2022, Algorithm 2 without churn) and Euler ancestral samplers in sigma
// space, as diffusers' EulerDiscreteScheduler / EulerAncestralDiscreteScheduler: float32 sigmas,
// float32 step arithmetic (the sample is upcast, the result cast back to the model output's dtype).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/scheduler_impl.h"

namespace studio::sched {
namespace {

// Shared by both Euler variants: sigma schedule from the training alphas_cumprod, input scaling,
// add_noise in sigma space.
class EulerBase : public Scheduler {
 protected:
  EulerBase(const ConfigReader& r, std::vector<float> alphas_cumprod, PredictionType pred)
      : Scheduler(r.effective(), r.origin()) {
    num_train_timesteps_ = static_cast<int>(alphas_cumprod.size());
    alphas_cumprod_ = std::move(alphas_cumprod);
    prediction_type_ = pred;
    train_sigmas_ = training_sigmas(alphas_cumprod_);
    spacing_ = read_spacing(r, {"linspace", "leading", "trailing"});
    steps_offset_ = r.get_int("steps_offset", 0, num_train_timesteps_);
  }

  void check_steps(int n) const {
    if (n < 1 || n > num_train_timesteps_)
      throw UsageError(
          class_name() + "::set_timesteps: " + std::to_string(n) + " inference steps requested",
          origin_, "use 1.." + std::to_string(num_train_timesteps_));
  }

  // sigmas at (possibly fractional) timesteps by np.interp over the training sigmas (float64).
  std::vector<double> interp_sigmas(const std::vector<double>& timesteps) const {
    std::vector<double> fp(train_sigmas_.begin(), train_sigmas_.end());
    std::vector<double> s;
    for (double t : timesteps) s.push_back(np_interp_index(t, fp));
    return s;
  }

 public:
  double init_noise_sigma() const override {
    // Before set_timesteps diffusers' sigmas are the training ones (+ 0).
    float max_sigma = 0.0f;
    if (sigmas_.empty()) {
      for (float s : train_sigmas_) max_sigma = std::max(max_sigma, s);
    } else {
      for (double s : sigmas_) max_sigma = std::max(max_sigma, static_cast<float>(s));
    }
    if (spacing_ == Spacing::kLinspace || spacing_ == Spacing::kTrailing) return max_sigma;
    return std::sqrt(max_sigma * max_sigma + 1.0f);
  }

  at::Tensor scale_model_input(const at::Tensor& sample, std::size_t step_index) const override {
    check_step_index(step_index, "scale_model_input");
    const auto sigma = static_cast<float>(sigmas_[step_index]);
    return sample / static_cast<double>(std::sqrt(sigma * sigma + 1.0f));
  }

  at::Tensor add_noise(const at::Tensor& original, const at::Tensor& noise,
                       double timestep) const override {
    if (timesteps_.empty())
      throw UsageError(class_name() + "::add_noise called before set_timesteps", origin_,
                       "call set_timesteps(num_inference_steps) first");
    return add_noise_at(original, noise, index_for_timestep(timesteps_, timestep, class_name()));
  }

  at::Tensor add_noise_at(const at::Tensor& original, const at::Tensor& noise,
                          std::size_t step_index) const override {
    check_step_index(step_index, "add_noise_at");
    return original + noise * sigmas_[step_index];
  }

 protected:
  // x0 from the model output at sigma (epsilon / v / sample), float32 sample.
  at::Tensor predict_x0(const at::Tensor& model_output, const at::Tensor& sample,
                        float sigma) const {
    switch (prediction_type_) {
      case PredictionType::kEpsilon:
        return sample - model_output * static_cast<double>(sigma);
      case PredictionType::kVPrediction: {
        const float c_out = -sigma / std::sqrt(sigma * sigma + 1.0f);
        const float c_skip = sigma * sigma + 1.0f;
        return model_output * static_cast<double>(c_out) + sample / static_cast<double>(c_skip);
      }
      case PredictionType::kSample:
        break;
    }
    return model_output;
  }

  std::vector<float> train_sigmas_;  // ascending in t, float32
  Spacing spacing_ = Spacing::kLinspace;
  int steps_offset_ = 0;
};

class EulerDiscreteScheduler final : public EulerBase {
 public:
  EulerDiscreteScheduler(const ConfigReader& r, std::vector<float> alphas_cumprod,
                         PredictionType pred)
      : EulerBase(r, std::move(alphas_cumprod), pred) {
    r.get_choice("interpolation_type", {"linear"});
    use_karras_ = r.get_bool("use_karras_sigmas");
    sigma_min_ = r.get_optional_number("sigma_min");
    sigma_max_ = r.get_optional_number("sigma_max");
    if (sigma_min_ && !(*sigma_min_ > 0))
      r.fail("sigma_min", "sigma_min must be positive", "remove it to use the model's range");
    if (sigma_max_ && !(*sigma_max_ > 0))
      r.fail("sigma_max", "sigma_max must be positive", "remove it to use the model's range");
    continuous_ = r.get_choice("timestep_type", {"discrete", "continuous"}) == "continuous";
    final_sigma_min_ = r.get_choice("final_sigmas_type", {"zero", "sigma_min"}) == "sigma_min";
  }

  std::string class_name() const override { return "EulerDiscreteScheduler"; }

  void set_timesteps(int n) override {
    check_steps(n);
    num_inference_steps_ = n;
    std::vector<double> t =
        spaced_timesteps(spacing_, num_train_timesteps_, n, steps_offset_, false);
    std::vector<double> s = interp_sigmas(t);
    if (use_karras_) {
      std::vector<float> log_sigmas;
      for (float v : train_sigmas_) log_sigmas.push_back(static_cast<float>(std::log(double(v))));
      const double lo = sigma_min_ ? *sigma_min_ : s.back();
      const double hi = sigma_max_ ? *sigma_max_ : s.front();
      s = karras_sigmas(lo, hi, n);
      t.clear();
      for (double v : s) t.push_back(sigma_to_t(v, log_sigmas));
    }
    const float a0 = alphas_cumprod_.front();
    const float sigma_last = final_sigma_min_ ? std::sqrt((1.0f - a0) / a0) : 0.0f;
    sigmas_.clear();
    for (double v : s) sigmas_.push_back(static_cast<float>(v));
    sigmas_.push_back(sigma_last);
    timesteps_.clear();
    if (continuous_ && prediction_type_ == PredictionType::kVPrediction) {
      for (std::size_t i = 0; i + 1 < sigmas_.size(); ++i)
        timesteps_.push_back(0.25f * torch_log(static_cast<float>(sigmas_[i])));
    } else {
      for (double v : t) timesteps_.push_back(static_cast<float>(v));
    }
  }

  at::Tensor step(const at::Tensor& model_output, std::size_t step_index, const at::Tensor& sample,
                  at::Generator* generator) override {
    check_step_index(step_index, "step");
    check_shapes(model_output, sample, class_name());
    const at::Tensor x = sample.to(at::kFloat);
    const auto sigma = static_cast<float>(sigmas_[step_index]);
    // diffusers draws churn noise every step (unused with s_churn = 0): keep a caller's generator
    // in step with it.
    if (generator != nullptr)
      (void)draw_noise(model_output.sizes(), model_output.scalar_type(), model_output.device(),
                       generator);
    const float sigma_hat = sigma * (0.0f + 1.0f);
    at::Tensor x0 = prediction_type_ == PredictionType::kEpsilon
                        ? x - model_output * static_cast<double>(sigma_hat)
                        : predict_x0(model_output, x, sigma);
    at::Tensor derivative = (x - x0) / static_cast<double>(sigma_hat);
    const float dt = static_cast<float>(sigmas_[step_index + 1]) - sigma_hat;
    at::Tensor prev = x + derivative * static_cast<double>(dt);
    return prev.to(model_output.scalar_type());
  }

 private:
  bool use_karras_ = false;
  std::optional<double> sigma_min_, sigma_max_;
  bool continuous_ = false;
  bool final_sigma_min_ = false;
};

class EulerAncestralDiscreteScheduler final : public EulerBase {
 public:
  EulerAncestralDiscreteScheduler(const ConfigReader& r, std::vector<float> alphas_cumprod,
                                  PredictionType pred)
      : EulerBase(r, std::move(alphas_cumprod), pred) {}

  std::string class_name() const override { return "EulerAncestralDiscreteScheduler"; }

  void set_timesteps(int n) override {
    check_steps(n);
    num_inference_steps_ = n;
    const auto t = spaced_timesteps(spacing_, num_train_timesteps_, n, steps_offset_, false);
    const auto s = interp_sigmas(t);
    sigmas_.clear();
    for (double v : s) sigmas_.push_back(static_cast<float>(v));
    sigmas_.push_back(0.0);
    timesteps_ = t;
  }

  at::Tensor step(const at::Tensor& model_output, std::size_t step_index, const at::Tensor& sample,
                  at::Generator* generator) override {
    check_step_index(step_index, "step");
    check_shapes(model_output, sample, class_name());
    const auto sigma = static_cast<float>(sigmas_[step_index]);
    const at::Tensor x = sample.to(at::kFloat);
    at::Tensor x0 = predict_x0(model_output, x, sigma);
    const float sigma_from = sigma;
    const auto sigma_to = static_cast<float>(sigmas_[step_index + 1]);
    const float sigma_up =
        std::sqrt(sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) /
                  (sigma_from * sigma_from));
    const float sigma_down = std::sqrt(sigma_to * sigma_to - sigma_up * sigma_up);
    at::Tensor derivative = (x - x0) / static_cast<double>(sigma);
    const float dt = sigma_down - sigma;
    at::Tensor prev = x + derivative * static_cast<double>(dt);
    at::Tensor noise = draw_noise(model_output.sizes(), model_output.scalar_type(),
                                  model_output.device(), generator);
    prev = prev + noise * static_cast<double>(sigma_up);
    return prev.to(model_output.scalar_type());
  }
};

nlohmann::json euler_common_defaults() {
  auto d = common_defaults();
  d["timestep_spacing"] = "linspace";
  return d;
}

}  // namespace

std::unique_ptr<Scheduler> make_euler(const nlohmann::json& config, const std::string& origin) {
  auto d = euler_common_defaults();
  d["interpolation_type"] = "linear";
  d["use_karras_sigmas"] = false;
  d["sigma_min"] = nullptr;
  d["sigma_max"] = nullptr;
  d["timestep_type"] = "discrete";
  d["final_sigmas_type"] = "zero";
  ConfigReader r(config, std::move(d), "EulerDiscreteScheduler", origin);
  auto alphas_cumprod = make_alphas_cumprod(r, false, /*pin_terminal=*/true);
  const auto pred =
      read_prediction_type(r, {"epsilon", "v_prediction", "sample", "original_sample"});
  return std::make_unique<EulerDiscreteScheduler>(r, std::move(alphas_cumprod), pred);
}

std::unique_ptr<Scheduler> make_euler_ancestral(const nlohmann::json& config,
                                                const std::string& origin) {
  ConfigReader r(config, euler_common_defaults(), "EulerAncestralDiscreteScheduler", origin);
  auto alphas_cumprod = make_alphas_cumprod(r, false, /*pin_terminal=*/true);
  // diffusers raises NotImplementedError for "sample" at the first step; refuse it up front.
  const auto pred = read_prediction_type(r, {"epsilon", "v_prediction"});
  return std::make_unique<EulerAncestralDiscreteScheduler>(r, std::move(alphas_cumprod), pred);
}

}  // namespace studio::sched
