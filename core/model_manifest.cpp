#include "core/model_manifest.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include "core/hash.h"

namespace fs = std::filesystem;

namespace studio {
namespace {

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
         });
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<ManifestEntry> hash_model_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError("not a folder", dir.string(), "give the model folder (e.g. models/sd15)");
  std::vector<ManifestEntry> out;
  const auto options = fs::directory_options::follow_directory_symlink;
  for (auto it = fs::recursive_directory_iterator(dir, options, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path rel = fs::relative(it->path(), dir);
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    if (rel == kModelManifestName) continue;
    ManifestEntry e;
    e.path = rel.generic_string();
    e.bytes = uint64_t(fs::file_size(it->path()));
    e.sha256 = sha256_file_hex(it->path());
    out.push_back(std::move(e));
  }
  if (ec) throw IoError("cannot list the folder: " + ec.message(), dir.string());
  std::sort(out.begin(), out.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.path < b.path; });
  return out;
}

std::string manifest_text(const std::vector<ManifestEntry>& entries) {
  std::string s;
  for (const auto& e : entries) s += e.sha256 + "  " + e.path + "\n";
  return s;
}

std::string folder_digest(const std::vector<ManifestEntry>& entries) {
  return sha256_hex(manifest_text(entries));
}

std::vector<ManifestEntry> read_manifest(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw IoError("cannot open the manifest", file.string(),
                  "write one with: studio models hash " + file.parent_path().string());
  std::vector<ManifestEntry> out;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.find(' ');
    const std::string hash = sp == std::string::npos ? line : lower(line.substr(0, sp));
    if (sp == std::string::npos || !is_hex64(hash) || sp + 2 > line.size() ||
        (line[sp + 1] != ' ' && line[sp + 1] != '*') || sp + 2 == line.size())
      throw FormatError(
          "line " + std::to_string(n) + " is not \"<64 hex digits>  <path>\" (sha256sum's format)",
          file.string() + ":" + std::to_string(n),
          "write the manifest again with: studio models hash DIR");
    ManifestEntry e;
    e.sha256 = hash;
    e.path = line.substr(sp + 2);
    out.push_back(std::move(e));
  }
  return out;
}

ManifestCheck verify_model_folder(const fs::path& dir, const fs::path& manifest) {
  const fs::path file = manifest.empty() ? dir / kModelManifestName : manifest;
  const std::vector<ManifestEntry> listed = read_manifest(file);
  const std::vector<ManifestEntry> actual = hash_model_folder(dir);
  std::map<std::string, std::string> have;
  for (const auto& e : actual) have[e.path] = e.sha256;
  ManifestCheck c;
  std::set<std::string> seen;
  for (const auto& e : listed) {
    seen.insert(e.path);
    const auto it = have.find(e.path);
    if (it == have.end())
      c.missing.push_back(e.path);
    else if (it->second != e.sha256)
      c.changed.push_back(e.path);
    else
      ++c.ok;
  }
  for (const auto& e : actual)
    if (!seen.count(e.path)) c.extra.push_back(e.path);
  return c;
}

void require_folder_digest(const fs::path& dir, const std::string& expected,
                           const std::string& what) {
  const std::string want = lower(expected);
  if (!is_hex64(want))
    throw ConfigError(
        what + ": the pinned digest must be 64 hex digits, found \"" + expected + "\"",
        dir.string(), "pin the value `studio models hash " + dir.string() + "` prints");
  const std::vector<ManifestEntry> actual = hash_model_folder(dir);
  const std::string got = folder_digest(actual);
  if (got == want) return;
  std::string detail;
  if (fs::exists(dir / kModelManifestName)) {
    const ManifestCheck c = verify_model_folder(dir);
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 5; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 5) s += ", ...";
      return s;
    };
    if (!c.changed.empty()) detail += "; changed since its manifest: " + list(c.changed);
    if (!c.missing.empty()) detail += "; missing: " + list(c.missing);
    if (!c.extra.empty()) detail += "; not in its manifest: " + list(c.extra);
  }
  throw ConfigError(what + ": the model folder is not the pinned one (digest " + got.substr(0, 16) +
                        "..., pinned " + want.substr(0, 16) + "...)" + detail,
                    dir.string(),
                    "restore the pinned checkpoint, or check the new one and pin its digest "
                    "(studio models verify / studio models hash)");
}

}  // namespace studio
