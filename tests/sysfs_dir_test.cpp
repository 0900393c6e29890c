// SysfsDir: a device directory's attributes read relative to it (src/device/sysfs_dir.h).
#include <array>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "device/sysfs_dir.h"
#include "support/temp_dir.h"

namespace vhp {
namespace {

namespace fs = std::filesystem;

class SysfsDirTest : public testing::Test {
 protected:
  SysfsDirTest() {
    fs::create_directories(tmp / "usb1/1-2/power");
    std::ofstream(tmp / "usb1/devnum") << "1\n";
    std::ofstream(tmp / "usb1/1-2/speed") << "480\n";
    std::ofstream(tmp / "usb1/1-2/manufacturer") << "";
    fs::create_symlink("../../bus/usb/drivers/usb", tmp / "usb1/1-2/driver");
    fs::create_symlink("speed", tmp / "usb1/1-2/linked");
  }
  test::TempDir tmp;
};

TEST_F(SysfsDirTest, ReadsAnAttributeAsTheKernelWroteIt) {
  SysfsDir dir(tmp / "usb1/1-2");
  EXPECT_EQ(dir.read("speed"), "480\n");
  EXPECT_EQ(dir.read("manufacturer"), "");  // present and empty is not absent
  EXPECT_EQ(dir.read("serial"), std::nullopt);
}

TEST_F(SysfsDirTest, ReachesTheDeviceAbove) { EXPECT_EQ(SysfsDir(tmp / "usb1/1-2").read("../devnum"), "1\n"); }

TEST_F(SysfsDirTest, NeitherADirectoryNorALinkIsAnAttribute) {
  SysfsDir dir(tmp / "usb1/1-2");
  EXPECT_EQ(dir.read("power"), std::nullopt);
  EXPECT_EQ(dir.read("linked"), std::nullopt);
  EXPECT_EQ(dir.read("driver"), std::nullopt);
}

TEST_F(SysfsDirTest, NamesALinksTarget) {
  SysfsDir dir(tmp / "usb1/1-2");
  EXPECT_EQ(dir.link_name("driver"), "usb");
  EXPECT_EQ(dir.link_name("speed"), std::nullopt);
  EXPECT_EQ(dir.link_name("module"), std::nullopt);
}

TEST_F(SysfsDirTest, ReadsBytesUpToTheBuffer) {
  std::array<std::uint8_t, 2> two;
  SysfsDir dir(tmp / "usb1/1-2");
  EXPECT_EQ(dir.read_bytes("speed", two), 2u);
  EXPECT_EQ(two[0], '4');
  EXPECT_EQ(two[1], '8');
}

TEST_F(SysfsDirTest, AGoneDeviceReadsAsEmpty) {
  SysfsDir gone(tmp / "usb1/1-9");
  EXPECT_EQ(gone.read("speed"), std::nullopt);
  EXPECT_EQ(gone.link_name("driver"), std::nullopt);
  SysfsDir file(tmp / "usb1/devnum");  // not a directory
  EXPECT_EQ(file.read("speed"), std::nullopt);
}

}  // namespace
}  // namespace vhp
