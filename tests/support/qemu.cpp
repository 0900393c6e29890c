#include "support/qemu.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <stdexcept>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/sockets.h"

namespace vhp::test {
std::vector<nlohmann::json> qmp_one_shot(const std::string& socket, const std::string& command, std::chrono::milliseconds limit) {
  std::vector<nlohmann::json> got;
  int fd = connect_unix(socket);
  if (fd < 0) return got;
  std::string out = "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"" + command + "\"}\n";
  if (::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
    ::close(fd);
    return got;
  }
  auto until = std::chrono::steady_clock::now() + limit;
  while (got.size() < 3) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto line = read_line_fd(fd, left);
    if (line.empty()) break;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && !j.contains("event")) got.push_back(j);
  }
  ::close(fd);
  return got;
}

Qemu::Qemu(std::string dir, std::string name)
    : dir_(std::move(dir)), name_(std::move(name)), socket_(dir_ + "/" + name_ + ".qmp"), inspect_(dir_ + "/" + name_ + ".inspect") {}

Qemu::~Qemu() = default;

void Qemu::start() {
  ::unlink(socket_.c_str());
  ::unlink(inspect_.c_str());
  process_ = std::make_unique<Child>(
      std::vector<std::string>{"/usr/bin/qemu-system-x86_64", "-machine", "q35,accel=tcg", "-nodefaults", "-display", "none",
                               "-S", "-m", "64", "-qmp", "unix:" + socket_ + ",server=on,wait=off", "-qmp",
                               "unix:" + inspect_ + ",server=on,wait=off", "-device", "qemu-xhci,id=xhci",
                               // PCI hot-plug ports, named as Ghaf names them
                               "-device", "pcie-root-port,id=pci_hotplug_1,chassis=1,slot=1", "-device",
                               "pcie-root-port,id=pci_hotplug_2,chassis=2,slot=2"},
      dir_ + "/" + name_ + ".out", dir_ + "/" + name_ + ".err");
  bool up = eventually([&] { return unix_socket_accepts(inspect_); });
  if (!up) throw std::runtime_error("QEMU " + name_ + " did not start: " + read_file(dir_ + "/" + name_ + ".err"));
}

void Qemu::kill() {
  if (process_) process_->stop(SIGKILL);
  process_.reset();
}

bool Qemu::running() { return process_ && process_->running(); }

nlohmann::json qmp_session(const std::string& socket, const std::string& command, const nlohmann::json& arguments, bool oob) {
  Fd fd(connect_unix(socket));
  if (fd.get() < 0) throw std::runtime_error("cannot connect to " + socket);
  auto send = [&](const nlohmann::json& j) {
    auto line = j.dump() + "\n";
    if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) throw std::runtime_error("qmp write");
  };
  auto next = [&] {  // the next reply, skipping events
    while (true) {
      auto line = read_line_fd(fd.get());
      if (line.empty()) throw std::runtime_error("no QMP reply from " + socket);
      auto j = nlohmann::json::parse(line);
      if (!j.contains("event")) return j;
    }
  };
  next();  // greeting
  nlohmann::json capabilities{{"execute", "qmp_capabilities"}};
  if (oob) capabilities["arguments"] = {{"enable", {"oob"}}};
  send(capabilities);
  next();
  nlohmann::json request{{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  send(request);
  return next();
}

nlohmann::json Qemu::qmp(const std::string& command, const nlohmann::json& arguments) { return qmp_session(inspect_, command, arguments); }

std::vector<std::string> Qemu::usb_ids() {
  std::vector<std::string> ids;
  auto reply = qmp("qom-list", {{"path", "/machine/peripheral"}});
  for (const auto& child : reply["return"])
    if (child["type"] == "child<usb-host>") ids.push_back(child["name"]);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace vhp::test
