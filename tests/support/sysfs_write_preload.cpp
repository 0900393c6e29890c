// Preloaded (with umockdev) into every test process. A sysfs bind/unbind/drivers_probe write returns
// once the kernel has (un)bound the driver; FakeVfioKernel's FIFOs would return at once. Here a
// write to a FIFO under /sys/bus/pci returns only once the fake has read it, after handling it.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <dlfcn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using WriteFn = ssize_t (*)(int, const void*, size_t);

bool is_fake_kernel_fifo(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return false;
  char link[64];
  char target[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  auto n = ::readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return std::strstr(target, "/sys/bus/pci/") != nullptr;  // an anonymous pipe reads "pipe:[…]"
}

// Until the pipe is empty (FIONREAD counts the pipe's bytes from either end), at most 10 s.
void wait_until_read(int fd) {
  const timespec step{0, 50'000};
  for (int i = 0; i < 200'000; ++i) {
    int pending = 0;
    if (::ioctl(fd, FIONREAD, &pending) != 0 || pending == 0) return;
    ::nanosleep(&step, nullptr);
  }
}

}  // namespace

extern "C" ssize_t write(int fd, const void* buffer, size_t size) {
  static auto real = reinterpret_cast<WriteFn>(::dlsym(RTLD_NEXT, "write"));
  ssize_t written = real(fd, buffer, size);
  if (written > 0) {
    int saved = errno;
    if (is_fake_kernel_fifo(fd)) wait_until_read(fd);
    errno = saved;
  }
  return written;
}
