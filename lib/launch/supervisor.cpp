// zinf::launch — the process supervisor behind `zinf launch`.
#include "launch/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <optional>
#include <algorithm>

#include "core/error.h"
#include "core/text.h"
#include "launch/net.h"

namespace zinf::launch {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxLine = 64 * 1024;  // bytes; longer lines are split
const int kHandled[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP};

// ---------------------------------------------------------------- output

void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our own stdout is gone (EPIPE): keep supervising, drop the text
    done += static_cast<std::size_t>(n);
  }
}

// One pipe from a child, copied to `out_fd` a whole line at a time.
struct Stream {
  int fd = -1;        // read end; -1 once closed
  int out_fd = 1;     // where its lines go (1 or 2)
  std::string buf;    // bytes read, not yet a whole line

  // Reads what is there; writes complete lines. Returns false at EOF.
  bool pump(const std::string& prefix) {
    char chunk[16384];
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      flush(prefix);
      ::close(fd);
      fd = -1;
      return false;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
    std::string out;
    std::size_t start = 0;
    for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
      out += prefix + buf.substr(start, nl - start + 1);
    buf.erase(0, start);
    if (buf.size() >= kMaxLine) {
      out += prefix + buf + "\n";
      buf.clear();
    }
    if (!out.empty()) write_all(out_fd, out);
    return true;
  }

  void flush(const std::string& prefix) {
    if (!buf.empty()) write_all(out_fd, prefix + buf + "\n");
    buf.clear();
  }
};

struct Child {
  const ChildSpec* spec = nullptr;
  pid_t pid = -1;        // also its process group id
  bool running = false;
  int status = 0;        // wait status once reaped
  Stream out, err;
  int lifeline = -1;     // write end of its stdin pipe, held open while we live
};

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void notice(const RunOptions& opt, const std::string& message) { write_all(2, opt.who + ": " + message + "\n"); }

// ---------------------------------------------------------------- the supervisor

class Supervisor {
 public:
  Supervisor(const LaunchPlan& plan, const RunOptions& opt) : plan_(plan), opt_(opt) {}

  ~Supervisor() {
    // Whatever happened, nothing we started outlives us.
    for (Child& c : children_) {
      if (c.running) {
        ::kill(-c.pid, SIGKILL);
        ::waitpid(c.pid, nullptr, 0);
      }
      for (int fd : {c.out.fd, c.err.fd, c.lifeline})
        if (fd >= 0) ::close(fd);
    }
    if (sigfd_ >= 0) ::close(sigfd_);
    if (masked_) ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
    if (sigpipe_saved_) ::sigaction(SIGPIPE, &old_sigpipe_, nullptr);
  }

  void run() {
    install_signals();
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    children_.reserve(plan_.children.size());
    for (const ChildSpec& spec : plan_.children) start(spec);
    loop();
    finish();
  }

 private:
  void install_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kHandled) sigaddset(&set, s);
    if (::sigprocmask(SIG_BLOCK, &set, &old_mask_) != 0) throw Error("sigprocmask failed: " + errno_text(errno));
    masked_ = true;
    sigfd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd_ < 0) throw Error("signalfd failed: " + errno_text(errno));
    // A closed stdout must not kill the launcher and leave the ranks unwatched.
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old_sigpipe_);
    sigpipe_saved_ = true;
  }

  void start(const ChildSpec& spec) {
    int out_pipe[2], err_pipe[2], exec_pipe[2], stdin_pipe[2] = {-1, -1};
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0 ||
        (spec.lifeline && ::pipe2(stdin_pipe, O_CLOEXEC) != 0))
      throw Error("cannot create pipes for " + spec.label + ": " + errno_text(errno),
                  "raise the open-file limit (ulimit -n)");
    // Everything the child needs is built before fork: no allocation after it.
    std::vector<std::string> argv_s = spec.argv;
    std::vector<std::string> env_s;
    for (const auto& [k, v] : spec.env) env_s.push_back(k + "=" + v);
    std::vector<char*> argv = c_strings(argv_s), envp = c_strings(env_s);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) throw Error("cannot fork " + spec.label + ": " + errno_text(errno));
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the launcher died before prctl took effect
      const int in_fd = spec.lifeline ? stdin_pipe[0] : ::open("/dev/null", O_RDONLY);
      ::dup2(in_fd, 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int s : kHandled) ::sigaction(s, &dfl, nullptr);
      ::sigaction(SIGPIPE, &dfl, nullptr);
      ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
      ::execvpe(argv[0], argv.data(), envp.data());
      const int err = errno;
      (void)!::write(exec_pipe[1], &err, sizeof(err));
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here, so a signal sent right away reaches the group
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    ::close(exec_pipe[1]);
    if (spec.lifeline) ::close(stdin_pipe[0]);

    Child c;
    c.spec = &spec;
    c.pid = pid;
    c.running = true;
    c.out.fd = out_pipe[0];
    c.out.out_fd = 1;
    c.err.fd = err_pipe[0];
    c.err.out_fd = 2;
    c.lifeline = stdin_pipe[1];
    ::fcntl(c.out.fd, F_SETFL, O_NONBLOCK);
    ::fcntl(c.err.fd, F_SETFL, O_NONBLOCK);
    children_.push_back(std::move(c));

    // exec either succeeds (the CLOEXEC pipe closes: EOF) or reports its errno.
    int exec_errno = 0;
    ssize_t n;
    do n = ::read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
    while (n < 0 && errno == EINTR);
    ::close(exec_pipe[0]);
    if (n == sizeof(exec_errno))
      throw Error("cannot start " + spec.label + ": " + spec.argv.front() + ": " + errno_text(exec_errno),
                  "check the command after `--`");
  }

  // ------------------------------------------------------------ event loop

  void loop() {
    while (any_running()) {
      std::vector<pollfd> fds;
      std::vector<Stream*> streams;
      fds.push_back({sigfd_, POLLIN, 0});
      const bool watch_stdin = plan_.lifeline_stdin && !lifeline_lost_;
      if (watch_stdin) fds.push_back({0, POLLIN, 0});
      for (Child& c : children_)
        for (Stream* s : {&c.out, &c.err})
          if (s->fd >= 0) {
            fds.push_back({s->fd, POLLIN, 0});
            streams.push_back(s);
          }
      int timeout_ms = -1;
      if (kill_deadline_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*kill_deadline_ - Clock::now()).count();
        timeout_ms = static_cast<int>(std::max<long long>(0, left));
      }
      const int rc = ::poll(fds.data(), fds.size(), timeout_ms);
      if (rc < 0 && errno != EINTR) throw Error("poll failed: " + errno_text(errno));
      std::size_t next = 1;
      if (watch_stdin) {
        if (rc > 0 && fds[1].revents) check_lifeline();
        next = 2;
      }
      for (std::size_t i = next; rc > 0 && i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        Stream* s = streams[i - next];
        for (Child& c : children_)
          if (&c.out == s || &c.err == s) s->pump(c.spec->prefix);
      }
      if (rc > 0 && fds[0].revents) read_signals();
      if (kill_deadline_ && Clock::now() >= *kill_deadline_) escalate();
    }
  }

  bool any_running() const {
    for (const Child& c : children_)
      if (c.running) return true;
    return false;
  }

  void read_signals() {
    signalfd_siginfo info;
    while (::read(sigfd_, &info, sizeof(info)) == sizeof(info)) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
      } else if (stop_signal_ != 0 || failed_ != nullptr) {
        // A second Ctrl-C (or one while a failure is being handled): the user
        // does not want to wait for the grace period.
        notice(opt_, "got " + signal_name(sig) + " while the ranks were stopping; killing them now");
        signal_all(SIGKILL);
        if (stop_signal_ == 0) stop_signal_ = sig;
      } else {
        stop_signal_ = sig;
        notice(opt_, "got " + signal_name(sig) + "; forwarding it to every rank (SIGKILL after " +
                         seconds(opt_.signal_grace_s) + " if they have not exited)");
        signal_all(sig);
        kill_deadline_ = deadline(opt_.signal_grace_s);
      }
    }
  }

  void check_lifeline() {
    char buf[256];
    const ssize_t n = ::read(0, buf, sizeof(buf));
    if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN))) return;  // data on the lifeline is ignored
    lifeline_lost_ = true;
    if (stop_signal_ != 0 || failed_ != nullptr) return;
    notice(opt_, "node 0's launcher is gone (stdin closed); stopping every rank");
    signal_all(SIGTERM);
    kill_deadline_ = deadline(opt_.failure_grace_s);
  }

  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      for (Child& c : children_) {
        if (c.pid != pid || !c.running) continue;
        c.running = false;
        c.status = status;
        // Its own children (a shell's sleep) go with it.
        ::kill(-c.pid, SIGKILL);
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && failed_ == nullptr && stop_signal_ == 0 && !lifeline_lost_) {
          failed_ = &c;
          if (any_running()) {
            notice(opt_, c.spec->label + " " + describe_status(status) + "; stopping the other ranks (SIGTERM, SIGKILL after " +
                             seconds(opt_.failure_grace_s) + ")");
            signal_all(SIGTERM);
            kill_deadline_ = deadline(opt_.failure_grace_s);
          }
        }
      }
      // Other pids are orphans of a rank, reparented to us (subreaper): reaped, nothing more.
    }
  }

  void escalate() {
    std::vector<std::string> slow;
    for (const Child& c : children_)
      if (c.running) slow.push_back(c.spec->label);
    if (!slow.empty())
      notice(opt_, text::join(slow, ", ") + " still running after the grace period; sending SIGKILL");
    signal_all(SIGKILL);
    kill_deadline_.reset();
  }

  void signal_all(int sig) {
    for (Child& c : children_)
      if (c.running) ::kill(-c.pid, sig);
  }

  // After every child is reaped: drain what is left in the pipes (a killed
  // group closes them at once; give stragglers a moment, never forever).
  void finish() {
    const auto until = deadline(2.0);
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<std::pair<Stream*, const std::string*>> streams;
      for (Child& c : children_)
        for (Stream* s : {&c.out, &c.err})
          if (s->fd >= 0) {
            fds.push_back({s->fd, POLLIN, 0});
            streams.push_back({s, &c.spec->prefix});
          }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*until - Clock::now()).count();
      if (fds.empty() || left <= 0) break;
      if (::poll(fds.data(), fds.size(), static_cast<int>(left)) <= 0) break;
      for (std::size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents) streams[i].first->pump(*streams[i].second);
    }
    for (Child& c : children_)
      for (Stream* s : {&c.out, &c.err})
        if (s->fd >= 0) {
          s->flush(c.spec->prefix);
          ::close(s->fd);
          s->fd = -1;
        }

    if (failed_ != nullptr) {
      std::string others;
      if (children_.size() > 1) others = "; the other ranks were stopped";
      const std::string& prefix = failed_->spec->prefix;
      throw Error(failed_->spec->label + " " + describe_status(failed_->status) + others,
                  prefix.empty() ? "that node's launcher printed the cause above"
                                 : "its output above is prefixed with " + prefix.substr(0, prefix.size() - 1));
    }
    if (stop_signal_ != 0)
      throw Error("stopped by " + signal_name(stop_signal_) + "; every rank has exited", {}, ExitCode::kInterrupted);
    if (lifeline_lost_)
      throw Error("stopped because node 0's launcher went away; every rank has exited");
  }

  static std::string seconds(double s) {
    std::string t = std::to_string(s);
    t.erase(t.find_last_not_of('0') + 1);
    if (!t.empty() && t.back() == '.') t.pop_back();
    return t + " s";
  }

  static std::optional<Clock::time_point> deadline(double s) {
    return Clock::now() + std::chrono::milliseconds(static_cast<long long>(s * 1000));
  }

  const LaunchPlan& plan_;
  const RunOptions& opt_;
  std::vector<Child> children_;
  int sigfd_ = -1;
  sigset_t old_mask_{};
  bool masked_ = false;
  struct sigaction old_sigpipe_ {};
  bool sigpipe_saved_ = false;
  int stop_signal_ = 0;                          // SIGINT/SIGTERM/SIGHUP we forwarded
  const Child* failed_ = nullptr;                // first rank to fail
  bool lifeline_lost_ = false;
  std::optional<Clock::time_point> kill_deadline_;  // when to SIGKILL the ranks still running
};

}  // namespace

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    default: return "signal " + std::to_string(sig);
  }
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    std::string s = "was killed by " + signal_name(sig) + " (signal " + std::to_string(sig) + ")";
    if (sig == SIGKILL) s += "; if nobody sent it, the kernel's out-of-memory killer may have (see dmesg)";
    if (WCOREDUMP(status)) s += ", core dumped";
    return s;
  }
  return "ended with wait status " + std::to_string(status);
}

void run(const LaunchPlan& plan, const RunOptions& options) {
  if (!plan.hostfile_first_host.empty() && !is_local_host(plan.hostfile_first_host))
    throw UsageError("this machine is not " + plan.hostfile_first_host +
                         ", the first host of the hostfile: node 0's ranks run where `zinf launch` runs",
                     "run `zinf launch --hostfile ...` on " + plan.hostfile_first_host +
                         ", or list this machine first in the hostfile");
  if (plan.check_port) check_port_free(plan.master_port);
  if (plan.nnodes > 1 && plan.node_rank > 0) check_resolvable(plan.master_addr, "--master-addr");
  Supervisor supervisor(plan, options);
  supervisor.run();
}

}  // namespace zinf::launch
