// Tests: DeepSpeed hostfile parsing.
#include <doctest/doctest.h>

#include "core/error.h"
#include "launch/hostfile.h"

using namespace zinf;

namespace {
std::string error_of(const std::string& text) {
  try {
    launch::parse_hostfile(text, "hosts");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("hostfile lines give host names and slots, skipping comments and blanks") {
  const auto hosts = launch::parse_hostfile(
      "# cluster\n"
      "worker-0 slots=8\n"
      "\n"
      "   worker-1\tslots=4   # the small one\n",
      "hosts");
  REQUIRE(hosts.size() == 2);
  CHECK(hosts[0].name == "worker-0");
  CHECK(hosts[0].slots == 8);
  CHECK(hosts[0].line == 2);
  CHECK(hosts[1].name == "worker-1");
  CHECK(hosts[1].slots == 4);
  CHECK(hosts[1].line == 4);
}

TEST_CASE("a malformed hostfile line is refused with its line number") {
  CHECK(error_of("a slots=1\nb slots=two\n").find("hosts:2") != std::string::npos);
  CHECK(error_of("a slots=1\n\nb\n").find("hosts:3") != std::string::npos);
  CHECK(error_of("a gpus=2\n").find("hosts:1: expected `hostname slots=N`") != std::string::npos);
  CHECK(error_of("a slots=2 extra\n").find("hosts:1") != std::string::npos);
  CHECK(error_of("a slots=0\n").find("slots='0'") != std::string::npos);
}

TEST_CASE("a host listed twice is refused naming both lines") {
  const std::string msg = error_of("a slots=1\nb slots=1\na slots=2\n");
  CHECK(msg.find("hosts:3") != std::string::npos);
  CHECK(msg.find("line 1") != std::string::npos);
}

TEST_CASE("a hostfile without hosts is refused") {
  CHECK(error_of("# nothing\n\n").find("lists no hosts") != std::string::npos);
}

TEST_CASE("a missing hostfile is a usage error naming the path") {
  try {
    launch::read_hostfile("/nonexistent/hosts");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).find("/nonexistent/hosts") != std::string::npos);
  }
}
