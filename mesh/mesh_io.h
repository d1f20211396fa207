// Mesh files in and out: any format Assimp reads (glTF/GLB, OBJ+MTL, PLY, STL, FBX, COLLADA, ...)
// into a validated studio::mesh::Mesh with materials and textures, and GLB / OBJ+MTL / PLY out,
// written atomically. Import refuses what would poison later stages (NaN, bad indices, huge files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/limits.h"
#include "mesh/mesh.h"

namespace studio::mesh {

// Caps checked before and after parsing, so a hostile or broken file fails fast with a message
// instead of exhausting memory. The defaults fit any product model a catalogue uses and come from
// the process's limits (core/limits.h: STUDIO_LIMIT_MESH_FILE_BYTES 512 MiB, _MESH_VERTICES and
// _MESH_FACES 20 million, _IMAGE_PIXELS 64 Mpx unless set); set members to override them.
struct MeshLimits {
  int64_t max_file_bytes = resource_limits().mesh_file_bytes;  // the model file itself
  int64_t max_vertices = resource_limits().mesh_vertices;      // all sub-meshes together
  int64_t max_triangles = resource_limits().mesh_faces;
  int64_t max_texture_pixels = resource_limits().image_pixels;  // per texture, from its header
  int max_textures = 64;
  int max_submeshes = 4096;
};

// Reads, triangulates and validates a model: indices in range, finite positions/normals/UVs,
// at least one triangle, within `limits`. Node transforms are baked into the vertices. Textures
// (embedded, or files next to the model) are loaded and decoded; a texture file that cannot be
// found is a warning (Mesh::warnings), not an error. Throws FormatError / IoError naming the file.
Mesh import_mesh(const std::filesystem::path& path, const MeshLimits& limits = {});

// The problems of a Mesh a writer or renderer would choke on; empty when it is usable.
// (import_mesh already ran this; for meshes built in code, e.g. by marching cubes.)
std::vector<std::string> validate_mesh(const Mesh& mesh, const MeshLimits& limits = {});

// Decodes a texture's `encoded` bytes into `rgba` (PNG, JPEG, BMP via OpenCV; TGA and others via
// OpenImageIO). Throws FormatError on undecodable data or more than `max_pixels`.
void decode_texture(Texture& texture, int64_t max_pixels = resource_limits().image_pixels);

enum class MeshFormat { kGlb, kObj, kPly };

// From the extension (.glb, .obj, .ply; case-insensitive); throws UsageError otherwise.
MeshFormat mesh_format_from_path(const std::filesystem::path& path);

// Binary glTF 2.0: one buffer, POSITION (with min/max) / NORMAL / TEXCOORD_0 / COLOR_0, uint32
// indices, materials (pbrMetallicRoughness baseColorFactor / baseColorTexture), textures embedded
// as PNG or JPEG (others re-encoded as PNG).
void write_glb(const Mesh& mesh, const std::filesystem::path& path);
std::string glb_bytes(const Mesh& mesh);  // the same, in memory

// Wavefront OBJ + a .mtl beside it (same stem) + the textures as <stem>_texN.png/.jpg files.
// Vertex colours are written as the common "v x y z r g b" extension. Returns every file written.
std::vector<std::filesystem::path> write_obj(const Mesh& mesh, const std::filesystem::path& path);

// Binary little-endian PLY of all sub-meshes merged: x y z, nx ny nz, red green blue alpha
// (uchar), s t when any sub-mesh has UVs; faces as uchar-counted uint32 lists. No materials.
void write_ply(const Mesh& mesh, const std::filesystem::path& path);

// Dispatches on the extension of `path`; returns every file written.
std::vector<std::filesystem::path> write_mesh(const Mesh& mesh, const std::filesystem::path& path);

}  // namespace studio::mesh
