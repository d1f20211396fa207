// Point-E port against pointe-tiny / pointe-tiny-ref (README-pointe.md): model forwards and
// activations (atol 1e-4, SDF 5e-5), diffusion tables (rel 1e-12), Karras sigmas (rel 1e-6),
// sigma_to_t (exact int t), the teacher-forced denoiser of every recorded call
// (5e-5 * max(1, sigma)) and both sampler pipelines end to end with the recorded noise injected.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>

#include "core/module_loading.h"
#include "core/tensor_io.h"
#include "mesh/pointe_diffusion.h"
#include "mesh/pointe_models.h"
#include "mesh/pointe_pipeline.h"
#include "tests/support/fixtures.h"

using namespace studio;
using namespace studio::pointe;
namespace fs = std::filesystem;

namespace {

constexpr double kForwardAtol = 1e-4;
constexpr double kSdfAtol = 5e-5;

fs::path models_dir() { return test::fixtures_root() / "pointe-tiny"; }
fs::path ref_dir() { return test::fixtures_root() / "pointe-tiny-ref"; }
at::Tensor ref_npy(const std::string& rel) { return load_npy(ref_dir() / rel); }

PointDiffusionTransformer& diffusion_model(const std::string& name) {
  static std::map<std::string, PointDiffusionTransformer> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache.emplace(name, load_diffusion_model(pointe_component(models_dir() / name))).first;
  return it->second;
}

PointCloudSdfModel& sdf_model() {
  static PointCloudSdfModel model = load_sdf_model(pointe_component(models_dir() / "sdf"));
  return model;
}

GaussianDiffusion diffusion_of(const std::string& model_name) {
  const nlohmann::json config = test::read_json(models_dir() / model_name / "config.json");
  return GaussianDiffusion(DiffusionConfig::from_json(config["diffusion_config"], model_name));
}

double max_rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  return ((x - y).abs() / y.abs().clamp_min(1e-300)).max().item<double>();
}

at::Tensor vec_tensor(const std::vector<double>& v) {
  return at::tensor(v, at::TensorOptions(at::kDouble));
}

// Replays recorded noise: noise_xT, then noise_eps[0..n-1], per stage in order.
NoiseFn injected_noise(const std::vector<std::string>& stage_prefixes) {
  auto queue = std::make_shared<std::deque<at::Tensor>>();
  for (const std::string& p : stage_prefixes) {
    queue->push_back(ref_npy(p + ".noise_xT.npy"));
    const at::Tensor eps = ref_npy(p + ".noise_eps.npy");
    for (int64_t i = 0; i < eps.size(0); ++i) queue->push_back(eps[i]);
  }
  return [queue](at::IntArrayRef shape) {
    REQUIRE(!queue->empty());
    at::Tensor t = queue->front();
    queue->pop_front();
    REQUIRE(t.sizes() == shape);
    return t.clone();
  };
}

// The two recorded pipelines of README-pointe.md section 3.
struct Pipeline {
  std::string dir;        // sampler_text / sampler_image
  std::string base;       // base model folder
  at::Tensor embeddings;  // caller's conditioning
  std::vector<SamplerStage> stages;
};

Pipeline make_pipeline(bool text) {
  Pipeline p;
  p.dir = text ? "sampler_text" : "sampler_image";
  p.base = text ? "base-textvec" : "base-imagegrid";
  p.embeddings = text ? ref_npy("inputs/sampler_text_embeddings.npy")
                      : ref_npy("inputs/grid_embeddings.npy").narrow(0, 0, 1);
  const at::Tensor sig0 = ref_npy(p.dir + "/stage0.sigmas.npy");
  const at::Tensor sig1 = ref_npy(p.dir + "/stage1.sigmas.npy");
  SamplerStage s0{diffusion_model(p.base), diffusion_of(p.base), 64, {}, true};
  s0.karras.steps = sig0.size(0) - 1;
  s0.karras.sigma_max = 120;
  s0.karras.s_churn = 3;
  s0.karras.guidance_scale = 3.0;
  SamplerStage s1{diffusion_model("upsample"), diffusion_of("upsample"), 192, {}, !text};
  s1.karras.steps = sig1.size(0) - 1;
  s1.karras.sigma_max = 160;
  s1.karras.s_churn = 0;
  s1.karras.guidance_scale = text ? 0.0 : 3.0;
  p.stages = {s0, s1};
  return p;
}

}  // namespace

TEST_CASE("pointe: diffusion transformers match the reference forwards", "[parity][pointe]") {
  torch::NoGradGuard no_grad;
  const at::Tensor text_emb = ref_npy("inputs/text_embeddings.npy");
  const at::Tensor grid_emb = ref_npy("inputs/grid_embeddings.npy");
  const at::Tensor low_res = ref_npy("inputs/low_res.npy");
  int cases = 0;
  for (const std::string name : {"base-textvec", "base-imagegrid", "upsample"}) {
    PointDiffusionTransformer& model = diffusion_model(name);
    const std::string input =
        name == "upsample"
            ? "x_upsample"
            : "x_" + std::string(name == "base-textvec" ? "base_textvec" : "base_imagegrid");
    const at::Tensor x = ref_npy("inputs/" + input + ".npy");
    const at::Tensor emb = name == "base-textvec" ? text_emb : grid_emb;
    const at::Tensor lr = name == "upsample" ? low_res : at::Tensor();
    for (const auto& entry : fs::directory_iterator(ref_dir() / "forward")) {
      const std::string file = entry.path().filename().string();
      const std::string prefix = name + ".t";
      const std::string suffix = ".out.npy";
      if (file.rfind(prefix, 0) != 0 || file.size() <= suffix.size() ||
          file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string tstr =
          file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
      const int64_t t = std::stoll(tstr);
      INFO(file);
      Activations acts;
      const at::Tensor out =
          model->forward(x, at::full({x.size(0)}, t, at::TensorOptions(at::kLong)), emb, lr, &acts);
      const at::Tensor expected = load_npy(entry.path());
      REQUIRE(out.sizes() == expected.sizes());
      const double diff = test::max_abs_diff(out, expected);
      INFO("max |diff| " << diff << ", max |out| " << test::max_abs(expected));
      CHECK(diff <= kForwardAtol);
      ++cases;
      // Recorded forward-hook activations at this t.
      const std::string act_prefix = name + ".t" + tstr + ".act.";
      for (const auto& a : fs::directory_iterator(ref_dir() / "forward")) {
        const std::string af = a.path().filename().string();
        if (af.rfind(act_prefix, 0) != 0) continue;
        const std::string key = af.substr(act_prefix.size(), af.size() - act_prefix.size() - 4);
        INFO("activation " << key);
        REQUIRE(acts.count(key) == 1);
        const at::Tensor e = load_npy(a.path());
        REQUIRE(acts[key].sizes() == e.sizes());
        const double d = test::max_abs_diff(acts[key], e);
        INFO("max |diff| " << d);
        CHECK(d <= kForwardAtol);
      }
    }
  }
  CHECK(cases == 9);
}

TEST_CASE("pointe: SDF model matches the reference latents and SDF", "[parity][pointe]") {
  torch::NoGradGuard no_grad;
  PointCloudSdfModel& model = sdf_model();
  Activations acts;
  const at::Tensor latents = model->encode(ref_npy("inputs/sdf_points.npy"), &acts);
  const at::Tensor sdf = model->predict(ref_npy("inputs/sdf_queries.npy"), latents, &acts);
  const at::Tensor e_lat = ref_npy("forward/sdf.latents.npy"),
                   e_sdf = ref_npy("forward/sdf.out.npy");
  REQUIRE(latents.sizes() == e_lat.sizes());
  REQUIRE(sdf.sizes() == e_sdf.sizes());
  CHECK(test::max_abs_diff(latents, e_lat) <= kSdfAtol);
  const double d = test::max_abs_diff(sdf, e_sdf);
  INFO("SDF max |diff| " << d);
  CHECK(d <= kSdfAtol);
  int n_acts = 0;
  for (const auto& a : fs::directory_iterator(ref_dir() / "forward")) {
    const std::string af = a.path().filename().string();
    if (af.rfind("sdf.act.", 0) != 0) continue;
    const std::string key = af.substr(8, af.size() - 8 - 4);
    INFO("activation " << key);
    REQUIRE(acts.count(key) == 1);
    CHECK(test::max_abs_diff(acts[key], load_npy(a.path())) <= kSdfAtol);
    ++n_acts;
  }
  CHECK(n_acts >= 6);
}

TEST_CASE("pointe: models refuse mismatched weights and configs", "[parity][pointe]") {
  const nlohmann::json config = test::read_json(models_dir() / "upsample" / "config.json");
  ModelConfig c = ModelConfig::from_json(config["model_config"], "upsample");
  CHECK(c.kind == ModelKind::ClipGridUpsample);
  CHECK(c.cond_ctx == 64);
  nlohmann::json bad = config["model_config"];
  bad["frobnicate"] = 1;
  CHECK_THROWS(ModelConfig::from_json(bad, "bad"));
  bad = config["model_config"];
  bad["name"] = "NoSuchModel";
  CHECK_THROWS(ModelConfig::from_json(bad, "bad"));
  // The textvec checkpoint loaded into the imagegrid architecture: names differ.
  ComponentInfo component = pointe_component(models_dir() / "base-textvec");
  component.config["model_config"]["name"] = "CLIPImageGridPointDiffusionTransformer";
  component.config["model_config"].erase("token_cond");
  CHECK_THROWS_WITH(load_diffusion_model(component), Catch::Contains("clip_embed"));
  // Point-E's models take exactly n_ctx points.
  torch::NoGradGuard no_grad;
  PointDiffusionTransformer& base = diffusion_model("base-textvec");
  CHECK_THROWS_WITH(
      base->forward(at::zeros({1, 6, 63}), at::zeros({1}, at::kLong), at::zeros({1, 768})),
      Catch::Contains("n_ctx = 64"));
}

TEST_CASE("pointe: diffusion tables, Karras sigmas and sigma_to_t match", "[parity][pointe]") {
  for (const auto& [sched, model] :
       {std::pair<std::string, std::string>{"cosine1024", "base-textvec"},
        {"linear1024", "upsample"}}) {
    INFO(sched);
    const GaussianDiffusion d = diffusion_of(model);
    const std::map<std::string, const std::vector<double>*> tables = {
        {"betas", &d.betas()},
        {"alphas_cumprod", &d.alphas_cumprod()},
        {"alphas_cumprod_prev", &d.alphas_cumprod_prev()},
        {"sqrt_recip_alphas_cumprod", &d.sqrt_recip_alphas_cumprod()},
        {"sqrt_recipm1_alphas_cumprod", &d.sqrt_recipm1_alphas_cumprod()},
        {"posterior_variance", &d.posterior_variance()},
        {"posterior_log_variance_clipped", &d.posterior_log_variance_clipped()},
        {"posterior_mean_coef1", &d.posterior_mean_coef1()},
        {"posterior_mean_coef2", &d.posterior_mean_coef2()}};
    for (const auto& [name, table] : tables) {
      INFO(name);
      const at::Tensor e = ref_npy("schedules/" + sched + "." + name + ".npy");
      REQUIRE(e.scalar_type() == at::kDouble);
      const at::Tensor got = vec_tensor(*table);
      REQUIRE(got.sizes() == e.sizes());
      // posterior_variance[0] is exactly 0: compare absolutely there.
      CHECK(((got - e).abs() / e.abs().clamp_min(1e-12)).max().item<double>() <= 1e-12);
    }
    const at::Tensor sig = ref_npy("schedules/" + sched + ".sigma_to_t.sigma.npy");
    const at::Tensor tf = ref_npy("schedules/" + sched + ".sigma_to_t.t_float.npy");
    const at::Tensor ti = ref_npy("schedules/" + sched + ".sigma_to_t.t.npy");
    REQUIRE(sig.numel() == tf.numel());
    const at::Tensor sig_f = sig.to(at::kFloat).contiguous();
    double worst = 0;
    for (int64_t i = 0; i < sig.numel(); ++i) {
      const double t = d.sigma_to_t(static_cast<double>(sig_f.data_ptr<float>()[i]));
      worst = std::max(worst, std::abs(t - tf[i].item<double>()));
      CHECK(static_cast<int64_t>(t) == ti[i].item<int64_t>());
    }
    INFO("t_float max |diff| " << worst);
    CHECK(worst <= 1e-6);
  }
  int n = 0;
  for (const auto& entry : fs::directory_iterator(ref_dir() / "schedules")) {
    const std::string f = entry.path().filename().string();
    if (f.rfind("karras_n", 0) != 0) continue;
    int64_t steps = 0;
    double lo = 0, hi = 0;
    REQUIRE(std::sscanf(f.c_str(), "karras_n%ld_min%lf_max%lf.npy", &steps, &lo, &hi) == 3);
    INFO(f);
    const at::Tensor e = load_npy(entry.path());
    const at::Tensor got = karras_sigmas(steps, lo, hi);
    REQUIRE(got.sizes() == e.sizes());
    CHECK(got[steps].item<float>() == 0.0f);
    CHECK(max_rel_diff(got.narrow(0, 0, steps), e.narrow(0, 0, steps)) <= 1e-6);
    ++n;
  }
  CHECK(n == 5);
}

TEST_CASE("pointe: denoiser matches every recorded call, teacher-forced", "[parity][pointe]") {
  torch::NoGradGuard no_grad;
  for (const bool text : {true, false}) {
    Pipeline p = make_pipeline(text);
    PointCloudSampler sampler(p.stages);
    for (size_t k = 0; k < 2; ++k) {
      const std::string pre = p.dir + "/stage" + std::to_string(k);
      INFO(pre);
      const at::Tensor low_res =
          k == 0 ? at::Tensor()
                 : ref_npy(pre + ".model_kwargs.low_res.npy").narrow(0, 0, p.embeddings.size(0));
      const std::pair<at::Tensor, at::Tensor> cond =
          sampler.stage_conditioning(k, p.embeddings, low_res);
      const at::Tensor emb = cond.first, lr = cond.second;
      if (k == 0 && text) {
        CHECK(test::max_abs_diff(emb, ref_npy(pre + ".model_kwargs.embeddings.npy")) == 0);
      }
      if (k == 1) {
        CHECK(test::max_abs_diff(lr, ref_npy(pre + ".model_kwargs.low_res.npy")) == 0);
      }
      const SamplerStage& s = p.stages[k];
      PointDiffusionTransformer model = s.model;
      const ModelFn fn = [&](const at::Tensor& x, const at::Tensor& t) {
        return model->forward(x, t, emb, lr);
      };
      const at::Tensor xs = ref_npy(pre + ".calls.x_t.npy"),
                       sigmas = ref_npy(pre + ".calls.sigma.npy");
      const at::Tensor den = ref_npy(pre + ".calls.denoised.npy"),
                       mt = ref_npy(pre + ".calls.model_t.npy");
      const at::Tensor mout = ref_npy(pre + ".calls.model_out.npy");
      const at::Tensor mx = ref_npy(pre + ".calls.model_x.npy");
      REQUIRE(xs.size(0) == 2 * s.karras.steps - 1);
      double worst = 0, worst_out = 0;
      for (int64_t i = 0; i < xs.size(0); ++i) {
        DenoiseCall call;
        const at::Tensor x0 =
            karras_denoise(s.diffusion, fn, xs[i], sigmas[i], s.karras.clip_denoised, &call);
        CHECK(at::equal(call.model_t, mt[i]));
        CHECK(test::max_abs_diff(call.model_x, mx[i]) <=
              1e-6 * std::max(1.0, sigmas[i].max().item<double>()));
        const double scale = std::max(1.0, sigmas[i].max().item<double>());
        worst = std::max(worst, test::max_abs_diff(x0, den[i]) / scale);
        worst_out = std::max(worst_out, test::max_abs_diff(call.model_out, mout[i]));
      }
      INFO("denoised max |diff| / max(1, sigma) " << worst << ", model_out " << worst_out);
      CHECK(worst <= 5e-5);
      CHECK(worst_out <= kForwardAtol);
    }
  }
}

TEST_CASE("pointe: torch's seeded CPU generator reproduces Point-E's sampler noise",
          "[parity][pointe]") {
  const at::Tensor xt = ref_npy("sampler_text/stage0.noise_xT.npy");
  const at::Tensor eps = ref_npy("sampler_text/stage0.noise_eps.npy");
  torch::manual_seed(0);
  const NoiseFn noise = global_noise();
  CHECK(at::equal(noise(xt.sizes()), xt));
  for (int64_t i = 0; i < eps.size(0); ++i) CHECK(at::equal(noise(eps[i].sizes()), eps[i]));
}

TEST_CASE("pointe: text and image pipelines match end to end with injected noise",
          "[parity][pointe]") {
  torch::NoGradGuard no_grad;
  for (const bool text : {true, false}) {
    Pipeline p = make_pipeline(text);
    INFO(p.dir);
    PointCloudSampler sampler(p.stages);
    std::vector<std::vector<at::Tensor>> yields(2);
    std::vector<std::vector<DenoiseCall>> calls(2);
    const std::vector<CallObserver> observers = {
        [&](const DenoiseCall& c) { calls[0].push_back(c); },
        [&](const DenoiseCall& c) { calls[1].push_back(c); }};
    const at::Tensor out = sampler.sample(
        p.embeddings, injected_noise({p.dir + "/stage0", p.dir + "/stage1"}),
        [&](int stage, int, const at::Tensor& s) { yields[stage].push_back(s); }, observers);
    const double xyz_bound = text ? 5e-3 : 5e-2, rgb_bound = text ? 0.5 : 5.0;
    for (int k = 0; k < 2; ++k) {
      const at::Tensor e = ref_npy(p.dir + "/sampler_yields.stage" + std::to_string(k) + ".npy");
      REQUIRE(static_cast<int64_t>(yields[k].size()) == e.size(0));
      const at::Tensor got = at::stack(yields[k]);
      REQUIRE(got.sizes() == e.sizes());
      const double dxyz = test::max_abs_diff(got.narrow(2, 0, 3), e.narrow(2, 0, 3));
      const double drgb = test::max_abs_diff(got.narrow(2, 3, 3), e.narrow(2, 3, 3));
      INFO("stage " << k << " yields: xyz max |diff| " << dxyz << ", RGB " << drgb);
      CHECK(dxyz <= xyz_bound);
      CHECK(drgb <= rgb_bound);
      // The int64 timesteps of every model call.
      const at::Tensor mt = ref_npy(p.dir + "/stage" + std::to_string(k) + ".calls.model_t.npy");
      REQUIRE(static_cast<int64_t>(calls[k].size()) == mt.size(0));
      for (int64_t i = 0; i < mt.size(0); ++i) {
        CHECK(calls[k][i].step ==
              ref_npy(p.dir + "/stage" + std::to_string(k) + ".calls.step.npy")[i].item<int64_t>());
        CHECK(at::equal(calls[k][i].model_t, mt[i]));
      }
    }
    const at::Tensor e = ref_npy(p.dir + "/final_samples.npy");
    REQUIRE(out.sizes() == e.sizes());
    const double dxyz = test::max_abs_diff(out.narrow(1, 0, 3), e.narrow(1, 0, 3));
    const double drgb = test::max_abs_diff(out.narrow(1, 3, 3), e.narrow(1, 3, 3));
    INFO("final: xyz max |diff| " << dxyz << ", RGB " << drgb);
    CHECK(dxyz <= xyz_bound);
    CHECK(drgb <= rgb_bound);
    const PointClouds pc = split_point_clouds(out);
    CHECK(test::max_abs_diff(pc.coords, ref_npy(p.dir + "/point_cloud.coords.npy")) <= xyz_bound);
    const at::Tensor rgb_diff = (pc.rgb - ref_npy(p.dir + "/point_cloud.rgb.npy")).abs();
    const double off =
        (rgb_diff > 1e-6).sum().item<double>() / static_cast<double>(rgb_diff.numel());
    INFO("rounded RGB entries off: " << off * 100 << " %, max "
                                     << rgb_diff.max().item<double>() * 255);
    CHECK(off <= 0.01);
    CHECK(rgb_diff.max().item<double>() <= 1.0 / 255 + 1e-6);
  }
}

TEST_CASE("pointe: PointE text_to_points / image_to_points reproduce the seeded reference runs",
          "[parity][pointe]") {
  const fs::path m = models_dir();
  for (const bool text : {true, false}) {
    const std::string dir = text ? "sampler_text" : "sampler_image";
    INFO(dir);
    const PointE pe(m / (text ? "base-textvec" : "base-imagegrid"), m / "upsample");
    SamplingOptions o = text ? PointE::text_defaults() : SamplingOptions{};
    o.num_points = {64, 192};
    o.steps = {ref_npy(dir + "/stage0.sigmas.npy").size(0) - 1,
               ref_npy(dir + "/stage1.sigmas.npy").size(0) - 1};
    const at::Tensor out =
        text ? pe.text_to_points(ref_npy("inputs/sampler_text_embeddings.npy"), 0, o)
             : pe.image_to_points(ref_npy("inputs/grid_embeddings.npy").narrow(0, 0, 1), 1, o);
    const at::Tensor e = ref_npy(dir + "/final_samples.npy");
    REQUIRE(out.sizes() == e.sizes());
    const double dxyz = test::max_abs_diff(out.narrow(1, 0, 3), e.narrow(1, 0, 3));
    const double drgb = test::max_abs_diff(out.narrow(1, 3, 3), e.narrow(1, 3, 3));
    INFO("xyz max |diff| " << dxyz << ", RGB " << drgb);
    CHECK(dxyz <= (text ? 5e-3 : 5e-2));
    CHECK(drgb <= (text ? 0.5 : 5.0));
  }
}

TEST_CASE("pointe: real-size configs build Point-E's real state_dict names and shapes",
          "[parity][pointe]") {
  const nlohmann::json real = test::read_json(models_dir() / "real_configs.json")["models"];
  int built = 0;
  for (const auto& [name, entry] : real.items()) {
    INFO(name);
    const ModelConfig config = ModelConfig::from_json(entry["model_config"], name);
    if (entry["param_count"].get<int64_t>() > 50'000'000) continue;  // base300M / base1B: too big
    std::shared_ptr<torch::nn::Module> module;
    if (config.is_diffusion())
      module = PointDiffusionTransformer(config).ptr();
    else
      module = PointCloudSdfModel(config).ptr();
    std::map<std::string, std::vector<int64_t>> got, expected;
    for (const auto& [n, shape] : module_tensor_shapes(*module)) got[n] = shape;
    for (const auto& [n, shape] : entry["state_dict_shapes"].items())
      expected[n] = shape.get<std::vector<int64_t>>();
    CHECK(got == expected);
    int64_t count = 0;
    for (const auto& p : module->parameters()) count += p.numel();
    for (const auto& b : module->buffers()) count += b.numel();
    CHECK(count == entry["param_count"].get<int64_t>());
    ++built;
  }
  CHECK(built == 6);
}
