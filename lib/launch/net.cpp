// zinf::launch — master port and address checks.
#include "launch/net.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace zinf::launch {
namespace {

// Inodes of sockets listening on `port` (state 0A) in /proc/net/tcp or tcp6.
std::set<std::string> listening_inodes(int port) {
  std::set<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      if (!(fields >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode)) continue;
      const auto colon = local.rfind(':');
      if (colon == std::string::npos || state != "0A") continue;
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) inodes.insert(inode);
    }
  }
  return inodes;
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string command_line(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : raw)
    if (c == '\0') c = ' ';
  raw = text::trim(raw);
  if (raw.size() > 80) raw = raw.substr(0, 77) + "...";
  return raw.empty() ? first_line("/proc/" + pid + "/comm") : raw;
}

}  // namespace

std::string port_holder(int port) {
  const std::set<std::string> inodes = listening_inodes(port);
  if (inodes.empty()) return {};
  DIR* proc = ::opendir("/proc");
  if (!proc) return {};
  std::string found;
  while (dirent* e = ::readdir(proc)) {
    const std::string pid = e->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string fd_dir = "/proc/" + pid + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (!fds) continue;  // another user's process
    while (dirent* f = ::readdir(fds)) {
      char target[64] = {0};
      const std::string link = fd_dir + "/" + f->d_name;
      const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      const std::string t(target, static_cast<std::size_t>(n));
      if (text::starts_with(t, "socket:[") && inodes.count(t.substr(8, t.size() - 9))) {
        found = "pid " + pid + " (" + command_line(pid) + ")";
        break;
      }
    }
    ::closedir(fds);
    if (!found.empty()) break;
  }
  ::closedir(proc);
  return found;
}

void check_port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error("cannot open a TCP socket to check port " + std::to_string(port) + ": " + errno_text(errno));
  // The rendezvous store sets SO_REUSEADDR too: a port in TIME_WAIT is usable, a listener is not.
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc == 0) rc = ::listen(fd, 1);
  const int err = errno;
  ::close(fd);
  if (rc == 0) return;
  if (err == EADDRINUSE) {
    const std::string holder = port_holder(port);
    throw UsageError("master port " + std::to_string(port) + " is in use" +
                         (holder.empty() ? std::string() : " by " + holder),
                     "port in use, pick another with --master-port");
  }
  if (err == EACCES)
    throw UsageError("master port " + std::to_string(port) + " needs privileges to bind (" + errno_text(err) + ")",
                     "pick a port above 1023 with --master-port");
  throw UsageError("cannot bind master port " + std::to_string(port) + ": " + errno_text(err),
                   "pick another with --master-port");
}

bool is_local_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return false;
  bool local = false;
  for (addrinfo* a = res; a && !local; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    // Port 0: any free port; binding succeeds only for this machine's addresses.
    local = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return local;
}

void check_resolvable(const std::string& host, const std::string& flag) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (res) ::freeaddrinfo(res);
  if (rc != 0)
    throw UsageError(flag + " '" + host + "' does not resolve: " + ::gai_strerror(rc),
                     "give node 0's hostname or IP address as every node can reach it");
}

}  // namespace zinf::launch
