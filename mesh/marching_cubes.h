// Marching cubes on a dense scalar grid: one shared vertex per sign-changing grid edge (the vertex
// set skimage's Lewiner marching cubes produces; rare loops crossing an ambiguous face twice get an
// extra centre vertex), polygons traced per cube with the asymptotic decider on ambiguous faces:
// watertight and edge-manifold, no lookup tables. Torch-free.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace studio::mesh {

struct IsoSurface {
  // Positions in grid index units times `spacing` (origin at grid point [0, 0, 0]).
  std::vector<std::array<float, 3>> vertices;
  // Counter-clockwise seen from the side where the field is above the level (normals point up the
  // field's gradient, i.e. out of the region below the level).
  std::vector<std::array<int32_t, 3>> faces;
};

// `volume` holds dims[0] * dims[1] * dims[2] values indexed [x][y][z] (z fastest). A corner is
// "above" when its value > level. Triangles with two coincident vertices are dropped
// (skimage's allow_degenerate=False).
IsoSurface marching_cubes(const float* volume, const std::array<int64_t, 3>& dims, float level,
                          const std::array<double, 3>& spacing);

}  // namespace studio::mesh
