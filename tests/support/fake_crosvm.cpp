// A stand-in for the `crosvm` command line where no crosvm VM can run: the control commands the
// daemon uses, with crosvm's exact outputs (crosvm/src/crosvm/sys/linux.rs, usb and vfio
// commands; the reference's and ghaf-device-manager's parsers), against a little JSON state file
// per VM socket (<socket>.fake-crosvm). The socket itself must exist and accept (SOCK_SEQPACKET),
// as crosvm's own client connects to it first.
//
//   crosvm usb attach 00:00:00:00 <node> <socket>  → "ok <port>" | "no_available_port" | "failed_to_open_device"
//   crosvm usb detach <port> <socket>              → "ok <port>" | "no_such_port"
//   crosvm usb list <socket>                       → "devices <port> <vid> <pid> …"
//   crosvm vfio add|remove <sysfs path> <socket>   → nothing, exit 0
//   crosvm vfio list <socket>                      → "devices <sysfs path> …"
//
// Test controls in the state file: "ports" (how many, default 4), "busy": N (answer
// no_available_port N more times, as before the guest booted), "hang": "<command>" (never answer
// that one: the deadline must fire), "slow": {"<command>": ms} (answer that late),
// "fail": {"<command>": "<text on stderr, exit 1>"}.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool socket_accepts(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  in >> s;
  return s;
}

// The USB device behind a node /dev/bus/usb/BBB/DDD, from sysfs: "vid pid", or "" when none.
std::string ids_of(const std::string& node) {
  int bus = 0, dev = 0;
  if (std::sscanf(node.c_str(), "/dev/bus/usb/%d/%d", &bus, &dev) != 2) return "";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/bus/usb/devices", ec)) {
    auto dir = e.path().string();
    if (read_text(dir + "/busnum") == std::to_string(bus) && read_text(dir + "/devnum") == std::to_string(dev))
      return read_text(dir + "/idVendor") + " " + read_text(dir + "/idProduct");
  }
  return "";
}

int answer(const std::string& out) {
  std::cout << out << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: crosvm usb|vfio <command> … <socket>" << std::endl;
    return 2;
  }
  std::string group = argv[1], command = argv[2], socket = argv[argc - 1], name = group + " " + command;
  if (!socket_accepts(socket)) {
    std::cerr << "[ERROR] failed to connect to " << socket << ": Connection refused (os error 111)" << std::endl;
    return 1;
  }
  std::string state_path = socket + ".fake-crosvm";
  int lock = ::open((state_path + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ::flock(lock, LOCK_EX);
  json state = json::object();
  if (std::ifstream in(state_path); in) state = json::parse(in, nullptr, false);
  if (!state.is_object()) state = json::object();
  auto save = [&] {
    std::ofstream(state_path + ".tmp") << state.dump(2);
    fs::rename(state_path + ".tmp", state_path);
  };
  state["calls"].push_back(name);
  save();
  if (state.value("hang", "") == name) {
    ::flock(lock, LOCK_UN);
    while (true) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (state.contains("slow") && state["slow"].contains(name)) {  // answers late, the VM's state as it was
    ::flock(lock, LOCK_UN);
    std::this_thread::sleep_for(std::chrono::milliseconds(state["slow"][name].get<int>()));
  }
  if (state.contains("fail") && state["fail"].contains(name)) {
    std::cerr << state["fail"][name].get<std::string>() << std::endl;
    return 1;
  }
  auto& usb = state["usb"];  // port → {"node", "ids"}
  if (!usb.is_object()) usb = json::object();
  auto& vfio = state["vfio"];
  if (!vfio.is_array()) vfio = json::array();

  if (name == "usb attach" && argc == 6) {
    if (state.value("busy", 0) > 0) {
      state["busy"] = state["busy"].get<int>() - 1;
      save();
      return answer("no_available_port");
    }
    std::string node = argv[4], ids = ids_of(node);
    if (ids.empty() || ::access(node.c_str(), R_OK | W_OK) != 0) return answer("failed_to_open_device");
    for (int port = 1; port <= state.value("ports", 4); ++port)
      if (!usb.contains(std::to_string(port))) {
        usb[std::to_string(port)] = {{"node", node}, {"ids", ids}};
        save();
        return answer("ok " + std::to_string(port));
      }
    return answer("no_available_port");
  }
  if (name == "usb detach" && argc == 5) {
    std::string port = argv[3];
    if (!usb.contains(port)) return answer("no_such_port");
    usb.erase(port);
    save();
    return answer("ok " + port);
  }
  if (name == "usb list" && argc == 4) {
    std::string out = "devices";
    for (const auto& [port, d] : usb.items()) out += " " + port + " " + d["ids"].get<std::string>();
    return answer(out);
  }
  if ((name == "vfio add" || name == "vfio remove") && argc == 5) {
    std::string path = argv[3];
    if (name == "vfio add" && std::ranges::find(vfio, json(path)) == vfio.end()) vfio.push_back(path);
    if (name == "vfio remove") vfio.erase(std::remove(vfio.begin(), vfio.end(), json(path)), vfio.end());
    save();
    return 0;
  }
  if (name == "vfio list" && argc == 4) {
    std::string out = "devices";
    for (const auto& p : vfio) out += " " + p.get<std::string>();
    return answer(out);
  }
  std::cerr << "error: unrecognized arguments" << std::endl;
  return 2;
}
