// Resource limits (core/limits.h, issue #11) on media files and the image pipeline's checkpoints:
// the image, video and mesh readers take their default limits from STUDIO_LIMIT_* (their option
// structs still override them), and refuse with the file and the variable named; sd-tiny's
// weights are refused before any tensor is allocated when memory is short. Core and job limits:
// test_limits.cpp. Needs the image, video and mesh stages (tests/CMakeLists.txt).
#include "tests/support/fixtures.h"  // ATen first (its glog CHECK before Catch's)

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/limits.h"
#include "image/image_io.h"
#include "image/unet.h"
#include "mesh/mesh_io.h"
#include "tests/support/expect_error.h"
#include "tests/support/process.h"
#include "video/video_io.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

// The process's limits with one member changed, for a scope.
ResourceLimits with(int64_t ResourceLimits::*member, int64_t value) {
  ResourceLimits l = resource_limits();
  l.*member = value;
  return l;
}

fs::path photo() { return test::data_root() / "photos" / "coffee.png"; }
fs::path clip() { return test::data_root() / "video" / "big_buck_bunny_480p_30s.mp4"; }
fs::path sphere() { return test::data_root() / "meshes" / "sphere.dae"; }

test::ProcessResult studio_with_env(const std::string& env, const std::string& args) {
  return test::run_command(env + " " + test::shell_quote(test::studio_exe().string()) + " " + args);
}

}  // namespace

TEST_CASE("limits: image pixels from STUDIO_LIMIT_IMAGE_PIXELS", "[unit][limits]") {
  const image::Image ok = image::read_image(photo());
  const int64_t pixels = int64_t{ok.width} * ok.height;
  {
    ScopedResourceLimits scope(with(&ResourceLimits::image_pixels, pixels - 1));
    const FormatError e = test::caught<FormatError>([] { image::read_image(photo()); });
    CHECK(e.where() == photo().string());
    CHECK_THAT(e.what_failed(),
               Catch::Contains(std::to_string(ok.width) + "x" + std::to_string(ok.height)) &&
                   Catch::Contains("STUDIO_LIMIT_IMAGE_PIXELS") &&
                   Catch::Contains("before decoding"));
    // An explicit option still overrides the process's limit.
    image::ImageReadOptions o;
    o.max_pixels = pixels;
    CHECK(image::read_image(photo(), o).width == ok.width);
  }
  ScopedResourceLimits exact(with(&ResourceLimits::image_pixels, pixels));
  CHECK_NOTHROW(image::read_image(photo()));

  // Through the environment: `studio edit` refuses the photo before it loads any model.
  const std::string out = (test::temp_dir("limits_image") / "out.png").string();
  const auto r = studio_with_env("STUDIO_LIMIT_IMAGE_PIXELS=100",
                                 "edit --model /nonexistent-model --image " +
                                     test::shell_quote(photo().string()) + " --prompt x --out " +
                                     test::shell_quote(out));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains(photo().string()) &&
                           Catch::Contains("over the limit of 100 px") &&
                           Catch::Contains("STUDIO_LIMIT_IMAGE_PIXELS"));
  CHECK_THAT(r.output, !Catch::Contains("loading"));
}

TEST_CASE("limits: video frames, seconds and frame size from STUDIO_LIMIT_VIDEO_*",
          "[unit][limits]") {
  SECTION("frame size") {
    ScopedResourceLimits scope(with(&ResourceLimits::video_side, 480));  // the clip is 854x480
    const FormatError e = test::caught<FormatError>([] { video::VideoReader reader(clip()); });
    CHECK(e.where() == clip().string());
    CHECK_THAT(e.what_failed(),
               Catch::Contains("854x480") && Catch::Contains("STUDIO_LIMIT_VIDEO_SIDE"));
    video::ReaderOptions o;  // explicit limits still override
    o.limits.max_width = 854;
    CHECK(video::VideoReader(clip(), o).info().width == 854);
  }
  SECTION("frames") {
    ScopedResourceLimits scope(with(&ResourceLimits::video_frames, 2));
    video::VideoReader reader(clip());
    video::Frame f;
    CHECK(reader.read(f));
    CHECK(reader.read(f));
    const FormatError e = test::caught<FormatError>([&] { reader.read(f); });
    CHECK_THAT(e.what_failed(), Catch::Contains("STUDIO_LIMIT_VIDEO_FRAMES"));
    CHECK(e.where() == clip().string());
  }
  SECTION("seconds") {
    ScopedResourceLimits scope(with(&ResourceLimits::video_seconds, 10));  // the clip is 30 s
    const UsageError e = test::caught<UsageError>([] { video::VideoReader reader(clip()); });
    CHECK_THAT(e.what_failed(), Catch::Contains("STUDIO_LIMIT_VIDEO_SECONDS"));
    video::ReaderOptions o;
    o.duration_s = 5;
    CHECK_NOTHROW(video::VideoReader(clip(), o));
  }
  SECTION("the writer") {
    ScopedResourceLimits scope(with(&ResourceLimits::video_frames, 2));
    const fs::path out = test::temp_dir("limits_video") / "short.mp4";
    video::WriterOptions o;
    o.width = o.height = 16;
    video::VideoWriter writer(out, o);
    std::vector<uint8_t> rgb(16 * 16 * 3, 128);
    writer.write(rgb.data(), 16, 16, 48);
    writer.write(rgb.data(), 16, 16, 48);
    const UsageError e = test::caught<UsageError>([&] { writer.write(rgb.data(), 16, 16, 48); });
    CHECK_THAT(e.what_failed(), Catch::Contains("STUDIO_LIMIT_VIDEO_FRAMES"));
  }
}

TEST_CASE("limits: mesh vertices, faces and file size from STUDIO_LIMIT_MESH_*", "[unit][limits]") {
  const mesh::Mesh ok = mesh::import_mesh(sphere());
  {
    ScopedResourceLimits scope(with(&ResourceLimits::mesh_vertices, 10));
    const FormatError e = test::caught<FormatError>([] { mesh::import_mesh(sphere()); });
    CHECK(e.where() == sphere().string());
    CHECK_THAT(e.what_failed(), Catch::Contains("STUDIO_LIMIT_MESH_VERTICES"));
    mesh::MeshLimits explicit_limits;  // constructed here: takes the process's limit
    CHECK(explicit_limits.max_vertices == 10);
    explicit_limits.max_vertices = 20'000'000;
    CHECK(mesh::import_mesh(sphere(), explicit_limits).vertex_count() == ok.vertex_count());
  }
  {
    ScopedResourceLimits scope(with(&ResourceLimits::mesh_faces, 10));
    CHECK_THROWS_WITH(mesh::import_mesh(sphere()), Catch::Contains("STUDIO_LIMIT_MESH_FACES"));
  }
  {
    ScopedResourceLimits scope(with(&ResourceLimits::mesh_file_bytes, 100));
    CHECK_THROWS_WITH(
        mesh::import_mesh(sphere()),
        Catch::Contains("STUDIO_LIMIT_MESH_FILE_BYTES") && Catch::Contains(sphere().string()));
  }
  const auto r = studio_with_env("STUDIO_LIMIT_MESH_VERTICES=10",
                                 "mesh info " + test::shell_quote(sphere().string()));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output,
             Catch::Contains(sphere().string()) && Catch::Contains("STUDIO_LIMIT_MESH_VERTICES"));
  CHECK(studio_with_env("", "mesh info " + test::shell_quote(sphere().string())).exit_code == 0);
}

TEST_CASE("limits: sd-tiny's weights refused before allocation when memory is short",
          "[unit][limits]") {
  const CheckpointInfo info = inspect_checkpoint(test::fixtures_root() / "sd-tiny");
  const ComponentInfo& unet = find_component(info, "unet");
  const uint64_t needed = materialised_bytes(StateDict::open(unet.weight_files));
  CHECK(needed > 0);
  int calls = 0;
  const MemoryProbe previous = set_memory_probe([&] {
    ++calls;
    return AvailableMemory{needed, "a test's fake probe"};
  });
  {
    // 90% of exactly what the UNet needs: refused, naming the folder, bytes and variable.
    const WeightsError e = test::caught<WeightsError>([&] { image::load_unet(unet); });
    CHECK(calls == 1);
    CHECK(e.where() == unet.dir.string());
    CHECK_THAT(e.what_failed(), Catch::Contains("needs " + format_bytes(needed)) &&
                                    Catch::Contains("STUDIO_LIMIT_CHECKPOINT_MEMORY_PERCENT") &&
                                    Catch::Contains("refused before allocating"));
    // At 100% it fits.
    ScopedResourceLimits scope(with(&ResourceLimits::checkpoint_memory_percent, 100));
    CHECK_NOTHROW(image::load_unet(unet));
  }
  set_memory_probe(previous);
  CHECK_NOTHROW(image::load_unet(unet));
}
