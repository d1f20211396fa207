// `studio mesh info|convert|render|check`: the 3D stage's file tools. Import any common mesh
// format, convert to GLB / OBJ / PLY (optionally cleaned: floaters, smoothing, simplification),
// render turntable previews, validate GLB structure.
#include <fmt/format.h>

#include <unistd.h>
#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "mesh/gltf_check.h"
#include "mesh/mesh_filters.h"
#include "mesh/mesh_io.h"
#include "mesh/render.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#ifdef STUDIO_HAVE_VIDEO
#include "video/video_io.h"
#endif

namespace studio {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct MeshOptions {
  std::string input;
  std::string output;
  bool normalise = false;
  std::string up = "y";
  bool no_sidecar = false;
  int turntable = 8;
  std::string fps = "24";  // turntable clips (--out *.mp4)
  int size = 512;
  bool views = false;
  bool json = false;
  // convert: clean-up filters (mesh/mesh_filters.h)
  int64_t smooth = 0;
  double simplify = 0;
  int64_t faces = 0;
  double min_component = 0;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

mesh::UpAxis parse_up(const std::string& up) {
  if (up == "y" || up == "Y") return mesh::UpAxis::kY;
  if (up == "z" || up == "Z") return mesh::UpAxis::kZ;
  throw UsageError("--up must be y or z, not '" + up + "'", "",
                   "use --up y (glTF) or --up z (CAD)");
}

nlohmann::json mesh_summary(const mesh::Mesh& m) {
  nlohmann::json j;
  j["vertices"] = m.vertex_count();
  j["triangles"] = m.triangle_count();
  j["submeshes"] = m.submeshes.size();
  auto b = m.bounds();
  j["bounds"] = {{"min", b.min}, {"max", b.max}};
  nlohmann::json mats = nlohmann::json::array();
  for (const auto& mat : m.materials) {
    nlohmann::json mj = {{"name", mat.name}, {"base_color", mat.base_color}};
    if (mat.base_color_texture >= 0) mj["texture"] = mat.base_color_texture;
    mats.push_back(mj);
  }
  j["materials"] = mats;
  nlohmann::json texs = nlohmann::json::array();
  for (const auto& t : m.textures) {
    texs.push_back({{"name", t.name},
                    {"mime_type", t.mime_type},
                    {"width", t.width},
                    {"height", t.height},
                    {"bytes", t.encoded.size()}});
  }
  j["textures"] = texs;
  bool colors = false, uvs = false, normals = false;
  for (const auto& s : m.submeshes) {
    colors |= !s.colors.empty(), uvs |= !s.uvs.empty(), normals |= !s.normals.empty();
  }
  j["has_normals"] = normals;
  j["has_vertex_colors"] = colors;
  j["has_uvs"] = uvs;
  if (!m.warnings.empty()) j["warnings"] = m.warnings;
  return j;
}

void warn(const mesh::Mesh& m) {
  for (const auto& w : m.warnings) std::cerr << "studio: warning: " << w << "\n";
}

nlohmann::json sidecar_base(const std::string& command, const fs::path& input,
                            const mesh::Mesh& m) {
  return {{"generator", std::string("studio ") + STUDIO_VERSION},
          {"command", command},
          {"input", input.string()},
          {"input_sha256", sha256_file_hex(input)},
          {"mesh", mesh_summary(m)}};
}

int run_info(const MeshOptions& o) {
  const auto t0 = Clock::now();
  mesh::Mesh m = mesh::import_mesh(o.input);
  const double secs = seconds_since(t0);
  warn(m);
  nlohmann::json j = mesh_summary(m);
  const mesh::TopologyReport topo = mesh::mesh_topology_report(m);
  j["topology"] = mesh::to_json(topo);
  if (o.json) {
    j["input"] = o.input;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  auto b = m.bounds();
  std::cout << fmt::format(
      "{}\n  {} vertices, {} triangles, {} sub-mesh(es) (imported in {:.3f} s)\n", o.input,
      m.vertex_count(), m.triangle_count(), m.submeshes.size(), secs);
  std::cout << fmt::format("  bounds: [{:.4g}, {:.4g}, {:.4g}] .. [{:.4g}, {:.4g}, {:.4g}]\n",
                           b.min[0], b.min[1], b.min[2], b.max[0], b.max[1], b.max[2]);
  std::cout << fmt::format("  attributes: normals {}, vertex colours {}, UVs {}\n",
                           j["has_normals"].get<bool>() ? "yes" : "no",
                           j["has_vertex_colors"].get<bool>() ? "yes" : "no",
                           j["has_uvs"].get<bool>() ? "yes" : "no");
  // Vertices joined by position, so UV / normal seams are not counted as holes.
  std::cout << fmt::format(
      "  topology: {} ({} component(s), Euler characteristic {}; {} boundary, {} non-manifold, {} "
      "inconsistently oriented edge(s){})\n",
      topo.closed_manifold() ? "closed manifold"
      : topo.closed()        ? "closed, not consistently oriented"
                             : "open or non-manifold",
      topo.components, topo.euler_characteristic, topo.boundary_edges, topo.non_manifold_edges,
      topo.inconsistent_edges,
      topo.degenerate_faces ? fmt::format(", {} degenerate face(s)", topo.degenerate_faces) : "");
  std::cout << "  materials: " << m.materials.size() << "\n";
  for (size_t i = 0; i < m.materials.size(); ++i) {
    const auto& mat = m.materials[i];
    std::cout << fmt::format(
        "    [{}] '{}' base colour ({:.3f}, {:.3f}, {:.3f}, {:.3f}){}\n", i, mat.name,
        mat.base_color[0], mat.base_color[1], mat.base_color[2], mat.base_color[3],
        mat.base_color_texture >= 0 ? fmt::format(", texture [{}]", mat.base_color_texture)
                                    : std::string());
  }
  std::cout << "  textures: " << m.textures.size() << "\n";
  for (size_t i = 0; i < m.textures.size(); ++i) {
    const auto& t = m.textures[i];
    std::cout << fmt::format("    [{}] {} ({}, {}x{}, {} bytes)\n", i, t.name, t.mime_type, t.width,
                             t.height, t.encoded.size());
  }
  return kExitOk;
}

int run_convert(const MeshOptions& o) {
  const fs::path out(o.output);
  mesh::mesh_format_from_path(out);  // refuse an unknown extension before the import
  const auto up = parse_up(o.up);
  const mesh::MeshFilterOptions filters =
      mesh::filter_options_from_cli(o.smooth, o.simplify, o.faces, o.min_component);
  auto t0 = Clock::now();
  mesh::Mesh m = mesh::import_mesh(o.input);
  const double import_s = seconds_since(t0);
  warn(m);
  if (o.normalise || up == mesh::UpAxis::kZ) {
    mesh::NormaliseOptions n;
    n.up = up;
    n.centre = n.unit_scale = o.normalise;
    mesh::normalise(m, n);
  }
  // After normalising, so the distances reported are in the output's units.
  const mesh::FilterReport filtered = mesh::apply_filters(m, filters);
  if (filtered.applied) std::cout << mesh::summary_line(filtered) << "\n";
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  t0 = Clock::now();
  const auto written = mesh::write_mesh(m, out);
  const double write_s = seconds_since(t0);
  if (mesh::mesh_format_from_path(out) == mesh::MeshFormat::kGlb) {
    auto problems = mesh::check_glb_file(out);
    if (!problems.empty()) {
      for (const auto& p : problems) std::cerr << "studio: " << out.string() << ": " << p << "\n";
      std::cerr
          << "studio: the written GLB failed its structural check (a bug: please report it)\n";
      return kExitRejected;
    }
  }
  if (!o.no_sidecar) {
    nlohmann::json j = sidecar_base("mesh convert", o.input, m);
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : written) files.push_back(f.string());
    j["outputs"] = files;
    j["parameters"] = {{"normalise", o.normalise},
                       {"up", o.up},
                       {"format", out.extension().string()},
                       {"smooth", o.smooth},
                       {"simplify", o.simplify},
                       {"faces", o.faces},
                       {"min_component", o.min_component}};
    if (filtered.applied) {
      j["filters"] = mesh::to_json(filtered);
      j["output_mesh"] = mesh_summary(m);
    }
    j["timings_s"] = {{"import", import_s}, {"filters", filtered.seconds}, {"write", write_s}};
    write_file_atomic(out.string() + ".json", j.dump(2) + "\n");
  }
  std::cout << fmt::format("wrote {} ({} vertices, {} triangles, {} material(s), {} texture(s))\n",
                           out.string(), m.vertex_count(), m.triangle_count(), m.materials.size(),
                           m.textures.size());
  return kExitOk;
}

bool is_video_path(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".mp4" || ext == ".mov" || ext == ".mkv" || ext == ".webm" || ext == ".avi" ||
         ext == ".gif" || ext == ".m4v";
}

// One line per frame in logs; an updating line on a terminal.
void render_progress(int i, int n, void*) {
  static const bool tty = isatty(STDERR_FILENO) != 0;
  if (!tty) {
    std::cerr << "studio: rendering frame " << i << "/" << n << "\n";
    return;
  }
  std::cerr << "\rstudio: rendering frame " << i << "/" << n << std::flush;
  if (i == n) std::cerr << "\n";
}

#ifdef STUDIO_HAVE_VIDEO
// A turntable clip (MP4): frames rendered one at a time and streamed into the encoder, so memory
// does not grow with --turntable.
int render_clip(const MeshOptions& o, const mesh::Mesh& m, mesh::UpAxis up, double import_s) {
  const fs::path out(o.output);
  video::WriterOptions wo;
  wo.width = wo.height = o.size;
  wo.fps = video::parse_fps(o.fps);
  wo.metadata["title"] = "Turntable of " + fs::path(o.input).filename().string();
  wo.metadata["comment"] = fmt::format(
      "studio mesh render --turntable {} --size {} --fps {} --up {} (software "
      "rasteriser, studio {})",
      o.turntable, o.size, wo.fps.str(), o.up, STUDIO_VERSION);
  video::VideoWriter writer(out, wo);
  for (const auto& w : writer.warnings()) std::cerr << "studio: warning: " << w << "\n";
  mesh::RenderScene scene(m, up);
  mesh::RenderOptions ro;
  ro.up = up;
  ro.width = ro.height = o.size;
  const float yaw0 = ro.yaw_deg;
  auto t0 = Clock::now();
  double render_s = 0;
  for (int i = 0; i < o.turntable; ++i) {
    ro.yaw_deg = yaw0 + 360.0f * i / o.turntable;
    const auto t = Clock::now();
    const mesh::RgbImage frame = scene.render(ro);
    render_s += seconds_since(t);
    writer.write(frame.rgb.data(), frame.width, frame.height, frame.width * 3);
    render_progress(i + 1, o.turntable, nullptr);
  }
  writer.finish();
  const double total_s = seconds_since(t0);
  if (!o.no_sidecar) {
    nlohmann::json j = sidecar_base("mesh render", o.input, m);
    j["outputs"] = {out.string()};
    j["parameters"] = {
        {"turntable", o.turntable},  {"size", o.size},        {"up", o.up},
        {"fps", wo.fps.str()},       {"crf", wo.crf},         {"encoder", writer.encoder_name()},
        {"pitch_deg", ro.pitch_deg}, {"fov_deg", ro.fov_deg}, {"supersample", ro.supersample}};
    j["timings_s"] = {{"import", import_s},
                      {"render", render_s},
                      {"encode", total_s - render_s},
                      {"per_frame", render_s / o.turntable}};
    write_file_atomic(out.string() + ".json", j.dump(2) + "\n");
  }
  std::cout << fmt::format("wrote {} ({} frame(s) of {}x{} at {} fps, {}; {:.3f} s per frame)\n",
                           out.string(), o.turntable, o.size, o.size, wo.fps.str(),
                           writer.encoder_name(), total_s / o.turntable);
  return kExitOk;
}
#endif

int run_render(const MeshOptions& o) {
  const fs::path out(o.output);
  const bool to_video = is_video_path(out);
#ifndef STUDIO_HAVE_VIDEO
  if (to_video) {
    throw UsageError(
        "video output is not available: a turntable clip needs the video stage (issue #8), which "
        "is not built yet",
        out.string(), "pass a folder to --out to get PNG frames and a contact sheet");
  }
#else
  if (to_video) {
    std::string ext = out.extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext != ".mp4" && ext != ".m4v" && ext != ".mov" && ext != ".mkv")
      throw UsageError("turntable clips are written as MP4, MOV or MKV, not " + ext, out.string(),
                       "use --out NAME.mp4");
    video::parse_fps(o.fps);  // a bad --fps fails before the mesh is imported
  }
#endif
  if (o.size < 16 || o.size > 4096) {
    throw UsageError("--size " + std::to_string(o.size) + " is out of range", "",
                     "use 16 to 4096 pixels");
  }
  if (o.turntable < 1 || o.turntable > 720) {
    throw UsageError("--turntable " + std::to_string(o.turntable) + " is out of range", "",
                     "use 1 to 720 frames");
  }
  const auto up = parse_up(o.up);
  auto t0 = Clock::now();
  mesh::Mesh m = mesh::import_mesh(o.input);
  const double import_s = seconds_since(t0);
  warn(m);
#ifdef STUDIO_HAVE_VIDEO
  if (to_video) return render_clip(o, m, up, import_s);
#endif
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
    throw UsageError("--out exists and is not a folder", out.string(),
                     "pass a folder for the PNG frames");
  }
  fs::create_directories(out);
  mesh::RenderOptions ro;
  ro.up = up;
  t0 = Clock::now();
  auto frames = mesh::turntable(m, o.turntable, o.size, ro, &render_progress, nullptr);
  const double render_s = seconds_since(t0);
  nlohmann::json files = nlohmann::json::array();
  for (size_t i = 0; i < frames.size(); ++i) {
    fs::path f = out / fmt::format("frame_{:04d}.png", i);
    mesh::write_png(frames[i], f);
    files.push_back(f.string());
  }
  const fs::path sheet = out / "contact_sheet.png";
  mesh::write_png(mesh::contact_sheet(frames), sheet);
  files.push_back(sheet.string());
  if (o.views) {
    auto views = mesh::multi_view(m, o.size, ro);
    const fs::path vs = out / "views.png";
    mesh::write_png(mesh::contact_sheet(views, 3), vs);
    files.push_back(vs.string());
  }
  if (!o.no_sidecar) {
    nlohmann::json j = sidecar_base("mesh render", o.input, m);
    j["outputs"] = files;
    j["parameters"] = {{"turntable", o.turntable},
                       {"size", o.size},
                       {"up", o.up},
                       {"views", o.views},
                       {"pitch_deg", ro.pitch_deg},
                       {"fov_deg", ro.fov_deg},
                       {"supersample", ro.supersample}};
    j["timings_s"] = {
        {"import", import_s}, {"render", render_s}, {"per_frame", render_s / frames.size()}};
    write_file_atomic(out / "render.json", j.dump(2) + "\n");
  }
  std::cout << fmt::format("wrote {} frame(s) of {}x{} and {} to {} ({:.3f} s per frame)\n",
                           frames.size(), o.size, o.size, sheet.filename().string(), out.string(),
                           render_s / frames.size());
  return kExitOk;
}

int run_check(const MeshOptions& o) {
  if (!fs::exists(o.input)) throw IoError("file not found", o.input, "check the path");
  auto problems = mesh::check_glb_file(o.input);
  if (problems.empty()) {
    std::cout << o.input << ": valid GLB (structural check passed)\n";
    return kExitOk;
  }
  for (const auto& p : problems) std::cout << o.input << ": " << p << "\n";
  std::cerr << "studio: " << o.input << ": " << problems.size() << " problem(s) found\n";
  return kExitRejected;
}

}  // namespace

void add_mesh_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand(
      "mesh", "3D meshes: inspect, convert, render previews, validate, generate (Point-E)");
  // A sub-command, or none with --model (the short form of `mesh generate`, set up by
  // add_mesh_generate_command).
  cmd->require_subcommand(0, 1);
  auto o = std::make_shared<MeshOptions>();

  auto* info = cmd->add_subcommand("info", "Counts, bounds, materials and textures of a mesh file");
  info->add_option("input", o->input, "mesh file (glTF/GLB, OBJ, PLY, STL, FBX, DAE, ...)")
      ->required();
  info->add_flag("--json", o->json, "print the summary as JSON");
  info->callback([action, o] { *action = [o] { return run_info(*o); }; });

  auto* convert = cmd->add_subcommand(
      "convert", "Convert a mesh file to GLB, OBJ (+MTL, textures) or PLY (by OUT's extension)");
  convert->add_option("input", o->input, "mesh file to read")->required();
  convert->add_option("output", o->output, "file to write: .glb, .obj or .ply")->required();
  convert->add_flag("--normalise,--normalize", o->normalise,
                    "centre the mesh and scale it to unit size");
  convert->add_option("--up", o->up, "the input's up axis: y (default) or z (rotated to Y-up)");
  convert->add_option("--smooth", o->smooth,
                      "Taubin smoothing iterations (lambda 0.5, mu -0.53; default 0)");
  convert->add_option("--simplify", o->simplify,
                      "QEM simplification to this ratio of the faces, in (0, 1] (default off)");
  convert->add_option("--faces", o->faces, "QEM simplification to this many faces");
  convert->add_option("--min-component", o->min_component,
                      "drop parts smaller than F (< 1: fraction of the faces, >= 1: faces)");
  convert->add_flag("--no-sidecar", o->no_sidecar, "do not write OUT.json");
  convert->callback([action, o] { *action = [o] { return run_convert(*o); }; });

  auto* render = cmd->add_subcommand(
      "render", "Render turntable PNG frames and a contact sheet with the software renderer");
  render->add_option("input", o->input, "mesh file to render")->required();
  render->add_option("--turntable", o->turntable, "number of frames over 360 degrees (default 8)");
  render->add_option("--size", o->size, "frame width and height in pixels (default 512)");
#ifdef STUDIO_HAVE_VIDEO
  render->add_option("--out", o->output, "output folder (PNG frames) or a .mp4 turntable clip")
      ->required();
  render->add_option("--fps", o->fps, "frame rate of a .mp4 clip (default 24)");
#else
  render->add_option("--out", o->output, "output folder (video files need issue #8)")->required();
#endif
  render->add_option("--up", o->up, "the input's up axis: y (default) or z");
  render->add_flag("--views", o->views, "also write views.png: six standard views");
  render->add_flag("--no-sidecar", o->no_sidecar, "do not write render.json");
  render->callback([action, o] { *action = [o] { return run_render(*o); }; });

  // `studio mesh generate` (Point-E, mesh_generate_command.cpp).
  add_mesh_generate_command(*cmd, action);

  auto* check = cmd->add_subcommand(
      "check", "Validate a GLB file's structure (exit 4 and a list of problems when invalid)");
  check->add_option("input", o->input, "GLB file")->required();
  check->callback([action, o] { *action = [o] { return run_check(*o); }; });
}

}  // namespace studio
