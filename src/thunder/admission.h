#pragma once
// Whether an HTTP request (a POST or a WebSocket upgrade) may reach the facade, from its headers:
// a browser page only from an allowed Origin, a Host that DNS rebinding cannot forge (an IP
// literal, "localhost", or a configured name), and the Thunder token when one is set (the `token`
// query parameter, as ThunderJS sends it on the WebSocket, or `Authorization: Bearer`).
#include <optional>
#include <string>
#include <string_view>

#include "policy/config.h"

namespace vhp::thunder {

struct Refusal {
  unsigned status;   // 403 or 401
  std::string text;  // the response body and the log line
};

struct RequestHeaders {
  std::optional<std::string_view> host, origin, authorization;
  std::string_view target;  // with its query
};

std::optional<Refusal> refuse(const RequestHeaders& request, const ThunderConfig& config);

}  // namespace vhp::thunder
