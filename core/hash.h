// SHA-256 (OpenSSL) of files and strings: model hashes for provenance and integrity checks.
#pragma once

#include <filesystem>
#include <string>

namespace studio {

std::string sha256_hex(const std::string& data);
// Streams the file; IoError if unreadable.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace studio
