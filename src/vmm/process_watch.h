#pragma once
// Tells when a process exits, without polling: a pidfd becomes readable then (Linux 5.3+).
#include <functional>
#include <memory>

#include <sys/types.h>

#include <boost/asio/io_context.hpp>

namespace vhp {

// Whether the process of this pidfd has exited, without waiting. The reactor may report a pidfd
// ready when it is not (seen here: "ready" while its process ran on and poll() said not readable),
// so an exit is confirmed with this before it is believed.
bool pidfd_exited(int pidfd);

class ProcessWatch {
 public:
  explicit ProcessWatch(boost::asio::io_context& io);
  ~ProcessWatch();
  ProcessWatch(const ProcessWatch&) = delete;
  ProcessWatch& operator=(const ProcessWatch&) = delete;

  // Watches `pid` (replacing any earlier watch); false when the kernel cannot (no pidfd, or the
  // process is gone already). `exited` is called once, on the loop.
  bool watch(pid_t pid, std::function<void()> exited);
  void cancel();
  pid_t pid() const;  // 0 when watching nothing

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace vhp
