// A small software rasteriser for previews of a mesh: z-buffer, perspective camera orbiting the
// normalised mesh, Lambert + ambient light, vertex colours / base colour / textures. Fast enough
// for turntable frames and multi-view contact sheets on a CPU, with no GPU or GL context needed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "mesh/mesh.h"

namespace studio::mesh {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, top row first, 3 bytes per pixel
};

struct RenderOptions {
  int width = 512, height = 512;
  float yaw_deg = 30.0f;    // camera azimuth about +Y (0: looking at the front, from +Z)
  float pitch_deg = 20.0f;  // camera elevation (positive: from above)
  float fov_deg = 35.0f;    // vertical field of view
  float ambient = 0.35f;    // share of light that reaches every surface
  std::array<uint8_t, 3> background{240, 240, 240};
  int supersample = 2;     // SSAA factor per axis (1: none)
  UpAxis up = UpAxis::kY;  // the mesh's up axis (kZ is turned to Y-up before rendering)
};

// A mesh made ready for rendering: a normalised copy (centred, unit size, Y up) with normals and
// decoded textures. Build once, render many views.
class RenderScene {
 public:
  explicit RenderScene(const Mesh& mesh, UpAxis up = UpAxis::kY);
  RgbImage render(const RenderOptions& options) const;
  const Mesh& mesh() const { return mesh_; }

 private:
  Mesh mesh_;
  float radius_ = 0.5f;  // bounding-sphere radius about the origin
};

// Renders one view (normalises a copy of `mesh` first).
RgbImage render_view(const Mesh& mesh, const RenderOptions& options = {});

// `n_frames` views at equal azimuth steps over 360 degrees, `size` x `size` pixels each.
// `progress(i, n)` is called after each frame when set.
std::vector<RgbImage> turntable(const Mesh& mesh, int n_frames, int size,
                                const RenderOptions& base = {},
                                void (*progress)(int, int, void*) = nullptr,
                                void* progress_context = nullptr);

// Six standard views (front, right, back, left, three-quarter from above, top).
std::vector<RgbImage> multi_view(const Mesh& mesh, int size, const RenderOptions& base = {});

// The frames tiled in a grid of `columns` (0: about square), scaled so the sheet is at most
// `max_width` pixels wide.
RgbImage contact_sheet(const std::vector<RgbImage>& frames, int columns = 0, int max_width = 2048);

// Share of pixels that differ from `background` (how much of the frame the mesh covers).
double foreground_coverage(const RgbImage& image, std::array<uint8_t, 3> background);

// PNG, written atomically.
void write_png(const RgbImage& image, const std::filesystem::path& path);

}  // namespace studio::mesh
