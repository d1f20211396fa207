// Keeping file access inside a folder: a run's outputs are written, and the review page serves
// files, only where the resolved path (symbolic links followed) stays inside the run folder.
#pragma once

#include <filesystem>

namespace studio {

// True when `path` is `root` or inside it, compared component by component (no string-prefix
// mistakes such as /runs/a vs /runs/ab). Both must already be resolved (canonical).
bool path_within(const std::filesystem::path& root, const std::filesystem::path& path);

// `root / relative` for writing, after checking that `relative` is relative, has no ".." and
// resolves (existing symbolic links followed) inside `root`; creates its parent folders. IoError
// naming the path and where it leads otherwise, so a link planted in a run folder cannot make a
// job write elsewhere.
std::filesystem::path confined_output_path(const std::filesystem::path& root,
                                           const std::filesystem::path& relative);

}  // namespace studio
