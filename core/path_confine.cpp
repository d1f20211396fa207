#include "core/path_confine.h"

#include "core/error.h"

namespace fs = std::filesystem;

namespace studio {

bool path_within(const fs::path& root, const fs::path& path) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

fs::path confined_output_path(const fs::path& root, const fs::path& relative) {
  if (relative.empty() || relative.is_absolute())
    throw IoError("refusing to write outside the run folder: \"" + relative.string() +
                      "\" is not a relative path",
                  root.string());
  for (const auto& part : relative)
    if (part == "..")
      throw IoError(
          "refusing to write outside the run folder: \"" + relative.string() + "\" has a \"..\"",
          root.string());
  std::error_code ec;
  const fs::path base = fs::canonical(root, ec);
  if (ec) throw IoError("cannot open the run folder: " + ec.message(), root.string());
  const fs::path target = root / relative;
  // Resolved before anything is created: the existing part of the path with its links followed.
  const fs::path resolved = fs::weakly_canonical(target, ec);
  if (ec || !path_within(base, resolved))
    throw IoError("refusing to write outside the run folder: " + target.string() + " resolves to " +
                      (ec ? std::string("an unresolvable path") : resolved.string()),
                  root.string(),
                  "remove the symbolic link that leads out of the run folder, then run with "
                  "--resume");
  fs::create_directories(target.parent_path(), ec);
  if (ec)
    throw_io_errno(ec.value(), "cannot create the folder", target.parent_path().string(),
                   is_storage_errno(ec.value()) ? std::string() : "check the run folder");
  return target;
}

}  // namespace studio
