// Test support: the independent tfevents reader (see tfevents_reader.h).
#include "support/tfevents_reader.h"

#include <cstring>

namespace zinf::test {

std::uint32_t tf_crc32c(const std::string& bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

namespace {

std::uint32_t masked(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

template <typename T>
T le(const std::string& s, std::size_t at) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= T(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

struct Cursor {
  const std::string& s;
  std::size_t pos, end;
  bool done() const { return pos >= end; }
  void need(std::size_t n) const {
    if (pos + n > end) throw std::runtime_error("protobuf: field runs past its message");
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const auto b = static_cast<unsigned char>(s[pos++]);
      v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw std::runtime_error("protobuf: varint longer than 10 bytes");
  }
  std::string bytes() {
    const std::uint64_t n = varint();
    need(n);
    std::string out = s.substr(pos, n);
    pos += n;
    return out;
  }
  void skip(int wire) {
    if (wire == 0) varint();
    else if (wire == 1) { need(8); pos += 8; }
    else if (wire == 2) bytes();
    else if (wire == 5) { need(4); pos += 4; }
    else throw std::runtime_error("protobuf: unknown wire type " + std::to_string(wire));
  }
};

TfScalar decode_value(const std::string& m) {
  TfScalar v;
  Cursor c{m, 0, m.size()};
  while (!c.done()) {
    const std::uint64_t key = c.varint();
    const int field = int(key >> 3), wire = int(key & 7);
    if (field == 1 && wire == 2) v.tag = c.bytes();
    else if (field == 2 && wire == 5) {
      c.need(4);
      const std::uint32_t bits = le<std::uint32_t>(m, c.pos);
      std::memcpy(&v.value, &bits, 4);
      c.pos += 4;
    } else c.skip(wire);
  }
  return v;
}

TfEvent decode_event(const std::string& m) {
  TfEvent e;
  Cursor c{m, 0, m.size()};
  while (!c.done()) {
    const std::uint64_t key = c.varint();
    const int field = int(key >> 3), wire = int(key & 7);
    if (field == 1 && wire == 1) {
      c.need(8);
      const std::uint64_t bits = le<std::uint64_t>(m, c.pos);
      std::memcpy(&e.wall_time, &bits, 8);
      c.pos += 8;
    } else if (field == 2 && wire == 0) {
      e.step = static_cast<std::int64_t>(c.varint());
    } else if (field == 3 && wire == 2) {
      e.file_version = c.bytes();
    } else if (field == 5 && wire == 2) {
      const std::string summary = c.bytes();
      Cursor sc{summary, 0, summary.size()};
      while (!sc.done()) {
        const std::uint64_t k = sc.varint();
        if ((k >> 3) == 1 && (k & 7) == 2) e.values.push_back(decode_value(sc.bytes()));
        else sc.skip(int(k & 7));
      }
    } else c.skip(wire);
  }
  return e;
}

}  // namespace

std::vector<TfEvent> read_tfevents(const std::string& data) {
  std::vector<TfEvent> events;
  std::size_t pos = 0;
  for (int record = 0; pos < data.size(); ++record) {
    const std::string where = "record " + std::to_string(record);
    if (pos + 12 > data.size()) throw std::runtime_error(where + ": truncated header");
    const std::uint64_t length = le<std::uint64_t>(data, pos);
    if (masked(tf_crc32c(data.substr(pos, 8))) != le<std::uint32_t>(data, pos + 8))
      throw std::runtime_error(where + ": length CRC mismatch");
    if (pos + 12 + length + 4 > data.size()) throw std::runtime_error(where + ": truncated data");
    const std::string body = data.substr(pos + 12, length);
    if (masked(tf_crc32c(body)) != le<std::uint32_t>(data, pos + 12 + length))
      throw std::runtime_error(where + ": data CRC mismatch");
    events.push_back(decode_event(body));
    pos += 12 + length + 4;
  }
  return events;
}

}  // namespace zinf::test
