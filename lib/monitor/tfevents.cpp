// zinf::monitor — tfevents records and hand-encoded Event protobufs.
#include "monitor/tfevents.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/fs.h"
#include "io/checksum.h"

namespace zinf::monitor {

namespace {

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_tag(std::string& out, int field, int wire_type) { put_varint(out, (std::uint64_t(field) << 3) | wire_type); }

template <typename T>
void put_fixed(std::string& out, T v) {  // little endian, as protobuf's fixed32/fixed64
  unsigned char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(reinterpret_cast<const char*>(b), sizeof(T));
}

void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}

std::string event_head(double wall_time, std::int64_t step) {
  std::string e;
  put_tag(e, 1, 1);  // double wall_time = 1 (fixed64)
  put_fixed(e, wall_time);
  if (step != 0) {
    put_tag(e, 2, 0);  // int64 step = 2 (varint; negative as two's complement)
    put_varint(e, static_cast<std::uint64_t>(step));
  }
  return e;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::uint32_t masked_crc32c(const void* data, std::size_t bytes) {
  const std::uint32_t crc = io::crc32c(data, bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string frame_record(const std::string& data) {
  std::string r;
  const std::uint64_t length = data.size();
  put_fixed(r, length);
  put_fixed(r, masked_crc32c(r.data(), 8));
  r += data;
  put_fixed(r, masked_crc32c(data.data(), data.size()));
  return r;
}

std::string encode_file_version_event(double wall_time, const std::string& version) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, version);
  return e;
}

std::string encode_scalar_event(double wall_time, std::int64_t step, const std::string& tag, float value) {
  std::string v;
  put_bytes(v, 1, tag);  // string tag = 1
  put_tag(v, 2, 5);      // float simple_value = 2 (fixed32)
  put_fixed(v, value);
  std::string summary;
  put_bytes(summary, 1, v);  // repeated Value value = 1
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);  // Summary summary = 5
  return e;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  fs::make_dirs(dir);
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "localhost");
  const double t = now_seconds();
  // TensorFlow: events.out.tfevents.<int seconds>.<hostname>; a second writer
  // started in the same second gets a distinct name from its pid.
  std::string base = dir + "/events.out.tfevents." + std::to_string(static_cast<long long>(t)) + "." + host;
  path_ = fs::exists(base) ? base + "." + std::to_string(::getpid()) : base;
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_)
    throw Error("cannot create the TensorBoard event file '" + path_ + "': " + errno_text(errno),
                "check that the tensorboard output_path is writable");
  write(frame_record(encode_file_version_event(t)));
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::add_scalar(const std::string& tag, double value, std::int64_t step) {
  write(frame_record(encode_scalar_event(now_seconds(), step, tag, static_cast<float>(value))));
}

void EventFileWriter::write(const std::string& record) {
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
    throw Error("cannot write the TensorBoard event file '" + path_ + "': " + errno_text(errno),
                "free some space where tensorboard output_path points");
}

}  // namespace zinf::monitor
