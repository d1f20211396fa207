#include "core/error.h"

namespace studio {
namespace {
std::string compose(const std::string& what, const std::string& where, const std::string& hint) {
  std::string msg;
  if (!where.empty()) msg += where + ": ";
  msg += what;
  if (!hint.empty()) msg += " (" + hint + ")";
  return msg;
}
}  // namespace

Error::Error(std::string what, std::string where, std::string hint)
    : std::runtime_error(compose(what, where, hint)),
      what_(std::move(what)),
      where_(std::move(where)),
      hint_(std::move(hint)) {}

}  // namespace studio
