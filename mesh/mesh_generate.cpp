// Point-E generation: see mesh_generate.h.
#include "mesh/mesh_generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/tensor_io.h"

namespace fs = std::filesystem;

namespace studio::pointe {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string lower_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// The model_config class name of a folder's config.json, or "" when it has none.
std::string model_class(const fs::path& dir) {
  const fs::path cfg = dir / "config.json";
  if (!fs::is_regular_file(cfg)) return {};
  const nlohmann::json j = read_json_file(cfg);
  if (!j.contains("model_config") || !j["model_config"].is_object() ||
      !j["model_config"].contains("name") || !j["model_config"]["name"].is_string())
    return {};
  return j["model_config"]["name"].get<std::string>();
}

const char* base_class_for(ConditioningKind kind) {
  return kind == ConditioningKind::kVector ? "CLIPImagePointDiffusionTransformer"
                                           : "CLIPImageGridPointDiffusionTransformer";
}
constexpr const char* kUpsampleClass = "CLIPImageGridUpsamplePointDiffusionTransformer";
constexpr const char* kSdfClass = "CrossAttentionPointCloudSDFModel";
constexpr const char* kLayoutHint =
    "a Point-E model set is a folder of model folders (config.json with 'model_config' + "
    "model.safetensors each), e.g. base40M-textvec/, upsample/, sdf/; add DIR/pointe.json "
    "{\"base\": ..., \"upsample\": ..., \"sdf\": ...} to name them (see docs/pointe.md)";

GaussianDiffusion diffusion_for(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  if (!component.config.contains("diffusion_config") ||
      !component.config["diffusion_config"].is_object())
    throw ConfigError("config.json has no 'diffusion_config'", origin,
                      "add Point-E's DIFFUSION_CONFIGS entry for this model (see pointe-tiny/)");
  return GaussianDiffusion(
      DiffusionConfig::from_json(component.config["diffusion_config"], origin));
}

}  // namespace

Conditioning load_conditioning(const fs::path& file) {
  if (!fs::is_regular_file(file))
    throw IoError("embedding file not found", file.string(),
                  "pass a .npy or .safetensors file with a CLIP [768] vector or [1024, 256] grid");
  const std::string ext = lower_extension(file);
  at::Tensor t;
  if (ext == ".npy") {
    t = load_npy(file);
  } else if (ext == ".safetensors") {
    const StateDict sd = StateDict::open({file});
    if (sd.size() != 1)
      throw FormatError("the safetensors file holds " + std::to_string(sd.size()) +
                            " tensors, expected exactly one embedding",
                        file.string(), "save the embedding alone (e.g. {'embedding': tensor})");
    t = sd.tensor(sd.names().front()).clone();
  } else {
    throw FormatError("unsupported embedding file type '" + ext + "'", file.string(),
                      "use .npy or .safetensors");
  }
  if (!at::isFloatingType(t.scalar_type()))
    throw FormatError(
        "the embedding must be floating point, got " + std::string(c10::toString(t.scalar_type())),
        file.string());
  t = t.to(at::kFloat).contiguous();
  Conditioning c;
  c.source = file.string();
  const auto s = t.sizes();
  if ((t.dim() == 1 && s[0] == 768) || (t.dim() == 2 && s[0] == 1 && s[1] == 768)) {
    c.kind = ConditioningKind::kVector;
    t = t.reshape({1, 768});
    const double norm = t.norm().item<double>();
    if (!(norm > 0) || !std::isfinite(norm))
      throw FormatError("the embedding vector is zero or not finite", file.string());
    c.embedding = t / norm;  // Point-E's embed_text / embed_images normalise
  } else if ((t.dim() == 2 && s[0] == 1024 && s[1] == 256) ||
             (t.dim() == 3 && s[0] == 1 && s[1] == 1024 && s[2] == 256)) {
    c.kind = ConditioningKind::kGrid;
    c.embedding = t.reshape({1, 1024, 256});
    if (!at::isfinite(c.embedding).all().item<bool>())
      throw FormatError("the embedding grid has NaN or infinite values", file.string());
  } else {
    throw FormatError("embedding of shape " + c10::str(t.sizes()) +
                          " is neither a CLIP vector "
                          "[768] nor an image grid [1024, 256]",
                      file.string(),
                      "Point-E takes CLIP ViT-L/14 embeddings: a text/image vector (768) for "
                      "base40M-textvec, or embed_images_grid's [1024, 256] for base40M");
  }
  return c;
}

ModelSet resolve_model_set(const fs::path& dir, ConditioningKind kind) {
  if (!fs::is_directory(dir))
    throw IoError("Point-E model folder not found", dir.string(), kLayoutHint);
  const std::string want_base = base_class_for(kind);
  ModelSet set;
  const fs::path manifest = dir / "pointe.json";
  if (fs::is_regular_file(manifest)) {
    const nlohmann::json j = read_json_file(manifest);
    auto role = [&](const char* key, const std::string& cls, bool required) -> fs::path {
      if (!j.contains(key)) {
        if (required)
          throw ConfigError(std::string("no '") + key + "' entry", manifest.string(), kLayoutHint);
        return {};
      }
      if (!j[key].is_string())
        throw ConfigError(std::string("'") + key + "' must be a folder name", manifest.string());
      const fs::path p = dir / j[key].get<std::string>();
      const std::string got = model_class(p);
      if (got.empty())
        throw IoError(std::string("'") + key + "' folder has no config.json with model_config",
                      p.string(), kLayoutHint);
      if (got != cls)
        throw ConfigError(
            std::string("'") + key + "' is a " + got + ", expected " + cls, manifest.string(),
            kind == ConditioningKind::kVector && std::string(key) == "base"
                ? "a CLIP text vector needs base40M-textvec (or -imagevec)"
            : std::string(key) == "base" ? "an image grid needs base40M / base300M / base1B"
                                         : "");
      return p;
    };
    set.base = role("base", want_base, true);
    set.upsample = role("upsample", kUpsampleClass, true);
    set.sdf = role("sdf", kSdfClass, false);
    return set;
  }
  std::map<std::string, std::vector<fs::path>> by_class;
  std::vector<fs::path> subdirs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& p : subdirs) {
    const std::string cls = model_class(p);
    if (!cls.empty()) by_class[cls].push_back(p);
  }
  auto pick = [&](const std::string& cls, const char* role, bool required) -> fs::path {
    const auto it = by_class.find(cls);
    if (it == by_class.end()) {
      if (!required) return {};
      std::string found;
      for (const auto& [c, ps] : by_class)
        for (const auto& p : ps)
          found += (found.empty() ? "" : ", ") + p.filename().string() + " (" + c + ")";
      throw ConfigError(std::string("no ") + role + " model (" + cls + ") in the folder" +
                            (found.empty() ? " (no model folders at all)" : "; found " + found),
                        dir.string(), kLayoutHint);
    }
    if (it->second.size() > 1)
      throw ConfigError(std::string("several ") + role + " models (" + cls +
                            "): " + it->second[0].filename().string() + ", " +
                            it->second[1].filename().string(),
                        dir.string(), "name the one to use in DIR/pointe.json");
    return it->second.front();
  };
  set.base = pick(want_base,
                  kind == ConditioningKind::kVector ? "text-vector base" : "image-grid base", true);
  set.upsample = pick(kUpsampleClass, "upsampler", true);
  set.sdf = pick(kSdfClass, "SDF", false);
  return set;
}

PointEModels load_models(const ModelSet& set, const c10::Device& device,
                         std::array<int64_t, 2> points) {
  PointEModels m;
  ComponentInfo base = pointe_component(set.base);
  ComponentInfo up = pointe_component(set.upsample);
  if (points[0] > 0 && base.config.contains("model_config"))
    base.config["model_config"]["n_ctx"] = points[0];
  if (points[1] > 0 && up.config.contains("model_config"))
    up.config["model_config"]["n_ctx"] = points[1];
  if (points[0] > 0 && up.config.contains("model_config"))
    up.config["model_config"]["cond_ctx"] = points[0];
  m.base = load_diffusion_model(base);
  m.upsample = load_diffusion_model(up);
  m.base_diffusion = diffusion_for(base);
  m.upsample_diffusion = diffusion_for(up);
  m.base->to(device);
  m.upsample->to(device);
  if (!set.sdf.empty()) {
    m.sdf = load_sdf_model(pointe_component(set.sdf));
    m.sdf->to(device);
  }
  return m;
}

at::Tensor sample_points(const PointEModels& models, const Conditioning& cond, uint64_t seed,
                         const SamplingOptions& o, const StepProgress& progress) {
  torch::NoGradGuard no_grad;
  if (!models.base || !models.upsample)
    throw UsageError("base and upsampler models must be loaded", "sample_points");
  const ModelKind want =
      cond.kind == ConditioningKind::kVector ? ModelKind::ClipVector : ModelKind::ClipGrid;
  if (models.base->config().kind != want)
    throw UsageError(
        "the base model (" + models.base->config().name + ") does not take " +
            (cond.kind == ConditioningKind::kVector ? "a CLIP vector" : "an image grid"),
        cond.source,
        cond.kind == ConditioningKind::kVector ? "use base40M-textvec" : "use base40M/300M/1B");
  for (int k = 0; k < 2; ++k) {
    const auto& m = k == 0 ? models.base : models.upsample;
    if (o.num_points[k] != m->config().n_ctx)
      throw UsageError(std::string(k == 0 ? "base" : "upsampler") +
                           " stage: " + std::to_string(o.num_points[k]) +
                           " points, but the model takes " + std::to_string(m->config().n_ctx),
                       "sample_points",
                       "Point-E models sample exactly n_ctx points (1024 base, 3072 upsampler)");
    if (o.steps[k] < 1) throw UsageError("sampler steps must be >= 1", "sample_points");
  }
  if (models.upsample->config().cond_ctx != o.num_points[0])
    throw UsageError("the upsampler conditions on " +
                         std::to_string(models.upsample->config().cond_ctx) +
                         " low-res points, the base makes " + std::to_string(o.num_points[0]),
                     "sample_points");
  const bool upsampler_conditioned = cond.kind == ConditioningKind::kGrid;
  std::vector<SamplerStage> stages(2);
  stages[0].model = models.base;
  stages[0].diffusion = models.base_diffusion;
  stages[1].model = models.upsample;
  stages[1].diffusion = models.upsample_diffusion;
  stages[1].use_conditioning = upsampler_conditioned;
  const c10::Device device = models.base->parameters().front().device();
  for (int k = 0; k < 2; ++k) {
    stages[k].num_points = o.num_points[k];
    stages[k].karras.steps = o.steps[k];
    stages[k].karras.sigma_min = o.sigma_min;
    stages[k].karras.sigma_max = o.sigma_max[k];
    stages[k].karras.s_churn = o.s_churn[k];
    stages[k].karras.guidance_scale = o.guidance[k];
    stages[k].karras.device = device;
  }
  if (!upsampler_conditioned) stages[1].karras.guidance_scale = 0.0;
  PointCloudSampler sampler(std::move(stages), models.base->config().input_channels);
  auto gen = std::make_shared<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(seed));
  const NoiseFn noise = [gen](at::IntArrayRef shape) {
    return at::randn(shape, *gen, at::TensorOptions(at::kFloat));
  };
  // Progress from the per-call observers (the sampler's yields only come at the end of a stage):
  // Heun makes two denoise calls per step and one (Euler) in the last, so after call c of a
  // stage of n steps, c / 2 steps are done, and all n after call 2n - 1.
  std::vector<CallObserver> observers;
  auto calls = std::make_shared<std::array<int64_t, 2>>(std::array<int64_t, 2>{0, 0});
  if (progress)
    for (int k = 0; k < 2; ++k)
      observers.push_back([&progress, &o, calls, k](const DenoiseCall&) {
        const int64_t n = o.steps[k], c = ++(*calls)[k];
        const int64_t done = c >= 2 * n - 1 ? n : c / 2;
        if (c >= 2 * n - 1 || c % 2 == 0) progress(k, done, n);
      });
  return sampler.sample(cond.embedding.to(device), noise, {}, observers);
}

mesh::Mesh to_mesh(const ColoredMesh& cm, const std::string& name) {
  mesh::Mesh m;
  mesh::SubMesh s;
  s.name = name;
  s.positions.assign(cm.positions.begin(), cm.positions.end());
  if (!cm.colors.empty()) {
    s.colors.reserve(cm.colors.size());
    for (const auto& c : cm.colors) s.colors.push_back({c[0], c[1], c[2], 1.0f});
  }
  s.indices.reserve(cm.faces.size() * 3);
  for (const auto& f : cm.faces)
    for (int k = 0; k < 3; ++k) s.indices.push_back(static_cast<uint32_t>(f[k]));
  s.material = 0;
  mesh::Material mat;
  mat.name = name;
  m.materials.push_back(mat);
  m.submeshes.push_back(std::move(s));
  mesh::compute_missing_normals(m);
  return m;
}

GenerateResult generate_mesh(const PointEModels& models, const Conditioning& cond,
                             const GenerateOptions& options, const StepProgress& progress) {
  torch::NoGradGuard no_grad;
  if (!models.sdf)
    throw UsageError("no SDF model loaded: a mesh needs one", "generate_mesh",
                     "add the sdf model folder to the model set");
  mesh::check_filter_options(options.filters);  // before the (long) sampling
  GenerateResult r;
  auto t0 = Clock::now();
  r.points = sample_points(models, cond, options.seed, options.sampling, progress)[0];
  r.sample_seconds = seconds_since(t0);
  const at::Tensor coords = r.points.narrow(0, 0, 3).t().contiguous();
  const at::Tensor rgb = r.points.narrow(0, 3, 3).clamp(0, 255).round().div(255.0).t().contiguous();
  t0 = Clock::now();
  PointCloudSdfModel sdf = models.sdf;
  const at::Tensor grid = sdf_grid(sdf, coords, options.mesh).to(at::kCPU);
  r.sdf_seconds = seconds_since(t0);
  t0 = Clock::now();
  r.raw = grid_to_mesh(grid, options.mesh.side_length, coords.to(at::kCPU), rgb.to(at::kCPU));
  r.marching_cubes_seconds = seconds_since(t0);
  if (r.raw.faces.empty())
    throw Error("marching cubes found no surface in the SDF grid", "generate_mesh",
                "try another seed or a finer --grid");
  r.mesh = to_mesh(r.raw);
  r.filters = mesh::apply_filters(r.mesh, options.filters);
  return r;
}

}  // namespace studio::pointe
