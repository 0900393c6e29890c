#pragma once
// What the `crosvm` command line prints, read defensively (its answers are a word and numbers).
// Pure: fuzzed.
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vhp {

std::vector<std::string> words(const std::string& text);

// `crosvm usb list`: "devices <port> <vid> <pid> …" → (port, "vid:pid"); nothing when malformed.
std::optional<std::vector<std::pair<int, std::string>>> parse_usb_list(const std::string& out);

// `crosvm usb attach`: "ok <port>" → the port; anything else → nothing (the caller names the word).
std::optional<int> parse_usb_attached(const std::string& out);

// `crosvm vfio list`: "devices <path> …" → the paths; nothing when malformed.
std::optional<std::vector<std::string>> parse_vfio_list(const std::string& out);

}  // namespace vhp
