#pragma once
// One request line in, one response object out: parsing, validation and dispatch of the vhotplug
// API. Pure: the transport owns the bytes and the connection.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  std::optional<std::string> line{};  // instead of response: the answer already serialized ('\n' included)

  std::string response_line() const;  // line, or response serialized; for an outcome that answers at once
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

  // usb_list's answer, kept while the manager's stamp says the list is the same: the whole line for
  // callers without a grant, and where each entry is in it, for those with one.
  struct UsbListCache {
    struct Entry {
      std::size_t begin = 0, end = 0;  // the entry's JSON in `line`
      std::optional<std::string> vm;
      std::vector<std::string> allowed_vms;
    };
    UsbListStamp stamp;
    std::vector<Entry> entries;
    std::string line;
  };
  std::string usb_list_line(const ListFilter& filter, const Grant* grant);

  std::map<std::pair<std::optional<bool>, std::optional<std::string>>, UsbListCache> usb_lists_;  // by filter
  std::set<std::string> denials_logged_;
  DeviceManager& manager_;
  StatusSource status_source_;
};

}  // namespace vhp
