// Registration of CLI subcommands; each lives in its own <name>_command.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace studio {

// A subcommand's action, run after parsing; returns the process exit code.
using CommandAction = std::function<int()>;

// Each registers its subcommand on `app` and sets `*action` when that subcommand is chosen.
// Commands of the image stage exist only in builds with it (STUDIO_WITH_IMAGE, which defines
// STUDIO_HAVE_IMAGE); the CLI registers only what is built.
void add_models_command(CLI::App& app, CommandAction* action);
// `models hash|verify` under `models` (models_integrity_command.cpp).
void add_models_integrity_commands(CLI::App* models, CommandAction* action);
#ifdef STUDIO_HAVE_IMAGE
void add_image_command(CLI::App& app, CommandAction* action);
// `studio edit` (edit_command.cpp): a product photo edited by inversion, product kept.
void add_edit_command(CLI::App& app, CommandAction* action);
#endif
// `studio bench`; its `text` subcommand is added by add_bench_text_command (bench_text_command.cpp).
void add_bench_command(CLI::App& app, CommandAction* action);
void add_bench_text_command(CLI::App& bench, CommandAction* action);
// `studio bench run` (bench_run_command.cpp): peak memory of `studio run` as the job grows.
void add_bench_run_command(CLI::App& bench, CommandAction* action);
void add_text_command(CLI::App& app, CommandAction* action);  // `text`, `text edit`, `copy`
void add_run_command(CLI::App& app, CommandAction* action);   // `run` (runner.h)
// `studio plan JOB` (plan_command.cpp) and `studio presets list|show` (presets_command.cpp).
void add_plan_command(CLI::App& app, CommandAction* action);
void add_presets_command(CLI::App& app, CommandAction* action);
// `kpi report|merge|ingest` (kpi_command.cpp)
void add_kpi_command(CLI::App& app, CommandAction* action);
// `studio review RUN_DIR` (review_command.cpp): the local review page (review_server.h).
void add_review_command(CLI::App& app, CommandAction* action);
#ifdef STUDIO_HAVE_MESH
// `studio mesh info|convert|render|check` (mesh_command.cpp), in builds with STUDIO_WITH_MESH.
void add_mesh_command(CLI::App& app, CommandAction* action);
// `studio mesh generate` (mesh_generate_command.cpp): Point-E text/embedding -> GLB, added to the
// `mesh` command by add_mesh_command.
void add_mesh_generate_command(CLI::App& mesh, CommandAction* action);
// `studio bench mesh` (bench_mesh_command.cpp): Point-E stage timings at the real model sizes.
void add_bench_mesh_command(CLI::App& bench, CommandAction* action);
#endif
#ifdef STUDIO_HAVE_VIDEO
// `studio video probe|transcode` (video_command.cpp), in builds with STUDIO_WITH_VIDEO.
void add_video_command(CLI::App& app, CommandAction* action);
// `video generate` and the short form `video --model ...` (video_generate_command.cpp), in builds
// with both the video and the image stage.
void add_video_generate_command(CLI::App& video, CommandAction* action);
// `video edit` (video_edit_command.cpp): a clip edited by inversion; same builds as generate.
void add_video_edit_command(CLI::App& video, CommandAction* action);
// `studio bench video` (bench_video_command.cpp): the motion UNet step vs the image UNet.
void add_bench_video_command(CLI::App& bench, CommandAction* action);
#endif

}  // namespace studio
