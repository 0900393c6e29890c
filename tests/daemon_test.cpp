// The real vhotplugd and vhotplugctl as child processes on a umockdev host, over real sockets.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "api/client.h"
#include "support/fake_qmp.h"
#include "support/host_fixture.h"
#include "support/policy.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "support/thunder_client.h"

namespace vhp::daemon_test {
namespace {

using json = nlohmann::json;
using test::eventually;

// UBSan's vptr check probes memory through a pipe: in a process with no descriptor left it reports
// valid objects as having an invalid vptr and aborts (shown on its own in docs/TESTING.md). The
// tests that exhaust the daemon's descriptors therefore run in the plain build only.
#define SKIP_WHEN_SANITIZED()                                                                              \
  do {                                                                                                      \
    if (kSanitized) GTEST_SKIP() << "UBSan's vptr check cannot run without a free descriptor (docs/TESTING.md)"; \
  } while (0)
#ifdef VHP_SANITIZED
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

class Daemon : public testing::Test {
 protected:
  Daemon() {
    host = test::add_realistic_host(tb);
    socket_path = dir / "vhotplug.sock";
    port = test::free_tcp_port();
    auto config = json::parse(test::kAllToVm1);
    config["general"] = {{"api", {{"transports", {"unix", "tcp"}}, {"unixSocket", socket_path}, {"port", port}}}};
    write_config(config);
  }

  void write_config(const json& config) { std::ofstream(dir / "vhotplug.conf") << config.dump(2); }

  std::unique_ptr<test::Child> start_daemon(const std::string& name = "daemon") {
    auto child = std::make_unique<test::Child>(std::vector<std::string>{VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"},
                                               dir / (name + ".out"), dir / (name + ".log"));
    bool up = eventually([&] {
      if (!child->running()) return true;
      try {
        connect();
        return true;
      } catch (const std::exception&) {
        return false;
      }
    });
    EXPECT_TRUE(up && child->running()) << test::read_file(dir / (name + ".log"));
    return child;
  }

  std::unique_ptr<ApiClient> connect(const std::string& transport = "unix") {
    ClientOptions o;
    o.transport = transport, o.path = socket_path, o.port = port, o.timeout_ms = 5000;
    return std::make_unique<ApiClient>(o);
  }

  std::vector<std::string> ctl(std::initializer_list<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCTL_BINARY, "-t", "unix", "-u", socket_path};
    argv.insert(argv.end(), args);
    return argv;
  }

  // A key plugged behind the hub at devpath 2.2.
  std::string plug_key(int devnum, const std::string& name = "1-2.2") {
    auto spec = test::security_key_spec(host.hub);
    spec.name = name, spec.devnum = devnum, spec.serial = "K" + std::to_string(devnum);
    return tb.plug(spec);
  }

  test::Testbed tb;
  test::HostPaths host;
  test::TempDir dir;
  std::string socket_path;
  int port;
};

std::string key_json(int devnum, const std::string& sys_name) {
  char node[32];
  std::snprintf(node, sizeof node, "/dev/bus/usb/001/%03d", devnum);
  return R"({"device_node":")" + std::string(node) +
         R"(","vid":"1050","pid":"0407","vendor_name":"Yubico.com","product_name":"Yubikey 4/5 OTP+U2F+CCID",)"
         R"("interfaces":":030101:030000:0b0000:","device_class":0,"device_subclass":0,"device_protocol":0,"busnum":1,)"
         R"("devnum":)" + std::to_string(devnum) + R"(,"portnum":2,"serial":"K)" + std::to_string(devnum) +
         R"(","sys_name":")" + sys_name + R"("})";
}

TEST_F(Daemon, PlugAndUnplugGiveExactNotificationLines) {
  auto daemon = start_daemon();
  auto listener = connect();
  ASSERT_EQ(listener->request({{"action", "enable_notifications"}}), json::parse(R"({"result":"ok"})"));
  auto path = plug_key(40);
  EXPECT_EQ(listener->read_line(), R"({"event":"usb_connected","usb_device":)" + key_json(40, "1-2.2") + "}");
  tb.unplug(path);
  EXPECT_EQ(listener->read_line(), R"({"event":"usb_disconnected","usb_device":)" + key_json(40, "1-2.2") + "}");
}

// A device's name is the device's choice: a terminal escape in it reaches neither the daemon's log
// nor the terminal of whoever lists the devices.
TEST_F(Daemon, ADevicesControlCharactersReachNeitherTheLogNorTheTerminal) {
  auto daemon = start_daemon();
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40, spec.serial = "K40";
  spec.product = "Evil\x1b]0;pwned\x07\x1b[2J";
  spec.extra_properties = {};  // no hwdb name: the device's own string is its name
  tb.plug(spec);
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "daemon.log").find("USB added 1-2.2") != std::string::npos; }));
  auto log = test::read_file(dir / "daemon.log");
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << log;
  EXPECT_NE(log.find(R"(Evil\x1b]0;pwned\x07\x1b[2J)"), std::string::npos) << log;
  auto listed = test::run_capture(ctl({"usb", "list"}));
  EXPECT_EQ(listed.out.find('\x1b'), std::string::npos);
  EXPECT_NE(listed.out.find(R"(1050:0407 Yubico Evil\x1b]0;pwned\x07\x1b[2J)"), std::string::npos) << listed.out;
  auto as_json = test::run_capture(ctl({"--json", "usb", "list"}));  // JSON escapes them itself
  EXPECT_EQ(as_json.out.find('\x1b'), std::string::npos);
}

// Without general.api.permissions, each open transport is named once at start, TCP on a
// non-loopback address as reachable by anyone on that network.
TEST_F(Daemon, WithoutPermissionsEachOpenTransportIsNamedAtStart) {
  auto config = json::parse(test::kAllToVm1);
  config["general"] = {{"api", {{"transports", {"unix", "tcp"}}, {"unixSocket", socket_path}, {"host", "0.0.0.0"}, {"port", port}}}};
  write_config(config);
  auto daemon = start_daemon();
  auto log = test::read_file(dir / "daemon.log");
  auto count = [&](const std::string& text) {
    std::size_t n = 0;
    for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("api: unix " + socket_path + " (every user its file mode lets in) is open without general.api.permissions"), 1u) << log;
  EXPECT_EQ(count("api: tcp 0.0.0.0:" + std::to_string(port) + " (reachable by anyone on that network) is open without general.api.permissions"), 1u) << log;
}

// With them: no such warning, and a caller refused the same action twice is logged once.
TEST_F(Daemon, APermissionDeniedIsLoggedOncePerCallerAndAction) {
  auto config = json::parse(test::kAllToVm1);
  config["general"] = {{"api", {{"transports", {"unix", "tcp"}}, {"unixSocket", socket_path}, {"port", port},
                                {"permissions", {{{"users", {::getuid()}}, {"actions", {"list"}}}}}}}};
  write_config(config);
  auto daemon = start_daemon();
  auto c = connect();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(c->request({{"action", "usb_attach"}, {"tag", "x"}})["error"], "Permission denied: usb_attach (general.api.permissions[0] does not allow attach)");
  EXPECT_EQ(c->request({{"action", "usb_list"}})["result"], "ok");  // the same connection goes on
  EXPECT_EQ(connect("tcp")->request({{"action", "usb_list"}})["error"], "Permission denied: usb_list (no permissions entry matches tcp 127.0.0.1)");
  auto log = test::read_file(dir / "daemon.log");
  EXPECT_EQ(log.find("is open without general.api.permissions"), std::string::npos) << log;
  auto first = log.find("permission denied to unix");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("permission denied to unix", first + 1), std::string::npos) << log;
}

TEST_F(Daemon, ListsOverUnixAndTcpAgree) {
  auto daemon = start_daemon();
  auto over_unix = connect("unix")->request({{"action", "usb_list"}});
  EXPECT_EQ(over_unix, connect("tcp")->request({{"action", "usb_list"}}));
  ASSERT_EQ(over_unix["usb_devices"].size(), 6u);
  EXPECT_EQ(over_unix["usb_devices"][0]["sys_name"], "1-2.1");
  EXPECT_EQ(over_unix["usb_devices"][0]["allowed_vms"], json::array({"vm1"}));
  EXPECT_TRUE(over_unix["usb_devices"][0]["vm"].is_null());
}

TEST_F(Daemon, SigtermRemovesTheSocketAndExitsZero) {
  auto daemon = start_daemon();
  ASSERT_TRUE(std::filesystem::exists(socket_path));
  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  EXPECT_FALSE(std::filesystem::exists(socket_path));
}

TEST_F(Daemon, ARefusedPeerIsLoggedOnceWithItsIdentity) {
  auto config = json::parse(test::kAllToVm1);
  config["general"] = {{"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}, {"allowedUsers", {::getuid() + 1}}}}};
  write_config(config);
  auto daemon = std::make_unique<test::Child>(std::vector<std::string>{VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"},
                                              dir / "daemon.out", dir / "daemon.log");
  ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(socket_path); }));
  for (int i = 0; i < 3; ++i) {
    auto refused = connect();
    EXPECT_EQ(refused->read_line(), R"({"result":"failed","error":"Access denied: uid )" + std::to_string(::getuid()) + R"( is not allowed"})");
  }
  auto log = test::read_file(dir / "daemon.log");
  auto first = log.find("api: refused unix " + socket_path + " (uid " + std::to_string(::getuid()));
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("api: refused", first + 1), std::string::npos) << log;  // once, not three times
}

TEST_F(Daemon, SighupDoesNotKillIt) {
  auto daemon = start_daemon();
  ::kill(daemon->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "daemon.log").find("config reloaded") != std::string::npos; }));
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
  EXPECT_TRUE(daemon->running());
}

TEST_F(Daemon, ASighupNamesWhatItCannotApply) {
  auto daemon = start_daemon();
  auto config = json::parse(test::read_file(dir / "vhotplug.conf"));
  config["general"]["api"]["maxClients"] = 10;
  config["general"]["api"]["allowedUsers"] = {"root"};
  config["vms"][0]["socket"] = "/tmp/elsewhere.sock";
  write_config(config);
  ::kill(daemon->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "daemon.log").find("config reloaded") != std::string::npos; }));
  EXPECT_NE(test::read_file(dir / "daemon.log")
                .find("these changes take effect at the next restart: general.api.allowedUsers, general.api.maxClients, vms"),
            std::string::npos)
      << test::read_file(dir / "daemon.log");
}

TEST_F(Daemon, AConfigFileThatGoesAwayKeepsTheCurrentConfigAtSighup) {
  auto daemon = start_daemon();
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["usb_devices"].size(), 6u);
  std::filesystem::remove(dir / "vhotplug.conf");  // the built-in default has no rules: it must not apply now
  ::kill(daemon->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "daemon.log").find("does not exist") != std::string::npos; }));
  EXPECT_NE(test::read_file(dir / "daemon.log").find("config reload rejected"), std::string::npos);
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["usb_devices"].size(), 6u);
  EXPECT_TRUE(daemon->running());
}

TEST_F(Daemon, TakesTheReferencesNegativeFlags) {
  auto daemon = std::make_unique<test::Child>(
      std::vector<std::string>{VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf", "--no-attach-connected", "--no-debug"},
      dir / "daemon.out", dir / "daemon.log");
  ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(socket_path) || !daemon->running(); }));
  EXPECT_TRUE(daemon->running()) << test::read_file(dir / "daemon.log");
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(Daemon, ASecondDaemonOnTheSameSocketRefusesToStart) {
  auto first = start_daemon();
  test::Child second({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, dir / "second.out", dir / "second.log");
  ASSERT_TRUE(eventually([&] { return !second.running(); }));
  EXPECT_NE(test::read_file(dir / "second.log").find("another daemon is listening on " + socket_path), std::string::npos);
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");  // the first goes on
}

TEST_F(Daemon, AnInvalidConfigExitsOneNamingThePath) {
  write_config(json::parse(R"({"general":{"api":{"port":"2000"}}})"));
  auto result = test::run_capture({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"});
  EXPECT_EQ(result.exit_code, 1);
}

TEST_F(Daemon, CheckConfigGivesAVerdict) {
  auto good = test::run_capture({VHOTPLUGD_BINARY, "--check-config", std::string(VHP_TEST_DATA) + "/ghaf-like.json"});
  EXPECT_EQ(good.exit_code, 0);
  EXPECT_EQ(good.out, std::string(VHP_TEST_DATA) + "/ghaf-like.json: OK\n");  // crosvmUseRootBus, which Ghaf writes, is known
  write_config(json::parse(R"({"vms": [], "usbPassthrough": [{"targetVm": "vm1", "allow": [{"vendorId": "zz"}]}]})"));
  auto bad = test::run_capture({VHOTPLUGD_BINARY, "--check-config", dir / "vhotplug.conf"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.out, "usbPassthrough[0].allow[0].vendorId: expected a 4-digit hex string, got \"zz\"\n" + dir / "vhotplug.conf" +
                         ": INVALID\n");
  // A VM a rule names but vms lacks: a warning (the daemon starts), as with the reference.
  write_config(json::parse(R"({"vms": [], "usbPassthrough": [{"targetVm": "vm1", "allow": [{"interfaceClass": 3}]}]})"));
  auto missing = test::run_capture({VHOTPLUGD_BINARY, "--check-config", dir / "vhotplug.conf"});
  EXPECT_EQ(missing.exit_code, 0);
  EXPECT_EQ(missing.out, "warning: usbPassthrough[0].targetVm: VM \"vm1\" is not in vms; devices for it stay on the host\n" +
                             dir / "vhotplug.conf" + ": OK\n");
}

TEST_F(Daemon, SighupReloadsAValidConfigAndKeepsTheOldOneOnErrors) {
  auto daemon = start_daemon();
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["usb_devices"].size(), 6u);
  auto config = json::parse(test::kAllToVm1);
  config["usbPassthrough"] = json::parse(R"([{"targetVm": "vm1", "tag": "key", "allow": [{"vendorId": "1050", "productId": "0407"}]}])");
  config["general"] = {{"api", {{"transports", {"unix", "tcp"}}, {"unixSocket", socket_path}, {"port", port}}}};
  write_config(config);
  ::kill(daemon->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return connect()->request({{"action", "usb_list"}})["usb_devices"].size() == 1; }));
  EXPECT_EQ(connect()->request({{"action", "usb_list"}, {"tag", "key"}})["usb_devices"].size(), 1u);

  std::ofstream(dir / "vhotplug.conf") << R"({"vms": "broken"})";
  ::kill(daemon->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return test::read_file(dir / "daemon.log").find("config reload rejected") != std::string::npos;
  }));
  EXPECT_NE(test::read_file(dir / "daemon.log").find(R"(vms: expected a list, got "broken")"), std::string::npos);
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["usb_devices"].size(), 1u);  // the last good config
  EXPECT_TRUE(daemon->running());
}

TEST_F(Daemon, ServesThunderWhenConfigured) {
  auto config = json::parse(test::kAllToVm1);
  int thunder_port = test::free_tcp_port();
  config["general"] = {{"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}}, {"thunder", {{"port", thunder_port}}}};
  write_config(config);
  auto daemon = start_daemon();
  test::HttpResult r;
  ASSERT_TRUE(eventually([&] {  // it listens a moment after the API socket does
    try {
      r = test::http("POST", thunder_port, "/jsonrpc", R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device","params":{"deviceName":"001/003"}})");
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["result"]["flags"], "FLAGS_SWITCHABLE");
}

TEST_F(Daemon, CtlListsAsJsonAndAsText) {
  auto daemon = start_daemon();
  auto as_json = test::run_capture(ctl({"--json", "usb", "list"}));
  ASSERT_EQ(as_json.exit_code, 0);
  EXPECT_EQ(json::parse(as_json.out), connect()->request({{"action", "usb_list"}})["usb_devices"]);

  auto short_form = test::run_capture(ctl({"usb", "list", "--short"}));
  EXPECT_EQ(short_form.out,
            "1050:0407 Yubico.com Yubikey 4/5 OTP+U2F+CCID\n"
            "0781:5581 SanDisk Ultra\n"
            "046d:0825 Logitech, Inc. Webcam C270\n"
            "1a86:7523 None None\n"  // Python's str() of null, as the reference CLI prints it
            "413c:2113 Dell Dell_KB216_Wired_Keyboard\n"
            "413c:2113 Dell Dell_KB216_Wired_Keyboard\n");
  auto long_form = test::run_capture(ctl({"usb", "list"}));
  // The reference CLI's layout: keys padded to 16, Python values, a blank line after each device.
  EXPECT_NE(long_form.out.find("1050:0407 Yubico.com Yubikey 4/5 OTP+U2F+CCID\n"
                               "  device_node     : /dev/bus/usb/001/003\n"
                               "  vid             : 1050\n"),
            std::string::npos) << long_form.out;
  EXPECT_NE(long_form.out.find("  device_class    : 0\n"), std::string::npos) << long_form.out;
  EXPECT_NE(long_form.out.find("  allowed_vms     : ['vm1']\n  vm              : None\n\n0781:5581 SanDisk Ultra\n"), std::string::npos)
      << long_form.out;

  auto pci = test::run_capture(ctl({"pci", "list", "--short"}));
  EXPECT_NE(pci.out.find("0000:00:14.0 8086:A0ED Intel Corporation Tiger Lake-LP USB 3.2 Gen 2x1 xHCI Host Controller\n"),
            std::string::npos) << pci.out;
  EXPECT_EQ(test::run_capture(ctl({"--json", "usb", "list", "--disconnected"})).out, "[]\n");
}

TEST_F(Daemon, CtlFailsCleanlyWithoutADaemon) {
  auto result = test::run_capture(ctl({"usb", "list"}));
  EXPECT_EQ(result.exit_code, 1);
}

TEST_F(Daemon, CtlListenPrintsEventsAndReconnectsAfterARestart) {
  auto daemon = start_daemon();
  test::Child listen(ctl({"-d", "--json", "listen"}), dir / "listen.out", dir / "listen.err");  // -d: it says when it is back
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "listen.err").find("DEBUG Received: {'result': 'ok'}") != std::string::npos; }));
  plug_key(40);
  auto first = R"({"event":"usb_connected","usb_device":)" + key_json(40, "1-2.2") + "}\n";
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "listen.out") == first; })) << test::read_file(dir / "listen.out");

  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  daemon = start_daemon("daemon2");
  // It reconnects within its 3 s retry period and hears the next plug.
  ASSERT_TRUE(eventually([&] {
    auto err = test::read_file(dir / "listen.err");
    auto reconnecting = err.find("WARNING Reconnecting in 3 sec...");
    return reconnecting != std::string::npos && err.find("DEBUG Received: {'result': 'ok'}", reconnecting) != std::string::npos;
  })) << test::read_file(dir / "listen.err");
  plug_key(41, "1-2.3");
  auto second = R"({"event":"usb_connected","usb_device":)" + key_json(41, "1-2.3") + "}\n";
  EXPECT_TRUE(eventually([&] { return test::read_file(dir / "listen.out") == first + second; }))
      << test::read_file(dir / "listen.out");
}

// Shutdown with a VM operation in flight: every coroutine unwinds before the objects it uses are
// destroyed (the ASan build of this same test turns a use-after-free at exit into a failure).
TEST_F(Daemon, SigtermWhileAnAttachIsInFlightExitsCleanly) {
  test::FakeQmp hung(dir / "vm1.qmp", [](const json& r) -> std::optional<std::string> {
    if (r.value("execute", "") == "qom-list") return test::FakeQmp::reply(r, json::array());
    return std::nullopt;  // device_add: never answered
  });
  auto config = json::parse(test::read_file(dir / "vhotplug.conf"));
  config["vms"][0]["socket"] = dir / "vm1.qmp";
  write_config(config);
  auto daemon = start_daemon();
  plug_key(40);
  ASSERT_TRUE(eventually([&] {
    auto commands = hung.commands();
    return std::count(commands.begin(), commands.end(), "device_add") == 1;
  })) << test::read_file(dir / "daemon.log");
  EXPECT_EQ(daemon->stop(SIGTERM), 0) << test::read_file(dir / "daemon.log");
  EXPECT_EQ(test::read_file(dir / "daemon.log").find("AddressSanitizer"), std::string::npos);
}

// 128 subscribers, half on the Unix socket and half on TCP (the reference has no client limit):
// each gets exactly the 50 events of 25 plug/unplug cycles, in order.
TEST_F(Daemon, HundredsOfSubscribersEachGetEveryEvent) {
  auto daemon = start_daemon();
  std::vector<std::unique_ptr<ApiClient>> subscribers;
  for (int i = 0; i < 128; ++i) {
    subscribers.push_back(connect(i % 2 ? "tcp" : "unix"));
    ASSERT_EQ(subscribers.back()->request({{"action", "enable_notifications"}})["result"], "ok") << i;
  }
  for (int cycle = 0; cycle < 25; ++cycle) {
    auto key = plug_key(40 + cycle);
    ASSERT_EQ(json::parse(subscribers[0]->read_line())["event"], "usb_connected");
    tb.unplug(key);
    ASSERT_EQ(json::parse(subscribers[0]->read_line())["event"], "usb_disconnected");
  }
  for (std::size_t i = 1; i < subscribers.size(); ++i) {
    auto& s = *subscribers[i];
    for (int cycle = 0; cycle < 25; ++cycle) {
      auto connected = json::parse(s.read_line());
      ASSERT_EQ(connected["event"], "usb_connected") << i;
      ASSERT_EQ(connected["usb_device"]["devnum"], 40 + cycle) << i;
      ASSERT_EQ(json::parse(s.read_line())["event"], "usb_disconnected") << i;
    }
    s.send({{"action", "usb_list"}, {"tag", "none"}});
    EXPECT_EQ(s.read_line(), R"({"result":"ok","usb_devices":[]})") << i;  // nothing more was queued
  }
}

// Out of descriptors: the accept loop pauses and says so once per episode instead of spinning,
// the loop goes on serving the clients it has, and new clients are served once descriptors are free.
TEST_F(Daemon, RunningOutOfDescriptorsIsOneLogLineAndRecovers) {
  SKIP_WHEN_SANITIZED();
  test::Child daemon({"/usr/bin/prlimit", "--nofile=128:128", VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, dir / "daemon.out",
                     dir / "daemon.log", false);
  ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(socket_path) || !daemon.running(); }));
  auto first = connect();
  ASSERT_EQ(first->request({{"action", "usb_list"}})["result"], "ok");
  std::vector<std::unique_ptr<ApiClient>> crowd;
  auto failures = [&] {
    auto log = test::read_file(dir / "daemon.log");
    std::size_t n = 0;
    for (auto at = log.find("accept failed"); at != std::string::npos; at = log.find("accept failed", at + 1)) ++n;
    return n;
  };
  for (int i = 0; i < 400 && failures() == 0; ++i) crowd.push_back(connect());  // queued in the backlog past the limit
  ASSERT_TRUE(eventually([&] { return failures() > 0; })) << test::read_file(dir / "daemon.log");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(first->request({{"action", "usb_list"}})["result"], "ok");  // the loop goes on meanwhile
  EXPECT_EQ(failures(), 1u);
  // Once the clients leave, descriptors are free again. A client that left before it was accepted
  // may be gone from the backlog, so a new one is what shows the loop accepting again.
  crowd.clear();
  ASSERT_TRUE(eventually([&] {
    try {
      return connect()->request({{"action", "usb_list"}})["result"] == "ok";
    } catch (const std::exception&) {
      return false;
    }
  })) << test::read_file(dir / "daemon.log");
  EXPECT_NE(test::read_file(dir / "daemon.log").find("accepting again"), std::string::npos);
  EXPECT_EQ(failures(), 1u);
}

// The same for the Thunder facade: its accept loop pauses out of descriptors with one log line,
// the vhotplug API goes on meanwhile, and Thunder serves a new client once descriptors are free.
TEST_F(Daemon, ThunderOutOfDescriptorsIsOneLogLineAndRecovers) {
  SKIP_WHEN_SANITIZED();
  auto config = json::parse(test::kAllToVm1);
  int thunder_port = test::free_tcp_port();
  config["general"] = {{"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}},
                       {"thunder", {{"port", thunder_port}, {"maxClients", 1000}}}};  // above the descriptor budget
  write_config(config);
  test::Child daemon({"/usr/bin/prlimit", "--nofile=128:128", VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, dir / "daemon.out",
                     dir / "daemon.log", false);
  auto thunder_answers = [&] {
    try {
      return test::http("POST", thunder_port, "/jsonrpc", R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device","params":{"deviceName":"001/003"}})")
                 .status == 200;
    } catch (const std::exception&) {
      return false;
    }
  };
  ASSERT_TRUE(eventually([&] { return thunder_answers() || !daemon.running(); }));
  auto api = connect();
  auto failures = [&] {
    auto log = test::read_file(dir / "daemon.log");
    std::size_t n = 0;
    for (auto at = log.find("thunder: accept failed"); at != std::string::npos; at = log.find("thunder: accept failed", at + 1)) ++n;
    return n;
  };
  std::vector<test::Fd> crowd;  // raw TCP connections: the kernel completes them in the backlog
  for (int i = 0; i < 400 && failures() == 0; ++i) crowd.push_back(test::tcp_connect(thunder_port));
  ASSERT_TRUE(eventually([&] { return failures() > 0; })) << test::read_file(dir / "daemon.log");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(api->request({{"action", "usb_list"}})["result"], "ok");  // the loop goes on
  EXPECT_EQ(failures(), 1u);
  crowd.clear();
  ASSERT_TRUE(eventually(thunder_answers)) << test::read_file(dir / "daemon.log");
  EXPECT_NE(test::read_file(dir / "daemon.log").find("thunder: accepting again"), std::string::npos);
  EXPECT_EQ(failures(), 1u);
}

// SIGTERM while the accept loop pauses for descriptors: it unwinds (the ASan build catches a
// use-after-free of the closed listener).
TEST_F(Daemon, SigtermDuringAnAcceptPauseExitsCleanly) {
  SKIP_WHEN_SANITIZED();
  test::Child daemon({"/usr/bin/prlimit", "--nofile=128:128", VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, dir / "daemon.out",
                     dir / "daemon.log", false);
  ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(socket_path) || !daemon.running(); }));
  std::vector<std::unique_ptr<ApiClient>> crowd;
  auto failing = [&] { return test::read_file(dir / "daemon.log").find("accept failed") != std::string::npos; };
  for (int i = 0; i < 400 && !failing(); ++i) crowd.push_back(connect());
  ASSERT_TRUE(eventually(failing));
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << test::read_file(dir / "daemon.log");
  EXPECT_EQ(test::read_file(dir / "daemon.log").find("AddressSanitizer"), std::string::npos);
}

}  // namespace
}  // namespace vhp::daemon_test
