// Outputs stay inside the run folder (core/path_confine.h): relative paths only, no "..", and a
// symbolic link planted in a run folder cannot make `studio run` write elsewhere: that item fails
// with a clear error, nothing is created outside, the other items are made.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/path_confine.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"

using namespace studio;
namespace fs = std::filesystem;

TEST_CASE("path_within compares whole components", "[confine]") {
  CHECK(path_within("/runs/a", "/runs/a"));
  CHECK(path_within("/runs/a", "/runs/a/x/y.png"));
  CHECK_FALSE(path_within("/runs/a", "/runs/ab/x.png"));
  CHECK_FALSE(path_within("/runs/a", "/runs"));
  CHECK_FALSE(path_within("/runs/a", "/etc/passwd"));
}

TEST_CASE("confined_output_path refuses paths that leave the run folder", "[confine]") {
  const fs::path root = test::temp_dir("confine") / "run";
  const fs::path outside = test::temp_dir("confine_outside");
  fs::create_directories(root);
  CHECK(confined_output_path(root, "MUG/web/caption.txt") == root / "MUG/web/caption.txt");
  CHECK(fs::is_directory(root / "MUG" / "web"));
  CHECK_THROWS_AS(confined_output_path(root, "/etc/x.txt"), IoError);
  CHECK_THROWS_AS(confined_output_path(root, "MUG/../../x.txt"), IoError);
  CHECK_THROWS_AS(confined_output_path(root, ""), IoError);

  fs::create_directory_symlink(outside, root / "LINKED");
  try {
    confined_output_path(root, "LINKED/web/caption.txt");
    FAIL("a link out of the run folder was followed");
  } catch (const IoError& e) {
    const std::string m = e.what();
    CHECK(m.find("refusing to write outside the run folder") != std::string::npos);
    CHECK(m.find(outside.string()) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(outside / "web"));  // nothing created out there

  // A link that stays inside is fine.
  fs::create_directories(root / "real");
  fs::create_directory_symlink(root / "real", root / "INSIDE");
  CHECK_NOTHROW(confined_output_path(root, "INSIDE/web/x.txt"));
}

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("studio run never writes through a link out of its run folder", "[confine][run]") {
  const fs::path dir = test::temp_dir("confine_run");
  const fs::path outside = test::temp_dir("confine_run_outside");
  const fs::path job = test::write_run_job(dir);
  fs::create_directories(dir / "out");
  fs::create_directory_symlink(outside, dir / "out" / "MUG-001");
  const auto r = test::run_command(test::shell_quote(test::studio_exe().string()) + " run " +
                                   test::shell_quote(job.string()) + " --progress none 2>&1");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("refusing to write outside the run folder") != std::string::npos);
  CHECK(fs::is_empty(outside));
  fs::remove(dir / "out" / "MUG-001");
  const auto assets = test::run_assets(dir / "out");
  CHECK(assets.size() == 2);  // BAG-002's caption and visual
  for (const auto& [path, bytes] : assets) CHECK(path.rfind("BAG-002/", 0) == 0);
}
#endif
