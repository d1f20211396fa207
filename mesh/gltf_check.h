// A structural validator for binary glTF 2.0 (GLB) files: header, chunks, JSON, buffer views,
// accessors, POSITION bounds, indices and references. It checks what studio's writer promises
// (and what viewers crash on); it is not the Khronos validator (no extension or PBR semantics).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace studio::mesh {

struct GltfCheckOptions {
  // Also check what the spec requires but readers tolerate: POSITION min/max present and equal to
  // the data (studio's writer computes them; other exporters round them), and at most 3 bytes of
  // padding after the BIN chunk's data. Import turns this off.
  bool strict = true;
};

// Problems found in the GLB `bytes` (empty: structurally valid). Each names the place, e.g.
// "accessors[2]: byteOffset + count * stride (300) exceeds bufferViews[1].byteLength (288)".
std::vector<std::string> check_glb(const std::string& bytes, const GltfCheckOptions& options = {});

// The same for a file; an unreadable file is one problem.
std::vector<std::string> check_glb_file(const std::filesystem::path& path,
                                        const GltfCheckOptions& options = {});

// A .gltf (JSON) document; its buffers are read from data: URIs or files under `base_dir`.
std::vector<std::string> check_gltf(const std::string& json_text,
                                    const std::filesystem::path& base_dir,
                                    const GltfCheckOptions& options = {});
std::vector<std::string> check_gltf_file(const std::filesystem::path& path,
                                         const GltfCheckOptions& options = {});

}  // namespace studio::mesh
