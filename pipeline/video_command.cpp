// `studio video probe|transcode`: the video stage's file tools. Probe prints a file's stream info;
// transcode decodes and re-encodes (H.264 MP4) frame by frame, so memory stays flat for any length.
#include <fmt/format.h>

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "video/video_io.h"

namespace studio {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct VideoOptions {
  std::string input, output;
  bool json = false;
  std::string fps;
  std::string size;
  int crf = 20;
  bool no_audio = false;
  double start_s = 0.0, duration_s = 0.0;
};

nlohmann::json info_json(const video::VideoInfo& v) {
  nlohmann::json j;
  j["path"] = v.path.string();
  j["container"] = v.container;
  j["codec"] = v.codec;
  j["pix_fmt"] = v.pix_fmt;
  j["width"] = v.width;
  j["height"] = v.height;
  j["coded_width"] = v.coded_width;
  j["coded_height"] = v.coded_height;
  j["rotation_deg"] = v.rotation_deg;
  j["fps"] = v.fps.str();
  j["fps_value"] = v.fps.value();
  j["frame_count"] = v.frame_count;
  j["frame_count_exact"] = v.frame_count_exact;
  j["duration_s"] = v.duration_s;
  j["bit_rate"] = v.bit_rate;
  j["audio"] = v.has_audio ? nlohmann::json{{"codec", v.audio_codec},
                                            {"sample_rate", v.audio_sample_rate},
                                            {"channels", v.audio_channels}}
                           : nlohmann::json(nullptr);
  j["tags"] = v.tags;
  return j;
}

int run_probe(const VideoOptions& o) {
  const auto v = video::probe(o.input);
  if (o.json) {
    std::cout << info_json(v).dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{}: {} ({})\n", v.path.string(), v.container, v.codec);
  std::cout << fmt::format("  size      {}x{}{}\n", v.width, v.height,
                           v.rotation_deg
                               ? fmt::format(" (stored {}x{}, rotated {} deg)", v.coded_width,
                                             v.coded_height, v.rotation_deg)
                               : "");
  std::cout << fmt::format("  pixels    {}\n", v.pix_fmt);
  std::cout << fmt::format("  fps       {} ({:.3f})\n", v.fps.str(), v.fps.value());
  std::cout << fmt::format("  frames    {}{}\n", v.frame_count,
                           v.frame_count_exact ? "" : " (estimated)");
  std::cout << fmt::format("  duration  {:.3f} s\n", v.duration_s);
  if (v.bit_rate > 0) std::cout << fmt::format("  bit rate  {} kb/s\n", v.bit_rate / 1000);
  if (v.has_audio)
    std::cout << fmt::format("  audio     {} {} Hz, {} channel(s)\n", v.audio_codec,
                             v.audio_sample_rate, v.audio_channels);
  else
    std::cout << "  audio     none\n";
  for (const auto& [k, val] : v.tags) std::cout << fmt::format("  tag       {}={}\n", k, val);
  return kExitOk;
}

void parse_size(const std::string& s, int* w, int* h) {
  const auto x = s.find('x');
  try {
    if (x != std::string::npos) {
      size_t a = 0, b = 0;
      *w = std::stoi(s.substr(0, x), &a);
      *h = std::stoi(s.substr(x + 1), &b);
      if (a == x && b == s.size() - x - 1 && *w >= 0 && *h >= 0 && (*w > 0 || *h > 0)) return;
    }
  } catch (const std::exception&) {
  }
  throw UsageError("invalid --size '" + s + "'", "",
                   "use WxH, e.g. 640x360 (0 for one side keeps the aspect ratio: 640x0)");
}

// One line every ~2 s in logs; an updating line on a terminal.
class Progress {
 public:
  explicit Progress(int64_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void update(int64_t n, bool last = false) {
    const auto now = Clock::now();
    if (!last && now - shown_ < std::chrono::milliseconds(tty_ ? 200 : 2000)) return;
    shown_ = now;
    const double s = std::chrono::duration<double>(now - t0_).count();
    const std::string line =
        fmt::format("studio: transcoding frame {}{} ({:.1f} fps)", n,
                    total_ > 0 ? fmt::format("/{}", total_) : "", s > 0 ? n / s : 0.0);
    if (tty_)
      std::cerr << "\r" << line << (last ? "\n" : "") << std::flush;
    else
      std::cerr << line << "\n";
  }
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

 private:
  int64_t total_;
  bool tty_;
  Clock::time_point t0_ = Clock::now();
  Clock::time_point shown_{};
};

int run_transcode(const VideoOptions& o) {
  if (fs::exists(o.output) && fs::equivalent(o.input, o.output))
    throw UsageError("the output is the input", o.output, "write to a different file");
  if (o.crf < 0 || o.crf > 51)
    throw UsageError("--crf " + std::to_string(o.crf) + " is out of range", "",
                     "use 0 (lossless) to 51; 18-28 is usual");
  video::ReaderOptions ro;
  if (!o.size.empty()) parse_size(o.size, &ro.width, &ro.height);
  ro.start_s = o.start_s;
  ro.duration_s = o.duration_s;
  // Constant frame rate out: the requested rate, else the source's (a VFR source is evened out).
  const auto src = video::probe(o.input);
  ro.fps = o.fps.empty() ? src.fps : video::parse_fps(o.fps);
  if (!ro.fps.valid()) throw FormatError("the file states no frame rate", o.input, "pass --fps");
  video::VideoReader reader(o.input, ro);

  video::WriterOptions wo;
  wo.width = reader.output_width();
  wo.height = reader.output_height();
  wo.fps = ro.fps;
  wo.crf = o.crf;
  if (!o.no_audio && src.has_audio) {
    wo.audio_source = o.input;
    wo.audio_start_s = o.start_s;
  }
  wo.metadata["comment"] =
      fmt::format("transcoded by studio from {}", fs::path(o.input).filename().string());
  for (const char* key : {"title", "description", "copyright", "artist"}) {
    auto it = src.tags.find(key);
    if (it != src.tags.end()) wo.metadata[key] = it->second;
  }
  video::VideoWriter writer(o.output, wo);
  for (const auto& w : writer.warnings()) std::cerr << "studio: warning: " << w << "\n";
  const size_t warnings_shown = writer.warnings().size();

  double span = src.duration_s - o.start_s;
  if (o.duration_s > 0) span = std::min(span, o.duration_s);
  Progress progress(span > 0 ? static_cast<int64_t>(std::llround(span * ro.fps.value())) : -1);
  video::Frame frame;
  double decode_s = 0, encode_s = 0;
  while (true) {
    auto t = Clock::now();
    if (!reader.read(frame)) break;
    decode_s += std::chrono::duration<double>(Clock::now() - t).count();
    t = Clock::now();
    writer.write(frame);
    encode_s += std::chrono::duration<double>(Clock::now() - t).count();
    progress.update(writer.frames_written());
  }
  if (writer.frames_written() == 0)
    throw FormatError("no frames in the requested range", o.input,
                      "check --start / --duration against the file's duration");
  auto t = Clock::now();
  writer.finish();
  encode_s += std::chrono::duration<double>(Clock::now() - t).count();
  progress.update(writer.frames_written(), true);
  for (size_t i = warnings_shown; i < writer.warnings().size(); ++i)
    std::cerr << "studio: warning: " << writer.warnings()[i] << "\n";
  const int64_t n = writer.frames_written();
  std::cout << fmt::format(
      "wrote {} ({} frames, {}x{}, {} fps, {}{}; decode {:.1f} fps, encode {:.1f} fps)\n", o.output,
      n, wo.width, wo.height, ro.fps.str(), writer.encoder_name(),
      wo.audio_source.empty() ? ", no audio" : ", audio copied", decode_s > 0 ? n / decode_s : 0.0,
      encode_s > 0 ? n / encode_s : 0.0);
  return kExitOk;
}

}  // namespace

void add_video_command(CLI::App& app, CommandAction* action) {
#ifdef STUDIO_HAVE_IMAGE
  auto* cmd = app.add_subcommand(
      "video",
      "Video: AnimateDiff text/image-to-video (generate), clip editing by inversion (edit), "
      "probe stream info, transcode to H.264 MP4");
  cmd->require_subcommand(0, 1);  // none: the short form of `video generate`
  add_video_generate_command(*cmd, action);
  add_video_edit_command(*cmd, action);
#else
  auto* cmd = app.add_subcommand("video", "Video files: probe stream info, transcode to H.264 MP4");
  cmd->require_subcommand(1);
#endif
  auto o = std::make_shared<VideoOptions>();

  auto* probe = cmd->add_subcommand("probe", "Size, frame rate, frames, duration, codec, audio");
  probe->add_option("file", o->input, "video file (MP4, MOV, MKV, WebM, AVI, ...)")->required();
  probe->add_flag("--json", o->json, "print the info as JSON");
  probe->callback([action, o] { *action = [o] { return run_probe(*o); }; });

  auto* tc = cmd->add_subcommand(
      "transcode", "Decode and re-encode to H.264 MP4 (yuv420p, faststart), frame by frame");
  tc->add_option("input", o->input, "video file to read")->required();
  tc->add_option("output", o->output, "file to write (.mp4, .mov or .mkv)")->required();
  tc->add_option("--fps", o->fps, "constant output frame rate (default: the input's)");
  tc->add_option("--size", o->size, "output size WxH (0 for one side keeps the aspect ratio)");
  tc->add_option("--crf", o->crf, "quality, 0 (lossless) to 51 (default 20)");
  tc->add_flag("--no-audio", o->no_audio, "drop the audio (default: copied unchanged)");
  tc->add_option("--start", o->start_s, "start at this time in seconds");
  tc->add_option("--duration", o->duration_s, "take this many seconds (default: to the end)");
  tc->callback([action, o] { *action = [o] { return run_transcode(*o); }; });
}

}  // namespace studio
