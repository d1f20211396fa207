// Point-E sampling: see pointe_diffusion.h.
#include "mesh/pointe_diffusion.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace studio::pointe {

namespace {

std::vector<double> cosine_betas(int64_t n) {
  auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
  };
  std::vector<double> betas(n);
  for (int64_t i = 0; i < n; ++i) {
    const double t1 = static_cast<double>(i) / static_cast<double>(n);
    const double t2 = static_cast<double>(i + 1) / static_cast<double>(n);
    betas[i] = std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), 0.999);
  }
  return betas;
}

// np.linspace(scale * 1e-4, scale * 0.02, n) with scale = 1000 / n (numpy's formula).
std::vector<double> linear_betas(int64_t n) {
  const double scale = 1000.0 / static_cast<double>(n);
  const double start = scale * 0.0001, stop = scale * 0.02;
  std::vector<double> betas(n);
  const double step = n > 1 ? (stop - start) / static_cast<double>(n - 1) : 0.0;
  for (int64_t i = 0; i < n; ++i) betas[i] = static_cast<double>(i) * step + start;
  if (n > 1) betas[n - 1] = stop;
  return betas;
}

at::Tensor channel_vector(const std::vector<double>& v, const at::Tensor& like) {
  return at::tensor(v, at::TensorOptions(at::kDouble)).to(like.options()).view({1, -1, 1});
}

}  // namespace

DiffusionConfig DiffusionConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ConfigError("diffusion_config is not an object", origin);
  DiffusionConfig c;
  for (const auto& [key, value] : j.items()) {
    if (key != "schedule" && key != "timesteps" && key != "mean_type" && key != "channel_scales" &&
        key != "channel_biases")
      throw ConfigError("unknown key '" + key + "'", origin + ": diffusion_config",
                        "expected schedule, timesteps, mean_type, channel_scales, channel_biases");
  }
  c.schedule = j.value("schedule", "cosine");
  if (c.schedule != "cosine" && c.schedule != "linear")
    throw ConfigError("unsupported schedule '" + c.schedule + "'",
                      origin + ": diffusion_config/schedule", "use 'cosine' or 'linear'");
  c.timesteps = j.value("timesteps", int64_t{1024});
  if (c.timesteps < 2) throw ConfigError("timesteps must be >= 2", origin + ": diffusion_config");
  const std::string mean_type = j.value("mean_type", "epsilon");
  if (mean_type != "epsilon")
    throw ConfigError("unsupported mean_type '" + mean_type + "'",
                      origin + ": diffusion_config/mean_type", "only 'epsilon' is implemented");
  if (j.contains("channel_scales") && !j["channel_scales"].is_null())
    c.channel_scales = j["channel_scales"].get<std::vector<double>>();
  if (j.contains("channel_biases") && !j["channel_biases"].is_null())
    c.channel_biases = j["channel_biases"].get<std::vector<double>>();
  return c;
}

GaussianDiffusion::GaussianDiffusion(const DiffusionConfig& config) : config_(config) {
  const int64_t n = config.timesteps;
  betas_ = config.schedule == "linear" ? linear_betas(n) : cosine_betas(n);
  alphas_cumprod_.resize(n);
  alphas_cumprod_prev_.resize(n);
  sqrt_recip_.resize(n);
  sqrt_recipm1_.resize(n);
  posterior_variance_.resize(n);
  posterior_log_var_.resize(n);
  posterior_coef1_.resize(n);
  posterior_coef2_.resize(n);
  double acc = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    alphas_cumprod_prev_[i] = acc;
    acc *= 1.0 - betas_[i];
    alphas_cumprod_[i] = acc;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double ac = alphas_cumprod_[i], prev = alphas_cumprod_prev_[i];
    sqrt_recip_[i] = std::sqrt(1.0 / ac);
    sqrt_recipm1_[i] = std::sqrt(1.0 / ac - 1);
    posterior_variance_[i] = betas_[i] * (1.0 - prev) / (1.0 - ac);
    posterior_coef1_[i] = betas_[i] * std::sqrt(prev) / (1.0 - ac);
    posterior_coef2_[i] = (1.0 - prev) * std::sqrt(1.0 - betas_[i]) / (1.0 - ac);
  }
  for (int64_t i = 0; i < n; ++i)
    posterior_log_var_[i] = std::log(i == 0 ? posterior_variance_[1] : posterior_variance_[i]);
}

double GaussianDiffusion::sigma_to_t(double sigma) const {
  const double a = 1.0 / (sigma * sigma + 1);
  const int64_t n = num_timesteps();
  if (a > alphas_cumprod_[0]) return 0.0;
  if (a <= alphas_cumprod_[n - 1]) return static_cast<double>(n - 1);
  // scipy interp1d over ascending alpha-bar (index k <-> timestep n-1-k).
  auto x = [&](int64_t k) { return alphas_cumprod_[n - 1 - k]; };
  int64_t lo = 0, hi = n;  // first k with x(k) >= a (searchsorted, side left)
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (x(mid) < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  const int64_t idx = std::clamp<int64_t>(lo, 1, n - 1);
  const double x_lo = x(idx - 1), x_hi = x(idx);
  const double y_lo = static_cast<double>(n - idx), y_hi = static_cast<double>(n - 1 - idx);
  const double slope = (y_hi - y_lo) / (x_hi - x_lo);
  return slope * (a - x_lo) + y_lo;
}

at::Tensor GaussianDiffusion::scale_channels(const at::Tensor& x) const {
  at::Tensor y = x;
  if (!config_.channel_scales.empty()) y = y * channel_vector(config_.channel_scales, x);
  if (!config_.channel_biases.empty()) y = y + channel_vector(config_.channel_biases, x);
  return y;
}

at::Tensor GaussianDiffusion::unscale_channels(const at::Tensor& x) const {
  at::Tensor y = x;
  if (!config_.channel_biases.empty()) y = y - channel_vector(config_.channel_biases, x);
  if (!config_.channel_scales.empty()) y = y / channel_vector(config_.channel_scales, x);
  return y;
}

at::Tensor GaussianDiffusion::predict_xstart(const at::Tensor& x_t, const at::Tensor& t,
                                             const at::Tensor& eps, bool clip) const {
  const at::Tensor idx = t.to(at::kCPU, at::kLong);
  auto gather = [&](const std::vector<double>& table) {
    at::Tensor full = at::tensor(table, at::TensorOptions(at::kDouble));
    at::Tensor v = full.index_select(0, idx).to(at::kFloat).to(x_t.device());
    std::vector<int64_t> shape(x_t.dim(), 1);
    shape[0] = v.size(0);
    return v.view(shape);
  };
  at::Tensor x0 = gather(sqrt_recip_) * x_t - gather(sqrt_recipm1_) * eps;
  return clip ? x0.clamp(-1, 1) : x0;
}

at::Tensor karras_sigmas(int64_t n, double sigma_min, double sigma_max, double rho) {
  const at::Tensor ramp = at::linspace(0, 1, n, at::TensorOptions(at::kFloat));
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  const at::Tensor sigmas = (ramp * (min_inv_rho - max_inv_rho) + max_inv_rho).pow(rho);
  return at::cat({sigmas, at::zeros({1}, sigmas.options())});
}

NoiseFn global_noise() {
  return [](at::IntArrayRef shape) { return at::randn(shape, at::TensorOptions(at::kFloat)); };
}

at::Tensor karras_denoise(const GaussianDiffusion& diffusion, const ModelFn& model,
                          const at::Tensor& x_t, const at::Tensor& sigma, bool clip_denoised,
                          DenoiseCall* record) {
  const at::Tensor sigma_cpu = sigma.to(at::kCPU, at::kFloat).contiguous();
  const int64_t bm = sigma_cpu.size(0);
  at::Tensor t_float = at::empty({bm}, at::TensorOptions(at::kDouble));
  at::Tensor t = at::empty({bm}, at::TensorOptions(at::kLong));
  for (int64_t i = 0; i < bm; ++i) {
    const double tf = diffusion.sigma_to_t(static_cast<double>(sigma_cpu.data_ptr<float>()[i]));
    t_float.data_ptr<double>()[i] = tf;
    t.data_ptr<int64_t>()[i] = static_cast<int64_t>(tf);  // Python int(): truncation
  }
  t = t.to(x_t.device());
  std::vector<int64_t> shape(x_t.dim(), 1);
  shape[0] = bm;
  const at::Tensor c_in = sigma.pow(2).add(1).pow(0.5).reciprocal().view(shape);
  const at::Tensor x_in = x_t * c_in;
  const at::Tensor out = model(x_in, t);
  const int64_t c = x_t.size(1);
  if (out.dim() != x_t.dim() || out.size(1) != 2 * c)
    throw UsageError("the model must output 2x the input channels (epsilon, variance)",
                     "Point-E denoiser");
  const at::Tensor x0 = diffusion.predict_xstart(x_in, t, out.narrow(1, 0, c), clip_denoised);
  if (record) {
    record->x_t = x_t;
    record->sigma = sigma;
    record->t_float = t_float;
    record->model_x = x_in;
    record->model_t = t;
    record->model_out = out;
    record->denoised = x0;
  }
  return x0;
}

std::vector<KarrasYield> karras_sample(const GaussianDiffusion& diffusion, const ModelFn& model,
                                       at::IntArrayRef shape, const KarrasOptions& o,
                                       const NoiseFn& noise, const CallObserver& observer) {
  torch::NoGradGuard no_grad;
  const at::Tensor sigmas = karras_sigmas(o.steps, o.sigma_min, o.sigma_max, o.rho).to(o.device);
  at::Tensor x = noise(shape).to(o.device) * o.sigma_max;
  const bool guided = o.guidance_scale != 0 && o.guidance_scale != 1;
  int64_t step = 0;
  auto denoiser = [&](const at::Tensor& x_t, const at::Tensor& sigma) {
    DenoiseCall call;
    call.step = step;
    DenoiseCall* record = observer ? &call : nullptr;
    at::Tensor x0;
    if (guided) {
      x0 = karras_denoise(diffusion, model, at::cat({x_t, x_t}), at::cat({sigma, sigma}),
                          o.clip_denoised, record);
      const auto halves = x0.split(x0.size(0) / 2);
      x0 = halves[1] + o.guidance_scale * (halves[0] - halves[1]);
    } else {
      x0 = karras_denoise(diffusion, model, x_t, sigma, o.clip_denoised, record);
    }
    if (observer) observer(call);
    return x0;
  };

  std::vector<KarrasYield> yields;
  const at::Tensor s_in = at::ones({x.size(0)}, x.options());
  const int64_t n = sigmas.size(0) - 1;
  at::Tensor denoised;
  for (int64_t i = 0; i < n; ++i) {
    step = i;
    const at::Tensor sigma_i = sigmas[i];
    const double s = sigma_i.item<double>();
    const double gamma = (o.s_tmin <= s && s <= o.s_tmax)
                             ? std::min(o.s_churn / static_cast<double>(n), std::sqrt(2.0) - 1)
                             : 0.0;
    const at::Tensor eps = noise(x.sizes()).to(o.device) * o.s_noise;
    const at::Tensor sigma_hat = sigma_i * (gamma + 1);
    if (gamma > 0) x = x + eps * (sigma_hat.pow(2) - sigma_i.pow(2)).pow(0.5);
    denoised = denoiser(x, sigma_hat * s_in);
    const at::Tensor d = (x - denoised) / sigma_hat;
    yields.push_back({diffusion.unscale_channels(x), diffusion.unscale_channels(denoised)});
    const at::Tensor sigma_next = sigmas[i + 1];
    const at::Tensor dt = sigma_next - sigma_hat;
    if (sigma_next.item<double>() == 0) {
      x = x + d * dt;
    } else {
      const at::Tensor x_2 = x + d * dt;
      const at::Tensor denoised_2 = denoiser(x_2, sigma_next * s_in);
      const at::Tensor d_2 = (x_2 - denoised_2) / sigma_next;
      x = x + (d + d_2) / 2 * dt;
    }
  }
  yields.push_back({diffusion.unscale_channels(x), diffusion.unscale_channels(denoised)});
  return yields;
}

PointCloudSampler::PointCloudSampler(std::vector<SamplerStage> stages, int64_t channels)
    : stages_(std::move(stages)), channels_(channels) {
  if (stages_.empty()) throw UsageError("a PointCloudSampler needs at least one stage");
  for (size_t k = 0; k < stages_.size(); ++k) {
    const SamplerStage& s = stages_[k];
    if (!s.model) throw UsageError("stage " + std::to_string(k) + " has no model");
    const ModelKind kind = s.model->config().kind;
    if ((k > 0) != (kind == ModelKind::ClipGridUpsample))
      throw UsageError("stage " + std::to_string(k) + " has a " + s.model->config().name +
                           "; the first stage must be a base model and later ones upsamplers",
                       "PointCloudSampler");
    if (s.num_points != s.model->config().n_ctx)
      throw UsageError(
          "stage " + std::to_string(k) + " samples " + std::to_string(s.num_points) +
              " points but its model takes n_ctx = " + std::to_string(s.model->config().n_ctx),
          "PointCloudSampler", "set num_points to the model's n_ctx");
    if (kind == ModelKind::ClipGrid && !s.use_conditioning)
      throw UsageError("an image-grid base model needs its conditioning", "PointCloudSampler");
    if (s.model->config().input_channels != channels_)
      throw UsageError("stage " + std::to_string(k) + " has " +
                       std::to_string(s.model->config().input_channels) + " input channels, not " +
                       std::to_string(channels_));
  }
}

std::pair<at::Tensor, at::Tensor> PointCloudSampler::stage_conditioning(
    size_t k, const at::Tensor& embeddings, const at::Tensor& low_res) const {
  const SamplerStage& s = stages_.at(k);
  const ModelConfig& c = s.model->config();
  const int64_t batch = low_res.defined() ? low_res.size(0) : embeddings.size(0);
  const at::TensorOptions opts =
      (low_res.defined() ? low_res : embeddings).options().dtype(at::kFloat);
  at::Tensor emb;
  if (c.kind == ModelKind::ClipVector) {
    emb = s.use_conditioning ? embeddings : at::zeros({batch, c.clip_feature_dim}, opts);
  } else if (c.kind == ModelKind::ClipGrid || c.kind == ModelKind::ClipGridUpsample) {
    emb = s.use_conditioning
              ? embeddings
              : at::zeros({batch, c.clip_grid_feature_dim, c.clip_grid_size * c.clip_grid_size},
                          opts);
  }
  at::Tensor lr = low_res;
  const double g = s.karras.guidance_scale;
  if (g != 0 && g != 1) {
    if (emb.defined()) emb = at::cat({emb, at::zeros_like(emb)});
    if (lr.defined()) lr = at::cat({lr, at::zeros_like(lr)});
  }
  return {emb, lr};
}

at::Tensor PointCloudSampler::sample(
    const at::Tensor& embeddings, const NoiseFn& noise,
    const std::function<void(int, int, const at::Tensor&)>& on_yield,
    const std::vector<CallObserver>& observers) const {
  torch::NoGradGuard no_grad;
  if (!embeddings.defined() || embeddings.dim() < 2)
    throw UsageError("embeddings must be [B, 768] or [B, 1024, 256]", "PointCloudSampler");
  const int64_t batch = embeddings.size(0);
  at::Tensor samples;
  const c10::Device device = stages_.front().model->parameters().front().device();
  const at::Tensor cond_in = embeddings.to(device, at::kFloat);
  for (size_t k = 0; k < stages_.size(); ++k) {
    const SamplerStage& s = stages_[k];
    const std::pair<at::Tensor, at::Tensor> cond =
        stage_conditioning(k, cond_in, k == 0 ? at::Tensor() : samples);
    const at::Tensor emb = cond.first, low_res = cond.second;
    PointDiffusionTransformer model = s.model;
    const ModelFn fn = [&](const at::Tensor& x, const at::Tensor& t) {
      return model->forward(x, t, emb, low_res);
    };
    KarrasOptions options = s.karras;
    options.device = device;
    const std::vector<KarrasYield> yields =
        karras_sample(s.diffusion, fn, {batch, channels_, s.num_points}, options, noise,
                      k < observers.size() ? observers[k] : CallObserver{});
    for (size_t i = 0; i < yields.size(); ++i) {
      samples = yields[i].pred_xstart.narrow(0, 0, batch);
      if (low_res.defined()) samples = at::cat({low_res.narrow(0, 0, batch), samples}, -1);
      if (on_yield) on_yield(static_cast<int>(k), static_cast<int>(i), samples);
    }
  }
  return samples;
}

PointClouds split_point_clouds(const at::Tensor& samples) {
  PointClouds pc;
  pc.coords = samples.narrow(1, 0, 3).permute({0, 2, 1}).contiguous();
  pc.rgb = samples.narrow(1, 3, 3).clamp(0, 255).round().div(255.0).permute({0, 2, 1}).contiguous();
  return pc;
}

}  // namespace studio::pointe
