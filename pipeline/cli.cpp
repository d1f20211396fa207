#include "pipeline/cli.h"

#include <iostream>

#include "core/device.h"
#include "core/error.h"
#include "pipeline/commands.h"

namespace studio {

int run_cli(int argc, char** argv) {
  CLI::App app{
      "studio: batch generation of marketing assets (captions, product photos, video, 3D) with "
      "diffusion models",
      "studio"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("studio ") + STUDIO_VERSION + " (" +
                                        runtime_summary() + ")");
  app.footer("Exit codes: 0 ok, 1 error (message says what, where, what to do), 2 invalid "
             "command line, 3 internal error, 4 finished but the result failed its checks.\nRun 'studio COMMAND --help' for a command's options.");

  CommandAction action;
  add_models_command(app, &action);
#ifdef STUDIO_HAVE_IMAGE
  add_image_command(app, &action);
  add_edit_command(app, &action);
#endif
  add_bench_command(app, &action);
  add_text_command(app, &action);
  add_run_command(app, &action);
  add_plan_command(app, &action);
  add_presets_command(app, &action);
  add_kpi_command(app, &action);
  add_review_command(app, &action);
#ifdef STUDIO_HAVE_MESH
  add_mesh_command(app, &action);
#endif
#ifdef STUDIO_HAVE_VIDEO
  add_video_command(app, &action);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    return action ? action() : kExitUsage;
  } catch (const Error& e) {
    std::cerr << "studio: " << e.kind() << ": " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "studio: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
}

}  // namespace studio
