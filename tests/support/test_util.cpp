// Test support: temporary directories, small mounts, and running programs (posix_spawn, or in the background).
#include "support/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "core/fs.h"

extern char** environ;

namespace zinf::test {

TempDir::TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/" + tag + ".XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + templ);
  path_ = buf.data();
}

TempDir::~TempDir() {
  ::chmod(path_.c_str(), 0700);  // a test may have made it read-only
  zinf::fs::remove_all(path_);
}

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env, const std::vector<std::string>& unset) {
  char out_path[] = "/tmp/zinf-run-out.XXXXXX";
  char err_path[] = "/tmp/zinf-run-err.XXXXXX";
  const int out_fd = ::mkstemp(out_path);
  const int err_fd = ::mkstemp(err_path);

  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& name : unset) merged.erase(name);
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings = {program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = 0;
  RunResult result;
  if (posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data()) == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_fd);
  ::close(err_fd);
  result.out = read_text(out_path);
  result.err = read_text(err_path);
  ::unlink(out_path);
  ::unlink(err_path);
  return result;
}

RunResult run_zinf(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> full = env;
  full.emplace("ZINF_PRESETS_DIR", std::string(ZINF_SOURCE_DIR) + "/presets");
  return run_program(ZINF_BINARY, args, full);
}

ScopedMount::ScopedMount(const std::string& dir, const char* type, const char* options)
    : dir_(dir), ok_(::mount(type, dir.c_str(), type, 0, options) == 0) {}

ScopedMount::~ScopedMount() {
  if (ok_) ::umount2(dir_.c_str(), MNT_DETACH);
}

std::string Background::out() const { return read_text(out_path); }
std::string Background::err() const { return read_text(err_path); }

bool Background::wait_exit(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {  // looks at least once, so a zero limit asks "has it exited?"
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    ::usleep(20000);
  }
}

Background::~Background() {
  if (!exit_code && pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

void start_zinf(Background& bg, const std::string& out_path, const std::string& err_path,
                const std::vector<std::string>& args) {
  bg.out_path = out_path;
  bg.err_path = err_path;
  std::vector<std::string> argv_s = {ZINF_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::setenv("ZINF_PRESETS_DIR", ZINF_SOURCE_DIR "/presets", 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  bg.pid = pid;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return std::string(e.what()) + " | hint: " + e.hint();
  }
  return "(no error)";
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

void write_llmc_u16(const std::string& path, const std::vector<std::uint16_t>& ids) {
  std::int32_t header[256] = {20240520, 1, static_cast<std::int32_t>(ids.size())};
  std::string bytes(sizeof header + 2 * ids.size(), '\0');
  std::memcpy(bytes.data(), header, sizeof header);
  std::memcpy(bytes.data() + sizeof header, ids.data(), 2 * ids.size());
  write_text(path, bytes);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

const std::string kGpt2TokenizerJson = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/tokenizers/gpt2/tokenizer.json";

std::string make_gpt2_tokenizer_dir(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kGpt2TokenizerJson, dir + "/tokenizer.json");
  write_text(dir + "/tokenizer_config.json", R"({"eos_token": "<|endoftext|>"})");
  return dir;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace zinf::test
