// Point-E meshes against pointe-tiny-ref/mesh_{text,image} (README-pointe.md): the SDF grid of the
// sampled cloud (atol 5e-5), marching cubes on the recorded grids (the same vertex set within
// 1e-5, face count within 1 %, same orientation), vertex colours from the nearest point, and the
// whole points -> mesh path (counts within 1 %, bbox and Hausdorff within 5e-3). Also checks
// marching_cubes itself on an analytic sphere (watertight, oriented, closed genus 0).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <utility>

#include "core/tensor_io.h"
#include "mesh/marching_cubes.h"
#include "mesh/pointe_models.h"
#include "mesh/pointe_pipeline.h"
#include "tests/support/fixtures.h"

using namespace studio;
using namespace studio::pointe;
namespace fs = std::filesystem;

namespace {

fs::path ref_dir() { return test::fixtures_root() / "pointe-tiny-ref"; }

PointCloudSdfModel& sdf_model() {
  static PointCloudSdfModel model =
      load_sdf_model(pointe_component(test::fixtures_root() / "pointe-tiny" / "sdf"));
  return model;
}

template <typename T>
at::Tensor rows(const std::vector<std::array<T, 3>>& v, at::ScalarType type) {
  return at::from_blob(const_cast<T*>(v.data()->data()), {static_cast<int64_t>(v.size()), 3},
                       at::TensorOptions(type))
      .clone();
}

// Signed volume enclosed by the faces (positive when they face outwards).
double signed_volume(const at::Tensor& verts, const at::Tensor& faces) {
  const at::Tensor v = verts.to(at::kDouble);
  const at::Tensor f = faces.to(at::kLong);
  const at::Tensor p0 = v.index_select(0, f.select(1, 0)), p1 = v.index_select(0, f.select(1, 1)),
                   p2 = v.index_select(0, f.select(1, 2));
  return (p0 * at::cross(p1, p2, 1)).sum().item<double>() / 6.0;
}

// For each row of `a`, the index of and distance to the nearest row of `b`.
std::pair<at::Tensor, at::Tensor> nearest(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor d = at::cdist(a.to(at::kDouble), b.to(at::kDouble));
  const auto [dist, idx] = d.min(1);
  return {idx, dist};
}

struct Case {
  std::string dir;     // mesh_text / mesh_image
  std::string points;  // the sampler whose point_cloud[0] was meshed
};
const Case kCases[] = {{"mesh_text", "sampler_text"}, {"mesh_image", "sampler_image"}};

}  // namespace

TEST_CASE("pointe: marching_cubes meshes a sphere watertight and oriented",
          "[pointe][marching_cubes]") {
  const int64_t g = 24;
  const double r = 0.35, spacing = 1.0 / (g - 1);
  std::vector<float> vol(g * g * g);
  for (int64_t x = 0; x < g; ++x)
    for (int64_t y = 0; y < g; ++y)
      for (int64_t z = 0; z < g; ++z) {
        const double px = x * spacing - 0.51, py = y * spacing - 0.48, pz = z * spacing - 0.5;
        vol[(x * g + y) * g + z] = static_cast<float>(std::sqrt(px * px + py * py + pz * pz) - r);
      }
  const mesh::IsoSurface iso =
      mesh::marching_cubes(vol.data(), {g, g, g}, 0.0f, {spacing, spacing, spacing});
  REQUIRE(!iso.faces.empty());
  // Every directed edge appears once and its reverse once: closed and consistently oriented.
  std::map<std::pair<int32_t, int32_t>, int> directed;
  for (const auto& f : iso.faces)
    for (int k = 0; k < 3; ++k) directed[{f[k], f[(k + 1) % 3]}]++;
  bool closed = true;
  for (const auto& [e, n] : directed) {
    if (n != 1 || directed.count({e.second, e.first}) != 1) closed = false;
  }
  CHECK(closed);
  const int64_t v = iso.vertices.size(), f = iso.faces.size(), e = directed.size() / 2;
  CHECK(v - e + f == 2);
  // Faces point up the gradient (outwards for a distance function): positive volume near 4/3 pi
  // r^3.
  const double vol_mesh = signed_volume(rows(iso.vertices, at::kFloat), rows(iso.faces, at::kInt));
  CHECK(vol_mesh > 0);
  CHECK(std::abs(vol_mesh / (4.0 / 3.0 * M_PI * r * r * r) - 1) < 0.05);
}

TEST_CASE("pointe: marching_cubes stays watertight on random fields (ambiguous cubes)",
          "[pointe][marching_cubes]") {
  const int64_t g = 16;
  for (int seed = 0; seed < 4; ++seed) {
    INFO("seed " << seed);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor vol = at::rand({g, g, g}, gen, at::TensorOptions(at::kFloat)) * 2 - 1;
    // A below-level border closes every surface inside the grid.
    vol.narrow(0, 0, 1).fill_(-1);
    vol.narrow(0, g - 1, 1).fill_(-1);
    vol.narrow(1, 0, 1).fill_(-1);
    vol.narrow(1, g - 1, 1).fill_(-1);
    vol.narrow(2, 0, 1).fill_(-1);
    vol.narrow(2, g - 1, 1).fill_(-1);
    vol = vol.contiguous();
    const mesh::IsoSurface iso =
        mesh::marching_cubes(vol.data_ptr<float>(), {g, g, g}, 0.0f, {1.0, 1.0, 1.0});
    REQUIRE(iso.faces.size() > 1000);
    std::map<std::pair<int32_t, int32_t>, int> directed;
    for (const auto& f : iso.faces)
      for (int k = 0; k < 3; ++k) directed[{f[k], f[(k + 1) % 3]}]++;
    int64_t bad = 0;
    for (const auto& [e, n] : directed) bad += n != 1 || directed.count({e.second, e.first}) != 1;
    CHECK(bad == 0);
  }
}

TEST_CASE("pointe: SDF grid of the sampled clouds matches the reference", "[parity][pointe]") {
  torch::NoGradGuard no_grad;
  for (const Case& c : kCases) {
    INFO(c.dir);
    const fs::path d = ref_dir() / c.dir;
    const at::Tensor coords = load_npy(d / "pc_coords.npy");
    const at::Tensor latents = sdf_model()->encode(coords.t().unsqueeze(0));
    CHECK(test::max_abs_diff(latents, load_npy(d / "sdf_latents.npy")) <= 5e-5);
    const at::Tensor expected = load_npy(d / "sdf_grid.npy");
    MeshOptions opts;
    opts.grid_size = expected.size(0);
    const at::Tensor grid = sdf_grid(sdf_model(), coords, opts);
    REQUIRE(grid.sizes() == expected.sizes());
    const double diff = test::max_abs_diff(grid, expected);
    INFO("SDF grid max |diff| " << diff);
    CHECK(diff <= 5e-5);
  }
}

TEST_CASE("pointe: marching cubes on the recorded SDF grids matches skimage's mesh",
          "[parity][pointe]") {
  for (const Case& c : kCases) {
    INFO(c.dir);
    const fs::path d = ref_dir() / c.dir;
    const at::Tensor grid = load_npy(d / "sdf_grid.npy");
    const at::Tensor rv = load_npy(d / "mesh.verts.npy"), rf = load_npy(d / "mesh.faces.npy");
    const at::Tensor pc = load_npy(ref_dir() / c.points / "point_cloud.coords.npy")[0];
    const at::Tensor rgb = load_npy(ref_dir() / c.points / "point_cloud.rgb.npy")[0];
    CHECK(test::max_abs_diff(pc, load_npy(d / "pc_coords.npy")) == 0);
    const ColoredMesh m = grid_to_mesh(grid, 1.02, pc, rgb);
    const at::Tensor mv = rows(m.positions, at::kFloat), mf = rows(m.faces, at::kInt);
    // One vertex per sign-changing edge: the same set, matched one to one.
    REQUIRE(mv.size(0) == rv.size(0));
    const auto [idx, dist] = nearest(mv, rv);
    const double worst = dist.max().item<double>();
    INFO("vertex set max distance " << worst);
    CHECK(worst <= 1e-5);
    CHECK(std::get<0>(at::_unique(idx)).numel() == rv.size(0));
    // Faces: Lewiner's tables may split ambiguous cubes and quads differently; counts within 1 %.
    const double df = std::abs(static_cast<double>(mf.size(0) - rf.size(0))) / rf.size(0);
    INFO("faces " << mf.size(0) << " vs " << rf.size(0));
    CHECK(df <= 0.01);
    // Faces keyed by reference vertex ids, rotation-normalised: how many are identical.
    const at::Tensor mapped = idx.index_select(0, mf.to(at::kLong).flatten()).view({-1, 3});
    auto canon = [](int64_t a, int64_t b, int64_t c) {
      if (b < a && b < c) return std::array<int64_t, 3>{b, c, a};
      if (c < a && c < b) return std::array<int64_t, 3>{c, a, b};
      return std::array<int64_t, 3>{a, b, c};
    };
    std::map<std::array<int64_t, 3>, int> ref_faces;
    const at::Tensor rfl = rf.to(at::kLong).contiguous();
    for (int64_t i = 0; i < rfl.size(0); ++i)
      ref_faces[canon(rfl[i][0].item<int64_t>(), rfl[i][1].item<int64_t>(),
                      rfl[i][2].item<int64_t>())]++;
    int64_t same = 0;
    const at::Tensor mp = mapped.contiguous();
    const int64_t* p = mp.data_ptr<int64_t>();
    for (int64_t i = 0; i < mp.size(0); ++i)
      same += ref_faces.count(canon(p[3 * i], p[3 * i + 1], p[3 * i + 2]));
    INFO("identical oriented faces: " << same << " of " << rf.size(0));
    const double vol_ref = signed_volume(rv, rf), vol_mine = signed_volume(mv, mf);
    INFO("signed volume " << vol_mine << " vs " << vol_ref);
    CHECK(vol_mine * vol_ref > 0);
    CHECK(std::abs(vol_mine - vol_ref) <= 0.01 * std::abs(vol_ref));
    // Colours of the nearest cloud point (ties in fp32 may pick another point of the same colour).
    const at::Tensor ref_rgb = load_npy(d / "mesh.vertex_rgb.npy").index_select(0, idx);
    const at::Tensor my_rgb = rows(m.colors, at::kFloat);
    const double off = ((my_rgb - ref_rgb).abs().amax(1) > 1e-6).sum().item<double>() / mv.size(0);
    INFO("vertex colours differing: " << off * 100 << " %");
    CHECK(off <= 0.01);
  }
}

TEST_CASE("pointe: points_to_mesh reproduces the reference meshes end to end", "[parity][pointe]") {
  torch::NoGradGuard no_grad;
  for (const Case& c : kCases) {
    INFO(c.dir);
    const fs::path d = ref_dir() / c.dir;
    const at::Tensor pc = load_npy(ref_dir() / c.points / "point_cloud.coords.npy")[0];
    const at::Tensor rgb = load_npy(ref_dir() / c.points / "point_cloud.rgb.npy")[0];
    MeshOptions opts;
    opts.grid_size = load_npy(d / "grid_axis.npy").size(0);
    const ColoredMesh m = points_to_mesh(sdf_model(), pc, rgb, opts);
    const at::Tensor rv = load_npy(d / "mesh.verts.npy"), rf = load_npy(d / "mesh.faces.npy");
    const at::Tensor mv = rows(m.positions, at::kFloat);
    const double dv = std::abs(static_cast<double>(mv.size(0) - rv.size(0))) / rv.size(0);
    const double df = std::abs(static_cast<double>(m.faces.size()) - rf.size(0)) / rf.size(0);
    INFO("verts " << mv.size(0) << " vs " << rv.size(0) << ", faces " << m.faces.size() << " vs "
                  << rf.size(0));
    CHECK(dv <= 0.01);
    CHECK(df <= 0.01);
    const double bbox =
        std::max(test::max_abs_diff(std::get<0>(mv.min(0)), std::get<0>(rv.min(0))),
                 test::max_abs_diff(std::get<0>(mv.max(0)), std::get<0>(rv.max(0))));
    const double hausdorff = std::max(nearest(mv, rv).second.max().item<double>(),
                                      nearest(rv, mv).second.max().item<double>());
    INFO("bbox max |diff| " << bbox << ", Hausdorff " << hausdorff);
    CHECK(bbox <= 5e-3);
    CHECK(hausdorff <= 5e-3);
    REQUIRE(m.colors.size() == m.positions.size());
  }
}
