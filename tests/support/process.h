// Running the built `studio` executable from tests: exit code and combined output.
#pragma once

#include <string>

namespace studio::test {

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr interleaved
};

// Runs a shell command line through /bin/sh.
ProcessResult run_command(const std::string& command_line);
// Runs `studio ARGS` through /bin/sh (args are passed as one shell-quoted string).
ProcessResult run_studio(const std::string& args);
// Single-quotes a string for /bin/sh.
std::string shell_quote(const std::string& s);

}  // namespace studio::test
