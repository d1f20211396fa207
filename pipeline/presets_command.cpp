// `studio presets list`: the channel presets and tiers of the presets folder, each validated.
// `studio presets show NAME [--tier T]`: a channel preset resolved (tier overlay merged, defaults
// filled in) as JSON: exactly what a job's work items are made with.
#include <fmt/format.h>

#include <iostream>

#include "core/error.h"
#include "pipeline/commands.h"
#include "pipeline/presets.h"

namespace studio {

namespace {

struct PresetsOptions {
  std::string presets;
  std::string name;
  std::string tier;
};

int run_list(const PresetsOptions& o) {
  const PresetLibrary lib = PresetLibrary::find(o.presets);
  std::cout << "presets folder: " << lib.dir().string() << "\n\nchannels:\n";
  int bad = 0;
  auto row = [&](const std::string& name, const std::string& detail) {
    std::cout << fmt::format("  {:<20} {}\n", name, detail);
  };
  for (const auto& name : lib.channel_names()) {
    try {
      const auto p = lib.channel(name);
      std::string kinds;
      if (p.contains("caption")) kinds += "caption";
      if (p.contains("visual"))
        kinds += (kinds.empty() ? "" : " + ") +
                 fmt::format("visual {}x{}", p["visual"]["width"].get<int64_t>(),
                             p["visual"]["height"].get<int64_t>());
      row(name, kinds + (p["description"].get<std::string>().empty()
                             ? ""
                             : " - " + p["description"].get<std::string>()));
    } catch (const Error& e) {
      row(name, std::string("INVALID: ") + e.what());
      ++bad;
    }
  }
  std::cout << "\ntiers:\n";
  for (const auto& name : lib.tier_names()) {
    try {
      row(name, lib.tier(name)["description"].get<std::string>());
    } catch (const Error& e) {
      row(name, std::string("INVALID: ") + e.what());
      ++bad;
    }
  }
  if (bad > 0) {
    std::cerr << "studio presets: " << bad << " invalid preset file(s)\n";
    return 1;
  }
  return 0;
}

int run_show(const PresetsOptions& o) {
  const PresetLibrary lib = PresetLibrary::find(o.presets);
  std::cout << lib.resolve(o.name, o.tier).dump(2) << "\n";
  return 0;
}

}  // namespace

void add_presets_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand("presets", "List and show channel presets and tiers");
  cmd->require_subcommand(1);
  auto o = std::make_shared<PresetsOptions>();
  const std::string dir_help = "presets folder (default: $STUDIO_PRESETS, else the one beside studio)";

  auto* list = cmd->add_subcommand("list", "List the channel presets and tiers (validating each)");
  list->add_option("--presets", o->presets, dir_help);
  list->callback([action, o] { *action = [o] { return run_list(*o); }; });

  auto* show = cmd->add_subcommand("show", "Print a channel preset resolved with a tier, as JSON");
  show->add_option("name", o->name, "channel preset name")->required();
  show->add_option("--tier", o->tier, "tier whose overlay is merged in (draft, standard, final)");
  show->add_option("--presets", o->presets, dir_help);
  show->callback([action, o] { *action = [o] { return run_show(*o); }; });
}

}  // namespace studio
