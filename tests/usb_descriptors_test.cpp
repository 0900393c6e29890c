// USB interfaces from the raw sysfs `descriptors` file: parsing real devices' descriptors and malformed
// ones, and read_usb_device taking a device's interfaces from the file.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "device/udev_ptr.h"
#include "device/udev_reader.h"
#include "device/usb_descriptors.h"
#include "support/temp_dir.h"
#include "support/testbed.h"

namespace vhp::usb_descriptors_test {

// gtest's failure messages name the interface (found through ADL, so in vhp itself).
void PrintTo(const UsbInterface& i, std::ostream* os) {
  *os << "{" << i.number << ": " << i.interface_class << "/" << i.interface_subclass << "/" << i.interface_protocol
      << "}";
}

namespace {

using Bytes = std::vector<std::uint8_t>;

// Logitech K120 keyboard (046d:c31c), low speed: a boot keyboard and a second HID interface.
const Bytes kKeyboard = {
    0x12, 0x01, 0x10, 0x01, 0x00, 0x00, 0x00, 0x08, 0x6d, 0x04, 0x1c, 0xc3, 0x00, 0x64, 0x01, 0x02, 0x00, 0x01,
    0x09, 0x02, 0x3b, 0x00, 0x02, 0x01, 0x03, 0xa0, 0x2d,  // configuration 1, 59 bytes
    0x09, 0x04, 0x00, 0x00, 0x01, 0x03, 0x01, 0x01, 0x00,  // interface 0: HID boot keyboard
    0x09, 0x21, 0x10, 0x01, 0x00, 0x01, 0x22, 0x41, 0x00,  // HID
    0x07, 0x05, 0x81, 0x03, 0x08, 0x00, 0x0a,              // endpoint 1 IN, interrupt
    0x09, 0x04, 0x01, 0x00, 0x01, 0x03, 0x00, 0x00, 0x00,  // interface 1: HID (media keys)
    0x09, 0x21, 0x10, 0x01, 0x00, 0x01, 0x22, 0x9f, 0x00,  // HID
    0x07, 0x05, 0x82, 0x03, 0x04, 0x00, 0xff,              // endpoint 2 IN, interrupt
};

// SanDisk Cruzer Blade stick (0781:5567): one bulk-only mass-storage interface.
const Bytes kStick = {
    0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x81, 0x07, 0x67, 0x55, 0x00, 0x01, 0x01, 0x02, 0x03, 0x01,
    0x09, 0x02, 0x20, 0x00, 0x01, 0x01, 0x00, 0x80, 0x32,  // configuration 1, 32 bytes
    0x09, 0x04, 0x00, 0x00, 0x02, 0x08, 0x06, 0x50, 0x00,  // interface 0: mass storage, SCSI, bulk-only
    0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00,              // endpoint 1 IN, bulk
    0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00,              // endpoint 2 OUT, bulk
};

// A UVC webcam shaped like the Logitech C270 (046d:0825): a video function and an audio function,
// each an interface association of a control interface and a streaming interface whose alternate
// settings 1 and up carry the isochronous endpoint.
const Bytes kWebcam = {
    0x12, 0x01, 0x00, 0x02, 0xef, 0x02, 0x01, 0x40, 0x6d, 0x04, 0x25, 0x08, 0x10, 0x00, 0x00, 0x00, 0x02, 0x01,
    0x09, 0x02, 0x3b, 0x01, 0x04, 0x01, 0x00, 0x80, 0xfa,  // configuration 1, 315 bytes
    0x08, 0x0b, 0x00, 0x02, 0x0e, 0x03, 0x00, 0x00,        // interface association: video, interfaces 0-1
    0x09, 0x04, 0x00, 0x00, 0x01, 0x0e, 0x01, 0x00, 0x00,  // interface 0: video control
    0x0d, 0x24, 0x01, 0x00, 0x01, 0x33, 0x00, 0x80, 0xc3, 0xc9, 0x01, 0x01, 0x01,  // VC header
    0x12, 0x24, 0x02, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00,  // input terminal: camera,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x0e, 0x00, 0x00,  // with controls
    0x0b, 0x24, 0x05, 0x03, 0x01, 0x00, 0x00, 0x02, 0x7f, 0x17, 0x00,  // processing unit
    0x09, 0x24, 0x03, 0x04, 0x01, 0x01, 0x00, 0x03, 0x00,              // output terminal
    0x07, 0x05, 0x87, 0x03, 0x10, 0x00, 0x08,                          // endpoint 7 IN, interrupt
    0x05, 0x25, 0x03, 0x10, 0x00,                                      // class-specific endpoint
    0x09, 0x04, 0x01, 0x00, 0x00, 0x0e, 0x02, 0x00, 0x00,  // interface 1: video streaming, no bandwidth
    0x0e, 0x24, 0x01, 0x01, 0x4d, 0x00, 0x81, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00,  // VS input header
    0x1b, 0x24, 0x04, 0x01, 0x01, 0x59, 0x55, 0x59, 0x32, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00,
    0x38, 0x9b, 0x71, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00,  // format: uncompressed YUY2
    0x1e, 0x24, 0x05, 0x01, 0x00, 0x80, 0x02, 0xe0, 0x01, 0x00, 0x00, 0xca, 0x08, 0x00, 0x00, 0xca, 0x08,
    0x00, 0x60, 0x09, 0x00, 0x15, 0x16, 0x05, 0x00, 0x01, 0x15, 0x16, 0x05, 0x00,  // frame: 640x480 at 30/s
    0x06, 0x24, 0x0d, 0x01, 0x01, 0x04,                    // color matching
    0x09, 0x04, 0x01, 0x01, 0x01, 0x0e, 0x02, 0x00, 0x00,  // interface 1, alternate setting 1
    0x07, 0x05, 0x81, 0x05, 0xc0, 0x00, 0x01,              // endpoint 1 IN, isochronous, 192 bytes
    0x09, 0x04, 0x01, 0x02, 0x01, 0x0e, 0x02, 0x00, 0x00,  // interface 1, alternate setting 2
    0x07, 0x05, 0x81, 0x05, 0x80, 0x01, 0x01,              // endpoint 1 IN, isochronous, 384 bytes
    0x08, 0x0b, 0x02, 0x02, 0x01, 0x02, 0x00, 0x00,        // interface association: audio, interfaces 2-3
    0x09, 0x04, 0x02, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,  // interface 2: audio control
    0x09, 0x24, 0x01, 0x00, 0x01, 0x27, 0x00, 0x01, 0x03,  // AC header
    0x0c, 0x24, 0x02, 0x01, 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,  // input terminal: microphone
    0x09, 0x24, 0x06, 0x02, 0x01, 0x01, 0x03, 0x00, 0x00,  // feature unit: mute, volume
    0x09, 0x24, 0x03, 0x03, 0x01, 0x01, 0x00, 0x02, 0x00,  // output terminal: USB streaming
    0x09, 0x04, 0x03, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00,  // interface 3: audio streaming, no bandwidth
    0x09, 0x04, 0x03, 0x01, 0x01, 0x01, 0x02, 0x00, 0x00,  // interface 3, alternate setting 1
    0x07, 0x24, 0x01, 0x03, 0x01, 0x01, 0x00,              // AS general: PCM
    0x0b, 0x24, 0x02, 0x01, 0x01, 0x02, 0x10, 0x01, 0x80, 0x3e, 0x00,  // format: mono, 16 bit, 16 kHz
    0x09, 0x05, 0x86, 0x05, 0x44, 0x00, 0x04, 0x00, 0x00,  // endpoint 6 IN, isochronous (audio form)
    0x07, 0x25, 0x01, 0x01, 0x00, 0x00, 0x00,              // class-specific endpoint
};

// Linux's g_ether gadget (0525:a4a2) with two configurations: RNDIS first (bConfigurationValue 2),
// CDC ECM second (1, the one Linux chooses).
const Bytes kTwoConfigurations = {
    0x12, 0x01, 0x00, 0x02, 0x02, 0x00, 0x00, 0x40, 0x25, 0x05, 0xa2, 0xa4, 0x00, 0x01, 0x01, 0x02, 0x00, 0x02,
    0x09, 0x02, 0x43, 0x00, 0x02, 0x02, 0x04, 0xc0, 0x01,  // configuration 1, 67 bytes
    0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x02, 0xff, 0x05,  // interface 0: RNDIS control
    0x05, 0x24, 0x00, 0x10, 0x01,                          // CDC header
    0x05, 0x24, 0x01, 0x00, 0x01,                          // call management
    0x04, 0x24, 0x02, 0x00,                                // ACM
    0x05, 0x24, 0x06, 0x00, 0x01,                          // union
    0x07, 0x05, 0x81, 0x03, 0x08, 0x00, 0x09,              // endpoint 1 IN, interrupt
    0x09, 0x04, 0x01, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00,  // interface 1: CDC data
    0x07, 0x05, 0x82, 0x02, 0x00, 0x02, 0x00,              // endpoint 2 IN, bulk
    0x07, 0x05, 0x01, 0x02, 0x00, 0x02, 0x00,              // endpoint 1 OUT, bulk
    0x09, 0x02, 0x50, 0x00, 0x02, 0x01, 0x04, 0xc0, 0x01,  // configuration 2, 80 bytes
    0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x06, 0x00, 0x05,  // interface 0: CDC ECM control
    0x05, 0x24, 0x00, 0x10, 0x01,                          // CDC header
    0x05, 0x24, 0x06, 0x00, 0x01,                          // union
    0x0d, 0x24, 0x0f, 0x04, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00,  // Ethernet networking
    0x07, 0x05, 0x81, 0x03, 0x10, 0x00, 0x09,              // endpoint 1 IN, interrupt
    0x09, 0x04, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,  // interface 1: CDC data, no endpoints
    0x09, 0x04, 0x01, 0x01, 0x02, 0x0a, 0x00, 0x00, 0x00,  // interface 1, alternate setting 1
    0x07, 0x05, 0x82, 0x02, 0x00, 0x02, 0x00,              // endpoint 2 IN, bulk
    0x07, 0x05, 0x01, 0x02, 0x00, 0x02, 0x00,              // endpoint 1 OUT, bulk
};

constexpr std::size_t kKeyboardInterface1 = 18 + 9 + 25;  // offset of the keyboard's second interface

UsbInterface intf(int number, int cls, int subclass, int protocol) { return {number, cls, subclass, protocol}; }

std::vector<UsbInterface> parse(const Bytes& bytes, std::optional<int> configuration = std::nullopt) {
  return interfaces_from_descriptors(bytes, configuration);
}

Bytes with_byte(Bytes bytes, std::size_t offset, std::uint8_t value) {
  bytes.at(offset) = value;
  return bytes;
}

// A device descriptor, then one configuration whose wTotalLength covers `body`.
Bytes device_with_configuration(const Bytes& body) {
  Bytes bytes(kStick.begin(), kStick.begin() + 18);
  auto total = 9 + body.size();
  bytes.insert(bytes.end(), {0x09, 0x02, static_cast<std::uint8_t>(total), static_cast<std::uint8_t>(total >> 8),
                             0x01, 0x01, 0x00, 0x80, 0x32});
  bytes.insert(bytes.end(), body.begin(), body.end());
  return bytes;
}

TEST(UsbDescriptors, Keyboard) {
  EXPECT_EQ(parse(kKeyboard), (std::vector{intf(0, 3, 1, 1), intf(1, 3, 0, 0)}));
}

TEST(UsbDescriptors, MassStorageStick) { EXPECT_EQ(parse(kStick), (std::vector{intf(0, 8, 6, 0x50)})); }

TEST(UsbDescriptors, WebcamWithAssociationsAndAlternateSettings) {
  EXPECT_EQ(parse(kWebcam),
            (std::vector{intf(0, 0x0e, 1, 0), intf(1, 0x0e, 2, 0), intf(2, 1, 1, 0), intf(3, 1, 2, 0)}));
}

TEST(UsbDescriptors, TheFirstConfigurationByDefault) {
  EXPECT_EQ(parse(kTwoConfigurations), (std::vector{intf(0, 2, 2, 0xff), intf(1, 0x0a, 0, 0)}));
  // The kernel emits a configuration only as far as it parsed it, leaving the device's wTotalLength in
  // its header: the next configuration's descriptor still ends the first.
  Bytes overstated = with_byte(with_byte(with_byte(kStick, 17, 2), 20, 0xff), 21, 0xff);
  overstated.insert(overstated.end(), kKeyboard.begin() + 18, kKeyboard.end());  // the keyboard's as the second
  EXPECT_EQ(parse(overstated), (std::vector{intf(0, 8, 6, 0x50)}));
}

const std::vector<UsbInterface> kRndis = {intf(0, 2, 2, 0xff), intf(1, 0x0a, 0, 0)};
const std::vector<UsbInterface> kEcm = {intf(0, 2, 6, 0), intf(1, 0x0a, 0, 0)};

TEST(UsbDescriptors, TheActiveConfiguration) {
  // g_ether lists RNDIS first, as configuration 2; Linux chooses CDC ECM, configuration 1.
  EXPECT_EQ(parse(kTwoConfigurations, 2), kRndis);
  EXPECT_EQ(parse(kTwoConfigurations, 1), kEcm);
  EXPECT_EQ(parse(kTwoConfigurations, 3), kRndis);  // no such configuration: the first
  EXPECT_EQ(parse(kTwoConfigurations, 0), kRndis);
  // The second found after a first whose wTotalLength overstates it (as the kernel leaves it).
  Bytes overstated = with_byte(with_byte(kTwoConfigurations, 20, 0xff), 21, 0xff);
  EXPECT_EQ(parse(overstated, 1), kEcm);
  // ... and after one whose wTotalLength ends it early: the next starts where that says.
  Bytes cut = kTwoConfigurations;
  cut.erase(cut.begin() + 18 + 0x43 - 7, cut.begin() + 18 + 0x43);  // drop the first's last endpoint
  cut[20] = 0x43 - 7;
  EXPECT_EQ(parse(cut, 1), kEcm);
  // Not after a malformed descriptor in the first: where the second starts is then unknown.
  EXPECT_EQ(parse(with_byte(kTwoConfigurations, 18 + 9 + 9, 0), 1), (std::vector{intf(0, 2, 2, 0xff)}));
  // A second configuration that is not one (type or length) is never taken.
  EXPECT_EQ(parse(with_byte(kTwoConfigurations, 18 + 0x43 + 1, 0x04), 1), kRndis);
  EXPECT_EQ(parse(with_byte(kTwoConfigurations, 18 + 0x43, 0x08), 1), kRndis);
}

TEST(UsbDescriptors, ConfigurationsThatDoNotAdvanceEndTheSearch) {
  // wTotalLength 0 and shorter than the header: each configuration yields nothing and no next one.
  EXPECT_TRUE(parse(with_byte(with_byte(kTwoConfigurations, 20, 0), 21, 0), 1).empty());
  EXPECT_TRUE(parse(with_byte(with_byte(kTwoConfigurations, 20, 8), 21, 0), 1).empty());
  // A chain of 9-byte empty configurations, the wanted one last.
  Bytes chain(kStick.begin(), kStick.begin() + 18);
  for (int value = 1; value <= 200; ++value)
    chain.insert(chain.end(), {0x09, 0x02, 0x09, 0x00, 0x00, static_cast<std::uint8_t>(value), 0x00, 0x80, 0x32});
  chain.insert(chain.end(), {0x09, 0x02, 0x12, 0x00, 0x01, 0xff, 0x00, 0x80, 0x32,
                             0x09, 0x04, 0x00, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00});
  EXPECT_EQ(parse(chain, 0xff), (std::vector{intf(0, 3, 1, 1)}));
  EXPECT_TRUE(parse(chain, 7).empty());
}

// Every prefix: no read past it, sorted, a subset of what the next longer prefix yields, and all of
// the first configuration once the prefix holds it.
void expect_prefixes_consistent(const Bytes& bytes) {
  auto full = parse(bytes);
  ASSERT_FALSE(full.empty());
  std::size_t first_configuration_end = 18 + (bytes[20] | bytes[21] << 8);
  std::vector<UsbInterface> shorter;
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    auto found = parse(Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));  // exactly n bytes
    EXPECT_TRUE(std::ranges::is_sorted(found, {}, &UsbInterface::number)) << "prefix " << n;
    for (const auto& i : shorter) EXPECT_NE(std::ranges::find(found, i), found.end()) << "prefix " << n;
    if (n < 18 + 9) {
      EXPECT_TRUE(found.empty()) << "prefix " << n;
    }
    if (n >= first_configuration_end) {
      EXPECT_EQ(found, full) << "prefix " << n;
    }
    shorter = found;
  }
}

TEST(UsbDescriptors, EveryTruncation) {
  for (const auto* bytes : {&kKeyboard, &kStick, &kWebcam, &kTwoConfigurations}) expect_prefixes_consistent(*bytes);
}

TEST(UsbDescriptors, NoDeviceDescriptor) {
  EXPECT_TRUE(parse({}).empty());
  EXPECT_TRUE(parse(with_byte(kStick, 0, 0x11)).empty());  // bLength 17
  EXPECT_TRUE(parse(with_byte(kStick, 0, 0x13)).empty());  // bLength 19
  EXPECT_TRUE(parse(with_byte(kStick, 1, 0x02)).empty());  // a configuration where the device should be
  EXPECT_TRUE(parse(Bytes(kStick.begin() + 18, kStick.end())).empty());
}

TEST(UsbDescriptors, MalformedConfigurationDescriptor) {
  EXPECT_TRUE(parse(with_byte(kStick, 18, 0x08)).empty());  // shorter than a configuration descriptor
  EXPECT_TRUE(parse(with_byte(kStick, 18, 0x00)).empty());
  EXPECT_TRUE(parse(with_byte(kStick, 19, 0x04)).empty());  // an interface where the configuration should be
  EXPECT_TRUE(parse(with_byte(kStick, 20, 0x00)).empty());  // wTotalLength 0
}

TEST(UsbDescriptors, ZeroOrOneLengthStopsTheWalk) {
  EXPECT_EQ(parse(with_byte(kKeyboard, kKeyboardInterface1, 0)), (std::vector{intf(0, 3, 1, 1)}));
  EXPECT_EQ(parse(with_byte(kKeyboard, kKeyboardInterface1, 1)), (std::vector{intf(0, 3, 1, 1)}));
  EXPECT_TRUE(parse(with_byte(kKeyboard, 27, 0)).empty());  // the first descriptor after the configuration
}

TEST(UsbDescriptors, LengthPastTheEndStopsTheWalk) {
  EXPECT_EQ(parse(with_byte(kKeyboard, kKeyboardInterface1, 0xff)), (std::vector{intf(0, 3, 1, 1)}));
  // The last endpoint runs past the input (and wTotalLength); what came before it is kept.
  EXPECT_EQ(parse(with_byte(kKeyboard, kKeyboard.size() - 7, 8)), parse(kKeyboard));
}

TEST(UsbDescriptors, TotalLengthBeyondTheInput) {
  EXPECT_EQ(parse(with_byte(with_byte(kKeyboard, 20, 0xff), 21, 0xff)), parse(kKeyboard));
}

TEST(UsbDescriptors, TotalLengthBoundsTheConfiguration) {
  Bytes after_first_interface = with_byte(kKeyboard, 20, 9 + 25);
  EXPECT_EQ(parse(after_first_interface), (std::vector{intf(0, 3, 1, 1)}));
  Bytes into_second_interface = with_byte(kKeyboard, 20, 9 + 25 + 8);
  EXPECT_EQ(parse(into_second_interface), (std::vector{intf(0, 3, 1, 1)}));
  EXPECT_TRUE(parse(with_byte(kKeyboard, 20, 8)).empty());  // shorter than the configuration descriptor
}

TEST(UsbDescriptors, ShortInterfaceDescriptorIsIgnored) {
  auto bytes = device_with_configuration({0x08, 0x04, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00,  // 8 bytes: ignored
                                          0x09, 0x04, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00});
  EXPECT_EQ(parse(bytes), (std::vector{intf(1, 3, 0, 0)}));
}

TEST(UsbDescriptors, LongerInterfaceDescriptorIsRead) {
  auto bytes = device_with_configuration({0x0c, 0x04, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x00, 0xaa, 0xbb, 0xcc});
  EXPECT_EQ(parse(bytes), (std::vector{intf(0, 3, 1, 2)}));
}

TEST(UsbDescriptors, AlternateSettingZeroOnlyOnceSorted) {
  auto bytes = device_with_configuration({
      0x09, 0x04, 0x02, 0x01, 0x00, 0xff, 0x00, 0x00, 0x00,  // interface 2, alternate setting 1 first
      0x09, 0x04, 0x02, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,  // interface 2
      0x09, 0x04, 0x00, 0x00, 0x00, 0x02, 0x06, 0x00, 0x00,  // interface 0
      0x09, 0x04, 0x00, 0x00, 0x00, 0x08, 0x06, 0x50, 0x00,  // interface 0 again: ignored
      0x09, 0x04, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00,  // interface 255, vendor-specific
  });
  EXPECT_EQ(parse(bytes), (std::vector{intf(0, 2, 6, 0), intf(2, 0x0a, 0, 0), intf(255, 0xff, 0xff, 0xff)}));
}

TEST(UsbDescriptors, EveryInterfaceNumberInReverse) {
  Bytes body;
  for (int n = 255; n >= 0; --n)
    body.insert(body.end(), {0x09, 0x04, static_cast<std::uint8_t>(n), 0x00, 0x00, 0x03, 0x00, 0x00, 0x00});
  auto found = parse(device_with_configuration(body));
  ASSERT_EQ(found.size(), 256u);
  for (int n = 0; n < 256; ++n) EXPECT_EQ(found[static_cast<std::size_t>(n)], intf(n, 3, 0, 0));
}

TEST(UsbDescriptors, HostileLengths) {
  Bytes smallest;  // a maximal configuration of 2-byte class-specific descriptors
  while (smallest.size() < 0xffff - 9) smallest.insert(smallest.end(), {0x02, 0x24});
  EXPECT_TRUE(parse(device_with_configuration(smallest)).empty());
  Bytes longest = device_with_configuration(Bytes(0xffff - 9, 0xff));  // 255-byte descriptors of type 255
  EXPECT_TRUE(parse(longest).empty());
  EXPECT_TRUE(parse(device_with_configuration({0x09, 0x04})).empty());  // an interface cut short by wTotalLength
}

TEST(UsbDescriptors, ReadsTheFileUpToTheLargestConfiguration) {
  test::TempDir dir;
  EXPECT_EQ(read_descriptors_file(SysfsDir(dir.path())), std::nullopt);
  std::ofstream(dir / "descriptors", std::ios::binary).write(reinterpret_cast<const char*>(kWebcam.data()),
                                                             static_cast<std::streamsize>(kWebcam.size()));
  EXPECT_EQ(read_descriptors_file(SysfsDir(dir.path())), kWebcam);

  std::ofstream(dir / "descriptors", std::ios::binary) << std::string(100'000, 'x');
  auto capped = read_descriptors_file(SysfsDir(dir.path()));
  ASSERT_TRUE(capped);
  EXPECT_EQ(capped->size(), 18u + 0xffff);
}

TEST(UsbDescriptors, FileIsNotReadThroughALink) {
  test::TempDir dir;
  std::ofstream(dir / "real", std::ios::binary).write(reinterpret_cast<const char*>(kStick.data()),
                                                      static_cast<std::streamsize>(kStick.size()));
  std::filesystem::create_symlink(dir / "real", dir / "descriptors");
  EXPECT_EQ(read_descriptors_file(SysfsDir(dir.path())), std::nullopt);
}

// read_usb_device on a umockdev host.
class UsbDescriptorsSysfs : public testing::Test {
 protected:
  UsbDevice read(const std::string& sys_path) {
    UdevPtr udev(udev_new());
    UdevDevicePtr dev(udev_device_new_from_syspath(udev.get(), sys_path.c_str()));
    if (!dev) throw std::runtime_error("no device at " + sys_path);
    return read_usb_device(dev.get());
  }

  test::Testbed tb;
  std::string root_hub = tb.add_usb({.name = "usb1", .busnum = 1, .devnum = 1, .vid = "1d6b", .pid = "0002", .cls = 9,
                                     .removable = "unknown", .self_powered = true, .interfaces = {{9, 0, 0, "hub"}}});
};

// With authorized_default=0 the kernel reads the webcam's descriptors but never configures it: no
// interface directories. With no ID_USB_INTERFACES either (udev's usb_id did not run), only the
// descriptors tell its interfaces.
TEST_F(UsbDescriptorsSysfs, UnauthorizedDeviceInterfacesComeFromDescriptors) {
  auto path = tb.add_usb({.parent = root_hub, .name = "1-4", .busnum = 1, .devnum = 5, .vid = "046d", .pid = "0825",
                          .cls = 0xef, .subclass = 2, .protocol = 1,
                          .attribute_overrides = {{"authorized", "0"}, {"bConfigurationValue", ""}}});
  tb.set_binary_attribute(path, "descriptors", kWebcam);
  auto d = read(path);
  EXPECT_FALSE(d.configured);
  EXPECT_EQ(d.interface_list,
            (std::vector{intf(0, 0x0e, 1, 0), intf(1, 0x0e, 2, 0), intf(2, 1, 1, 0), intf(3, 1, 2, 0)}));
  EXPECT_EQ(d.interfaces, ":0e0100:0e0200:010100:010200:");
  EXPECT_FALSE(d.is_hub);
}

// The active configuration's interfaces, as the kernel made their directories (and no other source:
// no ID_USB_INTERFACES).
TEST_F(UsbDescriptorsSysfs, TheActiveConfigurationsInterfaces) {
  auto path = tb.add_usb({.parent = root_hub, .name = "1-6", .busnum = 1, .devnum = 7, .vid = "0525", .pid = "a4a2",
                          .cls = 2, .udev_properties = false, .attribute_overrides = {{"bConfigurationValue", "1"}}});
  tb.set_binary_attribute(path, "descriptors", kTwoConfigurations);
  auto d = read(path);
  EXPECT_TRUE(d.configured);
  EXPECT_EQ(d.interface_list, kEcm);
  EXPECT_EQ(d.interfaces, ":020600:0a0000:");
}

// A present but malformed bConfigurationValue is a malformed device, as any numeric attribute.
TEST_F(UsbDescriptorsSysfs, UnparsableConfigurationValueSkipsTheDevice) {
  auto path = tb.add_usb({.parent = root_hub, .name = "1-8", .busnum = 1, .devnum = 9, .vid = "046d", .pid = "c31c",
                          .attribute_overrides = {{"bConfigurationValue", "one"}}});
  EXPECT_THROW(read(path), DeviceReadError);
}

}  // namespace
}  // namespace vhp::usb_descriptors_test
