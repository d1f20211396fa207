// `studio mesh generate` (and its short form `studio mesh --model ...`): Point-E from a text prompt
// (CLIP text model with projection), a precomputed CLIP embedding, or a photo (CLIP vision tower's
// latent grid), to a coloured mesh (optionally cleaned: floaters, smoothing, simplification)
// written as GLB / OBJ / PLY, with a JSON sidecar (parameters, model hashes, AI-generated marking)
// and per-step progress on stderr.
#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "mesh/mesh_generate.h"
#include "mesh/mesh_io.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"
#include "text/clip_text_projection.h"
#include "text/clip_vision_model.h"

namespace studio {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct GenerateCliOptions {
  std::string model, prompt, clip, embedding, image, out;
  int64_t points = 0;  // 0: the models' n_ctx (1024 + 3072)
  int64_t grid = 0;    // 0: 128 on CUDA, 64 on CPU
  uint64_t seed = 0;
  std::vector<int64_t> steps;  // one value for both stages, or base,upsampler
  double guidance = 3.0;
  std::string device = "auto";
  std::string up = "z";  // Point-E's up axis; z is rotated to glTF's +Y
  bool no_sidecar = false;
  // Clean-up (mesh/mesh_filters.h): Taubin iterations, a ratio or a face count, floaters.
  int64_t smooth = 0;
  double simplify = 0;
  int64_t faces = 0;
  double min_component = 0;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// sha256 of a model folder's weight files (one per shard), for the sidecar.
nlohmann::json folder_hashes(const fs::path& dir) {
  nlohmann::json j{{"dir", dir.string()}};
  nlohmann::json files = nlohmann::json::object();
  for (const auto& f : find_weight_files(dir)) files[f.filename().string()] = sha256_file_hex(f);
  j["sha256"] = files;
  return j;
}

int run_generate(const GenerateCliOptions& o) {
  const auto start = Clock::now();
  // Everything that can be checked before loading a model is checked first.
  const int inputs = !o.prompt.empty() + !o.embedding.empty() + !o.image.empty();
  if (inputs != 1)
    throw UsageError("give exactly one of --prompt, --embedding, --image", "mesh generate",
                     "--prompt TEXT --clip DIR, --image PHOTO --clip DIR, or --embedding FILE "
                     "(.npy / .safetensors)");
  if ((!o.prompt.empty() || !o.image.empty()) && o.clip.empty())
    throw UsageError(std::string(o.prompt.empty() ? "--image" : "--prompt") + " needs --clip DIR",
                     "mesh generate",
                     "a transformers CLIPModel folder, e.g. openai/clip-vit-large-patch14 "
                     "(model.safetensors + config.json + tokenizer files)");
  mesh::mesh_format_from_path(o.out);  // UsageError for an unknown extension
  if (o.up != "z" && o.up != "y")
    throw UsageError("--up must be z or y, not '" + o.up + "'", "--up",
                     "z (default) rotates Point-E's Z-up clouds to glTF's Y-up; y keeps them");
  if (o.points < 0 || o.grid < 0 || o.guidance < 0)
    throw UsageError("--points, --grid and --guidance must not be negative", "mesh generate");
  std::array<int64_t, 2> steps{64, 64};
  if (o.steps.size() == 1)
    steps = {o.steps[0], o.steps[0]};
  else if (o.steps.size() == 2)
    steps = {o.steps[0], o.steps[1]};
  else if (!o.steps.empty())
    throw UsageError("--steps takes one count or two (base,upsampler)", "--steps");
  if (steps[0] < 1 || steps[1] < 1) throw UsageError("--steps must be >= 1", "--steps");
  if (o.points % 4 != 0)
    throw UsageError("--points must be a multiple of 4 (base 1/4, upsampler 3/4)", "--points");
  const mesh::MeshFilterOptions filters =
      mesh::filter_options_from_cli(o.smooth, o.simplify, o.faces, o.min_component);

  pointe::Conditioning cond;
  if (!o.embedding.empty()) cond = pointe::load_conditioning(o.embedding);
  const pointe::ModelSet set =
      pointe::resolve_model_set(o.model, !o.embedding.empty() ? cond.kind
                                         : !o.image.empty()   ? pointe::ConditioningKind::kGrid
                                                              : pointe::ConditioningKind::kVector);
  if (set.sdf.empty())
    throw ConfigError("the model set has no SDF model", o.model,
                      "add Point-E's sdf model folder (CrossAttentionPointCloudSDFModel)");
  const c10::Device device = select_device(o.device);
  const int64_t grid = o.grid > 0 ? o.grid : (device.is_cuda() ? 128 : 64);

  nlohmann::json clip_json = nullptr;
  if (!o.prompt.empty()) {
    std::cerr << "mesh generate: encoding the prompt with " << o.clip << "\n";
    ClipTokenizer tokenizer = load_clip_folder_tokenizer(o.clip);
    ClipTextModelWithProjection clip = load_clip_text_with_projection(o.clip);
    cond.kind = pointe::ConditioningKind::kVector;
    cond.embedding = clip_text_embedding(clip, tokenizer, o.prompt);
    cond.source = "prompt";
    if (cond.embedding.size(1) != 768)
      throw ConfigError("the CLIP model projects to " + std::to_string(cond.embedding.size(1)) +
                            " dimensions; Point-E takes ViT-L/14's 768",
                        o.clip, "use openai/clip-vit-large-patch14");
    clip_json = folder_hashes(o.clip);
  }
  if (!o.image.empty()) {
    // Point-E's embed_images_grid: CLIP preprocessing, the vision tower's last-layer patch tokens.
    mesh::Texture photo;
    photo.name = o.image;
    const std::string bytes = read_file_bytes(o.image);
    photo.encoded.assign(bytes.begin(), bytes.end());
    // decode_texture picks OpenCV by MIME type; sniff it from the magic bytes.
    if (bytes.rfind("\x89PNG", 0) == 0)
      photo.mime_type = "image/png";
    else if (bytes.rfind("\xFF\xD8", 0) == 0)
      photo.mime_type = "image/jpeg";
    else if (bytes.rfind("BM", 0) == 0)
      photo.mime_type = "image/bmp";
    mesh::decode_texture(photo);  // FormatError naming the photo when undecodable
    std::cerr << "mesh generate: embedding the photo with " << o.clip << "\n";
    ClipVisionModel vision = load_clip_vision_model(o.clip);
    const at::Tensor rgba =
        at::from_blob(photo.rgba.data(), {photo.height, photo.width, 4}, at::kByte).clone();
    torch::NoGradGuard no_grad;
    cond.kind = pointe::ConditioningKind::kGrid;
    cond.embedding =
        vision->grid(clip_preprocess(rgba, vision->config().image_size)).to(at::kFloat);
    cond.source = o.image;
    if (cond.embedding.size(1) != 1024 || cond.embedding.size(2) != 256)
      throw ConfigError("the CLIP vision tower gives a " + c10::str(cond.embedding.sizes()) +
                            " grid; Point-E takes ViT-L/14's [1, 1024, 256]",
                        o.clip, "use openai/clip-vit-large-patch14");
    clip_json = folder_hashes(o.clip);
  }

  // --points N: the final cloud size, split 1:3 as Point-E's 1024 + 3072.
  std::array<int64_t, 2> points{0, 0};
  if (o.points > 0) {
    points = {o.points / 4, o.points - o.points / 4};
  }
  std::cerr << "mesh generate: loading " << set.base.filename().string() << ", "
            << set.upsample.filename().string() << ", " << set.sdf.filename().string() << " on "
            << device.str() << "\n";
  const pointe::PointEModels models = pointe::load_models(set, device, points);
  pointe::GenerateOptions go;
  go.seed = o.seed;
  go.sampling.num_points = {models.base->config().n_ctx, models.upsample->config().n_ctx};
  if (o.points > 0 && (points[0] != 1024 || points[1] != 3072))
    std::cerr << fmt::format(
        "mesh generate: note: sampling {} + {} points; Point-E was trained at 1024 + 3072\n",
        points[0], points[1]);
  go.sampling.steps = steps;
  go.sampling.guidance = {o.guidance,
                          cond.kind == pointe::ConditioningKind::kGrid ? o.guidance : 0.0};
  go.mesh.grid_size = grid;
  go.filters = filters;

  const char* stage_names[] = {"base", "upsampler"};
  std::unique_ptr<ProgressBar> bar;
  int bar_stage = -1;
  const bool tty = ProgressBar::enabled();
  const auto progress = [&](int stage, int64_t step, int64_t total) {
    if (tty) {
      if (stage != bar_stage) {
        if (bar) bar->finish();
        bar = std::make_unique<ProgressBar>(std::string("mesh generate: ") + stage_names[stage]);
        bar_stage = stage;
      }
      bar->update(static_cast<int>(step), static_cast<int>(total));
    } else {
      std::cerr << fmt::format("mesh generate: {} step {}/{}\n", stage_names[stage], step, total);
    }
  };
  pointe::GenerateResult r = pointe::generate_mesh(models, cond, go, progress);
  if (bar) bar->finish();
  std::cerr << fmt::format(
      "mesh generate: sampled {} points in {:.1f} s; SDF grid {}^3 in {:.1f} s; marching cubes "
      "{:.2f} s: {} vertices, {} triangles\n",
      r.points.size(1), r.sample_seconds, grid, r.sdf_seconds, r.marching_cubes_seconds,
      r.raw.positions.size(), r.raw.faces.size());
  if (r.filters.applied) std::cerr << "mesh generate: " << mesh::summary_line(r.filters) << "\n";
  const auto problems = mesh::validate_mesh(r.mesh);
  if (!problems.empty())
    throw Error("the generated mesh is not writable: " + problems.front(), o.out,
                "try another seed or --grid");
  // Point-E's clouds are Z-up (its plotting and renders put z up); glTF is Y-up. Rotation only.
  if (o.up == "z") mesh::normalise(r.mesh, {mesh::UpAxis::kZ, false, false});
  r.mesh.source = o.out;
  const std::vector<fs::path> written = mesh::write_mesh(r.mesh, o.out);

  if (!o.no_sidecar) {
    nlohmann::json cj{{"kind", cond.kind == pointe::ConditioningKind::kVector ? "clip_vector"
                                                                              : "clip_image_grid"}};
    if (!o.prompt.empty()) {
      cj["prompt"] = o.prompt;
      cj["clip"] = clip_json;
      cj["normalised"] = true;
    } else if (!o.image.empty()) {
      cj["image"] = o.image;
      cj["image_sha256"] = sha256_file_hex(o.image);
      cj["clip"] = clip_json;
    } else {
      cj["embedding"] = o.embedding;
      cj["embedding_sha256"] = sha256_file_hex(o.embedding);
    }
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : written) files.push_back(f.string());
    const auto b = r.mesh.bounds();
    nlohmann::json j{
        {"generator", std::string("studio ") + STUDIO_VERSION},
        {"command", "mesh generate"},
        {"ai_generated", true},
        {"digital_source_type",
         "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"},
        {"model", "Point-E (OpenAI, github.com/openai/point-e)"},
        {"conditioning", cj},
        {"models",
         {{"set", o.model},
          {"base", folder_hashes(set.base)},
          {"upsample", folder_hashes(set.upsample)},
          {"sdf", folder_hashes(set.sdf)}}},
        {"parameters",
         {{"seed", o.seed},
          {"steps", {steps[0], steps[1]}},
          {"guidance", {go.sampling.guidance[0], go.sampling.guidance[1]}},
          {"points", {go.sampling.num_points[0], go.sampling.num_points[1]}},
          {"grid", grid},
          {"side_length", go.mesh.side_length},
          {"up", o.up == "z" ? "Point-E z-up rotated to y-up" : "Point-E axes kept"},
          {"device", device.str()},
          {"smooth", o.smooth},
          {"simplify", o.simplify},
          {"faces", o.faces},
          {"min_component", o.min_component}}},
        {"mesh",
         {{"vertices", r.mesh.vertex_count()},
          {"triangles", r.mesh.triangle_count()},
          {"bounds", {{"min", b.min}, {"max", b.max}}},
          {"has_vertex_colors", true},
          {"has_normals", true}}},
        {"timings_s",
         {{"sample", r.sample_seconds},
          {"sdf_grid", r.sdf_seconds},
          {"marching_cubes", r.marching_cubes_seconds},
          {"filters", r.filters.seconds},
          {"total", seconds_since(start)}}},
        {"files", files},
    };
    if (r.filters.applied) {
      j["filters"] = mesh::to_json(r.filters);
      j["mesh"]["marching_cubes"] = {{"vertices", r.raw.positions.size()},
                                     {"triangles", r.raw.faces.size()}};
    }
    write_file_atomic(o.out + ".json", j.dump(2) + "\n");
  }
  std::cout << o.out << "\n";
  return kExitOk;
}

}  // namespace

namespace {

// The generation options, on `mesh generate` and on `mesh` itself (the short form).
void add_generate_options(CLI::App* app, GenerateCliOptions* o, const std::string& group) {
  const auto opt = [&](CLI::Option* option) { return option->group(group); };
  opt(app->add_option("--model", o->model,
                      "Point-E model set: folder of base / upsample / sdf model folders "
                      "(docs/pointe.md)"));
  opt(app->add_option("--prompt", o->prompt, "text prompt (needs --clip)"));
  opt(app->add_option(
      "--clip", o->clip,
      "transformers CLIP folder (CLIPModel / CLIPTextModelWithProjection, ViT-L/14)"));
  opt(app->add_option("--embedding", o->embedding,
                      "precomputed CLIP embedding: .npy / .safetensors, [768] vector or "
                      "[1024, 256] image grid"));
  opt(app->add_option(
      "--image", o->image,
      "product photo (needs --clip with the vision tower and an image-grid base model)"));
  opt(app->add_option("--out", o->out, "output mesh: .glb, .obj or .ply"));
  opt(app->add_option("--points", o->points,
                      "points in the final cloud, split 1:3 base:upsampler (default: the "
                      "models' 1024 + 3072)"));
  opt(app->add_option("--grid", o->grid, "SDF grid per axis (default 128 on CUDA, 64 on CPU)"));
  opt(app->add_option("--seed", o->seed, "noise seed (default 0)"));
  opt(app->add_option("--steps", o->steps, "Karras steps, N or base,upsampler (default 64)")
          ->delimiter(','));
  opt(app->add_option("--guidance", o->guidance,
                      "classifier-free guidance (default 3; the text upsampler is unguided)"));
  opt(app->add_option("--device", o->device, "auto, cpu, cuda, cuda:N"));
  opt(app->add_option(
      "--up", o->up,
      "Point-E's up axis: z (default, rotated to glTF's +Y) or y (coordinates kept)"));
  opt(app->add_option("--smooth", o->smooth,
                      "Taubin smoothing iterations (lambda 0.5, mu -0.53; default 0)"));
  opt(app->add_option("--simplify", o->simplify,
                      "QEM simplification to this ratio of the faces, in (0, 1] (default off)"));
  opt(app->add_option("--faces", o->faces, "QEM simplification to this many faces"));
  opt(app->add_option("--min-component", o->min_component,
                      "drop parts smaller than F (< 1: fraction of the faces, >= 1: faces)"));
  opt(app->add_flag("--no-sidecar", o->no_sidecar, "do not write OUT.json"));
}

}  // namespace

void add_mesh_generate_command(CLI::App& mesh, CommandAction* action) {
  auto o = std::make_shared<GenerateCliOptions>();
  auto* gen = mesh.add_subcommand(
      "generate", "Point-E: a prompt, photo or CLIP embedding to a coloured mesh (GLB, OBJ, PLY)");
  add_generate_options(gen, o.get(), "Options");
  gen->get_option("--model")->required();
  gen->get_option("--out")->required();
  gen->callback([action, o] { *action = [o] { return run_generate(*o); }; });

  // The short form, `studio mesh --model DIR (--prompt ... | --image ... | --embedding
  // ...) --out FILE [...]`: the same options on `mesh` itself, acted on when no sub-command was
  // given. CLI11 runs this callback after any sub-command's, so it can tell the two apart.
  auto p = std::make_shared<GenerateCliOptions>();
  add_generate_options(&mesh, p.get(), "Generate (short for 'mesh generate')");
  CLI::App* cmd = &mesh;
  mesh.callback([action, p, cmd] {
    bool any = false;
    for (const CLI::Option* opt : cmd->get_options())
      any |= opt->count() > 0 && opt->get_name() != "--help";
    if (!cmd->get_subcommands().empty()) {
      if (any)
        *action = [sub = cmd->get_subcommands().front()->get_name()] {
          std::cerr << "studio: mesh: generation options given before the '" << sub
                    << "' sub-command: put them after it, or use `studio mesh --model DIR ... "
                       "--out FILE` without one\n";
          return kExitUsage;
        };
      return;
    }
    if (p->model.empty() || p->out.empty()) {
      *action = [cmd, any] {
        if (!any) std::cerr << cmd->help();
        std::cerr << "studio: mesh: "
                  << (any ? "the short form of 'mesh generate' needs --model DIR and --out FILE"
                          : "give a sub-command (info, convert, render, check, generate) or "
                            "--model DIR ... --out FILE to generate a mesh")
                  << "\n";
        return kExitUsage;
      };
      return;
    }
    *action = [p] { return run_generate(*p); };
  });
}

}  // namespace studio
