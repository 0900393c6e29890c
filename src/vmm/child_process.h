#pragma once
// A command-line tool run to completion on the event loop (crosvm's control commands): no thread
// blocked, output bounded, a deadline after which it is killed, always reaped.
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp
#include <vector>

#include <boost/asio/awaitable.hpp>

namespace vhp {

struct ChildOutput {
  int exit_code = -1;  // 128 + the signal when a signal ended it
  std::string out, err;  // each cut at the limit
};

struct ChildError : std::runtime_error {  // it could not be started, or did not finish in time
  using std::runtime_error::runtime_error;
};

// Runs argv (argv[0] looked up on PATH) with standard input from /dev/null.
boost::asio::awaitable<ChildOutput> run_child(std::vector<std::string> argv, std::chrono::milliseconds deadline,
                                              std::size_t output_limit = 64 * 1024);

}  // namespace vhp
