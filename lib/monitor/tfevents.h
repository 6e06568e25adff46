// zinf::monitor — TensorBoard event files, written without TensorFlow.
// Implements: the tfevents record framing (uint64 length, masked CRC32C of
// the length, data, masked CRC32C of the data), the Event/Summary protobuf
// messages for scalars encoded by hand, and EventFileWriter, which creates
// <dir>/events.out.tfevents.<unix-seconds>.<hostname> as TensorFlow names it,
// writes the file_version record first and flushes after every add so a
// running job is visible to TensorBoard.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace zinf::monitor {

// TensorFlow's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t masked_crc32c(const void* data, std::size_t bytes);

// One record: length, masked CRC of the 8 length bytes, data, masked CRC of the data.
std::string frame_record(const std::string& data);

// Event{wall_time = 1 (double), step = 2 (int64), file_version = 3 (string)}.
std::string encode_file_version_event(double wall_time, const std::string& version = "brain.Event:2");
// Event{wall_time, step, summary = 5: Summary{value = 1: Value{tag = 1, simple_value = 2 (float)}}}.
std::string encode_scalar_event(double wall_time, std::int64_t step, const std::string& tag, float value);

class EventFileWriter {
 public:
  // Creates `dir` (and parents) and the event file in it.
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // Appends one scalar event and flushes.
  void add_scalar(const std::string& tag, double value, std::int64_t step);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& record);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace zinf::monitor
