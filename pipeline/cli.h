// The `studio` command line: one entry point, subcommands registered by their own files.
#pragma once

namespace studio {

// Exit codes (documented in README.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,     // a studio::Error: bad input, missing file, invalid config
  kExitUsage = 2,     // invalid command line
  kExitInternal = 3,  // an unexpected exception (a bug: please report it)
  kExitRejected = 4,  // finished, but the result failed its checks (e.g. a caption's rules)
};

int run_cli(int argc, char** argv);

}  // namespace studio
