// Image file I/O: round trips per format, orientation, alpha, the AUTOMATIC1111 `parameters` text,
// embedded metadata checked with independent readers (oiiotool, exiv2), clear errors for bad
// input, and every real photo under $STUDIO_DATA/photos.
#include <ATen/ATen.h>

#include <sys/wait.h>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>

#include "core/error.h"
#include "image/image_io.h"
#include "tests/support/expect_error.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
using namespace studio::image;
namespace fs = std::filesystem;

namespace {

std::string q(const fs::path& p) { return test::shell_quote(p.string()); }

// A smooth, asymmetric test picture [H, W, C] in [0, 1] (JPEG/WebP-friendly), alpha from 0 to 1.
at::Tensor gradient(int64_t h, int64_t w, int64_t c) {
  const at::Tensor y = at::linspace(0, 1, h).view({h, 1}).expand({h, w});
  const at::Tensor x = at::linspace(0, 1, w).view({1, w}).expand({h, w});
  std::vector<at::Tensor> ch = {x, y, 0.25 + 0.5 * x * y, 1 - 0.5 * (x + y) / 2};
  if (c == 1) return ch[0].unsqueeze(2).contiguous();
  if (c == 2) return at::stack({ch[0], ch[3]}, 2).contiguous();
  ch.resize(static_cast<std::size_t>(c));
  return at::stack(ch, 2).contiguous();
}

// Random samples on the grid of a `levels`-level integer format (exact in a lossless file).
at::Tensor quantized_noise(int64_t h, int64_t w, int64_t c, double levels, uint64_t seed) {
  at::manual_seed(seed);
  return at::rand({h, w, c}).mul(levels).round().div(levels).to(at::kFloat);
}

double mean_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().mean().item<double>();
}

uint32_t crc32_of(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (const unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(crc32_of(type + data));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// AUTOMATIC1111 parameters text

TEST_CASE("a1111_parameters reproduces the webui's own documented example", "[unit][image_io]") {
  // The example in the docstring of parse_generation_parameters, modules/infotext_utils.py
  // (AUTOMATIC1111/stable-diffusion-webui): the text the webui writes under a picture.
  const std::string expected =
      "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, "
      "heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), "
      "detailed, intricate\n"
      "Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, "
      "disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn "
      "hands), messy drawing\n"
      "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, "
      "Model hash: 45dee52b";
  GenerationParams p;
  p.prompt =
      "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, "
      "heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), "
      "detailed, intricate";
  p.negative_prompt =
      "ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn "
      "face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing";
  p.steps = 20;
  p.sampler = "Euler a";
  p.cfg_scale = 7;
  p.seed = 965400086;
  p.width = 512;
  p.height = 512;
  p.model_hash = "45dee52b";
  CHECK(a1111_parameters(p) == expected);
}

TEST_CASE("a1111_parameters matches a webui 1.9.4 infotext with quoted fields",
          "[unit][image_io]") {
  // A `parameters` chunk of a PNG saved by webui v1.9.4 (quoted in the comments of a public
  // extension, then unwrapped): Schedule type after Sampler, VAE fields after Model, values with
  // ',' or ':' JSON-quoted, extra fields in order.
  const std::string expected =
      "1girl,A superstar on stage.,, <lora:LCM_15:1>, <lora:ip-adapter-faceid-plusv2_sd15_lora:1>\n"
      "Negative prompt: MajicNegative_V2,badhandv4,\n"
      "Steps: 6, Sampler: LCM, Schedule type: Automatic, CFG scale: 1.5, Seed: 3748719078, "
      "Size: 768x1024, Model hash: 19bbe9faa4, Model: fantasticmix_k2, VAE hash: 07af11b95c, "
      "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, "
      "Lora hashes: \"LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9\", "
      "TI hashes: \"MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d\", "
      "Downcast alphas_cumprod: True, Version: v1.9.4";
  GenerationParams p;
  p.prompt =
      "1girl,A superstar on stage.,, <lora:LCM_15:1>, <lora:ip-adapter-faceid-plusv2_sd15_lora:1>";
  p.negative_prompt = "MajicNegative_V2,badhandv4,";
  p.steps = 6;
  p.sampler = "LCM";
  p.schedule_type = "Automatic";
  p.cfg_scale = 1.5;
  p.seed = 3748719078ull;
  p.width = 768;
  p.height = 1024;
  p.model_hash = "19bbe9faa4";
  p.model_name = "fantasticmix_k2";
  p.vae_hash = "07af11b95c";
  p.vae_name = "vae-ft-mse-840000-ema-pruned.safetensors";
  p.extra = {
      {"Clip skip", "2"},
      {"Lora hashes", "LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9"},
      {"TI hashes", "MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d"},
      {"Downcast alphas_cumprod", "True"},
      {"Version", "v1.9.4"}};
  CHECK(a1111_parameters(p) == expected);
}

TEST_CASE("a1111 quoting, omitted fields and numbers follow the webui's rules",
          "[unit][image_io]") {
  // infotext_utils.quote: json.dumps(v, ensure_ascii=False) when v holds ',', '\n' or ':'.
  CHECK(a1111_quote("Euler a") == "Euler a");
  CHECK(a1111_quote("model, custom") == "\"model, custom\"");
  CHECK(a1111_quote("a: b") == "\"a: b\"");
  CHECK(a1111_quote("say \"hi\",\nback\\slash") == "\"say \\\"hi\\\",\\nback\\\\slash\"");
  CHECK(a1111_quote("tab\there, caf\xC3\xA9") == "\"tab\\there, caf\xC3\xA9\"");
  CHECK(a1111_quote(std::string("x,\x01", 3)) == "\"x,\\u0001\"");

  CHECK(a1111_number(7) == "7");
  CHECK(a1111_number(7.5) == "7.5");
  CHECK(a1111_number(0.75) == "0.75");
  CHECK(a1111_number(0.1) == "0.1");

  GenerationParams p;
  p.prompt = "a red mug on a table";
  p.steps = 20;
  p.sampler = "Euler a";
  p.cfg_scale = 7.5;
  p.seed = 42;
  p.width = 512;
  p.height = 512;
  p.model_hash = "abcdef1234";
  p.model_name = "sd15";
  // The negative prompt line is left out when it is empty.
  CHECK(a1111_parameters(p) ==
        "a red mug on a table\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, "
        "Model hash: abcdef1234, Model: sd15");
  p.negative_prompt = "blurry";
  p.model_name = "my model, v2";
  p.extra = {{"Denoising strength", "0.75"}, {"Tiling", "Tiling"}, {"Empty", ""}};
  CHECK(a1111_parameters(p) ==
        "a red mug on a table\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, "
        "Model hash: abcdef1234, Model: \"my model, v2\", Denoising strength: 0.75, Tiling");
  // An empty prompt: the text starts with the parameters line (the webui strips the result).
  GenerationParams e;
  e.seed = 1;
  CHECK(a1111_parameters(e) == "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1");
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_CASE("PNG 8-bit and 16-bit round trips are exact", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_png");
  for (const int64_t c : {3, 4}) {
    const at::Tensor x8 = quantized_noise(37, 53, c, 255, 1);
    write_image(dir / "a8.png", x8);
    const Image r8 = read_image(dir / "a8.png");
    CHECK(r8.width == 53);
    CHECK(r8.height == 37);
    CHECK(r8.channels == c);
    CHECK(r8.has_alpha == (c == 4));
    CHECK(r8.bit_depth == 8);
    CHECK(r8.metadata.format == "png");
    CHECK(test::max_abs_diff(r8.pixels, x8) == 0.0);

    const at::Tensor x16 = quantized_noise(37, 53, c, 65535, 2);
    ImageWriteOptions o16;
    o16.bit_depth = 16;
    write_image(dir / "a16.png", x16, o16);
    const Image r16 = read_image(dir / "a16.png");
    CHECK(r16.bit_depth == 16);
    CHECK(r16.metadata.sample_type == "uint16");
    CHECK(test::max_abs_diff(r16.pixels, x16) < 1e-7);
  }
}

TEST_CASE("8-bit samples are round(x * 255) and read back as v / 255", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_rounding");
  // 0.5 * 255 = 127.5 rounds half to even (numpy/diffusers: (x * 255).round()) -> 128.
  const at::Tensor x = at::tensor({0.0f, 1.0f, 0.5f, 0.2f, 1.5f, -0.25f}).view({1, 2, 3});
  const at::Tensor u8 = to_uint8(x);
  CHECK(u8.flatten()[2].item<int>() == 128);
  CHECK(u8.flatten()[3].item<int>() == 51);
  CHECK(u8.flatten()[4].item<int>() == 255);
  CHECK(u8.flatten()[5].item<int>() == 0);
  write_image(dir / "r.png", x);
  const Image r = read_image(dir / "r.png");
  const at::Tensor expected = u8.to(at::kFloat).div(255.0);
  CHECK(test::max_abs_diff(r.pixels, expected) == 0.0);
}

TEST_CASE("grey and grey+alpha files are read as RGB and RGBA", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_grey");
  const at::Tensor g = quantized_noise(20, 30, 1, 255, 3);
  write_image(dir / "g.png", g);
  const Image r = read_image(dir / "g.png");
  CHECK(r.metadata.channels == 1);
  REQUIRE(r.channels == 3);
  for (int c = 0; c < 3; ++c) CHECK(test::max_abs_diff(r.pixels.select(2, c), g.select(2, 0)) == 0);

  const at::Tensor ga = quantized_noise(20, 30, 2, 255, 4);
  write_image(dir / "ga.png", ga);
  const Image ra = read_image(dir / "ga.png");
  CHECK(ra.metadata.channels == 2);
  REQUIRE(ra.channels == 4);
  CHECK(test::max_abs_diff(ra.pixels.select(2, 1), ga.select(2, 0)) == 0);
  CHECK(test::max_abs_diff(ra.pixels.select(2, 3), ga.select(2, 1)) == 0);
}

TEST_CASE("RGBA keeps straight alpha, which can be dropped or composited", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_alpha");
  at::Tensor x = quantized_noise(16, 16, 4, 255, 5);
  x.narrow(0, 0, 4).select(2, 3).fill_(0.0);  // fully transparent rows keep their colour
  for (const char* name : {"a.png", "a.tif", "a.webp"}) {
    ImageWriteOptions o;
    o.webp_lossless = true;
    write_image(dir / name, x, o);
    const Image r = read_image(dir / name);
    INFO(name);
    REQUIRE(r.channels == 4);
    CHECK(r.file_has_alpha);
    CHECK(test::max_abs_diff(r.pixels, x) == 0.0);
  }
  ImageReadOptions drop;
  drop.alpha = AlphaMode::kDrop;
  const Image d = read_image(dir / "a.png", drop);
  CHECK(d.channels == 3);
  CHECK(d.file_has_alpha);
  CHECK(test::max_abs_diff(d.pixels, x.narrow(2, 0, 3)) == 0.0);
  ImageReadOptions comp;
  comp.alpha = AlphaMode::kComposite;
  comp.matte = 1.0f;
  const Image m = read_image(dir / "a.png", comp);
  const at::Tensor a = x.narrow(2, 3, 1);
  CHECK(test::max_abs_diff(m.pixels, x.narrow(2, 0, 3) * a + (1 - a)) < 1e-6);
}

TEST_CASE("JPEG round trip within JPEG error, RGBA composited over white", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_jpeg");
  const at::Tensor x = gradient(96, 128, 3);
  ImageWriteOptions o;
  o.jpeg_quality = 95;
  write_image(dir / "a.jpg", x, o);
  const Image r = read_image(dir / "a.jpg");
  CHECK(r.metadata.format == "jpeg");
  REQUIRE(r.channels == 3);
  CHECK(mean_abs_diff(r.pixels, x) < 0.01);
  CHECK(test::max_abs_diff(r.pixels, x) < 0.06);
  ImageWriteOptions low;
  low.jpeg_quality = 30;
  write_image(dir / "low.jpg", x, low);
  CHECK(fs::file_size(dir / "low.jpg") < fs::file_size(dir / "a.jpg"));
  CHECK(mean_abs_diff(read_image(dir / "low.jpg").pixels, x) > mean_abs_diff(r.pixels, x));

  at::Tensor rgba = at::zeros({32, 32, 4});
  rgba.narrow(1, 16, 16).select(2, 3).fill_(1.0);  // right half opaque black, left transparent
  write_image(dir / "b.jpeg", rgba);
  const Image rb = read_image(dir / "b.jpeg");
  REQUIRE(rb.channels == 3);
  CHECK(rb.pixels.narrow(1, 0, 12).mean().item<double>() > 0.97);   // white matte
  CHECK(rb.pixels.narrow(1, 20, 12).mean().item<double>() < 0.03);  // black product
}

TEST_CASE("WebP lossy and lossless round trips", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_webp");
  const at::Tensor x = gradient(64, 80, 3);
  ImageWriteOptions lossy;
  lossy.webp_quality = 95;
  write_image(dir / "a.webp", x, lossy);
  const Image r = read_image(dir / "a.webp");
  CHECK(r.metadata.format == "webp");
  CHECK(r.channels == 3);
  CHECK(mean_abs_diff(r.pixels, x) < 0.01);
  CHECK(test::max_abs_diff(r.pixels, x) < 0.06);
  ImageWriteOptions low;
  low.webp_quality = 20;
  low.digital_source_type = "";
  lossy.digital_source_type = "";
  write_image(dir / "low.webp", x, low);
  write_image(dir / "high.webp", x, lossy);
  CHECK(fs::file_size(dir / "low.webp") < fs::file_size(dir / "high.webp"));

  const at::Tensor n = quantized_noise(33, 47, 3, 255, 6);
  ImageWriteOptions lossless;
  lossless.webp_lossless = true;
  write_image(dir / "b.webp", n, lossless);
  CHECK(test::max_abs_diff(read_image(dir / "b.webp").pixels, n) == 0.0);
}

TEST_CASE("TIFF 8/16-bit and EXR half/float round trips", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_tiff_exr");
  const at::Tensor x8 = quantized_noise(21, 34, 3, 255, 7);
  write_image(dir / "a.tif", x8);
  const Image t8 = read_image(dir / "a.tif");
  CHECK(t8.metadata.format == "tiff");
  CHECK(t8.bit_depth == 8);
  CHECK(test::max_abs_diff(t8.pixels, x8) == 0.0);
  const at::Tensor x16 = quantized_noise(21, 34, 4, 65535, 8);
  ImageWriteOptions o16;
  o16.bit_depth = 16;
  write_image(dir / "a16.tiff", x16, o16);
  const Image t16 = read_image(dir / "a16.tiff");
  CHECK(t16.bit_depth == 16);
  CHECK(test::max_abs_diff(t16.pixels, x16) < 1e-7);

  const at::Tensor g = gradient(24, 40, 3);
  write_image(dir / "h.exr", g);  // half
  const Image eh = read_image(dir / "h.exr");
  CHECK(eh.metadata.format == "openexr");
  CHECK(eh.metadata.sample_type == "half");
  CHECK(test::max_abs_diff(eh.pixels, g) < 2e-3);
  ImageWriteOptions f32;
  f32.bit_depth = 32;
  at::Tensor ga = gradient(24, 40, 4);
  ga.select(2, 3).mul_(0.8).add_(0.2);  // alpha in [0.2, 1]: premultiplied in the file
  write_image(dir / "f.exr", ga, f32);
  const Image ef = read_image(dir / "f.exr");
  CHECK(ef.metadata.sample_type == "float");
  REQUIRE(ef.channels == 4);
  CHECK(test::max_abs_diff(ef.pixels, ga) < 1e-5);
}

TEST_CASE("EXR files hold linear light, as EXR readers expect", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_exr_linear");
  write_image(dir / "grey.exr", at::full({8, 8, 3}, 0.5));
  // sRGB 0.5 is linear 0.2140; oiiotool's statistics read the stored values.
  const auto r = test::run_command("oiiotool --stats " + q(dir / "grey.exr"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto at = r.output.find("Stats Avg: ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(r.output.substr(at + 11, 10)) == Approx(0.2140).margin(2e-4));  // half
}

TEST_CASE("files from another writer: BMP, TGA, GIF, PNM, 16-bit grey and float TIFF, EXR",
          "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_other_writers");
  const double c1[3] = {0.2, 0.4, 0.6}, c2[3] = {0.8, 0.6, 0.2};
  struct Case {
    const char* name;
    const char* type;
    int channels;
    double tolerance;
    bool linear;
  };
  const Case cases[] = {
      {"x.bmp", "uint8", 3, 0.5 / 255, false}, {"x.tga", "uint8", 4, 0.5 / 255, false},
      {"x.gif", "uint8", 3, 0.5 / 255, false}, {"x.pnm", "uint8", 3, 0.5 / 255, false},
      {"g16.tif", "uint16", 1, 1e-4, false},   {"f.tif", "float", 3, 1e-6, false},
      {"h.exr", "half", 4, 1e-3, true}};
  auto srgb = [](double v) {
    return v <= 0.0031308 ? 12.92 * v : 1.055 * std::pow(v, 1 / 2.4) - 0.055;
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const fs::path file = dir / c.name;
    const auto r = test::run_command(
        "oiiotool --pattern checker:color1=0.2,0.4,0.6,1:color2=0.8,0.6,0.2,1 16x16 " +
        std::to_string(c.channels) + " -d " + c.type + " -o " + q(file));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const Image img = read_image(file);
    CHECK(img.width == 16);
    CHECK(img.height == 16);
    for (int k = 0; k < 3; ++k) {
      const double e1 = c.channels == 1 ? c1[0] : c1[k], e2 = c.channels == 1 ? c2[0] : c2[k];
      CHECK(img.pixels[0][0][k].item<double>() ==
            Approx(c.linear ? srgb(e1) : e1).margin(c.tolerance));
      CHECK(img.pixels[0][8][k].item<double>() ==
            Approx(c.linear ? srgb(e2) : e2).margin(c.tolerance));
    }
    if (img.channels == 4) CHECK(img.pixels.select(2, 3).min().item<float>() == 1.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// Orientation

TEST_CASE("a JPEG with EXIF Orientation 6 is rotated 90 degrees clockwise", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_orient_jpeg");
  // Four flat quadrants (robust to JPEG error) in a non-square picture.
  at::Tensor x = at::zeros({64, 96, 3});
  x.narrow(0, 0, 32).narrow(1, 0, 48).select(2, 0).fill_(1.0);   // top-left red
  x.narrow(0, 0, 32).narrow(1, 48, 48).select(2, 1).fill_(1.0);  // top-right green
  x.narrow(0, 32, 32).narrow(1, 0, 48).select(2, 2).fill_(1.0);  // bottom-left blue
  x.narrow(0, 32, 32).narrow(1, 48, 48).fill_(1.0);              // bottom-right white
  const fs::path file = dir / "o6.jpg";
  write_image(file, x);
  const auto set = test::run_command("exiv2 -M'set Exif.Image.Orientation Short 6' " + q(file));
  INFO(set.output);
  REQUIRE(set.exit_code == 0);
  const auto info = test::run_command("oiiotool --info -v " + q(file));
  CHECK(info.output.find("Orientation: 6") != std::string::npos);

  const Image r = read_image(file);
  CHECK(r.metadata.orientation == 6);
  REQUIRE(r.width == 64);
  REQUIRE(r.height == 96);
  const at::Tensor clockwise = at::rot90(x, -1, {0, 1});  // what a viewer shows
  CHECK(mean_abs_diff(r.pixels, clockwise) < 0.02);
  // After a clockwise turn the old bottom-left (blue) is at the top-left.
  CHECK(r.pixels[5][5][2].item<float>() > 0.9f);
  CHECK(r.pixels[5][5][0].item<float>() < 0.1f);

  ImageReadOptions raw;
  raw.apply_orientation = false;
  const Image s = read_image(file, raw);
  CHECK(s.width == 96);
  CHECK(mean_abs_diff(s.pixels, x) < 0.02);
}

TEST_CASE("all eight EXIF orientations are displayed as the EXIF specification says",
          "[unit][image_io]") {
  // EXIF 2.3 Orientation: where the stored 0th row and 0th column are shown. Stored pixel (r, c)
  // of an H x W image is displayed at:
  auto displayed_at = [](int o, int64_t r, int64_t c, int64_t h, int64_t w) {
    switch (o) {
      case 2:
        return std::make_pair(r, w - 1 - c);  // row 0 top, column 0 right
      case 3:
        return std::make_pair(h - 1 - r, w - 1 - c);  // row 0 bottom, column 0 right
      case 4:
        return std::make_pair(h - 1 - r, c);  // row 0 bottom, column 0 left
      case 5:
        return std::make_pair(c, r);  // row 0 left, column 0 top
      case 6:
        return std::make_pair(c, h - 1 - r);  // row 0 right, column 0 top
      case 7:
        return std::make_pair(w - 1 - c, h - 1 - r);  // row 0 right, column 0 bottom
      case 8:
        return std::make_pair(w - 1 - c, r);  // row 0 left, column 0 bottom
      default:
        return std::make_pair(r, c);
    }
  };
  const auto dir = test::temp_dir("image_io_orient_all");
  const int64_t h = 5, w = 7;
  const at::Tensor x = quantized_noise(h, w, 3, 255, 9);
  write_image(dir / "base.tif", x);
  for (int o = 1; o <= 8; ++o) {
    INFO("orientation " << o);
    const fs::path tagged = dir / ("o" + std::to_string(o) + ".tif");
    auto r1 = test::run_command("oiiotool " + q(dir / "base.tif") + " --orientation " +
                                std::to_string(o) + " -o " + q(tagged));
    INFO(r1.output);
    REQUIRE(r1.exit_code == 0);
    const Image a = read_image(tagged);
    CHECK(a.metadata.orientation == o);
    const bool swap = o >= 5;
    at::Tensor expected = at::zeros({swap ? w : h, swap ? h : w, 3});
    for (int64_t r = 0; r < h; ++r) {
      for (int64_t c = 0; c < w; ++c) {
        const auto [i, j] = displayed_at(o, r, c, h, w);
        expected[i][j] = x[r][c];
      }
    }
    REQUIRE(a.pixels.sizes() == expected.sizes());
    CHECK(test::max_abs_diff(a.pixels, expected) == 0.0);
    // oiiotool --reorient agrees, except for 5 and 7, which OpenImageIO 2.4's reorient() swaps
    // (OpenImageIO issue #4661); PIL's ImageOps.exif_transpose follows the specification.
    if (o == 5 || o == 7) continue;
    const fs::path ref = dir / ("ref" + std::to_string(o) + ".tif");
    auto r2 = test::run_command("oiiotool " + q(tagged) + " --reorient -o " + q(ref));
    INFO(r2.output);
    REQUIRE(r2.exit_code == 0);
    const Image b = read_image(ref);
    CHECK(b.metadata.orientation == 1);
    CHECK(test::max_abs_diff(a.pixels, b.pixels) == 0.0);
  }
}

TEST_CASE("ICC-tagged inputs (Adobe RGB) are converted to sRGB", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_icc");
  // The Adobe RGB (1998) profile embedded in data/photos/rocket.jpg, extracted with exiv2.
  fs::copy_file(test::data_root() / "photos" / "rocket.jpg", dir / "rocket.jpg");
  const auto ex = test::run_command("exiv2 -eC " + q(dir / "rocket.jpg"));
  INFO(ex.output);
  REQUIRE(fs::exists(dir / "rocket.icc"));
  // Three flat colours, tagged Adobe RGB.
  const std::vector<std::array<int, 3>> colours = {
      {128, 128, 128}, {102, 153, 128}, {179, 128, 102}};
  at::Tensor x = at::zeros({2, 3, 3});
  for (int k = 0; k < 3; ++k) {
    for (int c = 0; c < 3; ++c) x.select(1, k).select(1, c).fill_(colours[k][c] / 255.0);
  }
  write_image(dir / "adobe.tif", x);
  fs::copy_file(dir / "rocket.icc", dir / "adobe.icc");
  const auto in = test::run_command("exiv2 -iC " + q(dir / "adobe.tif"));
  INFO(in.output);
  REQUIRE(in.exit_code == 0);

  // Adobe RGB (1998) -> XYZ (D65) -> linear sRGB, from the two colour spaces' specifications.
  auto expected_srgb = [](const std::array<int, 3>& v) {
    const double m_adobe[3][3] = {{0.5767309, 0.1855540, 0.1881852},
                                  {0.2973769, 0.6273491, 0.0752741},
                                  {0.0270343, 0.0706872, 0.9911085}};
    const double m_srgb[3][3] = {{3.2404542, -1.5371385, -0.4985314},
                                 {-0.9692660, 1.8760108, 0.0415560},
                                 {0.0556434, -0.2040259, 1.0572252}};
    double lin[3], xyz[3] = {0, 0, 0};
    std::array<double, 3> out{};
    for (int c = 0; c < 3; ++c) lin[c] = std::pow(v[c] / 255.0, 563.0 / 256.0);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) xyz[r] += m_adobe[r][c] * lin[c];
    for (int r = 0; r < 3; ++r) {
      double s = 0;
      for (int c = 0; c < 3; ++c) s += m_srgb[r][c] * xyz[c];
      out[r] = s <= 0.0031308 ? 12.92 * s : 1.055 * std::pow(s, 1 / 2.4) - 0.055;
    }
    return out;
  };
  const Image r = read_image(dir / "adobe.tif");
  CHECK(r.converted_from == "Adobe RGB (1998)");
  for (int k = 0; k < 3; ++k) {
    const auto e = expected_srgb(colours[k]);
    for (int c = 0; c < 3; ++c) {
      INFO("colour " << k << " channel " << c);
      CHECK(r.pixels[1][k][c].item<double>() == Approx(e[c]).margin(0.004));
    }
  }
  ImageReadOptions off;
  off.convert_to_srgb = false;
  const Image raw = read_image(dir / "adobe.tif", off);
  CHECK(raw.converted_from.empty());
  CHECK(test::max_abs_diff(raw.pixels, x) == 0.0);

  const Image rocket = read_image(test::data_root() / "photos" / "rocket.jpg");
  CHECK(rocket.converted_from == "Adobe RGB (1998)");
  const Image rocket_raw = read_image(test::data_root() / "photos" / "rocket.jpg", off);
  CHECK(test::max_abs_diff(rocket.pixels, rocket_raw.pixels) > 0.01);
  // Files without a profile, or with an sRGB one, are left as stored.
  write_image(dir / "plain.png", x);
  CHECK(read_image(dir / "plain.png").converted_from.empty());
}

// ---------------------------------------------------------------------------------------------
// Metadata

TEST_CASE("every output format carries parameters, the AI source type and Software",
          "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_metadata");
  GenerationParams gp;
  gp.prompt = "a red mug on a table, product photo";
  gp.negative_prompt = "blurry";
  gp.steps = 20;
  gp.cfg_scale = 7.5;
  gp.seed = 42;
  gp.width = 64;
  gp.height = 48;
  gp.model_hash = "abcdef1234";
  gp.model_name = "sd15";
  const std::string text = a1111_parameters(gp);
  ImageWriteOptions o;
  o.parameters = text;
  o.software_version = "1.2.3";
  const at::Tensor x = gradient(48, 64, 3);
  for (const char* name : {"m.png", "m.jpg", "m.webp", "m.tif", "m.exr"}) {
    INFO(name);
    const fs::path file = dir / name;
    write_image(file, x, o);
    const ImageMetadata md = read_image_metadata(file);
    CHECK(md.parameters == text);
    CHECK(md.digital_source_type == kDigitalSourceTrainedAlgorithmicMedia);
    CHECK(md.software == "studio 1.2.3");
    CHECK(md.width == 64);
    CHECK(md.height == 48);
    // read_image reports the same.
    CHECK(read_image(file).metadata.parameters == text);

    const auto oiio = test::run_command("oiiotool --info -v " + q(file));
    INFO(oiio.output);
    CHECK(oiio.exit_code == 0);
    const std::string ext = file.extension().string();
    if (ext == ".exr") {
      CHECK(oiio.output.find("parameters: \"a red mug") != std::string::npos);
      CHECK(oiio.output.find("trainedAlgorithmicMedia") != std::string::npos);
      continue;
    }
    if (ext == ".png") {
      CHECK(oiio.output.find("parameters: \"a red mug on a table") != std::string::npos);
    }
    if (ext == ".tif") {
      CHECK(oiio.output.find("ImageDescription: \"a red mug on a table") != std::string::npos);
    }
    if (ext != ".webp") CHECK(oiio.output.find("Software: \"studio 1.2.3\"") != std::string::npos);
    // Exiv2's reader: XMP packet and EXIF.
    const auto xmp = test::run_command("exiv2 -px " + q(file));
    INFO(xmp.output);
    CHECK(xmp.output.find("Xmp.iptcExt.DigitalSourceType") != std::string::npos);
    CHECK(xmp.output.find(kDigitalSourceTrainedAlgorithmicMedia) != std::string::npos);
    CHECK(xmp.output.find("Xmp.xmp.CreatorTool") != std::string::npos);
    if (ext != ".png") {
      const auto exif = test::run_command("exiv2 -pe " + q(file));
      INFO(exif.output);
      CHECK(exif.output.find("Exif.Photo.UserComment") != std::string::npos);
      CHECK(exif.output.find("charset=Unicode a red mug on a table") != std::string::npos);
      CHECK(exif.output.find("studio 1.2.3") != std::string::npos);
    }
    if (ext == ".tif") {
      CHECK(md.entries.count("Exif.Image.ImageDescription") == 1);
      CHECK(md.entries.at("Exif.Image.ImageDescription") == text);
    }
  }
}

TEST_CASE("PNG parameters are tEXt when Latin-1 and iTXt otherwise, as PIL writes them",
          "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_png_text");
  const at::Tensor x = gradient(8, 8, 3);
  ImageWriteOptions latin;
  latin.parameters = "caf\xC3\xA9 cr\xC3\xA8me\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1";
  write_image(dir / "latin.png", x, latin);
  const std::string b1 = test::read_file(dir / "latin.png");
  CHECK(b1.find(std::string("tEXtparameters\0caf\xE9 cr\xE8me", 24)) != std::string::npos);
  CHECK(b1.find(std::string("iTXtXML:com.adobe.xmp\0", 22)) != std::string::npos);
  CHECK(read_image_metadata(dir / "latin.png").parameters == latin.parameters);

  ImageWriteOptions cjk;
  cjk.parameters =
      "\xE6\x98\x8E\xE4\xBA\xAE\xE7\x9A\x84\xE6\xB9\x96 \xF0\x9F\x8C\x8A, lake\n"
      "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1";
  write_image(dir / "cjk.png", x, cjk);
  const std::string b2 = test::read_file(dir / "cjk.png");
  CHECK(b2.find(std::string("iTXtparameters\0\0\0\0\0", 19) + cjk.parameters.substr(0, 6)) !=
        std::string::npos);
  CHECK(read_image_metadata(dir / "cjk.png").parameters == cjk.parameters);
  // Outside the BMP (an emoji) survives EXIF's UTF-16 too.
  write_image(dir / "cjk.jpg", x, cjk);
  CHECK(read_image_metadata(dir / "cjk.jpg").parameters == cjk.parameters);
  write_image(dir / "cjk.webp", x, cjk);
  CHECK(read_image_metadata(dir / "cjk.webp").parameters == cjk.parameters);
}

TEST_CASE("JPEG/WebP EXIF is big-endian with a UTF-16BE UserComment, as the webui writes it",
          "[unit][image_io]") {
  // AUTOMATIC1111 writes JPEG/WebP parameters with piexif: a big-endian ("MM") EXIF block and
  // UserComment = "UNICODE\0" + UTF-16BE, and reads them back assuming that layout.
  const auto dir = test::temp_dir("image_io_jpeg_exif");
  ImageWriteOptions o;
  o.parameters = "Az";
  write_image(dir / "a.jpg", gradient(8, 8, 3), o);
  const std::string b = test::read_file(dir / "a.jpg");
  CHECK(b.find(std::string("Exif\0\0MM\0\x2a", 10)) != std::string::npos);
  CHECK(b.find(std::string("UNICODE\0\0A\0z", 12)) != std::string::npos);
  // WebP: an EXIF chunk holding the TIFF header directly (Pillow strips "Exif\0\0").
  write_image(dir / "a.webp", gradient(8, 8, 3), o);
  const std::string w = test::read_file(dir / "a.webp");
  CHECK(w.find(std::string("EXIF", 4)) != std::string::npos);
  CHECK(w.find(std::string("MM\0\x2a", 4)) == w.find(std::string("EXIF", 4)) + 8);
  CHECK(w.find(std::string("UNICODE\0\0A\0z", 12)) != std::string::npos);
  CHECK(w.find("VP8X") == 12);
}

TEST_CASE("no metadata is written when none is asked for", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_no_metadata");
  ImageWriteOptions o;
  o.digital_source_type = "";
  write_image(dir / "a.png", gradient(8, 8, 3), o);
  const ImageMetadata md = read_image_metadata(dir / "a.png");
  CHECK(md.parameters.empty());
  CHECK(md.digital_source_type.empty());
  CHECK(md.software == "studio");
  o.digital_source_type = kDigitalSourceCompositeWithTrainedAlgorithmicMedia;
  write_image(dir / "b.jpg", gradient(8, 8, 3), o);
  CHECK(read_image_metadata(dir / "b.jpg").digital_source_type ==
        kDigitalSourceCompositeWithTrainedAlgorithmicMedia);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST_CASE("bad input gives clear errors naming the file", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_errors");
  const fs::path truncated = test::data_root() / "photos" / "truncated.jpg";
  const std::string m1 = test::error_of<FormatError>([&] { read_image(truncated); });
  CHECK(m1.find(truncated.string()) != std::string::npos);
  CHECK(m1.find("JPEG") != std::string::npos);  // what the decoder said
  CHECK(m1.find("re-export") != std::string::npos);

  const std::string m2 = test::error_of<IoError>([&] { read_image(dir / "missing.png"); });
  CHECK(m2.find("missing.png") != std::string::npos);
  CHECK(m2.find("not found") != std::string::npos);
  CHECK_THROWS_AS(read_image_metadata(dir / "missing.png"), IoError);
  CHECK_THROWS_AS(read_image(dir), IoError);

  test::write_file(dir / "text.png", "this is not an image, just some text\n");
  const std::string m3 = test::error_of<FormatError>([&] { read_image(dir / "text.png"); });
  CHECK(m3.find("text.png") != std::string::npos);
  CHECK_THROWS_AS(read_image_metadata(dir / "text.png"), FormatError);

  // A PNG cut in half, a WebP cut in half.
  write_image(dir / "full.png", quantized_noise(64, 64, 3, 255, 10));
  const std::string png = test::read_file(dir / "full.png");
  test::write_file(dir / "cut.png", png.substr(0, png.size() / 2));
  CHECK_THROWS_AS(read_image(dir / "cut.png"), FormatError);
  ImageWriteOptions ll;
  ll.webp_lossless = true;
  write_image(dir / "full.webp", quantized_noise(64, 64, 3, 255, 11), ll);
  const std::string webp = test::read_file(dir / "full.webp");
  test::write_file(dir / "cut.webp", webp.substr(0, webp.size() / 2));
  CHECK_THROWS_AS(read_image(dir / "cut.webp"), FormatError);
}

TEST_CASE("images over the pixel limit are refused from the header", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_bomb");
  // A 100 000 x 100 000 PNG (10 gigapixels, ~40 GB as float) in a few dozen bytes.
  std::string ihdr = be32(100000) + be32(100000) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string bomb = std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
                           png_chunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) +
                           png_chunk("IEND", "");
  test::write_file(dir / "bomb.png", bomb);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string m = test::error_of<FormatError>([&] { read_image(dir / "bomb.png"); });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(m.find("bomb.png") != std::string::npos);
  CHECK(m.find("100000x100000") != std::string::npos);
  CHECK(m.find("before decoding") != std::string::npos);
  CHECK(seconds < 2.0);
  // The header is still readable as metadata.
  const ImageMetadata md = read_image_metadata(dir / "bomb.png");
  CHECK(md.width == 100000);

  // A real photo under a small limit.
  ImageReadOptions small;
  small.max_pixels = 1000;
  CHECK_THROWS_AS(read_image(test::data_root() / "photos" / "coffee.png", small), FormatError);
  write_image(dir / "w.webp", gradient(40, 40, 3));
  CHECK_THROWS_AS(read_image(dir / "w.webp", small), FormatError);
}

TEST_CASE("write_image rejects what it cannot write", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_write_errors");
  const at::Tensor x = gradient(8, 8, 3);
  CHECK_THROWS_AS(write_image(dir / "a.bmp", x), UsageError);
  CHECK_THROWS_AS(write_image(dir / "noext", x), UsageError);
  ImageWriteOptions o16;
  o16.bit_depth = 16;
  CHECK_THROWS_AS(write_image(dir / "a.jpg", x, o16), UsageError);
  CHECK_THROWS_AS(write_image(dir / "a.png", at::zeros({8, 8})), UsageError);
  CHECK_THROWS_AS(write_image(dir / "a.png", at::zeros({8, 8, 5})), UsageError);
  CHECK_THROWS_AS(write_image(dir / "a.png", at::zeros({2, 8, 8, 3})), UsageError);
  CHECK_THROWS_AS(write_image(dir / "a.png", at::zeros({8, 8, 3}, at::kInt)), UsageError);
  CHECK_THROWS_AS(write_image(dir / "no" / "such" / "dir.png", x), IoError);
  CHECK(fs::is_empty(dir));
}

TEST_CASE("writes are atomic and replace the old file", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_atomic");
  write_image(dir / "a.png", at::zeros({8, 8, 3}));
  write_image(dir / "a.png", at::ones({4, 4, 3}));  // overwrite
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"a.png"});
  const Image r = read_image(dir / "a.png");
  CHECK(r.width == 4);
  CHECK(r.pixels.min().item<float>() == 1.0f);
  // NaN becomes 0, values outside [0, 1] are clamped.
  write_image(dir / "b.png", at::tensor({NAN, 2.0f, -1.0f}).view({1, 1, 3}));
  CHECK(test::max_abs_diff(read_image(dir / "b.png").pixels,
                           at::tensor({0.0f, 1.0f, 0.0f}).view({1, 1, 3})) == 0);
}

// ---------------------------------------------------------------------------------------------
// Real photos (data-driven)

TEST_CASE("every photo under data/photos is read, or refused when it is bad input",
          "[unit][image_io]") {
  const fs::path photos = test::data_root() / "photos";
  int good = 0, bad = 0;
  for (const auto& e : fs::directory_iterator(photos)) {
    if (!e.is_regular_file()) continue;
    const fs::path file = e.path();
    const std::string name = file.filename().string();
    const std::string ext = file.extension().string();
    if (name[0] == '.' || ext == ".md" || ext == ".txt") continue;
    INFO(file);
    const bool must_fail = name.rfind("truncated", 0) == 0 || name.rfind("bad", 0) == 0 ||
                           name.rfind("corrupt", 0) == 0;
    if (must_fail) {
      const std::string m = test::error_of<FormatError>([&] { read_image(file); });
      CHECK(m.find(file.string()) != std::string::npos);
      ++bad;
      continue;
    }
    const Image img = read_image(file);
    const ImageMetadata md = read_image_metadata(file);
    CHECK(img.channels >= 3);
    CHECK(img.pixels.dim() == 3);
    CHECK(img.pixels.scalar_type() == at::kFloat);
    CHECK(img.pixels.min().item<float>() >= 0.0f);
    CHECK(img.pixels.max().item<float>() <= 1.0f);
    CHECK(img.pixels.max().item<float>() > 0.2f);  // not blank
    const bool swapped = md.orientation >= 5;
    CHECK(img.width == (swapped ? md.height : md.width));
    CHECK(img.height == (swapped ? md.width : md.height));
    if (md.channels == 1) {  // grey textures: R = G = B
      CHECK(test::max_abs_diff(img.pixels.select(2, 0), img.pixels.select(2, 2)) == 0.0);
    }
    const at::Tensor m = to_model_input(img);
    CHECK(m.sizes() == at::IntArrayRef({1, 3, img.height, img.width}));
    ++good;
  }
  CHECK(good >= 1);
  CHECK(bad >= 1);
}

// ---------------------------------------------------------------------------------------------
// Tensor helpers

TEST_CASE("model input/output conversions follow diffusers' VaeImageProcessor",
          "[unit][image_io]") {
  const at::Tensor hwc = quantized_noise(6, 10, 4, 255, 12);
  const at::Tensor m = to_model_input(hwc);
  REQUIRE(m.sizes() == at::IntArrayRef({1, 3, 6, 10}));
  // preprocess: 2 * x - 1 on the RGB planes (alpha dropped)
  CHECK(test::max_abs_diff(m, hwc.narrow(2, 0, 3).permute({2, 0, 1}).unsqueeze(0) * 2 - 1) == 0);
  CHECK(m.min().item<float>() >= -1.0f);
  CHECK(m.max().item<float>() <= 1.0f);
  // postprocess: (x / 2 + 0.5).clamp(0, 1), NCHW -> NHWC
  const at::Tensor back = from_model_output(m);
  REQUIRE(back.sizes() == at::IntArrayRef({1, 6, 10, 3}));
  CHECK(test::max_abs_diff(back[0], hwc.narrow(2, 0, 3)) < 1e-7);
  const at::Tensor clamped = from_model_output(at::full({1, 3, 2, 2}, 3.0));
  CHECK(clamped.max().item<float>() == 1.0f);
  const at::Tensor half = from_model_output(at::zeros({1, 3, 2, 2}, at::kHalf));
  CHECK(half.scalar_type() == at::kFloat);
  CHECK(from_model_output(at::zeros({3, 4, 5})).sizes() == at::IntArrayRef({4, 5, 3}));
}

TEST_CASE("resizing keeps flat colours, premultiplies alpha and snaps to multiples of 8",
          "[unit][image_io]") {
  const at::Tensor flat = at::full({37, 53, 3}, 0.25);
  for (const auto f : {ResizeFilter::kAuto, ResizeFilter::kArea, ResizeFilter::kLanczos,
                       ResizeFilter::kBicubic, ResizeFilter::kBilinear, ResizeFilter::kNearest}) {
    const at::Tensor up = resize_image(flat, 100, 80, f);
    REQUIRE(up.sizes() == at::IntArrayRef({80, 100, 3}));
    CHECK(test::max_abs_diff(up, at::full({80, 100, 3}, 0.25)) < 1e-5);
    const at::Tensor down = resize_image(flat, 20, 10, f);
    CHECK(test::max_abs_diff(down, at::full({10, 20, 3}, 0.25)) < 1e-5);
  }
  // Transparent red around an opaque blue square: no purple fringe after resizing.
  at::Tensor rgba = at::zeros({32, 32, 4});
  rgba.select(2, 0).fill_(1.0);
  rgba.narrow(0, 8, 16).narrow(1, 8, 16).select(2, 0).fill_(0.0);
  rgba.narrow(0, 8, 16).narrow(1, 8, 16).select(2, 2).fill_(1.0);
  rgba.narrow(0, 8, 16).narrow(1, 8, 16).select(2, 3).fill_(1.0);
  const at::Tensor small = resize_image(rgba, 12, 12, ResizeFilter::kArea);
  const at::Tensor visible = small.select(2, 3) > 0.01;
  CHECK(small.select(2, 0).masked_select(visible).max().item<float>() < 0.01f);

  const at::Tensor odd = gradient(389, 517, 3);
  const at::Tensor snapped = resize_to_multiple_of_8(odd);
  CHECK(snapped.sizes() == at::IntArrayRef({384, 512, 3}));
  CHECK(mean_abs_diff(snapped, resize_image(odd, 512, 384, ResizeFilter::kLanczos)) == 0.0);
  const at::Tensor same = gradient(64, 72, 3);
  CHECK(resize_to_multiple_of_8(same).data_ptr() == same.data_ptr());
}

// Found by tests/fuzz/fuzz_image_import: libpng allocated a chunk's declared length (1.8 GB for a
// 550-byte file) before reading it. A chunk longer than the rest of the file is refused first.
TEST_CASE("a PNG chunk longer than the file is refused before decoding", "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_chunk_length");
  const std::string ihdr = be32(4) + be32(4) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string head = std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr);
  // A tEXt chunk that says it holds 1.8 GB, followed by a few bytes.
  test::write_file(dir / "liar.png",
                   head + be32(1828716703) + "tEXtparameters" + png_chunk("IEND", ""));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string m = test::error_of<FormatError>([&] { read_image(dir / "liar.png"); });
  CHECK(m.find("liar.png") != std::string::npos);
  CHECK(m.find("'tEXt'") != std::string::npos);
  CHECK(m.find("declares 1828716703 bytes") != std::string::npos);
  CHECK_THROWS_AS(read_image_metadata(dir / "liar.png"), FormatError);
  // The same for an EXR header attribute (OpenEXR allocated the declared size).
  test::write_file(dir / "liar.exr", std::string("\x76\x2f\x31\x01\x02\x00\x00\x00", 8) +
                                         std::string("comments\0string\0", 16) +
                                         std::string("\x01\x00\x64\x6f", 4) + "abc");
  const std::string e = test::error_of<FormatError>([&] { read_image(dir / "liar.exr"); });
  CHECK(e.find("EXR header attribute 'comments' declares 1868824577 bytes") != std::string::npos);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 2.0);
  // A well-formed PNG still reads.
  write_image(dir / "honest.png", gradient(4, 4, 3));
  CHECK_NOTHROW(read_image(dir / "honest.png"));
}

// Found by tests/fuzz/fuzz_image_import: OpenEXR reads a channel list up to its empty name and a
// fixed-size attribute by its type, not by the declared size; a header whose sizes disagree was
// read by OpenEXR from another offset than studio's check, where a string attribute's length was
// 1.9 GB (out of memory from a 308-byte file). Such headers are refused before OpenEXR.
TEST_CASE("EXR header attributes whose declared size disagrees with the contents are refused",
          "[unit][image_io]") {
  const auto dir = test::temp_dir("image_io_exr_framing");
  const std::string magic("\x76\x2f\x31\x01\x02\x00\x00\x00", 8);
  auto attr = [](const std::string& name, const std::string& type, uint32_t size) {
    std::string s = name + '\0' + type + '\0';
    for (int i = 0; i < 4; ++i) s += static_cast<char>((size >> (8 * i)) & 0xff);
    return s;
  };
  const std::string channel = std::string("R\0", 2) + std::string(16, '\1');
  // The channel list declares 16 bytes; its entries take 19 (one channel and the empty name).
  test::write_file(dir / "chlist.exr",
                   magic + attr("channels", "chlist", 16) + channel + '\0' + std::string(40, '\0'));
  std::string e = test::error_of<FormatError>([&] { read_image(dir / "chlist.exr"); });
  CHECK_THAT(e, Catch::Contains("chlist.exr") && Catch::Contains("'channels' (chlist)") &&
                    Catch::Contains("declares 16 bytes but its contents take 19"));
  CHECK_THROWS_AS(read_image_metadata(dir / "chlist.exr"), FormatError);
  // A box2i that declares 4 bytes (OpenEXR reads 16).
  test::write_file(dir / "box.exr", magic + attr("dataWindow", "box2i", 4) + std::string(60, '\0'));
  e = test::error_of<FormatError>([&] { read_image(dir / "box.exr"); });
  CHECK_THAT(e, Catch::Contains("'dataWindow' (box2i) declares 4 bytes but its contents take 16"));
  // A string vector entry longer than the attribute.
  test::write_file(dir / "sv.exr", magic + attr("names", "stringvector", 8) +
                                       std::string("\x08\x00\x00\x00", 4) + "abcdefgh" +
                                       std::string(20, '\0'));
  CHECK_THAT(test::error_of<FormatError>([&] { read_image(dir / "sv.exr"); }),
             Catch::Contains("'names' (stringvector) holds a string of 8 bytes, more than the 4"));
  // A preview whose pixels do not match its size.
  test::write_file(dir / "preview.exr", magic + attr("preview", "preview", 12) +
                                            std::string("\x02\x00\x00\x00\x02\x00\x00\x00", 8) +
                                            std::string(30, '\0'));
  CHECK_THAT(
      test::error_of<FormatError>([&] { read_image(dir / "preview.exr"); }),
      Catch::Contains("'preview' (preview) declares 12 bytes but a 2x2 preview takes 8 + 4"));
  // The fuzzer's input, rebuilt: names and a channel list that ends 3 bytes past its size.
  const auto found = fs::path(test::source_dir()) / "tests/fuzz/corpus/image_import" /
                     "oom-exr-chlist-framing.bin";
  CHECK_THAT(test::error_of<FormatError>([&] { read_image_metadata(found); }),
             Catch::Contains("(chlist) declares 73 bytes but its contents take 76"));
  CHECK_THROWS_AS(read_image(found), FormatError);
  // EXR files as OpenImageIO writes them still read: "TIFF 8/16-bit and EXR half/float round
  // trips" above goes through the same check.
}

// Found by tests/fuzz/fuzz_image_import: OpenImageIO's GIF reader sizes its canvas from the logical
// screen as it opens the file; 65531x65531 overflowed its byte count and a std::length_error ended
// the process. The screen is checked before OpenImageIO opens the file.
TEST_CASE("a GIF screen over the pixel limit or OpenImageIO's canvas is refused before opening",
          "[unit][image_io]") {
  const auto found = fs::path(test::source_dir()) /
                     "tests/fuzz/corpus/image_import/terminate-gif-screen-overflow.gif";
  std::string e = test::error_of<FormatError>([&] { read_image(found); });
  CHECK_THAT(e, Catch::Contains("terminate-gif-screen-overflow.gif") &&
                    Catch::Contains("65531x65531") && Catch::Contains("checked before decoding"));
  CHECK_THROWS_AS(read_image_metadata(found), FormatError);
  // Under a limit raised past it, what OpenImageIO's reader can hold still stops it.
  ImageReadOptions huge;
  huge.max_pixels = int64_t{1} << 40;
  e = test::error_of<FormatError>([&] { read_image(found, huge); });
  CHECK_THAT(e, Catch::Contains("more than OpenImageIO's GIF reader can hold"));
  // GIFs as other programs write them still read: "files from another writer" above.
}
