// DPM-Solver / DPM-Solver++ multistep (Lu et al. 2022), orders 1-3, midpoint/heun, SDE variants,
// Karras or Lu lambda sigmas, as diffusers' DPMSolverMultistepScheduler. Keeps the last model
// outputs (converted to x0, or eps for dpmsolver) as multistep history.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include "core/error.h"
#include "core/scheduler_impl.h"

namespace studio::sched {
namespace {

enum class Algorithm { kDpmSolverPP, kDpmSolver, kSdeDpmSolverPP, kSdeDpmSolver };

struct AlphaSigma {
  float alpha;
  float sigma;
  float lambda;  // log(alpha) - log(sigma)
};

// diffusers' _sigma_to_alpha_sigma_t in float32, plus the log-SNR half lambda.
AlphaSigma alpha_sigma(double sigma_in) {
  const auto sigma = static_cast<float>(sigma_in);
  AlphaSigma r{};
  r.alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  r.sigma = sigma * r.alpha;
  r.lambda = torch_log(r.alpha) - torch_log(r.sigma);
  return r;
}

double parse_lambda_min_clipped(const ConfigReader& r) {
  const auto& v = r.raw("lambda_min_clipped");
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "-inf" || s == "-Infinity" || s == "-infinity")
      return -std::numeric_limits<double>::infinity();
    if (s == "inf" || s == "Infinity" || s == "infinity")
      return std::numeric_limits<double>::infinity();
  }
  r.fail("lambda_min_clipped", "lambda_min_clipped must be a number or \"-inf\"",
         "diffusers' default is -inf; cosine schedules use -5.1");
}

class DPMSolverMultistepScheduler final : public Scheduler {
 public:
  DPMSolverMultistepScheduler(const ConfigReader& r, std::vector<float> alphas_cumprod,
                              PredictionType pred, int order, Algorithm algorithm)
      : Scheduler(r.effective(), r.origin()), order_(order), algorithm_(algorithm) {
    num_train_timesteps_ = static_cast<int>(alphas_cumprod.size());
    alphas_cumprod_ = std::move(alphas_cumprod);
    prediction_type_ = pred;
    train_sigmas_ = training_sigmas(alphas_cumprod_);
    heun_ = r.get_choice("solver_type", {"midpoint", "heun"}) == "heun";
    lower_order_final_ = r.get_bool("lower_order_final");
    euler_at_final_ = r.get_bool("euler_at_final");
    use_karras_ = r.get_bool("use_karras_sigmas");
    use_lu_lambdas_ = r.get_bool("use_lu_lambdas");
    final_sigma_min_ = r.get_choice("final_sigmas_type", {"zero", "sigma_min"}) == "sigma_min";
    lambda_min_clipped_ = parse_lambda_min_clipped(r);
    const auto& vt = r.raw("variance_type");
    if (!vt.is_null() && !vt.is_string())
      r.fail("variance_type", "variance_type must be a string or null",
             "use null, \"learned\" or \"learned_range\"");
    learned_variance_ = vt.is_string() && (vt.get<std::string>() == "learned" ||
                                           vt.get<std::string>() == "learned_range");
    spacing_ = read_spacing(r, {"linspace", "leading", "trailing"});
    steps_offset_ = r.get_int("steps_offset", 0, num_train_timesteps_);
    thresholding_ = Thresholding::read(r);
  }

  std::string class_name() const override { return "DPMSolverMultistepScheduler"; }

  void set_timesteps(int n) override {
    if (n < 1 || n > num_train_timesteps_)
      throw UsageError("DPMSolverMultistepScheduler::set_timesteps: " + std::to_string(n) +
                           " inference steps requested",
                       origin_, "use 1.." + std::to_string(num_train_timesteps_));
    const int T = num_train_timesteps_;
    // Clip the schedule where lambda(t) falls below lambda_min_clipped (searchsorted, left).
    int last_timestep = T;
    if (lambda_min_clipped_ != -std::numeric_limits<double>::infinity()) {
      int clipped = 0;
      for (int i = T - 1; i >= 0; --i) {  // flipped lambda_t is ascending
        const float a = alphas_cumprod_[static_cast<std::size_t>(i)];
        const float lambda = torch_log(std::sqrt(a)) - torch_log(std::sqrt(1.0f - a));
        if (static_cast<double>(lambda) >= lambda_min_clipped_) break;
        ++clipped;
      }
      last_timestep = T - clipped;
      if (last_timestep < 1)
        throw UsageError("DPMSolverMultistepScheduler: lambda_min_clipped " +
                             std::to_string(lambda_min_clipped_) + " clips every timestep",
                         origin_, "lower lambda_min_clipped");
    }
    std::vector<double> t;
    switch (spacing_) {
      case Spacing::kLinspace: {
        auto v = np_linspace(0.0, last_timestep - 1, n + 1);
        for (int i = n; i >= 1; --i) t.push_back(np_round(v[static_cast<std::size_t>(i)]));
        break;
      }
      case Spacing::kLeading: {
        const int64_t ratio = last_timestep / (n + 1);
        for (int i = n; i >= 1; --i) t.push_back(static_cast<double>(i * ratio + steps_offset_));
        break;
      }
      case Spacing::kTrailing: {
        const double ratio = static_cast<double>(T) / n;
        for (double v : np_arange_down(last_timestep, ratio)) t.push_back(np_round(v) - 1.0);
        break;
      }
    }
    if (t.empty())
      throw UsageError(
          "DPMSolverMultistepScheduler: empty schedule for " + std::to_string(n) + " steps",
          origin_, "use more steps or another timestep_spacing");

    std::vector<float> log_sigmas;
    for (float v : train_sigmas_) log_sigmas.push_back(static_cast<float>(std::log(double(v))));
    std::vector<double> s;
    if (use_karras_) {
      // in_sigmas = flipped training sigmas: sigma_max = sigma(T-1), sigma_min = sigma(0).
      s = karras_sigmas(train_sigmas_.front(), train_sigmas_.back(), n);
      t.clear();
      for (double v : s) t.push_back(np_round(sigma_to_t(v, log_sigmas)));
    } else if (use_lu_lambdas_) {
      const double lambda_min = log_sigmas.front();
      const double lambda_max = log_sigmas.back();
      const auto ramp = np_linspace(0.0, 1.0, n);
      t.clear();
      for (double r : ramp) {
        const double sigma = std::exp(std::pow(lambda_max + r * (lambda_min - lambda_max), 1.0));
        s.push_back(sigma);
        t.push_back(np_round(sigma_to_t(sigma, log_sigmas)));
      }
    } else {
      std::vector<double> fp(train_sigmas_.begin(), train_sigmas_.end());
      for (double v : t) {
        if (v < 0 || v >= T)
          throw UsageError("DPMSolverMultistepScheduler: steps_offset " +
                               std::to_string(steps_offset_) + " puts timestep " +
                               std::to_string(static_cast<int64_t>(v)) +
                               " outside the training range",
                           origin_, "lower steps_offset or use another timestep_spacing");
        s.push_back(np_interp_index(v, fp));
      }
    }
    const float a0 = alphas_cumprod_.front();
    const float sigma_last = final_sigma_min_ ? std::sqrt((1.0f - a0) / a0) : 0.0f;
    sigmas_.clear();
    for (double v : s) sigmas_.push_back(static_cast<float>(v));
    sigmas_.push_back(sigma_last);
    timesteps_ = t;
    num_inference_steps_ = static_cast<int>(t.size());
    reset();
  }

  void reset() override {
    history_.clear();
    lower_order_nums_ = 0;
    last_step_index_ = -1;
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
    const auto sigma = static_cast<float>(sigmas_[step_index]);
    const float alpha_t = 1.0f / std::sqrt(sigma * sigma + 1.0f);
    const float sigma_t = sigma * alpha_t;
    return original * static_cast<double>(alpha_t) + noise * static_cast<double>(sigma_t);
  }

  at::Tensor step(const at::Tensor& model_output, std::size_t step_index, const at::Tensor& sample,
                  at::Generator* generator) override {
    check_step_index(step_index, "step");
    const auto idx = static_cast<int64_t>(step_index);
    if (idx == 0) reset();
    if (last_step_index_ >= 0 && idx != last_step_index_ + 1)
      throw UsageError("DPMSolverMultistepScheduler::step: step " + std::to_string(idx) +
                           " after step " + std::to_string(last_step_index_),
                       origin_,
                       "multistep history needs consecutive steps; call reset() to restart");
    if (!model_output.defined() || !sample.defined() || model_output.dim() != sample.dim() ||
        model_output.size(0) != sample.size(0))
      throw UsageError("DPMSolverMultistepScheduler::step: model_output and sample shapes differ",
                       origin_, "pass the model's prediction for this sample");

    const auto len = static_cast<int64_t>(timesteps_.size());
    const bool final_zero = !final_sigma_min_;
    const bool lower_order_final =
        idx == len - 1 && (euler_at_final_ || (lower_order_final_ && len < 15) || final_zero);
    const bool lower_order_second = idx == len - 2 && lower_order_final_ && len < 15;

    at::Tensor converted = convert_model_output(model_output, step_index, sample);
    history_.push_back(converted);
    while (static_cast<int>(history_.size()) > order_) history_.pop_front();

    const at::Tensor x = sample.to(at::kFloat);
    at::Tensor noise;
    if (algorithm_ == Algorithm::kSdeDpmSolverPP || algorithm_ == Algorithm::kSdeDpmSolver)
      noise = draw_noise(converted.sizes(), at::kFloat, converted.device(), generator);

    at::Tensor prev;
    if (order_ == 1 || lower_order_nums_ < 1 || lower_order_final)
      prev = first_order(converted, step_index, x, noise);
    else if (order_ == 2 || lower_order_nums_ < 2 || lower_order_second)
      prev = second_order(step_index, x, noise);
    else
      prev = third_order(step_index, x);
    if (lower_order_nums_ < order_) ++lower_order_nums_;
    last_step_index_ = idx;
    return prev.to(converted.scalar_type());
  }

 private:
  bool plus_plus() const {
    return algorithm_ == Algorithm::kDpmSolverPP || algorithm_ == Algorithm::kSdeDpmSolverPP;
  }

  // x0 prediction (DPM-Solver++) or eps prediction (DPM-Solver) from the raw model output.
  at::Tensor convert_model_output(const at::Tensor& model_output_in, std::size_t i,
                                  const at::Tensor& sample) const {
    at::Tensor model_output = model_output_in;
    if (prediction_type_ == PredictionType::kEpsilon && learned_variance_)
      model_output = model_output.slice(1, 0, 3);  // diffusers keeps the first 3 channels
    if (model_output.sizes() != sample.sizes())
      throw UsageError(
          "DPMSolverMultistepScheduler::step: model_output and sample must have the "
          "same shape",
          origin_, "pass the model's prediction for this sample");
    const AlphaSigma as = alpha_sigma(sigmas_[i]);
    const double a = as.alpha, s = as.sigma;
    if (plus_plus()) {
      at::Tensor x0;
      switch (prediction_type_) {
        case PredictionType::kEpsilon:
          x0 = (sample - model_output * s) / a;
          break;
        case PredictionType::kSample:
          x0 = model_output;
          break;
        case PredictionType::kVPrediction:
          x0 = sample * a - model_output * s;
          break;
      }
      x0 = thresholding_.apply(x0);
      return x0;
    }
    at::Tensor eps;
    switch (prediction_type_) {
      case PredictionType::kEpsilon:
        eps = model_output;
        break;
      case PredictionType::kSample:
        eps = (sample - model_output * a) / s;
        break;
      case PredictionType::kVPrediction:
        eps = model_output * a + sample * s;
        break;
    }
    if (thresholding_.enabled) {
      const at::Tensor x0 = thresholding_.apply((sample - eps * s) / a);
      eps = (sample - x0 * a) / s;
    }
    return eps;
  }

  at::Tensor first_order(const at::Tensor& m, std::size_t i, const at::Tensor& x,
                         const at::Tensor& noise) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]);
    const AlphaSigma s = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    switch (algorithm_) {
      case Algorithm::kDpmSolverPP:
        return x * double(t.sigma / s.sigma) - m * double(t.alpha * (torch_exp(-h) - 1.0f));
      case Algorithm::kDpmSolver:
        return x * double(t.alpha / s.alpha) - m * double(t.sigma * (torch_exp(h) - 1.0f));
      case Algorithm::kSdeDpmSolverPP:
        return x * double(t.sigma / s.sigma * torch_exp(-h)) +
               m * double(t.alpha * (1.0f - torch_exp(-2.0f * h))) +
               noise * double(t.sigma * std::sqrt(1.0f - torch_exp(-2.0f * h)));
      case Algorithm::kSdeDpmSolver:
        return x * double(t.alpha / s.alpha) -
               m * double(2.0f * (t.sigma * (torch_exp(h) - 1.0f))) +
               noise * double(t.sigma * std::sqrt(torch_exp(2.0f * h) - 1.0f));
    }
    return {};
  }

  at::Tensor second_order(std::size_t i, const at::Tensor& x, const at::Tensor& noise) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]);
    const AlphaSigma s0 = alpha_sigma(sigmas_[i]);
    const AlphaSigma s1 = alpha_sigma(sigmas_[i - 1]);
    const at::Tensor& m0 = history_[history_.size() - 1];
    const at::Tensor& m1 = history_[history_.size() - 2];
    const float h = t.lambda - s0.lambda;
    const float h_0 = s0.lambda - s1.lambda;
    const float r0 = h_0 / h;
    const at::Tensor& d0 = m0;
    const at::Tensor d1 = (m0 - m1) * double(1.0f / r0);
    switch (algorithm_) {
      case Algorithm::kDpmSolverPP: {
        const float c = t.alpha * (torch_exp(-h) - 1.0f);
        if (!heun_) return x * double(t.sigma / s0.sigma) - d0 * double(c) - d1 * double(0.5f * c);
        return x * double(t.sigma / s0.sigma) - d0 * double(c) +
               d1 * double(t.alpha * ((torch_exp(-h) - 1.0f) / h + 1.0f));
      }
      case Algorithm::kDpmSolver: {
        const float c = t.sigma * (torch_exp(h) - 1.0f);
        if (!heun_) return x * double(t.alpha / s0.alpha) - d0 * double(c) - d1 * double(0.5f * c);
        return x * double(t.alpha / s0.alpha) - d0 * double(c) -
               d1 * double(t.sigma * ((torch_exp(h) - 1.0f) / h - 1.0f));
      }
      case Algorithm::kSdeDpmSolverPP: {
        const float c = t.alpha * (1.0f - torch_exp(-2.0f * h));
        const double noise_c = t.sigma * std::sqrt(1.0f - torch_exp(-2.0f * h));
        const double d1_c =
            heun_ ? double(t.alpha * ((1.0f - torch_exp(-2.0f * h)) / (-2.0f * h) + 1.0f))
                  : double(0.5f * c);
        return x * double(t.sigma / s0.sigma * torch_exp(-h)) + d0 * double(c) + d1 * d1_c +
               noise * noise_c;
      }
      case Algorithm::kSdeDpmSolver: {
        const float c = t.sigma * (torch_exp(h) - 1.0f);
        const double noise_c = t.sigma * std::sqrt(torch_exp(2.0f * h) - 1.0f);
        const double d1_c =
            heun_ ? double(2.0f * (t.sigma * ((torch_exp(h) - 1.0f) / h - 1.0f))) : double(c);
        return x * double(t.alpha / s0.alpha) - d0 * double(2.0f * c) - d1 * d1_c + noise * noise_c;
      }
    }
    return {};
  }

  at::Tensor third_order(std::size_t i, const at::Tensor& x) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]);
    const AlphaSigma s0 = alpha_sigma(sigmas_[i]);
    const AlphaSigma s1 = alpha_sigma(sigmas_[i - 1]);
    const AlphaSigma s2 = alpha_sigma(sigmas_[i - 2]);
    const at::Tensor& m0 = history_[history_.size() - 1];
    const at::Tensor& m1 = history_[history_.size() - 2];
    const at::Tensor& m2 = history_[history_.size() - 3];
    const float h = t.lambda - s0.lambda;
    const float h_0 = s0.lambda - s1.lambda;
    const float h_1 = s1.lambda - s2.lambda;
    const float r0 = h_0 / h;
    const float r1 = h_1 / h;
    const at::Tensor& d0 = m0;
    const at::Tensor d1_0 = (m0 - m1) * double(1.0f / r0);
    const at::Tensor d1_1 = (m1 - m2) * double(1.0f / r1);
    const at::Tensor d1 = d1_0 + (d1_0 - d1_1) * double(r0 / (r0 + r1));
    const at::Tensor d2 = (d1_0 - d1_1) * double(1.0f / (r0 + r1));
    if (algorithm_ == Algorithm::kDpmSolverPP) {
      const float e = torch_exp(-h) - 1.0f;
      return x * double(t.sigma / s0.sigma) - d0 * double(t.alpha * e) +
             d1 * double(t.alpha * (e / h + 1.0f)) -
             d2 * double(t.alpha * ((torch_exp(-h) - 1.0f + h) / (h * h) - 0.5f));
    }
    const float e = torch_exp(h) - 1.0f;
    return x * double(t.alpha / s0.alpha) - d0 * double(t.sigma * e) -
           d1 * double(t.sigma * (e / h - 1.0f)) -
           d2 * double(t.sigma * ((torch_exp(h) - 1.0f - h) / (h * h) - 0.5f));
  }

  int order_ = 2;
  Algorithm algorithm_ = Algorithm::kDpmSolverPP;
  bool heun_ = false;
  bool lower_order_final_ = true;
  bool euler_at_final_ = false;
  bool use_karras_ = false;
  bool use_lu_lambdas_ = false;
  bool final_sigma_min_ = false;
  double lambda_min_clipped_ = -std::numeric_limits<double>::infinity();
  bool learned_variance_ = false;
  Spacing spacing_ = Spacing::kLinspace;
  int steps_offset_ = 0;
  Thresholding thresholding_;
  std::vector<float> train_sigmas_;

  std::deque<at::Tensor> history_;
  int lower_order_nums_ = 0;
  int64_t last_step_index_ = -1;
};

}  // namespace

std::unique_ptr<Scheduler> make_dpm_solver(const nlohmann::json& config,
                                           const std::string& origin) {
  auto d = common_defaults();
  d["solver_order"] = 2;
  d["thresholding"] = false;
  d["dynamic_thresholding_ratio"] = 0.995;
  d["sample_max_value"] = 1.0;
  d["algorithm_type"] = "dpmsolver++";
  d["solver_type"] = "midpoint";
  d["lower_order_final"] = true;
  d["euler_at_final"] = false;
  d["use_karras_sigmas"] = false;
  d["use_lu_lambdas"] = false;
  d["final_sigmas_type"] = "zero";
  d["lambda_min_clipped"] = "-inf";
  d["variance_type"] = nullptr;
  d["timestep_spacing"] = "linspace";
  ConfigReader r(config, d, "DPMSolverMultistepScheduler", origin);

  // diffusers maps configs of sibling solvers onto this one (register_to_config in __init__).
  auto algorithm_name = r.get_choice(
      "algorithm_type", {"dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver", "deis"});
  if (algorithm_name == "deis") {
    algorithm_name = "dpmsolver++";
    r.set("algorithm_type", algorithm_name);
  }
  const auto solver_type =
      r.get_choice("solver_type", {"midpoint", "heun", "logrho", "bh1", "bh2"});
  if (solver_type != "midpoint" && solver_type != "heun") r.set("solver_type", "midpoint");
  const ConfigReader normalized(r.effective(), d, "DPMSolverMultistepScheduler", origin);

  const Algorithm algorithm = algorithm_name == "dpmsolver++"       ? Algorithm::kDpmSolverPP
                              : algorithm_name == "dpmsolver"       ? Algorithm::kDpmSolver
                              : algorithm_name == "sde-dpmsolver++" ? Algorithm::kSdeDpmSolverPP
                                                                    : Algorithm::kSdeDpmSolver;
  const int order = normalized.get_int("solver_order", 1, 3);
  if (order == 3 &&
      (algorithm == Algorithm::kSdeDpmSolverPP || algorithm == Algorithm::kSdeDpmSolver))
    normalized.fail("solver_order", "solver_order 3 is not available for " + algorithm_name,
                    "use solver_order 1 or 2 with SDE variants");
  const auto final_type = normalized.get_choice("final_sigmas_type", {"zero", "sigma_min"});
  if (final_type == "zero" && algorithm != Algorithm::kDpmSolverPP &&
      algorithm != Algorithm::kSdeDpmSolverPP)
    normalized.fail(
        "final_sigmas_type",
        "final_sigmas_type \"zero\" is not supported with algorithm_type " + algorithm_name,
        "set final_sigmas_type to \"sigma_min\", or use dpmsolver++");
  auto alphas_cumprod = make_alphas_cumprod(normalized, false, /*pin_terminal=*/true);
  const auto pred = read_prediction_type(normalized, {"epsilon", "sample", "v_prediction"});
  return std::make_unique<DPMSolverMultistepScheduler>(normalized, std::move(alphas_cumprod), pred,
                                                       order, algorithm);
}

}  // namespace studio::sched
