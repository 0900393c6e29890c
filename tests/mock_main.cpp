// gtest main for tests that need umockdev: re-executes itself under the preload first.
#include <gtest/gtest.h>

#include "support/mock_environment.h"

int main(int argc, char** argv) {
  vhp::test::enter_mock_environment(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
