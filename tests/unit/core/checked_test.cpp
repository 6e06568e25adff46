// core: checked arithmetic on sizes, and model shapes whose parameter count
// would overflow or exceed the supported maximum, refused naming the inputs.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "core/checked.h"
#include "core/error.h"
#include "core/model_spec.h"
#include "support/test_util.h"

using namespace zinf;
using zinf::test::error_of;

namespace {
bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
}  // namespace

TEST_CASE("CheckedInt: a formula in range is exact; one overflowing step anywhere is reported once") {
  const CheckedInt h = 4096;
  CHECK((12 * h * h + 13 * h).get("x", {}) == 12 * 4096LL * 4096 + 13 * 4096);
  CHECK((CheckedInt(kMax) + 0).get("x", {}) == kMax);
  const CheckedInt big = CheckedInt(3037000500) * 3037000500;  // just above 2^63
  CHECK(big.overflowed());
  CHECK((big - big + 1).overflowed());  // stays overflowed through later steps
  CHECK((CheckedInt(kMax) + 1).overflowed());
  CHECK((CheckedInt(-kMax) - 2).overflowed());
  const auto msg = error_of([&] { (big * 2).get("the parameter count", {{"hidden", 3037000500}, {"layers", 2}}); });
  CHECK(msg == "the parameter count would overflow 64-bit integers (hidden 3037000500, layers 2) | hint: use smaller "
               "sizes: each size zinf computes from them must stay below 2^63 (9.2e18)");
  try {
    big.get("x", {}, "do this");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(e.hint() == "do this");
  }
}

TEST_CASE("checked_mul and checked_add name what was computed and both operands") {
  CHECK(checked_mul(1 << 20, 1 << 20, "x") == std::int64_t(1) << 40);
  CHECK(checked_add(kMax - 1, 1, "x") == kMax);
  CHECK(has(error_of([] { checked_mul(std::int64_t(1) << 40, std::int64_t(1) << 30, "the bytes of a tier"); }),
            "the bytes of a tier (1099511627776 x 1073741824) would overflow 64-bit integers"));
  CHECK(has(error_of([] { checked_add(kMax, 1, "the peak"); }),
            "the peak (9223372036854775807 + 1) would overflow 64-bit integers"));
}

TEST_CASE("a model's parameter count never overflows: too large is a usage error naming the dimensions") {
  ModelSpec m{"custom", 256, 128, 9000000000LL, 1, 1};
  auto msg = error_of([&] { m.parameter_count(); });
  CHECK(has(msg, "the parameter count would overflow 64-bit integers (hidden 9000000000, layers 1, vocab 256, "
                 "seq_len 128)"));
  CHECK(has(error_of([&] { m.block_parameter_count(); }), "(hidden 9000000000)"));
  m = {"custom", 256, 128, kMaxHiddenSize, kMaxLayers, 8};  // fits 64 bits, far above 2^50
  msg = error_of([&] { m.parameter_count(); });
  CHECK(has(msg, "hidden 1048576 x layers 65536 (vocab 256, seq_len 128) makes 864692022213083136 parameters, "
                 "above the largest supported 1125899906842624"));
  // the catalogue is well inside
  for (const auto& spec : model_catalog()) CHECK(spec.parameter_count() < kMaxParameters);
}

TEST_CASE("model dimensions above the supported maximum are named with the limit") {
  ModelSpec m{"custom", 256, 128, 9000000000LL, 1, 1};
  CHECK(error_of([&] { m.check_dimensions(); }) ==
        "hidden size (--hidden-size) 9000000000 is above the largest supported 1048576 | hint: allowed: 1 to 1048576");
  m = {"custom", 256, kMaxSeqLen + 1, 128, 1, 1};
  CHECK(has(error_of([&] { m.check_dimensions(); }), "sequence length (--seq-len) 16777217 is above the largest supported 16777216"));
  m = {"custom", 256, 128, 128, 0, 1};
  CHECK(has(error_of([&] { m.check_dimensions(); }), "layers (--layers) is 0: must be at least 1"));
  m = *find_model("13b");
  CHECK(error_of([&] { m.check_dimensions(); }) == "(no error)");
}
