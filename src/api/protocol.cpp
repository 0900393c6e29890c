#include "api/protocol.h"

#include <stdexcept>

namespace vhp {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// A request whose fields have the wrong types; the message is the response's error text.
struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::optional<bool> optional_bool(const json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw BadRequest(std::string("Invalid message: ") + key + " must be true, false or null");
  return it->get<bool>();
}

std::optional<std::string> optional_string(const json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw BadRequest(std::string("Invalid message: ") + key + " must be a string or null");
  return it->get<std::string>();
}

ListFilter list_filter(const json& request) {
  return {optional_bool(request, "disconnected"), optional_string(request, "tag")};
}

}  // namespace

ordered_json Protocol::failed(const std::string& error) { return {{"result", "failed"}, {"error", error}}; }

ordered_json Protocol::ok() { return {{"result", "ok"}}; }

ordered_json Protocol::line_too_long(std::size_t limit) {
  return failed("Message too long: the limit is " + std::to_string(limit) + " bytes per line");
}

std::string Protocol::to_line(const ordered_json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

ordered_json Protocol::handle(std::string_view line, Session& session) {
  json request;
  try {
    request = json::parse(line);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for numbers beyond a double (1e999999); ill-formed UTF-8 is a parse_error.
    return failed(std::string("Invalid JSON: ") + e.what());
  }
  if (!request.is_object()) return failed("Invalid message: expected a JSON object");
  auto action = request.find("action");
  if (action == request.end() || action->is_null()) return failed("No action specified");
  if (!action->is_string()) return failed("Invalid message: action must be a string");
  try {
    return dispatch(action->get<std::string>(), request, session);
  } catch (const BadRequest& e) {
    return failed(e.what());
  } catch (const std::exception& e) {  // a bug must not cost the client its connection
    return failed(std::string("Internal error: ") + e.what());
  }
}

ordered_json Protocol::dispatch(const std::string& action, const json& request, Session& session) {
  if (action == "enable_notifications") {
    session.notifications = true;
    return ok();
  }
  if (action == "usb_list") {
    auto response = ok();
    response["usb_devices"] = manager_.usb_list(list_filter(request));
    return response;
  }
  if (action == "pci_list") {
    auto response = ok();
    response["pci_devices"] = manager_.pci_list(list_filter(request));
    return response;
  }
  return failed("Unknown message: " + action);
}

}  // namespace vhp
