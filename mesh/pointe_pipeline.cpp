// Point-E end to end: see pointe_pipeline.h.
#include "mesh/pointe_pipeline.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "mesh/marching_cubes.h"

namespace studio::pointe {

namespace {

GaussianDiffusion diffusion_for(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  if (!component.config.contains("diffusion_config"))
    throw ConfigError("config.json has no 'diffusion_config'", origin,
                      "add Point-E's DIFFUSION_CONFIGS entry for this model (see pointe-tiny/)");
  return GaussianDiffusion(
      DiffusionConfig::from_json(component.config["diffusion_config"], origin));
}

}  // namespace

at::Tensor sdf_grid(PointCloudSdfModel& model, const at::Tensor& coords,
                    const MeshOptions& options) {
  torch::NoGradGuard no_grad;
  const int64_t g = options.grid_size;
  if (g < 2 || options.batch_size < 1 || !(options.side_length > 0))
    throw UsageError("grid_size must be >= 2, batch_size >= 1 and side_length > 0", "sdf_grid");
  if (coords.dim() != 2 || coords.size(1) != 3)
    throw UsageError("point coordinates must be [N, 3], got " + c10::str(coords.sizes()),
                     "sdf_grid");
  const double voxel = options.side_length / static_cast<double>(g - 1);
  const double min_coord = -options.side_length / 2;
  const c10::Device device = model->parameters().front().device();
  const at::Tensor latents = model->encode(coords.to(device, at::kFloat).t().unsqueeze(0));
  const int64_t total = g * g * g;
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < total; i += options.batch_size) {
    const at::Tensor idx = at::arange(i, std::min(i + options.batch_size, total),
                                      at::TensorOptions(at::kLong).device(device));
    auto to_float = [&](const at::Tensor& c) { return c.to(at::kFloat) * voxel + min_coord; };
    const at::Tensor zs = to_float(idx.remainder(g));
    const at::Tensor ys = to_float(idx.div(g, "trunc").remainder(g));
    const at::Tensor xs = to_float(idx.div(g * g, "trunc"));
    parts.push_back(model->predict(at::stack({xs, ys, zs}).unsqueeze(0), latents)[0]);
  }
  return at::cat(parts).view({g, g, g});
}

ColoredMesh grid_to_mesh(const at::Tensor& grid_in, double side_length, const at::Tensor& coords,
                         const at::Tensor& rgb) {
  if (grid_in.dim() != 3 || grid_in.size(0) != grid_in.size(1) ||
      grid_in.size(0) != grid_in.size(2) || grid_in.size(0) < 2)
    throw UsageError("the SDF grid must be [G, G, G], G >= 2", "grid_to_mesh");
  at::Tensor grid = grid_in.to(at::kCPU, at::kFloat).contiguous().clone();
  const int64_t g = grid.size(0);
  const bool all_neg = (grid < 0).all().item<bool>(), all_pos = (grid > 0).all().item<bool>();
  if (all_neg || all_pos) {
    // No surface: Point-E centres the volume on its mean so marching cubes still finds one.
    const float mean = static_cast<float>(grid.to(at::kDouble).mean().item<double>());
    grid.sub_(mean);
  }
  const double voxel = side_length / static_cast<double>(g - 1);
  const mesh::IsoSurface iso =
      mesh::marching_cubes(grid.data_ptr<float>(), {g, g, g}, 0.0f, {voxel, voxel, voxel});
  ColoredMesh out;
  const float min_coord = static_cast<float>(-side_length / 2);
  out.positions.reserve(iso.vertices.size());
  for (const auto& v : iso.vertices)
    out.positions.push_back({v[0] + min_coord, v[1] + min_coord, v[2] + min_coord});
  // marching_cubes' faces face up the SDF's gradient; Point-E's (skimage's left-hand faces with
  // columns 0 and 1 swapped) face down it, so reverse each triangle.
  out.faces.reserve(iso.faces.size());
  for (const auto& f : iso.faces) out.faces.push_back({f[0], f[2], f[1]});

  if (coords.defined() && rgb.defined() && !out.positions.empty()) {
    if (coords.dim() != 2 || coords.size(1) != 3 || rgb.sizes() != coords.sizes())
      throw UsageError("coords and rgb must both be [N, 3]", "grid_to_mesh");
    const at::Tensor c = coords.to(at::kCPU, at::kFloat).contiguous();
    const at::Tensor col = rgb.to(at::kCPU, at::kFloat).contiguous();
    const int64_t nv = static_cast<int64_t>(out.positions.size());
    const at::Tensor verts =
        at::from_blob(out.positions.data(), {nv, 3}, at::TensorOptions(at::kFloat)).clone();
    const at::Tensor norms = c.pow(2).sum(-1);
    out.colors.resize(out.positions.size());
    const int64_t batch = 16384;  // Point-E's nearest_points batch
    for (int64_t i = 0; i < nv; i += batch) {
      const at::Tensor v = verts.narrow(0, i, std::min(batch, nv - i));
      const at::Tensor d = norms.unsqueeze(0) + v.pow(2).sum(-1).unsqueeze(1) - 2 * v.matmul(c.t());
      const at::Tensor nearest = d.argmin(-1).contiguous();
      const int64_t* idx = nearest.data_ptr<int64_t>();
      const float* cp = col.data_ptr<float>();
      for (int64_t k = 0; k < nearest.size(0); ++k)
        out.colors[i + k] = {cp[idx[k] * 3], cp[idx[k] * 3 + 1], cp[idx[k] * 3 + 2]};
    }
  }
  return out;
}

ColoredMesh points_to_mesh(PointCloudSdfModel& model, const at::Tensor& coords,
                           const at::Tensor& rgb, const MeshOptions& options) {
  return grid_to_mesh(sdf_grid(model, coords, options), options.side_length, coords, rgb);
}

PointE::PointE(const std::filesystem::path& base_dir, const std::filesystem::path& upsample_dir,
               const std::filesystem::path& sdf_dir, const c10::Device& device) {
  const ComponentInfo base = pointe_component(base_dir);
  const ComponentInfo up = pointe_component(upsample_dir);
  base_ = load_diffusion_model(base);
  upsample_ = load_diffusion_model(up);
  base_diffusion_ = diffusion_for(base);
  upsample_diffusion_ = diffusion_for(up);
  base_->to(device);
  upsample_->to(device);
  if (!sdf_dir.empty()) {
    sdf_ = load_sdf_model(pointe_component(sdf_dir));
    sdf_->to(device);
  }
}

at::Tensor PointE::sample(const at::Tensor& cond, bool upsampler_conditioned, uint64_t seed,
                          const SamplingOptions& o) const {
  std::vector<SamplerStage> stages(2);
  stages[0].model = base_;
  stages[0].diffusion = base_diffusion_;
  stages[1].model = upsample_;
  stages[1].diffusion = upsample_diffusion_;
  stages[1].use_conditioning = upsampler_conditioned;
  for (int k = 0; k < 2; ++k) {
    stages[k].num_points = o.num_points[k];
    stages[k].karras.steps = o.steps[k];
    stages[k].karras.sigma_min = o.sigma_min;
    stages[k].karras.sigma_max = o.sigma_max[k];
    stages[k].karras.s_churn = o.s_churn[k];
    stages[k].karras.guidance_scale = o.guidance[k];
  }
  if (!upsampler_conditioned) stages[1].karras.guidance_scale = 0.0;
  PointCloudSampler sampler(std::move(stages), base_->config().input_channels);
  auto gen = std::make_shared<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(seed));
  const NoiseFn noise = [gen](at::IntArrayRef shape) {
    return at::randn(shape, *gen, at::TensorOptions(at::kFloat));
  };
  return sampler.sample(cond, noise);
}

at::Tensor PointE::text_to_points(const at::Tensor& embeddings, uint64_t seed,
                                  SamplingOptions options) const {
  if (base_->config().kind != ModelKind::ClipVector)
    throw UsageError("text_to_points needs a CLIP-vector base model (base40M-textvec), not " +
                     base_->config().name);
  return sample(embeddings, false, seed, options);
}

at::Tensor PointE::image_to_points(const at::Tensor& grids, uint64_t seed,
                                   const SamplingOptions& options) const {
  if (base_->config().kind != ModelKind::ClipGrid)
    throw UsageError("image_to_points needs an image-grid base model (base40M/300M/1B), not " +
                     base_->config().name);
  return sample(grids, true, seed, options);
}

ColoredMesh PointE::points_to_mesh(const at::Tensor& sample, const MeshOptions& options) const {
  if (!sdf_) throw UsageError("no SDF model loaded", "PointE::points_to_mesh");
  if (sample.dim() != 2 || sample.size(0) < 6)
    throw UsageError("a sample must be [6, N] (xyz, RGB in 0..255)", "PointE::points_to_mesh");
  const at::Tensor coords = sample.narrow(0, 0, 3).t().contiguous();
  const at::Tensor rgb = sample.narrow(0, 3, 3).clamp(0, 255).round().div(255.0).t().contiguous();
  PointCloudSdfModel sdf = sdf_;
  return pointe::points_to_mesh(sdf, coords, rgb, options);
}

}  // namespace studio::pointe
