// zinf::core — the version of this build (set by CMake from project()).
#include "core/version.h"

namespace zinf {

std::string version() { return ZINF_VERSION_STRING; }

}  // namespace zinf
