#pragma once
// Thunder's JSON-RPC for the USBHub plugin: designators, ids, Thunder R5 error codes, the
// methods and register/unregister. Pure: the transports own the bytes and the connections.
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "device/usb_device.h"

namespace vhp::thunder {

// One transport connection: its subscriptions end with it.
struct Channel {
  std::set<std::pair<std::string, std::string>> subscriptions;  // (event, client id)
  std::size_t max_subscriptions = 64;  // a register beyond it fails
  std::string implicit_callsign;  // from a /jsonrpc/<callsign> path; then the callsign may be left out
};

struct Reply {
  std::optional<nlohmann::ordered_json> message;  // nothing for a successful call without id
  bool parse_error = false;                       // HTTP answers these with 400
};

// What the handler needs of the daemon.
struct Devices {
  std::function<std::vector<UsbDevice>()> all;
  std::function<nlohmann::ordered_json(const UsbDevice&)> metadata;
};

class JsonRpc {
 public:
  JsonRpc(std::string callsign, Devices devices) : callsign_(std::move(callsign)), devices_(std::move(devices)) {}

  Reply handle(std::string_view text, Channel& channel) const;
  const std::string& callsign() const { return callsign_; }

  // Thunder R5 errors: {"code": …, "message": …}.
  static nlohmann::ordered_json error(int code, const std::string& message);
  // `<client id>.<event>` notification.
  static nlohmann::ordered_json notification(const std::string& client_id, const std::string& event,
                                             const nlohmann::ordered_json& device);

 private:
  std::string callsign_;
  Devices devices_;
};

}  // namespace vhp::thunder
