// Mesh helpers: counts, bounds, normalisation and normals.
#include "mesh/mesh.h"

#include <algorithm>
#include <cmath>

namespace studio::mesh {

size_t Mesh::vertex_count() const {
  size_t n = 0;
  for (const auto& s : submeshes) n += s.positions.size();
  return n;
}

size_t Mesh::triangle_count() const {
  size_t n = 0;
  for (const auto& s : submeshes) n += s.triangle_count();
  return n;
}

Bounds Mesh::bounds() const {
  Bounds b;
  for (const auto& s : submeshes) {
    for (const auto& p : s.positions) {
      if (b.empty) {
        b.min = p;
        b.max = p;
        b.empty = false;
        continue;
      }
      for (int k = 0; k < 3; ++k) {
        b.min[k] = std::min(b.min[k], p[k]);
        b.max[k] = std::max(b.max[k], p[k]);
      }
    }
  }
  return b;
}

void normalise(Mesh& mesh, const NormaliseOptions& options) {
  if (options.up == UpAxis::kZ) {
    // Z-up to Y-up: rotate -90 degrees about X: (x, y, z) -> (x, z, -y).
    for (auto& s : mesh.submeshes) {
      for (auto& p : s.positions) p = {p[0], p[2], -p[1]};
      for (auto& n : s.normals) n = {n[0], n[2], -n[1]};
    }
  }
  Bounds b = mesh.bounds();
  if (b.empty) return;
  Vec3 centre{0, 0, 0};
  if (options.centre) {
    for (int k = 0; k < 3; ++k) centre[k] = 0.5f * (b.min[k] + b.max[k]);
  }
  float scale = 1.0f;
  if (options.unit_scale) {
    float extent = std::max({b.max[0] - b.min[0], b.max[1] - b.min[1], b.max[2] - b.min[2]});
    if (extent > 0 && std::isfinite(extent)) scale = 1.0f / extent;
  }
  for (auto& s : mesh.submeshes) {
    for (auto& p : s.positions) {
      for (int k = 0; k < 3; ++k) p[k] = (p[k] - centre[k]) * scale;
    }
  }
}

void compute_missing_normals(Mesh& mesh) {
  for (auto& s : mesh.submeshes) {
    if (!s.normals.empty() && s.normals.size() == s.positions.size()) continue;
    s.normals.assign(s.positions.size(), Vec3{0, 0, 0});
    for (size_t t = 0; t + 2 < s.indices.size(); t += 3) {
      const Vec3& a = s.positions[s.indices[t]];
      const Vec3& b = s.positions[s.indices[t + 1]];
      const Vec3& c = s.positions[s.indices[t + 2]];
      Vec3 e1{b[0] - a[0], b[1] - a[1], b[2] - a[2]};
      Vec3 e2{c[0] - a[0], c[1] - a[1], c[2] - a[2]};
      Vec3 n{e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
             e1[0] * e2[1] - e1[1] * e2[0]};
      for (int j = 0; j < 3; ++j) {
        auto& v = s.normals[s.indices[t + j]];
        for (int k = 0; k < 3; ++k) v[k] += n[k];
      }
    }
    for (auto& v : s.normals) {
      float len = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
      if (len > 0) {
        for (auto& x : v) x /= len;
      } else {
        v = {0, 1, 0};
      }
    }
  }
}

}  // namespace studio::mesh
