// `studio mesh generate` end to end on the tiny fixture models: an embedding
// file to a GLB with a sidecar; a prompt and a photo through tiny random CLIP
// folders; clear refusals (bad model folder, bad embedding, missing --clip, bad
// extension) before any model is loaded; the short form `studio mesh --model ...` and the clean-up
// options (--smooth, --simplify, --faces, --min-component). fixtures.h includes ATen, whose glog
// CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/tensor_io.h"
#include "mesh/gltf_check.h"
#include "mesh/mesh_io.h"
#include "tests/support/process.h"
#include "text/clip_text_projection.h"
#include "text/clip_vision_model.h"

using namespace studio;
using namespace studio::test;
namespace fs = std::filesystem;

namespace {

fs::path tiny() { return fixtures_root() / "pointe-tiny"; }

fs::path text_embedding_file(const fs::path& dir) {
  const at::Tensor e =
      load_npy(fixtures_root() / "pointe-tiny-ref" / "inputs" / "sampler_text_embeddings.npy");
  const fs::path p = dir / "text.npy";
  save_npy(p, e[0].contiguous());
  return p;
}

}  // namespace

TEST_CASE("studio mesh generate: embedding to GLB with sidecar", "[unit][cli][mesh][pointe]") {
  const fs::path dir = temp_dir("cli_mesh_generate");
  const fs::path emb = text_embedding_file(dir);
  const fs::path glb = dir / "product.glb";
  const auto r =
      run_studio("mesh generate --model " + shell_quote(tiny().string()) + " --embedding " +
                 shell_quote(emb.string()) + " --out " + shell_quote(glb.string()) +
                 " --steps 6 --grid 24 --seed 3 --device cpu");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("base step 6/6") && Catch::Contains("upsampler step 6/6"));
  CHECK(mesh::check_glb_file(glb).empty());
  const auto side = read_json(glb.string() + ".json");
  CHECK(side["command"] == "mesh generate");
  CHECK(side["ai_generated"] == true);
  CHECK(side["digital_source_type"].get<std::string>().find("trainedAlgorithmicMedia") !=
        std::string::npos);
  CHECK(side["parameters"]["seed"] == 3);
  CHECK(side["parameters"]["grid"] == 24);
  CHECK(side["conditioning"]["kind"] == "clip_vector");
  CHECK(side["models"]["base"]["sha256"]["model.safetensors"].get<std::string>().size() == 64);
  CHECK(side["parameters"]["up"] == "Point-E z-up rotated to y-up");
  const mesh::Mesh back = mesh::import_mesh(glb);
  CHECK(back.triangle_count() == side["mesh"]["triangles"].get<size_t>());
  CHECK(back.vertex_count() == side["mesh"]["vertices"].get<size_t>());

  // --up y keeps Point-E's coordinates: the default rotated (x, y, z) -> (x, z, -y).
  const fs::path kept = dir / "kept.glb";
  const auto k =
      run_studio("mesh generate --model " + shell_quote(tiny().string()) + " --embedding " +
                 shell_quote(emb.string()) + " --out " + shell_quote(kept.string()) +
                 " --steps 6 --grid 24 --seed 3 --device cpu --up y");
  INFO(k.output);
  REQUIRE(k.exit_code == 0);
  const auto ks = read_json(kept.string() + ".json");
  const auto& rb = side["mesh"]["bounds"];
  const auto& kb = ks["mesh"]["bounds"];
  CHECK(std::abs(rb["min"][0].get<double>() - kb["min"][0].get<double>()) < 1e-6);
  CHECK(std::abs(rb["min"][1].get<double>() - kb["min"][2].get<double>()) < 1e-6);
  CHECK(std::abs(rb["max"][2].get<double>() + kb["min"][1].get<double>()) < 1e-6);

  // .ply by extension; --points 128 samples 32 + 96 (n_ctx overridden).
  const fs::path ply = dir / "product.ply";
  const auto p =
      run_studio("mesh generate --model " + shell_quote(tiny().string()) + " --embedding " +
                 shell_quote(emb.string()) + " --out " + shell_quote(ply.string()) +
                 " --steps 2 --grid 16 --points 128 --no-sidecar");
  INFO(p.output);
  CHECK(p.exit_code == 0);
  CHECK_THAT(p.output,
             Catch::Contains("sampling 32 + 96 points") && Catch::Contains("sampled 128 points"));
  CHECK(fs::exists(ply));
  CHECK(!fs::exists(ply.string() + ".json"));
}

TEST_CASE("studio mesh generate: prompt through a CLIP folder", "[unit][cli][mesh][pointe]") {
  const fs::path dir = temp_dir("cli_mesh_generate_prompt");
  // A tiny random CLIPModel-style folder: starter-tiny's tokenizer, projection
  // to 768.
  const fs::path clip = dir / "clip";
  copy_tree_writable(source_dir() / "configs" / "starter-tiny" / "tokenizer", clip);
  const ClipTokenizer tok = ClipTokenizer::load(clip);
  nlohmann::json cfg{{"projection_dim", 768},
                     {"text_config",
                      {{"vocab_size", tok.vocab_size()},
                       {"hidden_size", 32},
                       {"intermediate_size", 64},
                       {"num_hidden_layers", 2},
                       {"num_attention_heads", 4},
                       {"max_position_embeddings", 77},
                       {"eos_token_id", tok.eos_id()}}}};
  write_file(clip / "config.json", cfg.dump(2));
  torch::manual_seed(11);
  ClipTextModelWithProjection model(ClipTextConfig::from_json(cfg, "test"), 768);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& t : model->named_parameters(true))
    tensors.emplace_back(t.key(), t.value().detach().clone());
  save_safetensors(clip / "model.safetensors", tensors);

  const fs::path glb = dir / "mug.glb";
  const auto r = run_studio("mesh generate --model " + shell_quote(tiny().string()) +
                            " --prompt 'a red mug' --clip " + shell_quote(clip.string()) +
                            " --out " + shell_quote(glb.string()) + " --steps 2 --grid 16");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto side = read_json(glb.string() + ".json");
  CHECK(side["conditioning"]["prompt"] == "a red mug");
  CHECK(side["conditioning"]["clip"]["sha256"]["model.safetensors"].get<std::string>().size() ==
        64);
}

TEST_CASE("studio mesh generate: clear refusals", "[unit][cli][mesh][pointe]") {
  const fs::path dir = temp_dir("cli_mesh_generate_errors");
  const fs::path emb = text_embedding_file(dir);
  const std::string out = " --out " + shell_quote((dir / "x.glb").string());
  auto bad_model = run_studio("mesh generate --model " + shell_quote(dir.string()) +
                              " --embedding " + shell_quote(emb.string()) + out);
  CHECK(bad_model.exit_code == 1);
  CHECK_THAT(bad_model.output, Catch::Contains("no text-vector base model"));
  save_npy(dir / "bad.npy", torch::randn({5, 5}));
  auto bad_emb = run_studio("mesh generate --model " + shell_quote(tiny().string()) +
                            " --embedding " + shell_quote((dir / "bad.npy").string()) + out);
  CHECK(bad_emb.exit_code == 1);
  CHECK_THAT(bad_emb.output, Catch::Contains("neither a CLIP vector"));
  auto image = run_studio("mesh generate --model " + shell_quote(tiny().string()) +
                          " --image photo.jpg" + out);
  CHECK(image.exit_code == 1);
  CHECK_THAT(image.output, Catch::Contains("--image needs --clip"));
  auto no_clip =
      run_studio("mesh generate --model " + shell_quote(tiny().string()) + " --prompt mug" + out);
  CHECK(no_clip.exit_code == 1);
  CHECK_THAT(no_clip.output, Catch::Contains("--clip"));
  auto bad_ext = run_studio("mesh generate --model " + shell_quote(tiny().string()) +
                            " --embedding " + shell_quote(emb.string()) + " --out x.stl");
  CHECK(bad_ext.exit_code != 0);
  CHECK(!fs::exists(dir / "x.glb"));
}

TEST_CASE("studio mesh generate: photo through a CLIP vision tower", "[unit][cli][mesh][pointe]") {
  torch::NoGradGuard no_grad;
  const fs::path dir = temp_dir("cli_mesh_generate_image");
  // A one-layer random vision tower with ViT-L/14's grid (1024 wide, 224 / 14 =
  // 16 x 16 patches).
  const fs::path clip = dir / "clip";
  fs::create_directories(clip);
  nlohmann::json cfg{{"vision_config",
                      {{"hidden_size", 1024},
                       {"intermediate_size", 64},
                       {"num_hidden_layers", 1},
                       {"num_attention_heads", 16},
                       {"image_size", 224},
                       {"patch_size", 14}}}};
  write_file(clip / "config.json", cfg.dump(2));
  torch::manual_seed(12);
  ClipVisionModel model(ClipVisionConfig::from_json(cfg, "test"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& t : model->named_parameters(true))
    tensors.emplace_back(t.key(), t.value().detach().clone() * 0.02);
  save_safetensors(clip / "model.safetensors", tensors);
  const fs::path photo = source_dir() / "samples" / "quickstart" / "photos" / "espresso.jpg";
  const fs::path glb = dir / "cup.glb";
  const auto r =
      run_studio("mesh generate --model " + shell_quote(tiny().string()) + " --image " +
                 shell_quote(photo.string()) + " --clip " + shell_quote(clip.string()) + " --out " +
                 shell_quote(glb.string()) + " --steps 2 --grid 16 --device cpu");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto side = read_json(glb.string() + ".json");
  CHECK(side["conditioning"]["kind"] == "clip_image_grid");
  CHECK(side["models"]["base"]["dir"].get<std::string>().find("base-imagegrid") !=
        std::string::npos);
  CHECK(side["parameters"]["guidance"][1] == 3.0);
}

TEST_CASE("studio mesh --model: the short form of mesh generate, with clean-up",
          "[unit][cli][mesh][pointe]") {
  const fs::path dir = temp_dir("cli_mesh_short_form");
  const fs::path emb = text_embedding_file(dir);
  const std::string common = " --model " + shell_quote(tiny().string()) + " --embedding " +
                             shell_quote(emb.string()) + " --steps 3 --grid 24 --seed 5";
  const fs::path plain = dir / "plain.glb";
  const auto p = run_studio("mesh generate" + common + " --out " + shell_quote(plain.string()));
  INFO(p.output);
  REQUIRE(p.exit_code == 0);
  const auto ps = read_json(plain.string() + ".json");
  CHECK(!ps.contains("filters"));

  // The form: no sub-command, the same options, plus the filters.
  const fs::path glb = dir / "product.glb";
  const auto r = run_studio("mesh" + common + " --out " + shell_quote(glb.string()) +
                            " --smooth 4 --simplify 0.5 --min-component 0.05");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("base step 3/3") && Catch::Contains("filters: "));
  CHECK(mesh::check_glb_file(glb).empty());
  const auto side = read_json(glb.string() + ".json");
  CHECK(side["command"] == "mesh generate");
  CHECK(side["parameters"]["smooth"] == 4);
  CHECK(side["parameters"]["simplify"] == 0.5);
  // Same seed, same marching-cubes mesh as the plain run; then the filters.
  CHECK(side["mesh"]["marching_cubes"]["triangles"] == ps["mesh"]["triangles"]);
  CHECK(side["filters"]["faces_before"] == ps["mesh"]["triangles"]);
  CHECK(side["filters"]["faces_after"] == side["mesh"]["triangles"]);
  CHECK(side["filters"]["faces_after"].get<size_t>() < ps["mesh"]["triangles"].get<size_t>());
  CHECK(side["filters"]["smooth"]["iterations"] == 4);
  CHECK(side["filters"].contains("hausdorff_estimate"));
  const mesh::Mesh back = mesh::import_mesh(glb);
  CHECK(back.triangle_count() == side["mesh"]["triangles"].get<size_t>());

  // `mesh generate` takes the filters too; --faces instead of a ratio.
  const fs::path ply = dir / "few.ply";
  const auto g =
      run_studio("mesh generate" + common + " --out " + shell_quote(ply.string()) + " --faces 200");
  INFO(g.output);
  REQUIRE(g.exit_code == 0);
  CHECK(read_json(ply.string() + ".json")["filters"]["simplify"]["target_faces"] == 200);

  // Neither a sub-command nor --model: the help and a clear message, exit 2.
  const auto bare = run_studio("mesh");
  CHECK(bare.exit_code == 2);
  CHECK_THAT(bare.output, Catch::Contains("give a sub-command") && Catch::Contains("generate"));
  const auto no_model = run_studio("mesh --embedding " + shell_quote(emb.string()) + " --out " +
                                   shell_quote((dir / "x.glb").string()));
  CHECK(no_model.exit_code == 2);
  CHECK_THAT(no_model.output, Catch::Contains("needs --model DIR and --out FILE"));
  const auto before_sub = run_studio("mesh --model " + shell_quote(tiny().string()) + " info " +
                                     shell_quote(plain.string()));
  CHECK(before_sub.exit_code == 2);
  CHECK_THAT(before_sub.output, Catch::Contains("before the 'info' sub-command"));
  // Bad filter options fail before any model is loaded.
  const auto bad = run_studio("mesh" + common + " --out " +
                              shell_quote((dir / "bad.glb").string()) + " --simplify 2");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("ratio in (0, 1]"));
  CHECK_THAT(bad.output, !Catch::Contains("loading"));
  CHECK(!fs::exists(dir / "bad.glb"));
}
