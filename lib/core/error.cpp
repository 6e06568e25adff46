// zinf::core — errno formatting for error messages.
#include "core/error.h"

#include <cerrno>
#include <cstring>

namespace zinf {

std::string errno_text(int err) {
  const char* name = nullptr;
  switch (err) {
    case ENOSPC: name = "ENOSPC"; break;
    case EIO: name = "EIO"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case EROFS: name = "EROFS"; break;
    case ENOENT: name = "ENOENT"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case EINVAL: name = "EINVAL"; break;
    case EEXIST: name = "EEXIST"; break;
    case EDQUOT: name = "EDQUOT"; break;
    case ENOMEM: name = "ENOMEM"; break;
    case EAGAIN: name = "EAGAIN"; break;
    case EBADF: name = "EBADF"; break;
    case EFBIG: name = "EFBIG"; break;
    case EOPNOTSUPP: name = "EOPNOTSUPP"; break;
    default: break;
  }
  std::string text = std::strerror(err);
  if (name) text += std::string(" (") + name + ")";
  return text;
}

}  // namespace zinf
