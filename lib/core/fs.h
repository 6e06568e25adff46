// zinf::core — checked file-system helpers.
// Implements: the small set of file operations every module uses, each one
// throwing zinf::Error naming the path, the errno and a hint instead of
// returning codes: mkdir -p, whole-file read, atomic write (temp + fsync +
// rename), free-space query. The I/O engine (lib/io) has its own O_DIRECT path.
#pragma once

#include <cstdint>
#include <string>

namespace zinf::fs {

// mkdir -p; throws if a component exists and is not a directory, or on EACCES/EROFS.
void make_dirs(const std::string& path);

// Reads a whole file; throws naming the path when it cannot.
std::string read_file(const std::string& path);

// Writes `data` to `path` through `path.tmp.<pid>`, fsyncs and renames, so a
// reader sees either the old or the new file, never half of one.
void write_file_atomic(const std::string& path, const std::string& data);

// True when `path` exists (any type).
bool exists(const std::string& path);

// True when `path` is a directory.
bool is_directory(const std::string& path);

// Bytes available to an unprivileged writer on the filesystem holding `path`.
std::int64_t free_bytes(const std::string& path);

// The nearest existing ancestor of `path` (itself when it exists).
std::string nearest_existing(const std::string& path);

// Removes a file or a directory tree; missing paths are fine.
void remove_all(const std::string& path);

}  // namespace zinf::fs
