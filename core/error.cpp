#include "core/error.h"

#include <cerrno>
#include <cstring>

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

bool is_storage_errno(int err) {
  return err == ENOSPC || err == EDQUOT || err == EFBIG || err == EROFS || err == EACCES ||
         err == EPERM;
}

void throw_io_errno(int err, const std::string& what, const std::string& where,
                    const std::string& hint) {
  const std::string msg = what + ": " + std::strerror(err);
  if (is_storage_errno(err)) {
    std::string h = hint;
    if (h.empty())
      h = err == EFBIG ? "a file-size limit (ulimit -f) stopped the write: raise it"
          : err == EROFS || err == EACCES || err == EPERM ? "make the output folder writable"
                                                          : "free disk space";
    throw StorageError(msg, where, h);
  }
  throw IoError(msg, where, hint);
}

}  // namespace studio
