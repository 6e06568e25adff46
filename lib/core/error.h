// zinf::core — errors.
// Implements: zinf::Error, the one exception every user-facing failure is
// thrown as. It carries a message (what went wrong, with the values involved)
// and a hint (what the user can do about it). apps/ prints both and exits with
// the error's exit code; lib/ never prints-and-exits.
#pragma once

#include <stdexcept>
#include <string>

namespace zinf {

// Exit codes apps/ returns. Kept small and stable so scripts can test them.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,       // a run failed (I/O error, diverged, dead rank, ...)
  kUsage = 2,         // bad flag, bad config value, malformed file
  kUnusable = 3,      // the machine cannot run what was asked (no space, no GPU)
  kInterrupted = 130, // stopped by SIGINT/SIGTERM after saving
};

class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string hint = {}, ExitCode code = ExitCode::kFailure)
      : std::runtime_error(message), hint_(std::move(hint)), code_(code) {}

  const std::string& hint() const { return hint_; }
  ExitCode code() const { return code_; }

 private:
  std::string hint_;
  ExitCode code_;
};

// A bad value or flag from the user: exit code 2.
inline Error UsageError(std::string message, std::string hint = {}) {
  return Error(std::move(message), std::move(hint), ExitCode::kUsage);
}

// errno as text, for messages: "No space left on device (ENOSPC)".
std::string errno_text(int err);

}  // namespace zinf
