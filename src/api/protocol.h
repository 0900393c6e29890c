#pragma once
// One request line in, one response object out: parsing, validation and dispatch of the vhotplug
// API. Pure: the transport owns the bytes and the connection.
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "manager/device_manager.h"
#include "manager/permissions.h"

namespace vhp {

// What a request may change about the connection it came on.
struct Session {
  bool notifications = false;
  Caller caller{};
  std::shared_ptr<const Grant> grant{};  // nullptr: no permissions configured, everything allowed
};

// What to do with a request: answer at once, or run a command (attach, detach) and answer with its result.
struct Outcome {
  std::optional<nlohmann::ordered_json> response{};
  std::optional<Command> command{};
  bool replay_pending_selects = false;  // enable_notifications: re-send usb_select_vm still waiting for an answer
};

class Protocol {
 public:
  explicit Protocol(DeviceManager& manager) : manager_(manager) {}

  // What `status` answers; without one, `status` fails.
  using StatusSource = std::function<DaemonStatus()>;
  void set_status_source(StatusSource source) { status_source_ = std::move(source); }

  // `line` is one message without its '\n'. Never throws; bad input gets a "failed" response.
  Outcome handle(std::string_view line, Session& session);

  static nlohmann::ordered_json failed(const std::string& error);
  static nlohmann::ordered_json ok();
  // The response to a line longer than `limit` bytes (the rest of the line is skipped; the connection goes on).
  static nlohmann::ordered_json line_too_long(std::size_t limit);
  // Serialises a message as one line, '\n' included. Invalid UTF-8 cannot reach here, but is replaced if it does.
  static std::string to_line(const nlohmann::ordered_json& message);

 private:
  Outcome dispatch(const std::string& action, const nlohmann::json& request, Session& session);  // permissions, then run
  Outcome run(const std::string& action, const nlohmann::json& request, Session& session);
  // "Permission denied: …", logged once per caller and action.
  Outcome deny(const Session& session, const std::string& action, const std::string& why);

  std::set<std::string> denials_logged_;
  DeviceManager& manager_;
  StatusSource status_source_;
};

}  // namespace vhp
