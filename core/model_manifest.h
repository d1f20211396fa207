// Integrity of model folders: a SHA-256 manifest of every file (sha256sum's format, so
// `sha256sum -c` reads it too), a check of a folder against it, and one folder digest that a job
// can pin so a silently changed checkpoint is refused before it is used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace studio {

// The manifest's default name inside the folder; it never lists itself.
inline constexpr const char* kModelManifestName = "studio.sha256";

struct ManifestEntry {
  std::string sha256;  // lowercase hex
  std::string path;    // relative to the folder, '/'-separated
  uint64_t bytes = 0;
};

// Every regular file under `dir` (recursively, symlinks followed, the manifest and dot-files
// skipped), hashed, sorted by path. IoError naming the file when one cannot be read.
std::vector<ManifestEntry> hash_model_folder(const std::filesystem::path& dir);

// "<sha256>  <path>\n" per entry, in order.
std::string manifest_text(const std::vector<ManifestEntry>& entries);

// The folder digest: SHA-256 of manifest_text; equal digests mean equal file sets and bytes.
std::string folder_digest(const std::vector<ManifestEntry>& entries);

// Parses a manifest file (sha256sum's text format, "<64 hex>  <path>" or "<64 hex> *<path>";
// blank lines and '#' comments skipped). FormatError naming the file and line.
std::vector<ManifestEntry> read_manifest(const std::filesystem::path& file);

struct ManifestCheck {
  std::vector<std::string> missing;  // listed but not in the folder
  std::vector<std::string> changed;  // listed with another SHA-256
  std::vector<std::string> extra;    // in the folder but not listed
  std::size_t ok = 0;
  bool passed() const { return missing.empty() && changed.empty() && extra.empty(); }
};

// The folder against a manifest (default: DIR/studio.sha256).
ManifestCheck verify_model_folder(const std::filesystem::path& dir,
                                  const std::filesystem::path& manifest = {});

// Throws ConfigError when the folder's digest is not `expected_digest` (64 hex; the value
// `studio models hash` prints), naming the folder, `what` (e.g. "models.image" of a job) and the
// files that differ from the folder's manifest when it has one.
void require_folder_digest(const std::filesystem::path& dir, const std::string& expected_digest,
                           const std::string& what);

}  // namespace studio
