#include "manager/stored_crosvm_usb_ports.h"

#include <spdlog/spdlog.h>

#include "common/log_fields.h"

namespace vhp {

using json = nlohmann::json;

namespace {

std::optional<CrosvmUsbPort> parse(const json& j) {
  auto text = [&](const char* key) { return j.contains(key) && j[key].is_string(); };
  if (!j.is_object() || !text("vm") || !text("socket_generation") || !j.contains("port") || !j["port"].is_number_integer() ||
      !text("vid") || !text("pid"))
    return std::nullopt;
  if (j["port"].get<long long>() < 0 || j["port"].get<long long>() > 255) return std::nullopt;  // crosvm's ports are a u8
  CrosvmUsbPort p;
  p.vm = j["vm"].get<std::string>();
  p.port = j["port"].get<int>();
  p.socket_generation = j["socket_generation"].get<std::string>();
  p.vid = j["vid"].get<std::string>(), p.pid = j["pid"].get<std::string>();
  if (text("serial")) p.serial = j["serial"].get<std::string>();
  if (j.contains("busnum") && j["busnum"].is_number_integer()) p.busnum = j["busnum"].get<int>();
  if (j.contains("devnum") && j["devnum"].is_number_integer()) p.devnum = j["devnum"].get<int>();
  return p;
}

json to_json(const CrosvmUsbPort& p) {
  return {{"vm", p.vm}, {"port", p.port}, {"socket_generation", p.socket_generation}, {"vid", p.vid}, {"pid", p.pid},
          {"serial", p.serial ? json(*p.serial) : json(nullptr)}, {"busnum", p.busnum}, {"devnum", p.devnum}};
}

}  // namespace

std::map<std::string, CrosvmUsbPort> StoredCrosvmUsbPorts::ports() const {
  std::map<std::string, CrosvmUsbPort> out;
  auto it = store_.state().others.find(kKey);
  if (it == store_.state().others.end() || !it->second.is_object()) return out;
  for (const auto& [sys_name, entry] : it->second.items())
    if (auto port = parse(entry)) out[sys_name] = *port;
  return out;
}

void StoredCrosvmUsbPorts::record(const std::string& sys_name, const CrosvmUsbPort& port) { change(sys_name, port); }

void StoredCrosvmUsbPorts::forget(const std::string& sys_name) { change(sys_name, std::nullopt); }

void StoredCrosvmUsbPorts::change(const std::string& sys_name, const std::optional<CrosvmUsbPort>& port) {
  try {
    store_.update([&](PersistentState& s) {
      if (!port && !s.others.contains(kKey)) return;  // a file without crosvm VMs stays the reference's
      auto& book = s.others[kKey];
      if (!book.is_object()) book = json::object();
      if (port) book[sys_name] = to_json(*port);
      else book.erase(sys_name);
    });
  } catch (const StateError& e) {
    LogFields().vm(port ? port->vm : "").warn("crosvm usb port of {}: {} (a restarted daemon will not know this port)", sys_name, e.what());
  }
}

}  // namespace vhp
