#include "device/usb_descriptors.h"

#include <algorithm>
#include <array>

namespace vhp {
namespace {

constexpr std::uint8_t kDeviceType = 1, kConfigType = 2, kInterfaceType = 4;
constexpr std::size_t kDeviceLength = 18, kConfigLength = 9, kInterfaceLength = 9;
constexpr std::size_t kMaxFileSize = kDeviceLength + 0xFFFF;  // and the largest configuration (16-bit wTotalLength)

struct Configuration {
  int value = 0;                         // bConfigurationValue
  std::vector<UsbInterface> interfaces;  // alternate setting 0 of each, sorted by number
  std::optional<std::size_t> next;       // where the next configuration starts; none after a malformed one
};

// The configuration whose descriptor starts `bytes`; `next` is at least its header's length past it.
Configuration parse_configuration(std::span<const std::uint8_t> bytes) {
  Configuration result;
  if (bytes.size() < kConfigLength || bytes[0] < kConfigLength || bytes[1] != kConfigType) return result;
  result.value = bytes[5];
  std::size_t header_length = bytes[0];
  std::size_t total_length = bytes[2] | static_cast<std::size_t>(bytes[3]) << 8;
  auto config = bytes.first(std::min(total_length, bytes.size()));
  if (config.size() < header_length) return result;  // wTotalLength short of its own header

  std::array<bool, 256> seen{};  // by bInterfaceNumber
  std::size_t pos = header_length;
  result.next = config.size();
  while (pos + 2 <= config.size()) {
    std::size_t length = config[pos];
    std::uint8_t type = config[pos + 1];
    // A configuration descriptor here starts the next configuration: the kernel emits each one only as
    // far as it could parse it, while the header keeps the device's own wTotalLength.
    if (type == kConfigType) {
      result.next = pos;
      break;
    }
    if (length < 2 || length > config.size() - pos) {  // malformed: nothing after it is trusted
      result.next.reset();
      break;
    }
    auto descriptor = config.subspan(pos, length);
    pos += length;
    if (type != kInterfaceType || length < kInterfaceLength) continue;
    std::uint8_t number = descriptor[2], alternate_setting = descriptor[3];
    if (alternate_setting != 0 || seen[number]) continue;
    seen[number] = true;
    result.interfaces.push_back({.number = number,
                                 .interface_class = descriptor[5],
                                 .interface_subclass = descriptor[6],
                                 .interface_protocol = descriptor[7]});
  }
  std::ranges::sort(result.interfaces, {}, &UsbInterface::number);
  return result;
}

}  // namespace

std::vector<UsbInterface> interfaces_from_descriptors(std::span<const std::uint8_t> bytes,
                                                      std::optional<int> configuration) {
  if (bytes.size() < kDeviceLength || bytes[0] != kDeviceLength || bytes[1] != kDeviceType) return {};
  auto rest = bytes.subspan(kDeviceLength);
  auto first = parse_configuration(rest);
  if (!configuration || first.value == *configuration) return first.interfaces;
  // Another active configuration: look for it after the first, which is what an unknown value yields.
  for (auto current = first; current.next && *current.next < rest.size();) {
    rest = rest.subspan(*current.next);
    current = parse_configuration(rest);
    if (current.value == *configuration) return current.interfaces;
  }
  return first.interfaces;
}

std::optional<std::vector<std::uint8_t>> read_descriptors_file(const SysfsDir& device) {
  std::vector<std::uint8_t> bytes(kMaxFileSize);
  auto size = device.read_bytes("descriptors", bytes);
  if (!size) return std::nullopt;
  bytes.resize(*size);
  return bytes;
}

}  // namespace vhp
