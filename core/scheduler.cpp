// Scheduler base class, config reading, the shared schedule math (float32 betas/alphas_cumprod
// through libtorch as diffusers does, NumPy-exact spacing/interpolation) and the factory.
#include "core/scheduler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/scheduler_impl.h"

namespace studio {

// ---------------------------------------------------------------------------------------------
// Scheduler base

Scheduler::Scheduler(const nlohmann::json& effective_config, std::string origin)
    : origin_(std::move(origin)), config_(std::make_unique<nlohmann::json>(effective_config)) {}

Scheduler::~Scheduler() = default;

double Scheduler::init_noise_sigma() const { return 1.0; }

at::Tensor Scheduler::scale_model_input(const at::Tensor& sample, std::size_t step_index) const {
  check_step_index(step_index, "scale_model_input");
  return sample;
}

void Scheduler::check_step_index(std::size_t step_index, const char* what) const {
  if (timesteps_.empty())
    throw UsageError(class_name() + "::" + what + " called before set_timesteps", origin_,
                     "call set_timesteps(num_inference_steps) first");
  if (step_index >= timesteps_.size())
    throw UsageError(class_name() + "::" + what + ": step index " + std::to_string(step_index) +
                         " is out of range",
                     origin_,
                     "the schedule has " + std::to_string(timesteps_.size()) + " steps (0.." +
                         std::to_string(timesteps_.size() - 1) + ")");
}

at::Tensor Scheduler::add_noise(const at::Tensor& original, const at::Tensor& noise,
                                double timestep) const {
  // diffusers (DDPM/DDIM): alphas_cumprod cast to the sample dtype, sqrt(a) x0 + sqrt(1 - a) eps.
  const double t_round = std::nearbyint(timestep);
  if (t_round != timestep || t_round < 0 || t_round >= static_cast<double>(alphas_cumprod_.size()))
    throw UsageError(class_name() + "::add_noise: timestep " + std::to_string(timestep) +
                         " is not a training timestep",
                     origin_,
                     "use an integer in [0, " + std::to_string(alphas_cumprod_.size() - 1) + "]");
  const float a = alphas_cumprod_[static_cast<std::size_t>(t_round)];
  if (original.scalar_type() == at::kDouble) {
    const double ad = a;
    return original * std::sqrt(ad) + noise * std::sqrt(1.0 - ad);
  }
  const float sqrt_a = std::sqrt(a);
  const float sqrt_one_minus_a = std::sqrt(1.0f - a);
  return original * static_cast<double>(sqrt_a) + noise * static_cast<double>(sqrt_one_minus_a);
}

at::Tensor Scheduler::add_noise_at(const at::Tensor& original, const at::Tensor& noise,
                                   std::size_t step_index) const {
  check_step_index(step_index, "add_noise_at");
  return add_noise(original, noise, timesteps_[step_index]);
}

std::size_t Scheduler::begin_index_for_strength(double strength) const {
  if (num_inference_steps_ <= 0)
    throw UsageError(class_name() + "::begin_index_for_strength called before set_timesteps",
                     origin_, "call set_timesteps(num_inference_steps) first");
  if (!(strength >= 0.0 && strength <= 1.0))
    throw UsageError("img2img strength " + std::to_string(strength) + " is outside [0, 1]", origin_,
                     "use 0 (keep the input) .. 1 (ignore it)");
  // diffusers: init_timestep = min(int(n * strength), n); t_start = max(n - init_timestep, 0);
  // every scheduler here has order 1.
  const int n = num_inference_steps_;
  const int init_timestep = std::min(static_cast<int>(n * strength), n);
  const int t_start = std::max(n - init_timestep, 0);
  return static_cast<std::size_t>(std::min<std::size_t>(t_start, timesteps_.size()));
}

void Scheduler::reset() {}

void Scheduler::set_eta(double eta) {
  if (eta != 0.0)
    throw UsageError(class_name() + " has no eta parameter (got eta " + std::to_string(eta) + ")",
                     origin_, "eta applies to DDIMScheduler only; use eta 0 here");
}

namespace sched {

// ---------------------------------------------------------------------------------------------
// ConfigReader

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string short_dump(const nlohmann::json& j) {
  std::string s = j.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace

ConfigReader::ConfigReader(const nlohmann::json& user, nlohmann::json defaults,
                           std::string class_name, std::string origin)
    : defaults_(std::move(defaults)),
      class_name_(std::move(class_name)),
      origin_(std::move(origin)) {
  if (!user.is_object())
    throw ConfigError("a scheduler config must be a JSON object, got " + short_dump(user), origin_,
                      "pass the contents of a diffusers scheduler_config.json");
  user_ = user;
  effective_ = defaults_;
  for (auto it = user_.begin(); it != user_.end(); ++it) effective_[it.key()] = it.value();
  effective_["_class_name"] = class_name_;
}

const nlohmann::json& ConfigReader::raw(const std::string& key) const {
  auto it = user_.find(key);
  if (it != user_.end() && !it->is_null()) return *it;
  auto d = defaults_.find(key);
  if (d == defaults_.end())
    throw std::logic_error("scheduler config key without a default: " + key);
  return *d;
}

void ConfigReader::fail(const std::string& key, const std::string& what,
                        const std::string& hint) const {
  throw ConfigError(what, origin_ + ": /" + key, hint);
}

int ConfigReader::get_int(const std::string& key, int min_value, int max_value) const {
  const auto& v = raw(key);
  double d = 0.0;
  if (v.is_number_integer() || v.is_number_unsigned()) {
    d = v.get<double>();
  } else if (v.is_number_float() && std::nearbyint(v.get<double>()) == v.get<double>()) {
    d = v.get<double>();
  } else {
    fail(
        key, key + " must be an integer for " + class_name_ + ", got " + short_dump(v),
        "use an integer in [" + std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
  }
  if (d < min_value || d > max_value)
    fail(
        key, key + " = " + short_dump(v) + " is out of range for " + class_name_,
        "use an integer in [" + std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
  return static_cast<int>(d);
}

double ConfigReader::get_number(const std::string& key) const {
  const auto& v = raw(key);
  if (!v.is_number())
    fail(key, key + " must be a number for " + class_name_ + ", got " + short_dump(v),
         "write a JSON number");
  const double d = v.get<double>();
  if (!std::isfinite(d))
    fail(key, key + " must be finite for " + class_name_, "write a finite JSON number");
  return d;
}

std::optional<double> ConfigReader::get_optional_number(const std::string& key) const {
  if (is_null(key)) return std::nullopt;
  return get_number(key);
}

bool ConfigReader::get_bool(const std::string& key) const {
  const auto& v = raw(key);
  if (!v.is_boolean())
    fail(key, key + " must be true or false for " + class_name_ + ", got " + short_dump(v),
         "write true or false");
  return v.get<bool>();
}

std::string ConfigReader::get_choice(const std::string& key,
                                     const std::vector<std::string>& accepted) const {
  const auto& v = raw(key);
  if (!v.is_string())
    fail(key, key + " must be a string for " + class_name_ + ", got " + short_dump(v),
         "accepted values: " + join(accepted));
  const auto s = v.get<std::string>();
  if (std::find(accepted.begin(), accepted.end(), s) == accepted.end())
    fail(key, class_name_ + " does not support " + key + " \"" + s + "\"",
         "accepted values: " + join(accepted));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Shared config pieces

nlohmann::json common_defaults() {
  return nlohmann::json{{"num_train_timesteps", 1000},
                        {"beta_start", 0.0001},
                        {"beta_end", 0.02},
                        {"beta_schedule", "linear"},
                        {"trained_betas", nullptr},
                        {"prediction_type", "epsilon"},
                        {"steps_offset", 0},
                        {"rescale_betas_zero_snr", false}};
}

Spacing read_spacing(const ConfigReader& r, const std::vector<std::string>& accepted) {
  const auto s = r.get_choice("timestep_spacing", accepted);
  if (s == "leading") return Spacing::kLeading;
  if (s == "trailing") return Spacing::kTrailing;
  return Spacing::kLinspace;
}

PredictionType read_prediction_type(const ConfigReader& r,
                                    const std::vector<std::string>& accepted) {
  const auto s = r.get_choice("prediction_type", accepted);
  if (s == "v_prediction") return PredictionType::kVPrediction;
  if (s == "sample" || s == "original_sample") return PredictionType::kSample;
  return PredictionType::kEpsilon;
}

namespace {

// diffusers' betas_for_alpha_bar (cosine, max_beta 0.999), float64 math then float32.
at::Tensor squaredcos_cap_v2_betas(int n) {
  const double pi = 3.141592653589793;
  auto alpha_bar = [pi](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * pi / 2);
    return c * c;
  };
  std::vector<float> betas(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const double t1 = static_cast<double>(i) / n;
    const double t2 = static_cast<double>(i + 1) / n;
    betas[static_cast<std::size_t>(i)] =
        static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return at::tensor(betas, at::TensorOptions().dtype(at::kFloat));
}

// diffusers' rescale_zero_terminal_snr (Lin et al. 2023, Algorithm 1), same float32 ops.
at::Tensor rescale_zero_terminal_snr(const at::Tensor& betas) {
  at::Tensor alphas = 1.0 - betas;
  at::Tensor alphas_cumprod = at::cumprod(alphas, 0);
  at::Tensor alphas_bar_sqrt = alphas_cumprod.sqrt();
  at::Tensor sqrt_0 = alphas_bar_sqrt[0].clone();
  at::Tensor sqrt_T = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt -= sqrt_T;
  alphas_bar_sqrt *= sqrt_0 / (sqrt_0 - sqrt_T);
  at::Tensor alphas_bar = alphas_bar_sqrt.pow(2);
  const int64_t len = alphas_bar.size(0);
  at::Tensor ratio = alphas_bar.slice(0, 1, len) / alphas_bar.slice(0, 0, len - 1);
  at::Tensor new_alphas = at::cat({alphas_bar.slice(0, 0, 1), ratio});
  return 1 - new_alphas;
}

}  // namespace

std::vector<float> make_alphas_cumprod(const ConfigReader& r, bool allow_sigmoid,
                                       bool pin_terminal) {
  const int num_train = r.get_int("num_train_timesteps", 2, 1 << 20);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor betas;
  if (!r.is_null("trained_betas")) {
    const auto& tb = r.raw("trained_betas");
    if (!tb.is_array())
      r.fail("trained_betas", "trained_betas must be a list of numbers or null",
             "remove the key to use beta_schedule");
    std::vector<float> values;
    for (const auto& b : tb) {
      if (!b.is_number())
        r.fail("trained_betas", "trained_betas holds a non-number: " + short_dump(b),
               "write a list of numbers");
      const double d = b.get<double>();
      if (!(d > 0.0 && d < 1.0))
        r.fail("trained_betas", "trained_betas values must lie in (0, 1), got " + short_dump(b),
               "write betas, not alphas");
      values.push_back(static_cast<float>(d));
    }
    if (static_cast<int>(values.size()) != num_train)
      r.fail("trained_betas",
             "trained_betas has " + std::to_string(values.size()) +
                 " values but num_train_timesteps is " + std::to_string(num_train),
             "make them agree");
    betas = at::tensor(values, f32);
  } else {
    std::vector<std::string> accepted = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    if (allow_sigmoid) accepted.push_back("sigmoid");
    const auto schedule = r.get_choice("beta_schedule", accepted);
    const double beta_start = r.get_number("beta_start");
    const double beta_end = r.get_number("beta_end");
    if (schedule != "squaredcos_cap_v2") {
      if (!(beta_start >= 0.0 && beta_start < 1.0))
        r.fail("beta_start", "beta_start must lie in [0, 1)", "SD uses 0.00085");
      if (!(beta_end > 0.0 && beta_end < 1.0))
        r.fail("beta_end", "beta_end must lie in (0, 1)", "SD uses 0.012");
    }
    if (schedule == "linear") {
      betas = at::linspace(beta_start, beta_end, num_train, f32);
    } else if (schedule == "scaled_linear") {
      betas =
          at::linspace(std::pow(beta_start, 0.5), std::pow(beta_end, 0.5), num_train, f32).pow(2);
    } else if (schedule == "squaredcos_cap_v2") {
      betas = squaredcos_cap_v2_betas(num_train);
    } else {  // sigmoid (DDPM only)
      betas =
          at::sigmoid(at::linspace(-6, 6, num_train, f32)) * (beta_end - beta_start) + beta_start;
    }
  }
  const bool rescale = r.get_bool("rescale_betas_zero_snr");
  if (rescale) betas = rescale_zero_terminal_snr(betas);
  at::Tensor alphas_cumprod = at::cumprod(1.0 - betas, 0).contiguous();
  std::vector<float> out(alphas_cumprod.data_ptr<float>(),
                         alphas_cumprod.data_ptr<float>() + alphas_cumprod.numel());
  if (rescale && pin_terminal) out.back() = std::ldexp(1.0f, -24);
  return out;
}

std::vector<float> training_sigmas(const std::vector<float>& alphas_cumprod) {
  std::vector<float> s(alphas_cumprod.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const float a = alphas_cumprod[i];
    s[i] = std::sqrt((1.0f - a) / a);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// NumPy re-implementations

std::vector<double> np_linspace(double start, double stop, int num) {
  std::vector<double> y;
  if (num <= 0) return y;
  y.resize(static_cast<std::size_t>(num));
  const int div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / div;
    for (int i = 0; i < num; ++i)
      y[static_cast<std::size_t>(i)] =
          (step == 0 ? static_cast<double>(i) / div * delta : static_cast<double>(i) * step) +
          start;
    y.back() = stop;
  } else {
    y[0] = 0.0 * delta + start;
  }
  return y;
}

std::vector<double> np_arange_down(double start, double step) {
  // np.arange(start, 0, -step): length ceil((0 - start) / -step); a[0] = start, a[1] = start -
  // step, a[i] = start + i * (a[1] - a[0]) (NumPy's fill).
  std::vector<double> a;
  const double value = (0.0 - start) / (-step);
  if (!(value > 0)) return a;
  const auto len = static_cast<int64_t>(std::ceil(value));
  const double next = start + (-step);
  const double delta = next - start;
  for (int64_t i = 0; i < len; ++i) {
    const double v = i == 0 ? start : (i == 1 ? next : start + static_cast<double>(i) * delta);
    if (np_round(v) < 1.0) break;  // would become timestep -1 after the "- 1"
    a.push_back(v);
  }
  return a;
}

double np_interp_index(double x, const std::vector<double>& fp) {
  const auto n = static_cast<int64_t>(fp.size());
  if (x < 0) return fp.front();
  if (x > static_cast<double>(n - 1)) return fp.back();
  const auto j = static_cast<int64_t>(std::floor(x));
  if (j == n - 1 || static_cast<double>(j) == x) return fp[static_cast<std::size_t>(j)];
  const double slope = (fp[static_cast<std::size_t>(j + 1)] - fp[static_cast<std::size_t>(j)]) /
                       (static_cast<double>(j + 1) - static_cast<double>(j));
  return slope * (x - static_cast<double>(j)) + fp[static_cast<std::size_t>(j)];
}

std::vector<double> spaced_timesteps(Spacing spacing, int num_train_timesteps, int n,
                                     int steps_offset, bool round_linspace) {
  std::vector<double> t;
  switch (spacing) {
    case Spacing::kLeading: {
      const int64_t ratio = num_train_timesteps / n;
      for (int i = n - 1; i >= 0; --i) t.push_back(static_cast<double>(i * ratio + steps_offset));
      break;
    }
    case Spacing::kTrailing: {
      const double ratio = static_cast<double>(num_train_timesteps) / n;
      for (double v : np_arange_down(num_train_timesteps, ratio)) t.push_back(np_round(v) - 1.0);
      break;
    }
    case Spacing::kLinspace: {
      const auto v = np_linspace(0.0, num_train_timesteps - 1, n);
      for (auto it = v.rbegin(); it != v.rend(); ++it)
        t.push_back(round_linspace ? np_round(*it) : static_cast<double>(static_cast<float>(*it)));
      break;
    }
  }
  return t;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  // NumPy 1.x value-based casting: the float64 scalar log_sigma meets float32 arrays, so the
  // differences and the weight are float32.
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const auto ls = static_cast<float>(log_sigma);
  const auto n = static_cast<int64_t>(log_sigmas.size());
  int64_t low_idx = 0;
  for (int64_t i = 0; i < n; ++i)
    if (ls - log_sigmas[static_cast<std::size_t>(i)] >= 0.0f) low_idx = i;
  low_idx = std::min(low_idx, n - 2);
  const int64_t high_idx = low_idx + 1;
  const float low = log_sigmas[static_cast<std::size_t>(low_idx)];
  const float high = log_sigmas[static_cast<std::size_t>(high_idx)];
  float w = (low - ls) / (low - high);
  w = std::min(std::max(w, 0.0f), 1.0f);
  return static_cast<double>(1.0f - w) * static_cast<double>(low_idx) +
         static_cast<double>(w) * static_cast<double>(high_idx);
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n) {
  const double rho = 7.0;
  const auto ramp = np_linspace(0.0, 1.0, n);
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> s;
  for (double r : ramp) s.push_back(std::pow(max_inv_rho + r * (min_inv_rho - max_inv_rho), rho));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Tensor helpers

at::Tensor draw_noise(at::IntArrayRef shape, at::ScalarType dtype, at::Device device,
                      at::Generator* generator) {
  if (generator == nullptr || !generator->defined())
    return at::randn(shape, at::TensorOptions().dtype(dtype).device(device));
  const at::Device gen_device = generator->device();
  at::Tensor noise =
      at::randn(shape, *generator, at::TensorOptions().dtype(dtype).device(gen_device));
  return gen_device == device ? noise : noise.to(device);
}

void check_shapes(const at::Tensor& model_output, const at::Tensor& sample,
                  const std::string& who) {
  if (!model_output.defined() || !sample.defined() || model_output.sizes() != sample.sizes())
    throw UsageError(who + "::step: model_output and sample must have the same shape", {},
                     "pass the model's prediction for this sample");
}

Thresholding Thresholding::read(const ConfigReader& r) {
  Thresholding t;
  t.enabled = r.get_bool("thresholding");
  t.ratio = r.get_number("dynamic_thresholding_ratio");
  t.max_value = r.get_number("sample_max_value");
  if (t.enabled && !(t.ratio > 0 && t.ratio <= 1))
    r.fail("dynamic_thresholding_ratio", "dynamic_thresholding_ratio must lie in (0, 1]",
           "diffusers' default is 0.995");
  if (t.enabled && !(t.max_value >= 1))
    r.fail("sample_max_value", "sample_max_value must be at least 1", "diffusers' default is 1.0");
  return t;
}

at::Tensor threshold_sample(const at::Tensor& x0, double ratio, double max_value) {
  const auto dtype = x0.scalar_type();
  at::Tensor x = (dtype == at::kFloat || dtype == at::kDouble) ? x0 : x0.to(at::kFloat);
  const auto sizes = x.sizes().vec();
  at::Tensor flat = x.reshape({sizes[0], -1});
  at::Tensor s = at::quantile(flat.abs(), ratio, 1);
  s = at::clamp(s, 1, max_value).unsqueeze(1);
  flat = at::max(at::min(flat, s), -s) / s;
  return flat.reshape(sizes).to(dtype);
}

float torch_log(float x) { return at::scalar_tensor(x, at::kFloat).log().item<float>(); }
float torch_exp(float x) { return at::scalar_tensor(x, at::kFloat).exp().item<float>(); }

std::size_t index_for_timestep(const std::vector<double>& timesteps, double timestep,
                               const std::string& class_name) {
  std::vector<std::size_t> hits;
  for (std::size_t i = 0; i < timesteps.size(); ++i)
    if (timesteps[i] == timestep) hits.push_back(i);
  if (hits.empty()) {
    std::ostringstream os;
    os << class_name << ": timestep " << timestep << " is not in the current schedule";
    throw UsageError(os.str(), {}, "pass one of timesteps(), or use add_noise_at(step_index)");
  }
  return hits.size() > 1 ? hits[1] : hits[0];
}

}  // namespace sched

// ---------------------------------------------------------------------------------------------
// Factory

namespace {

using Factory = std::unique_ptr<Scheduler> (*)(const nlohmann::json&, const std::string&);

// The factory of each class of scheduler_class_names() (core/scheduler_names.cpp, torch-free);
// nullptr for a name that is not a class.
Factory factory_for(const std::string& class_name) {
  if (class_name == "DDIMScheduler") return &sched::make_ddim;
  if (class_name == "DDIMInverseScheduler") return &sched::make_ddim_inverse;
  if (class_name == "DDPMScheduler") return &sched::make_ddpm;
  if (class_name == "EulerDiscreteScheduler") return &sched::make_euler;
  if (class_name == "EulerAncestralDiscreteScheduler") return &sched::make_euler_ancestral;
  if (class_name == "DPMSolverMultistepScheduler") return &sched::make_dpm_solver;
  return nullptr;
}

bool is_class_name(const std::string& name) {
  const auto& classes = scheduler_class_names();
  return std::find(classes.begin(), classes.end(), name) != classes.end();
}

std::string names_list() {
  std::string out;
  for (const auto& n : scheduler_names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& config, const std::string& origin) {
  if (!config.is_object())
    throw ConfigError("a scheduler config must be a JSON object", origin,
                      "pass the contents of a diffusers scheduler_config.json");
  auto it = config.find("_class_name");
  if (it == config.end() || !it->is_string())
    throw ConfigError("the scheduler config has no \"_class_name\" string",
                      origin + ": /_class_name",
                      "add \"_class_name\" with one of: " + names_list());
  const auto name = it->get<std::string>();
  if (is_class_name(name)) {
    if (const Factory f = factory_for(name)) return f(config, origin);
  }
  throw ConfigError("unsupported scheduler class \"" + name + "\"", origin + ": /_class_name",
                    "use one of: " + names_list());
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& class_or_alias,
                                          const nlohmann::json& base_config,
                                          const std::string& origin) {
  if (!base_config.is_object() && !base_config.is_null())
    throw ConfigError("a scheduler config must be a JSON object", origin,
                      "pass the contents of a diffusers scheduler_config.json");
  nlohmann::json config = base_config.is_null() ? nlohmann::json::object() : base_config;
  if (is_class_name(class_or_alias)) {
    config["_class_name"] = class_or_alias;
    return make_scheduler(config, origin);
  }
  for (const auto& a : scheduler_aliases()) {
    if (class_or_alias == a.alias) {
      config.update(nlohmann::json::parse(a.overrides));
      config["_class_name"] = a.class_name;
      return make_scheduler(config, origin);
    }
  }
  throw ConfigError("unknown scheduler \"" + class_or_alias + "\"", origin,
                    "use one of: " + names_list());
}

std::unique_ptr<Scheduler> load_scheduler_config(
    const std::filesystem::path& scheduler_config_json) {
  std::filesystem::path path = scheduler_config_json;
  if (std::filesystem::is_directory(path)) path /= "scheduler_config.json";
  std::ifstream in(path);
  if (!in)
    throw IoError("cannot open the scheduler config", path.string(),
                  "point at a diffusers scheduler_config.json (or the scheduler/ folder)");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {  // also out_of_range (a number too large)
    throw FormatError(std::string("invalid JSON: ") + e.what(), path.string(),
                      "fix the file or re-export it from diffusers");
  }
  return make_scheduler(config, path.string());
}

}  // namespace studio
