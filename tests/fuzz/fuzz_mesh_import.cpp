// libFuzzer target: mesh import (mesh/mesh_io.cpp over Assimp, textures through OpenCV/OIIO) on
// arbitrary bytes as a model file, then the validator, then the GLB writer in memory. The file's
// extension (Assimp picks its importer by it) comes from the input:
//   first byte 0x00..0x07: .obj .ply .stl .glb .gltf .off .dae .fbx, the rest is the file;
//   any other first byte:  the whole input is the file, its extension guessed from its first
//                          bytes (so real model files, e.g. ../shared/data/meshes/bad, are seeds).
// Each input must import or be refused with a studio::Error; an imported mesh must validate and
// write. Another exception, a crash, a sanitizer report in studio's code, a hang or > 2 GB RSS is
// a finding. Assimp itself is not instrumented (the system library).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "mesh/mesh_io.h"
#include "tests/fuzz/fuzz_temp.h"

namespace {

const char* const kExtensions[] = {".obj", ".ply", ".stl", ".glb", ".gltf", ".off", ".dae", ".fbx"};

bool starts_with(const uint8_t* data, size_t size, const char* prefix) {
  const size_t n = std::strlen(prefix);
  return size >= n && std::memcmp(data, prefix, n) == 0;
}

std::string sniff_extension(const uint8_t* data, size_t size) {
  if (starts_with(data, size, "glTF")) return ".glb";
  if (starts_with(data, size, "ply")) return ".ply";
  if (starts_with(data, size, "solid")) return ".stl";
  if (starts_with(data, size, "OFF")) return ".off";
  if (starts_with(data, size, "Kaydara FBX")) return ".fbx";
  if (starts_with(data, size, "<?xml") || starts_with(data, size, "<COLLADA")) return ".dae";
  if (starts_with(data, size, "{")) return ".gltf";
  if (size >= 84 && std::memchr(data, 0, 80) != nullptr) return ".stl";  // binary STL header
  return ".obj";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  studio::fuzz::temp_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string ext;
  if (data[0] < 8) {
    ext = kExtensions[data[0]];
    ++data;
    --size;
  } else {
    ext = sniff_extension(data, size);
  }
  const auto& tmp = studio::fuzz::temp_dir();
  tmp.clear();  // no file of an earlier input may be found as this one's texture or .bin buffer
  const auto path = tmp.write("model" + ext, data, size);
  studio::mesh::MeshLimits limits;
  limits.max_file_bytes = 1 << 20;
  limits.max_vertices = 1'000'000;
  limits.max_triangles = 1'000'000;
  limits.max_texture_pixels = 4 * 1000 * 1000;
  try {
    const studio::mesh::Mesh mesh = studio::mesh::import_mesh(path, limits);
    if (!studio::mesh::validate_mesh(mesh, limits).empty()) std::abort();  // import validates
    for (const auto& s : mesh.submeshes) {
      if (s.indices.size() % 3 != 0) std::abort();
      for (const uint32_t i : s.indices)
        if (i >= s.positions.size()) std::abort();
    }
    (void)studio::mesh::glb_bytes(mesh);
  } catch (const studio::Error&) {
  }
  return 0;
}
