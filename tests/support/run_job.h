// A small `studio run` job on the tiny fixture models (llada-tiny + starter tokenizer, sd-tiny) and
// what tests read back from its output folder; shared by the run tests and the Slurm tests.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace studio::test {

struct RunJobOptions {
  std::string output = "out";  // the job's "output", relative to its folder
  bool missing_photo = false;  // add an item whose photo does not exist (fails in decode)
  int extra_items = 0;         // products beyond the two named ones
  int visual_steps = 2;        // denoising steps per visual (slower items for timing-bound tests)
  bool edit = false;           // also edit each product's photo (../shared/data/photos/coffee.png)
};

// Writes DIR/job.json: 2 + extra_items items x (caption + visual [+ edit]) on one channel, tiny
// settings, rules every draft meets. Returns the job file.
std::filesystem::path write_run_job(const std::filesystem::path& dir,
                                    const RunJobOptions& options = {});

// Asset files (.txt, .png; not sidecars, journals, ledgers or previews/) under OUT and their bytes.
std::map<std::string, std::string> run_assets(const std::filesystem::path& out);

// Every line of every journal shard under OUT/journal.
std::vector<nlohmann::json> run_journal_lines(const std::filesystem::path& out);

}  // namespace studio::test
