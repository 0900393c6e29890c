#include <gtest/gtest.h>

#include "device/parse.h"

namespace vhp::parse_test {
namespace {

TEST(ParseNumber, AcceptsWholeNumbersOnly) {
  EXPECT_EQ(parse_number("003", 10), 3);
  EXPECT_EQ(parse_number(" 1\n", 10), 1);  // bNumInterfaces is space-padded
  EXPECT_EQ(parse_number("0e", 16), 14);
  EXPECT_EQ(parse_number("0x0c0330", 16), 0x0c0330);
  EXPECT_EQ(parse_number("C0330", 16), 0xC0330);
  EXPECT_FALSE(parse_number("", 10));
  EXPECT_FALSE(parse_number("zz", 16));
  EXPECT_FALSE(parse_number("12abc", 10));
  EXPECT_FALSE(parse_number("-1", 10));
  EXPECT_FALSE(parse_number("0x", 16));
  EXPECT_FALSE(parse_number("99999999999999999999", 10));
}

TEST(Trim, StripsBothEnds) {
  EXPECT_EQ(trim("  a b \n"), "a b");
  EXPECT_EQ(trim("\t\n"), "");
}

}  // namespace
}  // namespace vhp::parse_test
