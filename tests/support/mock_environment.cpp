#include "support/mock_environment.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <umockdev.h>

namespace vhp::test {
namespace {

// Ours first: umockdev calls libc's write directly, not the next preloaded one.
constexpr const char* kPreload = VHP_SYSFS_WRITE_PRELOAD ":libumockdev-preload.so.0";
constexpr const char* kQueueLength = "4096";

// A new network namespace starts with loopback down; tests need 127.0.0.1.
void bring_up_loopback() {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return;
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFFLAGS, &req) == 0) {
    req.ifr_flags |= IFF_UP;
    ::ioctl(fd, SIOCSIFFLAGS, &req);
  }
  ::close(fd);
}

void enlarge_datagram_queue() {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "mock environment: no private netns; uevent bursts above ~10 may abort umockdev\n");
    return;
  }
  bring_up_loopback();
  std::ofstream("/proc/sys/net/unix/max_dgram_qlen") << kQueueLength;
}

}  // namespace

void enter_mock_environment(int argc, char** argv) {
  (void)argc;
  const char* preload = std::getenv("LD_PRELOAD");
  if (preload && std::strstr(preload, "libumockdev-preload")) return;
  enlarge_datagram_queue();
  std::string value = kPreload;
  if (preload && *preload) value.append(":").append(preload);
  ::setenv("LD_PRELOAD", value.c_str(), 1);
  // A sanitizer runtime cannot come first in the library list once umockdev is preloaded.
  std::string asan = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
  ::setenv("ASAN_OPTIONS", (asan.empty() ? "" : asan + ":") .append("verify_asan_link_order=0").c_str(), 1);
  ::execv("/proc/self/exe", argv);
  std::perror("mock environment: re-exec failed");
  std::exit(2);
}

void disable_automatic_uevents() {
  // No testbed yet, so /sys is the real one: umockdev concludes it is not mocked, caches that, and
  // from then on add_device() skips its automatic uevent.
  umockdev_in_mock_environment();
}

}  // namespace vhp::test
