// Mesh filters: see mesh_filters.h.
#include "mesh/mesh_filters.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <queue>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace studio::mesh {

namespace {

using Clock = std::chrono::steady_clock;
using D3 = std::array<double, 3>;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

D3 to_d3(const Vec3& p) { return {p[0], p[1], p[2]}; }
D3 sub(const D3& a, const D3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
D3 add(const D3& a, const D3& b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
D3 scale(const D3& a, double s) { return {a[0] * s, a[1] * s, a[2] * s}; }
double dot(const D3& a, const D3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
D3 cross(const D3& a, const D3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double norm(const D3& a) { return std::sqrt(dot(a, a)); }

// Bit pattern of a position (-0 folded into +0), for exact position matching.
struct PosKey {
  uint32_t bits[3];
  bool operator==(const PosKey& o) const {
    return bits[0] == o.bits[0] && bits[1] == o.bits[1] && bits[2] == o.bits[2];
  }
};
PosKey pos_key(const Vec3& p) {
  PosKey k;
  for (int i = 0; i < 3; ++i) {
    const float v = p[i] == 0.0f ? 0.0f : p[i];
    std::memcpy(&k.bits[i], &v, 4);
  }
  return k;
}
struct PosKeyHash {
  size_t operator()(const PosKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t b : k.bits) h = (h ^ b) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

// One id per vertex of the whole mesh: by position (equal positions share one id, across
// sub-meshes) or per sub-mesh index (offset by the sub-meshes before).
struct VertexIds {
  std::vector<std::vector<uint32_t>> id;  // [submesh][vertex]
  std::vector<D3> position;               // per id
  size_t count = 0;
};
VertexIds vertex_ids(const Mesh& mesh, bool by_position) {
  VertexIds v;
  v.id.resize(mesh.submeshes.size());
  std::unordered_map<PosKey, uint32_t, PosKeyHash> map;
  if (by_position) map.reserve(mesh.vertex_count());
  for (size_t s = 0; s < mesh.submeshes.size(); ++s) {
    const auto& sm = mesh.submeshes[s];
    v.id[s].resize(sm.positions.size());
    for (size_t i = 0; i < sm.positions.size(); ++i) {
      if (by_position) {
        auto [it, inserted] =
            map.emplace(pos_key(sm.positions[i]), static_cast<uint32_t>(v.position.size()));
        if (inserted) v.position.push_back(to_d3(sm.positions[i]));
        v.id[s][i] = it->second;
      } else {
        v.id[s][i] = static_cast<uint32_t>(v.position.size());
        v.position.push_back(to_d3(sm.positions[i]));
      }
    }
  }
  v.count = v.position.size();
  return v;
}

// Every triangle of the mesh in `ids` numbering (indices out of range are a caller error).
std::vector<std::array<uint32_t, 3>> all_faces(const Mesh& mesh, const VertexIds& ids) {
  std::vector<std::array<uint32_t, 3>> faces;
  faces.reserve(mesh.triangle_count());
  for (size_t s = 0; s < mesh.submeshes.size(); ++s) {
    const auto& sm = mesh.submeshes[s];
    for (size_t t = 0; t + 2 < sm.indices.size(); t += 3) {
      std::array<uint32_t, 3> f;
      for (int k = 0; k < 3; ++k) {
        const uint32_t i = sm.indices[t + k];
        if (i >= sm.positions.size())
          throw UsageError(fmt::format("sub-mesh {} triangle {} has vertex index {} out of range "
                                       "({} vertices)",
                                       s, t / 3, i, sm.positions.size()),
                           mesh.source.empty() ? "mesh filters" : mesh.source,
                           "validate the mesh (mesh::validate_mesh) before filtering it");
        f[k] = ids.id[s][i];
      }
      faces.push_back(f);
    }
  }
  return faces;
}

bool degenerate(const std::array<uint32_t, 3>& f) {
  return f[0] == f[1] || f[1] == f[2] || f[0] == f[2];
}

uint64_t edge_key(uint32_t a, uint32_t b) {
  return a < b ? (uint64_t{a} << 32) | b : (uint64_t{b} << 32) | a;
}

// Undirected edges of the non-degenerate faces with their use counts and how many uses run from
// the smaller id to the larger.
struct EdgeUse {
  uint64_t key;
  uint32_t uses, forward;
};
std::vector<EdgeUse> edge_uses(const std::vector<std::array<uint32_t, 3>>& faces) {
  std::vector<std::pair<uint64_t, uint32_t>> half;
  half.reserve(faces.size() * 3);
  for (const auto& f : faces) {
    if (degenerate(f)) continue;
    for (int k = 0; k < 3; ++k) {
      const uint32_t a = f[k], b = f[(k + 1) % 3];
      half.emplace_back(edge_key(a, b), a < b ? 1u : 0u);
    }
  }
  std::sort(half.begin(), half.end());
  std::vector<EdgeUse> edges;
  for (size_t i = 0; i < half.size();) {
    EdgeUse e{half[i].first, 0, 0};
    for (; i < half.size() && half[i].first == e.key; ++i) {
      ++e.uses;
      e.forward += half[i].second;
    }
    edges.push_back(e);
  }
  return edges;
}

struct UnionFind {
  std::vector<uint32_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0u); }
  uint32_t find(uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(uint32_t a, uint32_t b) {
    a = find(a), b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

// Drops unreferenced vertices of a sub-mesh (all attribute arrays follow).
void compact_submesh(SubMesh& s) {
  std::vector<uint32_t> remap(s.positions.size(), UINT32_MAX);
  uint32_t n = 0;
  for (uint32_t& i : s.indices) {
    if (remap[i] == UINT32_MAX) remap[i] = n++;
    i = remap[i];
  }
  auto compact = [&](auto& arr) {
    if (arr.size() != remap.size()) return;
    std::remove_reference_t<decltype(arr)> out(n);
    for (size_t i = 0; i < remap.size(); ++i)
      if (remap[i] != UINT32_MAX) out[remap[i]] = arr[i];
    arr.swap(out);
  };
  compact(s.positions);
  compact(s.normals);
  compact(s.colors);
  compact(s.uvs);
}

void recompute_normals(Mesh& mesh) {
  for (auto& s : mesh.submeshes) s.normals.clear();
  compute_missing_normals(mesh);
}

// Closest point on triangle abc to p (Ericson, Real-Time Collision Detection 5.1.5).
D3 closest_on_triangle(const D3& p, const D3& a, const D3& b, const D3& c) {
  const D3 ab = sub(b, a), ac = sub(c, a), ap = sub(p, a);
  const double d1 = dot(ab, ap), d2 = dot(ac, ap);
  if (d1 <= 0 && d2 <= 0) return a;
  const D3 bp = sub(p, b);
  const double d3 = dot(ab, bp), d4 = dot(ac, bp);
  if (d3 >= 0 && d4 <= d3) return b;
  const double vc = d1 * d4 - d3 * d2;
  if (vc <= 0 && d1 >= 0 && d3 <= 0) return add(a, scale(ab, d1 / (d1 - d3)));
  const D3 cp = sub(p, c);
  const double d5 = dot(ab, cp), d6 = dot(ac, cp);
  if (d6 >= 0 && d5 <= d6) return c;
  const double vb = d5 * d2 - d1 * d6;
  if (vb <= 0 && d2 >= 0 && d6 <= 0) return add(a, scale(ac, d2 / (d2 - d6)));
  const double va = d3 * d6 - d5 * d4;
  if (va <= 0 && (d4 - d3) >= 0 && (d5 - d6) >= 0)
    return add(b, scale(sub(c, b), (d4 - d3) / ((d4 - d3) + (d5 - d6))));
  const double denom = 1.0 / (va + vb + vc);
  return add(a, add(scale(ab, vb * denom), scale(ac, vc * denom)));
}

// Nearest-triangle queries through a uniform grid of triangle bounding boxes.
class TriangleGrid {
 public:
  explicit TriangleGrid(const Mesh& mesh) {
    for (const auto& s : mesh.submeshes)
      for (size_t t = 0; t + 2 < s.indices.size(); t += 3)
        tris_.push_back({to_d3(s.positions[s.indices[t]]), to_d3(s.positions[s.indices[t + 1]]),
                         to_d3(s.positions[s.indices[t + 2]])});
    if (tris_.empty()) return;
    lo_ = hi_ = tris_[0][0];
    for (const auto& t : tris_)
      for (const auto& p : t)
        for (int k = 0; k < 3; ++k)
          lo_[k] = std::min(lo_[k], p[k]), hi_[k] = std::max(hi_[k], p[k]);
    const double ext = std::max({hi_[0] - lo_[0], hi_[1] - lo_[1], hi_[2] - lo_[2], 1e-12});
    const int per_axis = std::clamp(static_cast<int>(std::cbrt(double(tris_.size()))), 1, 128);
    cell_ = ext / per_axis;
    for (int k = 0; k < 3; ++k)
      n_[k] = std::max(1, static_cast<int>(std::ceil((hi_[k] - lo_[k]) / cell_ + 1e-9)));
    cells_.resize(size_t(n_[0]) * n_[1] * n_[2]);
    for (uint32_t i = 0; i < tris_.size(); ++i) {
      std::array<int, 3> c0, c1;
      for (int k = 0; k < 3; ++k) {
        const double mn = std::min({tris_[i][0][k], tris_[i][1][k], tris_[i][2][k]});
        const double mx = std::max({tris_[i][0][k], tris_[i][1][k], tris_[i][2][k]});
        c0[k] = cell_of(mn, k), c1[k] = cell_of(mx, k);
      }
      for (int x = c0[0]; x <= c1[0]; ++x)
        for (int y = c0[1]; y <= c1[1]; ++y)
          for (int z = c0[2]; z <= c1[2]; ++z) cells_[index(x, y, z)].push_back(i);
    }
    seen_.assign(tris_.size(), 0);
  }
  bool empty() const { return tris_.empty(); }

  double distance(const D3& p) {
    ++stamp_;
    std::array<int, 3> c;
    double outside = 0;  // distance from p to the grid's box
    for (int k = 0; k < 3; ++k) {
      c[k] = cell_of(p[k], k);
      const double d = std::max({lo_[k] - p[k], 0.0, p[k] - (lo_[k] + n_[k] * cell_)});
      outside += d * d;
    }
    outside = std::sqrt(outside);
    double best = std::numeric_limits<double>::infinity();
    const int max_ring = std::max({n_[0], n_[1], n_[2]});
    for (int r = 0; r <= max_ring; ++r) {
      for (int x = c[0] - r; x <= c[0] + r; ++x)
        for (int y = c[1] - r; y <= c[1] + r; ++y)
          for (int z = c[2] - r; z <= c[2] + r; ++z) {
            if (std::max({std::abs(x - c[0]), std::abs(y - c[1]), std::abs(z - c[2])}) != r)
              continue;
            if (x < 0 || y < 0 || z < 0 || x >= n_[0] || y >= n_[1] || z >= n_[2]) continue;
            for (uint32_t t : cells_[index(x, y, z)]) {
              if (seen_[t] == stamp_) continue;
              seen_[t] = stamp_;
              const auto& tri = tris_[t];
              best = std::min(best, norm(sub(p, closest_on_triangle(p, tri[0], tri[1], tri[2]))));
            }
          }
      // Cells of ring r + 1 and beyond are at least max(outside, r * cell) away.
      if (best <= std::max(outside, r * cell_)) break;
    }
    return best;
  }

 private:
  int cell_of(double v, int k) const {
    return std::clamp(static_cast<int>(std::floor((v - lo_[k]) / cell_)), 0, n_[k] - 1);
  }
  size_t index(int x, int y, int z) const { return (size_t(x) * n_[1] + y) * n_[2] + z; }

  std::vector<std::array<D3, 3>> tris_;
  D3 lo_{}, hi_{};
  double cell_ = 1;
  int n_[3] = {1, 1, 1};
  std::vector<std::vector<uint32_t>> cells_;
  std::vector<uint32_t> seen_;
  uint32_t stamp_ = 0;
};

// Largest distance from a's vertices and triangle centroids to b's surface.
double one_sided(const Mesh& a, TriangleGrid& b) {
  double worst = 0;
  for (const auto& s : a.submeshes) {
    std::vector<char> used(s.positions.size(), 0);
    for (uint32_t i : s.indices) used[i] = 1;
    for (size_t i = 0; i < s.positions.size(); ++i)
      if (used[i]) worst = std::max(worst, b.distance(to_d3(s.positions[i])));
    for (size_t t = 0; t + 2 < s.indices.size(); t += 3) {
      D3 c{0, 0, 0};
      for (int k = 0; k < 3; ++k) c = add(c, to_d3(s.positions[s.indices[t + k]]));
      worst = std::max(worst, b.distance(scale(c, 1.0 / 3)));
    }
  }
  return worst;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Topology

TopologyReport mesh_topology_report(const Mesh& mesh, bool by_position) {
  TopologyReport r;
  const VertexIds ids = vertex_ids(mesh, by_position);
  const auto faces = all_faces(mesh, ids);
  r.faces = faces.size();
  std::vector<char> referenced(ids.count, 0);
  UnionFind uf(ids.count);
  for (const auto& f : faces) {
    for (uint32_t v : f) referenced[v] = 1;
    r.degenerate_faces += degenerate(f);
    uf.unite(f[0], f[1]);
    uf.unite(f[0], f[2]);
  }
  for (size_t v = 0; v < ids.count; ++v) {
    if (!referenced[v]) {
      ++r.unreferenced_vertices;
      continue;
    }
    ++r.vertices;
    r.components += uf.find(static_cast<uint32_t>(v)) == v;
  }
  for (const auto& e : edge_uses(faces)) {
    ++r.edges;
    if (e.uses == 1) ++r.boundary_edges;
    if (e.uses >= 3) ++r.non_manifold_edges;
    if (e.uses == 2 && e.forward != 1) ++r.inconsistent_edges;
  }
  r.euler_characteristic = static_cast<int64_t>(r.vertices) - static_cast<int64_t>(r.edges) +
                           static_cast<int64_t>(r.faces);
  return r;
}

nlohmann::json to_json(const TopologyReport& r) {
  return {{"vertices", r.vertices},
          {"faces", r.faces},
          {"edges", r.edges},
          {"boundary_edges", r.boundary_edges},
          {"non_manifold_edges", r.non_manifold_edges},
          {"inconsistent_edges", r.inconsistent_edges},
          {"degenerate_faces", r.degenerate_faces},
          {"unreferenced_vertices", r.unreferenced_vertices},
          {"components", r.components},
          {"euler_characteristic", r.euler_characteristic},
          {"closed", r.closed()},
          {"consistently_oriented", r.oriented()}};
}

// ---------------------------------------------------------------------------------------------
// Welding

size_t weld_vertices(Mesh& mesh, float epsilon) {
  if (!(epsilon >= 0) || !std::isfinite(epsilon))
    throw UsageError(fmt::format("weld epsilon must be a finite number >= 0, not {}", epsilon),
                     "weld_vertices");
  size_t removed = 0;
  for (auto& s : mesh.submeshes) {
    const size_t n = s.positions.size();
    const bool has_uv = s.uvs.size() == n, has_color = s.colors.size() == n;
    std::vector<uint32_t> rep(n);
    std::vector<uint32_t> reps;  // representatives in order
    if (epsilon == 0) {
      std::unordered_map<PosKey, std::vector<uint32_t>, PosKeyHash> map;
      map.reserve(n);
      for (uint32_t i = 0; i < n; ++i) {
        auto& bucket = map[pos_key(s.positions[i])];
        rep[i] = i;
        for (uint32_t j : bucket)
          if (!has_uv || s.uvs[j] == s.uvs[i]) {
            rep[i] = j;
            break;
          }
        if (rep[i] == i) bucket.push_back(i);
      }
    } else {
      // Cells of size epsilon: a vertex within epsilon lies in one of the 27 around.
      struct CellHash {
        size_t operator()(const std::array<int64_t, 3>& c) const {
          return static_cast<size_t>(c[0] * 73856093) ^ static_cast<size_t>(c[1] * 19349663) ^
                 static_cast<size_t>(c[2] * 83492791);
        }
      };
      std::unordered_map<std::array<int64_t, 3>, std::vector<uint32_t>, CellHash> cells;
      cells.reserve(n);
      const double eps2 = double(epsilon) * epsilon;
      auto cell = [&](const Vec3& p) {
        return std::array<int64_t, 3>{static_cast<int64_t>(std::floor(p[0] / epsilon)),
                                      static_cast<int64_t>(std::floor(p[1] / epsilon)),
                                      static_cast<int64_t>(std::floor(p[2] / epsilon))};
      };
      for (uint32_t i = 0; i < n; ++i) {
        const auto c = cell(s.positions[i]);
        rep[i] = i;
        for (int dx = -1; dx <= 1 && rep[i] == i; ++dx)
          for (int dy = -1; dy <= 1 && rep[i] == i; ++dy)
            for (int dz = -1; dz <= 1 && rep[i] == i; ++dz) {
              const auto it = cells.find({c[0] + dx, c[1] + dy, c[2] + dz});
              if (it == cells.end()) continue;
              for (uint32_t j : it->second) {
                const D3 d = sub(to_d3(s.positions[i]), to_d3(s.positions[j]));
                if (dot(d, d) > eps2) continue;
                if (has_uv && (std::abs(s.uvs[i][0] - s.uvs[j][0]) > 1e-6f ||
                               std::abs(s.uvs[i][1] - s.uvs[j][1]) > 1e-6f))
                  continue;
                rep[i] = j;
                break;
              }
            }
        if (rep[i] == i) cells[c].push_back(i);
      }
    }
    size_t merged = 0;
    for (uint32_t i = 0; i < n; ++i) merged += rep[i] != i;
    if (merged == 0) continue;
    removed += merged;
    if (has_color) {
      std::vector<Vec4> sum(n, Vec4{0, 0, 0, 0});
      std::vector<int> count(n, 0);
      for (uint32_t i = 0; i < n; ++i) {
        for (int k = 0; k < 4; ++k) sum[rep[i]][k] += s.colors[i][k];
        ++count[rep[i]];
      }
      for (uint32_t i = 0; i < n; ++i)
        if (count[i] > 0)
          for (int k = 0; k < 4; ++k) s.colors[i][k] = sum[i][k] / count[i];
    }
    std::vector<uint32_t> indices;
    indices.reserve(s.indices.size());
    for (size_t t = 0; t + 2 < s.indices.size(); t += 3) {
      const uint32_t a = rep[s.indices[t]], b = rep[s.indices[t + 1]], c = rep[s.indices[t + 2]];
      if (a == b || b == c || a == c) continue;
      indices.insert(indices.end(), {a, b, c});
    }
    s.indices.swap(indices);
    compact_submesh(s);
    s.normals.clear();
  }
  if (removed > 0) compute_missing_normals(mesh);
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Components

ComponentReport remove_small_components(Mesh& mesh, const ComponentFilter& filter) {
  const auto t0 = Clock::now();
  if (!(filter.min_fraction >= 0 && filter.min_fraction <= 1))
    throw UsageError(fmt::format("the smallest component's fraction must be in [0, 1], not {}",
                                 filter.min_fraction),
                     "remove_small_components",
                     "pass a fraction of the faces (0.01) or a face count");
  ComponentReport r;
  const VertexIds ids = vertex_ids(mesh, true);
  const auto faces = all_faces(mesh, ids);
  r.faces_before = r.faces_after = faces.size();
  if (faces.empty()) return r;
  UnionFind uf(ids.count);
  for (const auto& f : faces) uf.unite(f[0], f[1]), uf.unite(f[0], f[2]);
  std::vector<size_t> size(ids.count, 0);
  for (const auto& f : faces) ++size[uf.find(f[0])];
  size_t largest = 0;
  for (size_t v = 0; v < ids.count; ++v) {
    r.components_before += size[v] > 0;
    if (size[v] > size[largest]) largest = v;
  }
  const size_t threshold = std::max(
      filter.min_faces, static_cast<size_t>(std::ceil(filter.min_fraction * faces.size())));
  std::vector<char> keep(ids.count, 0);
  for (size_t v = 0; v < ids.count; ++v) {
    if (size[v] == 0) continue;
    keep[v] = size[v] >= threshold || v == largest;
    r.components_removed += !keep[v];
  }
  if (r.components_removed == 0) {
    r.seconds = seconds_since(t0);
    return r;
  }
  r.faces_after = 0;
  std::vector<SubMesh> kept;
  for (size_t s = 0; s < mesh.submeshes.size(); ++s) {
    SubMesh& sm = mesh.submeshes[s];
    std::vector<uint32_t> indices;
    for (size_t t = 0; t + 2 < sm.indices.size(); t += 3)
      if (keep[uf.find(ids.id[s][sm.indices[t]])])
        indices.insert(indices.end(), sm.indices.begin() + t, sm.indices.begin() + t + 3);
    sm.indices.swap(indices);
    compact_submesh(sm);
    r.faces_after += sm.triangle_count();
    if (sm.triangle_count() > 0) kept.push_back(std::move(sm));
  }
  mesh.submeshes.swap(kept);
  r.seconds = seconds_since(t0);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Smoothing

SmoothReport smooth_mesh(Mesh& mesh, const SmoothOptions& o) {
  const auto t0 = Clock::now();
  if (o.iterations < 0)
    throw UsageError(fmt::format("smoothing iterations must be >= 0, not {}", o.iterations),
                     "smooth_mesh");
  if (!(o.lambda > 0 && o.lambda <= 1))
    throw UsageError(fmt::format("smoothing lambda must be in (0, 1], not {}", o.lambda),
                     "smooth_mesh");
  if (o.method == SmoothMethod::kTaubin && !(o.mu < -o.lambda && o.mu >= -1))
    throw UsageError(
        fmt::format("Taubin's mu must be in [-1, -lambda), not {} (lambda {})", o.mu, o.lambda),
        "smooth_mesh", "the usual pair is lambda 0.5, mu -0.53");
  SmoothReport r;
  r.method = o.method;
  r.iterations = o.iterations;
  VertexIds ids = vertex_ids(mesh, true);
  const auto faces = all_faces(mesh, ids);
  r.vertices = ids.count;
  if (faces.empty() || o.iterations == 0) {
    r.seconds = seconds_since(t0);
    return r;
  }
  // Neighbours (CSR) and the vertices that stay: on boundary / non-manifold edges, or isolated.
  std::vector<char> fixed(ids.count, 1);
  std::vector<std::pair<uint32_t, uint32_t>> adj;
  const auto edges = edge_uses(faces);
  adj.reserve(edges.size() * 2);
  for (const auto& e : edges) {
    const uint32_t a = static_cast<uint32_t>(e.key >> 32), b = static_cast<uint32_t>(e.key);
    adj.emplace_back(a, b);
    adj.emplace_back(b, a);
  }
  for (const auto& e : edges)
    if (e.uses == 2) fixed[e.key >> 32] = 0, fixed[static_cast<uint32_t>(e.key)] = 0;
  for (const auto& e : edges)
    if (e.uses != 2) fixed[e.key >> 32] = 1, fixed[static_cast<uint32_t>(e.key)] = 1;
  std::sort(adj.begin(), adj.end());
  std::vector<uint32_t> start(ids.count + 1, 0);
  for (const auto& [a, b] : adj) ++start[a + 1];
  for (size_t i = 0; i < ids.count; ++i) start[i + 1] += start[i];
  // Counted among the referenced vertices (isolated ones have no neighbours and stay too).
  r.vertices = r.fixed_vertices = 0;
  for (size_t v = 0; v < ids.count; ++v) {
    if (start[v + 1] == start[v]) continue;
    ++r.vertices;
    r.fixed_vertices += fixed[v];
  }

  const std::vector<D3> original = ids.position;
  std::vector<D3>& p = ids.position;
  std::vector<D3> delta(ids.count);
  auto step = [&](double factor) {
    for (size_t v = 0; v < ids.count; ++v) {
      delta[v] = {0, 0, 0};
      if (fixed[v]) continue;
      D3 sum{0, 0, 0};
      for (uint32_t k = start[v]; k < start[v + 1]; ++k) sum = add(sum, p[adj[k].second]);
      const double n = start[v + 1] - start[v];
      delta[v] = scale(sub(scale(sum, 1.0 / n), p[v]), factor);
    }
    for (size_t v = 0; v < ids.count; ++v) p[v] = add(p[v], delta[v]);
  };
  for (int it = 0; it < o.iterations; ++it) {
    step(o.lambda);
    if (o.method == SmoothMethod::kTaubin) step(o.mu);
  }
  for (size_t v = 0; v < ids.count; ++v)
    r.max_displacement = std::max(r.max_displacement, norm(sub(p[v], original[v])));
  for (size_t s = 0; s < mesh.submeshes.size(); ++s) {
    auto& sm = mesh.submeshes[s];
    for (size_t i = 0; i < sm.positions.size(); ++i) {
      const D3& q = p[ids.id[s][i]];
      sm.positions[i] = {float(q[0]), float(q[1]), float(q[2])};
    }
  }
  recompute_normals(mesh);
  r.seconds = seconds_since(t0);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Quadric error metric simplification

namespace {

// Symmetric 4x4 quadric, upper triangle: a00 a01 a02 a03 a11 a12 a13 a22 a23 a33.
struct Quadric {
  double q[10] = {0};
  void add_plane(const D3& n, double d, double w) {
    const double v[4] = {n[0], n[1], n[2], d};
    int k = 0;
    for (int i = 0; i < 4; ++i)
      for (int j = i; j < 4; ++j) q[k++] += w * v[i] * v[j];
  }
  Quadric& operator+=(const Quadric& o) {
    for (int i = 0; i < 10; ++i) q[i] += o.q[i];
    return *this;
  }
  double eval(const D3& p) const {
    const double x = p[0], y = p[1], z = p[2];
    return q[0] * x * x + 2 * q[1] * x * y + 2 * q[2] * x * z + 2 * q[3] * x + q[4] * y * y +
           2 * q[5] * y * z + 2 * q[6] * y + q[7] * z * z + 2 * q[8] * z + q[9];
  }
  // The minimiser of eval: solves A p = -b (Cramer's rule); false when A is (nearly) singular.
  bool minimiser(D3& p) const {
    const double a = q[0], b = q[1], c = q[2], d = q[4], e = q[5], f = q[7];
    const double det = a * (d * f - e * e) - b * (b * f - c * e) + c * (b * e - c * d);
    const double scale3 = std::pow(std::abs(a) + std::abs(d) + std::abs(f), 3);
    if (!(std::abs(det) > 1e-10 * scale3) || scale3 == 0) return false;
    const double r0 = -q[3], r1 = -q[6], r2 = -q[8];
    p[0] = (r0 * (d * f - e * e) - b * (r1 * f - e * r2) + c * (r1 * e - d * r2)) / det;
    p[1] = (a * (r1 * f - e * r2) - r0 * (b * f - c * e) + c * (b * r2 - r1 * c)) / det;
    p[2] = (a * (d * r2 - r1 * e) - b * (b * r2 - r1 * c) + r0 * (b * e - c * d)) / det;
    return std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
  }
};

struct Candidate {
  double cost;
  uint32_t u, v;  // v collapses into u
  uint32_t stamp_u, stamp_v;
  D3 target;
  double t;  // target's parameter along u -> v, for the attributes
  bool operator>(const Candidate& o) const { return cost > o.cost; }
};

class Simplifier {
 public:
  Simplifier(Mesh& mesh, const SimplifyOptions& options) : mesh_(mesh), o_(options) {}

  SimplifyReport run() {
    SimplifyReport r;
    r.faces_before = mesh_.triangle_count();
    r.vertices_before = mesh_.vertex_count();
    size_t target = o_.target_faces > 0
                        ? o_.target_faces
                        : static_cast<size_t>(std::llround(o_.target_ratio * r.faces_before));
    r.target_faces = target;
    load();
    size_t alive_faces = 0;
    for (char a : face_alive_) alive_faces += a;
    if (alive_faces <= target) {  // nothing to do: the mesh is left exactly as it is
      r.stopped = "target reached";
      r.faces_after = r.faces_before;
      r.vertices_after = r.vertices_before;
      return r;
    }
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    {
      std::vector<uint64_t> keys;
      for (size_t f = 0; f < faces_.size(); ++f) {
        if (!face_alive_[f]) continue;
        for (int k = 0; k < 3; ++k) keys.push_back(edge_key(faces_[f][k], faces_[f][(k + 1) % 3]));
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      for (uint64_t k : keys)
        push(heap, static_cast<uint32_t>(k >> 32), static_cast<uint32_t>(k), r);
    }
    bool error_limited = false;
    std::vector<uint32_t> nbrs;
    while (alive_faces > target && !heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      if (!vertex_alive_[c.u] || !vertex_alive_[c.v] || stamp_[c.u] != c.stamp_u ||
          stamp_[c.v] != c.stamp_v)
        continue;
      const double err =
          std::sqrt(std::max(0.0, c.cost) / std::max(area_[c.u] + area_[c.v], 1e-300));
      if (err > o_.max_error) {
        error_limited = true;
        continue;
      }
      const int why = check(c);
      if (why == 1) ++r.rejected_topology;
      if (why == 2) ++r.rejected_flip;
      if (why == 3) ++r.rejected_degenerate;
      if (why != 0) {
        // Its cost stays valid, but a change nearby may make it possible: retried then.
        retry_[c.u].push_back(c.v);
        retry_[c.v].push_back(c.u);
        continue;
      }
      alive_faces -= collapse(c);
      ++r.collapses;
      r.max_error = std::max(r.max_error, err);
      neighbours(c.u, nbrs);
      for (uint32_t w : nbrs) push(heap, c.u, w, r);
      retry_[c.u].clear();
      for (uint32_t w : nbrs) {
        for (uint32_t x : retry_[w])
          if (x != c.u && vertex_alive_[x]) push(heap, w, x, r);
        retry_[w].clear();
      }
    }
    if (r.collapses == 0 && dropped_degenerate_ == 0) {  // nothing changed: left as it is
      r.stopped = error_limited ? "max_error reached" : "no valid collapse left";
      r.faces_after = r.faces_before;
      r.vertices_after = r.vertices_before;
      return r;
    }
    r.stopped = alive_faces <= target ? "target reached"
                : error_limited       ? "max_error reached"
                                      : "no valid collapse left";
    finish(r);
    return r;
  }

 private:
  void load() {
    for (size_t s = 0; s < mesh_.submeshes.size(); ++s) {
      const SubMesh& sm = mesh_.submeshes[s];
      const uint32_t base = static_cast<uint32_t>(pos_.size());
      offset_.push_back(base);
      for (size_t i = 0; i < sm.positions.size(); ++i) {
        pos_.push_back(to_d3(sm.positions[i]));
        color_.push_back(sm.colors.size() == sm.positions.size() ? sm.colors[i] : Vec4{1, 1, 1, 1});
        uv_.push_back(sm.uvs.size() == sm.positions.size() ? sm.uvs[i] : Vec2{0, 0});
      }
      for (size_t t = 0; t + 2 < sm.indices.size(); t += 3) {
        std::array<uint32_t, 3> f;
        for (int k = 0; k < 3; ++k) {
          if (sm.indices[t + k] >= sm.positions.size())
            throw UsageError(fmt::format("sub-mesh {} has a vertex index out of range", s),
                             mesh_.source.empty() ? "simplify_mesh" : mesh_.source,
                             "validate the mesh (mesh::validate_mesh) before filtering it");
          f[k] = base + sm.indices[t + k];
        }
        faces_.push_back(f);
        face_alive_.push_back(!degenerate(f));
        dropped_degenerate_ += degenerate(f);
      }
    }
    offset_.push_back(static_cast<uint32_t>(pos_.size()));
    const size_t n = pos_.size();
    vertex_alive_.assign(n, 1);
    stamp_.assign(n, 0);
    locked_.assign(n, 0);
    quadric_.assign(n, Quadric{});
    area_.assign(n, 0.0);
    vf_.assign(n, {});
    retry_.assign(n, {});
    std::vector<std::array<uint32_t, 3>> live;
    for (size_t f = 0; f < faces_.size(); ++f) {
      if (!face_alive_[f]) continue;
      live.push_back(faces_[f]);
      const auto& fv = faces_[f];
      for (uint32_t v : fv) vf_[v].push_back(static_cast<uint32_t>(f));
      const D3 nrm = cross(sub(pos_[fv[1]], pos_[fv[0]]), sub(pos_[fv[2]], pos_[fv[0]]));
      const double len = norm(nrm);
      if (!(len > 0)) continue;
      const D3 unit = scale(nrm, 1.0 / len);
      const double area = 0.5 * len;
      for (uint32_t v : fv) {
        quadric_[v].add_plane(unit, -dot(unit, pos_[fv[0]]), area);
        area_[v] += area;
      }
    }
    for (const auto& e : edge_uses(live))
      if (e.uses != 2 || e.forward != 1)
        locked_[e.key >> 32] = 1, locked_[static_cast<uint32_t>(e.key)] = 1;
  }

  void push(std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>>& heap,
            uint32_t a, uint32_t b, SimplifyReport& r) {
    if (locked_[a] && locked_[b]) {
      ++r.rejected_boundary;
      return;
    }
    Candidate c;
    // Collapse into the locked end, which keeps its position.
    if (locked_[b]) std::swap(a, b);
    c.u = a, c.v = b;
    c.stamp_u = stamp_[a], c.stamp_v = stamp_[b];
    Quadric q = quadric_[a];
    q += quadric_[b];
    const D3 pa = pos_[a], pb = pos_[b];
    const D3 mid = scale(add(pa, pb), 0.5);
    bool found = false;
    if (locked_[a]) {
      c.target = pa, found = true;
    } else if (q.minimiser(c.target)) {
      // A nearly singular system can put the optimum far off; keep it near the edge.
      found = norm(sub(c.target, mid)) <= norm(sub(pb, pa)) * 2;
    }
    if (!found) {
      const D3 cand[3] = {pa, pb, mid};
      double best = std::numeric_limits<double>::infinity();
      for (const auto& p : cand) {
        const double e = q.eval(p);
        if (e < best) best = e, c.target = p;
      }
    }
    c.cost = std::max(0.0, q.eval(c.target));
    const D3 ab = sub(pb, pa);
    const double l2 = dot(ab, ab);
    c.t = l2 > 0 ? std::clamp(dot(sub(c.target, pa), ab) / l2, 0.0, 1.0) : 0.0;
    heap.push(c);
  }

  void neighbours(uint32_t v, std::vector<uint32_t>& out) const {
    out.clear();
    for (uint32_t f : vf_[v])
      if (face_alive_[f])
        for (uint32_t w : faces_[f])
          if (w != v) out.push_back(w);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }

  // 0: the collapse is fine; 1: topology (link condition, duplicate face); 2: a face would flip;
  // 3: a face would become degenerate.
  int check(const Candidate& c) {
    const uint32_t u = c.u, v = c.v;
    // Faces on the edge and their opposite vertices: exactly two on a manifold edge.
    std::vector<uint32_t> opposite;
    for (uint32_t f : vf_[u]) {
      if (!face_alive_[f]) continue;
      const auto& fv = faces_[f];
      if (fv[0] != v && fv[1] != v && fv[2] != v) continue;
      for (uint32_t w : fv)
        if (w != u && w != v) opposite.push_back(w);
    }
    if (opposite.size() != 2 || opposite[0] == opposite[1]) return 1;
    neighbours(u, nu_);
    neighbours(v, nv_);
    common_.clear();
    std::set_intersection(nu_.begin(), nu_.end(), nv_.begin(), nv_.end(),
                          std::back_inserter(common_));
    if (common_.size() != 2) return 1;  // link condition: link(u) ∩ link(v) = link(uv)
    // A face (u, a, b) may already exist for a face (v, a, b) that moves to u: a tetrahedron
    // (or a tetrahedral cap) folding flat.
    for (uint32_t f : vf_[v]) {
      if (!face_alive_[f]) continue;
      const auto& fv = faces_[f];
      if (fv[0] == u || fv[1] == u || fv[2] == u) continue;
      uint32_t a = UINT32_MAX, b = UINT32_MAX;
      for (uint32_t w : fv)
        if (w != v) (a == UINT32_MAX ? a : b) = w;
      for (uint32_t g : vf_[u]) {
        if (!face_alive_[g]) continue;
        const auto& gv = faces_[g];
        const bool has_a = gv[0] == a || gv[1] == a || gv[2] == a;
        const bool has_b = gv[0] == b || gv[1] == b || gv[2] == b;
        if (has_a && has_b) return 1;
      }
    }
    // Geometry of every face that survives with a moved corner.
    for (uint32_t x : {u, v}) {
      for (uint32_t f : vf_[x]) {
        if (!face_alive_[f]) continue;
        const auto& fv = faces_[f];
        const bool has_u = fv[0] == u || fv[1] == u || fv[2] == u;
        const bool has_v = fv[0] == v || fv[1] == v || fv[2] == v;
        if (has_u && has_v) continue;
        if (x == v && has_u) continue;  // seen from u
        D3 p[3], q[3];
        for (int k = 0; k < 3; ++k) {
          p[k] = pos_[fv[k]];
          q[k] = fv[k] == u || fv[k] == v ? c.target : p[k];
        }
        const D3 n_old = cross(sub(p[1], p[0]), sub(p[2], p[0]));
        const D3 n_new = cross(sub(q[1], q[0]), sub(q[2], q[0]));
        const double longest =
            std::max({dot(sub(q[1], q[0]), sub(q[1], q[0])), dot(sub(q[2], q[1]), sub(q[2], q[1])),
                      dot(sub(q[0], q[2]), sub(q[0], q[2]))});
        const double len_new = norm(n_new), len_old = norm(n_old);
        if (!(len_new > 1e-10 * longest)) return 3;
        if (len_old > 0 && dot(n_old, n_new) < o_.min_normal_dot * len_old * len_new) return 2;
      }
    }
    return 0;
  }

  // Collapses v into u; returns the number of faces removed.
  size_t collapse(const Candidate& c) {
    const uint32_t u = c.u, v = c.v;
    pos_[u] = c.target;
    for (int k = 0; k < 4; ++k)
      color_[u][k] = static_cast<float>((1 - c.t) * color_[u][k] + c.t * color_[v][k]);
    for (int k = 0; k < 2; ++k)
      uv_[u][k] = static_cast<float>((1 - c.t) * uv_[u][k] + c.t * uv_[v][k]);
    quadric_[u] += quadric_[v];
    area_[u] += area_[v];
    vertex_alive_[v] = 0;
    ++stamp_[u];
    size_t removed = 0;
    for (uint32_t f : vf_[v]) {
      if (!face_alive_[f]) continue;
      auto& fv = faces_[f];
      if (fv[0] == u || fv[1] == u || fv[2] == u) {
        face_alive_[f] = 0;
        ++removed;
        continue;
      }
      for (uint32_t& w : fv)
        if (w == v) w = u;
      vf_[u].push_back(f);
    }
    vf_[v].clear();
    auto& list = vf_[u];
    list.erase(
        std::remove_if(list.begin(), list.end(), [&](uint32_t f) { return !face_alive_[f]; }),
        list.end());
    return removed;
  }

  void finish(SimplifyReport& r) {
    for (size_t s = 0; s < mesh_.submeshes.size(); ++s) {
      SubMesh& sm = mesh_.submeshes[s];
      const uint32_t base = offset_[s], end = offset_[s + 1];
      const bool has_color = sm.colors.size() == sm.positions.size() && !sm.colors.empty();
      const bool has_uv = sm.uvs.size() == sm.positions.size() && !sm.uvs.empty();
      for (uint32_t i = base; i < end; ++i) {
        sm.positions[i - base] = {float(pos_[i][0]), float(pos_[i][1]), float(pos_[i][2])};
        if (has_color) sm.colors[i - base] = color_[i];
        if (has_uv) sm.uvs[i - base] = uv_[i];
      }
      sm.indices.clear();
      for (size_t f = 0; f < faces_.size(); ++f) {
        if (!face_alive_[f] || faces_[f][0] < base || faces_[f][0] >= end) continue;
        for (uint32_t w : faces_[f]) sm.indices.push_back(w - base);
      }
      compact_submesh(sm);
    }
    recompute_normals(mesh_);
    r.faces_after = mesh_.triangle_count();
    r.vertices_after = mesh_.vertex_count();
  }

  Mesh& mesh_;
  SimplifyOptions o_;
  std::vector<uint32_t> offset_;
  std::vector<D3> pos_;
  std::vector<Vec4> color_;
  std::vector<Vec2> uv_;
  std::vector<std::array<uint32_t, 3>> faces_;
  std::vector<char> face_alive_, vertex_alive_, locked_;
  std::vector<uint32_t> stamp_;
  std::vector<Quadric> quadric_;
  std::vector<double> area_;
  std::vector<std::vector<uint32_t>> vf_;     // faces around each vertex
  std::vector<std::vector<uint32_t>> retry_;  // partners of refused collapses
  size_t dropped_degenerate_ = 0;             // triangles with a repeated vertex, dropped
  std::vector<uint32_t> nu_, nv_, common_;
};

}  // namespace

SimplifyReport simplify_mesh(Mesh& mesh, const SimplifyOptions& options) {
  const auto t0 = Clock::now();
  if (options.target_faces == 0 && !(options.target_ratio > 0 && options.target_ratio <= 1))
    throw UsageError(
        fmt::format("the simplification ratio must be in (0, 1], not {}", options.target_ratio),
        "simplify_mesh", "pass a ratio such as 0.1 (10 % of the faces) or a face count");
  if (!(options.max_error >= 0)) throw UsageError("max_error must be >= 0", "simplify_mesh");
  SimplifyReport r = Simplifier(mesh, options).run();
  r.seconds = seconds_since(t0);
  return r;
}

double hausdorff_distance(const Mesh& a, const Mesh& b) {
  TriangleGrid ga(a), gb(b);
  if (ga.empty() && gb.empty()) return 0;
  if (ga.empty() || gb.empty()) return std::numeric_limits<double>::infinity();
  return std::max(one_sided(a, gb), one_sided(b, ga));
}

// ---------------------------------------------------------------------------------------------
// The filter chain

void check_filter_options(const MeshFilterOptions& o) {
  if (o.smooth_iterations < 0)
    throw UsageError(fmt::format("--smooth must be >= 0 iterations, not {}", o.smooth_iterations),
                     "--smooth", "e.g. --smooth 10 (Taubin lambda/mu iterations)");
  if (o.simplify_faces > 0 && o.simplify_ratio > 0)
    throw UsageError("give either a target face count or a ratio, not both", "--simplify/--faces",
                     "--simplify 0.1 keeps 10 % of the faces, --faces 5000 keeps 5000");
  if (o.simplify_ratio < 0 || o.simplify_ratio > 1 || std::isnan(o.simplify_ratio))
    throw UsageError(fmt::format("--simplify takes a ratio in (0, 1], not {}", o.simplify_ratio),
                     "--simplify", "e.g. --simplify 0.1 keeps 10 % of the faces");
  if (!(o.components.min_fraction >= 0 && o.components.min_fraction <= 1))
    throw UsageError(fmt::format("--min-component: a fraction must be in [0, 1], not {}",
                                 o.components.min_fraction),
                     "--min-component", "a fraction below 1 (0.01) or a face count (100)");
}

FilterReport apply_filters(Mesh& mesh, const MeshFilterOptions& o) {
  check_filter_options(o);
  FilterReport r;
  r.faces_before = r.faces_after = mesh.triangle_count();
  r.vertices_before = r.vertices_after = mesh.vertex_count();
  if (!o.active()) return r;
  const auto t0 = Clock::now();
  r.applied = true;
  if (o.components.min_faces > 0 || o.components.min_fraction > 0) {
    r.ran_components = true;
    r.components = remove_small_components(mesh, o.components);
  }
  Mesh before;
  if (o.measure_hausdorff) before = mesh;  // the surface kept, before it is moved
  if (o.smooth_iterations > 0) {
    r.ran_smooth = true;
    SmoothOptions so;
    so.iterations = o.smooth_iterations;
    so.method = o.smooth_method;
    r.smooth = smooth_mesh(mesh, so);
  }
  if (o.simplify_faces > 0 || o.simplify_ratio > 0) {
    r.ran_simplify = true;
    // Simplification follows index connectivity: join exact duplicates (flat-shaded exports).
    r.welded_vertices = weld_vertices(mesh, 0.0f);
    SimplifyOptions so;
    so.target_faces = o.simplify_faces;
    so.target_ratio = o.simplify_faces > 0 ? 0.0 : o.simplify_ratio;
    if (so.target_faces == 0) {
      // The ratio is of the faces the filter chain started with.
      so.target_faces =
          std::max<size_t>(1, static_cast<size_t>(std::llround(o.simplify_ratio * r.faces_before)));
    }
    r.simplify = simplify_mesh(mesh, so);
  }
  if (o.measure_hausdorff && (r.ran_smooth || r.ran_simplify))
    r.hausdorff = hausdorff_distance(before, mesh);
  r.faces_after = mesh.triangle_count();
  r.vertices_after = mesh.vertex_count();
  r.seconds = seconds_since(t0);
  return r;
}

MeshFilterOptions filter_options_from_cli(int64_t smooth, double simplify, int64_t faces,
                                          double min_component) {
  if (smooth < 0 || smooth > 10000)
    throw UsageError(fmt::format("--smooth takes 0 to 10000 iterations, not {}", smooth),
                     "--smooth", "e.g. --smooth 10 (Taubin lambda/mu iterations)");
  if (faces < 0)
    throw UsageError(fmt::format("--faces must be a positive face count, not {}", faces), "--faces",
                     "e.g. --faces 5000");
  if (!(min_component >= 0) || !std::isfinite(min_component))
    throw UsageError(fmt::format("--min-component must be >= 0, not {}", min_component),
                     "--min-component",
                     "a fraction of the faces below 1 (0.01) or a face count (100)");
  MeshFilterOptions o;
  o.smooth_iterations = static_cast<int>(smooth);
  o.simplify_faces = static_cast<size_t>(faces);
  o.simplify_ratio = simplify;
  if (min_component >= 1)
    o.components.min_faces = static_cast<size_t>(min_component);
  else
    o.components.min_fraction = min_component;
  check_filter_options(o);
  return o;
}

nlohmann::json to_json(const FilterReport& r) {
  nlohmann::json j{{"faces_before", r.faces_before},
                   {"faces_after", r.faces_after},
                   {"vertices_before", r.vertices_before},
                   {"vertices_after", r.vertices_after},
                   {"seconds", r.seconds}};
  if (r.hausdorff >= 0) j["hausdorff_estimate"] = r.hausdorff;
  if (r.ran_components)
    j["remove_small_components"] = {{"components_before", r.components.components_before},
                                    {"components_removed", r.components.components_removed},
                                    {"faces_before", r.components.faces_before},
                                    {"faces_after", r.components.faces_after},
                                    {"seconds", r.components.seconds}};
  if (r.ran_smooth)
    j["smooth"] = {{"method", r.smooth.method == SmoothMethod::kTaubin ? "taubin" : "laplacian"},
                   {"iterations", r.smooth.iterations},
                   {"fixed_vertices", r.smooth.fixed_vertices},
                   {"max_displacement", r.smooth.max_displacement},
                   {"seconds", r.smooth.seconds}};
  if (r.ran_simplify)
    j["simplify"] = {{"method", "quadric error metric edge collapse (Garland-Heckbert)"},
                     {"welded_vertices", r.welded_vertices},
                     {"faces_before", r.simplify.faces_before},
                     {"faces_after", r.simplify.faces_after},
                     {"target_faces", r.simplify.target_faces},
                     {"collapses", r.simplify.collapses},
                     {"rejected",
                      {{"flip", r.simplify.rejected_flip},
                       {"topology", r.simplify.rejected_topology},
                       {"degenerate", r.simplify.rejected_degenerate},
                       {"boundary", r.simplify.rejected_boundary}}},
                     {"max_quadric_error", r.simplify.max_error},
                     {"stopped", r.simplify.stopped},
                     {"seconds", r.simplify.seconds}};
  return j;
}

std::string summary_line(const FilterReport& r) {
  if (!r.applied) return "filters: none";
  std::string parts;
  auto part = [&](const std::string& s) { parts += (parts.empty() ? "" : "; ") + s; };
  if (r.ran_components)
    part(fmt::format("{} small component(s) of {} removed", r.components.components_removed,
                     r.components.components_before));
  if (r.ran_smooth)
    part(fmt::format("smoothed {} iteration(s), max displacement {:.3g}", r.smooth.iterations,
                     r.smooth.max_displacement));
  if (r.ran_simplify)
    part(fmt::format("simplified to {} faces ({}), max quadric error {:.3g}",
                     r.simplify.faces_after, r.simplify.stopped, r.simplify.max_error));
  std::string h = r.hausdorff >= 0 ? fmt::format(", Hausdorff estimate {:.3g}", r.hausdorff) : "";
  return fmt::format("filters: {} -> {} faces ({}) in {:.3f} s{}", r.faces_before, r.faces_after,
                     parts, r.seconds, h);
}

}  // namespace studio::mesh
