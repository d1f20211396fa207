// Product masks for editing: each source (alpha, user mask file, GrabCut), bad inputs, grow/shrink
// and feather geometry, the latent-grid mask, and the composite's bit-exactness on the product.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "image/edit_mask.h"
#include "image/image_io.h"
#include "tests/support/expect_error.h"
#include "tests/support/fixtures.h"

using namespace studio;
using namespace studio::image;
namespace fs = std::filesystem;

namespace {

// [H, W] float 0/1 disc of radius r centred at (cx, cy) (pixel centres).
at::Tensor disc(int64_t h, int64_t w, double cx, double cy, double r) {
  const at::Tensor y = at::arange(h, at::kDouble).view({h, 1}).expand({h, w});
  const at::Tensor x = at::arange(w, at::kDouble).view({1, w}).expand({h, w});
  return ((x - cx).pow(2) + (y - cy).pow(2) <= r * r).to(at::kFloat);
}

Image as_image(const at::Tensor& hwc) {
  Image im;
  im.pixels = hwc.contiguous();
  im.height = static_cast<int>(hwc.size(0));
  im.width = static_cast<int>(hwc.size(1));
  im.channels = static_cast<int>(hwc.size(2));
  im.has_alpha = im.channels == 4;
  return im;
}

// A smooth RGB background [H, W, 3] in [0, 1].
at::Tensor background(int64_t h, int64_t w) {
  const at::Tensor y = at::linspace(0, 1, h).view({h, 1}).expand({h, w});
  const at::Tensor x = at::linspace(0, 1, w).view({1, w}).expand({h, w});
  return at::stack({0.55 + 0.1 * x, 0.6 + 0.1 * y, 0.7 + 0.05 * x * y}, 2).contiguous();
}

double max_abs_diff_of(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

double iou(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a != 0, y = b != 0;
  return (x & y).sum().item<double>() / (x | y).sum().item<double>();
}

}  // namespace

TEST_CASE("product mask from the photo's alpha channel", "[edit_mask]") {
  const fs::path dir = test::temp_dir("edit_mask_alpha");
  at::Tensor rgba = at::cat({background(48, 64), at::zeros({48, 64, 1})}, 2);
  rgba.select(2, 3).narrow(0, 8, 12).narrow(1, 10, 20).fill_(1.0);
  rgba.select(2, 3)[8][30] = 0.6;  // >= 0.5: product
  rgba.select(2, 3)[8][31] = 0.4;  // < 0.5: background
  const fs::path file = dir / "cutout.png";
  write_image(file, rgba);
  const Image photo = read_image(file);
  REQUIRE(photo.has_alpha);

  const ProductMask m = mask_from_alpha(photo, file.string());
  CHECK(m.width == 64);
  CHECK(m.height == 48);
  CHECK(m.product_pixels == 12 * 20 + 1);
  CHECK(m.hard[8][30].item<float>() == 1.0f);
  CHECK(m.hard[8][31].item<float>() == 0.0f);
  CHECK(m.hard.narrow(0, 8, 12).narrow(1, 10, 20).min().item<float>() == 1.0f);
  CHECK(at::equal(m.soft, m.hard));
  CHECK(m.source.find("alpha channel") != std::string::npos);
  CHECK(m.source.find("cutout.png") != std::string::npos);

  const Image rgb = as_image(background(48, 64));
  const std::string msg = test::error_of<UsageError>([&] { mask_from_alpha(rgb, "flat.jpg"); });
  CHECK(msg.find("no alpha channel") != std::string::npos);
  CHECK(msg.find("flat.jpg") != std::string::npos);
}

TEST_CASE("product mask from a user mask file: grey, RGB and alpha", "[edit_mask]") {
  const fs::path dir = test::temp_dir("edit_mask_file");
  const Image photo = as_image(background(40, 50));
  const at::Tensor expected = disc(40, 50, 24, 19, 9);

  SECTION("grey PNG, threshold 0.5 on 8-bit levels") {
    at::Tensor grey = expected.clone();
    grey[0][0] = 128.0 / 255;  // >= 0.5: product
    grey[0][1] = 127.0 / 255;  // < 0.5: background
    write_image(dir / "grey.png", grey.unsqueeze(2));
    const ProductMask m = mask_from_file(dir / "grey.png", photo, "photo.png");
    at::Tensor want = expected.clone();
    want[0][0] = 1.0;
    CHECK(at::equal(m.hard, want));
    CHECK(m.source.find("grey.png") != std::string::npos);
  }
  SECTION("RGB white-on-black mask, also as JPEG") {
    const at::Tensor rgb = expected.unsqueeze(2).expand({40, 50, 3}).contiguous();
    write_image(dir / "rgb.png", rgb);
    CHECK(at::equal(mask_from_file(dir / "rgb.png", photo, "photo.png").hard, expected));
    write_image(dir / "rgb.jpg", rgb);
    const ProductMask j = mask_from_file(dir / "rgb.jpg", photo, "photo.png");
    CHECK(iou(j.hard, expected) > 0.97);
  }
  SECTION("cut-out: the alpha channel wins over the colour") {
    const at::Tensor rgba = at::cat({at::ones({40, 50, 3}), expected.unsqueeze(2)}, 2);
    write_image(dir / "cutout.png", rgba);
    CHECK(at::equal(mask_from_file(dir / "cutout.png", photo, "photo.png").hard, expected));
  }
  SECTION("grow and feather options apply") {
    write_image(dir / "m.png", expected.unsqueeze(2));
    ProductMaskOptions o;
    o.grow = 2;
    o.feather = 4;
    const ProductMask m = mask_from_file(dir / "m.png", photo, "photo.png", o);
    CHECK(at::equal(m.hard, refine_mask(expected, "e", o).hard));
    CHECK((expected <= m.hard).all().item<bool>());
    CHECK(m.grow == 2);
    CHECK(m.feather == 4);
  }
}

TEST_CASE("bad mask inputs are clear errors", "[edit_mask]") {
  const fs::path dir = test::temp_dir("edit_mask_bad");
  const Image photo = as_image(background(48, 64));

  SECTION("size mismatch names both sizes and the file") {
    write_image(dir / "small.png", disc(32, 32, 16, 16, 8).unsqueeze(2));
    const std::string msg =
        test::error_of<UsageError>([&] { mask_from_file(dir / "small.png", photo, "shoe.png"); });
    CHECK(msg.find("32x32") != std::string::npos);
    CHECK(msg.find("64x48") != std::string::npos);
    CHECK(msg.find("small.png") != std::string::npos);
    CHECK(msg.find("shoe.png") != std::string::npos);
  }
  SECTION("empty and full masks name the source") {
    write_image(dir / "black.png", at::zeros({48, 64, 1}));
    std::string msg =
        test::error_of<UsageError>([&] { mask_from_file(dir / "black.png", photo, "shoe.png"); });
    CHECK(msg.find("empty") != std::string::npos);
    CHECK(msg.find("black.png") != std::string::npos);
    write_image(dir / "white.png", at::ones({48, 64, 1}));
    msg = test::error_of<UsageError>([&] { mask_from_file(dir / "white.png", photo, "shoe.png"); });
    CHECK(msg.find("whole photo") != std::string::npos);
    CHECK(msg.find("white.png") != std::string::npos);
    at::Tensor rgba = at::cat({background(48, 64), at::zeros({48, 64, 1})}, 2);
    msg = test::error_of<UsageError>([&] { mask_from_alpha(as_image(rgba), "clear.png"); });
    CHECK(msg.find("empty") != std::string::npos);
    CHECK(msg.find("clear.png") != std::string::npos);
  }
  SECTION("truncated and missing mask files") {
    const fs::path truncated = test::data_root() / "photos" / "truncated.jpg";
    REQUIRE(fs::exists(truncated));
    CHECK_THROWS_AS(mask_from_file(truncated, as_image(background(100, 100)), "p.png"),
                    FormatError);
    const std::string msg =
        test::error_of<IoError>([&] { mask_from_file(dir / "nope.png", photo, "p.png"); });
    CHECK(msg.find("nope.png") != std::string::npos);
  }
  SECTION("bad options") {
    ProductMaskOptions o;
    o.feather = -1;
    CHECK_THROWS_AS(refine_mask(disc(20, 20, 10, 10, 4), "m", o), UsageError);
    o.feather = 0;
    o.grow = 1000;
    CHECK_THROWS_AS(refine_mask(disc(20, 20, 10, 10, 4), "m", o), UsageError);
    CHECK_THROWS_AS(refine_mask(at::ones({2, 3, 4}), "m"), UsageError);
  }
}

TEST_CASE("grow, shrink and feather geometry", "[edit_mask]") {
  const at::Tensor d10 = disc(64, 64, 32, 32, 10);
  ProductMaskOptions o;

  SECTION("grow / shrink by N pixels with an elliptical kernel") {
    // OpenCV's digital ellipse is not an exact Euclidean disc: the result lies between the discs
    // half a pixel either side of the ideal radius.
    const auto between = [](const at::Tensor& m, double r) {
      const at::Tensor inner = disc(64, 64, 32, 32, r - 0.5), outer = disc(64, 64, 32, 32, r + 0.5);
      return ((inner <= m) & (m <= outer)).all().item<bool>();
    };
    o.grow = 3;
    const ProductMask g = refine_mask(d10, "disc", o);
    CHECK(between(g.hard, 13));
    CHECK((d10 <= g.hard).all().item<bool>());
    CHECK_FALSE(between(g.hard, 12));
    o.grow = -3;
    const ProductMask s = refine_mask(d10, "disc", o);
    CHECK(between(s.hard, 7));
    CHECK_FALSE(between(s.hard, 8));
    CHECK(s.product_pixels == s.hard.sum().item<int64_t>());
  }
  SECTION("shrinking does not eat in from the photo's edge") {
    at::Tensor left = at::zeros({20, 30});
    left.narrow(1, 0, 10).fill_(1);
    o.grow = -2;
    const ProductMask s = refine_mask(left, "left", o);
    CHECK(s.hard.select(1, 0).min().item<float>() == 1.0f);
    CHECK(s.hard.select(1, 7).max().item<float>() == 1.0f);
    CHECK(s.hard.select(1, 8).max().item<float>() == 0.0f);
  }
  SECTION("shrinking away or growing over everything is an error") {
    o.grow = -4;
    std::string msg =
        test::error_of<UsageError>([&] { refine_mask(disc(40, 40, 20, 20, 2), "tiny.png", o); });
    CHECK(msg.find("after shrinking") != std::string::npos);
    CHECK(msg.find("tiny.png") != std::string::npos);
    o.grow = 30;
    msg = test::error_of<UsageError>([&] { refine_mask(disc(40, 40, 20, 20, 2), "tiny.png", o); });
    CHECK(msg.find("after growing") != std::string::npos);
  }
  SECTION("feather: 1 exactly on the hard mask, raised cosine outward over F pixels") {
    at::Tensor half = at::zeros({16, 40});
    half.narrow(1, 0, 20).fill_(1);  // columns 0..19 product
    o.feather = 6;
    const ProductMask m = refine_mask(half, "half", o);
    CHECK(at::equal(m.hard, half));
    CHECK(at::equal(m.soft.masked_select(half != 0), at::ones({16 * 20})));
    for (int k = 1; k <= 6; ++k) {  // column 19 + k is k pixels from the mask
      const double want = 0.5 * (1 + std::cos(M_PI * k / 7.0));
      const at::Tensor col = m.soft.select(1, 19 + k);
      CHECK(col.min().item<double>() == Approx(want).margin(1e-6));
      CHECK(col.max().item<double>() == Approx(want).margin(1e-6));
      CHECK(col.max().item<float>() < 1.0f);
      CHECK(col.min().item<float>() > 0.0f);
    }
    CHECK(m.soft.narrow(1, 26, 14).max().item<float>() == 0.0f);

    const ProductMask d = refine_mask(d10, "disc", o);
    const at::Tensor outside = (d10 == 0);
    CHECK(d.soft.masked_select(outside).max().item<float>() < 1.0f);
    // Against a brute-force Euclidean distance to the nearest hard pixel.
    const at::Tensor grid = at::stack({at::arange(64).view({64, 1}).expand({64, 64}),
                                       at::arange(64).view({1, 64}).expand({64, 64})},
                                      2)
                                .reshape({-1, 2})
                                .to(at::kDouble);
    const at::Tensor on = grid.index({d10.reshape({-1}) != 0});
    const at::Tensor dist = at::cdist(grid, on).amin(1).reshape({64, 64});
    const at::Tensor want =
        at::where(dist < 7, 0.5 * (1 + at::cos(M_PI * dist / 7)), at::zeros_like(dist));
    CHECK(max_abs_diff_of(d.soft, want) < 1e-5);
    CHECK(at::equal(d.soft > 0, dist < 7));
    o.feather = 0;
    CHECK(at::equal(refine_mask(d10, "disc", o).soft, d10));
  }
}

TEST_CASE("latent mask: conservative reduction to the latent grid", "[edit_mask]") {
  at::Tensor one = at::zeros({32, 48});
  one[9][17] = 1;
  const ProductMask m = refine_mask(one, "dot");
  const at::Tensor l = latent_mask(m, 8);
  REQUIRE(l.sizes() == at::IntArrayRef({4, 6}));
  CHECK(l.sum().item<float>() == 1.0f);
  CHECK(l[1][2].item<float>() == 1.0f);

  ProductMaskOptions o;
  o.feather = 8;  // soft > 0 up to 8 pixels away: reaches rows 1..17, columns 9..25
  const at::Tensor lf = latent_mask(refine_mask(one, "dot", o), 8);
  // Euclidean d < 9 from (9, 17) reaches every block of rows 0..23 x columns 8..31 except the
  // one of rows 16..23 x columns 24..31: its nearest pixel (16, 24) is sqrt(98) > 9 away.
  at::Tensor want = at::zeros({4, 6});
  want.narrow(0, 0, 3).narrow(1, 1, 3).fill_(1);
  want[2][3] = 0;
  CHECK(at::equal(lf, want));

  const ProductMask odd = refine_mask(disc(30, 40, 20, 15, 5), "odd.png");
  const std::string msg = test::error_of<UsageError>([&] { latent_mask(odd, 8); });
  CHECK(msg.find("40x30") != std::string::npos);
  CHECK(msg.find("odd.png") != std::string::npos);
}

TEST_CASE("composite keeps the product's pixels bit for bit, also through an 8-bit PNG",
          "[edit_mask]") {
  const fs::path coffee = test::data_root() / "photos" / "coffee.png";
  REQUIRE(fs::exists(coffee));
  const Image photo = read_image(coffee);
  const int64_t h = photo.height, w = photo.width;
  ProductMaskOptions o;
  o.feather = 12;
  o.grow = 3;
  const ProductMask m = refine_mask(disc(h, w, w * 0.45, h * 0.55, h * 0.3), "cup", o);
  at::manual_seed(5);
  const at::Tensor edited = at::rand({h, w, 3});
  const at::Tensor out = composite(photo.pixels, edited, m.soft);
  REQUIRE(out.sizes() == photo.pixels.sizes());

  const at::Tensor keep = (m.soft == 1).unsqueeze(2).expand({h, w, 3});
  const at::Tensor free = (m.soft == 0).unsqueeze(2).expand({h, w, 3});
  REQUIRE(keep.any().item<bool>());
  CHECK(at::equal(out.masked_select(keep), photo.pixels.masked_select(keep)));
  CHECK(at::equal(out.masked_select(free), edited.masked_select(free)));
  const at::Tensor lo = at::minimum(photo.pixels, edited), hi = at::maximum(photo.pixels, edited);
  CHECK(((out >= lo - 1e-6) & (out <= hi + 1e-6)).all().item<bool>());

  const fs::path png = test::temp_dir("edit_mask_composite") / "edited.png";
  write_image(png, out);
  const Image back = read_image(png);
  CHECK(at::equal(back.pixels.masked_select(keep), photo.pixels.masked_select(keep)));

  CHECK_THROWS_AS(composite(photo.pixels, edited.narrow(0, 0, h - 1), m.soft), UsageError);
  CHECK_THROWS_AS(composite(photo.pixels, edited, m.soft * 2), UsageError);
}

TEST_CASE("GrabCut finds a distinct centred product", "[edit_mask]") {
  const int64_t h = 180, w = 240;
  at::manual_seed(11);
  at::Tensor img = (background(h, w) + 0.03 * at::randn({h, w, 3})).clamp(0, 1);
  // An off-centre rounded product: a dark red body with a lighter label band.
  const at::Tensor body = disc(h, w, 130, 95, 45);
  const at::Tensor label = body * (at::arange(h).view({h, 1}).expand({h, w}) > 100).to(at::kFloat);
  const at::Tensor colour =
      at::stack({0.6 + 0.3 * label, 0.12 + 0.6 * label, 0.1 + 0.5 * label}, 2);
  img = at::where(body.unsqueeze(2) != 0, colour + 0.03 * at::randn({h, w, 3}), img).clamp(0, 1);

  const ProductMask m = mask_from_grabcut(as_image(img), "synthetic.png");
  // Measured: IoU 1.00 with and without colour initialisation (an easy, high-contrast case).
  CHECK(iou(m.hard, body) > 0.95);
  CHECK(m.source.find("GrabCut") != std::string::npos);
  ProductMaskOptions plain;
  plain.grabcut.colour_init = false;
  CHECK(iou(mask_from_grabcut(as_image(img), "synthetic.png", plain).hard, body) > 0.9);

  ProductMaskOptions bad;
  bad.grabcut.iterations = 0;
  CHECK_THROWS_AS(mask_from_grabcut(as_image(img), "synthetic.png", bad), UsageError);
  CHECK_THROWS_AS(mask_from_grabcut(as_image(at::rand({8, 8, 3})), "tiny.png"), UsageError);
}

TEST_CASE("GrabCut runs on real photos", "[edit_mask]") {
  for (const char* name : {"coffee.png", "chelsea.png", "rocket.jpg"}) {
    const fs::path path = test::data_root() / "photos" / name;
    REQUIRE(fs::exists(path));
    const Image photo = read_image(path);
    INFO(name);
    try {
      const ProductMask m = mask_from_grabcut(photo, path.string());
      CHECK(m.product_pixels > 0);
      CHECK(m.product_pixels < int64_t{photo.width} * photo.height);
      CHECK(m.hard.size(0) == photo.height);
      CHECK(m.hard.size(1) == photo.width);
    } catch (const UsageError& e) {  // an empty or full result is reported, naming the photo
      CHECK(std::string(e.what()).find(name) != std::string::npos);
    }
  }
}
