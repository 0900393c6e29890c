#include "vmm/crosvm_output.h"

#include <charconv>
#include <sstream>

namespace vhp {
namespace {

// crosvm's USB ports are a u8.
std::optional<int> port_number(const std::string& word) {
  int port = -1;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), port);
  if (ec != std::errc() || end != word.data() + word.size() || port < 0 || port > 255) return std::nullopt;
  return port;
}

}  // namespace

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::optional<std::vector<std::pair<int, std::string>>> parse_usb_list(const std::string& out) {
  auto w = words(out);
  if (w.empty() || w.front() != "devices" || (w.size() - 1) % 3 != 0) return std::nullopt;
  std::vector<std::pair<int, std::string>> ports;
  for (std::size_t i = 1; i + 2 < w.size(); i += 3) {
    auto port = port_number(w[i]);
    if (!port) return std::nullopt;
    ports.emplace_back(*port, w[i + 1] + ":" + w[i + 2]);
  }
  return ports;
}

std::optional<int> parse_usb_attached(const std::string& out) {
  auto w = words(out);
  if (w.size() < 2 || w.front() != "ok") return std::nullopt;
  return port_number(w[1]);
}

std::optional<std::vector<std::string>> parse_vfio_list(const std::string& out) {
  auto w = words(out);
  if (w.empty() || w.front() != "devices") return std::nullopt;
  return std::vector<std::string>(w.begin() + 1, w.end());
}

}  // namespace vhp
