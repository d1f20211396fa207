// Mesh I/O: every sample imports and round-trips through GLB / OBJ / PLY with its counts and
// textures, every bad file fails with a message naming the file and the problem, and the GLB
// validator catches deliberately corrupted files.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "mesh/gltf_check.h"
#include "mesh/mesh_io.h"
#include "tests/support/expect_error.h"

using namespace studio::test;
namespace fs = std::filesystem;
namespace sm = studio::mesh;

namespace {

fs::path meshes() { return data_root() / "meshes"; }

const char* kSamples[] = {"BoxTextured.glb", "duck.dae",     "sphere.dae",
                          "cube.ply",        "WusonOBJ.obj", "Spider_binary.stl"};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

bool has_texture(const sm::Mesh& m) {
  for (const auto& mat : m.materials) {
    if (mat.base_color_texture >= 0 && m.textures.at(mat.base_color_texture).decoded()) return true;
  }
  return false;
}

// A GLB's JSON chunk, edited by `edit`, written back with the same BIN chunk.
std::string edit_glb_json(const std::string& glb,
                          const std::function<void(nlohmann::json&)>& edit) {
  uint32_t jlen;
  std::memcpy(&jlen, glb.data() + 12, 4);
  auto j = nlohmann::json::parse(glb.substr(20, jlen));
  edit(j);
  std::string js = j.dump();
  while (js.size() % 4) js.push_back(' ');
  std::string rest = glb.substr(20 + jlen);
  std::string out = glb.substr(0, 12);
  uint32_t n = static_cast<uint32_t>(js.size());
  out.append(reinterpret_cast<const char*>(&n), 4);
  out.append("JSON", 4);
  out += js + rest;
  uint32_t total = static_cast<uint32_t>(out.size());
  std::memcpy(&out[8], &total, 4);
  return out;
}

}  // namespace

TEST_CASE("mesh samples import and round-trip through GLB and OBJ and PLY", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_roundtrip");
  for (const char* name : kSamples) {
    INFO(name);
    const sm::Mesh m = sm::import_mesh(meshes() / name);
    CHECK(m.vertex_count() > 0);
    CHECK(m.triangle_count() > 0);
    CHECK(sm::validate_mesh(m).empty());
    const std::string stem = fs::path(name).stem().string();

    const fs::path glb = dir / (stem + ".glb");
    sm::write_glb(m, glb);
    const auto problems = sm::check_glb_file(glb);
    INFO(joined(problems));
    CHECK(problems.empty());
    const sm::Mesh g = sm::import_mesh(glb);
    CHECK(g.vertex_count() == m.vertex_count());
    CHECK(g.triangle_count() == m.triangle_count());
    CHECK(g.textures.size() == m.textures.size());
    CHECK(has_texture(g) == has_texture(m));

    const fs::path obj = dir / (stem + ".obj");
    sm::write_obj(m, obj);
    const sm::Mesh o = sm::import_mesh(obj);
    CHECK(o.triangle_count() == m.triangle_count());
    CHECK(o.vertex_count() == m.vertex_count());
    CHECK(has_texture(o) == has_texture(m));

    const fs::path ply = dir / (stem + ".ply");
    sm::write_ply(m, ply);
    const sm::Mesh p = sm::import_mesh(ply);
    CHECK(p.triangle_count() == m.triangle_count());
    CHECK(p.vertex_count() <= m.vertex_count());  // identical vertices of two sub-meshes merge
    CHECK(p.vertex_count() >= m.vertex_count() * 9 / 10);
  }
}

TEST_CASE("mesh textured samples keep their textures", "[unit][mesh]") {
  const sm::Mesh box = sm::import_mesh(meshes() / "BoxTextured.glb");
  REQUIRE(box.textures.size() == 1);
  CHECK(box.textures[0].mime_type == "image/png");
  CHECK(box.textures[0].width > 0);
  REQUIRE(!box.submeshes.empty());
  CHECK(!box.submeshes[0].uvs.empty());

  const sm::Mesh duck = sm::import_mesh(meshes() / "duck.dae");
  REQUIRE(duck.textures.size() == 1);
  CHECK(duck.textures[0].name == "duckCM.tga");
  CHECK(duck.textures[0].mime_type == "image/x-tga");
  CHECK(duck.textures[0].width == 512);
  CHECK(duck.textures[0].height == 512);
  CHECK(duck.warnings.empty());

  // The TGA is re-encoded as PNG inside the GLB, with the same pixels.
  const auto dir = temp_dir("mesh_textures");
  sm::write_glb(duck, dir / "duck.glb");
  const sm::Mesh again = sm::import_mesh(dir / "duck.glb");
  REQUIRE(again.textures.size() == 1);
  CHECK(again.textures[0].mime_type == "image/png");
  CHECK(again.textures[0].rgba == duck.textures[0].rgba);
}

TEST_CASE("mesh import warns about a missing external texture", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_missing_texture");
  fs::copy_file(meshes() / "duck.dae", dir / "duck.dae");
  const sm::Mesh m = sm::import_mesh(dir / "duck.dae");
  CHECK(m.textures.empty());
  REQUIRE(m.warnings.size() == 1);
  CHECK_THAT(m.warnings[0], Catch::Contains("duckCM.tga") && Catch::Contains("not found"));
}

TEST_CASE("mesh bad files fail with a clear error", "[unit][mesh]") {
  struct Case {
    const char* file;
    const char* problem;
  };
  const Case cases[] = {{"BoxWithInfinites.glb", "not a finite number"},
                        {"IndexOutOfRange.gltf", "index"},
                        {"invalid.off", "4 faces"}};
  for (const auto& c : cases) {
    INFO(c.file);
    const fs::path path = meshes() / "bad" / c.file;
    std::string message;
    try {
      sm::import_mesh(path);
      FAIL("imported a bad file");
    } catch (const studio::FormatError& e) {
      message = e.what();
    }
    INFO(message);
    CHECK_THAT(message, Catch::Contains(c.file));
    CHECK_THAT(message, Catch::Contains(c.problem));
  }
  // Every file in bad/ is covered above (or is a companion .bin).
  for (const auto& entry : fs::directory_iterator(meshes() / "bad")) {
    const std::string f = entry.path().filename().string();
    if (entry.path().extension() == ".bin") continue;
    bool covered = false;
    for (const auto& c : cases) covered |= f == c.file;
    CHECK(covered);
  }
  // Missing, empty and unsupported inputs.
  CHECK_THROWS_AS(sm::import_mesh(meshes() / "no-such.glb"), studio::IoError);
  const auto dir = temp_dir("mesh_bad_inputs");
  write_file(dir / "empty.obj", "");
  CHECK_THROWS_WITH(sm::import_mesh(dir / "empty.obj"), Catch::Contains("empty"));
  write_file(dir / "notes.xyz123", "hello");
  CHECK_THROWS_WITH(sm::import_mesh(dir / "notes.xyz123"), Catch::Contains("unsupported"));
  write_file(dir / "garbage.glb", std::string(100, 'x'));
  CHECK_THROWS_AS(sm::import_mesh(dir / "garbage.glb"), studio::FormatError);
  write_file(dir / "lines.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2\nl 2 3\n");
  CHECK_THROWS_WITH(sm::import_mesh(dir / "lines.obj"), Catch::Contains("no triangles"));
  write_file(dir / "nan.obj", "v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n");
  CHECK_THROWS_WITH(sm::import_mesh(dir / "nan.obj"), Catch::Contains("not a finite number"));
  write_file(dir / "index.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n");
  CHECK_THROWS_WITH(sm::import_mesh(dir / "index.obj"), Catch::Contains("index out of range"));
  sm::MeshLimits tight;
  tight.max_vertices = 10;
  CHECK_THROWS_WITH(sm::import_mesh(meshes() / "sphere.dae", tight),
                    Catch::Contains("more than 10 vertices"));
}

TEST_CASE("mesh normalise centres and scales and turns Z-up into Y-up", "[unit][mesh]") {
  sm::Mesh m = sm::import_mesh(meshes() / "Spider_binary.stl");
  sm::normalise(m);
  auto b = m.bounds();
  float extent = 0;
  for (int k = 0; k < 3; ++k) {
    CHECK(std::abs(b.min[k] + b.max[k]) < 1e-4f);
    extent = std::max(extent, b.max[k] - b.min[k]);
  }
  CHECK(extent == Approx(1.0f).epsilon(1e-5));

  sm::Mesh tall;
  tall.submeshes.resize(1);
  tall.submeshes[0].positions = {{0, 0, 0}, {1, 0, 0}, {0, 0, 4}};
  tall.submeshes[0].indices = {0, 1, 2};
  sm::NormaliseOptions z;
  z.up = sm::UpAxis::kZ;
  sm::normalise(tall, z);
  b = tall.bounds();
  CHECK(b.max[1] - b.min[1] == Approx(1.0f));  // the long Z side is now Y
  CHECK(b.max[2] - b.min[2] == Approx(0.0f).margin(1e-6));
}

TEST_CASE("mesh gltf_check catches corrupted GLB files", "[unit][mesh]") {
  const sm::Mesh m = sm::import_mesh(meshes() / "BoxTextured.glb");
  const std::string good = sm::glb_bytes(m);
  REQUIRE(sm::check_glb(good).empty());
  // The Khronos sample passes too; the bad .gltf's out-of-range index is found in its .bin.
  CHECK(sm::check_glb_file(meshes() / "BoxTextured.glb").empty());
  CHECK_THAT(joined(sm::check_gltf_file(meshes() / "bad" / "IndexOutOfRange.gltf")),
             Catch::Contains("index 255 at position 0 is out of range"));

  auto expect = [](const std::string& bytes, const std::string& needle) {
    const auto problems = sm::check_glb(bytes);
    INFO(joined(problems));
    REQUIRE(!problems.empty());
    CHECK_THAT(joined(problems), Catch::Contains(needle));
  };
  expect(good.substr(0, good.size() - 100), "truncated");
  expect(good.substr(0, 8), "shorter than the 12-byte GLB header");
  expect("PK\3\4" + good.substr(4), "magic");
  expect(edit_glb_json(good, [](nlohmann::json& j) { j["asset"]["version"] = "1.0"; }),
         "asset.version");
  expect(edit_glb_json(good,
                       [](nlohmann::json& j) {
                         int pos = j["meshes"][0]["primitives"][0]["attributes"]["POSITION"];
                         j["accessors"][pos]["count"] = j["accessors"][pos]["count"].get<int>() + 5;
                       }),
         "exceeds bufferViews");
  expect(edit_glb_json(good,
                       [](nlohmann::json& j) {
                         int uv = j["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"];
                         j["accessors"][uv]["count"] = j["accessors"][uv]["count"].get<int>() - 1;
                       }),
         "has 23 elements");
  expect(edit_glb_json(good,
                       [](nlohmann::json& j) {
                         int pos = j["meshes"][0]["primitives"][0]["attributes"]["POSITION"];
                         j["accessors"][pos]["max"][0] = 7.0;
                       }),
         "differ from the data");
  expect(edit_glb_json(good,
                       [](nlohmann::json& j) {
                         int pos = j["meshes"][0]["primitives"][0]["attributes"]["POSITION"];
                         j["accessors"][pos].erase("min");
                         j["accessors"][pos].erase("max");
                       }),
         "min and max are required");
  expect(edit_glb_json(good,
                       [](nlohmann::json& j) {
                         j["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"] = 9;
                       }),
         "not a valid index into textures");
  expect(edit_glb_json(good, [](nlohmann::json& j) { j["accessors"][0]["componentType"] = 1234; }),
         "componentType");
  expect(
      edit_glb_json(good, [](nlohmann::json& j) { j["bufferViews"][0]["byteLength"] = 1 << 20; }),
      "exceeds buffers[0]");
  // An index out of range: a vertex count lowered below the largest index.
  sm::Mesh broken = m;
  broken.submeshes[0].indices[5] = 1000;
  expect(sm::glb_bytes(broken), "out of range");
  expect(std::string("{\"asset\":1}"), "shorter than");
  // Broken JSON.
  std::string bad_json = good;
  bad_json[20] = '[';
  expect(bad_json, "does not parse");
}

TEST_CASE("mesh unknown output extensions are refused", "[unit][mesh]") {
  CHECK_THROWS_AS(sm::mesh_format_from_path("x.fbx"), studio::UsageError);
  CHECK(sm::mesh_format_from_path("X.GLB") == sm::MeshFormat::kGlb);
}

// Found by tests/fuzz/fuzz_mesh_import: Assimp's PLY reader looped forever on a header without
// end_header. It is refused before Assimp reads it; the same file with the line imports.
TEST_CASE("a PLY header without end_header is refused", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_ply_no_end_header");
  const std::string header =
      "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
      "property float z\nelement face 1\nproperty list uchar int vertex_indices\n";
  const std::string body = "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n";
  write_file(dir / "open.ply", header + body);
  std::string message;
  try {
    sm::import_mesh(dir / "open.ply");
  } catch (const studio::FormatError& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains("open.ply") && Catch::Contains("end_header"));
  write_file(dir / "closed.ply", header + "end_header\n" + body);
  CHECK(sm::import_mesh(dir / "closed.ply").triangle_count() == 1);
}

// Found by tests/fuzz/fuzz_mesh_import: Assimp's COLLADA reader appends zeros forever at a
// character that starts no number in an index list (a 796-byte file grew to 12 GB), and reserves
// whatever count="N" says. Both are refused before Assimp reads the file; the same triangle with a
// clean index list and honest counts imports.
TEST_CASE("COLLADA index lists with stray characters and impossible counts are refused",
          "[unit][mesh]") {
  const auto dir = temp_dir("mesh_collada_checks");
  const auto dae = [](const std::string& float_count, const std::string& indices) {
    return R"(<?xml version="1.0"?><COLLADA xmlns="http://www.collada.org/2005/11/COLLADASchema" )"
           R"(version="1.4.1"><library_geometries><geometry id="g"><mesh><source id="p">)"
           R"(<float_array id="pa" count=")" +
           float_count +
           R"(">0 0 0 1 0 0 0 1 0</float_array><technique_common><accessor source="#pa" )"
           R"(count="3" stride="3"><param name="X" type="float"/><param name="Y" type="float"/>)"
           R"(<param name="Z" type="float"/></accessor></technique_common></source>)"
           R"(<vertices id="v"><input semantic="POSITION" source="#p"/></vertices>)"
           R"(<triangles count="1"><input semantic="VERTEX" source="#v" offset="0"/><p>)" +
           indices +
           R"(</p></triangles></mesh></geometry></library_geometries><library_visual_scenes>)"
           R"(<visual_scene id="s"><node><instance_geometry url="#g"/></node></visual_scene>)"
           R"(</library_visual_scenes><scene><instance_visual_scene url="#s"/></scene></COLLADA>)";
  };
  write_file(dir / "good.dae", dae("9", "0 1 2"));
  CHECK(sm::import_mesh(dir / "good.dae").triangle_count() == 1);

  write_file(dir / "stray.dae", dae("9", "0 )1 2"));
  const auto stray =
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "stray.dae"); });
  CHECK_THAT(stray, Catch::Contains("stray.dae") && Catch::Contains("<p>") &&
                        Catch::Contains("')'") && Catch::Contains("re-export"));

  write_file(dir / "count.dae", dae("4000000000", "0 1 2"));
  const auto count =
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "count.dae"); });
  CHECK_THAT(count, Catch::Contains("count.dae") && Catch::Contains("count=\"4000000000\""));

  write_file(dir / "negative.dae", dae("-1", "0 1 2"));
  CHECK_THAT(
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "negative.dae"); }),
      Catch::Contains("count=\"-1\""));

  write_file(dir / "zipped.zae", "PK");
  CHECK_THAT(
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "zipped.zae"); }),
      Catch::Contains("unzip"));
}

// Found by tests/fuzz/fuzz_mesh_import (UBSan): an OFF header whose vertex count is past LONG_MAX
// overflowed the check that compares the counts with the lines that follow.
TEST_CASE("OFF counts too large for a long are refused without overflow", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_off_huge_counts");
  const std::string body = "0 0 0\n1 0 0\n1 1 0\n0 1 0\n3 0 1 2\n3 0 2 3\n";
  write_file(dir / "huge.off", "OFF\n" + std::string(120, '5') + " 2 0\n" + body);
  CHECK_THAT(
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "huge.off"); }),
      Catch::Contains("huge.off") && Catch::Contains("vertex count"));
  write_file(dir / "max.off", "OFF\n9223372036854775807 2 0\n" + body);
  CHECK_THAT(studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "max.off"); }),
             Catch::Contains("max.off") && Catch::Contains("data lines follow"));
  write_file(dir / "face.off",
             "OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n9223372036854775807 0 1 2\n");
  CHECK_THAT(
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "face.off"); }),
      Catch::Contains("face.off") && Catch::Contains("declares 9223372036854775807"));
}

// Found by tests/fuzz/fuzz_mesh_import: a number too large for a double makes nlohmann's parser
// throw out_of_range (not parse_error), which escaped the glTF check and ended the process.
TEST_CASE("glTF JSON with a number too large for a double is refused", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_gltf_number_overflow");
  write_file(dir / "big.gltf", "{\n    \"assgt\":3e333333r");
  CHECK_THAT(
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "big.gltf"); }),
      Catch::Contains("big.gltf") && Catch::Contains("number overflow"));
  CHECK_THAT(joined(sm::check_gltf("{\"asset\":{\"version\":\"2.0\"},\"x\":1e999}", dir)),
             Catch::Contains("does not parse") && Catch::Contains("number overflow"));
}

// Found by tests/fuzz/fuzz_mesh_import: glTF values of an unforeseen JSON type reached nlohmann's
// value<int>() (a componentType of 8.9e127 cast to int: undefined behaviour) or threw type_error
// (`studio mesh info` said "internal error"). Each is now a problem of the file.
TEST_CASE("glTF values of the wrong JSON type are problems of the file", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_gltf_wrong_types");
  const std::string head = R"({"asset": {"version": "2.0"}, )";
  const std::string buffers =
      R"("buffers": [{"byteLength": 12, "uri": "data:application/octet-stream;base64,)"
      R"(AAAAAAAAAAAAAAAA"}], "bufferViews": [{"buffer": 0, "byteLength": 12}], )";
  auto problems = [&](const std::string& accessors) {
    return joined(sm::check_gltf(head + buffers + R"("accessors": )" + accessors + "}", dir));
  };
  CHECK_THAT(problems(R"([{"bufferView": 0, "componentType": 8.9e127, "count": 1,)"
                      R"( "type": "VEC3"}])"),
             Catch::Contains("componentType 8.9e+127 is not one of"));
  CHECK_THAT(problems("[5]"), Catch::Contains("accessors[0]: componentType missing"));
  CHECK_THAT(problems(R"([{"componentType": 5126, "type": 5, "count": 1}])"),
             Catch::Contains("type '' is not SCALAR"));
  CHECK_THAT(problems(R"([{"bufferView": 0, "componentType": 5126, "type": "VEC3",)"
                      R"( "count": 9000000000000000000}])"),
             Catch::Contains("more than 2^63 bytes"));
  CHECK_THAT(problems(R"([{"bufferView": 0, "componentType": 5126, "type": "VEC3", "count": 1,)"
                      R"( "byteOffset": 1e300}])"),
             Catch::Contains("byteOffset is negative or not an integer"));
  CHECK_THAT(problems(R"([{"bufferView": 0, "componentType": 5126, "type": "VEC3", "count": 1,)"
                      R"( "min": ["a", 0, 0], "max": [0, 0, 0]}])"),
             Catch::Contains("min/max must be arrays of 3 numbers"));
  // The fuzzer's input: refused as a FormatError naming the file, nothing else escapes.
  const auto found = fs::path(studio::test::source_dir()) /
                     "tests/fuzz/corpus/mesh_import/ubsan-gltf-component-type-float.gltf";
  CHECK_THAT(studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(found); }),
             Catch::Contains("component-type-float.gltf") && Catch::Contains("componentType"));
  write_file(dir / "number.gltf", head + R"("accessors": [5]})");
  CHECK_THAT(
      studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / "number.gltf"); }),
      Catch::Contains("number.gltf") && Catch::Contains("accessors[0]"));
}

// Found by tests/fuzz/fuzz_mesh_import: Assimp 5's PLY reader sizes an element from its declared
// count and a list from its count before reading them; one ASCII face line "2000000000 0 1 2"
// took studio to 15.8 GB. The header is read by the spec and the body walked first.
TEST_CASE("PLY counts the file cannot hold are refused before Assimp reads it", "[unit][mesh]") {
  const auto dir = temp_dir("mesh_ply_counts");
  const std::string head =
      "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
      "property float y\nproperty float z\nelement face 1\n"
      "property list uchar int vertex_indices\nend_header\n";
  const std::string vertices = "0 0 0\n1 0 0\n0 1 0\n";
  auto refused = [&](const std::string& name, const std::string& text) {
    write_file(dir / name, text);
    return studio::test::error_of<studio::FormatError>([&] { sm::import_mesh(dir / name); });
  };
  CHECK_THAT(refused("list.ply", head + vertices + "2000000000 0 1 2\n"),
             Catch::Contains("list.ply") && Catch::Contains("'face' #0 (line 13)") &&
                 Catch::Contains("declares 2000000000 items, but the line holds 3 more values"));
  std::string many = head;
  many.replace(many.find("vertex 3"), 8, "vertex 2000000000");
  CHECK_THAT(refused("many.ply", many + vertices + "3 0 1 2\n"),
             Catch::Contains("'vertex' declares 2000000000 instances"));
  CHECK_THAT(refused("short.ply", head + vertices),
             Catch::Contains("'face' #0: the file ends first"));
  CHECK_THAT(refused("blank.ply", head + "0 0 0\n\n1 0 0\n0 1 0\n3 0 1 2\n"),
             Catch::Contains("an empty line"));
  std::string typo = head;
  typo.replace(typo.find("float z"), 7, "fLoat z");
  CHECK_THAT(refused("type.ply", typo + vertices + "3 0 1 2\n"),
             Catch::Contains("header line 6: 'fLoat' is not a PLY type"));
  // Binary: a uint list count of 0xffffffff after three vertices.
  std::string bin = head;
  bin.replace(bin.find("ascii"), 5, "binary_little_endian");
  bin.replace(bin.find("list uchar"), 10, "list uint");
  bin += std::string(36, '\0') + std::string("\xff\xff\xff\xff", 4) + std::string(12, '\0');
  CHECK_THAT(
      refused("bin.ply", bin),
      Catch::Contains("the list 'vertex_indices' declares 4294967295 items, more than the 12"));
  // The fuzzer's input.
  const auto found = fs::path(studio::test::source_dir()) /
                     "tests/fuzz/corpus/mesh_import/oom-ply-ascii-list-count.ply";
  CHECK_THROWS_AS(sm::import_mesh(found), studio::FormatError);
  // A well-formed file in each encoding still imports (the binary one as write_ply writes it).
  write_file(dir / "good.ply", head + vertices + "3 0 1 2\n");
  CHECK(sm::import_mesh(dir / "good.ply").triangle_count() == 1);
  sm::write_ply(sm::import_mesh(dir / "good.ply"), dir / "good_bin.ply");
  CHECK(sm::import_mesh(dir / "good_bin.ply").triangle_count() == 1);
}
