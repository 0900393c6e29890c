#include "vmm/process_watch.h"

#include <poll.h>
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

bool pidfd_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

namespace {

void await_exit(std::weak_ptr<ProcessWatch::State> weak, std::uint64_t generation, std::function<void()> exited) {
  auto state = weak.lock();
  if (!state) return;
  state->descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                               [weak, generation, exited = std::move(exited)](boost::system::error_code ec) mutable {
                                 auto state = weak.lock();
                                 if (ec || !state || state->generation != generation) return;
                                 if (!pidfd_exited(state->descriptor.native_handle())) return await_exit(weak, generation, std::move(exited));
                                 state->pid = 0;
                                 boost::system::error_code ignored;
                                 state->descriptor.close(ignored);
                                 exited();
                               });
}

}  // namespace

ProcessWatch::ProcessWatch(asio::io_context& io) : state_(std::make_shared<State>(io)) {}

ProcessWatch::~ProcessWatch() { cancel(); }

bool ProcessWatch::watch(pid_t pid, std::function<void()> exited) {
  cancel();
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return false;
  state_->descriptor.assign(fd);
  state_->pid = pid;
  await_exit(state_, state_->generation, std::move(exited));
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
