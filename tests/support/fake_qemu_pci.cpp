#include "support/fake_qemu_pci.h"

#include <fstream>

namespace vhp::test {

using json = nlohmann::json;

namespace {

json captured(const std::string& name) {
  std::ifstream in(std::string(VHP_QMP_CAPTURES) + "/" + name + ".json");
  return json::parse(in);
}

std::string answering(json reply, const json& request) {
  reply["id"] = request["id"];
  return reply.dump();
}

std::string error(const json& request, const std::string& error_class, const std::string& desc) {
  return json{{"id", request["id"]}, {"error", {{"class", error_class}, {"desc", desc}}}}.dump();
}

}  // namespace

FakeQemuPci::FakeQemuPci(std::string socket_path) : qmp_(std::move(socket_path), [this](const json& r) { return answer(r); }) {}

std::map<std::string, std::string> FakeQemuPci::held() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::string> out;
  for (const auto& [id, a] : added_) out[a.host] = id;
  return out;
}

std::optional<std::string> FakeQemuPci::answer(const json& r) {
  std::lock_guard lock(mutex_);
  auto command = r.value("execute", "");
  const json& args = r.contains("arguments") ? r["arguments"] : json::object();
  if (command == "query-pci") {
    auto reply = captured("running-query-pci-empty");
    // The captured device behind pci_hotplug_1, under each id added, behind its own port.
    auto model = captured("running-query-pci-after-add")["return"][0]["devices"];
    json behind;
    for (const auto& d : model)
      if (d.value("qdev_id", "") == "pci_hotplug_1") behind = d["pci_bridge"]["devices"][0];
    for (auto& port : reply["return"][0]["devices"])
      for (const auto& [id, a] : added_)
        if (port.value("qdev_id", "") == a.bus) {
          auto device = behind;
          device["qdev_id"] = id;
          port["pci_bridge"]["devices"].push_back(device);
        }
    return answering(reply, r);
  }
  if (command == "device_add") {
    std::string id = args.value("id", ""), bus = args.value("bus", "");
    if (added_.contains(id)) return error(r, "GenericError", "Duplicate device ID '" + id + "'");
    if (bus.empty()) return answering(captured("device_add-vfio-pci-nobus-error"), r);
    for (const auto& [other, a] : added_)
      if (a.bus == bus)
        return error(r, "GenericError", "PCI: slot 0 function 0 not available for vfio-pci, in use by vfio-pci,id=" + other);
    added_[id] = {args.value("host", ""), bus};
    return answering(captured("running-device_add-e1000e-ok"), r);
  }
  if (command == "device_del") {
    std::string id = args.value("id", "");
    if (!added_.erase(id)) return error(r, "DeviceNotFound", "Device '" + id + "' not found");
    auto event = captured("event-DEVICE_DELETED-usb");
    event["data"] = {{"device", id}, {"path", "/machine/peripheral/" + id}};
    return answering(captured("running-device_del-pci-ok"), r) + "\r\n" + event.dump();
  }
  if (command == "qom-list" && args.value("path", "") == "/machine/peripheral") {
    json reply = captured("qom-list-peripheral");
    json children = json::array();
    for (const auto& child : reply["return"])
      if (!child["type"].get<std::string>().starts_with("child<e1000e")) children.push_back(child);  // the capture's stand-in
    for (const auto& [id, a] : added_) children.push_back({{"name", id}, {"type", "child<vfio-pci>"}});
    reply["return"] = children;
    return answering(reply, r);
  }
  if (command == "qom-list") return answering(captured("qom-list-peripheral-anon"), r);
  if (command == "qom-get") {
    std::string path = args.value("path", "");
    auto id = path.substr(path.rfind('/') + 1);
    if (auto it = added_.find(id); it != added_.end() && args.value("property", "") == "host") return FakeQmp::reply(r, it->second.host);
    return error(r, "GenericError", "Property '" + args.value("property", "") + "' not found");
  }
  return std::nullopt;  // qmp_capabilities, query-status: as QEMU
}

}  // namespace vhp::test
