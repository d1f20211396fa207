// `studio run JOB`: the batch studio (see pipeline/runner.h).
#include <regex>

#include "core/error.h"
#include "pipeline/commands.h"
#include "pipeline/runner.h"

namespace studio {

void add_run_command(CLI::App& app, CommandAction* action) {
  auto o = std::make_shared<RunOptions>();
  auto shard = std::make_shared<std::string>();
  auto* run = app.add_subcommand(
      "run", "run a job file: captions and visuals for every item and channel, crash-safe "
             "(--resume), shardable, with a KPI ledger; exit 75 when stopped by a signal");
  run->add_option("job", o->job_file, "job file (JSON; see docs/jobs.md)")->required();
  run->add_flag("--resume", o->resume,
                "continue the run in the job's output folder: finished assets whose files are "
                "intact are kept, the rest is made");
  run->add_flag("--revise", o->revise,
                "a revision round: re-make only the assets reviewers rejected or sent back for "
                "revision in the run's review.jsonl (studio review), as <name>.rN.<ext>; run it "
                "again to resume it");
  run->add_option("--shard", *shard,
                  "I/N: make shard I (0-based) of N, chosen by work-item id (default: from "
                  "SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX + STUDIO_SHARDS, else 0/1)");
  run->add_option("--presets", o->presets_dir, "presets folder (default: the shipped presets/)");
  run->add_option("--progress", o->progress,
                  "auto (bars on a terminal), json (one event per line on stdout), none");
  run->add_option("--device", o->device, "auto, cpu, cuda or cuda:N");
  run->add_option("--dtype", o->dtype, "auto, fp32, fp16 or bf16");
  run->add_option("--max-in-flight", o->max_in_flight,
                  "work items between intake and the journal (bounds memory; default 4)");
  run->add_option("--image-batch", o->image_batch,
                  "batch up to N waiting visuals of the same size, steps, guidance and scheduler "
                  "into one UNet batch (default 1: one at a time, byte-reproducible)");
  run->add_option("--grace", o->grace_seconds,
                  "seconds in-flight items get after SIGTERM/SIGINT (default 60)");
  run->callback([action, o, shard] {
    if (!shard->empty()) {
      static const std::regex re("^(\\d+)/(\\d+)$");
      std::smatch m;
      if (!std::regex_match(*shard, m, re) || std::stoll(m[2]) < 1)
        throw CLI::ValidationError("--shard", "expected I/N with N >= 1, got '" + *shard + "'");
      o->shard_index = std::stoll(m[1]);
      o->shard_count = std::stoll(m[2]);
    }
    *action = [o] { return run_job(*o); };
  });
}

}  // namespace studio
