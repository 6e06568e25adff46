// Test support: temporary directories, small mounts, and running the built zinf binary (to completion or in the background).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace zinf::test {

// A fresh directory under $TMPDIR (or /tmp), removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "zinf-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;   // exit status, or 128 + signal
  std::string out;      // stdout
  std::string err;      // stderr
};

// Runs `program` with `args`; `env` entries are added to (or override) the
// current environment; variables named in `unset` are removed.
RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {},
                      const std::vector<std::string>& unset = {});

// Runs the built zinf binary (ZINF_BINARY).
RunResult run_zinf(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

// A filesystem mounted on `dir` for the life of the object (`type` "tmpfs"
// with options "size=24m" makes a small disk); ok() is false when this
// process may not mount (not root, or a container without CAP_SYS_ADMIN):
// tests then skip with a message.
class ScopedMount {
 public:
  ScopedMount(const std::string& dir, const char* type, const char* options);
  ~ScopedMount();
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  bool ok() const { return ok_; }

 private:
  std::string dir_;
  bool ok_;
};

// A program started in the background, stdout and stderr into files; killed
// (SIGKILL) and reaped on destruction unless wait_exit saw it exit.
struct Background {
  int pid = -1;
  std::string out_path, err_path;
  std::optional<int> exit_code;  // set by wait_exit: status, or 128 + signal

  std::string out() const;
  std::string err() const;
  // Waits up to `limit` for the program to exit; true when it did.
  bool wait_exit(std::chrono::milliseconds limit);
  ~Background();
};

// Starts the built zinf binary with `args` in `bg` (stdin from /dev/null).
void start_zinf(Background& bg, const std::string& out_path, const std::string& err_path,
                const std::vector<std::string>& args);

void write_text(const std::string& path, const std::string& text);
// An llm.c uint16 token file (magic 20240520, version 1) holding `ids`.
void write_llmc_u16(const std::string& path, const std::vector<std::uint16_t>& ids);

// "what | hint: hint" of the zinf::Error `fn` throws; "(no error)" when it
// throws none (so a CHECK on the message fails visibly).
std::string error_of(const std::function<void()>& fn);

// The committed GPT-2-style byte-level BPE fixture (600 ids).
extern const std::string kGpt2TokenizerJson;
// A tokenizer directory `dir` (created): that fixture and a
// tokenizer_config.json naming <|endoftext|> as EOS. Returns `dir`.
std::string make_gpt2_tokenizer_dir(const std::string& dir);

// A loopback TCP port nobody listens on right now.
int free_port();
std::string read_text(const std::string& path);

}  // namespace zinf::test
