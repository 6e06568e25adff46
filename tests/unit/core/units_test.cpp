// core: byte parsing/formatting and "did you mean".
#include <doctest/doctest.h>

#include "core/model_spec.h"
#include "core/text.h"
#include "core/units.h"

using namespace zinf;

TEST_CASE("parse_bytes accepts plain, scientific and unit-suffixed sizes") {
  CHECK(parse_bytes("1048576") == 1048576);
  CHECK(parse_bytes("1e6") == 1000000);
  CHECK(parse_bytes("1MiB") == 1048576);
  CHECK(parse_bytes("64MB") == 64000000);
  CHECK(parse_bytes("2GiB") == 2LL * 1024 * 1024 * 1024);
  CHECK(parse_bytes("4k") == 4000);
  CHECK_FALSE(parse_bytes("-4096").has_value());
  CHECK_FALSE(parse_bytes("abc").has_value());
  CHECK_FALSE(parse_bytes("12XB").has_value());
  CHECK_FALSE(parse_bytes("1.5").has_value());  // not a whole number of bytes
}

TEST_CASE("parse_integer takes 1e8 but not 1.5") {
  CHECK(parse_integer("8") == 8);
  CHECK(parse_integer("1e8") == 100000000);
  CHECK(parse_integer("-3") == -3);
  CHECK_FALSE(parse_integer("1.5").has_value());
  CHECK_FALSE(parse_integer("eight").has_value());
}

TEST_CASE("format_bytes names binary units") {
  CHECK(format_bytes(512) == "512 B");
  CHECK(format_bytes(1536) == "1.50 KiB");
  CHECK(format_bytes(3.0 * kGiB) == "3.00 GiB");
  CHECK(format_gbps(2.21e9) == "2.21 GB/s");
}

TEST_CASE("closest suggests plausible typos only") {
  const std::vector<std::string> keys = {"offload_param", "offload_optimizer", "stage", "sub_group_size"};
  CHECK(text::closest("ofload_param", keys) == "offload_param");
  CHECK(text::closest("stag", keys) == "stage");
  CHECK(text::closest("completely_different_words", keys).empty());
}

TEST_CASE("model catalogue sizes match their names") {
  CHECK(find_model("gpt2-small")->parameter_count() == doctest::Approx(124.4e6).epsilon(0.01));
  CHECK(find_model("gpt2-medium")->parameter_count() == doctest::Approx(354.8e6).epsilon(0.02));
  CHECK(find_model("gpt2-xl")->parameter_count() == doctest::Approx(1.56e9).epsilon(0.02));
  CHECK(find_model("13b")->parameter_count() == doctest::Approx(12.85e9).epsilon(0.03));
  // The Llama shapes count exactly what transformers counts for the real checkpoints.
  CHECK(find_model("llama3-1b")->parameter_count() == 1235814400);  // Llama-3.2-1B (tied)
  CHECK(find_model("llama3-8b")->parameter_count() == 8030261248);  // Llama-3.1-8B
  CHECK(find_model("llama2-7b")->parameter_count() == 6738415616);  // Llama-2-7B
  CHECK(find_model("llama3-8b")->architecture() == Architecture::kLlama);
  const auto tiny = find_model("tiny")->parameter_count();
  CHECK(tiny > 500000);
  CHECK(tiny < 1500000);
  CHECK_FALSE(find_model("gpt5").has_value());
}
