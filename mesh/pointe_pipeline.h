// Point-E end to end for callers (CLI, jobs): CLIP conditioning -> coloured point cloud (base +
// upsampler, Karras sampling) -> SDF on a grid -> marching cubes mesh with vertex colours, as
// plain vectors that mesh/mesh.h users can wrap. Mirrors point_e/util/pc_to_mesh.py.
#pragma once

#include <ATen/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "mesh/pointe_diffusion.h"
#include "mesh/pointe_models.h"

namespace studio::pointe {

// A triangle mesh: positions, RGB in [0, 1] per vertex (empty without colours), faces
// counter-clockwise seen from outside (right-hand rule, as Point-E writes them).
struct ColoredMesh {
  std::vector<std::array<float, 3>> positions;
  std::vector<std::array<float, 3>> colors;
  std::vector<std::array<int32_t, 3>> faces;
};

struct MeshOptions {
  int64_t grid_size = 128;    // samples per axis (Point-E's notebook uses 32)
  double side_length = 1.02;  // the cube, centred at the origin, that is sampled
  int64_t batch_size = 4096;  // query points per SDF model call
};

// The SDF of `coords` [N, 3] on grid_size^3 points, [G, G, G] indexed [ix, iy, iz], at
// i * side / (G - 1) - side / 2 per axis.
at::Tensor sdf_grid(PointCloudSdfModel& model, const at::Tensor& coords,
                    const MeshOptions& options);

// Marching cubes at level 0 of a [G, G, G] SDF grid (centred on its mean first when it has no sign
// change, as Point-E does); vertex colours from the nearest of `coords` [N, 3] / `rgb` [N, 3]
// (both optional: undefined -> no colours).
ColoredMesh grid_to_mesh(const at::Tensor& grid, double side_length, const at::Tensor& coords = {},
                         const at::Tensor& rgb = {});

// sdf_grid + grid_to_mesh for one point cloud: `coords` [N, 3], `rgb` [N, 3] in [0, 1].
ColoredMesh points_to_mesh(PointCloudSdfModel& model, const at::Tensor& coords,
                           const at::Tensor& rgb, const MeshOptions& options = {});

// Sampler settings per stage (base, upsampler); defaults are PointCloudSampler's.
struct SamplingOptions {
  std::array<int64_t, 2> num_points{1024, 3072};
  std::array<int64_t, 2> steps{64, 64};
  std::array<double, 2> guidance{3.0, 3.0};
  std::array<double, 2> sigma_max{120.0, 160.0};
  std::array<double, 2> s_churn{3.0, 0.0};
  double sigma_min = 1e-3;
};

// The loaded Point-E models (folders with config.json + model.safetensors, see pointe-tiny/).
class PointE {
 public:
  // `sdf_dir` may be empty (no meshes then). Models run fp32 on `device`; noise is always drawn
  // on the CPU (Point-E's draws) and moved there.
  PointE(const std::filesystem::path& base_dir, const std::filesystem::path& upsample_dir,
         const std::filesystem::path& sdf_dir = {}, const c10::Device& device = c10::kCPU);

  // text2pointcloud: CLIP ViT-L/14 text embeddings [B, 768] (unit norm) for a base-*textvec
  // model; the upsampler is unconditioned and unguided (guidance[1] is ignored).
  // Returns [B, 6, N0 + N1]: xyz, RGB in 0..255. Deterministic in `seed` (Point-E's draws for
  // torch.manual_seed(seed)).
  at::Tensor text_to_points(const at::Tensor& embeddings, uint64_t seed,
                            SamplingOptions options = text_defaults()) const;
  // image2pointcloud: CLIP latent grids [B, 1024, 256] for an image-grid base model; both
  // stages conditioned and guided.
  at::Tensor image_to_points(const at::Tensor& grids, uint64_t seed,
                             const SamplingOptions& options = {}) const;
  // One sample [6, N] (as returned above, one row) to a mesh with vertex colours.
  ColoredMesh points_to_mesh(const at::Tensor& sample, const MeshOptions& options = {}) const;

  static SamplingOptions text_defaults() {
    SamplingOptions o;
    o.guidance = {3.0, 0.0};
    return o;
  }

  const PointDiffusionTransformer& base() const { return base_; }
  const PointDiffusionTransformer& upsampler() const { return upsample_; }

 private:
  at::Tensor sample(const at::Tensor& cond, bool upsampler_conditioned, uint64_t seed,
                    const SamplingOptions& options) const;

  PointDiffusionTransformer base_{nullptr}, upsample_{nullptr};
  GaussianDiffusion base_diffusion_{DiffusionConfig{}}, upsample_diffusion_{DiffusionConfig{}};
  PointCloudSdfModel sdf_{nullptr};
};

}  // namespace studio::pointe
