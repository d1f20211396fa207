// Point-E generation for callers (CLI, benchmarks): a model folder set (base, upsampler, SDF) and
// a CLIP conditioning -> coloured point cloud -> marching-cubes mesh as a mesh::Mesh with vertex
// colours and normals, ready for the GLB / OBJ / PLY writers. Built on mesh/pointe_pipeline.h.
#pragma once

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "mesh/mesh.h"
#include "mesh/mesh_filters.h"
#include "mesh/pointe_diffusion.h"
#include "mesh/pointe_pipeline.h"

namespace studio::pointe {

// What the base model is conditioned on: a CLIP ViT-L/14 text/image vector [B, 768] (unit norm;
// base40M-textvec) or an image latent grid [B, 1024, 256] (base40M / 300M / 1B).
enum class ConditioningKind { kVector, kGrid };

struct Conditioning {
  ConditioningKind kind = ConditioningKind::kVector;
  at::Tensor embedding;  // [1, 768] or [1, 1024, 256], fp32 CPU
  std::string source;    // file or "prompt", for messages and sidecars
};

// Reads a precomputed embedding: .npy, or .safetensors holding exactly one tensor. Accepted
// shapes: [768] / [1, 768] (vector, L2-normalised here as Point-E's embed_text does) and
// [1024, 256] / [1, 1024, 256] (grid, as embed_images_grid returns it). FormatError otherwise.
Conditioning load_conditioning(const std::filesystem::path& file);

// The folders of one Point-E model set. A set DIR is resolved as follows:
//  1. DIR/pointe.json, if present: {"base": "sub", "upsample": "sub", "sdf": "sub"} (folders
//     relative to DIR; "sdf" optional). Each folder's class is still checked.
//  2. otherwise every immediate subfolder with a config.json is classified by its model_config
//     class: the upsampler (CLIPImageGridUpsample...), the SDF model (CrossAttention...SDF), and
//     the base model matching the conditioning (CLIPImagePointDiffusionTransformer for a vector,
//     CLIPImageGridPointDiffusionTransformer for a grid). Two candidates for a role is an error
//     that asks for a pointe.json.
// So pointe-tiny/ (base-textvec, base-imagegrid, upsample, sdf) works as it is.
struct ModelSet {
  std::filesystem::path base, upsample, sdf;  // sdf may be empty (no mesh then)
};
ModelSet resolve_model_set(const std::filesystem::path& dir, ConditioningKind kind);

// The loaded models and their diffusions.
struct PointEModels {
  PointDiffusionTransformer base{nullptr}, upsample{nullptr};
  GaussianDiffusion base_diffusion{DiffusionConfig{}}, upsample_diffusion{DiffusionConfig{}};
  PointCloudSdfModel sdf{nullptr};
};
// Loads a resolved set strictly (pointe_models.h) and moves it to `device` (fp32). `points`
// (base, upsampler), when non-zero, replaces the configs' n_ctx (and the upsampler's cond_ctx):
// the models have no positional embeddings, so the weights fit any count, but Point-E was
// trained at 1024 + 3072.
PointEModels load_models(const ModelSet& set, const c10::Device& device = c10::kCPU,
                         std::array<int64_t, 2> points = {0, 0});

// Called as sampler steps complete (live, from the denoiser calls): stage 0 = base, 1 =
// upsampler; step in 1..total, (stage, total, total) right after the stage's last model call.
using StepProgress = std::function<void(int stage, int64_t step, int64_t total)>;

// text2pointcloud (vector: guided base, unconditioned unguided upsampler) or image2pointcloud
// (grid: both stages conditioned and guided), as PointE::text_to_points / image_to_points, with a
// per-step callback. `options.num_points` must equal each model's n_ctx. Returns [1, 6, N0 + N1]
// (xyz, RGB in 0..255). Deterministic in `seed` (Point-E's draws for torch.manual_seed(seed)).
at::Tensor sample_points(const PointEModels& models, const Conditioning& cond, uint64_t seed,
                         const SamplingOptions& options, const StepProgress& progress = {});

// A ColoredMesh (Point-E's vertex colours in [0, 1]) as one sub-mesh with RGBA colours, area-
// weighted vertex normals and a white, fully rough material.
mesh::Mesh to_mesh(const ColoredMesh& mesh, const std::string& name = "pointe");

struct GenerateOptions {
  SamplingOptions sampling = PointE::text_defaults();
  MeshOptions mesh;  // grid_size etc.
  uint64_t seed = 0;
  // Clean-up of the marching-cubes mesh (mesh/mesh_filters.h): floaters, Taubin smoothing, QEM
  // simplification. Default: none.
  mesh::MeshFilterOptions filters;
};

struct GenerateResult {
  at::Tensor points;           // [6, N0 + N1]
  ColoredMesh raw;             // what points_to_mesh returned
  mesh::Mesh mesh;             // to_mesh(raw), then options.filters
  mesh::FilterReport filters;  // what the filters did (filters.applied false when none ran)
  double sample_seconds = 0, sdf_seconds = 0, marching_cubes_seconds = 0;
};

// sample_points + sdf_grid + grid_to_mesh + to_mesh + mesh::apply_filters(options.filters).
// `options.sampling.guidance[1]` is ignored for vector conditioning (Point-E's text pipeline leaves
// the upsampler unguided).
GenerateResult generate_mesh(const PointEModels& models, const Conditioning& cond,
                             const GenerateOptions& options, const StepProgress& progress = {});

}  // namespace studio::pointe
