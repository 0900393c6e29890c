#include "vmm/child_process.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>

#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/async_event.h"
#include "vmm/process_watch.h"

extern char** environ;

namespace vhp {

namespace asio = boost::asio;

namespace {

// What the run and its two output readers share: the readers may outlive a cancelled run's frame.
struct Run {
  Run(const asio::any_io_executor& ex, std::size_t limit) : out_fd(ex), err_fd(ex), drained(ex), limit(limit) {}
  asio::posix::stream_descriptor out_fd, err_fd;
  std::string out, err;
  AsyncEvent drained;
  int open_readers = 2;
  std::size_t limit;
  bool timed_out = false, reaped = false;  // here, not in the frame: a queued watchdog handler may outlive it
};

asio::awaitable<void> drain(std::shared_ptr<Run> run, bool is_out) {
  auto& from = is_out ? run->out_fd : run->err_fd;
  auto& into = is_out ? run->out : run->err;
  char buffer[4096];
  while (true) {
    boost::system::error_code ec;
    auto n = co_await from.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;  // EOF, or closed below
    into.append(buffer, std::min(n, run->limit - std::min(run->limit, into.size())));
  }
  if (--run->open_readers == 0) run->drained.set();
}

int decode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1; }

}  // namespace

asio::awaitable<ChildOutput> run_child(std::vector<std::string> argv, std::chrono::milliseconds deadline, std::size_t output_limit) {
  auto ex = co_await asio::this_coro::executor;
  if (argv.empty()) throw ChildError("nothing to run");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw ChildError(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out[0]), ::close(out[1]);
    throw ChildError(std::string("pipe: ") + std::strerror(e));
  }
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  int spawned = ::posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]), ::close(err[1]);
  if (spawned != 0) {
    ::close(out[0]), ::close(err[0]);
    throw ChildError("cannot run " + argv[0] + ": " + std::strerror(spawned));
  }

  std::shared_ptr<Run> run;
  int pidfd = -1;
  try {  // nothing below may leave a child unreaped or a descriptor open
    run = std::make_shared<Run>(ex, output_limit);
    run->out_fd.assign(out[0]);
    out[0] = -1;
    run->err_fd.assign(err[0]);
    err[0] = -1;
    pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  } catch (...) {
    for (int fd : {out[0], err[0], pidfd})
      if (fd >= 0) ::close(fd);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw;
  }
  asio::co_spawn(ex, drain(run, true), asio::detached);
  asio::co_spawn(ex, drain(run, false), asio::detached);

  asio::steady_timer watchdog(ex);
  watchdog.expires_after(deadline);
  watchdog.async_wait([pid, run](boost::system::error_code ec) {
    if (ec || run->reaped) return;
    run->timed_out = true;
    ::kill(pid, SIGKILL);  // not reaped yet: the pid cannot have been reused
  });
  int status = 0;
  boost::system::error_code ec;
  if (pidfd >= 0) {  // its exit, seen on a pidfd
    asio::posix::stream_descriptor exit_fd(ex, pidfd);
    do co_await exit_fd.async_wait(asio::posix::stream_descriptor::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    while (!ec && !pidfd_exited(pidfd));
    if (ec) ::kill(pid, SIGKILL);  // the wait itself failed: not left running, nor waited for long
    ::waitpid(pid, &status, 0);  // it has exited: does not block
  } else {  // no pidfd (a kernel before 5.3): looked at every 10 ms, never waited for
    asio::steady_timer tick(ex);
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      tick.expires_after(std::chrono::milliseconds(10));
      co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  run->reaped = true;
  watchdog.cancel();
  // What it wrote before it ended; a descendant still holding the pipes does not hold us up.
  if (!co_await run->drained.wait(std::chrono::milliseconds(200))) {
    run->out_fd.close(ec);
    run->err_fd.close(ec);
  }
  if (run->timed_out) throw ChildError(argv[0] + " did not finish within " + std::to_string(deadline.count()) + " ms");
  co_return ChildOutput{decode(status), run->out, run->err};
}

}  // namespace vhp
