// Crash-safe file output: write to a temporary name beside the target, fsync, rename over it.
// A reader never sees a half-written file; a killed writer leaves only a stray *.tmp-* file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace studio {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();  // discards the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // fsync the data, rename onto the target, fsync the directory.
  void commit();
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Convenience: atomically replace `path` with `content`.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);

}  // namespace studio
