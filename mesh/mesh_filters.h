// Mesh clean-up filters for generated meshes, scans and CAD exports: vertex welding, floater
// removal, Taubin / Laplacian smoothing, quadric-error (Garland-Heckbert) simplification, and a
// topology report (boundary / non-manifold edges, orientation, components, Euler). Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "mesh/mesh.h"

namespace studio::mesh {

// How the triangles fit together. With `by_position` (the default) vertices at bit-identical
// positions count as one vertex, across sub-meshes too, so UV / normal seams and sub-mesh borders
// do not show up as boundaries; otherwise each sub-mesh's own indices are used.
struct TopologyReport {
  size_t vertices = 0;            // referenced vertices
  size_t faces = 0;               // triangles (degenerate ones included)
  size_t edges = 0;               // undirected edges
  size_t boundary_edges = 0;      // used by one triangle
  size_t non_manifold_edges = 0;  // used by three or more triangles
  size_t inconsistent_edges = 0;  // used twice, both times in the same direction
  size_t degenerate_faces = 0;    // a repeated vertex
  size_t unreferenced_vertices = 0;
  size_t components = 0;             // connected through shared vertices
  int64_t euler_characteristic = 0;  // vertices - edges + faces
  // Every edge used exactly twice, in opposite directions, and no degenerate face.
  bool closed() const { return faces > 0 && boundary_edges == 0 && non_manifold_edges == 0; }
  bool oriented() const { return inconsistent_edges == 0; }
  bool closed_manifold() const { return closed() && oriented() && degenerate_faces == 0; }
};
TopologyReport mesh_topology_report(const Mesh& mesh, bool by_position = true);
nlohmann::json to_json(const TopologyReport& report);

// Merges the vertices of each sub-mesh that lie within `epsilon` of each other (0: identical
// positions) and have the same UVs (so texture seams stay); colours are averaged, triangles that
// become degenerate are dropped, normals are recomputed when anything changed. Returns the number
// of vertices removed. UsageError for a negative or non-finite epsilon.
size_t weld_vertices(Mesh& mesh, float epsilon = 0.0f);

// Removes connected components (vertices joined by position, across sub-meshes) with fewer than
// max(min_faces, min_fraction * all faces) triangles, then unreferenced vertices. The largest
// component is always kept, so a non-empty mesh never becomes empty. Sub-meshes left without
// triangles are removed (materials stay).
struct ComponentFilter {
  size_t min_faces = 0;
  double min_fraction = 0.0;  // of the mesh's triangles, in [0, 1]
};
struct ComponentReport {
  size_t components_before = 0, components_removed = 0;
  size_t faces_before = 0, faces_after = 0;
  double seconds = 0;
};
ComponentReport remove_small_components(Mesh& mesh, const ComponentFilter& filter);

// Smoothing with uniform (umbrella) weights: L(p) = mean of the neighbours - p. Taubin (1995)
// alternates p += lambda L(p) and p += mu L(p) (mu < -lambda), a low-pass filter that does not
// shrink the shape as plain Laplacian smoothing (p += lambda L(p) only) does. Neighbours are
// found by position, so seams and sub-mesh borders move together; vertices on boundary or
// non-manifold edges stay fixed. Faces, colours and UVs are kept; normals are recomputed.
enum class SmoothMethod { kTaubin, kLaplacian };
struct SmoothOptions {
  SmoothMethod method = SmoothMethod::kTaubin;
  int iterations = 10;  // Taubin: one lambda and one mu step each
  double lambda = 0.5;
  double mu = -0.53;
};
struct SmoothReport {
  SmoothMethod method = SmoothMethod::kTaubin;
  int iterations = 0;
  size_t vertices = 0, fixed_vertices = 0;  // referenced distinct positions; those kept fixed
  double max_displacement = 0;              // largest distance a vertex moved
  double seconds = 0;
};
SmoothReport smooth_mesh(Mesh& mesh, const SmoothOptions& options = {});

// Quadric error metric edge collapse (Garland & Heckbert 1997). Per-vertex quadrics are the sums
// of the area-weighted planes of the incident triangles; each edge costs v^T (Q1 + Q2) v at the
// position v minimising it (the 3x3 system, or the best of both ends and the midpoint when that
// is singular). The cheapest edge is collapsed first (a priority queue, stale entries skipped when
// popped). A collapse is refused when it would flip or nearly flip a triangle (normal turning by
// more than acos(min_normal_dot)), make a degenerate triangle, break the link condition (a
// non-manifold edge or a pinched vertex) or duplicate a triangle (a tetrahedron folding flat).
// Vertices on boundary or non-manifold edges never move (UV seams and sub-mesh borders, which
// are boundaries in index space, included): an edge may collapse into such a vertex, an edge
// between two of them never collapses. Colours and UVs are interpolated along the edge; the
// vertex arrays are compacted and normals recomputed. A closed manifold input stays one.
struct SimplifyOptions {
  size_t target_faces = 0;    // stop at this many triangles (0: use target_ratio)
  double target_ratio = 0.5;  // of the input's triangles, in (0, 1]
  // Stop before a collapse whose error (sqrt of the quadric cost, a distance) exceeds this.
  double max_error = std::numeric_limits<double>::infinity();
  double min_normal_dot = 0.2;
};
struct SimplifyReport {
  size_t faces_before = 0, faces_after = 0, target_faces = 0;
  size_t vertices_before = 0, vertices_after = 0;
  size_t collapses = 0;
  size_t rejected_flip = 0, rejected_topology = 0, rejected_degenerate = 0, rejected_boundary = 0;
  double max_error = 0;  // sqrt of the largest quadric cost collapsed
  // "target reached", "max_error reached" or "no valid collapse left" (boundaries, topology).
  std::string stopped;
  double seconds = 0;
};
SimplifyReport simplify_mesh(Mesh& mesh, const SimplifyOptions& options);

// An estimate of the symmetric Hausdorff distance between two surfaces: the largest distance from
// a vertex or triangle centroid of one to the nearest triangle of the other, both ways (a lower
// bound of the exact value). 0 for two empty meshes, infinity when only one is empty.
double hausdorff_distance(const Mesh& a, const Mesh& b);

// The filters a caller asks for, applied in this order: floaters removed, smoothing, then
// simplification (quadrics of the smoothed surface). Default: nothing.
struct MeshFilterOptions {
  ComponentFilter components;  // active when min_faces or min_fraction is set
  int smooth_iterations = 0;   // Taubin (SmoothOptions defaults otherwise)
  SmoothMethod smooth_method = SmoothMethod::kTaubin;
  size_t simplify_faces = 0;      // target triangle count, or
  double simplify_ratio = 0.0;    // target ratio (0: no simplification)
  bool measure_hausdorff = true;  // compare the result with the input (costs a copy)
  bool active() const {
    return components.min_faces > 0 || components.min_fraction > 0 || smooth_iterations > 0 ||
           simplify_faces > 0 || simplify_ratio > 0;
  }
};
struct FilterReport {
  bool applied = false;
  size_t faces_before = 0, faces_after = 0, vertices_before = 0, vertices_after = 0;
  size_t welded_vertices = 0;
  bool ran_components = false, ran_smooth = false, ran_simplify = false;
  ComponentReport components;
  SmoothReport smooth;
  SimplifyReport simplify;
  double hausdorff = -1;  // estimate, input vs output (-1: not measured)
  double seconds = 0;
};
// Validates the options (UsageError naming the option: negative counts, a ratio outside (0, 1],
// both --faces and a ratio), then filters; before simplifying, vertices at identical positions
// (and UVs) are welded, since simplification follows index connectivity. `hausdorff` compares
// the surface after floater removal with the result (the geometric change of smoothing and
// simplification).
FilterReport apply_filters(Mesh& mesh, const MeshFilterOptions& options);
// apply_filters' checks alone, for callers that want to fail before producing the mesh.
void check_filter_options(const MeshFilterOptions& options);
nlohmann::json to_json(const FilterReport& report);
// The CLI's options as MeshFilterOptions: --smooth N (Taubin iterations), --simplify RATIO, --faces
// N, --min-component F (F < 1: a fraction of the faces; F >= 1: a face count; 0: off). UsageError
// naming the option for negative or non-finite values and for both --simplify and --faces.
MeshFilterOptions filter_options_from_cli(int64_t smooth, double simplify, int64_t faces,
                                          double min_component);
// One line for logs: "filters: 10234 -> 1023 faces (smooth 10 it, simplify ...), 0.12 s".
std::string summary_line(const FilterReport& report);

}  // namespace studio::mesh
