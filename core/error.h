// One exception hierarchy for studio. Every message says what failed, where (file, JSON path,
// tensor name) and what the user can do about it, so a batch log line is actionable on its own.
#pragma once

#include <stdexcept>
#include <string>

namespace studio {

class Error : public std::runtime_error {
 public:
  // what: what failed; where: file / JSON path / tensor name (may be empty); hint: what to do.
  Error(std::string what, std::string where = {}, std::string hint = {});
  const std::string& what_failed() const { return what_; }
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }
  virtual const char* kind() const { return "error"; }

 private:
  std::string what_;
  std::string where_;
  std::string hint_;
};

// A file could not be read or has the wrong format (truncated, corrupt, unsupported).
class FormatError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "format error"; }
};

// A file or folder that should exist does not, or cannot be opened.
class IoError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "I/O error"; }
};

// The storage cannot take the output: disk full, a file-size limit (ulimit -f), a quota, a
// read-only or unwritable folder. Not the data's fault, so a batch stops taking work and keeps
// what is finished instead of failing every item that follows.
class StorageError : public IoError {
 public:
  using IoError::IoError;
  const char* kind() const override { return "storage error"; }
};

// True for errno values that mean the storage, not the data, is the problem (ENOSPC, EDQUOT, EFBIG,
// EROFS, EACCES, EPERM).
bool is_storage_errno(int err);

// Throws StorageError when `err` is a storage errno, else IoError (what + strerror(err)).
[[noreturn]] void throw_io_errno(int err, const std::string& what, const std::string& where,
                                 const std::string& hint = {});

// A configuration (config.json, scheduler config, job file, CLI option) is invalid.
class ConfigError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "configuration error"; }
};

// Weights do not match the model built from its config (missing/unexpected names, shapes).
class WeightsError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "weights error"; }
};

// A caller passed arguments that violate a function's contract (shape, range).
class UsageError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "usage error"; }
};

}  // namespace studio
