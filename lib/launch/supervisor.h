// zinf::launch — starting the ranks and watching them until they are all gone.
// Implements: run(plan): one process per ChildSpec, each in its own process
// group with PR_SET_PDEATHSIG(SIGKILL) (a kill -9 of the launcher takes them
// down too); each child's stdout/stderr read through pipes and written out
// whole lines at a time with its "[rank N] " prefix; SIGINT/SIGTERM/SIGHUP
// forwarded to every rank's process group; the first rank to exit non-zero or
// die by a signal stops all the others (SIGTERM, SIGKILL after a grace
// period) and is named in the error. The launcher is the ranks' subreaper, so
// their own children are reaped too.
#pragma once

#include <string>

#include "launch/plan.h"

namespace zinf::launch {

struct RunOptions {
  double failure_grace_s = 5.0;   // after a rank fails: SIGTERM, then SIGKILL after this many seconds
  double signal_grace_s = 30.0;   // after a forwarded SIGINT/SIGTERM: time to save before SIGKILL
  std::string who = "zinf launch";  // prefix of the launcher's own notices on stderr
};

// How one child ended: "exited with code 3", "was killed by SIGKILL (signal 9)".
std::string describe_status(int wait_status);

// "SIGTERM" for 15; "signal 42" for names it does not know.
std::string signal_name(int sig);

// Checks the port (node 0) and the master address (other nodes), starts every
// child of `plan`, and returns when all of them are gone and every one exited
// 0. Throws Error (exit code 1) naming the first rank that failed and how, or
// Error with ExitCode::kInterrupted when the launcher was stopped by a signal.
// Throws UsageError before starting anything for a taken port or an address
// that does not resolve.
void run(const LaunchPlan& plan, const RunOptions& options = {});

}  // namespace zinf::launch
