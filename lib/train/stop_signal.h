// zinf::train — stopping on SIGINT/SIGTERM.
// Implements: install_stop_signals(), which makes the first SIGINT or SIGTERM
// set a flag the training loop reads after each step (it then saves a
// checkpoint and exits with code 130); a second signal ends the process at
// once with the signal's default action.
#pragma once

#include <atomic>

namespace zinf::train {

const std::atomic<bool>& install_stop_signals();
// The signal that set the flag (0 when none).
int stop_signal_number();

}  // namespace zinf::train
