#pragma once
// Runs a program as a child, as a test would from a shell.
#include <string>
#include <vector>

namespace vhp::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when it did not exit normally
  std::string out;     // its standard output
};

// Runs argv[0] with the given arguments, inheriting the environment (and so the umockdev testbed).
ProcessResult run_capture(const std::vector<std::string>& argv);

}  // namespace vhp::test
