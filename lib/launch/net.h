// zinf::launch — network checks made before any rank starts.
// Implements: "is the master port free here?" (with the process that holds it,
// read from /proc/net/tcp{,6} and /proc/<pid>/fd) and "does the master
// address resolve?", so a taken port or a typo in --master-addr is one clear
// error at start instead of ranks timing out in the rendezvous.
#pragma once

#include <string>

namespace zinf::launch {

// Throws UsageError when a TCP listener on `port` cannot be opened on this
// host, naming the process that holds it when /proc says.
void check_port_free(int port);

// "pid 1234 (python3 train.py)" for a process listening on TCP `port`, or ""
// when none is found (another user's process, or no permission to look).
std::string port_holder(int port);

// True when `host` resolves to an address of this machine (one it can bind).
bool is_local_host(const std::string& host);

// Throws UsageError when `host` does not resolve to an address.
void check_resolvable(const std::string& host, const std::string& flag);

}  // namespace zinf::launch
