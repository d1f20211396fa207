// Video file I/O through FFmpeg's libav*: a streaming reader (any container/codec libav decodes,
// one RGB8 frame at a time) and an atomic H.264 MP4 writer. No torch here: plain byte buffers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/limits.h"

namespace studio::video {

struct Rational {
  int num = 0, den = 1;
  double value() const { return den == 0 ? 0.0 : static_cast<double>(num) / den; }
  bool valid() const { return num > 0 && den > 0; }
  std::string str() const { return std::to_string(num) + "/" + std::to_string(den); }
};

// "24", "29.97", "30000/1001" -> a rational; throws UsageError otherwise.
Rational parse_fps(const std::string& text);

// One decoded picture: RGB8, row-major, top row first, `stride` bytes per row.
struct Frame {
  int width = 0, height = 0, stride = 0;
  std::vector<uint8_t> rgb;
  double pts_s = 0.0;  // presentation time in the source (reader) or 0 (writer input)
  int64_t index = 0;   // 0-based index of the frame the reader returned
};

struct VideoInfo {
  std::filesystem::path path;
  std::string container;                  // e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;                      // video codec, e.g. "h264"
  std::string pix_fmt;                    // e.g. "yuv420p"
  int coded_width = 0, coded_height = 0;  // as stored
  int width = 0, height = 0;              // as displayed (after rotation)
  int rotation_deg = 0;                   // clockwise rotation needed for display: 0/90/180/270
  Rational fps;                           // average (else nominal) frame rate
  int64_t frame_count = -1;               // from the container, else estimated; -1 unknown
  bool frame_count_exact = false;         // true when the container states it
  double duration_s = 0.0;
  int64_t bit_rate = 0;
  bool has_audio = false;
  std::string audio_codec;
  int audio_sample_rate = 0, audio_channels = 0;
  std::map<std::string, std::string> tags;  // container metadata (title, comment, ...)
};

// Safe defaults so a hostile or huge file fails with a clear message instead of eating memory:
// the process's limits (core/limits.h: STUDIO_LIMIT_VIDEO_SIDE, _VIDEO_FRAMES, _VIDEO_SECONDS;
// 8192 px, 216000 frames = 2 h at 30 fps, 7200 s unless set); set members to override them.
struct Limits {
  int max_width = static_cast<int>(::studio::resource_limits().video_side);
  int max_height = static_cast<int>(::studio::resource_limits().video_side);
  int64_t max_frames = ::studio::resource_limits().video_frames;
  // Reader: of the range read; writer: of the clip.
  double max_duration_s = static_cast<double>(::studio::resource_limits().video_seconds);
};

struct ReaderOptions {
  int width = 0, height = 0;   // output size (0, 0: the displayed size; one 0: keep aspect)
  Rational fps;                // constant-frame-rate output (dup/drop) when valid
  bool apply_rotation = true;  // turn frames upright by the display matrix / rotate tag
  int threads = 0;             // decoder threads (0: libav picks)
  double start_s = 0.0;        // first frame at or after this time
  double duration_s = 0.0;     // stop after this many seconds (0: to the end)
  Limits limits;
};

// Streams frames from a file. Throws IoError (missing/unreadable) or FormatError (corrupt,
// truncated, no video stream, unsupported codec) naming the file.
class VideoReader {
 public:
  explicit VideoReader(const std::filesystem::path& path, ReaderOptions options = {});
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const VideoInfo& info() const;
  int output_width() const;
  int output_height() const;
  // The rate frames come out at: options.fps when set, else the stream's.
  Rational output_fps() const;
  // Next frame into `frame` (its buffer is reused); false at the end of the range.
  bool read(Frame& frame);
  // Continue from the first frame at or after `seconds` (the range end stays where it was).
  void seek(double seconds);
  int64_t frames_read() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Stream info without decoding frames.
VideoInfo probe(const std::filesystem::path& path);

struct WriterOptions {
  int width = 0, height = 0;  // frame size (odd sizes are cut to even for yuv420p, with a warning)
  Rational fps{24, 1};
  int crf = 20;                   // quality (x264 CRF 0-51; mapped to a quantiser for mpeg4)
  int64_t bit_rate = 0;           // bits/s; when > 0 used instead of crf
  std::string preset = "medium";  // x264 speed preset
  std::string encoder;  // encoders to try in order, comma-separated ("" = libx264,libopenh264,mpeg4)
  bool faststart = true;          // moov before mdat (playback starts before the download ends)
  std::map<std::string, std::string> metadata;  // title, comment, description, ... in the file
  std::filesystem::path audio_source;           // remux this file's audio (empty: no audio)
  double audio_start_s = 0.0;                   // first audio time taken from the source
  Limits limits;
};

// Writes an MP4 (or MOV/MKV by extension) to a temporary name beside the target and renames it
// on finish(); a writer destroyed without finish() leaves nothing behind.
class VideoWriter {
 public:
  VideoWriter(const std::filesystem::path& path, WriterOptions options);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // One frame of options.width x options.height RGB8.
  void write(const Frame& frame);
  void write(const uint8_t* rgb, int width, int height, int stride);
  // Flush the encoder, remux the rest of the audio, write the trailer, rename onto the target.
  void finish();

  const std::string& encoder_name() const;
  // Things the caller should tell the user (encoder fallback, size cut to even, audio dropped).
  const std::vector<std::string>& warnings() const;
  int64_t frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An FFmpeg error code as text (av_strerror).
std::string av_error_text(int code);

}  // namespace studio::video
