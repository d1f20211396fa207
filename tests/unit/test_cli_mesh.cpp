// `studio mesh ...` end to end: convert (with clean-up filters) and render a sample, topology in
// `mesh info`, clear failures on bad input.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "mesh/gltf_check.h"
#include "mesh/mesh_io.h"
#include "tests/support/process.h"

using namespace studio::test;
namespace fs = std::filesystem;

TEST_CASE("studio mesh info and convert", "[unit][cli][mesh]") {
  const auto dir = temp_dir("cli_mesh_convert");
  const fs::path duck = data_root() / "meshes" / "duck.dae";
  auto info = run_studio("mesh info " + shell_quote(duck.string()));
  INFO(info.output);
  REQUIRE(info.exit_code == 0);
  CHECK_THAT(info.output, Catch::Contains("triangles") && Catch::Contains("duckCM.tga"));

  const fs::path glb = dir / "duck.glb";
  auto conv = run_studio("mesh convert " + shell_quote(duck.string()) + " " +
                         shell_quote(glb.string()) + " --normalise");
  INFO(conv.output);
  REQUIRE(conv.exit_code == 0);
  REQUIRE(fs::exists(glb));
  const auto side = read_json(glb.string() + ".json");
  CHECK(side["command"] == "mesh convert");
  CHECK(side["input_sha256"].get<std::string>().size() == 64);
  CHECK(side["parameters"]["normalise"] == true);
  CHECK(side["mesh"]["triangles"].get<int>() > 0);

  auto obj = run_studio("mesh convert " + shell_quote(duck.string()) + " " +
                        shell_quote((dir / "duck.obj").string()));
  CHECK(obj.exit_code == 0);
  CHECK(fs::exists(dir / "duck.mtl"));
  CHECK(fs::exists(dir / "duck_tex0.png"));
}

TEST_CASE("studio mesh check and convert refuse bad input", "[unit][cli][mesh]") {
  const auto dir = temp_dir("cli_mesh_check");
  const fs::path duck = data_root() / "meshes" / "duck.dae";
  const fs::path glb = dir / "duck.glb";
  studio::mesh::write_glb(studio::mesh::import_mesh(duck), glb);
  auto check = run_studio("mesh check " + shell_quote(glb.string()));
  CHECK(check.exit_code == 0);
  const std::string bytes = read_file(glb);
  write_file(dir / "cut.glb", bytes.substr(0, bytes.size() / 2));
  auto cut = run_studio("mesh check " + shell_quote((dir / "cut.glb").string()));
  CHECK(cut.exit_code == 4);
  CHECK_THAT(cut.output, Catch::Contains("truncated"));

  auto ply = run_studio("mesh convert " + shell_quote(duck.string()) + " " +
                        shell_quote((dir / "duck.ply").string()) + " --no-sidecar");
  CHECK(ply.exit_code == 0);
  CHECK(!fs::exists(dir / "duck.ply.json"));

  auto bad_ext = run_studio("mesh convert " + shell_quote(duck.string()) + " " +
                            shell_quote((dir / "duck.fbx").string()));
  CHECK(bad_ext.exit_code == 1);
  CHECK_THAT(bad_ext.output, Catch::Contains(".glb, .obj or .ply"));

  const fs::path bad = data_root() / "meshes" / "bad" / "IndexOutOfRange.gltf";
  auto b = run_studio("mesh convert " + shell_quote(bad.string()) + " " +
                      shell_quote((dir / "bad.glb").string()));
  INFO(b.output);
  CHECK(b.exit_code == 1);
  CHECK_THAT(b.output, Catch::Contains("IndexOutOfRange.gltf") && Catch::Contains("index"));
  CHECK(!fs::exists(dir / "bad.glb"));
}

TEST_CASE("studio mesh render writes frames and a contact sheet and a sidecar",
          "[unit][cli][mesh]") {
  const auto dir = temp_dir("cli_mesh_render");
  const fs::path box = data_root() / "meshes" / "BoxTextured.glb";
  auto r = run_studio("mesh render " + shell_quote(box.string()) +
                      " --turntable 3 --size 64 --out " + shell_quote((dir / "tt").string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("rendering frame 3/3"));
  for (const char* f :
       {"frame_0000.png", "frame_0001.png", "frame_0002.png", "contact_sheet.png", "render.json"}) {
    CHECK(fs::exists(dir / "tt" / f));
  }
  const auto side = read_json(dir / "tt" / "render.json");
  CHECK(side["parameters"]["turntable"] == 3);
  CHECK(side["outputs"].size() == 4);

#ifndef STUDIO_HAVE_VIDEO
  auto video = run_studio("mesh render " + shell_quote(box.string()) + " --out " +
                          shell_quote((dir / "spin.mp4").string()));
  CHECK(video.exit_code == 1);
  CHECK_THAT(video.output, Catch::Contains("video stage (issue #8)"));
  CHECK(!fs::exists(dir / "spin.mp4"));
#endif  // with the video stage, tests/unit/test_cli_video.cpp covers MP4 turntables

  const fs::path bad = data_root() / "meshes" / "bad" / "BoxWithInfinites.glb";
  auto b = run_studio("mesh render " + shell_quote(bad.string()) + " --out " +
                      shell_quote((dir / "bad").string()));
  CHECK(b.exit_code == 1);
  CHECK_THAT(b.output, Catch::Contains("BoxWithInfinites.glb") && Catch::Contains("finite"));
}

TEST_CASE("studio mesh convert cleans up meshes and info reports topology", "[unit][cli][mesh]") {
  const auto dir = temp_dir("cli_mesh_filters");
  const fs::path src = data_root() / "meshes" / "WusonOBJ.obj";
  auto info = run_studio("mesh info " + shell_quote(src.string()) + " --json");
  INFO(info.output);
  REQUIRE(info.exit_code == 0);
  const auto summary = nlohmann::json::parse(info.output.substr(info.output.find('{')));
  const size_t faces = summary["triangles"].get<size_t>();
  CHECK(summary["topology"]["faces"] == faces);
  CHECK(summary["topology"].contains("boundary_edges"));
  auto text = run_studio("mesh info " + shell_quote(src.string()));
  CHECK_THAT(text.output, Catch::Contains("topology:") && Catch::Contains("Euler"));

  const fs::path glb = dir / "wuson.glb";
  auto conv =
      run_studio("mesh convert " + shell_quote(src.string()) + " " + shell_quote(glb.string()) +
                 " --normalise --smooth 3 --simplify 0.5 --min-component 0.001");
  INFO(conv.output);
  REQUIRE(conv.exit_code == 0);
  CHECK_THAT(conv.output, Catch::Contains("filters: " + std::to_string(faces) + " -> "));
  CHECK(studio::mesh::check_glb_file(glb).empty());
  const auto side = read_json(glb.string() + ".json");
  const auto& f = side["filters"];
  CHECK(f["faces_before"] == faces);
  CHECK(f["faces_after"].get<size_t>() < faces);
  CHECK(f["smooth"]["iterations"] == 3);
  CHECK(f["simplify"]["target_faces"] == (faces + 1) / 2);
  CHECK(f["hausdorff_estimate"].get<double>() > 0);
  CHECK(f["hausdorff_estimate"].get<double>() < 0.1);  // of a unit-size (normalised) model
  CHECK(side["parameters"]["smooth"] == 3);
  const auto back = studio::mesh::import_mesh(glb);
  CHECK(back.triangle_count() == f["faces_after"].get<size_t>());
  CHECK(side["output_mesh"]["triangles"] == back.triangle_count());

  // --faces N: a face count instead of a ratio.
  const fs::path ply = dir / "wuson.ply";
  auto by_count = run_studio("mesh convert " + shell_quote(src.string()) + " " +
                             shell_quote(ply.string()) + " --faces 500");
  INFO(by_count.output);
  REQUIRE(by_count.exit_code == 0);
  const auto side2 = read_json(ply.string() + ".json");
  CHECK(side2["filters"]["simplify"]["target_faces"] == 500);
  CHECK(side2["filters"]["faces_after"].get<size_t>() <= 500);
  CHECK(!side2["filters"].contains("smooth"));

  // Bad options fail before anything is written.
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {" --simplify 1.5", "ratio in (0, 1]"},
           {" --simplify 0.5 --faces 100", "not both"},
           {" --smooth -2", "--smooth"},
           {" --min-component -1", "--min-component"}}) {
    const fs::path out = dir / "bad.glb";
    auto bad = run_studio("mesh convert " + shell_quote(src.string()) + " " +
                          shell_quote(out.string()) + args);
    INFO(args << ": " << bad.output);
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.output, Catch::Contains(message));
    CHECK(!fs::exists(out));
  }
}
