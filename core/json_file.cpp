#include "core/json_file.h"

#include <fstream>
#include <sstream>

namespace studio {

std::string read_file_bytes(const std::filesystem::path& path, const std::string& missing_hint) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw IoError("file not found", path.string(), missing_hint);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open file", path.string(), "check its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("read failed", path.string(), "check the disk and the file");
  return ss.str();
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  const std::string text = read_file_bytes(path, "check that it exists and is readable");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Translate the byte offset into line:column.
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw ConfigError(std::string("invalid JSON at line ") + std::to_string(line) + ", column " +
                          std::to_string(col) + ": " + e.what(),
                      path.string(), "fix the JSON syntax");
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("invalid JSON: ") + e.what(), path.string(),
                      "fix the value in the file");
  }
}

}  // namespace studio
