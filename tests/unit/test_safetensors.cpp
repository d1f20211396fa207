// safetensors reader/writer: round trips, zero-copy views, and every kind of corrupt header.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/tensor_io.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

// A file image with the given header text and `data_bytes` zero bytes of data.
std::string image(const std::string& header, std::size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s + header + std::string(data_bytes, '\0');
}

SafetensorsHeader parse(const std::string& img) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(img.data()), img.size(),
                                  img.size(), "test.safetensors");
}

std::string parse_error(const std::string& img) {
  try {
    parse(img);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors writer output is read back bit for bit", "[unit][safetensors]") {
  const auto dir = test::temp_dir("safetensors_roundtrip");
  const fs::path file = dir / "t.safetensors";
  at::Tensor f32 = at::randn({3, 5});
  at::Tensor f16 = at::randn({7}).to(at::kHalf);
  at::Tensor bf16 = at::randn({2, 2, 2}).to(at::kBFloat16);
  at::Tensor i64 = at::arange(10, at::kLong).reshape({2, 5});
  at::Tensor i32 = at::arange(4, at::kInt);
  at::Tensor u8 = at::arange(6, at::kByte);
  at::Tensor b = at::tensor({1, 0, 1}, at::kByte).to(at::kBool);
  at::Tensor empty = at::empty({0, 4});
  at::Tensor scalar = at::scalar_tensor(3.5);
  save_safetensors(file,
                   {{"w.f32", f32}, {"w.f16", f16}, {"w.bf16", bf16}, {"ids", i64}, {"i32", i32},
                    {"u8", u8}, {"mask", b}, {"empty", empty}, {"scalar", scalar.to(at::kFloat)}},
                   {{"format", "pt"}});

  SafetensorsFile st(file);
  CHECK(st.tensors().size() == 9);
  CHECK(st.metadata().at("format") == "pt");
  auto get = [&](const std::string& n) { return tensor_view(st, *st.find(n)); };
  CHECK(at::equal(get("w.f32"), f32));
  CHECK(at::equal(get("w.f16"), f16));
  CHECK(at::equal(get("w.bf16"), bf16));
  CHECK(at::equal(get("ids"), i64));
  CHECK(at::equal(get("i32"), i32));
  CHECK(at::equal(get("u8"), u8));
  CHECK(at::equal(get("mask"), b));
  CHECK(get("empty").sizes() == empty.sizes());
  CHECK(get("scalar").dim() == 0);
  CHECK(get("scalar").item<float>() == 3.5f);
  CHECK(st.find("absent") == nullptr);

  // Header is 8-byte aligned. Tensors are packed without padding (the format forbids gaps), so
  // "w.f32" sits after odd-sized bool/u8 data: a misaligned view must be copied, not aliased.
  const std::string bytes = test::read_file(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  CHECK(n % 8 == 0);
  const auto* info = st.find("w.f32");
  REQUIRE(reinterpret_cast<uintptr_t>(st.bytes(*info)) % 4 != 0);
  CHECK(get("w.f32").data_ptr() != static_cast<const void*>(st.bytes(*info)));
}

TEST_CASE("aligned safetensors data is viewed without a copy", "[unit][safetensors]") {
  const auto dir = test::temp_dir("safetensors_zero_copy");
  const fs::path file = dir / "t.safetensors";
  save_safetensors(file, {{"a", at::randn({3})}, {"b", at::randn({5, 2})}});
  SafetensorsFile st(file);
  for (const auto& info : st.tensors()) {
    INFO(info.name);
    CHECK(tensor_view(st, info).data_ptr() == static_cast<const void*>(st.bytes(info)));
  }
}

TEST_CASE("tensor views outlive the SafetensorsFile object", "[unit][safetensors]") {
  const auto dir = test::temp_dir("safetensors_lifetime");
  const fs::path file = dir / "t.safetensors";
  at::Tensor x = at::randn({64});
  save_safetensors(file, {{"x", x}});
  at::Tensor view;
  {
    SafetensorsFile st(file);
    view = tensor_view(st, *st.find("x"));
  }
  CHECK(at::equal(view, x));
}

TEST_CASE("safetensors header validation rejects corrupt files with clear errors",
          "[unit][safetensors]") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK_NOTHROW(parse(image(ok, 8)));

  SECTION("too short") {
    CHECK_THAT(parse_error("abc"), Catch::Contains("too short"));
  }
  SECTION("header length larger than the file") {
    std::string img = image(ok, 8);
    img[0] = static_cast<char>(0xff);
    img[1] = static_cast<char>(0x7f);
    CHECK_THAT(parse_error(img), Catch::Contains("larger than the file"));
  }
  SECTION("huge header length above the cap") {
    std::string img = image(ok, 8);
    for (int i = 0; i < 8; ++i) img[i] = static_cast<char>(0xff);
    CHECK_THAT(parse_error(img), Catch::Contains("cap"));
  }
  SECTION("header is not JSON") {
    CHECK_THAT(parse_error(image("{not json", 0)), Catch::Contains("not valid JSON"));
  }
  SECTION("header is a JSON array") {
    CHECK_THAT(parse_error(image("[1,2]", 0)), Catch::Contains("not an object"));
  }
  SECTION("unknown dtype") {
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2)),
               Catch::Contains("unknown dtype 'F8'"));
  }
  SECTION("shape x dtype disagrees with the byte range") {
    CHECK_THAT(
        parse_error(image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
        Catch::Contains("need 3 x 4 bytes"));
  }
  SECTION("offsets outside the data area (header lies)") {
    CHECK_THAT(
        parse_error(image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)),
        Catch::Contains("past the end of the data area"));
  }
  SECTION("end before begin") {
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4)),
               Catch::Contains("< begin"));
  }
  SECTION("overlapping tensors") {
    const std::string h =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    CHECK_THAT(parse_error(image(h, 12)), Catch::Contains("overlaps"));
  }
  SECTION("gap between tensors") {
    const std::string h =
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
    CHECK_THAT(parse_error(image(h, 12)), Catch::Contains("gap"));
  }
  SECTION("trailing garbage") {
    CHECK_THAT(parse_error(image(ok, 12)), Catch::Contains("trailing bytes"));
  }
  SECTION("negative or fractional shape") {
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)),
               Catch::Contains("integers >= 0"));
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4)),
               Catch::Contains("integers >= 0"));
  }
  SECTION("shape overflow") {
    CHECK_THAT(parse_error(image(
                   R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                   4)),
               Catch::Contains("too large"));
  }
  SECTION("missing keys and unexpected keys") {
    CHECK_THAT(parse_error(image(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4)),
               Catch::Contains("dtype"));
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4)),
               Catch::Contains("data_offsets"));
    CHECK_THAT(parse_error(image(
                   R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4)),
               Catch::Contains("unexpected key 'x'"));
  }
  SECTION("metadata must be strings") {
    CHECK_THAT(parse_error(image(R"({"__metadata__":{"k":1}})", 0)),
               Catch::Contains("not a string"));
  }
}

TEST_CASE("a truncated safetensors file names the file", "[unit][safetensors]") {
  const auto dir = test::temp_dir("safetensors_truncated");
  const fs::path good = dir / "good.safetensors";
  save_safetensors(good, {{"x", at::randn({256})}});
  const std::string bytes = test::read_file(good);
  const fs::path bad = dir / "truncated.safetensors";
  test::write_file(bad, bytes.substr(0, bytes.size() - 100));
  try {
    SafetensorsFile st(bad);
    FAIL("truncated file was accepted");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("truncated.safetensors"));
    CHECK_THAT(std::string(e.what()), Catch::Contains("past the end"));
  }
  CHECK_THROWS_AS(SafetensorsFile(dir / "absent.safetensors"), IoError);
}

TEST_CASE("npy files round-trip", "[unit][npy]") {
  const auto dir = test::temp_dir("npy_roundtrip");
  for (auto t : {at::randn({2, 3, 4}), at::arange(5, at::kLong), at::randn({}).to(at::kFloat),
                 at::arange(7, at::kByte)}) {
    save_npy(dir / "x.npy", t);
    at::Tensor back = load_npy(dir / "x.npy");
    CHECK(back.sizes() == t.sizes());
    CHECK(at::equal(back, t));
  }
}

TEST_CASE("every fuzz corpus input parses or fails with a FormatError", "[unit][safetensors]") {
  // The committed corpus holds the fuzzer's past findings (e.g. a JSON number overflow that once
  // escaped as an uncaught exception); each must end in a clean accept or a clear error.
  const fs::path dir = fs::path(studio::test::source_dir()) / "tests/fuzz/corpus/safetensors";
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    INFO(e.path());
    const std::string bytes = test::read_file(e.path());
    try {
      parse(bytes);
    } catch (const FormatError&) {
    }
  }
  CHECK(files >= 5);
}
