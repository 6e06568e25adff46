// zinf::log — logging.
// Implements: leveled log lines to stderr (info/warn/error/debug) through
// spdlog, behind a plain std::string API so that translation units which see
// LibTorch's headers (and its bundled fmt) never see spdlog's. Also owns the
// "warn once" helper the engine uses for fallbacks (O_DIRECT refused, ...).
#pragma once

#include <string>

namespace zinf::log {

enum class Level { kDebug, kInfo, kWarn, kError, kOff };

void set_level(Level level);
Level level();
// "debug", "info", "warn", "error", "off"; throws UsageError otherwise.
Level parse_level(const std::string& name);

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

// Logs `message` as a warning the first time `key` is seen in this process.
void warn_once(const std::string& key, const std::string& message);

}  // namespace zinf::log
