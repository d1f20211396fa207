// `studio video probe|transcode` and `studio mesh render --out clip.mp4` end to end, checked
// with ffprobe.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"

using namespace studio::test;
namespace fs = std::filesystem;

namespace {

fs::path sample() { return data_root() / "video" / "big_buck_bunny_480p_30s.mp4"; }

nlohmann::json ffprobe(const fs::path& file) {
  auto r = run_command(
      "ffprobe -v error -count_packets -show_entries "
      "stream=codec_type,codec_name,pix_fmt,width,height,r_frame_rate,"
      "nb_read_packets:format_tags -of json " +
      shell_quote(file.string()) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.output);
}

}  // namespace

TEST_CASE("studio video probe prints stream info", "[unit][cli][video]") {
  auto r = run_studio("video probe " + shell_quote(sample().string()) + " --json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output);
  CHECK(j["codec"] == "h264");
  CHECK(j["width"] == 854);
  CHECK(j["fps"] == "24/1");
  CHECK(j["frame_count"] == 720);
  CHECK(j["audio"]["codec"] == "aac");
  auto text = run_studio("video probe " + shell_quote(sample().string()));
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.output, Catch::Contains("854x480") && Catch::Contains("720"));
  auto bad =
      run_studio("video probe " + shell_quote((data_root() / "meshes" / "cube.ply").string()));
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("cube.ply"));
}

TEST_CASE("studio video transcode: range, size, rate, audio", "[unit][cli][video]") {
  const auto dir = temp_dir("cli_video_transcode");
  const fs::path out = dir / "small.mp4";
  auto r = run_studio("video transcode " + shell_quote(sample().string()) + " " +
                      shell_quote(out.string()) +
                      " --start 5 --duration 2 --size 320x0 --fps 12 --crf 28 --no-audio");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("transcoding frame 24"));
  const auto p = ffprobe(out);
  INFO(p.dump());
  REQUIRE(p["streams"].size() == 1);
  const auto& v = p["streams"][0];
  CHECK(v["width"] == 320);
  CHECK(v["height"] == 180);
  CHECK(v["r_frame_rate"] == "12/1");
  CHECK(v["nb_read_packets"] == "24");
  CHECK(v["pix_fmt"] == "yuv420p");

  const fs::path with_audio = dir / "audio.mp4";
  auto a = run_studio("video transcode " + shell_quote(sample().string()) + " " +
                      shell_quote(with_audio.string()) + " --duration 1 --size 160x90");
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const auto pa = ffprobe(with_audio);
  CHECK(pa["streams"].size() == 2);

  auto bad = run_studio("video transcode " + shell_quote(sample().string()) + " " +
                        shell_quote((dir / "x.mp4").string()) + " --fps fast");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("frame rate"));
  CHECK(!fs::exists(dir / "x.mp4"));
}

TEST_CASE("studio mesh render --out clip.mp4 writes a turntable clip", "[unit][cli][video][mesh]") {
  const auto dir = temp_dir("cli_video_turntable");
  const fs::path sphere = data_root() / "meshes" / "sphere.dae";
  const fs::path out = dir / "spin.mp4";
  auto r = run_studio("mesh render " + shell_quote(sphere.string()) +
                      " --turntable 12 --size 64 --fps 12 --out " + shell_quote(out.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("rendering frame 12/12"));
  const auto p = ffprobe(out);
  INFO(p.dump());
  const auto& v = p["streams"][0];
  CHECK((v["codec_name"] == "h264" || v["codec_name"] == "mpeg4"));
  CHECK(v["nb_read_packets"] == "12");
  CHECK(v["width"] == 64);
  CHECK(v["r_frame_rate"] == "12/1");
  CHECK_THAT(p["format"]["tags"]["comment"].get<std::string>(), Catch::Contains("--turntable 12"));
  const auto side = read_json(out.string() + ".json");
  CHECK(side["parameters"]["fps"] == "12/1");
  CHECK(side["outputs"][0] == out.string());

  auto gif = run_studio("mesh render " + shell_quote(sphere.string()) + " --out " +
                        shell_quote((dir / "spin.gif").string()));
  CHECK(gif.exit_code == 1);
  CHECK_THAT(gif.output, Catch::Contains(".gif"));
}

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("studio video generate writes an AnimateDiff clip with its parameters",
          "[unit][cli][video][animatediff]") {
  const fs::path dir = temp_dir("cli_video_generate");
  const fs::path out = dir / "clip.mp4";
  const std::string models = " --model " + shell_quote((fixtures_root() / "sd-tiny").string()) +
                             " --motion " +
                             shell_quote((fixtures_root() / "animatediff-tiny").string());
  // The short form: `studio video --model ... --prompt ... --out clip.mp4`.
  auto r = run_studio("video" + models +
                      " --prompt 'a red mug turning' --frames 4 --steps 2 --size 64x64 --seed 3 "
                      "--fps 8 --device cpu --out " +
                      shell_quote(out.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("step 2/2"));
  const auto j = ffprobe(out);
  const auto& s = j["streams"][0];
  CHECK(s["codec_name"] == "h264");
  CHECK(s["width"] == 64);
  CHECK(s["height"] == 64);
  CHECK(s["r_frame_rate"] == "8/1");
  CHECK(s["nb_read_packets"] == "4");
  const auto& tags = j["format"]["tags"];
  CHECK(tags["ai_generated"] == "true");
  CHECK_THAT(tags["comment"].get<std::string>(), Catch::Contains("Seed: 3"));
  CHECK_THAT(tags["comment"].get<std::string>(), Catch::Contains("Frames: 4"));
  const auto side = nlohmann::json::parse(read_file(dir / "clip.mp4.json"));
  CHECK(side["ai_generated"] == true);
  CHECK(side["parameters"]["frames"] == 4);
  CHECK(side["parameters"]["timesteps"].size() == 2);
  CHECK(side["parameters"]["unet_calls"] == 2);  // one call per step: CFG rows in one batch
  CHECK(side["models"]["motion"]["sha256"].size() == 1);

  // The same seed makes the same frames: the sub-command form, a second time.
  const fs::path again = dir / "again.mp4";
  auto r2 = run_studio("video generate" + models +
                       " --prompt 'a red mug turning' --frames 4 --steps 2 --size 64x64 --seed 3 "
                       "--fps 8 --device cpu --no-sidecar --out " +
                       shell_quote(again.string()));
  INFO(r2.output);
  REQUIRE(r2.exit_code == 0);
  CHECK_FALSE(fs::exists(dir / "again.mp4.json"));
  auto frames = [](const fs::path& f) {
    return run_command("ffmpeg -v error -i " + shell_quote(f.string()) +
                       " -f rawvideo -pix_fmt rgb24 - | sha256sum")
        .output;
  };
  CHECK(frames(out) == frames(again));
}

TEST_CASE("studio video generate refuses bad requests before loading anything",
          "[unit][cli][video][animatediff]") {
  const fs::path dir = temp_dir("cli_video_generate_bad");
  const std::string models = " --model " + shell_quote((fixtures_root() / "sd-tiny").string()) +
                             " --motion " +
                             shell_quote((fixtures_root() / "animatediff-tiny").string());
  auto ext = run_studio("video generate" + models + " --prompt x --out " +
                        shell_quote((dir / "clip.gif").string()));
  CHECK(ext.exit_code == 1);
  CHECK_THAT(ext.output, Catch::Contains(".mp4, .mov or .mkv"));
  auto too_long = run_studio("video generate" + models +
                             " --prompt x --frames 40 --context 64 --steps 1 --size 64x64 --out " +
                             shell_quote((dir / "clip.mp4").string()));
  CHECK(too_long.exit_code == 1);
  CHECK_THAT(too_long.output, Catch::Contains("motion_max_seq_length"));
  CHECK_FALSE(fs::exists(dir / "clip.mp4"));
  auto short_form = run_studio("video --prompt x");
  CHECK(short_form.exit_code == 2);
  CHECK_THAT(short_form.output, Catch::Contains("needs --model, --motion, --prompt and --out"));
  auto nothing = run_studio("video");
  CHECK(nothing.exit_code == 2);
}
#endif

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("studio bench video times the motion UNet against the image UNet",
          "[unit][cli][video][animatediff][bench]") {
  const fs::path dir = temp_dir("cli_bench_video");
  const fs::path json_file = dir / "bench.json";
  auto r = run_studio(
      "bench video --arch " + shell_quote((fixtures_root() / "sd-tiny").string()) +
      " --motion-config " +
      shell_quote((fixtures_root() / "animatediff-tiny" / "motion_adapter").string()) +
      " --frames 4 --size 64 --repeat 1 --device cpu --json " + shell_quote(json_file.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("motion UNet vs baseline"));
  const auto j = nlohmann::json::parse(read_file(json_file));
  CHECK(j["benchmark"] == "video");
  CHECK(j["frames"] == 4);
  CHECK(j["latent_size"] == 8);
  CHECK(j["motion_unet_step_ms"].get<double>() > 0);
  CHECK(j["image_unet_step_ms"].get<double>() > 0);
  CHECK(j["motion_vs_image_unet"].get<double>() ==
        Approx(j["motion_unet_step_ms"].get<double>() / j["image_unet_step_ms"].get<double>()));
  CHECK(j["parameters"]["motion_adapter"].get<int64_t>() > 0);
  CHECK(j["peak_gpu_mib_motion"].is_null());  // CPU

  auto too_many =
      run_studio("bench video --arch " + shell_quote((fixtures_root() / "sd-tiny").string()) +
                 " --motion-config " +
                 shell_quote((fixtures_root() / "animatediff-tiny" / "motion_adapter").string()) +
                 " --frames 33 --size 64 --device cpu");
  CHECK(too_many.exit_code == 1);
  CHECK_THAT(too_many.output, Catch::Contains("motion_max_seq_length 32"));
}
#endif
