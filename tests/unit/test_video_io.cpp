// video/video_io: decode -> encode round trips checked by ffprobe, CFR resampling, seeking,
// rotation, clear errors on bad files, bounded memory while streaming, no leaked descriptors.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "tests/support/process.h"
#include "video/video_io.h"

using namespace studio::test;
using namespace studio::video;
namespace fs = std::filesystem;

namespace {

fs::path sample() { return data_root() / "video" / "big_buck_bunny_480p_30s.mp4"; }

// ffprobe's view of the first video stream (packets counted), plus the format tags.
nlohmann::json ffprobe(const fs::path& file) {
  auto r = run_command(
      "ffprobe -v error -count_packets -show_entries "
      "stream=codec_type,codec_name,pix_fmt,width,height,r_frame_rate,"
      "nb_read_packets:format=duration:format_tags -of json " +
      shell_quote(file.string()) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.output);
}

nlohmann::json stream_of(const nlohmann::json& probe, const std::string& type) {
  for (const auto& s : probe["streams"])
    if (s["codec_type"] == type) return s;
  return nullptr;
}

// Top-level MP4 box types in file order.
std::vector<std::string> top_level_boxes(const fs::path& file) {
  const std::string bytes = read_file(file);
  std::vector<std::string> types;
  size_t pos = 0;
  while (pos + 8 <= bytes.size()) {
    uint64_t size = 0;
    for (int i = 0; i < 4; ++i) size = (size << 8) | static_cast<uint8_t>(bytes[pos + i]);
    types.push_back(bytes.substr(pos + 4, 4));
    if (size == 1 && pos + 16 <= bytes.size()) {
      size = 0;
      for (int i = 0; i < 8; ++i) size = (size << 8) | static_cast<uint8_t>(bytes[pos + 8 + i]);
    }
    if (size < 8) break;
    pos += size;
  }
  return types;
}

size_t index_of(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

long status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  return -1;
}

size_t open_fds() {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// A synthetic clip: red top-left quadrant on blue, `n` frames.
void write_pattern(const fs::path& out, int w, int h, int n, WriterOptions wo = {}) {
  wo.width = w;
  wo.height = h;
  VideoWriter writer(out, wo);
  std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[3 * (static_cast<size_t>(y) * w + x)];
      const bool red = x < w / 2 && y < h / 2;
      p[0] = red ? 220 : 20;
      p[1] = 20;
      p[2] = red ? 20 : 220;
    }
  for (int i = 0; i < n; ++i) writer.write(rgb.data(), w, h, w * 3);
  writer.finish();
}

bool is_red(const Frame& f, int x, int y) {
  const uint8_t* p = &f.rgb[static_cast<size_t>(y) * f.stride + 3 * x];
  return p[0] > 150 && p[2] < 100;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const studio::Error& e) {
    return std::string(e.kind()) + ": " + e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("video probe reports the sample's streams", "[unit][video]") {
  const VideoInfo v = probe(sample());
  CHECK(v.codec == "h264");
  CHECK(v.width == 854);
  CHECK(v.height == 480);
  CHECK(v.fps.num == 24);
  CHECK(v.fps.den == 1);
  CHECK(v.frame_count == 720);
  CHECK(v.frame_count_exact);
  CHECK(v.duration_s == Approx(30.0).margin(0.05));
  CHECK(v.rotation_deg == 0);
  CHECK(v.has_audio);
  CHECK(v.audio_codec == "aac");
  CHECK(parse_fps("30000/1001").value() == Approx(29.97).margin(0.001));
  CHECK(parse_fps("24").str() == "24/1");
  CHECK_THROWS_AS(parse_fps("fast"), studio::UsageError);
}

TEST_CASE("video round trip keeps frames, rate and duration, ffprobe agrees", "[unit][video]") {
  const auto dir = temp_dir("video_round_trip");
  const fs::path out = dir / "clip.mp4";
  ReaderOptions ro;
  ro.duration_s = 3.0;
  VideoReader reader(sample(), ro);
  WriterOptions wo;
  wo.width = reader.output_width();
  wo.height = reader.output_height();
  wo.fps = reader.output_fps();
  wo.crf = 23;
  wo.preset = "veryfast";
  wo.audio_source = sample();
  wo.metadata = {{"title", "round trip"},
                 {"comment", "AI-generated: no (test); seed=7 steps=4"},
                 {"ai_generated", "true"}};
  Frame frame;
  {
    VideoWriter writer(out, wo);
    while (reader.read(frame)) writer.write(frame);
    CHECK(reader.frames_read() == 72);
    CHECK(!fs::exists(out));  // written under a temporary name until finish()
    writer.finish();
    CHECK(writer.frames_written() == 72);
    CHECK((writer.encoder_name() == "libx264" || !writer.warnings().empty()));
  }
  REQUIRE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path() == out);  // no temp left

  const VideoInfo back = probe(out);
  CHECK(back.frame_count == 72);
  CHECK(back.fps.str() == "24/1");
  CHECK(back.width == 854);
  CHECK(back.height == 480);
  CHECK(back.has_audio);
  CHECK(back.tags.at("title") == "round trip");
  CHECK(back.duration_s == Approx(3.0).margin(0.1));

  const auto p = ffprobe(out);
  const auto vs = stream_of(p, "video");
  INFO(p.dump());
  REQUIRE(vs != nullptr);
  CHECK((vs["codec_name"] == "h264" || vs["codec_name"] == "mpeg4"));
  CHECK(vs["pix_fmt"] == "yuv420p");
  CHECK(vs["width"] == 854);
  CHECK(vs["height"] == 480);
  CHECK(vs["r_frame_rate"] == "24/1");
  CHECK(vs["nb_read_packets"] == "72");
  CHECK(stream_of(p, "audio")["codec_name"] == "aac");
  CHECK(std::stod(p["format"]["duration"].get<std::string>()) == Approx(3.0).margin(0.1));
  CHECK(p["format"]["tags"]["title"] == "round trip");
  CHECK_THAT(p["format"]["tags"]["comment"].get<std::string>(), Catch::Contains("seed=7"));
  CHECK(p["format"]["tags"]["ai_generated"] == "true");
  const auto boxes = top_level_boxes(out);
  INFO(nlohmann::json(boxes).dump());
  REQUIRE(index_of(boxes, "moov") < boxes.size());
  REQUIRE(index_of(boxes, "mdat") < boxes.size());
  CHECK(index_of(boxes, "moov") < index_of(boxes, "mdat"));  // faststart

  // Decoded again, the frames look like the source's (PSNR-ish: mean abs diff small).
  VideoReader a(sample(), ro), b(out, {});
  Frame fa, fb;
  REQUIRE(a.read(fa));
  for (int i = 0; i < 30; ++i) REQUIRE(a.read(fa));
  for (int i = 0; i < 31; ++i) REQUIRE(b.read(fb));
  double diff = 0;
  for (size_t i = 0; i < fa.rgb.size(); ++i) diff += std::abs(fa.rgb[i] - fb.rgb[i]);
  CHECK(diff / fa.rgb.size() < 6.0);
}

TEST_CASE("video reader: seek, start/duration, resize and constant-rate resampling",
          "[unit][video]") {
  Frame f;
  {
    ReaderOptions ro;
    ro.start_s = 10.0;
    ro.duration_s = 1.0;
    VideoReader r(sample(), ro);
    REQUIRE(r.read(f));
    CHECK(f.pts_s == Approx(10.0).margin(0.02));
    int n = 1;
    while (r.read(f)) ++n;
    CHECK(n == 24);
  }
  {
    VideoReader r(sample());
    REQUIRE(r.read(f));
    CHECK(f.pts_s == Approx(0.0).margin(0.02));
    r.seek(20.0);
    REQUIRE(r.read(f));
    CHECK(f.pts_s == Approx(20.0).margin(0.02));
  }
  for (auto [fps, expected] : {std::pair<int, int>{12, 24}, {48, 96}, {24, 48}}) {
    ReaderOptions ro;
    ro.duration_s = 2.0;
    ro.fps = Rational{fps, 1};
    ro.width = 320;  // height from the aspect ratio
    VideoReader r(sample(), ro);
    CHECK(r.output_width() == 320);
    CHECK(r.output_height() == 180);
    int n = 0;
    double last = -1;
    while (r.read(f)) {
      CHECK(f.width == 320);
      CHECK(f.height == 180);
      CHECK(f.pts_s > last);
      last = f.pts_s;
      ++n;
    }
    INFO("fps " << fps);
    CHECK(n == expected);
  }
}

TEST_CASE("video reader turns rotated clips upright", "[unit][video]") {
  const auto dir = temp_dir("video_rotation");
  write_pattern(dir / "flat.mp4", 64, 32, 3);
  {
    VideoReader r(dir / "flat.mp4");
    Frame f;
    REQUIRE(r.read(f));
    CHECK(is_red(f, 4, 4));
    CHECK(!is_red(f, 60, 4));
  }
  // A display matrix set by ffmpeg 5.1's rotate tag (stream copy): ffprobe reports "rotation=90"
  // (counter-clockwise), ffmpeg's autorotate shows it turned 90 degrees counter-clockwise, i.e.
  // 270 degrees clockwise; studio must show it the same way.
  auto r = run_command("ffmpeg -v error -y -i " + shell_quote((dir / "flat.mp4").string()) +
                       " -c copy -metadata:s:v:0 rotate=90 " +
                       shell_quote((dir / "rot.mp4").string()) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const VideoInfo v = probe(dir / "rot.mp4");
  CHECK(v.rotation_deg == 270);
  CHECK(v.width == 32);
  CHECK(v.height == 64);
  VideoReader rr(dir / "rot.mp4");
  Frame f;
  REQUIRE(rr.read(f));
  REQUIRE(f.width == 32);
  REQUIRE(f.height == 64);
  // The red top-left quadrant is now bottom-left (as `ffmpeg -i rot.mp4 frame.png` shows it).
  CHECK(is_red(f, 4, 60));
  CHECK(!is_red(f, 4, 4));
  CHECK(!is_red(f, 28, 4));
  CHECK(!is_red(f, 28, 60));
}

TEST_CASE("video reader: clear errors for truncated, garbage and audio-only files",
          "[unit][video]") {
  const auto dir = temp_dir("video_bad");
  const std::string bytes = read_file(sample());
  write_file(dir / "cut.mp4", bytes.substr(0, bytes.size() / 2));
  auto e = error_of([&] { VideoReader r(dir / "cut.mp4"); });
  CHECK_THAT(e, Catch::StartsWith("format error") && Catch::Contains("cut.mp4") &&
                    Catch::Contains("truncated"));

  write_file(dir / "garbage.mp4", std::string(4096, '\x5a'));
  e = error_of([&] { probe(dir / "garbage.mp4"); });
  CHECK_THAT(e, Catch::StartsWith("format error") && Catch::Contains("garbage.mp4") &&
                    Catch::Contains("Invalid data"));

  e = error_of([&] { probe(dir / "missing.mp4"); });
  CHECK_THAT(e, Catch::StartsWith("I/O error") && Catch::Contains("missing.mp4") &&
                    Catch::Contains("not found"));

  // A WAV file: one audio stream, no video.
  std::string wav = "RIFF____WAVEfmt ";
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [](uint16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); };
  wav += u32(16) + u16(1) + u16(1) + u32(8000) + u32(16000) + u16(2) + u16(16);
  wav += "data" + u32(16000) + std::string(16000, '\0');
  const uint32_t riff = static_cast<uint32_t>(wav.size() - 8);
  std::memcpy(&wav[4], &riff, 4);
  write_file(dir / "tone.wav", wav);
  e = error_of([&] { VideoReader r(dir / "tone.wav"); });
  CHECK_THAT(e, Catch::StartsWith("format error") && Catch::Contains("tone.wav") &&
                    Catch::Contains("no video stream") && Catch::Contains("audio"));

  // A faststart file (moov first) cut short opens, then fails at the cut instead of ending early.
  write_pattern(dir / "whole.mp4", 64, 64, 96);
  const std::string whole = read_file(dir / "whole.mp4");
  write_file(dir / "short.mp4", whole.substr(0, whole.size() * 6 / 10));
  e = error_of([&] {
    VideoReader r(dir / "short.mp4");
    Frame f;
    while (r.read(f)) {
    }
  });
  CHECK_THAT(e, Catch::StartsWith("format error") && Catch::Contains("short.mp4") &&
                    Catch::Contains("truncated"));

  // Limits: a reader limited to 32x32 frames refuses the sample.
  ReaderOptions small;
  small.limits.max_width = 32;
  e = error_of([&] { VideoReader r(sample(), small); });
  CHECK_THAT(e, Catch::Contains("exceeds the limit") && Catch::Contains("854x480"));
}

TEST_CASE("video writer: encoder fallback, limits, no file without finish()", "[unit][video]") {
  const auto dir = temp_dir("video_writer");
  WriterOptions wo;
  wo.encoder = "no_such_encoder,mpeg4";
  wo.width = 64;
  wo.height = 48;
  wo.metadata = {{"comment", "AI-generated"}};
  {
    VideoWriter w(dir / "m4.mp4", wo);
    CHECK(w.encoder_name() == "mpeg4");
    REQUIRE(!w.warnings().empty());
    CHECK_THAT(w.warnings().front(),
               Catch::Contains("no_such_encoder is not available") && Catch::Contains("mpeg4"));
    std::vector<uint8_t> rgb(64 * 48 * 3, 128);
    for (int i = 0; i < 5; ++i) w.write(rgb.data(), 64, 48, 64 * 3);
    w.finish();
  }
  const auto p = ffprobe(dir / "m4.mp4");
  CHECK(stream_of(p, "video")["codec_name"] == "mpeg4");
  CHECK(stream_of(p, "video")["nb_read_packets"] == "5");

  wo.encoder = "no_such_encoder";
  CHECK_THROWS_AS(VideoWriter(dir / "none.mp4", wo), studio::ConfigError);

  wo.encoder.clear();
  wo.limits.max_frames = 2;
  {
    VideoWriter w(dir / "abandoned.mp4", wo);
    std::vector<uint8_t> rgb(64 * 48 * 3, 0);
    w.write(rgb.data(), 64, 48, 64 * 3);
    w.write(rgb.data(), 64, 48, 64 * 3);
    auto e = error_of([&] { w.write(rgb.data(), 64, 48, 64 * 3); });
    CHECK_THAT(e, Catch::Contains("limit") && Catch::Contains("abandoned.mp4"));
    e = error_of([&] { w.write(rgb.data(), 32, 48, 32 * 3); });
    CHECK_THAT(e, Catch::Contains("does not match"));
  }  // destroyed without finish(): nothing left behind
  CHECK(!fs::exists(dir / "abandoned.mp4"));
  size_t left = 0;
  for (const auto& e : fs::directory_iterator(dir)) left += e.path().filename() != "m4.mp4";
  CHECK(left == 0);

  wo.width = 65;  // odd: cut to even with a warning
  wo.limits = {};
  VideoWriter odd(dir / "odd.mp4", wo);
  CHECK_THAT(odd.warnings().back(), Catch::Contains("even"));
  CHECK_THROWS_AS(VideoWriter(dir / "clip.gif", wo), studio::UsageError);
  CHECK_THROWS_AS(VideoWriter(dir / "no" / "such" / "clip.mp4", wo), studio::IoError);
}

TEST_CASE("video reader streams the 30 s sample with bounded memory", "[unit][video]") {
  const long before_kib = status_kib("VmHWM:");
  ReaderOptions ro;
  ro.threads = 1;
  VideoReader r(sample(), ro);
  Frame f;
  int64_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (r.read(f)) ++n;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long after_kib = status_kib("VmHWM:");
  const double growth_mib = (after_kib - before_kib) / 1024.0;
  const double frame_mib = f.rgb.size() / (1024.0 * 1024.0);
  WARN("decoded " << n << " frames of 854x480 to RGB in " << s << " s (" << n / s
                  << " fps, 1 thread); peak RSS grew by " << growth_mib << " MiB (VmHWM "
                  << after_kib / 1024 << " MiB)");
  CHECK(n == 720);
  CHECK(growth_mib < 64.0 + frame_mib);
}

TEST_CASE("video readers leave no open descriptors behind", "[unit][video]") {
  Frame f;
  { VideoReader warm(sample()); }  // libav's one-time initialisation
  const size_t before = open_fds();
  for (int i = 0; i < 200; ++i) {
    VideoReader r(sample());
    if (i % 20 == 0) REQUIRE(r.read(f));
  }
  for (int i = 0; i < 20; ++i) {
    try {
      probe(data_root() / "video" / "missing.mp4");
    } catch (const studio::IoError&) {
    }
  }
  CHECK(open_fds() == before);
}
