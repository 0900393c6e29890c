#pragma once
// Runs programs as children, as a test would from a shell. Children inherit the environment,
// and so the umockdev testbed.
#include <string>
#include <vector>

#include <sys/types.h>

namespace vhp::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when it did not exit normally
  std::string out;     // its standard output
  std::string err;     // its standard error
};

// Runs to completion and captures standard output and error.
ProcessResult run_capture(const std::vector<std::string>& argv);

// A background child whose standard output and error go to files; killed when destroyed. Each
// child's own descriptors start at its own range (100, 140, … 940, in turn), below them are
// placeholders: under umockdev, processes whose uevent sockets share a number steal each other's
// uevents (see docs/TESTING.md).
class Child {
 public:
  // `own_descriptor_range` false: no placeholders (for a child run under a small descriptor limit).
  Child(const std::vector<std::string>& argv, const std::string& stdout_path, const std::string& stderr_path,
        bool own_descriptor_range = true);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Sends `signo` and waits; returns the exit code, or 128+signal when killed by one.
  int stop(int signo);
  bool running();
  int exit_code() const { return exit_code_; }  // once running() saw it end: as stop() returns it
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

std::string read_file(const std::string& path);

}  // namespace vhp::test
