// Device strings made safe to print: control characters and malformed UTF-8 escaped, text kept.
#include <gtest/gtest.h>

#include "device/printable.h"

namespace vhp::printable_test {
namespace {

TEST(Printable, TextInAnyScriptIsUnchanged) {
  EXPECT_EQ(printable("SanDisk Ultra"), "SanDisk Ultra");
  EXPECT_EQ(printable("Клавиатура 键盘 ⌨️ 🙂"), "Клавиатура 键盘 ⌨️ 🙂");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, ControlCharactersAreEscaped) {
  EXPECT_EQ(printable("a\x1b[2Jb"), R"(a\x1b[2Jb)");
  EXPECT_EQ(printable("line\nforged"), R"(line\x0aforged)");
  EXPECT_EQ(printable(std::string("nul\0x", 5)), R"(nul\x00x)");
  EXPECT_EQ(printable("del\x7f"), R"(del\x7f)");
  EXPECT_EQ(printable("csi\xc2\x9b"), R"(csi\xc2\x9b)");  // U+009B, a C1 control
}

TEST(Printable, BytesThatAreNotUtf8AreEscaped) {
  EXPECT_EQ(printable("\xff\xfe"), R"(\xff\xfe)");
  EXPECT_EQ(printable("\xc0\xaf"), R"(\xc0\xaf)");          // overlong "/"
  EXPECT_EQ(printable("\xed\xa0\x80"), R"(\xed\xa0\x80)");  // a surrogate
  EXPECT_EQ(printable("cut\xe2\x82"), R"(cut\xe2\x82)");    // truncated
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), R"(\xf4\x90\x80\x80)");  // past U+10FFFF
}

}  // namespace
}  // namespace vhp::printable_test
