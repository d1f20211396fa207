// `studio run`: a job's plan executed as a oneTBB flow graph — decode inputs (parallel CPU) ->
// text (serial per device) -> image (serial per device) -> encode/write (parallel CPU) -> journal
// and KPI ledger (serial, in plan order) — with a limiter bounding the items in flight, crash-safe
// outputs, resume from the journal, sharding, and SIGTERM/SIGINT handled as "stop intake, finish,
// flush, exit 75" so Slurm / Kubernetes can requeue.
#pragma once

#include <cstdint>
#include <string>

namespace studio {

struct RunOptions {
  std::string job_file;
  std::string presets_dir;  // "" = default lookup
  bool resume = false;      // continue a run whose journal exists (required to reuse an output)
  // A revision round (pipeline/revision.h): make only the revisions of the assets reviewers sent
  // back in RUN_DIR/review.jsonl; resumable by running it again.
  bool revise = false;
  // Shard i of n (0-based). n = 0: from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT (relative to
  // SLURM_ARRAY_TASK_MIN) or JOB_COMPLETION_INDEX / STUDIO_SHARDS, else 0 of 1.
  int64_t shard_index = 0;
  int64_t shard_count = 0;
  std::string progress = "auto";  // auto (bars on a terminal), json (events on stdout), none
  std::string device = "auto";
  std::string dtype = "auto";
  int64_t max_in_flight = 4;  // work items between intake and the journal
  // Visuals of the same size, steps, guidance and scheduler run as one batch of up to this many
  // rows (image/sd_batch.h), taken from those waiting for the image stage. 1 = one at a time.
  int64_t image_batch = 1;
  double grace_seconds = 60;  // after SIGTERM/SIGINT: time for in-flight items to finish
};

// Exit codes beyond cli.h's: 75 (EX_TEMPFAIL) when stopped by a signal before the end: the run
// is resumable and should be requeued.
constexpr int kExitInterrupted = 75;
// 74 (EX_IOERR) when the output storage stopped taking files (disk full, a file-size limit, a
// read-only folder): intake stopped, finished items are kept; fix the storage, then --resume.
constexpr int kExitStorage = 74;

// Crash drills (tests): STUDIO_TEST_KILL="write:N" raises SIGKILL right after the N-th asset file
// of this process is written (before its journal line), "journal:N" right after the N-th journal
// line: a real kill at a chosen point.
//
// Runs the job; returns 0 when every work item of the shard is done, 1 when some failed (each
// recorded in the journal and ledger with its stage and reason), 75 when interrupted.
int run_job(const RunOptions& options);

}  // namespace studio
