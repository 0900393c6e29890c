// libFuzzer: arbitrary bytes as a config file. Loading either succeeds or throws ConfigError; nothing else.
#include <cstdint>
#include <string_view>

#include "policy/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto root = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (root.is_discarded()) return 0;
  try {
    vhp::parse_config(root, "fuzz");
  } catch (const vhp::ConfigError&) {
  }
  return 0;
}
