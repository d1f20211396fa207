// Channel formats: exact output sizes, product-aware crops that keep the whole product for several
// aspect ratios and product positions, padding with its fill mask, fallbacks and bad inputs.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "image/channel_format.h"
#include "image/image_io.h"
#include "tests/support/fixtures.h"

using namespace studio;
using namespace studio::image;
namespace fs = std::filesystem;

namespace {

at::Tensor picture(int64_t h, int64_t w) {
  const at::Tensor y = at::linspace(0, 1, h).view({h, 1}).expand({h, w});
  const at::Tensor x = at::linspace(0, 1, w).view({1, w}).expand({h, w});
  return at::stack({x, y, 0.25 + 0.5 * x * y}, 2).contiguous();
}

at::Tensor box_mask(int64_t h, int64_t w, const PixelRect& r) {
  at::Tensor m = at::zeros({h, w});
  m.narrow(0, r.y, r.height).narrow(1, r.x, r.width).fill_(1);
  return m;
}

bool contains(const PixelRect& outer, const PixelRect& inner) {
  return inner.x >= outer.x && inner.y >= outer.y &&
         inner.x + inner.width <= outer.x + outer.width &&
         inner.y + inner.height <= outer.y + outer.height;
}

}  // namespace

TEST_CASE("fit_to_channel gives the exact channel size in every mode", "[channel_format]") {
  const at::Tensor img = picture(200, 300);
  const at::Tensor mask = box_mask(200, 300, {130, 80, 40, 50});
  for (const auto& [tw, th] : std::vector<std::pair<int, int>>{
           {1080, 1080}, {1080, 1920}, {1200, 628}, {64, 64}, {1080, 1350}, {17, 9}}) {
    for (const FitMode mode : {FitMode::kCrop, FitMode::kPad, FitMode::kAuto}) {
      INFO(tw << "x" << th << " " << fit_mode_name(mode));
      const ChannelFit f = fit_to_channel(img, mask, tw, th, mode);
      CHECK(f.pixels.sizes() == at::IntArrayRef({th, tw, 3}));
      CHECK(f.mask.sizes() == at::IntArrayRef({th, tw}));
      CHECK(f.fill.sizes() == at::IntArrayRef({th, tw}));
      CHECK(f.pixels.min().item<float>() >= 0.0f);
      CHECK(f.pixels.max().item<float>() <= 1.0f);
      CHECK(f.scale_x == Approx(f.scale_y).epsilon(0.02));
      CHECK(f.mode != FitMode::kAuto);
      CHECK(!f.description.empty());
    }
  }
  // RGBA keeps its channels.
  const at::Tensor rgba = at::cat({img, at::ones({200, 300, 1})}, 2);
  CHECK(fit_to_channel(rgba, mask, 100, 100, FitMode::kPad).pixels.size(2) == 4);
}

TEST_CASE("crop keeps the whole product for several aspects and positions", "[channel_format]") {
  const int H = 400, W = 600;
  const at::Tensor img = picture(H, W);
  const std::vector<PixelRect> products = {
      {270, 170, 60, 60},   // centred
      {0, 150, 50, 80},     // touching the left edge
      {540, 10, 55, 40},    // top-right corner
      {200, 330, 120, 70},  // bottom edge
      {100, 60, 80, 200},   // tall, left of centre
  };
  const std::vector<std::pair<int, int>> sizes = {
      {1080, 1080}, {1080, 1920}, {1200, 628}, {1080, 1350}, {1920, 1080}};
  for (const PixelRect& p : products) {
    const at::Tensor mask = box_mask(H, W, p);
    for (const auto& [tw, th] : sizes) {
      INFO("product " << p.width << "x" << p.height << " at " << p.x << "," << p.y << " -> " << tw
                      << "x" << th);
      const ChannelFit f = fit_to_channel(img, mask, tw, th, FitMode::kCrop);
      CHECK(f.product.x == p.x);
      CHECK(f.product.width == p.width);
      if (f.mode == FitMode::kPad) {  // only when no window of this aspect can hold it
        CHECK(f.fell_back);
        CHECK(f.description.find("no crop window") != std::string::npos);
        // Its box plus the 5 % margin (clipped to the photo) exceeds the largest window.
        const int m = static_cast<int>(std::ceil(0.05 * std::max(p.width, p.height)));
        const int nw = std::min(W, p.x + p.width + m) - std::max(0, p.x - m);
        const int nh = std::min(H, p.y + p.height + m) - std::max(0, p.y - m);
        const bool wide = static_cast<double>(W) / H >= static_cast<double>(tw) / th;
        const double ww = wide ? H * static_cast<double>(tw) / th : W;
        const double wh = wide ? H : W * static_cast<double>(th) / tw;
        CHECK((nw > ww + 0.5 || nh > wh + 0.5));
        continue;
      }
      CHECK_FALSE(f.fell_back);
      CHECK(contains({0, 0, W, H}, f.rect));
      CHECK(contains(f.rect, p));
      CHECK(f.rect.width * th == Approx(static_cast<double>(f.rect.height) * tw).epsilon(0.01));
      // The window is the largest of its aspect: it spans the photo's height or width.
      CHECK((f.rect.width == W || f.rect.height == H));
      CHECK(f.fill.max().item<float>() == 0.0f);
      // The whole product is in the output: its area scales with the resize.
      const double want = static_cast<double>(p.width) * p.height * f.scale_x * f.scale_y;
      CHECK(f.mask.sum().item<double>() == Approx(want).epsilon(0.05));
      const PixelRect out = mask_bounding_box(f.mask);
      CHECK(out.width == Approx(p.width * f.scale_x).margin(2));
      CHECK(out.height == Approx(p.height * f.scale_y).margin(2));
    }
  }
  // The centred product lands at the output's centre when nothing stops it.
  const ChannelFit c = fit_to_channel(img, box_mask(H, W, products[0]), 1080, 1080, FitMode::kCrop);
  const PixelRect b = mask_bounding_box(c.mask);
  CHECK(b.x + b.width / 2.0 == Approx(540).margin(3));
  CHECK(b.y + b.height / 2.0 == Approx(540).margin(3));
  // A product near an edge: the window stops at the photo's edge, the product is still inside.
  const ChannelFit e = fit_to_channel(img, box_mask(H, W, products[1]), 1080, 1920, FitMode::kCrop);
  CHECK(e.rect.x == 0);
  CHECK(e.mode == FitMode::kCrop);
}

TEST_CASE("a product too wide for the crop falls back to padding", "[channel_format]") {
  const at::Tensor img = picture(200, 300);
  const at::Tensor mask = box_mask(200, 300, {20, 60, 260, 80});
  const ChannelFit crop = fit_to_channel(img, mask, 1080, 1920, FitMode::kCrop);
  CHECK(crop.mode == FitMode::kPad);
  CHECK(crop.fell_back);
  CHECK(crop.description.find("no crop window") != std::string::npos);
  CHECK(crop.description.find("pad") != std::string::npos);
  const ChannelFit aut = fit_to_channel(img, mask, 1080, 1920, FitMode::kAuto);
  CHECK(aut.mode == FitMode::kPad);
  CHECK_FALSE(aut.fell_back);
  CHECK(at::equal(aut.pixels, crop.pixels));
  // The same product (286x106 with margin) fits a banner's 300x157 window: auto crops.
  const ChannelFit sq = fit_to_channel(img, mask, 1200, 628, FitMode::kAuto);
  CHECK(sq.mode == FitMode::kCrop);
  CHECK(contains(sq.rect, {20, 60, 260, 80}));
}

TEST_CASE("pad: the photo unchanged on the canvas, the new pixels marked for outpainting",
          "[channel_format]") {
  const at::Tensor img = picture(200, 300);
  const at::Tensor mask = box_mask(200, 300, {100, 50, 100, 100});  // centred horizontally

  SECTION("at scale 1 the photo's pixels are exact and the fill mask is exactly the new area") {
    const ChannelFit f = fit_to_channel(img, mask, 300, 300, FitMode::kPad);
    REQUIRE(f.mode == FitMode::kPad);
    CHECK(f.canvas_width == 300);
    CHECK(f.canvas_height == 300);
    CHECK(f.scale_x == 1.0);
    // The product (rows 50..149) is centred vertically: the photo lies at y = 150 - 100 = 50.
    CHECK(f.rect.x == 0);
    CHECK(f.rect.y == 50);
    CHECK(f.rect.width == 300);
    CHECK(f.rect.height == 200);
    CHECK(at::equal(f.pixels.narrow(0, 50, 200), img));
    at::Tensor want_fill = at::ones({300, 300});
    want_fill.narrow(0, 50, 200).zero_();
    CHECK(at::equal(f.fill, want_fill));
    CHECK(at::equal(f.mask.narrow(0, 50, 200), mask));
    CHECK(f.mask.sum().item<float>() == mask.sum().item<float>());
    // The fill continues the edge: next to the photo it is (almost) the edge row.
    CHECK((f.pixels[49] - img[0]).abs().max().item<float>() < 0.02f);
    CHECK((f.pixels[250] - img[199]).abs().max().item<float>() < 0.02f);
  }
  SECTION("without blur the fill is plain edge extension") {
    ChannelFitOptions o;
    o.pad_blur = 0;
    const ChannelFit f = fit_to_channel(img, mask, 300, 300, FitMode::kPad, o);
    for (int y = 0; y < 50; ++y) CHECK(at::equal(f.pixels[y], img[0]));
  }
  SECTION("resized: the fill mask covers every pixel the padding touched") {
    const ChannelFit f = fit_to_channel(img, mask, 1080, 1920, FitMode::kPad);
    REQUIRE(f.mode == FitMode::kPad);
    CHECK(f.canvas_width == 300);
    CHECK(f.canvas_height == 533);
    const double photo_rows = 200.0 * f.scale_y;
    const double fill_rows = f.fill.select(1, 500).sum().item<double>();
    // Conservative: the rows blending photo and fill (a canvas row, scale_y output rows, at each
    // of the two borders) count as fill.
    CHECK(fill_rows >= 1920 - photo_rows - 1);
    CHECK(fill_rows <= 1920 - photo_rows + 2 * f.scale_y);
    CHECK(at::equal(f.fill, f.fill.select(1, 0).unsqueeze(1).expand({1920, 1080})));  // whole rows
    CHECK((f.fill * f.mask).sum().item<float>() == 0.0f);
    CHECK(f.description.find("outpaint") != std::string::npos);
  }
}

TEST_CASE("fit_to_channel on a real photo and without a mask", "[channel_format]") {
  const fs::path path = test::data_root() / "photos" / "chelsea.png";
  REQUIRE(fs::exists(path));
  const Image photo = read_image(path);
  const at::Tensor mask = box_mask(photo.height, photo.width, {150, 60, 150, 170});
  for (const auto& [tw, th] :
       std::vector<std::pair<int, int>>{{1080, 1080}, {1080, 1920}, {1200, 628}}) {
    const ChannelFit f = fit_to_channel(photo.pixels, mask, tw, th, FitMode::kAuto);
    CHECK(f.pixels.size(0) == th);
    CHECK(f.pixels.size(1) == tw);
    CHECK(f.mask.sum().item<float>() > 0.0f);
  }
  const ChannelFit centred = fit_to_channel(photo.pixels, at::Tensor(), 300, 300, FitMode::kCrop);
  CHECK(centred.mode == FitMode::kCrop);
  CHECK(centred.rect.width == 300);
  CHECK(centred.rect.x == (451 - 300 + 1) / 2);
  CHECK(centred.mask.sum().item<float>() == 0.0f);
}

TEST_CASE("fit_to_channel refuses bad sizes and masks", "[channel_format]") {
  const at::Tensor img = picture(100, 120);
  const at::Tensor mask = box_mask(100, 120, {40, 30, 20, 20});
  for (const auto& [tw, th] :
       std::vector<std::pair<int, int>>{{0, 100}, {100, -5}, {100000, 1080}, {4, 4}, {3200, 100}}) {
    INFO(tw << "x" << th);
    CHECK_THROWS_AS(fit_to_channel(img, mask, tw, th, FitMode::kAuto), UsageError);
  }
  try {
    fit_to_channel(img, box_mask(90, 120, {40, 30, 20, 20}), 100, 100, FitMode::kAuto);
    FAIL("a mask of another size was accepted");
  } catch (const UsageError& e) {
    CHECK(std::string(e.what()).find("120x100") != std::string::npos);
    CHECK(std::string(e.what()).find("[90, 120]") != std::string::npos);
  }
  CHECK_THROWS_AS(fit_to_channel(img, at::zeros({100, 120}), 100, 100, FitMode::kAuto), UsageError);
  CHECK_THROWS_AS(fit_to_channel(at::rand({100, 120}), mask, 100, 100, FitMode::kAuto), UsageError);
  ChannelFitOptions o;
  o.margin = -1;
  CHECK_THROWS_AS(fit_to_channel(img, mask, 100, 100, FitMode::kAuto, o), UsageError);
}
