#include "thunder/admission.h"

#include <algorithm>
#include <cctype>

#include <boost/asio/ip/address.hpp>

#include "device/printable.h"

namespace vhp::thunder {
namespace {

bool same_text(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y)); });
}

// "name:port", "[v6]:port", "name" → the name ("v6" without brackets).
std::string_view host_name(std::string_view host) {
  if (host.starts_with('[')) return host.substr(1, host.find(']') == std::string_view::npos ? std::string_view::npos : host.find(']') - 1);
  if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon) return host.substr(0, colon);
  return host;
}

bool host_allowed(std::string_view host, const ThunderConfig& config) {
  auto name = host_name(host);
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(name), ec);
  if (!ec || same_text(name, "localhost")) return true;  // rebinding needs a name it controls
  return std::ranges::any_of(config.allowed_hosts, [&](const std::string& allowed) { return same_text(name, allowed); });
}

// The value of `token=` in the target's query, if any.
std::optional<std::string_view> query_token(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  auto query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    if (item.starts_with("token=")) return item.substr(6);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// Compared without an early exit: the time taken says nothing of how much of the token was right.
bool same_secret(std::string_view given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

}  // namespace

std::optional<Refusal> refuse(const RequestHeaders& request, const ThunderConfig& config) {
  if (request.host && !host_allowed(*request.host, config))
    return Refusal{403, "Host " + printable(request.host->substr(0, 256)) + " is not allowed"};
  if (request.origin && std::ranges::none_of(config.allowed_origins, [&](const std::string& o) { return same_text(*request.origin, o); }))
    return Refusal{403, "Origin " + printable(request.origin->substr(0, 256)) + " is not allowed"};
  if (!config.token.empty()) {
    auto given = query_token(request.target);
    if (!given && request.authorization && request.authorization->starts_with("Bearer ")) given = request.authorization->substr(7);
    if (!given || !same_secret(*given, config.token)) return Refusal{401, "A valid token is required"};
  }
  return std::nullopt;
}

}  // namespace vhp::thunder
