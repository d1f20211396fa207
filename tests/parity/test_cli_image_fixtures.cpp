// `studio image` end to end on sd-tiny: for every txt2img / img2img reference case, the PNG it
// writes matches diffusers' PNG of that case (±1 level) and carries its parameters and the
// AI-generated marker (checked with oiiotool, as a user would); bad inputs fail clearly.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "core/atomic_file.h"
#include "image/image_io.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
namespace fs = std::filesystem;
using test::shell_quote;

namespace {
at::Tensor png_u8(const fs::path& p) {
  return image::to_uint8(image::read_image(p).pixels).to(at::kInt);
}
}  // namespace

TEST_CASE("studio image reproduces the reference PNGs with metadata", "[parity][cli][image]") {
  const fs::path root = test::fixtures_root();
  const fs::path ref = root / "sd-tiny-ref";
  const fs::path out = test::temp_dir("cli_image_parity");
  int cases = 0;
  for (const auto& e : fs::directory_iterator(ref)) {
    if (e.path().extension() != ".json") continue;
    const auto j = test::read_json(e.path());
    if (!j.contains("call") || !j["call"].contains("pipeline") || !j["call"].contains("seed"))
      continue;
    ++cases;
    const auto& call = j["call"];
    const std::string name = e.path().stem().string();
    DYNAMIC_SECTION(name) {
      const fs::path sched = out / (name + ".scheduler_config.json");
      write_file_atomic(sched, call["scheduler_config"].dump());
      const fs::path png = out / (name + ".png");
      std::string args = "image --device cpu --model " + shell_quote((root / "sd-tiny").string()) +
                         " --prompt " + shell_quote(call["prompt"].get<std::string>()) +
                         " --seed " + std::to_string(call["seed"].get<uint64_t>()) + " --steps " +
                         std::to_string(call["num_inference_steps"].get<int>()) + " --guidance " +
                         call["guidance_scale"].dump() + " --scheduler-config " +
                         shell_quote(sched.string()) + " --out " + shell_quote(png.string());
      if (call["negative_prompt"].is_string())
        args += " --negative " + shell_quote(call["negative_prompt"].get<std::string>());
      if (call.contains("image"))
        args += " --init " + shell_quote((ref / "input_64.png").string()) + " --strength " +
                call["strength"].dump();
      else
        args += " --size " + std::to_string(call["width"].get<int>()) + "x" +
                std::to_string(call["height"].get<int>());
      const auto r = test::run_studio(args);
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      const at::Tensor mine = png_u8(png);
      const at::Tensor theirs = png_u8(ref / j["files"]["image_png"].get<std::string>());
      CHECK((mine - theirs).abs().max().item<int>() <= 1);

      const std::string info =
          test::run_command("oiiotool --info -v " + shell_quote(png.string())).output;
      CHECK_THAT(info, Catch::Contains("parameters"));
      CHECK_THAT(info, Catch::Contains(call["prompt"].get<std::string>()));
      CHECK_THAT(info, Catch::Contains("Seed: " + std::to_string(call["seed"].get<uint64_t>())));
      // The AI-generated marker is XMP (oiiotool 2.4 does not list PNG XMP; exiv2 does).
      const std::string xmp = test::run_command("exiv2 -px " + shell_quote(png.string())).output;
      CHECK_THAT(xmp, Catch::Contains("Xmp.iptcExt.DigitalSourceType"));
      CHECK_THAT(xmp,
                 Catch::Contains(call.contains("image") ? "compositeWithTrainedAlgorithmicMedia"
                                                        : "/trainedAlgorithmicMedia"));
      const auto side = test::read_json(fs::path(png.string() + ".json"));
      CHECK(side["seed"] == call["seed"]);
      CHECK(side["timesteps"].get<std::vector<double>>() ==
            j["timesteps_used"].get<std::vector<double>>());
    }
  }
  CHECK(cases >= 5);
}

TEST_CASE("studio image gives clear errors for bad inputs", "[parity][cli][image]") {
  const fs::path root = test::fixtures_root();
  const fs::path out = test::temp_dir("cli_image_errors");
  const std::string model = shell_quote((root / "sd-tiny").string());

  SECTION("truncated init image") {
    const fs::path bad = test::data_root() / "photos" / "truncated.jpg";
    const auto r = test::run_studio("image --device cpu --model " + model + " --prompt x --init " +
                                    shell_quote(bad.string()) + " --out " +
                                    shell_quote((out / "a.png").string()));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("truncated.jpg"));
  }
  SECTION("missing component folder") {
    const fs::path copy = out / "no-vae";
    test::copy_tree_writable(root / "sd-tiny", copy);
    fs::remove_all(copy / "vae");
    const auto r = test::run_studio("image --device cpu --model " + shell_quote(copy.string()) +
                                    " --prompt x --out " + shell_quote((out / "b.png").string()));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("component 'vae'") && Catch::Contains("missing"));
  }
  SECTION("UNet config disagreeing with its weights") {
    const fs::path copy = out / "bad-unet";
    test::copy_tree_writable(root / "sd-tiny", copy);
    auto cfg = test::read_json(copy / "unet" / "config.json");
    cfg["layers_per_block"] = 1;
    write_file_atomic(copy / "unet" / "config.json", cfg.dump(2));
    const auto r = test::run_studio("image --device cpu --model " + shell_quote(copy.string()) +
                                    " --prompt x --out " + shell_quote((out / "c.png").string()));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("weights error") && Catch::Contains("unexpected"));
  }
  SECTION("unknown scheduler") {
    const auto r = test::run_studio("image --device cpu --model " + model +
                                    " --prompt x --scheduler nope --out " +
                                    shell_quote((out / "d.png").string()));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("nope"));
  }
}
