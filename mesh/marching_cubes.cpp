// Marching cubes: see marching_cubes.h. Per cube, every face contributes directed segments
// between its sign-changing edges (from the edge leaving the "above" corners to the edge entering
// them, walking the face counter-clockwise from outside the cube); since neighbouring faces walk a
// shared edge in opposite directions, the segments close into loops, which are fanned into
// triangles. Ambiguous faces (above/below corners alternating) are resolved by the asymptotic
// decider, so a face shared by two cubes is cut the same way in both: the surface is watertight.
#include "mesh/marching_cubes.h"

#include <stdexcept>

namespace studio::mesh {

namespace {

struct CubeTables {
  // Edge e joins corners edge_corners[e][0] < [1]; corner bits: 1 = +x, 2 = +y, 4 = +z.
  int edge_corners[12][2];
  int edge_axis[12];
  int corner_edge[8][8];  // -1 when not adjacent
  // Each face's corners, counter-clockwise seen from outside the cube.
  int face_cycle[6][4];
  int edge_faces[12];  // bit f set when edge e lies on face f
};

CubeTables make_tables() {
  CubeTables t{};
  for (auto& row : t.corner_edge)
    for (int& v : row) v = -1;
  int e = 0;
  for (int axis = 0; axis < 3; ++axis) {
    for (int c = 0; c < 8; ++c) {
      if (c & (1 << axis)) continue;
      const int d = c | (1 << axis);
      t.edge_corners[e][0] = c;
      t.edge_corners[e][1] = d;
      t.edge_axis[e] = axis;
      t.corner_edge[c][d] = t.corner_edge[d][c] = e;
      ++e;
    }
  }
  int f = 0;
  for (int axis = 0; axis < 3; ++axis) {
    const int u = (axis + 1) % 3, v = (axis + 2) % 3;  // e_u x e_v = e_axis
    for (int side = 0; side < 2; ++side) {
      const int base = side << axis;
      const int cyc[4] = {base, base | (1 << u), base | (1 << u) | (1 << v), base | (1 << v)};
      for (int k = 0; k < 4; ++k)
        t.face_cycle[f][k] = side == 1 ? cyc[k] : cyc[(4 - k) % 4];  // side 0: reversed
      ++f;
    }
  }
  for (int fi = 0; fi < 6; ++fi)
    for (int k = 0; k < 4; ++k)
      t.edge_faces[t.corner_edge[t.face_cycle[fi][k]][t.face_cycle[fi][(k + 1) % 4]]] |= 1 << fi;
  return t;
}

const CubeTables& tables() {
  static const CubeTables t = make_tables();
  return t;
}

}  // namespace

IsoSurface marching_cubes(const float* volume, const std::array<int64_t, 3>& dims, float level,
                          const std::array<double, 3>& spacing) {
  const int64_t nx = dims[0], ny = dims[1], nz = dims[2];
  if (nx < 2 || ny < 2 || nz < 2)
    throw std::invalid_argument("marching_cubes: the grid must be at least 2x2x2");
  const CubeTables& tb = tables();
  auto at = [&](int64_t x, int64_t y, int64_t z) { return volume[(x * ny + y) * nz + z]; };
  auto above = [&](int64_t x, int64_t y, int64_t z) { return at(x, y, z) > level; };

  IsoSurface out;
  // One vertex per sign-changing grid edge, id by (x, y, z, axis) of its lower end.
  std::vector<int32_t> vertex_of(static_cast<size_t>(nx * ny * nz * 3), -1);
  const int64_t step[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  for (int64_t x = 0; x < nx; ++x) {
    for (int64_t y = 0; y < ny; ++y) {
      for (int64_t z = 0; z < nz; ++z) {
        const float va = at(x, y, z);
        for (int axis = 0; axis < 3; ++axis) {
          const int64_t x2 = x + step[axis][0], y2 = y + step[axis][1], z2 = z + step[axis][2];
          if (x2 >= nx || y2 >= ny || z2 >= nz) continue;
          const float vb = at(x2, y2, z2);
          if ((va > level) == (vb > level)) continue;
          const double t = (static_cast<double>(level) - va) / (static_cast<double>(vb) - va);
          const double p[3] = {static_cast<double>(x), static_cast<double>(y),
                               static_cast<double>(z)};
          std::array<float, 3> pos;
          for (int i = 0; i < 3; ++i)
            pos[i] = static_cast<float>((p[i] + (i == axis ? t : 0.0)) * spacing[i]);
          vertex_of[((x * ny + y) * nz + z) * 3 + axis] = static_cast<int32_t>(out.vertices.size());
          out.vertices.push_back(pos);
        }
      }
    }
  }

  for (int64_t x = 0; x + 1 < nx; ++x) {
    for (int64_t y = 0; y + 1 < ny; ++y) {
      for (int64_t z = 0; z + 1 < nz; ++z) {
        double val[8];
        bool pos[8];
        int count = 0;
        for (int c = 0; c < 8; ++c) {
          const int64_t cx = x + (c & 1), cy = y + ((c >> 1) & 1), cz = z + ((c >> 2) & 1);
          val[c] = static_cast<double>(at(cx, cy, cz)) - level;
          pos[c] = above(cx, cy, cz);
          count += pos[c];
        }
        if (count == 0 || count == 8) continue;
        int next[12];
        for (int& n : next) n = -1;
        for (const auto& cyc : tb.face_cycle) {
          int kind[4];  // +1 entering the above corners, -1 leaving, 0 no crossing
          int crossings = 0;
          for (int k = 0; k < 4; ++k) {
            const bool a = pos[cyc[k]], b = pos[cyc[(k + 1) % 4]];
            kind[k] = a == b ? 0 : (b ? 1 : -1);
            crossings += kind[k] != 0;
          }
          auto edge = [&](int k) { return tb.corner_edge[cyc[k]][cyc[(k + 1) % 4]]; };
          if (crossings == 2) {
            int enter = -1, leave = -1;
            for (int k = 0; k < 4; ++k) {
              if (kind[k] == 1) enter = edge(k);
              if (kind[k] == -1) leave = edge(k);
            }
            next[leave] = enter;
          } else if (crossings == 4) {
            // Bilinear interpolant's value at its saddle: above -> the above corners connect.
            const double a = val[cyc[0]], b = val[cyc[1]], c = val[cyc[2]], d = val[cyc[3]];
            const double denom = a + c - b - d;
            const bool connected = denom != 0 && (a * c - b * d) / denom > 0;
            for (int k = 0; k < 4; ++k) {
              if (kind[k] != 1) continue;
              const int partner = connected ? (k + 3) % 4 : (k + 1) % 4;
              next[edge(partner)] = edge(k);
            }
          }
        }
        bool used[12] = {false};
        for (int start = 0; start < 12; ++start) {
          if (next[start] < 0 || used[start]) continue;
          int32_t loop[12];
          int loop_edge[12];
          int n = 0;
          for (int e = start; !used[e] && n < 12; e = next[e]) {
            used[e] = true;
            loop_edge[n] = e;
            const int c0 = tb.edge_corners[e][0];
            const int64_t gx = x + (c0 & 1), gy = y + ((c0 >> 1) & 1), gz = z + ((c0 >> 2) & 1);
            loop[n++] = vertex_of[((gx * ny + gy) * nz + gz) * 3 + tb.edge_axis[e]];
            if (next[e] < 0) break;  // cannot happen on a consistent cube; be safe
          }
          // Fan from a vertex whose diagonals all cross the cube's interior: a diagonal between two
          // edges of one face would lie in that face, where the neighbouring cube may use it too.
          int s0 = -1;
          for (int cand = 0; cand < n && s0 < 0; ++cand) {
            bool clean = true;
            for (int k = 2; k + 1 < n && clean; ++k)
              clean =
                  (tb.edge_faces[loop_edge[cand]] & tb.edge_faces[loop_edge[(cand + k) % n]]) == 0;
            if (clean) s0 = cand;
          }
          if (s0 < 0) {
            // No such vertex (a loop passing twice through an ambiguous face): fan around an
            // extra vertex at the loop's centroid, inside the cube (as Lewiner's tables do).
            std::array<double, 3> c{0, 0, 0};
            for (int k = 0; k < n; ++k)
              for (int i = 0; i < 3; ++i) c[i] += out.vertices[loop[k]][i];
            const int32_t centre = static_cast<int32_t>(out.vertices.size());
            out.vertices.push_back({static_cast<float>(c[0] / n), static_cast<float>(c[1] / n),
                                    static_cast<float>(c[2] / n)});
            for (int k = 0; k < n; ++k) out.faces.push_back({centre, loop[k], loop[(k + 1) % n]});
            continue;
          }
          for (int k = 1; k + 1 < n; ++k) {
            const std::array<int32_t, 3> f{loop[s0], loop[(s0 + k) % n], loop[(s0 + k + 1) % n]};
            const auto& p0 = out.vertices[f[0]];
            const auto& p1 = out.vertices[f[1]];
            const auto& p2 = out.vertices[f[2]];
            if (p0 == p1 || p1 == p2 || p0 == p2) continue;
            out.faces.push_back(f);
          }
        }
      }
    }
  }
  return out;
}

}  // namespace studio::mesh
