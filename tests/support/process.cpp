#include "support/process.h"

#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spawn.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

extern char** environ;

namespace vhp::test {

namespace {

std::vector<char*> c_args(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return args;
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// What a child needs before its exec, prepared by the parent: the child shares its memory.
struct Start {
  pid_t parent;
  const char* stdout_path;
  const char* stderr_path;
  int first_fd;
  char** argv;
};

// The child of clone(CLONE_VM | CLONE_VFORK) on a stack of its own, as posix_spawn does. A fork
// took 7 ms before its child ran and umockdev's wrappers of open and dup2 2–5 more (`strace -f`
// of bench_table), which the benchmarks counted as the daemon's start. It shares the parent's
// memory until its exec, so raw system calls only: no allocation, no lock, no preload's wrapper.
__attribute__((no_sanitize("address", "undefined"))) int start_child(void* arg) {
  const auto& s = *static_cast<const Start*>(arg);
  // Dies with the test, even when the test is killed: no stray daemons or VMs.
  ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::syscall(SYS_getppid) != s.parent) return 127;
  long in = ::syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
  long out = ::syscall(SYS_openat, AT_FDCWD, s.stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  long err = ::syscall(SYS_openat, AT_FDCWD, s.stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::syscall(SYS_dup2, in, STDIN_FILENO), ::syscall(SYS_dup2, out, STDOUT_FILENO), ::syscall(SYS_dup2, err, STDERR_FILENO);
  // Placeholders up to this child's range, so the descriptors it opens are numbered apart from
  // every other child's: umockdev names a process's emulated uevent socket "event<fd>" and a
  // later bind of the same name steals it (two QEMUs' libusb sockets would get the same number).
  // Nothing of the test's is inherited: its own descriptors above a range would push every
  // child started after them to the same numbers (seen with 20 QEMUs).
  ::syscall(SYS_close_range, 3, ~0U, 0);
  for (int fd = 3; fd < s.first_fd; ++fd) ::syscall(SYS_dup2, STDIN_FILENO, fd);
  ::syscall(SYS_execve, s.argv[0], s.argv, environ);
  return 127;
}

}  // namespace

ProcessResult run_capture(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  if (::pipe(err) != 0) {
    ::close(out[0]), ::close(out[1]);
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  posix_spawn_file_actions_addclose(&actions, err[0]);
  auto args = c_args(argv);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]), ::close(err[0]);
    throw std::runtime_error("cannot start " + argv[0]);
  }
  ProcessResult result;
  // Both at once: a child that fills one pipe while we wait on the other would never finish.
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* into[2] = {&result.out, &result.err};
  for (int open = 2; open > 0;) {
    if (::poll(fds, 2, -1) < 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        into[i]->append(buf, static_cast<size_t>(n));
        continue;
      }
      ::close(fds[i].fd);
      fds[i].fd = -1;
      --open;
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

Child::Child(const std::vector<std::string>& argv, const std::string& stdout_path, const std::string& stderr_path,
             bool own_descriptor_range) {
  static int started = 0;
  // 100, 140, … 940: 22 ranges below the usual soft limit of 1024, for a daemon and 20 QEMUs at
  // once (bench_vms). Children started alike open their sockets at the same offset in their range.
  int first_fd = own_descriptor_range ? 100 + 40 * (started++ % 22) : 0;
  auto args = c_args(argv);
  Start start{::getpid(), stdout_path.c_str(), stderr_path.c_str(), first_fd, args.data()};
  std::vector<char> stack(64 * 1024);  // the parent waits in clone until the child's exec
  pid_ = ::clone(start_child, stack.data() + stack.size(), CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
  if (pid_ < 0) throw std::runtime_error("cannot start " + argv[0]);
}

Child::~Child() {
  if (pid_ > 0) stop(SIGKILL);
}

int Child::stop(int signo) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signo);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return decode(status);
}

bool Child::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    exit_code_ = decode(status);
    return false;
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace vhp::test
