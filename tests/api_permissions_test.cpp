// general.api.permissions: callers × actions × VMs through the in-process API server and real
// sockets: Unix as root and as other uids (a forked child that setuid()s), TCP on loopback, and
// VSOCK peers injected through the accept path (no VSOCK loopback on these machines).
#include <functional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>
#include <gtest/gtest.h>

#include "support/api_server_fixture.h"

namespace vhp::api_permissions_test {
namespace {

using json = nlohmann::json;

// Keys to gui-vm or business-vm (the user picks), sticks to business-vm, the webcam to gui-vm, the
// serial adapter and the Wi-Fi card to net-vm. No VM runs: an allowed request fails further on.
const char* kPolicy = R"({
  "vms": [{"name": "gui-vm", "type": "qemu", "socket": "/tmp/vhp-permissions-test/gui.qmp"},
          {"name": "business-vm", "type": "qemu", "socket": "/tmp/vhp-permissions-test/business.qmp"},
          {"name": "net-vm", "type": "qemu", "socket": "/tmp/vhp-permissions-test/net.qmp"}],
  "usbPassthrough": [
    {"allowedVms": ["gui-vm", "business-vm"], "tag": "key", "allow": [{"vendorId": "1050", "productId": "0407"}]},
    {"targetVm": "business-vm", "tag": "storage", "allow": [{"interfaceClass": 8}]},
    {"targetVm": "gui-vm", "tag": "cam", "allow": [{"vendorId": "046d", "productId": "0825"}]},
    {"targetVm": "net-vm", "tag": "serial", "allow": [{"vendorId": "1a86", "productId": "7523"}]}],
  "pciPassthrough": [{"targetVm": "net-vm", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]
})";

constexpr uid_t kNobody = 65534;
constexpr uid_t kStranger = 4321;  // no entry names it
constexpr gid_t kUsbGroup = 4444;  // its supplementary group may list and attach

const char* kPermissions = R"([
  {"users": [0], "actions": ["*"]},
  {"users": [65534], "actions": ["list", "notifications"]},
  {"cids": [3], "vm": "gui-vm", "vms": ["gui-vm", "business-vm"], "actions": ["list", "attach", "suspend", "notifications"]},
  {"cids": [4], "vm": "net-vm", "actions": ["list", "pci", "vmm_args", "notifications"]},
  {"addresses": ["127.0.0.0/8"], "actions": ["list"]},
  {"groups": [4444], "actions": ["list", "attach"]}
])";

class Permissions : public test::ApiServerFixture {
 protected:
  Permissions() : ApiServerFixture(kPolicy) {
    ::chmod(dir.path().c_str(), 0755);  // other uids reach the socket
    config.unix_socket = dir / "api.sock";
    config.unix_socket_mode = 0666;
    config.permissions = parse_config(json{{"general", {{"api", {{"permissions", json::parse(kPermissions)}}}}}}, "test").general.api.permissions;
  }

  // One request on a fresh connection as root over Unix, and its answer.
  json as_root(const json& request) { return connect("unix")->request(request); }
  json over_tcp(const json& request) { return connect("tcp")->request(request); }
  json from_cid(unsigned cid, const json& request) {
    int fd = admit_vsock_peer(cid);
    auto line = request.dump() + "\n";
    EXPECT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    auto answer = test::read_line_fd(fd);
    ::close(fd);
    return json::parse(answer);
  }

  // A request over the Unix socket from a child that became `uid`, in its own group and `more`.
  json as_uid(uid_t uid, const json& request, std::vector<gid_t> more = {}) {
    auto line = request.dump() + "\n";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", config.unix_socket.c_str());
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    more.reserve(more.size() + 1);  // no allocation in the child
    pid_t pid = ::fork();
    if (pid == 0) {  // system calls only from here: the parent has other threads
      gid_t gid = uid;
      more.push_back(gid);
      if (::setgroups(more.size(), more.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(10);
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(11);
      if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(12);
      char c;
      while (::read(fd, &c, 1) == 1) {
        if (::write(out[1], &c, 1) != 1) ::_exit(13);
        if (c == '\n') ::_exit(0);
      }
      ::_exit(14);
    }
    ::close(out[1]);
    auto answer = test::read_line_fd(out[0]);
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    return json::parse(answer.empty() ? "{}" : answer);
  }
};

std::string error_of(const json& answer) { return answer.value("error", std::string()); }
bool denied(const json& answer) { return error_of(answer).starts_with("Permission denied: "); }

json key() { return {{"vid", "1050"}, {"pid", "0407"}}; }
json stick() { return {{"vid", "0781"}, {"pid", "5581"}}; }
json webcam() { return {{"vid", "046d"}, {"pid", "0825"}}; }
json serial() { return {{"vid", "1a86"}, {"pid", "7523"}}; }
json with(json request, const json& more) {
  request.update(more);
  return request;
}

std::vector<std::string> listed_vids(const json& answer, const char* key = "usb_devices") {
  std::vector<std::string> out;
  for (const auto& d : answer.value(key, json::array())) out.push_back(d.contains("address") ? d["address"] : d["vid"]);
  return out;
}

struct Row {
  std::string who;  // "root", "nobody", "stranger", "tcp", "cid3", "cid4", "cid9"
  json request;
  bool allowed;
};

TEST_F(Permissions, CallersTimesActionsTimesVms) {
  start();
  const json attach{{"action", "usb_attach"}}, detach{{"action", "usb_detach"}};
  const std::vector<Row> table{
      // root: everything
      {"root", {{"action", "usb_list"}}, true},
      {"root", with(attach, with(serial(), {{"vm", "net-vm"}})), true},
      {"root", {{"action", "pci_attach"}, {"tag", "net"}}, true},
      {"root", {{"action", "vmm_args"}, {"vm", "net-vm"}}, true},
      {"root", {{"action", "usb_suspend"}}, true},
      // nobody: reads, no changes
      {"nobody", {{"action", "usb_list"}}, true},
      {"nobody", {{"action", "enable_notifications"}}, true},
      {"nobody", with(attach, key()), false},
      {"nobody", {{"action", "vmm_args"}, {"vm", "gui-vm"}}, false},
      {"nobody", {{"action", "pci_detach"}, {"tag", "net"}}, false},
      // a uid no entry names: nothing; the same uid in a group an entry names (SO_PEERGROUPS): that entry
      {"stranger", {{"action", "usb_list"}}, false},
      {"stranger+usb", {{"action", "usb_list"}}, true},
      {"stranger+usb", with(attach, with(key(), {{"vm", "gui-vm"}})), true},
      {"stranger+usb", {{"action", "pci_attach"}, {"tag", "net"}}, false},
      // TCP from loopback: list only
      {"tcp", {{"action", "pci_list"}}, true},
      {"tcp", with(detach, key()), false},
      {"tcp", {{"action", "enable_notifications"}}, false},
      // gui-vm (cid 3), managing gui-vm and business-vm
      {"cid3", with(attach, with(key(), {{"vm", "gui-vm"}})), true},
      {"cid3", with(attach, with(key(), {{"vm", "business-vm"}})), true},
      {"cid3", with(attach, with(key(), {{"vm", "net-vm"}})), false},
      {"cid3", with(attach, key()), true},  // either way one of its VMs
      {"cid3", with(attach, stick()), true},
      {"cid3", with(attach, webcam()), true},
      {"cid3", with(attach, serial()), false},  // net-vm's device
      {"cid3", with(attach, {{"tag", "serial"}}), false},
      {"cid3", with(detach, serial()), false},
      {"cid3", with(detach, webcam()), true},
      {"cid3", {{"action", "usb_suspend"}, {"vm", "business-vm"}}, true},
      {"cid3", {{"action", "usb_suspend"}, {"vm", "net-vm"}}, false},
      {"cid3", {{"action", "usb_suspend"}}, false},  // every VM: more than its own
      {"cid3", {{"action", "pci_attach"}, {"tag", "net"}}, false},
      {"cid3", {{"action", "vmm_args"}, {"vm", "gui-vm"}}, false},
      // net-vm (cid 4), its vms by default [net-vm]
      {"cid4", {{"action", "pci_attach"}, {"tag", "net"}}, true},
      {"cid4", {{"action", "pci_detach"}, {"address", "0000:00:14.3"}}, true},
      {"cid4", {{"action", "pci_attach"}, {"address", "0000:00:14.3"}, {"vm", "gui-vm"}}, false},
      {"cid4", {{"action", "vmm_args"}, {"vm", "net-vm"}}, true},
      {"cid4", {{"action", "vmm_args"}, {"vm", "gui-vm"}}, false},
      {"cid4", with(attach, serial()), false},  // no "attach" right, though its device
      {"cid4", {{"action", "pci_resume"}, {"vm", "net-vm"}}, false},
      // a CID no entry names
      {"cid9", {{"action", "usb_list"}}, false},
  };
  for (const auto& row : table) {
    json answer;
    if (row.who == "root") answer = as_root(row.request);
    else if (row.who == "nobody") answer = as_uid(kNobody, row.request);
    else if (row.who == "stranger") answer = as_uid(kStranger, row.request);
    else if (row.who == "stranger+usb") answer = as_uid(kStranger, row.request, {kUsbGroup});
    else if (row.who == "tcp") answer = over_tcp(row.request);
    else answer = from_cid(static_cast<unsigned>(std::stoul(row.who.substr(3))), row.request);
    EXPECT_EQ(denied(answer), !row.allowed) << row.who << " " << row.request.dump() << " → " << answer.dump();
    if (denied(answer)) {
      EXPECT_TRUE(error_of(answer).starts_with("Permission denied: " + row.request["action"].get<std::string>())) << answer.dump();
    }
  }
}

TEST_F(Permissions, ARefusalSaysWhyAndTheConnectionGoesOn) {
  start();
  int fd = admit_vsock_peer(3);
  auto ask = [&](const json& request) {
    auto line = request.dump() + "\n";
    EXPECT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    return json::parse(test::read_line_fd(fd));
  };
  EXPECT_EQ(error_of(ask({{"action", "pci_attach"}, {"tag", "net"}})),
            "Permission denied: pci_attach (general.api.permissions[2] does not allow pci)");
  EXPECT_EQ(error_of(ask({{"action", "usb_attach"}, {"vid", "1050"}, {"pid", "0407"}, {"vm", "net-vm"}})),
            "Permission denied: usb_attach of 1050:0407 (Yubico.com Yubikey 4/5 OTP+U2F+CCID) to VM net-vm, not one of yours (business-vm, gui-vm)");
  EXPECT_EQ(error_of(ask({{"action", "usb_suspend"}})), "Permission denied: usb_suspend of every VM: name one of yours (business-vm, gui-vm)");
  EXPECT_EQ(ask({{"action", "usb_list"}})["result"], "ok");  // still served
  ::close(fd);
  EXPECT_EQ(error_of(as_uid(kStranger, {{"action", "usb_list"}})),
            "Permission denied: usb_list (no permissions entry matches unix uid " + std::to_string(kStranger) + ")");
}

TEST_F(Permissions, AVmBoundCallerListsOnlyWhatItMayActOn) {
  start();
  EXPECT_EQ(listed_vids(from_cid(3, {{"action", "usb_list"}})), (std::vector<std::string>{"1050", "0781", "046d"}));
  EXPECT_EQ(listed_vids(from_cid(4, {{"action", "usb_list"}})), std::vector<std::string>{"1a86"});
  EXPECT_EQ(listed_vids(from_cid(3, {{"action", "pci_list"}}), "pci_devices"), std::vector<std::string>{});
  EXPECT_EQ(listed_vids(from_cid(4, {{"action", "pci_list"}}), "pci_devices"), std::vector<std::string>{"0000:00:14.3"});
  EXPECT_EQ(listed_vids(as_root({{"action", "usb_list"}})), (std::vector<std::string>{"1050", "0781", "046d", "1a86"}));
}

TEST_F(Permissions, AVmBoundCallerHearsOnlyOfDevicesItMayActOn) {
  start();
  int gui = admit_vsock_peer(3);
  const std::string enable = "{\"action\":\"enable_notifications\"}\n";
  ASSERT_EQ(::write(gui, enable.data(), enable.size()), static_cast<ssize_t>(enable.size()));
  ASSERT_EQ(test::read_line_fd(gui), R"({"result":"ok"})");
  auto everything = connect("unix");
  ASSERT_EQ(everything->request({{"action", "enable_notifications"}})["result"], "ok");

  auto spec = test::security_key_spec(host.hub);
  tb.plug({.parent = host.root_hub, .name = "1-9", .busnum = 1, .devnum = 41, .vid = "1a86", .pid = "7523", .product = "USB Serial",
           .interfaces = {{0xff, 1, 2, "ch341"}}});  // net-vm's: gui-vm does not hear of it
  spec.name = "1-2.2", spec.devnum = 40, spec.serial = "K40";
  tb.plug(spec);  // a key: gui-vm's to choose
  EXPECT_EQ(json::parse(everything->read_line())["usb_device"]["vid"], "1a86");
  EXPECT_EQ(json::parse(everything->read_line())["usb_device"]["vid"], "1050");
  auto first = json::parse(test::read_line_fd(gui));
  EXPECT_EQ(first["event"], "usb_connected");
  EXPECT_EQ(first["usb_device"]["vid"], "1050");  // the serial adapter's event never came
  ::close(gui);
}

TEST(PermissionsConfig, EntriesAreCheckedWhenTheConfigIsRead) {
  auto errors = [](const char* permissions) {
    try {
      parse_config(json{{"general", {{"api", {{"permissions", json::parse(permissions)}}}}}}, "test");
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(errors(R"([{"actions": ["list"], "addresses": ["10.0.0.0/8", "::1"]}])"), "");
  EXPECT_NE(errors(R"([{"actions": ["list", "detonate"]}])").find("general.api.permissions[0].actions"), std::string::npos);
  EXPECT_NE(errors(R"([{"users": ["root"]}])").find("general.api.permissions[0]: actions is required"), std::string::npos);
  EXPECT_NE(errors(R"([{"actions": ["*"], "addresses": ["10.0.0.0/33"]}])").find("addresses"), std::string::npos);
  EXPECT_NE(errors(R"([{"actions": ["*"], "addresses": ["example.com"]}])").find("addresses"), std::string::npos);
  EXPECT_NE(errors(R"({"actions": ["*"]})").find("general.api.permissions"), std::string::npos);
}

}  // namespace
}  // namespace vhp::api_permissions_test
