#include "tests/support/process.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "tests/support/fixtures.h"

namespace studio::test {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

ProcessResult run_command(const std::string& command_line) {
  ProcessResult r;
  FILE* p = ::popen((command_line + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

ProcessResult run_studio(const std::string& args) {
  return run_command(shell_quote(studio_exe().string()) + " " + args);
}

}  // namespace studio::test
