// libFuzzer: one WebSocket/HTTP body through the USBHub JSON-RPC handler. Whatever the bytes, the
// answer is nothing (a successful call without id) or one JSON-RPC object with a result or an error.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "thunder/jsonrpc.h"
#include "thunder/metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vhp::UsbDevice key = [] {
    vhp::UsbDevice d;
    d.sys_path = "/sys/devices/usb1/1-2", d.sys_name = "1-2", d.device_node = "/dev/bus/usb/001/003";
    d.vid = "1050", d.pid = "0407", d.busnum = 1, d.devnum = 3, d.ports = {2}, d.language_id = 0x0409;
    return d;
  }();
  static vhp::thunder::JsonRpc rpc("USBHub", {[] { return std::vector<vhp::UsbDevice>{key}; },
                                              [](const vhp::UsbDevice& d) { return vhp::thunder::device_metadata(d, true, ""); }});
  vhp::thunder::Channel channel;
  auto reply = rpc.handle(std::string_view(reinterpret_cast<const char*>(data), size), channel);
  if (!reply.message) return 0;
  const auto& m = *reply.message;
  if (m.value("jsonrpc", "") != "2.0" || m.contains("result") == m.contains("error")) std::abort();
  m.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
