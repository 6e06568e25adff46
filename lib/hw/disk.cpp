// zinf::hw — disk facts from statfs, /proc/self/mountinfo and /sys/dev/block.
#include "hw/disk.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace zinf::hw {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return text::trim(line);
}

// mountinfo escapes spaces etc. as \040 octal.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(oct, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct Mount {
  unsigned major = 0, minor = 0;
  std::string mount_point, fstype, source;
};

// The mount whose point is the longest prefix of `real` (the path with
// symlinks resolved).
bool find_mount(const std::string& real, Mount& best) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return false;
  std::string line;
  std::size_t best_len = 0;
  bool found = false;
  while (std::getline(in, line)) {
    // id parent major:minor root mount_point options [optional...] - fstype source super_options
    std::istringstream ss(line);
    std::string id, parent, majmin, root, point, options, tok;
    ss >> id >> parent >> majmin >> root >> point >> options;
    while (ss >> tok && tok != "-") {
    }
    Mount m;
    ss >> m.fstype >> m.source;
    m.mount_point = unescape(point);
    m.source = unescape(m.source);
    const auto colon = majmin.find(':');
    if (colon == std::string::npos) continue;
    m.major = static_cast<unsigned>(std::stoul(majmin.substr(0, colon)));
    m.minor = static_cast<unsigned>(std::stoul(majmin.substr(colon + 1)));
    const std::string& mp = m.mount_point;
    const bool prefix = real == mp || mp == "/" ||
                        (real.size() > mp.size() && real.compare(0, mp.size(), mp) == 0 && real[mp.size()] == '/');
    if (!prefix) continue;
    // Longest matching prefix wins; among equals the later entry (it over-mounts the earlier).
    if (!found || mp.size() >= best_len) {
      best = m;
      best_len = mp.size();
      found = true;
    }
  }
  return found;
}

// /sys/dev/block/M:m resolved to the whole disk's sysfs directory.
std::string whole_disk_sysfs(unsigned major, unsigned minor) {
  namespace sfs = std::filesystem;
  std::error_code ec;
  const std::string link = "/sys/dev/block/" + std::to_string(major) + ":" + std::to_string(minor);
  sfs::path dir = sfs::canonical(link, ec);
  if (ec) return {};
  if (sfs::exists(dir / "partition", ec)) dir = dir.parent_path();
  return dir.string();
}

}  // namespace

std::string filesystem_name(std::int64_t magic) {
  switch (static_cast<std::uint64_t>(magic) & 0xFFFFFFFFu) {
    case 0xEF53: return "ext4";  // ext2/3/4 share the magic
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x858458F6: return "ramfs";
    case 0x6969: return "nfs";
    case 0xFF534D42: return "cifs";
    case 0x65735546: return "fuse";
    case 0x794C7630: return "overlay";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x0BD00BD0: return "lustre";
    case 0x47504653: return "gpfs";
    case 0x00C36400: return "ceph";
    case 0x6A656A63: return "fakeowner";
    default: {
      std::ostringstream s;
      s << "unknown (0x" << std::hex << magic << ")";
      return s.str();
    }
  }
}

DiskInfo describe_disk(const std::string& path) {
  DiskInfo d;
  d.path = fs::nearest_existing(path);
  struct stat st;
  if (::stat(d.path.c_str(), &st) != 0)
    throw Error("cannot examine '" + path + "': " + errno_text(errno), "check the path");
  struct statvfs vfs;
  if (::statvfs(d.path.c_str(), &vfs) == 0) {
    d.free_bytes = static_cast<std::int64_t>(vfs.f_bavail) * static_cast<std::int64_t>(vfs.f_frsize);
    d.total_bytes = static_cast<std::int64_t>(vfs.f_blocks) * static_cast<std::int64_t>(vfs.f_frsize);
  }
  struct statfs sfs;
  if (::statfs(d.path.c_str(), &sfs) == 0) d.filesystem = filesystem_name(static_cast<std::int64_t>(sfs.f_type));

  std::error_code ec;
  const std::string real = std::filesystem::canonical(d.path, ec).string();
  Mount m;
  if (find_mount(ec ? d.path : real, m)) {
    d.mount_point = m.mount_point;
    d.mount_source = m.source;
    if (!m.fstype.empty()) d.filesystem = m.fstype;  // mountinfo names ext2/3/4 and fuse.* exactly
  }
  if (d.filesystem.empty()) d.filesystem = "unknown";

  // The block device: st_dev first; for filesystems with anonymous device
  // numbers (btrfs, overlay on a disk) the mount source when it is a /dev node.
  std::string sys = whole_disk_sysfs(major(st.st_dev), minor(st.st_dev));
  if (sys.empty() && text::starts_with(d.mount_source, "/dev/")) {
    struct stat dev;
    if (::stat(d.mount_source.c_str(), &dev) == 0 && S_ISBLK(dev.st_mode))
      sys = whole_disk_sysfs(major(dev.st_rdev), minor(dev.st_rdev));
  }
  if (!sys.empty()) {
    d.block_device = std::filesystem::path(sys).filename().string();
    const std::string rot = read_line(sys + "/queue/rotational");
    if (rot == "0" || rot == "1") d.rotational = rot == "1" ? 1 : 0;
    const std::string lbs = read_line(sys + "/queue/logical_block_size");
    if (!lbs.empty() && lbs.find_first_not_of("0123456789") == std::string::npos)
      d.logical_block_size = std::stoll(lbs);
  }
  return d;
}

}  // namespace zinf::hw
