// vhotplugctl, also installed as vhotplugcli: the command-line client for the vhotplug API. Its
// commands, options, requests, output and exit codes are the reference CLI's (docs/API.md), so
// that Ghaf's scripts run unchanged; `--json` is ours.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "api/client.h"
#include "api/python_text.h"
#include "device/printable.h"

namespace {

using json = nlohmann::ordered_json;

// The reference logs to stderr as "LEVEL message".
bool debug = false;
// What the daemon says can quote a device's strings: printed without control characters.
void log(const char* level, const std::string& message) { std::cerr << level << " " << vhp::printable(message) << std::endl; }
void log_debug(const std::string& message) {
  if (debug) log("DEBUG", message);
}

// A failure the reference reports as "ERROR <message>" with exit code 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A daemon's line as JSON, nested at most 64 deep (printing recurses); discarded when it is not JSON.
json parse_bounded(const std::string& line) {
  struct TooDeep {};
  try {
    return json::parse(line, [](int depth, json::parse_event_t, json&) {
      if (depth > 64) throw TooDeep{};
      return true;
    }, false);
  } catch (const TooDeep&) {
    return json(json::value_t::discarded);
  }
}

std::string next_line(vhp::ApiClient& client) {
  try {
    return client.read_line();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find("End of file") != std::string::npos) throw Failure("API connection closed by remote");
    throw;
  }
}

class Session {
 public:
  explicit Session(vhp::ClientOptions options) : options_(std::move(options)) {}

  json request(const json& message) {
    connect();
    log_debug("Sending: " + message.dump() + "\n");
    client_->send(message);
    auto reply = parse_bounded(next_line(*client_));
    if (reply.is_discarded()) throw Failure("Invalid JSON in API response");
    log_debug("Received: " + vhp::python_repr(reply));
    return reply;
  }
  vhp::ApiClient& connect() {
    if (client_) return *client_;
    if (options_.transport == "unix") log_debug("Connecting to unix socket " + options_.path);
    else if (options_.transport == "tcp") log_debug("Connecting to tcp host " + options_.host + " on port " + std::to_string(options_.port));
    else log_debug("Connecting to vsock cid " + std::to_string(options_.cid) + " on port " + std::to_string(options_.port));
    try {
      client_ = std::make_unique<vhp::ApiClient>(options_);
    } catch (const vhp::ConnectError& e) {  // Python's OSError text: "[Errno 2] No such file or directory"
      throw Failure("Failed to connect: [Errno " + std::to_string(e.error_number) + "] " + std::strerror(e.error_number));
    }
    log_debug("Connected");
    return *client_;
  }

 private:
  vhp::ClientOptions options_;
  std::unique_ptr<vhp::ApiClient> client_;
};

// Sends `request`; a "failed" answer is "<what>: <error>" (the reference's "Failed to attach USB: …").
json act(Session& session, const json& request, const std::string& what) {
  auto reply = session.request(request);
  if (reply.value("result", json()) == "failed") throw Failure(what + ": " + vhp::python_str(reply.value("error", json())));
  return reply;
}

struct ListOptions {
  bool connected = false, disconnected = false, short_form = false;
  std::string tag;
};

void add_list_options(CLI::App* cmd, ListOptions& o) {
  auto* c = cmd->add_flag("--connected", o.connected, "Only devices not detached by the user");
  cmd->add_flag("--disconnected", o.disconnected, "Only devices detached by the user")->excludes(c);
  cmd->add_flag("--short", o.short_form, "Titles only");
  cmd->add_option("--tag", o.tag, "Only devices whose rule has this tag");
}

json optional(const std::string& s) { return s.empty() ? json() : json(s); }

// The reference's layout: a title line, then "  key<padded to 16>: value" lines and a blank line.
void list(Session& session, bool usb, const ListOptions& o, bool as_json) {
  json request{{"action", usb ? "usb_list" : "pci_list"}, {"disconnected", nullptr}, {"tag", optional(o.tag)}};
  if (o.connected) request["disconnected"] = false;
  if (o.disconnected) request["disconnected"] = true;
  auto reply = act(session, request, usb ? "Failed to get USB list" : "Failed to get PCI list");
  const auto& devices = reply.value(usb ? "usb_devices" : "pci_devices", json::array());
  if (as_json) {
    std::cout << devices.dump() << "\n";
    return;
  }
  auto field = [](const json& d, const char* key) { return vhp::printable(vhp::python_str(d.value(key, json()))); };
  for (const auto& d : devices) {
    if (usb) std::cout << field(d, "vid") << ":" << field(d, "pid") << " " << field(d, "vendor_name") << " " << field(d, "product_name") << "\n";
    else std::cout << field(d, "address") << " " << field(d, "vid") << ":" << field(d, "did") << " " << field(d, "vendor_name") << " " << field(d, "device_name") << "\n";
    if (o.short_form) continue;
    for (const auto& [key, value] : d.items()) {
      std::string padded = key;
      if (padded.size() < 16) padded.resize(16, ' ');
      std::cout << "  " << padded << ": " << vhp::printable(vhp::python_str(value)) << "\n";
    }
    std::cout << "\n";
  }
}

std::string text_of(const json& v) { return v.is_string() ? vhp::printable(v.get<std::string>()) : v.dump(); }

std::string duration_text(long long seconds) {
  std::string out;
  if (seconds >= 86400) out += std::to_string(seconds / 86400) + "d ";
  if (seconds >= 3600) out += std::to_string(seconds / 3600 % 24) + "h ";
  if (seconds >= 60) out += std::to_string(seconds / 60 % 60) + "m ";
  return out + std::to_string(seconds % 60) + "s";
}

// `status` (ours): the daemon's account of itself, as text or JSON.
void status(Session& session, bool as_json) {
  auto reply = act(session, {{"action", "status"}}, "Failed to get status");
  const auto& s = reply.value("status", json::object());
  if (as_json) {
    std::cout << s.dump() << "\n";
    return;
  }
  auto get = [](const json& o, const char* key) { return o.contains(key) ? o[key] : json(); };
  const auto& config = get(s, "config");
  std::cout << "vhotplugd " << text_of(get(s, "version")) << ", up " << duration_text(get(s, "uptime_seconds").is_number() ? get(s, "uptime_seconds").get<long long>() : 0)
            << " (since " << text_of(get(s, "started")) << ")\n";
  std::cout << "config " << text_of(get(config, "path")) << ", loaded " << text_of(get(config, "loaded"));
  if (!get(config, "last_reload_error").is_null()) std::cout << "; the last reload was rejected: " << text_of(get(config, "last_reload_error"));
  std::cout << "\nVMs:\n";
  for (const auto& vm : get(s, "vms")) {
    std::cout << "  " << text_of(get(vm, "name")) << " (" << text_of(get(vm, "type")) << "): " << text_of(get(vm, "state")) << " since "
              << text_of(get(vm, "since")) << "; attached: " << text_of(get(vm, "usb_devices")) << " USB, " << text_of(get(vm, "pci_devices"))
              << " PCI, " << text_of(get(vm, "input_devices")) << " input\n";
    if (const auto& error = get(vm, "last_error"); error.is_object())
      std::cout << "    last error at " << text_of(get(error, "at")) << ": " << text_of(get(error, "error")) << "\n";
  }
  const auto& devices = get(s, "devices");
  const auto& clients = get(s, "clients");
  std::cout << "devices: " << text_of(get(devices, "usb")) << " USB, " << text_of(get(devices, "pci")) << " PCI, " << text_of(get(devices, "input"))
            << " input; clients: " << text_of(get(clients, "api")) << " API, " << text_of(get(clients, "thunder"))
            << " Thunder; choices waiting for the user: " << text_of(get(s, "pending_selections")) << "\n";
  const auto& api = get(get(s, "limits"), "api");
  const auto& thunder = get(get(s, "limits"), "thunder");
  std::cout << "limits: API " << text_of(get(api, "max_clients_per_transport")) << " clients per transport, lines of "
            << text_of(get(api, "max_line_bytes")) << " bytes, send queues of " << text_of(get(api, "send_queue_bytes")) << " bytes, writes within "
            << text_of(get(api, "send_timeout_ms")) << " ms";
  if (!get(thunder, "max_clients").is_null())
    std::cout << "; Thunder " << text_of(get(thunder, "max_clients")) << " clients, messages of " << text_of(get(thunder, "max_message_bytes")) << " bytes";
  std::cout << "\n";
}

struct UsbSelect {
  std::string devnode, vid, pid, tag, vm, port;
  int bus = 0;
};

json usb_request(const char* action, const UsbSelect& o, bool with_vm) {
  json request{{"action", action}};
  if (!o.devnode.empty()) request["device_node"] = o.devnode;
  else if (o.bus && !o.port.empty()) {  // a root port as a number, as the reference sends it; a port path ("2.1", ours) as text
    request["bus"] = o.bus;
    request["port"] = o.port.find_first_not_of("0123456789") == std::string::npos ? json(std::stoi(o.port)) : json(o.port);
  }
  else if (!o.tag.empty()) return json{{"action", action}, {"tag", o.tag}};  // a tag takes each rule's VM
  else if (!o.vid.empty() && !o.pid.empty()) request["vid"] = o.vid, request["pid"] = o.pid;
  else throw Failure("You must specify either --devnode or --bus and --port or --vid and --pid or --tag");
  if (with_vm) request["vm"] = optional(o.vm);
  return request;
}

struct PciSelect {
  std::string address, vid, did, tag, vm;
};

json pci_request(const char* action, const PciSelect& o, bool with_vm) {
  json request{{"action", action}};
  if (!o.address.empty()) request["address"] = o.address;
  else if (!o.tag.empty()) return json{{"action", action}, {"tag", o.tag}};
  else if (!o.vid.empty() && !o.did.empty()) request["vid"] = o.vid, request["did"] = o.did;
  else throw Failure("You must specify either --address or --vid and --did or --tag");
  if (with_vm) request["vm"] = optional(o.vm);
  return request;
}

struct VmmOptions {
  std::string vm, bus_prefix;
  std::optional<int> bus_start_index;
  double timeout = 30;
  bool require_pci = false;
};

// The reference's `vmm args` (a VM's extraArgsScript): the arguments space-joined on stdout, no
// newline. It retries while the daemon cannot be reached, as the reference, but only until
// --timeout (ghaf-device-manager's option; the reference retries forever); with --require-pci (also
// ghaf-device-manager's) a refusal is retried too: the devices may still be appearing.
int vmm_args(const vhp::ClientOptions& options, const VmmOptions& o) {
  json request{{"action", "vmm_args"}, {"vm", optional(o.vm)}, {"qemu_bus_prefix", optional(o.bus_prefix)},
               {"qemu_bus_start_index", o.bus_start_index ? json(*o.bus_start_index) : json()}};
  if (o.require_pci) request["require_pci"] = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                         std::chrono::duration<double>(o.timeout));
  while (true) {
    std::string error;
    json reply;
    try {
      Session session(options);
      reply = session.request(request);
    } catch (const std::exception& e) {  // not reachable (yet): the reference's warning, then again
      error = e.what();
    }
    if (error.empty() && reply.value("result", json()) == "failed") {
      error = "Failed to get VMM args for PCI devices: " + vhp::python_str(reply.value("error", json()));
      if (!o.require_pci) throw Failure(error);
    }
    if (error.empty()) {
      std::string line;
      for (const auto& arg : reply.value("vmm_args", json::array())) {
        std::string text = vhp::python_str(arg);
        if (text.find_first_of(" \t\n\r\v\f") != std::string::npos)  // the start script splits on whitespace
          throw Failure("VMM arguments containing whitespace are not supported: " + text);
        line += (line.empty() ? "" : " ") + text;
      }
      std::cout << line << std::flush;
      return 0;
    }
    if (std::chrono::steady_clock::now() + std::chrono::seconds(1) > deadline) throw Failure(error);
    log("WARNING", error);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// Prints every event (the reference: "INFO {'event': …}" on stderr; --json: the line on stdout).
// Reconnects every 3 s when the daemon goes away, also when it is not back yet (the reference
// gives up then).
int listen(vhp::ClientOptions options, bool as_json) {
  options.timeout_ms = 0;
  log("INFO", "Listening for notifications");
  while (true) {
    try {
      Session session(options);
      auto reply = session.request({{"action", "enable_notifications"}});
      if (reply.value("result", json()) != "ok") log("ERROR", "Failed to enable notifications: " + vhp::python_repr(reply));
      auto& client = session.connect();
      while (true) {
        std::string line;
        try {
          line = client.read_line();
        } catch (const std::exception&) {
          throw Failure("API connection for notifications closed by remote");
        }
        if (as_json) {
          std::cout << line << std::endl;
          continue;
        }
        auto event = parse_bounded(line);
        if (event.is_discarded()) log("ERROR", "Invalid JSON in API notification: " + line);
        else log("INFO", vhp::python_repr(event));
      }
    } catch (const std::exception& e) {
      log("WARNING", std::string("Notification listener error: ") + e.what());
      log("WARNING", "Reconnecting in 3 sec...");
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = std::filesystem::path(argc > 0 ? argv[0] : "vhotplugcli").filename().string();
  CLI::App app{"CLI tool for managing virtual hotplug devices", name};
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as argparse: the last one counts
  vhp::ClientOptions options;
  std::string transport;
  bool as_json = false;
  app.add_flag("-d,--debug,!--no-debug", debug, "Enable debug messages");
  app.add_option("-t,--transport", transport, "Transport type (default: vsock when running in a VM, otherwise unix)")
      ->check(CLI::IsMember({"unix", "tcp", "vsock"}));
  app.add_option("-u,--path", options.path, "Unix socket path")->capture_default_str();
  app.add_option("-s,--host", options.host, "TCP host")->capture_default_str();
  app.add_option("-p,--net-port", options.port, "TCP or VSOCK port")->capture_default_str();
  app.add_option("-c,--cid", options.cid, "VSOCK CID")->capture_default_str();
  app.add_flag("--json", as_json, "Print lists and events as JSON (ours)");

  ListOptions usb_list_opts, pci_list_opts;
  UsbSelect usb_attach_opts, usb_detach_opts;
  PciSelect pci_attach_opts, pci_detach_opts;
  std::string usb_suspend_vm, usb_resume_vm, pci_suspend_vm, pci_resume_vm;
  auto* usb = app.add_subcommand("usb", "USB devices")->require_subcommand(1);
  auto* usb_attach = usb->add_subcommand("attach", "Attach a USB device to a VM");
  for (auto [cmd, o] : {std::pair{usb_attach, &usb_attach_opts}, std::pair{usb->add_subcommand("detach", "Detach a USB device; it stays on the host until attached again"), &usb_detach_opts}}) {
    cmd->add_option("--devnode", o->devnode, "Device node, e.g. /dev/bus/usb/003/012");
    cmd->add_option("--bus", o->bus, "Bus number (with --port)");
    cmd->add_option("--port", o->port, "Root port, or a port path such as 2.1 (with --bus)");
    cmd->add_option("--vid", o->vid, "Vendor ID (with --pid)");
    cmd->add_option("--pid", o->pid, "Product ID (with --vid)");
    cmd->add_option("--tag", o->tag, "Every device whose rule has this tag");
  }
  usb_attach->add_option("--vm", usb_attach_opts.vm, "Target VM (one of the device's allowed VMs)");
  auto* usb_detach = usb->get_subcommand("detach");
  auto* usb_list = usb->add_subcommand("list", "List USB devices that rules allow to pass through");
  add_list_options(usb_list, usb_list_opts);
  auto* usb_suspend = usb->add_subcommand("suspend", "Detach USB devices before the host sleeps (skipOnSuspend ones stay)");
  usb_suspend->add_option("--vm", usb_suspend_vm, "Only this VM's devices");
  auto* usb_resume = usb->add_subcommand("resume", "Attach USB devices by rule again after the host woke");
  usb_resume->add_option("--vm", usb_resume_vm, "Only this VM's devices");

  auto* pci = app.add_subcommand("pci", "PCI devices")->require_subcommand(1);
  auto* pci_attach = pci->add_subcommand("attach", "Bind a PCI device to vfio-pci and attach it to its VM");
  auto* pci_detach = pci->add_subcommand("detach", "Detach a PCI device and give it back to its host driver; it stays on the host until attached again");
  for (auto [cmd, o] : {std::pair{pci_attach, &pci_attach_opts}, std::pair{pci_detach, &pci_detach_opts}}) {
    cmd->add_option("--address", o->address, "PCI address, e.g. 0000:00:14.3");
    cmd->add_option("--vid", o->vid, "Vendor ID (with --did)");
    cmd->add_option("--did", o->did, "Device ID (with --vid)");
    cmd->add_option("--tag", o->tag, "Every device whose rule has this tag");
  }
  pci_attach->add_option("--vm", pci_attach_opts.vm, "Target VM (must be the rule's targetVm)");
  auto* pci_list = pci->add_subcommand("list", "List PCI devices that rules allow to pass through");
  add_list_options(pci_list, pci_list_opts);
  auto* pci_suspend = pci->add_subcommand("suspend", "Detach PCI devices before the host sleeps (skipOnSuspend ones stay)");
  pci_suspend->add_option("--vm", pci_suspend_vm, "Only this VM's devices");
  auto* pci_resume = pci->add_subcommand("resume", "Attach PCI devices by rule again after the host woke");
  pci_resume->add_option("--vm", pci_resume_vm, "Only this VM's devices");
  auto* listen_cmd = app.add_subcommand("listen", "Print device events as they happen");
  auto* status_cmd = app.add_subcommand("status", "How the daemon is doing: version, uptime, config, VMs, counts, limits (ours)");
  app.set_version_flag("--version", name + " " + VHP_VERSION);

  VmmOptions vmm_opts;
  auto* vmm = app.add_subcommand("vmm", "Manage VMM arguments")->require_subcommand(1);
  auto* vmm_args_cmd = vmm->add_subcommand("args", "Get VMM arguments");
  vmm_args_cmd->add_option("--vm", vmm_opts.vm, "Virtual machine name");
  vmm_args_cmd->add_option("--qemu-bus-prefix", vmm_opts.bus_prefix, "QEMU Bus Prefix");
  vmm_args_cmd->add_option("--qemu-bus-start-index", vmm_opts.bus_start_index, "QEMU Bus Start Index");
  vmm_args_cmd->add_option("--timeout", vmm_opts.timeout, "Seconds to keep trying to reach the daemon (ours and ghaf-device-manager's)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  vmm_args_cmd->add_flag("--require-pci", vmm_opts.require_pci, "Fail unless the VM's PCI devices are present (ghaf-device-manager's)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // as argparse: usage, "<prog>: error: …", exit code 2
    std::cerr << app.help() << name << ": error: " << e.what() << std::endl;
    return 2;
  }

  options.transport = transport.empty() ? vhp::default_transport() : transport;
  // Lists answer at once; an attach, a tag, a suspend or a resume waits for VMs (each operation
  // has its deadline in the daemon), so those wait as long as the daemon takes, as the reference.
  if (!*usb_list && !*pci_list && !*status_cmd) options.timeout_ms = 0;
  try {
    Session session(options);
    auto done = [](const char* what) { log("INFO", std::string("Successfully ") + what); };
    if (*usb_list) list(session, true, usb_list_opts, as_json);
    else if (*usb_attach) act(session, usb_request("usb_attach", usb_attach_opts, true), "Failed to attach USB"), done("attached");
    else if (*usb_detach) act(session, usb_request("usb_detach", usb_detach_opts, false), "Failed to detach USB"), done("detached");
    else if (*usb_suspend) act(session, {{"action", "usb_suspend"}, {"vm", optional(usb_suspend_vm)}}, "Failed to suspend USB"), done("suspended");
    else if (*usb_resume) act(session, {{"action", "usb_resume"}, {"vm", optional(usb_resume_vm)}}, "Failed to resume USB"), done("resumed");
    else if (*pci_list) list(session, false, pci_list_opts, as_json);
    else if (*pci_attach) act(session, pci_request("pci_attach", pci_attach_opts, true), "Failed to attach PCI"), done("attached");
    else if (*pci_detach) act(session, pci_request("pci_detach", pci_detach_opts, false), "Failed to detach PCI"), done("detached");
    else if (*pci_suspend) act(session, {{"action", "pci_suspend"}, {"vm", optional(pci_suspend_vm)}}, "Failed to suspend PCI"), done("suspended");
    else if (*pci_resume) act(session, {{"action", "pci_resume"}, {"vm", optional(pci_resume_vm)}}, "Failed to resume PCI"), done("resumed");
    else if (*listen_cmd) return listen(options, as_json);
    else if (*status_cmd) status(session, as_json);
    else if (*vmm_args_cmd) return vmm_args(options, vmm_opts);
  } catch (const std::exception& e) {
    log("ERROR", e.what());
    return 1;
  }
  return 0;
}
