// A per-process scratch folder for the fuzz targets whose code under test reads files (job files,
// model folders, images, videos, meshes): in /dev/shm when it exists (no disk writes per input),
// removed at exit. Each input overwrites the same few files.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace studio::fuzz {

class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    // A run that crashed (libFuzzer exits without destructors) left its folder: remove those of
    // processes that no longer exist.
    for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("studio-fuzz-", 0) != 0) continue;
      const std::string pid = name.substr(12);
      if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
          !std::filesystem::exists("/proc/" + pid, ec))
        std::filesystem::remove_all(e.path(), ec);
    }
    dir_ = base / ("studio-fuzz-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_, ec);
    std::filesystem::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return dir_; }

  // Writes `size` bytes to <dir>/<name> (replacing it); returns its path. Aborts when the scratch
  // folder cannot be written (a broken setup, not a finding).
  std::filesystem::path write(const std::string& name, const uint8_t* data,
                              std::size_t size) const {
    const std::filesystem::path p = dir_ / name;
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    f.close();
    if (!f) std::abort();
    return p;
  }

  // Empties the folder (between inputs that write different file names).
  void clear() const {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
      std::filesystem::remove_all(e.path(), ec);
  }

 private:
  std::filesystem::path dir_;
};

// The input split at its first `max_parts - 1` NUL bytes (the last part keeps any later ones): the
// targets that read several files take one part per file.
inline std::vector<std::string> split_at_nul(const uint8_t* data, std::size_t size,
                                             std::size_t max_parts) {
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() < max_parts)
      parts.emplace_back();
    else
      parts.back().push_back(static_cast<char>(data[i]));
  }
  return parts;
}

// One folder for the whole run (a function-local static: destroyed, and so removed, at exit).
inline const TempDir& temp_dir() {
  static const TempDir dir;
  return dir;
}

}  // namespace studio::fuzz
