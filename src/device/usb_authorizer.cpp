#include "device/usb_authorizer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

namespace vhp {
namespace {

// As `echo v > attr`; never through a link.
std::optional<std::string> write_attribute(const std::string& file, const char* value) {
  int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "cannot open " + file + ": " + std::strerror(errno);
  auto n = ::write(fd, value, std::strlen(value));
  int error = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(std::strlen(value))) return "cannot write " + file + ": " + (n < 0 ? std::strerror(error) : "short write");
  return std::nullopt;
}

}  // namespace

std::string UsbAuthorizer::deny_by_default() const {
  std::string problems;
  auto note = [&](const std::optional<std::string>& error) {
    if (error) problems += (problems.empty() ? "" : "\n") + *error;
  };
  note(write_attribute(paths_.sys + "/module/usbcore/parameters/authorized_default", "0"));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(paths_.sys + "/bus/usb/devices", ec)) {
    auto name = entry.path().filename().string();
    if (name.starts_with("usb") && name.size() > 3 && name.find_first_not_of("0123456789", 3) == std::string::npos)  // usbN: a root hub
      note(write_attribute(entry.path().string() + "/authorized_default", "0"));
  }
  if (ec) note("cannot list " + paths_.sys + "/bus/usb/devices: " + ec.message());
  return problems;
}

std::optional<std::string> UsbAuthorizer::set(const UsbDevice& d, bool authorized) const {
  return write_attribute(d.sys_path + "/authorized", authorized ? "1" : "0");
}

std::optional<bool> UsbAuthorizer::authorized(const UsbDevice& d) const {
  std::ifstream in(d.sys_path + "/authorized");
  int v = -1;
  if (!(in >> v) || (v != 0 && v != 1)) return std::nullopt;
  return v == 1;
}

}  // namespace vhp
