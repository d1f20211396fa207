// txt2img / img2img against diffusers on sd-tiny: prompt embeddings, initial latents, the latents
// after every scheduler step, and the final image. Data-driven: every sd-tiny-ref case whose call
// names a pipeline and a seed (the scheduler config is taken from the case).
#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "core/tensor_io.h"
#include "image/sd_pipeline.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

TEST_CASE("SD pipelines match diffusers step by step on sd-tiny", "[parity][sd_pipeline]") {
  const fs::path root = test::fixtures_root();
  const fs::path ref = root / "sd-tiny-ref";
  auto pipe = image::SdPipeline::load(root / "sd-tiny", "cpu", "fp32");
  int cases = 0;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(ref))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const auto j = test::read_json(file);
    if (!j.contains("call") || !j["call"].contains("pipeline") || !j["call"].contains("seed"))
      continue;
    ++cases;
    const auto& call = j["call"];
    const std::string name = file.stem().string();
    DYNAMIC_SECTION(name) {
      image::GenerateRequest r;
      r.prompt = call["prompt"].get<std::string>();
      r.negative_prompt = call["negative_prompt"].is_string() ? call["negative_prompt"].get<std::string>() : "";
      r.seed = call["seed"].get<uint64_t>();
      r.steps = call["num_inference_steps"].get<int>();
      r.guidance = call["guidance_scale"].get<double>();
      r.eta = call.value("eta", 0.0);
      r.scheduler_config = call["scheduler_config"];
      r.keep_step_latents = true;
      const bool img2img = call.contains("image");
      if (img2img) {
        const at::Tensor u8 = load_npy(ref / "input_64.npy");  // HWC uint8
        r.init_image = (u8.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat) / 255.0) * 2 - 1;
        r.strength = call["strength"].get<double>();
        r.width = static_cast<int>(u8.size(1));
        r.height = static_cast<int>(u8.size(0));
      } else {
        r.width = call["width"].get<int>();
        r.height = call["height"].get<int>();
      }
      const auto out = pipe->generate(r);
      const auto& files_j = j["files"];
      auto load = [&](const char* key) {
        return load_npy(ref / files_j[key].get<std::string>());
      };
      CHECK(out.timesteps == j["timesteps_used"].get<std::vector<double>>());
      CHECK(test::max_abs_diff(out.prompt_embeds, load("prompt_embeds")) <= 1e-5);
      if (files_j.contains("negative_prompt_embeds"))
        CHECK(test::max_abs_diff(out.negative_prompt_embeds, load("negative_prompt_embeds")) <=
              1e-5);
      CHECK(test::max_abs_diff(out.init_latents, load("init_latents")) <= (img2img ? 1e-5 : 1e-6));
      const at::Tensor steps = load("step_latents");
      REQUIRE(static_cast<int64_t>(out.step_latents.size()) == steps.size(0));
      for (int64_t i = 0; i < steps.size(0); ++i) {
        INFO("step " << i);
        CHECK(test::max_abs_diff(out.step_latents[i], steps[i]) <= 2e-5 * test::max_abs(steps[i]));
      }
      CHECK(test::max_abs_diff(out.images, load("image_npy")) <= 1e-4);
    }
  }
  CHECK(cases >= 5);
}
