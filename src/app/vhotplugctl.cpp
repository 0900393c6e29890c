// vhotplugctl: command-line client for the vhotplug API, with the reference CLI's options.
#include <chrono>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "api/client.h"

namespace {

using json = nlohmann::json;

template <class Json>
std::string text(const Json& v) { return v.is_string() ? v.template get<std::string>() : v.dump(); }

struct ListOptions {
  bool connected = false, disconnected = false, short_form = false;
  std::string tag;
};

void add_list_options(CLI::App* cmd, ListOptions& o) {
  auto* c = cmd->add_flag("--connected", o.connected, "Only devices not detached by the user");
  cmd->add_flag("--disconnected", o.disconnected, "Only devices detached by the user")->excludes(c);
  cmd->add_flag("--short", o.short_form, "One line per device");
  cmd->add_option("--tag", o.tag, "Only devices whose rule has this tag");
}

// The reference CLI's device selectors for attach and detach.
struct SelectOptions {
  std::string devnode, vid, pid, tag, vm, port;
  int bus = 0;
};

void add_select_options(CLI::App* cmd, SelectOptions& o, bool with_vm) {
  cmd->add_option("--devnode", o.devnode, "Device node, e.g. /dev/bus/usb/003/012");
  cmd->add_option("--bus", o.bus, "Bus number (with --port)");
  cmd->add_option("--port", o.port, "Root port, or a port path such as 2.1 (with --bus)");
  cmd->add_option("--vid", o.vid, "Vendor id (with --pid)");
  cmd->add_option("--pid", o.pid, "Product id (with --vid)");
  cmd->add_option("--tag", o.tag, "Every device whose rule has this tag");
  if (with_vm) cmd->add_option("--vm", o.vm, "Target VM (one of the device's allowed VMs)");
}

json select_request(const char* action, const SelectOptions& o) {
  json request{{"action", action}};
  if (!o.devnode.empty()) request["device_node"] = o.devnode;
  else if (o.bus && !o.port.empty()) request["bus"] = o.bus, request["port"] = o.port;
  else if (!o.tag.empty()) request["tag"] = o.tag;
  else if (!o.vid.empty() && !o.pid.empty()) request["vid"] = o.vid, request["pid"] = o.pid;
  else throw std::runtime_error("name the device: --devnode, --bus and --port, --vid and --pid, or --tag");
  if (!o.vm.empty()) request["vm"] = o.vm;
  return request;
}

// The reference CLI's PCI selectors: --address, else --tag, else --vid and --did.
struct PciSelectOptions {
  std::string address, vid, did, tag, vm;
};

void add_pci_select_options(CLI::App* cmd, PciSelectOptions& o, bool with_vm) {
  cmd->add_option("--address", o.address, "PCI address, e.g. 0000:00:14.3");
  cmd->add_option("--vid", o.vid, "PCI vendor id (with --did)");
  cmd->add_option("--did", o.did, "PCI device id (with --vid)");
  cmd->add_option("--tag", o.tag, "Every device whose rule has this tag");
  if (with_vm) cmd->add_option("--vm", o.vm, "Target VM (must be the rule's targetVm)");
}

json pci_select_request(const char* action, const PciSelectOptions& o) {
  json request{{"action", action}};
  if (!o.address.empty()) request["address"] = o.address;
  else if (!o.tag.empty()) request["tag"] = o.tag;
  else if (!o.vid.empty() && !o.did.empty()) request["vid"] = o.vid, request["did"] = o.did;
  else throw std::runtime_error("You must specify either --address or --vid and --did or --tag");  // the reference's text
  if (!o.vm.empty() && !request.contains("tag")) request["vm"] = o.vm;  // a tag attach takes each rule's VM
  return request;
}

int act(const vhp::ClientOptions& options, const json& request) {
  vhp::ApiClient client(options);
  auto response = client.request(request);
  if (response.value("result", "") != "ok") {
    std::cerr << "error: " << text(response.value("error", json("unknown error"))) << "\n";
    return 1;
  }
  return 0;
}

json list_request(const char* action, const ListOptions& o) {
  json request{{"action", action}};
  if (o.connected) request["disconnected"] = false;
  if (o.disconnected) request["disconnected"] = true;
  if (!o.tag.empty()) request["tag"] = o.tag;
  return request;
}


// The reference CLI's layout: a title line, then "  key : value" lines unless --short.
void print_devices(const nlohmann::ordered_json& devices, bool usb, bool short_form) {
  for (const auto& d : devices) {
    if (usb)
      std::cout << text(d["vid"]) << ":" << text(d["pid"]) << " " << text(d["vendor_name"]) << " " << text(d["product_name"]) << "\n";
    else
      std::cout << text(d["address"]) << " " << text(d["vid"]) << ":" << text(d["did"]) << " " << text(d["vendor_name"])
                << " " << text(d["device_name"]) << "\n";
    if (short_form) continue;
    for (const auto& [key, value] : d.items()) std::cout << "  " << key << " : " << text(value) << "\n";
  }
}

// "event: vid:pid product (node) vm X", with whatever of that the event carries.
std::string describe_event(const json& e) {
  std::string s = text(e.value("event", json("?")));
  auto field = [](const json& d, const char* key) { return d.contains(key) && !d[key].is_null() ? text(d[key]) : ""; };
  if (e.contains("usb_device")) {
    const auto& d = e["usb_device"];
    s += ":";
    if (d.contains("vid")) s += " " + field(d, "vid") + ":" + field(d, "pid");
    if (!field(d, "product_name").empty()) s += " " + field(d, "product_name");
    s += " (" + field(d, "device_node") + ")";
  } else if (e.contains("pci_device")) {
    const auto& d = e["pci_device"];
    s += ": " + field(d, "address") + " " + field(d, "vid") + ":" + field(d, "did");
  }
  if (e.contains("vm")) s += " vm " + text(e["vm"]);
  if (e.contains("allowed_vms")) s += " allowed " + e["allowed_vms"].dump();
  return s;
}

int list(const vhp::ClientOptions& options, const char* action, const char* key, const ListOptions& o, bool as_json) {
  vhp::ApiClient client(options);
  client.send(list_request(action, o));
  auto response = nlohmann::ordered_json::parse(client.read_line());  // keeps the daemon's key order
  if (response.value("result", "") != "ok") {
    std::cerr << "error: " << text(response.value("error", json("unknown error"))) << "\n";
    return 1;
  }
  if (as_json) std::cout << response[key].dump() << "\n";
  else print_devices(response[key], std::string(key) == "usb_devices", o.short_form);
  return 0;
}

// Prints every event; when the daemon goes away, reconnects every 3 s (as the reference CLI does).
int listen(vhp::ClientOptions options, bool as_json) {
  options.timeout_ms = 0;
  while (true) {
    try {
      vhp::ApiClient client(options);
      auto response = client.request({{"action", "enable_notifications"}});
      if (response.value("result", "") != "ok") throw std::runtime_error(text(response.value("error", json("refused"))));
      std::cerr << "listening for events\n";
      while (true) {
        auto line = client.read_line();
        if (as_json) std::cout << line << std::endl;
        else std::cout << describe_event(json::parse(line, nullptr, false)) << std::endl;
      }
    } catch (const std::exception& e) {
      std::cerr << "connection lost (" << e.what() << "); reconnecting in 3 s\n";
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vhotplugctl: control vhotplugd"};
  app.require_subcommand(1);
  vhp::ClientOptions options;
  options.transport = vhp::default_transport();
  bool as_json = false, debug = false;
  app.add_option("-t,--transport", options.transport, "unix, tcp or vsock")
      ->check(CLI::IsMember({"unix", "tcp", "vsock"}))->capture_default_str();
  app.add_option("-u,--path", options.path, "Unix socket path")->capture_default_str();
  app.add_option("-s,--host", options.host, "TCP host")->capture_default_str();
  app.add_option("-p,--net-port", options.port, "TCP or VSOCK port")->capture_default_str();
  app.add_option("-c,--cid", options.cid, "VSOCK CID of the daemon")->capture_default_str();
  app.add_flag("-d,--debug", debug, "Verbose output");
  app.add_flag("--json", as_json, "Print raw JSON, for scripts");

  ListOptions usb_opts, pci_opts;
  SelectOptions attach_opts, detach_opts;
  PciSelectOptions pci_attach_opts, pci_detach_opts;
  auto* usb = app.add_subcommand("usb", "USB devices")->require_subcommand(1);
  auto* usb_list = usb->add_subcommand("list", "List USB devices that rules allow to pass through");
  add_list_options(usb_list, usb_opts);
  auto* usb_attach = usb->add_subcommand("attach", "Attach a USB device to a VM");
  add_select_options(usb_attach, attach_opts, true);
  auto* usb_detach = usb->add_subcommand("detach", "Detach a USB device; it stays on the host until attached again");
  add_select_options(usb_detach, detach_opts, false);
  auto* pci = app.add_subcommand("pci", "PCI devices")->require_subcommand(1);
  auto* pci_list = pci->add_subcommand("list", "List PCI devices that rules allow to pass through");
  add_list_options(pci_list, pci_opts);
  auto* pci_attach = pci->add_subcommand("attach", "Bind a PCI device to vfio-pci and attach it to its VM");
  add_pci_select_options(pci_attach, pci_attach_opts, true);
  auto* pci_detach = pci->add_subcommand("detach", "Detach a PCI device and give it back to its host driver; it stays on the host until attached again");
  add_pci_select_options(pci_detach, pci_detach_opts, false);
  auto* listen_cmd = app.add_subcommand("listen", "Print device events as they happen");
  CLI11_PARSE(app, argc, argv);

  try {
    if (*usb_list) return list(options, "usb_list", "usb_devices", usb_opts, as_json);
    if (*usb_attach) return act(options, select_request("usb_attach", attach_opts));
    if (*usb_detach) return act(options, select_request("usb_detach", detach_opts));
    if (*pci_list) return list(options, "pci_list", "pci_devices", pci_opts, as_json);
    if (*pci_attach) return act(options, pci_select_request("pci_attach", pci_attach_opts));
    if (*pci_detach) return act(options, pci_select_request("pci_detach", pci_detach_opts));
    if (*listen_cmd) return listen(options, as_json);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
