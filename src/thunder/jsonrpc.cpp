#include "thunder/jsonrpc.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace vhp::thunder {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// Thunder core codes, mapped as R5 does: fixed JSON-RPC codes for a few, -31000 - N for the rest.
struct Error {
  int code;
  std::string message;
};
const Error kInvalidRequest{-32600, "Invalid request."};
const Error kUnknownMethod{-32601, "Unknown method."};
const Error kInvalidParameters{-32602, "Invalid parameters."};
const Error kNotExist{-31043, "The service is not available."};
const Error kInvalidSignature{-31038, "Requested version is not supported."};
const Error kRegistered{-31048, "Registration failed."};
const Error kUnregistered{-31049, "Unregister failed."};
const Error kUnknownKey{-31022, "ERROR_UNKNOWN_KEY"};
const Error kBadRequest{-31030, "ERROR_BAD_REQUEST"};
Error parse_failure(const std::string& detail) { return {-31050, detail}; }

struct Failure {
  Error error;
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](unsigned char c) { return std::isdigit(c) != 0; });
}

// Thunder's number parser: a JSON number, or a quoted decimal, hex (0x) or octal (leading 0) number.
std::optional<unsigned long long> thunder_number(const json& v) {
  if (v.is_number_unsigned()) return v.get<unsigned long long>();
  if (!v.is_string()) return std::nullopt;
  std::string_view s = v.get_ref<const std::string&>();
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s.remove_prefix(2);
  else if (s.size() > 1 && s[0] == '0') base = 8, s.remove_prefix(1);
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return value;
}

const json& params_object(const json& request) {
  auto it = request.find("params");
  if (it == request.end() || !it->is_object()) throw Failure{kBadRequest};
  return *it;
}

unsigned u16_member(const json& params, const char* key) {
  auto it = params.find(key);
  if (it == params.end() || it->is_null()) throw Failure{kBadRequest};
  auto v = thunder_number(*it);
  if (!v) throw Failure{parse_failure(std::string("Invalid value for ") + key)};
  if (*v > 0xFFFF) throw Failure{parse_failure(std::string("Integer overflow in ") + key)};
  return static_cast<unsigned>(*v);
}

std::string string_member(const json& params, const char* key, const Error& missing) {
  auto it = params.find(key);
  if (it == params.end() || !it->is_string()) throw Failure{missing};
  return it->get<std::string>();
}

}  // namespace

ordered_json JsonRpc::error(int code, const std::string& message) { return {{"code", code}, {"message", message}}; }

ordered_json JsonRpc::notification(const std::string& client_id, const std::string& event, const ordered_json& device) {
  return {{"jsonrpc", "2.0"}, {"method", client_id + "." + event}, {"params", {{"device", device}}}};
}

Reply JsonRpc::handle(std::string_view text, Channel& channel) const {
  json request = json::parse(text, nullptr, false);
  if (request.is_discarded()) {
    return {ordered_json{{"jsonrpc", "2.0"}, {"id", nullptr}, {"error", error(-31050, "Parsing of the message failed")}}, true};
  }
  auto reply = [](const std::optional<unsigned long long>& id, ordered_json body) {
    ordered_json message{{"jsonrpc", "2.0"}};
    if (id) message["id"] = *id;
    for (auto& [k, v] : body.items()) message[k] = v;
    return message;
  };
  auto fail = [&](const std::optional<unsigned long long>& id, const Error& e) {
    return Reply{reply(id, {{"error", error(e.code, e.message)}})};
  };
  if (!request.is_object()) return fail(std::nullopt, kInvalidRequest);  // batches are not supported, as Thunder

  std::optional<unsigned long long> id;
  if (auto it = request.find("id"); it != request.end() && !it->is_null()) {
    id = thunder_number(*it);
    if (!id || *id > 0xFFFFFFFFull)
      return {ordered_json{{"jsonrpc", "2.0"}, {"id", nullptr}, {"error", error(-31050, "Invalid id")}}, true};
  }
  auto method_it = request.find("method");
  if (method_it == request.end() || !method_it->is_string()) return fail(id, kInvalidRequest);

  // [callsign.][version.]method — a callsign may hold dots; the version is all digits.
  std::string designator = method_it->get<std::string>();
  auto dot = designator.rfind('.');
  std::string method = dot == std::string::npos ? designator : designator.substr(dot + 1);
  std::string rest = dot == std::string::npos ? "" : designator.substr(0, dot);
  std::optional<std::string> version;
  if (auto vdot = rest.rfind('.'); all_digits(vdot == std::string::npos ? rest : rest.substr(vdot + 1))) {
    version = vdot == std::string::npos ? rest : rest.substr(vdot + 1);
    rest = vdot == std::string::npos ? "" : rest.substr(0, vdot);
  }
  std::string callsign = rest.empty() ? channel.implicit_callsign : rest;
  if (callsign != callsign_) return fail(id, kNotExist);
  if (version && *version != "1") return fail(id, kInvalidSignature);

  ordered_json result;
  try {
    if (method == "devices") {
      result = ordered_json::array();
      for (const auto& d : devices_.all()) result.push_back(d.device_name());
    } else if (method == "vendorDevices") {
      const auto& params = params_object(request);
      unsigned vendor = u16_member(params, "vendorId"), product = u16_member(params, "productId");
      result = ordered_json::array();
      for (const auto& d : devices_.all())
        if (std::stoul(d.vid, nullptr, 16) == vendor && std::stoul(d.pid, nullptr, 16) == product) result.push_back(d.device_name());
    } else if (method == "device") {
      auto name = string_member(params_object(request), "deviceName", kBadRequest);
      auto all = devices_.all();
      auto it = std::ranges::find_if(all, [&](const UsbDevice& d) { return d.device_name() == name; });
      if (it == all.end()) throw Failure{kUnknownKey};
      result = devices_.metadata(*it);
    } else if (method == "register" || method == "unregister") {
      auto pit = request.find("params");
      if (pit == request.end() || !pit->is_object()) throw Failure{kInvalidParameters};
      auto key = std::pair{string_member(*pit, "event", kInvalidParameters), string_member(*pit, "id", kInvalidParameters)};
      if (method == "register" && (channel.subscriptions.size() >= channel.max_subscriptions || !channel.subscriptions.insert(key).second))
        throw Failure{kRegistered};
      if (method == "unregister" && channel.subscriptions.erase(key) == 0) throw Failure{kUnregistered};
      result = nullptr;  // R5.3 and later
    } else if (method == "exists") {
      auto name = string_member(params_object(request), "method", kBadRequest);
      static const std::set<std::string> known = {"devices", "vendorDevices", "device", "register", "unregister", "exists", "versions"};
      result = known.contains(name);
    } else if (method == "versions") {
      result = ordered_json::array({{{"name", "JUSBHub"}, {"major", 1}, {"minor", 0}, {"patch", 0}}});
    } else {
      throw Failure{kUnknownMethod};
    }
  } catch (const Failure& f) {
    return fail(id, f.error);
  }
  if (!id) return {};  // a notification: no answer when it succeeded
  return {reply(id, {{"result", result}})};
}

}  // namespace vhp::thunder
