// The software rasteriser: see render.h.
#include "mesh/render.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "mesh/mesh_io.h"

namespace studio::mesh {
namespace {

constexpr float kPi = 3.14159265358979f;

struct V3 {
  float x, y, z;
};
V3 operator-(V3 a, V3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
V3 operator+(V3 a, V3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
V3 operator*(V3 a, float s) { return {a.x * s, a.y * s, a.z * s}; }
float dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
V3 cross(V3 a, V3 b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
V3 normalize(V3 a) {
  float l = std::sqrt(dot(a, a));
  return l > 0 ? a * (1.0f / l) : V3{0, 0, 1};
}
V3 v3(const Vec3& a) { return {a[0], a[1], a[2]}; }

// Bilinear, repeat wrap; returns RGBA in [0, 1].
Vec4 sample(const Texture& t, float u, float v) {
  u = u - std::floor(u);
  v = v - std::floor(v);
  float x = u * t.width - 0.5f, y = v * t.height - 0.5f;
  int x0 = static_cast<int>(std::floor(x)), y0 = static_cast<int>(std::floor(y));
  float fx = x - x0, fy = y - y0;
  auto at = [&](int xi, int yi, int c) {
    xi = ((xi % t.width) + t.width) % t.width;
    yi = ((yi % t.height) + t.height) % t.height;
    return t.rgba[(size_t(yi) * t.width + xi) * 4 + c] / 255.0f;
  };
  Vec4 out;
  for (int c = 0; c < 4; ++c) {
    float a = at(x0, y0, c) * (1 - fx) + at(x0 + 1, y0, c) * fx;
    float b = at(x0, y0 + 1, c) * (1 - fx) + at(x0 + 1, y0 + 1, c) * fx;
    out[c] = a * (1 - fy) + b * fy;
  }
  return out;
}

}  // namespace

RenderScene::RenderScene(const Mesh& mesh, UpAxis up) : mesh_(mesh) {
  // Meshes built in code (not imported) have not been validated yet: a bad index would crash.
  MeshLimits unlimited;
  unlimited.max_vertices = unlimited.max_triangles = INT64_MAX;
  unlimited.max_submeshes = unlimited.max_textures = INT32_MAX;
  const auto problems = validate_mesh(mesh_, unlimited);
  if (!problems.empty()) {
    throw UsageError("cannot render an invalid mesh: " + problems[0],
                     mesh.source.empty() ? std::string("render") : mesh.source,
                     "fix the mesh (validate_mesh lists the problems)");
  }
  NormaliseOptions n;
  n.up = up;
  normalise(mesh_, n);
  compute_missing_normals(mesh_);
  for (auto& t : mesh_.textures) {
    if (!t.decoded()) decode_texture(t);
  }
  float r2 = 0;
  for (const auto& s : mesh_.submeshes) {
    for (const auto& p : s.positions) r2 = std::max(r2, p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
  }
  radius_ = std::max(std::sqrt(r2), 1e-3f);
}

RgbImage RenderScene::render(const RenderOptions& o) const {
  if (o.width < 1 || o.height < 1 || o.width > 8192 || o.height > 8192) {
    throw UsageError("render size " + std::to_string(o.width) + "x" + std::to_string(o.height) +
                         " is out of range",
                     "", "use 1 to 8192 pixels per side");
  }
  const int ss = std::clamp(o.supersample, 1, 4);
  const int W = o.width * ss, H = o.height * ss;
  // Camera on a sphere around the origin, far enough that the bounding sphere fits the view.
  const float yaw = o.yaw_deg * kPi / 180, pitch = o.pitch_deg * kPi / 180;
  const float fov = std::clamp(o.fov_deg, 5.0f, 120.0f) * kPi / 180;
  const float dist = radius_ / std::sin(fov / 2) * 1.05f;
  const V3 eye{dist * std::cos(pitch) * std::sin(yaw), dist * std::sin(pitch),
               dist * std::cos(pitch) * std::cos(yaw)};
  const V3 fwd = normalize(V3{0, 0, 0} - eye);
  V3 world_up{0, 1, 0};
  if (std::fabs(dot(fwd, world_up)) > 0.999f) world_up = {0, 0, -1};
  const V3 right = normalize(cross(fwd, world_up));
  const V3 up = cross(right, fwd);
  const float focal = (H / 2.0f) / std::tan(fov / 2);
  const float aspect_cx = W / 2.0f, cy = H / 2.0f;
  // Headlight from the upper left of the camera.
  const V3 light = normalize(right * -0.4f + up * 0.6f - fwd * 1.0f);

  std::vector<float> depth(size_t(W) * H, INFINITY);
  std::vector<float> color(size_t(W) * H * 3);
  for (size_t i = 0; i < size_t(W) * H; ++i) {
    for (int c = 0; c < 3; ++c) color[i * 3 + c] = o.background[c] / 255.0f;
  }
  const float near = 1e-3f;

  for (const auto& s : mesh_.submeshes) {
    const Material* mat = s.material >= 0 && s.material < static_cast<int>(mesh_.materials.size())
                              ? &mesh_.materials[s.material]
                              : nullptr;
    const Vec4 base = mat ? mat->base_color : Vec4{0.8f, 0.8f, 0.8f, 1.0f};
    const Texture* tex = nullptr;
    if (mat && mat->base_color_texture >= 0 &&
        mat->base_color_texture < static_cast<int>(mesh_.textures.size()) && !s.uvs.empty()) {
      tex = &mesh_.textures[mat->base_color_texture];
      if (!tex->decoded() || tex->width < 1) tex = nullptr;
    }
    const bool has_colors = s.colors.size() == s.positions.size();
    // Camera-space vertices.
    std::vector<V3> cam(s.positions.size());
    for (size_t v = 0; v < s.positions.size(); ++v) {
      V3 d = v3(s.positions[v]) - eye;
      cam[v] = {dot(d, right), dot(d, up), dot(d, fwd)};
    }
    for (size_t t = 0; t + 2 < s.indices.size(); t += 3) {
      const uint32_t i0 = s.indices[t], i1 = s.indices[t + 1], i2 = s.indices[t + 2];
      const V3 c0 = cam[i0], c1 = cam[i1], c2 = cam[i2];
      if (c0.z < near || c1.z < near || c2.z < near) continue;
      float sx[3], sy[3], iz[3];
      const V3 cs[3] = {c0, c1, c2};
      for (int k = 0; k < 3; ++k) {
        iz[k] = 1.0f / cs[k].z;
        sx[k] = aspect_cx + cs[k].x * focal * iz[k];
        sy[k] = cy - cs[k].y * focal * iz[k];
      }
      float area = (sx[1] - sx[0]) * (sy[2] - sy[0]) - (sx[2] - sx[0]) * (sy[1] - sy[0]);
      if (std::fabs(area) < 1e-12f) continue;
      int x0 = std::max(0, static_cast<int>(std::floor(std::min({sx[0], sx[1], sx[2]}))));
      int x1 = std::min(W - 1, static_cast<int>(std::ceil(std::max({sx[0], sx[1], sx[2]}))));
      int y0 = std::max(0, static_cast<int>(std::floor(std::min({sy[0], sy[1], sy[2]}))));
      int y1 = std::min(H - 1, static_cast<int>(std::ceil(std::max({sy[0], sy[1], sy[2]}))));
      if (x0 > x1 || y0 > y1) continue;
      const uint32_t idx[3] = {i0, i1, i2};
      const float inv_area = 1.0f / area;
      for (int y = y0; y <= y1; ++y) {
        const float py = y + 0.5f;
        for (int x = x0; x <= x1; ++x) {
          const float px = x + 0.5f;
          float w0 = ((sx[1] - px) * (sy[2] - py) - (sx[2] - px) * (sy[1] - py)) * inv_area;
          float w1 = ((sx[2] - px) * (sy[0] - py) - (sx[0] - px) * (sy[2] - py)) * inv_area;
          float w2 = 1.0f - w0 - w1;
          if (w0 < 0 || w1 < 0 || w2 < 0) continue;
          // Perspective-correct weights.
          float q0 = w0 * iz[0], q1 = w1 * iz[1], q2 = w2 * iz[2];
          float qs = q0 + q1 + q2;
          float z = 1.0f / qs;
          size_t pi = size_t(y) * W + x;
          if (z >= depth[pi]) continue;
          depth[pi] = z;
          q0 /= qs, q1 /= qs, q2 /= qs;
          const float q[3] = {q0, q1, q2};
          Vec4 albedo = base;
          if (has_colors) {
            for (int c = 0; c < 4; ++c) {
              albedo[c] *= q[0] * s.colors[idx[0]][c] + q[1] * s.colors[idx[1]][c] +
                           q[2] * s.colors[idx[2]][c];
            }
          }
          if (tex) {
            float u = q[0] * s.uvs[idx[0]][0] + q[1] * s.uvs[idx[1]][0] + q[2] * s.uvs[idx[2]][0];
            float v = q[0] * s.uvs[idx[0]][1] + q[1] * s.uvs[idx[1]][1] + q[2] * s.uvs[idx[2]][1];
            Vec4 tc = sample(*tex, u, v);
            for (int c = 0; c < 4; ++c) albedo[c] *= tc[c];
          }
          V3 n = normalize(v3(s.normals[idx[0]]) * q[0] + v3(s.normals[idx[1]]) * q[1] +
                           v3(s.normals[idx[2]]) * q[2]);
          // Two-sided: a normal facing away from the camera is flipped.
          V3 world_pos = v3(s.positions[idx[0]]) * q[0] + v3(s.positions[idx[1]]) * q[1] +
                         v3(s.positions[idx[2]]) * q[2];
          if (dot(n, eye - world_pos) < 0) n = n * -1.0f;
          float shade = o.ambient + (1.0f - o.ambient) * std::max(0.0f, dot(n, light));
          float* dst = &color[pi * 3];
          float a = std::clamp(albedo[3], 0.0f, 1.0f);
          for (int c = 0; c < 3; ++c) {
            float lit = std::clamp(albedo[c] * shade, 0.0f, 1.0f);
            dst[c] = a * lit + (1 - a) * dst[c];
          }
        }
      }
    }
  }

  RgbImage out;
  out.width = o.width;
  out.height = o.height;
  out.rgb.resize(size_t(o.width) * o.height * 3);
  const float norm = 1.0f / (ss * ss);
  for (int y = 0; y < o.height; ++y) {
    for (int x = 0; x < o.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        float sum = 0;
        for (int dy = 0; dy < ss; ++dy) {
          for (int dx = 0; dx < ss; ++dx) {
            sum += color[((size_t(y) * ss + dy) * W + (size_t(x) * ss + dx)) * 3 + c];
          }
        }
        out.rgb[(size_t(y) * o.width + x) * 3 + c] =
            static_cast<uint8_t>(std::lround(std::clamp(sum * norm, 0.0f, 1.0f) * 255.0f));
      }
    }
  }
  return out;
}

RgbImage render_view(const Mesh& mesh, const RenderOptions& options) {
  return RenderScene(mesh, options.up).render(options);
}

std::vector<RgbImage> turntable(const Mesh& mesh, int n_frames, int size, const RenderOptions& base,
                                void (*progress)(int, int, void*), void* progress_context) {
  if (n_frames < 1 || n_frames > 3600) {
    throw UsageError("turntable frame count " + std::to_string(n_frames) + " is out of range", "",
                     "use 1 to 3600 frames");
  }
  RenderScene scene(mesh, base.up);
  std::vector<RgbImage> frames;
  RenderOptions o = base;
  o.width = o.height = size;
  for (int i = 0; i < n_frames; ++i) {
    o.yaw_deg = base.yaw_deg + 360.0f * i / n_frames;
    frames.push_back(scene.render(o));
    if (progress) progress(i + 1, n_frames, progress_context);
  }
  return frames;
}

std::vector<RgbImage> multi_view(const Mesh& mesh, int size, const RenderOptions& base) {
  RenderScene scene(mesh, base.up);
  const float views[6][2] = {{0, 0}, {90, 0}, {180, 0}, {270, 0}, {45, 30}, {0, 89}};
  std::vector<RgbImage> frames;
  RenderOptions o = base;
  o.width = o.height = size;
  for (const auto& v : views) {
    o.yaw_deg = v[0];
    o.pitch_deg = v[1];
    frames.push_back(scene.render(o));
  }
  return frames;
}

RgbImage contact_sheet(const std::vector<RgbImage>& frames, int columns, int max_width) {
  if (frames.empty()) throw UsageError("contact sheet of no frames", "", "render some frames");
  const int n = static_cast<int>(frames.size());
  const int cols = columns > 0 ? std::min(columns, n)
                               : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows = (n + cols - 1) / cols;
  const int fw = frames[0].width, fh = frames[0].height;
  int tw = fw, th = fh;
  if (cols * fw > max_width) {
    tw = std::max(1, max_width / cols);
    th = std::max(1, static_cast<int>(std::lround(double(fh) * tw / fw)));
  }
  cv::Mat sheet(rows * th, cols * tw, CV_8UC3, cv::Scalar(240, 240, 240));  // the frames' grey
  for (int i = 0; i < n; ++i) {
    const RgbImage& f = frames[i];
    cv::Mat src(f.height, f.width, CV_8UC3, const_cast<uint8_t*>(f.rgb.data()));
    cv::Mat tile;
    if (f.width != tw || f.height != th)
      cv::resize(src, tile, cv::Size(tw, th), 0, 0, cv::INTER_AREA);
    else
      tile = src;
    tile.copyTo(sheet(cv::Rect((i % cols) * tw, (i / cols) * th, tw, th)));
  }
  RgbImage out;
  out.width = sheet.cols;
  out.height = sheet.rows;
  out.rgb.assign(sheet.data, sheet.data + sheet.total() * 3);
  return out;
}

double foreground_coverage(const RgbImage& image, std::array<uint8_t, 3> background) {
  if (image.rgb.empty()) return 0;
  size_t fg = 0, n = size_t(image.width) * image.height;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &image.rgb[i * 3];
    if (std::abs(p[0] - background[0]) + std::abs(p[1] - background[1]) +
            std::abs(p[2] - background[2]) >
        6) {
      ++fg;
    }
  }
  return double(fg) / n;
}

void write_png(const RgbImage& image, const std::filesystem::path& path) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", bgr, png)) {
    throw IoError("cannot encode PNG", path.string(), "check the image size");
  }
  write_file_atomic(path, std::string(png.begin(), png.end()));
}

}  // namespace studio::mesh
