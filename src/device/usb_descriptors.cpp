#include "device/usb_descriptors.h"

#include <algorithm>
#include <array>
#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace vhp {
namespace {

constexpr std::uint8_t kDeviceType = 1, kConfigType = 2, kInterfaceType = 4;
constexpr std::size_t kDeviceLength = 18, kConfigLength = 9, kInterfaceLength = 9;
constexpr std::size_t kMaxFileSize = kDeviceLength + 0xFFFF;  // and the largest configuration (16-bit wTotalLength)

// Fills `buffer` from `fd` until end of file or the buffer is full; the bytes read, or nullopt on error.
std::optional<std::size_t> read_up_to(int fd, std::span<std::uint8_t> buffer) {
  std::size_t filled = 0;
  while (filled < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + filled, buffer.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  return filled;
}

}  // namespace

std::vector<UsbInterface> interfaces_from_descriptors(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kDeviceLength || bytes[0] != kDeviceLength || bytes[1] != kDeviceType) return {};
  // The first configuration: the one the kernel chooses by default for nearly all devices.
  auto config = bytes.subspan(kDeviceLength);
  if (config.size() < kConfigLength || config[0] < kConfigLength || config[1] != kConfigType) return {};
  std::size_t header_length = config[0];
  std::size_t total_length = config[2] | static_cast<std::size_t>(config[3]) << 8;
  config = config.first(std::min(total_length, config.size()));

  std::vector<UsbInterface> result;
  std::array<bool, 256> seen{};  // by bInterfaceNumber
  for (std::size_t pos = header_length; pos + 2 <= config.size();) {
    std::size_t length = config[pos];
    std::uint8_t type = config[pos + 1];
    // A configuration descriptor here starts the next configuration: the kernel emits each one only as
    // far as it could parse it, while the header keeps the device's own wTotalLength.
    if (length < 2 || length > config.size() - pos || type == kConfigType) break;
    auto descriptor = config.subspan(pos, length);
    pos += length;
    if (type != kInterfaceType || length < kInterfaceLength) continue;
    std::uint8_t number = descriptor[2], alternate_setting = descriptor[3];
    if (alternate_setting != 0 || seen[number]) continue;
    seen[number] = true;
    result.push_back({.number = number,
                      .interface_class = descriptor[5],
                      .interface_subclass = descriptor[6],
                      .interface_protocol = descriptor[7],
                      .driver = {},  // no interface device exists to bind a driver to or to name
                      .modalias = {}});
  }
  std::ranges::sort(result, {}, &UsbInterface::number);
  return result;
}

std::optional<std::vector<std::uint8_t>> read_descriptors_file(const std::string& sys_path) {
  int fd = ::open((sys_path + "/descriptors").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::vector<std::uint8_t> bytes(kMaxFileSize);
  auto size = read_up_to(fd, bytes);
  ::close(fd);
  if (!size) return std::nullopt;
  bytes.resize(*size);
  return bytes;
}

}  // namespace vhp
