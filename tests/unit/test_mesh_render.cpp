// The software renderer: turntable frames cover a sane share of the image, differ between angles,
// show texture colours, and the contact sheet tiles them.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>

#include "mesh/mesh_io.h"
#include "mesh/render.h"

using namespace studio::test;
namespace sm = studio::mesh;

namespace {

double mean_abs_diff(const sm::RgbImage& a, const sm::RgbImage& b) {
  double sum = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) sum += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return sum / a.rgb.size();
}

// Share of foreground pixels that are clearly yellow (duck) or orange-brown (box texture).
double share(const sm::RgbImage& img, bool (*pred)(int, int, int)) {
  size_t fg = 0, hit = 0;
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    int r = img.rgb[i], g = img.rgb[i + 1], b = img.rgb[i + 2];
    if (std::abs(r - 240) + std::abs(g - 240) + std::abs(b - 240) <= 6) continue;
    ++fg;
    hit += pred(r, g, b);
  }
  return fg ? double(hit) / fg : 0;
}

}  // namespace

TEST_CASE("mesh turntable frames are non-empty and differ between angles", "[unit][mesh]") {
  const sm::Mesh m = sm::import_mesh(data_root() / "meshes" / "WusonOBJ.obj");
  const auto frames = sm::turntable(m, 4, 128);
  REQUIRE(frames.size() == 4);
  for (const auto& f : frames) {
    CHECK(f.width == 128);
    CHECK(f.rgb.size() == 128u * 128u * 3u);
    const double cov = sm::foreground_coverage(f, {240, 240, 240});
    CHECK(cov > 0.05);
    CHECK(cov < 0.9);
  }
  CHECK(mean_abs_diff(frames[0], frames[1]) > 1.0);
  CHECK(mean_abs_diff(frames[0], frames[2]) > 1.0);
  // Deterministic.
  CHECK(mean_abs_diff(frames[0], sm::turntable(m, 4, 128)[0]) == 0.0);

  const auto sheet = sm::contact_sheet(frames);
  CHECK(sheet.width == 256);
  CHECK(sheet.height == 256);
  const auto views = sm::multi_view(m, 64);
  CHECK(views.size() == 6);
  const auto vs = sm::contact_sheet(views, 3, 150);
  CHECK(vs.width == 150);
  CHECK(vs.height == 100);
}

TEST_CASE("mesh textured meshes render their texture colours", "[unit][mesh]") {
  // The duck's texture is yellow; untextured it would be white-grey.
  const sm::Mesh duck = sm::import_mesh(data_root() / "meshes" / "duck.dae");
  sm::RenderOptions o;
  o.width = o.height = 128;
  const auto img = sm::render_view(duck, o);
  auto yellow = [](int r, int g, int b) { return r > 90 && g > 70 && b < 0.6 * r; };
  CHECK(share(img, yellow) > 0.5);

  sm::Mesh plain = duck;
  for (auto& mat : plain.materials) mat.base_color_texture = -1;
  CHECK(share(sm::render_view(plain, o), yellow) < 0.05);

  // BoxTextured: its texture is a blue sky over green hills on grey.
  const sm::Mesh box = sm::import_mesh(data_root() / "meshes" / "BoxTextured.glb");
  const auto bimg = sm::render_view(box, o);
  auto blue = [](int r, int g, int b) { return b > r + 30 && b > g; };
  auto green = [](int r, int g, int b) { return g > r + 20 && g > b; };
  CHECK(share(bimg, blue) > 0.1);
  CHECK(share(bimg, green) > 0.1);
  CHECK(sm::foreground_coverage(bimg, o.background) > 0.1);
}

TEST_CASE("mesh vertex colours are rendered", "[unit][mesh]") {
  sm::Mesh m;
  m.submeshes.resize(1);
  auto& s = m.submeshes[0];
  s.positions = {{-1, -1, 0}, {1, -1, 0}, {1, 1, 0}, {-1, 1, 0}};
  s.colors = {{1, 0, 0, 1}, {1, 0, 0, 1}, {1, 0, 0, 1}, {1, 0, 0, 1}};
  s.indices = {0, 1, 2, 0, 2, 3};
  sm::RenderOptions o;
  o.width = o.height = 64;
  o.yaw_deg = 0;
  o.pitch_deg = 0;
  const auto img = sm::render_view(m, o);
  const uint8_t* centre = &img.rgb[(32 * 64 + 32) * 3];
  CHECK(centre[0] > 150);
  CHECK(centre[1] < 30);
  CHECK(centre[2] < 30);
}
