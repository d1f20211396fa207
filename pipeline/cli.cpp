#include "pipeline/cli.h"

#include <csignal>
#include <iostream>

#include "core/device.h"
#include "core/error.h"
#include "core/limits.h"
#include "pipeline/commands.h"

namespace studio {

namespace {

// The options that carry a prompt or text for a model, in every command that has them.
const char* const kPromptOptions[] = {"--prompt",        "--negative",    "--negative-prompt",
                                      "--source-prompt", "--instruction", "--text"};

// STUDIO_LIMIT_PROMPT_CHARS on the prompt options of the chosen (sub)commands: one check for
// every command, before its action loads anything.
void check_prompt_options(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands()) {
    for (const CLI::Option* opt : sub->get_options()) {
      const std::string name = opt->get_name();
      for (const char* prompt_option : kPromptOptions)
        if (name == prompt_option)
          for (const std::string& value : opt->results()) check_prompt_chars(value, name);
    }
    check_prompt_options(*sub);
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  // A bad STUDIO_LIMIT_* variable fails every command the same way, before options are built
  // (their defaults read the limits).
  try {
    resource_limits();
  } catch (const Error& e) {
    std::cerr << "studio: " << e.kind() << ": " << e.what() << "\n";
    return kExitError;
  }
  CLI::App app{
      "studio: batch generation of marketing assets (captions, product photos, video, 3D) with "
      "diffusion models",
      "studio"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("studio ") + STUDIO_VERSION + " (" + runtime_summary() + ")");
  app.footer(
      "Exit codes: 0 ok, 1 error (message says what, where, what to do), 2 invalid "
      "command line, 3 internal error, 4 finished but the result failed its checks.\nRun 'studio "
      "COMMAND --help' for a command's options.");

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

  // Over a file-size limit (ulimit -f) a write fails with EFBIG and a clear error instead of the
  // process being killed by SIGXFSZ mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    check_prompt_options(app);
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
