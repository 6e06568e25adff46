// unit/data: ShardWriter (llm.c shards filled exactly, documents continuing
// across shards, the .idx document index, temporaries removed without
// commit), read_doc_index's checks, and tokens_in_memory.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "core/fs.h"
#include "data/shard_writer.h"
#include "data/token_file.h"
#include "support/test_util.h"

using namespace zinf;
using zinf::test::TempDir;

namespace {

std::vector<std::int64_t> read_all(const std::string& spec) {
  const data::Tokens t = data::load_tokens(spec);
  std::vector<std::int64_t> v(static_cast<std::size_t>(t.size()));
  t.read(0, t.size(), v.data());
  return v;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("shard writer fills shards exactly and indexes where documents start") {
  TempDir dir;
  data::ShardWriter w(dir.file("train"), 2, 5);
  w.add_document({1, 2, 3});
  w.add_document({4, 5, 6, 7});  // 4 5 end shard 0; 6 7 continue in shard 1
  w.add_document({8});
  CHECK(w.documents() == 3);
  CHECK(w.tokens() == 8);
  const std::vector<data::ShardInfo> shards = w.commit();
  REQUIRE(shards.size() == 2);
  CHECK(shards[0].tokens == 5);
  CHECK(shards[0].documents == 2);
  CHECK_FALSE(shards[0].continues);
  CHECK(shards[1].tokens == 3);
  CHECK(shards[1].documents == 1);
  CHECK(shards[1].continues);
  CHECK(files_in(dir.path()) ==
        std::vector<std::string>{"train_000000.bin", "train_000000.idx", "train_000001.bin", "train_000001.idx"});

  CHECK(read_all(dir.file("train_000000.bin")) == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(read_all(dir.file("train_000001.bin")) == std::vector<std::int64_t>{6, 7, 8});
  CHECK(data::load_tokens(dir.file("train_000000.bin")).shards()[0].width == 2);

  const data::DocIndex i0 = data::read_doc_index(dir.file("train_000000.idx"));
  CHECK(i0.tokens == 5);
  CHECK_FALSE(i0.continues);
  CHECK(i0.starts == std::vector<std::int64_t>{0, 3});
  const data::DocIndex i1 = data::read_doc_index(dir.file("train_000001.idx"));
  CHECK(i1.tokens == 3);
  CHECK(i1.continues);
  CHECK(i1.starts == std::vector<std::int64_t>{2});
}

TEST_CASE("shard writer writes uint32 shards (magic 20240801) for ids beyond 16 bits") {
  TempDir dir;
  data::ShardWriter w(dir.file("val"), 4, 100);
  w.add_document({70000, 1, 128255});
  w.commit();
  const std::string bytes = fs::read_file(dir.file("val_000000.bin"));
  std::int32_t header[3];
  std::memcpy(header, bytes.data(), sizeof header);
  CHECK(header[0] == 20240801);
  CHECK(header[1] == 7);
  CHECK(header[2] == 3);
  CHECK(bytes.size() == 1024 + 3 * 4);
  CHECK(read_all(dir.file("val_000000.bin")) == std::vector<std::int64_t>{70000, 1, 128255});
}

TEST_CASE("shard writer without commit leaves nothing behind") {
  TempDir dir;
  {
    data::ShardWriter w(dir.file("train"), 2, 4);
    w.add_document({1, 2, 3, 4, 5, 6});  // one shard closed, one open
  }
  CHECK(files_in(dir.path()).empty());
}

TEST_CASE("shard writer refuses a shard size llm.c's int32 header cannot hold") {
  TempDir dir;
  CHECK(zinf::test::error_of([&] { data::ShardWriter(dir.file("t"), 2, std::int64_t(1) << 31); })
            .find("--shard-tokens 2147483648 is outside 1..2147483647") != std::string::npos);
}

TEST_CASE("read_doc_index names the file for a bad magic or a count that disagrees with the size") {
  TempDir dir;
  std::vector<std::int64_t> idx = {data::kDocIndexMagic, data::kDocIndexVersion, 3, 10, 0, 0, 0, 0, 0, 4};
  zinf::test::write_text(dir.file("a.idx"), std::string(reinterpret_cast<const char*>(idx.data()), idx.size() * 8));
  CHECK(zinf::test::error_of([&] { data::read_doc_index(dir.file("a.idx")); })
            .find("a.idx' says 3 documents but holds 2 entries (1 per document)") != std::string::npos);
  idx[0] = 42;
  zinf::test::write_text(dir.file("b.idx"), std::string(reinterpret_cast<const char*>(idx.data()), idx.size() * 8));
  CHECK(zinf::test::error_of([&] { data::read_doc_index(dir.file("b.idx")); }).find("b.idx' has magic 42") !=
        std::string::npos);
}

TEST_CASE("tokens_in_memory reads, scans and fingerprints like a token file") {
  TempDir dir;
  const std::vector<std::uint32_t> ids = {5, 70000, 9, 3};
  const data::Tokens mem = data::tokens_in_memory("corpus.txt", ids);
  CHECK(mem.size() == 4);
  CHECK(mem.path() == "corpus.txt");
  CHECK(mem.max_id() == 70000);
  std::vector<std::int64_t> v(2);
  mem.read(1, 2, v.data());
  CHECK(v == std::vector<std::int64_t>{70000, 9});
  data::write_token_file(dir.file("same.bin"), ids, 4);
  CHECK(mem.fingerprint_bytes() == data::load_tokens(dir.file("same.bin")).fingerprint_bytes());
}
