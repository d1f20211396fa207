// `studio models hash DIR` and `studio models verify DIR` (core/model_manifest.h): a SHA-256
// manifest of a model folder, a check against it, and the folder digest jobs pin.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/model_manifest.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"

namespace studio {

void add_models_integrity_commands(CLI::App* models, CommandAction* action) {
  namespace fs = std::filesystem;
  struct Options {
    std::string dir, manifest;
    bool print_only = false;
  };
  auto o = std::make_shared<Options>();
  auto* hash = models->add_subcommand(
      "hash",
      "Write DIR/studio.sha256 (every file's SHA-256, sha256sum's format) and print the folder "
      "digest a job pins as models.<stage>_sha256");
  hash->add_option("DIR", o->dir, "model folder")->required();
  hash->add_option("--manifest", o->manifest, "manifest file to write (default DIR/studio.sha256)");
  hash->add_flag("--print", o->print_only, "print the manifest instead of writing it");
  hash->callback([action, o] {
    *action = [o] {
      const auto entries = hash_model_folder(o->dir);
      if (entries.empty())
        throw UsageError("the folder has no files to hash", o->dir, "give a model folder");
      const std::string text = manifest_text(entries);
      if (o->print_only) {
        std::cout << text;
      } else {
        const fs::path file =
            o->manifest.empty() ? fs::path(o->dir) / kModelManifestName : fs::path(o->manifest);
        write_file_atomic(file, text);
        uint64_t bytes = 0;
        for (const auto& e : entries) bytes += e.bytes;
        std::cerr << fmt::format("wrote {}: {} file(s), {:.1f} MiB hashed\n", file.string(),
                                 entries.size(), double(bytes) / (1024.0 * 1024.0));
      }
      std::cout << "digest " << folder_digest(entries) << "\n";
      return kExitOk;
    };
  });

  auto v = std::make_shared<Options>();
  auto* verify = models->add_subcommand(
      "verify",
      "Check a model folder against its SHA-256 manifest (studio models hash); exit 1 "
      "when a file is missing, changed or not listed");
  verify->add_option("DIR", v->dir, "model folder")->required();
  verify->add_option("--manifest", v->manifest, "manifest file (default DIR/studio.sha256)");
  verify->callback([action, v] {
    *action = [v] {
      const ManifestCheck c = verify_model_folder(v->dir, v->manifest);
      for (const auto& p : c.changed) std::cout << "CHANGED  " << p << "\n";
      for (const auto& p : c.missing) std::cout << "MISSING  " << p << "\n";
      for (const auto& p : c.extra) std::cout << "EXTRA    " << p << "\n";
      std::cout << fmt::format("{}: {} ok, {} changed, {} missing, {} not listed: {}\n", v->dir,
                               c.ok, c.changed.size(), c.missing.size(), c.extra.size(),
                               c.passed() ? "verified" : "FAILED");
      if (!c.passed())
        std::cerr << "studio models verify: the folder differs from its manifest; restore the "
                     "files, or if the change is intended write a new manifest with `studio "
                     "models hash`\n";
      return c.passed() ? kExitOk : kExitError;
    };
  });
}

}  // namespace studio
