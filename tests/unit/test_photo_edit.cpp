// Editing a product photo end to end (image/photo_edit.h) on the tiny random-weight sd-tiny
// pipeline and coffee.png: the product's pixels inside the mask are the photo's bit for bit
// (also through an 8-bit PNG), outside they follow the edit; channel sizes are exact; bad inputs
// (mask size, empty mask, truncated JPEG, pixel limit) are clear errors.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "image/image_io.h"
#include "image/photo_edit.h"
#include "pipeline/job_spec.h"
#include "pipeline/presets.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

image::SdPipeline& tiny() {
  static auto pipe = image::SdPipeline::load(test::fixtures_root() / "sd-tiny", "cpu", "fp32");
  return *pipe;
}

fs::path coffee() { return test::data_root() / "photos" / "coffee.png"; }

// A mask file the photo's size: a centred rectangle (white = product).
fs::path write_rect_mask(const fs::path& dir, int w, int h) {
  at::Tensor m = at::zeros({h, w, 1});
  m.narrow(0, h / 4, h / 2).narrow(1, w / 3, w / 3).fill_(1.0);
  const fs::path p = dir / "mask.png";
  image::write_image(p, m, {});
  return p;
}

image::PhotoEditRequest small_request(const fs::path& photo) {
  image::PhotoEditRequest r;
  r.photo = photo;
  r.source_prompt = "a cup of coffee";
  r.prompt = "a cup of coffee on snow, winter";
  r.steps = 4;
  r.guidance = 7.5;
  r.work_pixels = 64 * 64;
  r.mask_options.feather = 4;
  return r;
}

}  // namespace

TEST_CASE("photo edit: the product's pixels stay exactly as photographed", "[photo_edit]") {
  const fs::path dir = test::temp_dir("photo_edit_keep");
  const image::Image photo = image::read_image(coffee());
  image::PhotoEditRequest r = small_request(coffee());
  r.mask = write_rect_mask(dir, photo.width, photo.height).string();
  const image::PhotoEditResult res = image::edit_photo(tiny(), r);

  REQUIRE(res.has_mask);
  REQUIRE(res.edited.sizes() == at::IntArrayRef({photo.height, photo.width, 3}));
  const at::Tensor inside = res.mask.soft == 1.0f;
  const at::Tensor outside = res.mask.soft == 0.0f;
  REQUIRE(inside.sum().item<int64_t>() > 0);
  const at::Tensor rgb = photo.pixels.narrow(-1, 0, 3);
  // Bit for bit inside the mask.
  CHECK(at::equal(res.edited.masked_select(inside.unsqueeze(-1).expand_as(rgb)),
                  rgb.masked_select(inside.unsqueeze(-1).expand_as(rgb))));
  // The edit changed the rest of the picture.
  const at::Tensor diff_out =
      (res.edited - rgb).abs().masked_select(outside.unsqueeze(-1).expand_as(rgb));
  CHECK(diff_out.mean().item<double>() > 0.01);
  // Still exact after an 8-bit PNG round trip.
  const fs::path png = dir / "edited.png";
  image::write_image(png, res.edited, {});
  const at::Tensor back = image::read_image(png).pixels;
  const at::Tensor sel = inside.unsqueeze(-1).expand_as(rgb);
  CHECK(at::equal(back.masked_select(sel), rgb.masked_select(sel)));
  CHECK(res.unet_calls > 0);
  CHECK(res.parameters.at("mask").at("product_pixels").get<int64_t>() ==
        inside.sum().item<int64_t>());
}

TEST_CASE("photo edit: channel sizes are exact, padding is outpainted", "[photo_edit]") {
  const fs::path dir = test::temp_dir("photo_edit_channel");
  const image::Image photo = image::read_image(coffee());
  image::PhotoEditRequest r = small_request(coffee());
  r.mask = write_rect_mask(dir, photo.width, photo.height).string();
  r.channel_width = 72;
  r.channel_height = 128;  // story-like: coffee.png is landscape, so the product may need padding
  r.fit = image::FitMode::kPad;
  const image::PhotoEditResult res = image::edit_photo(tiny(), r);
  REQUIRE(res.fitted);
  CHECK(res.output.sizes() == at::IntArrayRef({128, 72, 3}));
  CHECK(res.parameters.at("channel").at("outpainted").get<bool>());
  // Outpainting runs a second inversion + regeneration.
  image::PhotoEditRequest no_out = r;
  no_out.outpaint = false;
  const image::PhotoEditResult plain = image::edit_photo(tiny(), no_out);
  CHECK(res.unet_calls > plain.unet_calls);
  // Where the canvas holds the edited photo (not fill), both agree exactly.
  const at::Tensor kept = (res.fit.fill == 0).unsqueeze(-1).expand_as(res.output);
  CHECK(at::equal(res.output.masked_select(kept), plain.output.masked_select(kept)));
}

TEST_CASE("photo edit: bad inputs are clear errors", "[photo_edit]") {
  const fs::path dir = test::temp_dir("photo_edit_bad");
  image::PhotoEditRequest r = small_request(coffee());

  SECTION("a mask of a different size") {
    r.mask = write_rect_mask(dir, 40, 30).string();
    try {
      image::edit_photo(tiny(), r);
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(), Catch::Contains("mask.png"));
      CHECK_THAT(e.what(), Catch::Contains("40"));
    }
  }
  SECTION("an empty mask") {
    const image::Image photo = image::read_image(coffee());
    const fs::path p = dir / "empty.png";
    image::write_image(p, at::zeros({photo.height, photo.width, 1}), {});
    r.mask = p.string();
    CHECK_THROWS_AS(image::edit_photo(tiny(), r), UsageError);
  }
  SECTION("a truncated JPEG") {
    r.photo = test::data_root() / "photos" / "truncated.jpg";
    r.mask = "none";
    try {
      image::edit_photo(tiny(), r);
      FAIL("accepted");
    } catch (const FormatError& e) {
      CHECK_THAT(e.what(), Catch::Contains("truncated.jpg"));
    }
  }
  SECTION("a photo over the pixel limit") {
    r.max_photo_pixels = 1000;
    r.mask = "none";
    try {
      image::edit_photo(tiny(), r);
      FAIL("accepted");
    } catch (const FormatError& e) {
      CHECK_THAT(e.what(), Catch::Contains("coffee.png"));
    }
  }
  SECTION("no edited prompt") {
    r.prompt.clear();
    CHECK_THROWS_AS(image::edit_photo(tiny(), r), UsageError);
  }
}

TEST_CASE("studio edit writes the edit, its parameters, sidecar, mask and sheet",
          "[photo_edit][cli]") {
  const fs::path dir = test::temp_dir("photo_edit_cli");
  const image::Image photo = image::read_image(coffee());
  const fs::path mask = write_rect_mask(dir, photo.width, photo.height);
  const std::string model = test::shell_quote((test::fixtures_root() / "sd-tiny").string());
  const std::string common =
      "edit --model " + model + " --prompt 'a cup on snow' --steps 3 " + "--work-pixels 4096 ";
  const auto r = test::run_studio(
      common + "--image " + test::shell_quote(coffee().string()) + " --mask " +
      test::shell_quote(mask.string()) + " --size 96x64 --fit crop --source-prompt 'a cup' " +
      "--p2p refine --out " + test::shell_quote((dir / "e.png").string()) + " --sheet " +
      test::shell_quote((dir / "sheet.png").string()) + " --save-mask " +
      test::shell_quote((dir / "m.png").string()) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const image::Image out = image::read_image(dir / "e.png");
  CHECK(out.width == 96);
  CHECK(out.height == 64);
  CHECK(out.metadata.parameters.find("Inversion: negative-prompt") != std::string::npos);
  const auto side = read_json_file(dir / "e.png.json");
  CHECK(side["kind"] == "edit");
  CHECK(side["prompt_to_prompt"]["mode"] == "refine");
  CHECK(side["channel"]["fit"] == "crop");
  CHECK(side["photo_sha256"].get<std::string>().size() == 64);
  CHECK(image::read_image(dir / "m.png").width == photo.width);
  CHECK(image::read_image(dir / "sheet.png").width > photo.width);

  // A truncated photo is refused before the model loads; a bad method is a usage error.
  const auto bad = test::run_studio(
      common + "--image " +
      test::shell_quote((test::data_root() / "photos" / "truncated.jpg").string()) + " --out " +
      test::shell_quote((dir / "x.png").string()) + " 2>&1");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("truncated.jpg"));
  CHECK_THAT(bad.output, !Catch::Contains("loading"));
  const auto method = test::run_studio(common + "--image " + test::shell_quote(coffee().string()) +
                                       " --inversion magic --out " +
                                       test::shell_quote((dir / "x.png").string()) + " 2>&1");
  CHECK(method.exit_code == 1);
  CHECK_THAT(method.output, Catch::Contains("ddim, negative-prompt, null-text, direct"));
}

TEST_CASE("job presets accept exactly the inversion methods the image stage has", "[photo_edit]") {
  const PresetLibrary lib(test::source_dir() / "presets");
  auto resolve = [&](const std::string& method) {
    return lib.resolve("instagram-square", "draft",
                       {{"visual", {{"edit", {{"inversion", method}}}}}});
  };
  for (const auto& name : image::inversion_method_names()) {
    INFO(name);
    CHECK(resolve(name)["visual"]["edit"]["inversion"] == name);
    CHECK(image::inversion_method_name(image::parse_inversion_method(name)) == name);
  }
  CHECK_THROWS(resolve("magic"));
  CHECK(resolve("ddim")["visual"]["edit"]["p2p"] == "");
}
