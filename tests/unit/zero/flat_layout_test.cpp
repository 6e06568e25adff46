// zero: flat layout offsets, padding and shards cover every element exactly once.
#include <doctest/doctest.h>

#include "core/error.h"
#include "zero/flat_layout.h"

using namespace zinf::zero;

TEST_CASE("offsets are aligned and tensors do not overlap") {
  FlatLayout layout(1, 64);
  layout.add("a", {3, 5});   // 15
  layout.add("b", {100});    // 100
  layout.add("c", {1});
  const auto& s = layout.slots();
  CHECK(s[0].offset == 0);
  CHECK(s[1].offset == 64);
  CHECK(s[2].offset == 192);  // 64 + 100 = 164 -> 192
  CHECK(layout.numel() == 116);
  CHECK(layout.padded_numel() == 256);
}

TEST_CASE("shards of N ranks tile the padded buffer exactly") {
  for (int world : {1, 2, 3, 8}) {
    CAPTURE(world);
    FlatLayout layout(world, 32);
    layout.add("w", {1000, 7});
    layout.add("b", {7});
    CHECK(layout.padded_numel() % (world * 32) == 0);
    std::int64_t covered = 0;
    for (int r = 0; r < world; ++r) {
      const Shard sh = layout.shard(r);
      CHECK(sh.begin == covered);
      CHECK(sh.size() == layout.shard_numel());
      covered = sh.end;
    }
    CHECK(covered == layout.padded_numel());
    // every element of every tensor is in exactly one rank's overlap
    for (std::size_t i = 0; i < layout.slots().size(); ++i) {
      std::int64_t total = 0;
      for (int r = 0; r < world; ++r) total += layout.overlap(i, r).size();
      CHECK(total == layout.slots()[i].numel);
    }
  }
}

TEST_CASE("bad worlds and ranks are errors") {
  CHECK_THROWS_AS(FlatLayout(0), zinf::Error);
  FlatLayout layout(2);
  layout.add("x", {10});
  CHECK_THROWS_AS(layout.shard(2), zinf::Error);
  CHECK_THROWS_AS(layout.add("neg", {-1}), zinf::Error);
}
