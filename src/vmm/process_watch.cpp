#include "vmm/process_watch.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace vhp {

namespace asio = boost::asio;

struct ProcessWatch::State {
  explicit State(asio::io_context& io) : descriptor(io) {}
  asio::posix::stream_descriptor descriptor;
  pid_t pid = 0;
  std::uint64_t generation = 0;
};

ProcessWatch::ProcessWatch(asio::io_context& io) : state_(std::make_shared<State>(io)) {}

ProcessWatch::~ProcessWatch() { cancel(); }

bool ProcessWatch::watch(pid_t pid, std::function<void()> exited) {
  cancel();
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return false;
  state_->descriptor.assign(fd);
  state_->pid = pid;
  auto generation = state_->generation;
  std::weak_ptr<State> weak = state_;
  state_->descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                                [weak, generation, exited = std::move(exited)](boost::system::error_code ec) {
                                  auto state = weak.lock();
                                  if (ec || !state || state->generation != generation) return;
                                  state->pid = 0;
                                  boost::system::error_code ignored;
                                  state->descriptor.close(ignored);
                                  exited();
                                });
  return true;
}

void ProcessWatch::cancel() {
  ++state_->generation;
  state_->pid = 0;
  boost::system::error_code ignored;
  state_->descriptor.close(ignored);
}

pid_t ProcessWatch::pid() const { return state_->pid; }

}  // namespace vhp
