// Point-E generation (mesh/mesh_generate.h) on the tiny fixture models: a fixture text embedding
// to a GLB that passes gltf_check and re-imports with points_to_mesh's counts; model-set layout
// resolution; clear errors for bad folders and embedding files; `studio bench mesh` JSON.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/tensor_io.h"
#include "mesh/gltf_check.h"
#include "mesh/mesh_generate.h"
#include "mesh/mesh_io.h"
#include "tests/support/expect_error.h"
#include "tests/support/process.h"

using namespace studio;
using namespace studio::test;
namespace fs = std::filesystem;

namespace {

fs::path tiny() { return fixtures_root() / "pointe-tiny"; }

// Row 0 of the fixture's unit-norm sampler embeddings as a [768] .npy.
fs::path text_embedding_file(const fs::path& dir) {
  const at::Tensor e =
      load_npy(fixtures_root() / "pointe-tiny-ref" / "inputs" / "sampler_text_embeddings.npy");
  const fs::path p = dir / "text.npy";
  save_npy(p, e[0].contiguous());
  return p;
}

pointe::GenerateOptions tiny_options() {
  pointe::GenerateOptions o;
  o.sampling.num_points = {64, 192};
  o.sampling.steps = {8, 8};
  o.mesh.grid_size = 32;
  o.seed = 0;
  return o;
}

}  // namespace

TEST_CASE("mesh generate: fixture text embedding to a GLB with points_to_mesh's counts",
          "[unit][mesh][pointe]") {
  const fs::path dir = temp_dir("mesh_generate_glb");
  const pointe::Conditioning cond = pointe::load_conditioning(text_embedding_file(dir));
  REQUIRE(cond.kind == pointe::ConditioningKind::kVector);
  CHECK(std::abs(cond.embedding.norm().item<double>() - 1.0) < 1e-5);

  const pointe::ModelSet set = pointe::resolve_model_set(tiny(), cond.kind);
  CHECK(set.base.filename() == "base-textvec");
  CHECK(set.upsample.filename() == "upsample");
  CHECK(set.sdf.filename() == "sdf");
  const pointe::PointEModels models = pointe::load_models(set);

  std::vector<std::array<int64_t, 3>> calls;
  const auto opts = tiny_options();
  const pointe::GenerateResult r =
      pointe::generate_mesh(models, cond, opts, [&](int stage, int64_t step, int64_t total) {
        calls.push_back({stage, step, total});
      });
  // Progress: steps 1..8 of each stage, in order, ending with (stage, 8, 8).
  REQUIRE(calls.size() == 16);
  for (size_t i = 0; i < calls.size(); ++i) {
    CHECK(calls[i][0] == static_cast<int64_t>(i / 8));
    CHECK(calls[i][1] == static_cast<int64_t>(i % 8) + 1);
    CHECK(calls[i][2] == 8);
  }

  // The same as the PointE facade (the parity-tested path) with the same seed.
  pointe::PointE pe(set.base, set.upsample, set.sdf);
  const at::Tensor ref = pe.text_to_points(cond.embedding, 0, opts.sampling)[0];
  CHECK(max_abs_diff(ref, r.points) == 0.0);
  const pointe::ColoredMesh ref_mesh = pe.points_to_mesh(ref, opts.mesh);
  REQUIRE(!ref_mesh.faces.empty());
  CHECK(r.raw.positions.size() == ref_mesh.positions.size());
  CHECK(r.raw.faces.size() == ref_mesh.faces.size());

  // mesh::Mesh: one sub-mesh, colours RGBA, normals unit length.
  REQUIRE(r.mesh.submeshes.size() == 1);
  const auto& s = r.mesh.submeshes[0];
  CHECK(s.positions.size() == ref_mesh.positions.size());
  CHECK(s.colors.size() == s.positions.size());
  CHECK(s.normals.size() == s.positions.size());
  CHECK(s.indices.size() == 3 * ref_mesh.faces.size());
  CHECK(s.colors[0][3] == 1.0f);
  CHECK(mesh::validate_mesh(r.mesh).empty());

  const fs::path glb = dir / "product.glb";
  mesh::write_glb(r.mesh, glb);
  const auto problems = mesh::check_glb_file(glb);
  INFO((problems.empty() ? std::string() : problems.front()));
  CHECK(problems.empty());
  const mesh::Mesh back = mesh::import_mesh(glb);
  CHECK(back.vertex_count() == ref_mesh.positions.size());
  CHECK(back.triangle_count() == ref_mesh.faces.size());
  REQUIRE(!back.submeshes.empty());
  CHECK(!back.submeshes[0].colors.empty());
}

TEST_CASE("mesh generate: image-grid conditioning picks the grid base model",
          "[unit][mesh][pointe]") {
  const fs::path dir = temp_dir("mesh_generate_grid");
  const at::Tensor g =
      load_npy(fixtures_root() / "pointe-tiny-ref" / "inputs" / "grid_embeddings.npy");
  save_safetensors(dir / "grid.safetensors", {{"embedding", g[0].contiguous()}});
  const pointe::Conditioning cond = pointe::load_conditioning(dir / "grid.safetensors");
  REQUIRE(cond.kind == pointe::ConditioningKind::kGrid);
  CHECK(cond.embedding.sizes() == at::IntArrayRef({1, 1024, 256}));
  const pointe::ModelSet set = pointe::resolve_model_set(tiny(), cond.kind);
  CHECK(set.base.filename() == "base-imagegrid");
  const pointe::PointEModels models = pointe::load_models(set);
  pointe::GenerateOptions o = tiny_options();
  o.sampling.steps = {3, 3};
  o.sampling.guidance = {3.0, 3.0};
  o.mesh.grid_size = 16;
  const pointe::GenerateResult r = pointe::generate_mesh(models, cond, o);
  CHECK(r.points.sizes() == at::IntArrayRef({6, 256}));
  CHECK(r.mesh.triangle_count() > 0);
}

TEST_CASE("mesh generate: model set layouts and clear errors", "[unit][mesh][pointe]") {
  const fs::path dir = temp_dir("mesh_generate_layout");
  // A manifest naming the roles.
  const fs::path set_dir = dir / "set";
  copy_tree_writable(tiny(), set_dir);
  write_file(set_dir / "pointe.json",
             R"({"base": "base-textvec", "upsample": "upsample", "sdf": "sdf"})");
  CHECK(pointe::resolve_model_set(set_dir, pointe::ConditioningKind::kVector).base.filename() ==
        "base-textvec");
  // The manifest's base is a text model: an image grid cannot use it.
  CHECK_THAT(test::error_of<ConfigError>(
                 [&] { pointe::resolve_model_set(set_dir, pointe::ConditioningKind::kGrid); }),
             Catch::Contains("CLIPImageGridPointDiffusionTransformer"));
  write_file(set_dir / "pointe.json", R"({"base": "upsample", "upsample": "upsample"})");
  CHECK_THAT(test::error_of<ConfigError>(
                 [&] { pointe::resolve_model_set(set_dir, pointe::ConditioningKind::kVector); }),
             Catch::Contains("'base' is a CLIPImageGridUpsamplePointDiffusionTransformer"));
  fs::remove(set_dir / "pointe.json");
  // Two text-vector bases: ambiguous without a manifest.
  copy_tree_writable(tiny() / "base-textvec", set_dir / "base-textvec-2");
  CHECK_THAT(test::error_of<ConfigError>(
                 [&] { pointe::resolve_model_set(set_dir, pointe::ConditioningKind::kVector); }),
             Catch::Contains("several text-vector base models") && Catch::Contains("pointe.json"));
  // No models at all / not a folder.
  fs::create_directories(dir / "empty");
  CHECK_THAT(test::error_of<ConfigError>([&] {
               pointe::resolve_model_set(dir / "empty", pointe::ConditioningKind::kVector);
             }),
             Catch::Contains("no text-vector base model"));
  CHECK_THROWS_AS(pointe::resolve_model_set(dir / "absent", pointe::ConditioningKind::kVector),
                  IoError);
  // Broken weights: strict loading names the file.
  const fs::path broken = dir / "broken";
  copy_tree_writable(tiny(), broken);
  write_file(broken / "upsample" / "model.safetensors", "not a safetensors file");
  const pointe::ModelSet bs = pointe::resolve_model_set(broken, pointe::ConditioningKind::kVector);
  CHECK_THROWS_AS(pointe::load_models(bs), Error);
}

TEST_CASE("mesh generate: bad embedding files are refused clearly", "[unit][mesh][pointe]") {
  const fs::path dir = temp_dir("mesh_generate_embedding");
  save_npy(dir / "short.npy", torch::randn({10}));
  CHECK_THAT(test::error_of<FormatError>([&] { pointe::load_conditioning(dir / "short.npy"); }),
             Catch::Contains("neither a CLIP vector [768] nor an image grid [1024, 256]"));
  save_npy(dir / "zero.npy", torch::zeros({768}));
  CHECK_THAT(test::error_of<FormatError>([&] { pointe::load_conditioning(dir / "zero.npy"); }),
             Catch::Contains("zero"));
  save_npy(dir / "ints.npy", torch::ones({768}, torch::kLong));
  CHECK_THAT(test::error_of<FormatError>([&] { pointe::load_conditioning(dir / "ints.npy"); }),
             Catch::Contains("floating point"));
  write_file(dir / "e.txt", "0.1 0.2");
  CHECK_THAT(test::error_of<FormatError>([&] { pointe::load_conditioning(dir / "e.txt"); }),
             Catch::Contains(".npy or .safetensors"));
  write_file(dir / "cut.npy", "\x93NUMPY garbage");
  CHECK_THROWS_AS(pointe::load_conditioning(dir / "cut.npy"), Error);
  save_safetensors(dir / "two.safetensors",
                   {{"a", torch::randn({768})}, {"b", torch::randn({768})}});
  CHECK_THAT(
      test::error_of<FormatError>([&] { pointe::load_conditioning(dir / "two.safetensors"); }),
      Catch::Contains("exactly one"));
  CHECK_THROWS_AS(pointe::load_conditioning(dir / "absent.npy"), IoError);
}

TEST_CASE("studio bench mesh on the tiny configs writes positive figures",
          "[unit][mesh][pointe][cli]") {
  const fs::path dir = temp_dir("bench_mesh");
  const fs::path json = dir / "bench.json";
  const auto r =
      run_studio("bench mesh --config-dir " + shell_quote(tiny().string()) +
                 " --device cpu --steps 2,2 --grid 16 --json " + shell_quote(json.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("base sampler") && Catch::Contains("marching cubes"));
  const auto j = read_json(json);
  CHECK(j["benchmark"] == "mesh");
  CHECK(j["models"]["base"] == "base-textvec");
  CHECK(j["points"][0] == 64);
  CHECK(j["points"][1] == 192);
  for (const char* k : {"base_s_per_step", "upsample_s_per_step", "sdf_grid_s", "marching_cubes_s",
                        "total_s", "peak_rss_mib", "upsample_step_vs_base_step",
                        "base_s_per_model_call", "upsample_s_per_model_call"}) {
    INFO(k);
    REQUIRE(j.contains(k));
    CHECK(j[k].get<double>() > 0);
  }
  double share = 0;
  for (const char* k : {"base", "upsample", "sdf_grid", "marching_cubes"})
    share += j["share"][k].get<double>();
  CHECK(std::abs(share - 1.0) < 1e-9);
  CHECK(j["parameters"]["base"] == 183756);
  CHECK(j["mesh"]["faces"].get<int>() > 0);
  CHECK(j["estimated_default_run_s"].get<double>() > 0);
}
