// zinf::core — the version of this build.
#pragma once

#include <string>

namespace zinf {

// "0.1.0"
std::string version();

}  // namespace zinf
