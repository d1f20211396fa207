// A plain triangle mesh as studio keeps it between import, export and rendering: sub-meshes
// (primitives) with one material each, materials with a base colour and an optional texture. No
// torch and no Assimp here, so every stage (I/O, renderer, Point-E) can share it cheaply.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace studio::mesh {

using Vec2 = std::array<float, 2>;
using Vec3 = std::array<float, 3>;
using Vec4 = std::array<float, 4>;

// A texture as found in (or written to) a model file: the encoded bytes (PNG, JPEG, TGA, ...) are
// kept so that export copies them untouched; the decoded pixels are filled in when needed.
struct Texture {
  std::string name;              // file name or "embedded #i", for messages and export
  std::string mime_type;         // "image/png", "image/jpeg", "image/x-tga", ...
  std::vector<uint8_t> encoded;  // the file's bytes
  int width = 0, height = 0;     // of `rgba` (0 until decoded)
  std::vector<uint8_t> rgba;     // decoded, 8-bit RGBA, row-major, top row first
  bool decoded() const { return !rgba.empty(); }
};

struct Material {
  std::string name;
  Vec4 base_color{1.0f, 1.0f, 1.0f, 1.0f};  // linear RGBA factor (glTF baseColorFactor)
  int base_color_texture = -1;              // index into Mesh::textures, or -1
  float metallic = 0.0f, roughness = 1.0f;
};

// One primitive: its own vertex arrays and a material index. `normals`, `colors` and `uvs` are
// either empty or one per position.
struct SubMesh {
  std::string name;
  std::vector<Vec3> positions;
  std::vector<Vec3> normals;
  std::vector<Vec4> colors;       // RGBA in [0, 1]
  std::vector<Vec2> uvs;          // TEXCOORD_0, glTF convention (v = 0 at the image's top row)
  std::vector<uint32_t> indices;  // 3 per triangle
  int material = -1;              // index into Mesh::materials, or -1 (default material)
  size_t triangle_count() const { return indices.size() / 3; }
};

struct Bounds {
  Vec3 min{0, 0, 0}, max{0, 0, 0};
  bool empty = true;
};

struct Mesh {
  std::vector<SubMesh> submeshes;
  std::vector<Material> materials;
  std::vector<Texture> textures;
  std::string source;  // the file it came from (for messages and sidecars), may be empty
  std::vector<std::string> warnings;  // what import skipped or could not load (missing textures)

  size_t vertex_count() const;
  size_t triangle_count() const;
  Bounds bounds() const;
};

enum class UpAxis { kY, kZ };

struct NormaliseOptions {
  // The input's up axis. kZ (CAD, Blender exports, STL) is rotated to +Y up, glTF's convention.
  UpAxis up = UpAxis::kY;
  bool centre = true;      // move the bounding-box centre to the origin
  bool unit_scale = true;  // scale so the longest bounding-box side is 1
};

// Centres and scales the mesh in place (and turns Z-up into Y-up); normals follow.
void normalise(Mesh& mesh, const NormaliseOptions& options = {});

// Fills in missing normals (area-weighted face normals per vertex) for every sub-mesh.
void compute_missing_normals(Mesh& mesh);

}  // namespace studio::mesh
