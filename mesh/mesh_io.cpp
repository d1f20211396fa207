// Mesh import through Assimp (validated, textures loaded) and the GLB / OBJ / PLY writers.
#include "mesh/mesh_io.h"

#include <assimp/material.h>
#include <assimp/postprocess.h>
#include <assimp/scene.h>

#include <OpenImageIO/filesystem.h>
#include <OpenImageIO/imageio.h>
#include <algorithm>
#include <assimp/Importer.hpp>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "mesh/gltf_check.h"

namespace fs = std::filesystem;

namespace studio::mesh {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool finite3(const aiVector3D& v) {
  return std::isfinite(v.x) && std::isfinite(v.y) && std::isfinite(v.z);
}

std::string mime_from_bytes(const std::vector<uint8_t>& b, const std::string& name_hint) {
  if (b.size() >= 8 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G')
    return "image/png";
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "image/jpeg";
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return "image/bmp";
  std::string ext = lower(fs::path(name_hint).extension().string());
  if (!ext.empty() && ext[0] == '.') ext = ext.substr(1);
  if (ext == "tga") return "image/x-tga";
  if (ext == "dds") return "image/vnd-ms.dds";
  if (ext == "tif" || ext == "tiff") return "image/tiff";
  if (ext == "webp") return "image/webp";
  if (ext == "gif") return "image/gif";
  if (ext == "ktx2") return "image/ktx2";
  return ext.empty() ? "application/octet-stream" : "image/" + ext;
}

std::string extension_for_mime(const std::string& mime) {
  if (mime == "image/png") return ".png";
  if (mime == "image/jpeg") return ".jpg";
  if (mime == "image/bmp") return ".bmp";
  if (mime == "image/x-tga") return ".tga";
  if (mime == "image/tiff") return ".tif";
  if (mime == "image/webp") return ".webp";
  if (mime == "image/gif") return ".gif";
  return ".bin";
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Where an external texture reference points: as written, with '\' as '/', URL-decoded, and
// finally just its file name next to the model (exporters often write absolute paths of the
// machine they ran on).
std::optional<fs::path> resolve_texture(const fs::path& model_dir, const std::string& ref) {
  std::string r = ref;
  if (r.rfind("file://", 0) == 0) r = r.substr(7);
  std::vector<std::string> candidates{r};
  std::string slashes = r;
  std::replace(slashes.begin(), slashes.end(), '\\', '/');
  candidates.push_back(slashes);
  candidates.push_back(url_decode(slashes));
  for (const auto& c : candidates) {
    fs::path p(c);
    std::error_code ec;
    if (p.is_relative() && fs::is_regular_file(model_dir / p, ec)) return model_dir / p;
    if (p.is_absolute() && fs::is_regular_file(p, ec)) return p;
    fs::path name = fs::path(c).filename();
    if (!name.empty() && fs::is_regular_file(model_dir / name, ec)) return model_dir / name;
  }
  return std::nullopt;
}

std::vector<uint8_t> read_bytes(const fs::path& path, int64_t max_bytes) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (!ec && static_cast<int64_t>(size) > max_bytes) {
    throw FormatError("file is " + std::to_string(size) + " bytes, more than the limit of " +
                          std::to_string(max_bytes),
                      path.string(), "use a smaller texture");
  }
  std::string s = read_file_bytes(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

void rgba_from_mat(const cv::Mat& in, Texture& t) {
  cv::Mat m = in;
  if (m.depth() == CV_16U)
    m.convertTo(m, CV_8U, 1.0 / 257.0);
  else if (m.depth() == CV_32F)
    m.convertTo(m, CV_8U, 255.0);
  else if (m.depth() != CV_8U)
    m.convertTo(m, CV_8U);
  cv::Mat rgba;
  switch (m.channels()) {
    case 1:
      cv::cvtColor(m, rgba, cv::COLOR_GRAY2RGBA);
      break;
    case 3:
      cv::cvtColor(m, rgba, cv::COLOR_BGR2RGBA);
      break;
    case 4:
      cv::cvtColor(m, rgba, cv::COLOR_BGRA2RGBA);
      break;
    default:
      throw FormatError("texture has " + std::to_string(m.channels()) + " channels", t.name,
                        "use an RGB or RGBA texture");
  }
  t.width = rgba.cols;
  t.height = rgba.rows;
  t.rgba.assign(rgba.data, rgba.data + rgba.total() * 4);
}

// Truevision TGA (types 2, 3, 10, 11: true-colour or grey, raw or RLE; 8/24/32 bits), which OpenCV
// lacks and OpenImageIO 2.4 reads only from files. False when it is not such a TGA.
bool decode_tga(Texture& t, int64_t max_pixels) {
  const std::vector<uint8_t>& b = t.encoded;
  if (b.size() < 18) return false;
  const int id_len = b[0], cmap_type = b[1], type = b[2];
  const int width = b[12] | (b[13] << 8), height = b[14] | (b[15] << 8);
  const int bpp = b[16], desc = b[17];
  const bool grey = type == 3 || type == 11, rle = type == 10 || type == 11;
  if (cmap_type != 0 || (type != 2 && type != 3 && type != 10 && type != 11)) return false;
  if ((grey && bpp != 8) || (!grey && bpp != 24 && bpp != 32) || width < 1 || height < 1) {
    return false;
  }
  if (int64_t{width} * height > max_pixels) {
    throw FormatError("texture is " + std::to_string(width) + "x" + std::to_string(height) +
                          " pixels, more than the limit of " + std::to_string(max_pixels),
                      t.name, "downscale the texture (the limit is STUDIO_LIMIT_IMAGE_PIXELS)");
  }
  const int px = bpp / 8;
  const size_t n = size_t(width) * height;
  std::vector<uint8_t> raw(n * px);
  size_t pos = 18 + id_len, out = 0;
  auto truncated = [&] {
    throw FormatError("TGA texture is truncated", t.name, "re-export the texture");
  };
  while (out < n) {
    if (!rle) {
      if (pos + (n - out) * px > b.size()) truncated();
      std::memcpy(&raw[out * px], &b[pos], (n - out) * px);
      break;
    }
    if (pos >= b.size()) truncated();
    const int head = b[pos++];
    const size_t count = std::min<size_t>((head & 0x7F) + 1, n - out);
    if (head & 0x80) {
      if (pos + px > b.size()) truncated();
      for (size_t k = 0; k < count; ++k) std::memcpy(&raw[(out + k) * px], &b[pos], px);
      pos += px;
    } else {
      if (pos + count * px > b.size()) truncated();
      std::memcpy(&raw[out * px], &b[pos], count * px);
      pos += count * px;
    }
    out += count;
  }
  const bool top_first = desc & 0x20, right_to_left = desc & 0x10;
  t.width = width;
  t.height = height;
  t.rgba.resize(n * 4);
  for (int y = 0; y < height; ++y) {
    const int sy = top_first ? y : height - 1 - y;
    for (int x = 0; x < width; ++x) {
      const int sx = right_to_left ? width - 1 - x : x;
      const uint8_t* p = &raw[(size_t(sy) * width + sx) * px];
      uint8_t* q = &t.rgba[(size_t(y) * width + x) * 4];
      if (grey) {
        q[0] = q[1] = q[2] = p[0], q[3] = 255;
      } else {
        q[0] = p[2], q[1] = p[1], q[2] = p[0], q[3] = px == 4 ? p[3] : 255;
      }
    }
  }
  return true;
}

// OpenImageIO from memory (TGA and what OpenCV lacks); nullopt when it cannot read it either.
bool decode_with_oiio(Texture& t, int64_t max_pixels) {
  OIIO::Filesystem::IOMemReader reader(t.encoded.data(), t.encoded.size());
  std::string hint = "texture" + extension_for_mime(t.mime_type);
  OIIO::ImageSpec config;
  auto in = OIIO::ImageInput::open(hint, &config, &reader);
  if (!in) {
    (void)OIIO::geterror();
    return false;
  }
  const OIIO::ImageSpec& spec = in->spec();
  if (int64_t{spec.width} * spec.height > max_pixels) {
    throw FormatError("texture is " + std::to_string(spec.width) + "x" +
                          std::to_string(spec.height) + " pixels, more than the limit of " +
                          std::to_string(max_pixels),
                      t.name, "downscale the texture (the limit is STUDIO_LIMIT_IMAGE_PIXELS)");
  }
  int ch = spec.nchannels;
  std::vector<uint8_t> pixels(size_t(spec.width) * spec.height * ch);
  if (!in->read_image(0, 0, 0, ch, OIIO::TypeDesc::UINT8, pixels.data())) {
    (void)in->geterror();
    return false;
  }
  t.width = spec.width;
  t.height = spec.height;
  t.rgba.resize(size_t(t.width) * t.height * 4);
  for (size_t i = 0; i < size_t(t.width) * t.height; ++i) {
    const uint8_t* p = &pixels[i * ch];
    uint8_t* q = &t.rgba[i * 4];
    if (ch >= 3) {
      q[0] = p[0], q[1] = p[1], q[2] = p[2];
    } else {
      q[0] = q[1] = q[2] = p[0];
    }
    q[3] = ch == 4 ? p[3] : (ch == 2 ? p[1] : 255);
  }
  return true;
}

}  // namespace

void decode_texture(Texture& t, int64_t max_pixels) {
  if (t.decoded()) return;
  if (t.encoded.empty()) throw FormatError("texture has no data", t.name, "re-export the model");
  if (t.mime_type == "image/png" || t.mime_type == "image/jpeg" || t.mime_type == "image/bmp") {
    cv::Mat buf(1, static_cast<int>(t.encoded.size()), CV_8U, t.encoded.data());
    cv::Mat m = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
    if (!m.empty()) {
      if (int64_t{m.cols} * m.rows > max_pixels) {
        throw FormatError("texture is " + std::to_string(m.cols) + "x" + std::to_string(m.rows) +
                              " pixels, more than the limit of " + std::to_string(max_pixels),
                          t.name, "downscale the texture (the limit is STUDIO_LIMIT_IMAGE_PIXELS)");
      }
      rgba_from_mat(m, t);
      return;
    }
  }
  if (t.mime_type == "image/x-tga" && decode_tga(t, max_pixels)) return;
  if (decode_with_oiio(t, max_pixels)) return;
  throw FormatError(
      "cannot decode texture (" + t.mime_type + ", " + std::to_string(t.encoded.size()) + " bytes)",
      t.name, "convert the texture to PNG or JPEG");
}

std::vector<std::string> validate_mesh(const Mesh& mesh, const MeshLimits& limits) {
  std::vector<std::string> problems;
  auto add = [&](std::string p) {
    if (problems.size() < 20) problems.push_back(std::move(p));
  };
  if (mesh.submeshes.empty() || mesh.triangle_count() == 0) {
    add("no triangles: the file has no triangle geometry (empty, or only points/lines)");
  }
  if (static_cast<int64_t>(mesh.vertex_count()) > limits.max_vertices) {
    add(std::to_string(mesh.vertex_count()) + " vertices, more than the limit of " +
        std::to_string(limits.max_vertices));
  }
  if (static_cast<int64_t>(mesh.triangle_count()) > limits.max_triangles) {
    add(std::to_string(mesh.triangle_count()) + " triangles, more than the limit of " +
        std::to_string(limits.max_triangles));
  }
  if (static_cast<int>(mesh.submeshes.size()) > limits.max_submeshes) {
    add(std::to_string(mesh.submeshes.size()) + " sub-meshes, more than the limit of " +
        std::to_string(limits.max_submeshes));
  }
  if (static_cast<int>(mesh.textures.size()) > limits.max_textures) {
    add(std::to_string(mesh.textures.size()) + " textures, more than the limit of " +
        std::to_string(limits.max_textures));
  }
  for (size_t si = 0; si < mesh.submeshes.size(); ++si) {
    const SubMesh& s = mesh.submeshes[si];
    std::string where =
        "sub-mesh " + std::to_string(si) + (s.name.empty() ? "" : " '" + s.name + "'");
    size_t n = s.positions.size();
    if (s.indices.size() % 3 != 0) {
      add(where + ": " + std::to_string(s.indices.size()) + " indices, not a multiple of 3");
    }
    for (size_t i = 0; i < s.indices.size(); ++i) {
      if (s.indices[i] >= n) {
        add(where + ", triangle " + std::to_string(i / 3) + ": vertex index " +
            std::to_string(s.indices[i]) + " is out of range (the sub-mesh has " +
            std::to_string(n) + " vertices)");
        break;
      }
    }
    auto check_finite = [&](const char* what, const float* data, size_t count, size_t dim) {
      for (size_t i = 0; i < count; ++i) {
        for (size_t k = 0; k < dim; ++k) {
          if (!std::isfinite(data[i * dim + k])) {
            add(where + ": " + what + " of vertex " + std::to_string(i) +
                " is not a finite number (NaN or infinity)");
            return;
          }
        }
      }
    };
    check_finite("position", s.positions.empty() ? nullptr : s.positions[0].data(), n, 3);
    if (!s.normals.empty()) {
      if (s.normals.size() != n)
        add(where + ": normal count differs from vertex count");
      else
        check_finite("normal", s.normals[0].data(), n, 3);
    }
    if (!s.uvs.empty()) {
      if (s.uvs.size() != n)
        add(where + ": UV count differs from vertex count");
      else
        check_finite("texture coordinate", s.uvs[0].data(), n, 2);
    }
    if (!s.colors.empty()) {
      if (s.colors.size() != n)
        add(where + ": colour count differs from vertex count");
      else
        check_finite("colour", s.colors[0].data(), n, 4);
    }
    if (s.material >= static_cast<int>(mesh.materials.size())) {
      add(where + ": material index " + std::to_string(s.material) + " is out of range");
    }
  }
  if (problems.empty() && mesh.triangle_count() > 0) {
    bool any_area = false;
    for (const auto& s : mesh.submeshes) {
      for (size_t i = 0; i + 2 < s.indices.size() && !any_area; i += 3) {
        const Vec3 &a = s.positions[s.indices[i]], &b = s.positions[s.indices[i + 1]],
                   &c = s.positions[s.indices[i + 2]];
        const float e1[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
        const float e2[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
        const float n[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
                            e1[0] * e2[1] - e1[1] * e2[0]};
        any_area = n[0] != 0 || n[1] != 0 || n[2] != 0;
      }
    }
    if (!any_area) {
      add("every triangle is degenerate (zero area): the geometry is collapsed to points or lines");
    }
  }
  for (size_t mi = 0; mi < mesh.materials.size(); ++mi) {
    int t = mesh.materials[mi].base_color_texture;
    if (t >= static_cast<int>(mesh.textures.size())) {
      add("material " + std::to_string(mi) + ": texture index " + std::to_string(t) +
          " is out of range");
    }
  }
  return problems;
}

namespace {

// Checks the raw scene before any post-processing step walks its faces (Assimp's own steps index
// vertex arrays with whatever the file says).
void check_raw_scene(const aiScene* scene, const std::string& where, const MeshLimits& limits) {
  const char* hint = "the file is corrupt or was written by a broken exporter; re-export it";
  int64_t vertices = 0, faces = 0, polygons = 0;
  for (unsigned mi = 0; mi < scene->mNumMeshes; ++mi) {
    const aiMesh* m = scene->mMeshes[mi];
    vertices += m->mNumVertices;
    faces += m->mNumFaces;
    std::string mesh_name = "mesh " + std::to_string(mi) +
                            (m->mName.length ? " '" + std::string(m->mName.C_Str()) + "'" : "");
    if (vertices > limits.max_vertices) {
      throw FormatError("more than " + std::to_string(limits.max_vertices) +
                            " vertices (the limit, STUDIO_LIMIT_MESH_VERTICES)",
                        where,
                        "simplify the model, or raise STUDIO_LIMIT_MESH_VERTICES if the file is "
                        "trusted");
    }
    if (faces > limits.max_triangles) {
      throw FormatError("more than " + std::to_string(limits.max_triangles) +
                            " faces (the limit, STUDIO_LIMIT_MESH_FACES)",
                        where,
                        "simplify the model, or raise STUDIO_LIMIT_MESH_FACES if the file is "
                        "trusted");
    }
    if (m->mNumVertices > 0 && !m->mVertices) {
      throw FormatError(mesh_name + " has no vertex positions", where, hint);
    }
    for (unsigned f = 0; f < m->mNumFaces; ++f) {
      const aiFace& face = m->mFaces[f];
      polygons += face.mNumIndices >= 3;
      for (unsigned k = 0; k < face.mNumIndices; ++k) {
        if (face.mIndices[k] >= m->mNumVertices) {
          throw FormatError(mesh_name + ", face " + std::to_string(f) + ": vertex index " +
                                std::to_string(face.mIndices[k]) +
                                " is out of range (the mesh has " +
                                std::to_string(m->mNumVertices) + " vertices)",
                            where, hint);
        }
      }
    }
    for (unsigned v = 0; v < m->mNumVertices; ++v) {
      if (!finite3(m->mVertices[v])) {
        throw FormatError(mesh_name + ": position of vertex " + std::to_string(v) +
                              " is not a finite number (" + std::to_string(m->mVertices[v].x) +
                              ", " + std::to_string(m->mVertices[v].y) + ", " +
                              std::to_string(m->mVertices[v].z) + ")",
                          where, hint);
      }
    }
  }
  if (polygons == 0) {
    throw FormatError("no triangles: the file has only points or lines (" + std::to_string(faces) +
                          " primitive(s) of 1 or 2 vertices)",
                      where,
                      "a mesh needs faces; export the surface, not a wireframe or point cloud");
  }
}

// Assimp's OFF reader accepts malformed files and invents geometry from them: check the counts and
// every face against the header first.
// Assimp 5's PLY reader trusts the file's numbers: it loops forever on a header that never ends
// (no end_header line), reserves an element's declared count before reading, and sizes each list
// from its count: one ASCII face line "2000000000 0 1 2" took studio to 15.8 GB in 29 s (all three
// found by tests/fuzz/fuzz_mesh_import). check_ply reads the header by the PLY spec and walks the
// body as Assimp does (ASCII: one element per line; binary: packed), refusing a count the file
// cannot hold before Assimp sees it.
struct PlyProperty {
  std::string name;
  int size = 0;        // bytes of a scalar, or of a list's items
  int count_size = 0;  // bytes of a list's count; 0 for a scalar
};
struct PlyElement {
  std::string name;
  uint64_t count = 0;
  std::vector<PlyProperty> properties;
};

int ply_type_size(const std::string& t) {
  if (t == "char" || t == "uchar" || t == "int8" || t == "uint8") return 1;
  if (t == "short" || t == "ushort" || t == "int16" || t == "uint16") return 2;
  if (t == "int" || t == "uint" || t == "float" || t == "int32" || t == "uint32" || t == "float32")
    return 4;
  if (t == "double" || t == "float64") return 8;
  return 0;
}

// A decimal count (digits only), saturated at 2^63; nullopt when `t` is not one.
std::optional<uint64_t> ply_count(const std::string& t) {
  if (t.empty() || t.size() > 64) return std::nullopt;
  uint64_t v = 0;
  for (const char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v > (uint64_t{1} << 59) ? uint64_t{1} << 63 : v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

// The white-space separated words of text[b, e) (the PLY and OFF checks' tokenizer).
std::vector<std::string> split_ws(const std::string& text, std::size_t b, std::size_t e) {
  std::vector<std::string> out;
  while (b < e) {
    while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
    std::size_t w = b;
    while (w < e && !std::isspace(static_cast<unsigned char>(text[w]))) ++w;
    if (w > b) out.emplace_back(text, b, w - b);
    b = w;
  }
  return out;
}

void check_ply(const fs::path& path) {
  const std::string text = read_file_bytes(path);
  const std::string where = path.string();
  const std::string hint = "the PLY file is corrupt or truncated; re-export it";
  auto fail = [&](const std::string& what) { throw FormatError(what, where, hint); };
  std::string format;
  std::vector<PlyElement> elements;
  std::size_t pos = 0, line_no = 0;
  bool ended = false;
  while (pos < text.size() && !ended) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    ++line_no;
    const auto words = split_ws(text, pos, eol);
    pos = eol + 1;
    const std::string at = "PLY header line " + std::to_string(line_no);
    if (line_no == 1 && (words.size() != 1 || words[0] != "ply"))
      fail("not a PLY file: the first line is not 'ply'");
    if (words.empty()) continue;
    if (words[0] == "end_header") {
      ended = true;
    } else if (words[0] == "format" && words.size() >= 2) {
      format = words[1];
    } else if (words[0] == "element") {
      const auto n = words.size() == 3 ? ply_count(words[2]) : std::nullopt;
      if (!n) fail(at + ": expected 'element NAME COUNT'");
      elements.push_back({words[1], *n, {}});
    } else if (words[0] == "property") {
      if (elements.empty()) fail(at + ": a property before any element");
      PlyProperty prop;
      if (words.size() == 5 && words[1] == "list") {
        prop = {words[4], ply_type_size(words[3]), ply_type_size(words[2])};
        if (prop.count_size == 0 || prop.size == 0)
          fail(at + ": '" + words[2] + "' or '" + words[3] + "' is not a PLY type");
      } else if (words.size() == 3) {
        prop = {words[2], ply_type_size(words[1]), 0};
        if (prop.size == 0) fail(at + ": '" + words[1] + "' is not a PLY type");
      } else {
        fail(at + ": expected 'property TYPE NAME' or 'property list COUNT_TYPE TYPE NAME'");
      }
      elements.back().properties.push_back(prop);
    }  // comment, obj_info and other lines: skipped, as Assimp does
  }
  if (!ended) fail("the PLY header has no end_header line");
  const bool ascii = format == "ascii";
  if (!ascii && format != "binary_little_endian" && format != "binary_big_endian")
    fail("the PLY format '" + format + "' is not ascii, binary_little_endian or binary_big_endian");
  const uint64_t body = text.size() - std::min(pos, text.size());
  for (const auto& el : elements) {
    if (el.count > body) {
      fail("the PLY element '" + el.name + "' declares " + std::to_string(el.count) +
           " instances, more than the " + std::to_string(body) + " bytes after the header hold");
    }
  }
  const bool big_endian = format == "binary_big_endian";
  for (const auto& el : elements) {
    for (uint64_t i = 0; i < el.count; ++i) {
      const auto which = [&] {  // built only for a message (bodies have millions of elements)
        return "the PLY element '" + el.name + "' #" + std::to_string(i);
      };
      if (ascii) {  // one instance per line (Assimp reads a line, then moves to the next)
        if (pos >= text.size()) {
          fail(which() + ": the file ends first (element '" + el.name + "' declares " +
               std::to_string(el.count) + ")");
        }
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        ++line_no;
        const auto values = split_ws(text, pos, eol);
        pos = eol + 1;
        if (values.empty()) {  // where Assimp's line reader and this walk could part ways
          fail(which() + " (line " + std::to_string(line_no) +
               "): an empty line where the element's values belong");
        }
        std::size_t v = 0;
        for (const auto& prop : el.properties) {
          if (v >= values.size()) break;  // a short line: Assimp stops reading it too
          if (prop.count_size == 0) {
            ++v;
            continue;
          }
          const auto n = ply_count(values[v]);
          if (!n || *n > values.size() - v - 1) {
            fail(which() + " (line " + std::to_string(line_no) + "): the list '" + prop.name +
                 "' declares " + (n ? std::to_string(*n) : "'" + values[v] + "'") +
                 " items, but the line holds " + std::to_string(values.size() - v - 1) +
                 " more values");
          }
          v += 1 + static_cast<std::size_t>(*n);
        }
      } else {
        for (const auto& prop : el.properties) {
          const uint64_t left = text.size() - std::min<uint64_t>(pos, text.size());
          if (prop.count_size == 0) {
            if (left < static_cast<uint64_t>(prop.size))
              fail(which() + ": the file ends inside property '" + prop.name + "' (truncated)");
            pos += static_cast<std::size_t>(prop.size);
            continue;
          }
          if (left < static_cast<uint64_t>(prop.count_size))
            fail(which() + ": the file ends inside list '" + prop.name + "' (truncated)");
          uint64_t n = 0;
          for (int k = 0; k < prop.count_size; ++k) {
            const auto byte = static_cast<unsigned char>(
                text[pos + static_cast<std::size_t>(big_endian ? k : prop.count_size - 1 - k)]);
            n = (n << 8) | byte;
          }
          pos += static_cast<std::size_t>(prop.count_size);
          if (n >
              (left - static_cast<uint64_t>(prop.count_size)) / static_cast<uint64_t>(prop.size)) {
            fail(which() + ": the list '" + prop.name + "' declares " + std::to_string(n) +
                 " items, more than the " +
                 std::to_string(left - static_cast<uint64_t>(prop.count_size)) +
                 " bytes left in the file hold");
          }
          pos += static_cast<std::size_t>(n * static_cast<uint64_t>(prop.size));
        }
      }
    }
  }
}

// Assimp 5's COLLADA reader trusts the file's numbers. A character that starts no number in an
// index list (<p>, <vcount>, <v>, <h>) makes it append zeros forever: a 796-byte file grew studio
// to 12 GB before std::bad_alloc (found by tests/fuzz/fuzz_mesh_import). And count="N" is reserved
// before anything is read. Refuse both before Assimp reads the file: an index list holds integers
// and white space only, and no count or stride exceeds the file's size (a number takes a byte).
void check_collada(const fs::path& path) {
  const std::string where = path.string();
  const std::string text = read_file_bytes(path);
  const auto number_char = [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == ' ' ||
           c == '\t' || c == '\n' || c == '\r';
  };
  const auto shown = [](char c) {
    const auto u = static_cast<unsigned char>(c);
    char hex[16];
    std::snprintf(hex, sizeof hex, "byte 0x%02x", u);
    return u >= 0x21 && u < 0x7f ? std::string("'") + c + "'" : std::string(hex);
  };
  for (const std::string tag : {"p", "vcount", "v", "h"}) {
    const std::string open = "<" + tag, close = "</" + tag + ">";
    for (std::size_t at = text.find(open); at != std::string::npos;
         at = text.find(open, at + open.size())) {
      const std::size_t after = at + open.size();
      if (after >= text.size()) break;
      const char next = text[after];
      if (next != '>' && next != '/' && !std::isspace(static_cast<unsigned char>(next)))
        continue;  // another element: <param>, <polylist>, <vertices>, ...
      const std::size_t gt = text.find('>', after);
      if (gt == std::string::npos) break;  // not well-formed: Assimp's XML parser refuses it
      if (text[gt - 1] == '/') continue;   // <p/>
      for (std::size_t i = gt + 1; i < text.size() && text.compare(i, close.size(), close) != 0;
           ++i) {
        if (number_char(text[i])) continue;
        throw FormatError("the COLLADA index list <" + tag + "> has " + shown(text[i]) +
                              " at byte " + std::to_string(i) +
                              ", where only integers and spaces belong",
                          where, "the file is corrupt; re-export it from the modelling tool");
      }
    }
  }
  for (const std::string attr : {"count", "stride"}) {
    for (std::size_t at = text.find(attr); at != std::string::npos;
         at = text.find(attr, at + attr.size())) {
      if (at == 0 || !std::isspace(static_cast<unsigned char>(text[at - 1]))) continue;
      std::size_t i = at + attr.size();
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      if (i >= text.size() || text[i] != '=') continue;
      ++i;
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      if (i >= text.size() || (text[i] != '"' && text[i] != '\'')) continue;
      const char quote = text[i];
      const std::size_t end = text.find(quote, i + 1);
      if (end == std::string::npos) break;
      const std::string value = text.substr(i + 1, end - i - 1);
      const bool digits = !value.empty() && value.size() <= 19 &&
                          std::all_of(value.begin(), value.end(), [](char c) {
                            return std::isdigit(static_cast<unsigned char>(c));
                          });
      if (!digits || std::stoull(value) > text.size())
        throw FormatError("the COLLADA attribute " + attr + "=\"" + value.substr(0, 32) +
                              "\" at byte " + std::to_string(at) + " is not a count this " +
                              std::to_string(text.size()) + "-byte file can hold",
                          where, "the file is corrupt; re-export it from the modelling tool");
    }
  }
}

void check_off(const fs::path& path) {
  const std::string where = path.string();
  const std::string text = read_file_bytes(path);
  std::vector<std::pair<int, std::vector<std::string>>> lines;  // (line number, tokens)
  {
    size_t start = 0;
    int number = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(start, end - start);
      ++number;
      if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      auto tokens = split_ws(line, 0, line.size());
      if (!tokens.empty()) lines.emplace_back(number, std::move(tokens));
      start = end + 1;
    }
  }
  const char* hint = "the OFF file is malformed; re-export it";
  size_t li = 0;
  if (li < lines.size() && lines[li].second[0].size() >= 3 &&
      lines[li].second[0].compare(lines[li].second[0].size() - 3, 3, "OFF") == 0) {
    if (lines[li].second.size() == 1) {
      ++li;
    } else {
      lines[li].second.erase(lines[li].second.begin());  // "OFF 8 6 0" on one line
    }
  }
  auto to_long = [&](const std::string& s, int line, const char* what) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (end == s.c_str() || *end != '\0' || v < 0 || errno == ERANGE) {
      throw FormatError("line " + std::to_string(line) + ": " + what + " '" + s +
                            "' is not a non-negative integer",
                        where, hint);
    }
    return v;
  };
  if (li >= lines.size() || lines[li].second.size() < 2) {
    throw FormatError("no vertex and face counts after the OFF header", where, hint);
  }
  const int header_line = lines[li].first;
  const long nv = to_long(lines[li].second[0], header_line, "vertex count");
  const long nf = to_long(lines[li].second[1], header_line, "face count");
  ++li;
  if (nv == 0 || nf == 0) {
    throw FormatError("no triangles: the header declares " + std::to_string(nv) + " vertices and " +
                          std::to_string(nf) + " faces",
                      where, hint);
  }
  const long data_lines = static_cast<long>(lines.size() - li);
  if (nv > data_lines || nf > data_lines - nv) {  // (nv + nf could overflow)
    throw FormatError("the header (line " + std::to_string(header_line) + ") declares " +
                          std::to_string(nv) + " vertices and " + std::to_string(nf) +
                          " faces, but only " + std::to_string(lines.size() - li) +
                          " data lines follow (truncated file)",
                      where, hint);
  }
  for (long v = 0; v < nv; ++v, ++li) {
    const auto& [line, tok] = lines[li];
    if (tok.size() < 3) {
      throw FormatError("line " + std::to_string(line) + ": vertex " + std::to_string(v) + " has " +
                            std::to_string(tok.size()) + " coordinate(s), not 3",
                        where, hint);
    }
    for (int k = 0; k < 3; ++k) {
      char* end = nullptr;
      double x = std::strtod(tok[k].c_str(), &end);
      if (end == tok[k].c_str() || *end != '\0' || !std::isfinite(x)) {
        throw FormatError("line " + std::to_string(line) + ": coordinate '" + tok[k] +
                              "' of vertex " + std::to_string(v) + " is not a finite number",
                          where, hint);
      }
    }
  }
  for (long f = 0; f < nf; ++f, ++li) {
    const auto& [line, tok] = lines[li];
    const long n = to_long(tok[0], line, "face vertex count");
    if (n < 3) {
      throw FormatError("line " + std::to_string(line) + ": face " + std::to_string(f) + " has " +
                            std::to_string(n) + " vertex index(es); a face needs at least 3",
                        where, hint);
    }
    if (static_cast<long>(tok.size()) - 1 < n) {
      throw FormatError("line " + std::to_string(line) + ": face " + std::to_string(f) +
                            " declares " + std::to_string(n) + " vertex indices but lists " +
                            std::to_string(tok.size() - 1),
                        where, hint);
    }
    for (long k = 1; k <= n; ++k) {
      const long idx = to_long(tok[k], line, "vertex index");
      if (idx >= nv) {
        throw FormatError("line " + std::to_string(line) + ": face " + std::to_string(f) +
                              ": vertex index " + std::to_string(idx) +
                              " is out of range (the file has " + std::to_string(nv) + " vertices)",
                          where, hint);
      }
    }
  }
}

// Assimp's glTF reader drops faces whose indices are out of range (and reads past accessor
// bounds) without failing: check the document's structure first.
void check_gltf_structure(const fs::path& path, const std::string& ext) {
  GltfCheckOptions lenient;
  lenient.strict = false;
  const auto problems =
      ext == ".glb" ? check_glb_file(path, lenient) : check_gltf_file(path, lenient);
  if (problems.empty()) return;
  std::string what = "invalid glTF: " + problems[0];
  for (size_t i = 1; i < problems.size() && i < 3; ++i) what += "; " + problems[i];
  if (problems.size() > 3) what += " (" + std::to_string(problems.size() - 3) + " more)";
  throw FormatError(what, path.string(),
                    "the file is corrupt or was written by a broken exporter; re-export it "
                    "(`studio mesh check` lists every problem of a .glb)");
}

}  // namespace

Mesh import_mesh(const fs::path& path, const MeshLimits& limits) {
  const std::string where = path.string();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw IoError("mesh file not found", where, "check the path");
  }
  if (!fs::is_regular_file(path, ec)) {
    throw IoError("not a regular file", where, "pass a mesh file (.glb, .gltf, .obj, .ply, ...)");
  }
  const auto size = fs::file_size(path, ec);
  if (ec) throw IoError("cannot read file size: " + ec.message(), where);
  if (size == 0) throw FormatError("file is empty", where, "re-export the model");
  if (static_cast<int64_t>(size) > limits.max_file_bytes) {
    throw FormatError("file is " + std::to_string(size) + " bytes, more than the limit of " +
                          std::to_string(limits.max_file_bytes) + " (STUDIO_LIMIT_MESH_FILE_BYTES)",
                      where,
                      "simplify the model, or raise STUDIO_LIMIT_MESH_FILE_BYTES if the file is "
                      "trusted");
  }
  Assimp::Importer importer;
  std::string ext = lower(path.extension().string());
  if (ext == ".zae")  // zipped COLLADA: check_collada cannot see inside before Assimp reads it
    throw FormatError("zipped COLLADA (.zae) is not read", where,
                      "unzip it and pass the .dae file inside");
  if (ext.empty() || !importer.IsExtensionSupported(ext)) {
    throw FormatError("unsupported mesh format '" + ext + "'", where,
                      "use glTF/GLB, OBJ, PLY, STL, FBX or COLLADA (.dae)");
  }
  if (ext == ".off") check_off(path);
  if (ext == ".ply") check_ply(path);
  if (ext == ".dae" || ext == ".xml") check_collada(path);
  if (ext == ".gltf" || ext == ".glb") check_gltf_structure(path, ext);
  importer.SetPropertyInteger(AI_CONFIG_PP_SBP_REMOVE,
                              aiPrimitiveType_POINT | aiPrimitiveType_LINE);
  // Read without post-processing, check what the steps would trust, then post-process.
  const aiScene* scene = importer.ReadFile(path.string(), 0);
  if (!scene) {
    std::string why = importer.GetErrorString();
    throw FormatError("cannot parse mesh file: " + (why.empty() ? "unknown reason" : why), where,
                      "the file is corrupt, truncated, or not in the format its extension says");
  }
  if (scene->mNumMeshes == 0 || (scene->mFlags & AI_SCENE_FLAGS_INCOMPLETE)) {
    throw FormatError("no triangles: the file contains no mesh geometry", where,
                      "the file is empty, truncated or only has points/lines; re-export it");
  }
  check_raw_scene(scene, where, limits);
  scene = importer.ApplyPostProcessing(aiProcess_ValidateDataStructure | aiProcess_Triangulate |
                                       aiProcess_SortByPType | aiProcess_JoinIdenticalVertices |
                                       aiProcess_PreTransformVertices | aiProcess_FlipUVs);
  if (!scene) {
    std::string why = importer.GetErrorString();
    throw FormatError("invalid mesh data: " + (why.empty() ? "unknown reason" : why), where,
                      "the file is corrupt or was written by a broken exporter; re-export it");
  }

  Mesh mesh;
  mesh.source = where;
  const fs::path model_dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::map<std::string, int> texture_by_ref;

  auto load_texture = [&](const std::string& ref) -> int {
    auto it = texture_by_ref.find(ref);
    if (it != texture_by_ref.end()) return it->second;
    Texture t;
    const aiTexture* embedded = scene->GetEmbeddedTexture(ref.c_str());
    if (embedded) {
      t.name = embedded->mFilename.length ? embedded->mFilename.C_Str() : "embedded " + ref;
      if (embedded->mHeight == 0) {
        const auto* b = reinterpret_cast<const uint8_t*>(embedded->pcData);
        t.encoded.assign(b, b + embedded->mWidth);
        t.mime_type = mime_from_bytes(t.encoded, std::string("x.") + embedded->achFormatHint);
      } else {
        t.width = static_cast<int>(embedded->mWidth);
        t.height = static_cast<int>(embedded->mHeight);
        t.rgba.resize(size_t(t.width) * t.height * 4);
        for (size_t i = 0; i < size_t(t.width) * t.height; ++i) {
          const aiTexel& x = embedded->pcData[i];
          t.rgba[i * 4] = x.r, t.rgba[i * 4 + 1] = x.g, t.rgba[i * 4 + 2] = x.b;
          t.rgba[i * 4 + 3] = x.a;
        }
      }
    } else {
      auto file = resolve_texture(model_dir, ref);
      if (!file) {
        mesh.warnings.push_back("texture '" + ref + "' not found next to " + where +
                                "; the material uses its base colour only");
        texture_by_ref[ref] = -1;
        return -1;
      }
      t.name = file->filename().string();
      t.encoded = read_bytes(*file, limits.max_file_bytes);
      t.mime_type = mime_from_bytes(t.encoded, file->string());
    }
    try {
      decode_texture(t, limits.max_texture_pixels);
    } catch (const FormatError& e) {
      mesh.warnings.push_back(std::string(e.what()) + "; the material uses its base colour only");
      texture_by_ref[ref] = -1;
      return -1;
    }
    if (static_cast<int>(mesh.textures.size()) >= limits.max_textures) {
      throw FormatError("more than " + std::to_string(limits.max_textures) + " textures", where,
                        "merge textures, or raise MeshLimits::max_textures");
    }
    mesh.textures.push_back(std::move(t));
    int index = static_cast<int>(mesh.textures.size()) - 1;
    texture_by_ref[ref] = index;
    return index;
  };

  for (unsigned i = 0; i < scene->mNumMaterials; ++i) {
    const aiMaterial* am = scene->mMaterials[i];
    Material m;
    aiString name;
    if (am->Get(AI_MATKEY_NAME, name) == AI_SUCCESS) m.name = name.C_Str();
    aiColor4D c;
    bool has_base = am->Get(AI_MATKEY_BASE_COLOR, c) == AI_SUCCESS;
    if (has_base || am->Get(AI_MATKEY_COLOR_DIFFUSE, c) == AI_SUCCESS) {
      m.base_color = {c.r, c.g, c.b, c.a};
    }
    float opacity = 1.0f;
    if (!has_base && am->Get(AI_MATKEY_OPACITY, opacity) == AI_SUCCESS) m.base_color[3] = opacity;
    float f;
    if (am->Get(AI_MATKEY_METALLIC_FACTOR, f) == AI_SUCCESS) m.metallic = f;
    if (am->Get(AI_MATKEY_ROUGHNESS_FACTOR, f) == AI_SUCCESS) m.roughness = f;
    aiString tex;
    if (am->GetTexture(aiTextureType_BASE_COLOR, 0, &tex) == AI_SUCCESS ||
        am->GetTexture(aiTextureType_DIFFUSE, 0, &tex) == AI_SUCCESS) {
      m.base_color_texture = load_texture(tex.C_Str());
      // COLLADA/OBJ/FBX: the diffuse texture replaces the colour (often black or grey there);
      // glTF multiplies by baseColorFactor.
      if (m.base_color_texture >= 0 && !has_base) m.base_color = {1, 1, 1, m.base_color[3]};
    }
    for (float& x : m.base_color) x = std::isfinite(x) ? std::clamp(x, 0.0f, 1.0f) : 1.0f;
    mesh.materials.push_back(std::move(m));
  }

  for (unsigned mi = 0; mi < scene->mNumMeshes; ++mi) {
    const aiMesh* am = scene->mMeshes[mi];
    if (!(am->mPrimitiveTypes & aiPrimitiveType_TRIANGLE)) continue;
    SubMesh s;
    s.name = am->mName.C_Str();
    s.material = am->mMaterialIndex < mesh.materials.size() ? int(am->mMaterialIndex) : -1;
    s.positions.resize(am->mNumVertices);
    for (unsigned v = 0; v < am->mNumVertices; ++v) {
      s.positions[v] = {am->mVertices[v].x, am->mVertices[v].y, am->mVertices[v].z};
    }
    if (am->mNormals) {
      s.normals.resize(am->mNumVertices);
      for (unsigned v = 0; v < am->mNumVertices; ++v) {
        s.normals[v] = {am->mNormals[v].x, am->mNormals[v].y, am->mNormals[v].z};
      }
    }
    if (am->mColors[0]) {
      s.colors.resize(am->mNumVertices);
      for (unsigned v = 0; v < am->mNumVertices; ++v) {
        const aiColor4D& c = am->mColors[0][v];
        s.colors[v] = {c.r, c.g, c.b, c.a};
      }
    }
    if (am->mTextureCoords[0]) {
      s.uvs.resize(am->mNumVertices);
      for (unsigned v = 0; v < am->mNumVertices; ++v) {
        s.uvs[v] = {am->mTextureCoords[0][v].x, am->mTextureCoords[0][v].y};
      }
    }
    s.indices.reserve(size_t(am->mNumFaces) * 3);
    for (unsigned f = 0; f < am->mNumFaces; ++f) {
      const aiFace& face = am->mFaces[f];
      if (face.mNumIndices != 3) continue;
      s.indices.insert(s.indices.end(), face.mIndices, face.mIndices + 3);
    }
    if (s.indices.empty()) continue;
    mesh.submeshes.push_back(std::move(s));
  }

  auto problems = validate_mesh(mesh, limits);
  if (!problems.empty()) {
    std::string what = problems[0];
    for (size_t i = 1; i < problems.size() && i < 5; ++i) what += "; " + problems[i];
    throw FormatError(what, where, "the file is corrupt or unsuitable; re-export it");
  }
  return mesh;
}

MeshFormat mesh_format_from_path(const fs::path& path) {
  std::string ext = lower(path.extension().string());
  if (ext == ".glb") return MeshFormat::kGlb;
  if (ext == ".obj") return MeshFormat::kObj;
  if (ext == ".ply") return MeshFormat::kPly;
  throw UsageError("cannot write mesh format '" + ext + "'", path.string(),
                   "use an output name ending in .glb, .obj or .ply");
}

// ---------------------------------------------------------------------------------------------
// GLB

namespace {

constexpr int kFloat = 5126, kUint = 5125;
constexpr int kArrayBuffer = 34962, kElementArrayBuffer = 34963;

// The bytes to embed for a texture: PNG/JPEG as stored, anything else re-encoded as PNG.
std::pair<std::vector<uint8_t>, std::string> web_image(const Texture& t) {
  if ((t.mime_type == "image/png" || t.mime_type == "image/jpeg") && !t.encoded.empty()) {
    return {t.encoded, t.mime_type};
  }
  Texture copy;
  const Texture* src = &t;
  if (!t.decoded()) {
    copy = t;
    decode_texture(copy);
    src = &copy;
  }
  cv::Mat rgba(src->height, src->width, CV_8UC4, const_cast<uint8_t*>(src->rgba.data()));
  cv::Mat bgra;
  cv::cvtColor(rgba, bgra, cv::COLOR_RGBA2BGRA);
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", bgra, png)) {
    throw FormatError("cannot encode texture as PNG", t.name, "check the texture");
  }
  return {png, "image/png"};
}

class GlbBuilder {
 public:
  nlohmann::json j = nlohmann::json::object();
  std::string bin;

  int add_view(const void* data, size_t n, int target) {
    while (bin.size() % 4) bin.push_back('\0');
    nlohmann::json v = {{"buffer", 0}, {"byteOffset", bin.size()}, {"byteLength", n}};
    if (target) v["target"] = target;
    bin.append(static_cast<const char*>(data), n);
    j["bufferViews"].push_back(v);
    return static_cast<int>(j["bufferViews"].size()) - 1;
  }

  int add_accessor(int view, int component, size_t count, const char* type,
                   const nlohmann::json& min = {}, const nlohmann::json& max = {}) {
    nlohmann::json a = {{"bufferView", view},
                        {"byteOffset", 0},
                        {"componentType", component},
                        {"count", count},
                        {"type", type}};
    if (!min.is_null()) a["min"] = min;
    if (!max.is_null()) a["max"] = max;
    j["accessors"].push_back(a);
    return static_cast<int>(j["accessors"].size()) - 1;
  }

  template <typename T, size_t N>
  int add_vec(const std::vector<std::array<T, N>>& v, const char* type, bool with_bounds = false) {
    int view = add_view(v.data(), v.size() * sizeof(v[0]), kArrayBuffer);
    if (!with_bounds) return add_accessor(view, kFloat, v.size(), type);
    std::array<float, N> lo = v[0], hi = v[0];
    for (const auto& x : v) {
      for (size_t k = 0; k < N; ++k) lo[k] = std::min(lo[k], x[k]), hi[k] = std::max(hi[k], x[k]);
    }
    return add_accessor(view, kFloat, v.size(), type, lo, hi);
  }
};

}  // namespace

std::string glb_bytes(const Mesh& mesh) {
  GlbBuilder g;
  g.j["asset"] = {{"version", "2.0"}, {"generator", "studio mesh"}};
  g.j["bufferViews"] = nlohmann::json::array();
  g.j["accessors"] = nlohmann::json::array();
  // Only textures some material uses.
  std::vector<int> texture_slot(mesh.textures.size(), -1);
  for (const auto& m : mesh.materials) {
    int t = m.base_color_texture;
    if (t < 0 || t >= static_cast<int>(mesh.textures.size()) || texture_slot[t] >= 0) continue;
    auto [bytes, mime] = web_image(mesh.textures[t]);
    int view = g.add_view(bytes.data(), bytes.size(), 0);
    g.j["images"].push_back(
        {{"bufferView", view}, {"mimeType", mime}, {"name", mesh.textures[t].name}});
    texture_slot[t] = static_cast<int>(g.j["images"].size()) - 1;
    g.j["textures"].push_back({{"source", texture_slot[t]}, {"sampler", 0}});
  }
  if (g.j.contains("textures")) {
    g.j["samplers"] = {
        {{"magFilter", 9729}, {"minFilter", 9987}, {"wrapS", 10497}, {"wrapT", 10497}}};
  }
  for (const auto& m : mesh.materials) {
    nlohmann::json pbr = {{"baseColorFactor", m.base_color},
                          {"metallicFactor", m.metallic},
                          {"roughnessFactor", m.roughness}};
    int t = m.base_color_texture;
    if (t >= 0 && t < static_cast<int>(texture_slot.size()) && texture_slot[t] >= 0) {
      pbr["baseColorTexture"] = {{"index", texture_slot[t]}};
    }
    nlohmann::json mj = {{"pbrMetallicRoughness", pbr}};
    if (!m.name.empty()) mj["name"] = m.name;
    if (m.base_color[3] < 1.0f) mj["alphaMode"] = "BLEND";
    g.j["materials"].push_back(mj);
  }
  nlohmann::json primitives = nlohmann::json::array();
  for (const auto& s : mesh.submeshes) {
    if (s.positions.empty() || s.indices.empty()) continue;
    nlohmann::json attributes;
    attributes["POSITION"] = g.add_vec(s.positions, "VEC3", true);
    if (s.normals.size() == s.positions.size()) {
      // glTF requires unit-length normals; some importers hand over unnormalised ones.
      std::vector<Vec3> unit = s.normals;
      for (auto& n : unit) {
        const float len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        n = len > 0 ? Vec3{n[0] / len, n[1] / len, n[2] / len} : Vec3{0, 1, 0};
      }
      attributes["NORMAL"] = g.add_vec(unit, "VEC3");
    }
    if (s.uvs.size() == s.positions.size()) attributes["TEXCOORD_0"] = g.add_vec(s.uvs, "VEC2");
    if (s.colors.size() == s.positions.size()) {
      std::vector<Vec4> clamped = s.colors;  // glTF colours are in [0, 1]
      for (auto& c : clamped) {
        for (auto& x : c) x = std::clamp(x, 0.0f, 1.0f);
      }
      attributes["COLOR_0"] = g.add_vec(clamped, "VEC4");
    }
    int iview = g.add_view(s.indices.data(), s.indices.size() * 4, kElementArrayBuffer);
    uint32_t imax = *std::max_element(s.indices.begin(), s.indices.end());
    uint32_t imin = *std::min_element(s.indices.begin(), s.indices.end());
    int iacc = g.add_accessor(iview, kUint, s.indices.size(), "SCALAR",
                              nlohmann::json::array({imin}), nlohmann::json::array({imax}));
    nlohmann::json p = {{"attributes", attributes}, {"indices", iacc}, {"mode", 4}};
    if (s.material >= 0 && s.material < static_cast<int>(mesh.materials.size())) {
      p["material"] = s.material;
    }
    primitives.push_back(p);
  }
  if (primitives.empty()) {
    throw UsageError("mesh has no triangles to write", mesh.source, "check the input mesh");
  }
  g.j["meshes"] = {{{"name", "mesh"}, {"primitives", primitives}}};
  g.j["nodes"] = {{{"mesh", 0}, {"name", "root"}}};
  g.j["scenes"] = {{{"nodes", {0}}}};
  g.j["scene"] = 0;
  while (g.bin.size() % 4) g.bin.push_back('\0');
  g.j["buffers"] = {{{"byteLength", g.bin.size()}}};

  std::string json = g.j.dump();
  while (json.size() % 4) json.push_back(' ');
  auto u32 = [](std::string& out, uint32_t v) {
    char b[4];
    std::memcpy(b, &v, 4);  // little-endian hosts only (x86-64, aarch64)
    out.append(b, 4);
  };
  std::string out;
  uint32_t total =
      12 + 8 + static_cast<uint32_t>(json.size()) + 8 + static_cast<uint32_t>(g.bin.size());
  u32(out, 0x46546C67);  // "glTF"
  u32(out, 2);
  u32(out, total);
  u32(out, static_cast<uint32_t>(json.size()));
  u32(out, 0x4E4F534A);  // "JSON"
  out += json;
  u32(out, static_cast<uint32_t>(g.bin.size()));
  u32(out, 0x004E4942);  // "BIN\0"
  out += g.bin;
  return out;
}

void write_glb(const Mesh& mesh, const fs::path& path) { write_file_atomic(path, glb_bytes(mesh)); }

// ---------------------------------------------------------------------------------------------
// OBJ + MTL

namespace {

void appendf(std::string& out, const char* fmt, double a, double b, double c) {
  char buf[128];
  int n = std::snprintf(buf, sizeof buf, fmt, a, b, c);
  out.append(buf, static_cast<size_t>(n));
}

std::string safe_name(const std::string& s, const std::string& fallback) {
  std::string out;
  for (char c : s)
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '_';
  return out.empty() ? fallback : out;
}

}  // namespace

std::vector<fs::path> write_obj(const Mesh& mesh, const fs::path& path) {
  std::vector<fs::path> written;
  const std::string stem = path.stem().string();
  const fs::path dir = path.parent_path();
  const fs::path mtl_path = dir / (stem + ".mtl");

  std::vector<std::string> texture_file(mesh.textures.size());
  for (const auto& m : mesh.materials) {
    int t = m.base_color_texture;
    if (t < 0 || t >= static_cast<int>(mesh.textures.size()) || !texture_file[t].empty()) continue;
    auto [bytes, mime] = web_image(mesh.textures[t]);
    texture_file[t] = stem + "_tex" + std::to_string(t) + extension_for_mime(mime);
    write_file_atomic(dir / texture_file[t], std::string(bytes.begin(), bytes.end()));
    written.push_back(dir / texture_file[t]);
  }
  std::string mtl = "# written by studio mesh\n";
  std::vector<std::string> material_names;
  for (size_t i = 0; i < mesh.materials.size(); ++i) {
    const Material& m = mesh.materials[i];
    material_names.push_back("m" + std::to_string(i) + "_" + safe_name(m.name, "material"));
    mtl += "\nnewmtl " + material_names.back() + "\n";
    appendf(mtl, "Kd %.6g %.6g %.6g\n", m.base_color[0], m.base_color[1], m.base_color[2]);
    appendf(mtl, "Ka %.6g %.6g %.6g\n", 0, 0, 0);
    appendf(mtl, "d %.6g\n", m.base_color[3], 0, 0);
    mtl += "illum 1\n";
    int t = m.base_color_texture;
    if (t >= 0 && t < static_cast<int>(texture_file.size()) && !texture_file[t].empty()) {
      mtl += "map_Kd " + texture_file[t] + "\n";
    }
  }
  std::string obj = "# written by studio mesh\nmtllib " + stem + ".mtl\n";
  obj.reserve(mesh.vertex_count() * 80);
  size_t v_base = 1, vt_base = 1, vn_base = 1;
  char buf[256];
  for (size_t si = 0; si < mesh.submeshes.size(); ++si) {
    const SubMesh& s = mesh.submeshes[si];
    obj += "o " + safe_name(s.name, "submesh" + std::to_string(si)) + "\n";
    const bool colors = s.colors.size() == s.positions.size();
    for (size_t v = 0; v < s.positions.size(); ++v) {
      const auto& p = s.positions[v];
      int n = colors ? std::snprintf(buf, sizeof buf, "v %.9g %.9g %.9g %.6g %.6g %.6g\n", p[0],
                                     p[1], p[2], s.colors[v][0], s.colors[v][1], s.colors[v][2])
                     : std::snprintf(buf, sizeof buf, "v %.9g %.9g %.9g\n", p[0], p[1], p[2]);
      obj.append(buf, static_cast<size_t>(n));
    }
    const bool uvs = s.uvs.size() == s.positions.size();
    const bool normals = s.normals.size() == s.positions.size();
    if (uvs) {
      for (const auto& t : s.uvs) {
        int n = std::snprintf(buf, sizeof buf, "vt %.9g %.9g\n", t[0], 1.0f - t[1]);
        obj.append(buf, static_cast<size_t>(n));
      }
    }
    if (normals) {
      for (const auto& q : s.normals) {
        int n = std::snprintf(buf, sizeof buf, "vn %.7g %.7g %.7g\n", q[0], q[1], q[2]);
        obj.append(buf, static_cast<size_t>(n));
      }
    }
    if (s.material >= 0 && s.material < static_cast<int>(material_names.size())) {
      obj += "usemtl " + material_names[s.material] + "\n";
    }
    for (size_t i = 0; i + 2 < s.indices.size(); i += 3) {
      obj += "f";
      for (int k = 0; k < 3; ++k) {
        size_t idx = s.indices[i + k];
        int n;
        if (uvs && normals) {
          n = std::snprintf(buf, sizeof buf, " %zu/%zu/%zu", v_base + idx, vt_base + idx,
                            vn_base + idx);
        } else if (uvs) {
          n = std::snprintf(buf, sizeof buf, " %zu/%zu", v_base + idx, vt_base + idx);
        } else if (normals) {
          n = std::snprintf(buf, sizeof buf, " %zu//%zu", v_base + idx, vn_base + idx);
        } else {
          n = std::snprintf(buf, sizeof buf, " %zu", v_base + idx);
        }
        obj.append(buf, static_cast<size_t>(n));
      }
      obj += "\n";
    }
    v_base += s.positions.size();
    if (uvs) vt_base += s.uvs.size();
    if (normals) vn_base += s.normals.size();
  }
  write_file_atomic(mtl_path, mtl);
  written.push_back(mtl_path);
  write_file_atomic(path, obj);
  written.push_back(path);
  return written;
}

// ---------------------------------------------------------------------------------------------
// PLY

void write_ply(const Mesh& mesh, const fs::path& path) {
  bool any_uv = false;
  for (const auto& s : mesh.submeshes)
    any_uv |= s.uvs.size() == s.positions.size() && !s.uvs.empty();
  const size_t nv = mesh.vertex_count(), nf = mesh.triangle_count();
  std::string out = "ply\nformat binary_little_endian 1.0\ncomment written by studio mesh\n";
  out += "element vertex " + std::to_string(nv) + "\n";
  out += "property float x\nproperty float y\nproperty float z\n";
  out += "property float nx\nproperty float ny\nproperty float nz\n";
  out += "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n";
  if (any_uv) out += "property float s\nproperty float t\n";
  out += "element face " + std::to_string(nf) + "\n";
  out += "property list uchar uint vertex_indices\nend_header\n";
  out.reserve(out.size() + nv * 36 + nf * 13);
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  auto to_u8 = [](float x) {
    return static_cast<uint8_t>(
        std::lround(std::clamp(std::isfinite(x) ? x : 1.0f, 0.0f, 1.0f) * 255.0f));
  };
  for (const auto& s : mesh.submeshes) {
    // PLY has no materials: vertices without colours take their material's base colour.
    Vec4 fallback{0.8f, 0.8f, 0.8f, 1.0f};
    if (s.material >= 0 && s.material < static_cast<int>(mesh.materials.size())) {
      fallback = mesh.materials[s.material].base_color;
    }
    for (size_t v = 0; v < s.positions.size(); ++v) {
      put(s.positions[v].data(), 12);
      Vec3 n = s.normals.size() == s.positions.size() ? s.normals[v] : Vec3{0, 0, 0};
      put(n.data(), 12);
      const Vec4& c = s.colors.size() == s.positions.size() ? s.colors[v] : fallback;
      uint8_t rgba[4] = {to_u8(c[0]), to_u8(c[1]), to_u8(c[2]), to_u8(c[3])};
      put(rgba, 4);
      if (any_uv) {
        Vec2 t = s.uvs.size() == s.positions.size() ? s.uvs[v] : Vec2{0, 0};
        float st[2] = {t[0], 1.0f - t[1]};
        put(st, 8);
      }
    }
  }
  uint32_t base = 0;
  for (const auto& s : mesh.submeshes) {
    for (size_t i = 0; i + 2 < s.indices.size(); i += 3) {
      uint8_t three = 3;
      put(&three, 1);
      uint32_t tri[3] = {base + s.indices[i], base + s.indices[i + 1], base + s.indices[i + 2]};
      put(tri, 12);
    }
    base += static_cast<uint32_t>(s.positions.size());
  }
  write_file_atomic(path, out);
}

std::vector<fs::path> write_mesh(const Mesh& mesh, const fs::path& path) {
  switch (mesh_format_from_path(path)) {
    case MeshFormat::kGlb:
      write_glb(mesh, path);
      return {path};
    case MeshFormat::kObj:
      return write_obj(mesh, path);
    case MeshFormat::kPly:
      write_ply(mesh, path);
      return {path};
  }
  return {};
}

}  // namespace studio::mesh
