// Test support: an independent reader of TensorBoard event files. Parses the
// records (uint64 length, masked CRC32C of the length, data, masked CRC32C of
// the data), checks both CRCs with its own bitwise CRC32C, and decodes the
// Event protobuf by field numbers (wall_time 1, step 2, file_version 3,
// summary 5 -> value 1 -> {tag 1, simple_value 2}). Shares no code with
// lib/monitor, so a writer bug cannot hide behind the same bug here.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace zinf::test {

struct TfScalar {
  std::string tag;
  float value = 0;
};

struct TfEvent {
  double wall_time = 0;
  std::int64_t step = 0;
  std::string file_version;      // "" unless this event carries it
  std::vector<TfScalar> values;  // the summary's simple values
};

// Bitwise CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
std::uint32_t tf_crc32c(const std::string& bytes);

// Every event in `data`; throws std::runtime_error naming the record and the
// check that failed (length CRC, data CRC, truncated record, bad protobuf).
std::vector<TfEvent> read_tfevents(const std::string& data);

}  // namespace zinf::test
