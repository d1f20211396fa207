// Registration of CLI subcommands; each lives in its own <name>_command.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace studio {

// A subcommand's action, run after parsing; returns the process exit code.
using CommandAction = std::function<int()>;

// Each registers its subcommand on `app` and sets `*action` when that subcommand is chosen.
void add_models_command(CLI::App& app, CommandAction* action);
void add_image_command(CLI::App& app, CommandAction* action);
void add_bench_command(CLI::App& app, CommandAction* action);

}  // namespace studio
