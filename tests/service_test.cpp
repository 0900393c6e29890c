// Operating the daemon: `status` through vhotplugctl, systemd's notify protocol (READY, STATUS,
// WATCHDOG from the loop, RELOADING, STOPPING) on a real datagram socket, the journal's native
// protocol with the lines' fields, and the one version.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "api/client.h"
#include "support/host_fixture.h"
#include "support/policy.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::service_test {
namespace {

using json = nlohmann::json;
using test::eventually;

class Service : public testing::Test {
 protected:
  Service() {
    host = test::add_realistic_host(tb);
    socket_path = dir / "vhotplug.sock";
    config = json::parse(test::kAllToVm1);
    config["vms"][0]["socket"] = dir / "vm1.qmp";  // never there: vm1 stays down
    config["general"] = {{"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}}, {"statePath", dir / "state"}};
    write_config();
  }
  void write_config() { std::ofstream(dir / "vhotplug.conf") << config.dump(2); }

  // The daemon, with `env` before it (e.g. NOTIFY_SOCKET=…), once its API answers.
  std::unique_ptr<test::Child> start(std::vector<std::string> env = {}) {
    std::vector<std::string> argv{"/usr/bin/env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"});
    auto child = std::make_unique<test::Child>(argv, dir / "daemon.out", dir / "daemon.log");
    EXPECT_TRUE(eventually([&] { return test::run_capture(ctl({"usb", "list", "--short"})).exit_code == 0; }))
        << test::read_file(dir / "daemon.log");
    return child;
  }
  std::vector<std::string> ctl(std::initializer_list<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCTL_BINARY, "-t", "unix", "-u", socket_path};
    argv.insert(argv.end(), args);
    return argv;
  }

  test::Testbed tb;
  test::HostPaths host;
  test::TempDir dir;
  std::string socket_path;
  json config;
};

TEST_F(Service, StatusSaysHowTheDaemonAndEachVmAreDoing) {
  auto daemon = start();
  auto text = test::run_capture(ctl({"status"}));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(std::regex_search(text.out, std::regex("^vhotplugd " VHP_VERSION ", up [0-9]+s \\(since 20[0-9-]+T[0-9:]+Z\\)\n")))
      << text.out;
  EXPECT_NE(text.out.find("config " + dir / "vhotplug.conf" + ", loaded 20"), std::string::npos) << text.out;
  EXPECT_TRUE(std::regex_search(text.out, std::regex("\n  vm1 \\(qemu\\): (down|unknown) since 20[0-9-]+T[0-9:]+Z; attached: 0 USB, 0 PCI, 0 input\n")))
      << text.out;
  // Clients: this one, and maybe an earlier probe whose close the daemon has not read yet.
  EXPECT_TRUE(std::regex_search(text.out, std::regex("\ndevices: 6 USB, 5 PCI, 0 input; clients: [12] API, 0 Thunder; choices waiting for the user: 0\n")))
      << text.out;
  EXPECT_NE(text.out.find("limits: API 1024 clients per transport, lines of 1048576 bytes"), std::string::npos) << text.out;

  // A rejected reload is said, and the running config stays.
  std::ofstream(dir / "vhotplug.conf") << "{ not json";
  ::kill(daemon->pid(), SIGHUP);
  json status;
  ASSERT_TRUE(eventually([&] {
    auto out = test::run_capture(ctl({"--json", "status"})).out;
    status = json::parse(out, nullptr, false);
    return status.is_object() && status["config"]["last_reload_error"].is_string();
  })) << status.dump();
  EXPECT_EQ(status["version"], VHP_VERSION);
  EXPECT_NE(status["config"]["last_reload_error"].get<std::string>().find("invalid JSON"), std::string::npos);
  EXPECT_EQ(status["vms"].size(), 1u);
  EXPECT_EQ(status["vms"][0]["name"], "vm1");
  EXPECT_TRUE(status["vms"][0]["last_error"].is_null());
  EXPECT_NE(test::run_capture(ctl({"status"})).out.find("; the last reload was rejected: "), std::string::npos);
}

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("notify socket");
  }
  ~NotifySocket() { ::close(fd_); }
  // The next message, or "" after `limit`.
  std::string next(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return "";
    char buffer[65536];
    auto n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  }
  // The next message that starts with `prefix`, skipping others (watchdog pings between).
  std::string next_starting(const std::string& prefix) {
    for (int i = 0; i < 200; ++i) {
      auto m = next();
      if (m.empty() || m.starts_with(prefix)) return m;
    }
    return "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST_F(Service, TellsSystemdItIsReadyAndPingsTheWatchdogFromItsLoop) {
  NotifySocket systemd(dir / "notify");
  auto daemon = start({"NOTIFY_SOCKET=" + dir / "notify", "WATCHDOG_USEC=200000"});
  auto ready = systemd.next();
  EXPECT_EQ(ready, "READY=1\nSTATUS=6 USB, 5 PCI and 0 input devices; 0/1 VMs up; 0 clients") << test::read_file(dir / "daemon.log");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(systemd.next().starts_with("WATCHDOG=1\nSTATUS=6 USB, 5 PCI and 0 input devices; 0/1 VMs up"));
  ::kill(daemon->pid(), SIGHUP);
  EXPECT_EQ(systemd.next_starting("RELOADING"), "RELOADING=1");
  EXPECT_TRUE(systemd.next_starting("READY").starts_with("READY=1\nSTATUS="));
  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  EXPECT_EQ(systemd.next_starting("STOPPING"), "STOPPING=1");
}

TEST_F(Service, WithoutAWatchdogNoPings) {
  NotifySocket systemd(dir / "notify");
  auto daemon = start({"NOTIFY_SOCKET=" + dir / "notify"});
  EXPECT_TRUE(systemd.next().starts_with("READY=1\n"));
  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  EXPECT_EQ(systemd.next(), "STOPPING=1");  // nothing in between
}

// The fields of one journal datagram (systemd's native protocol: KEY=value lines, or KEY, a
// little-endian 64-bit length and the value for values with a newline).
std::map<std::string, std::string> journal_fields(const std::string& datagram) {
  std::map<std::string, std::string> fields;
  std::size_t at = 0;
  while (at < datagram.size()) {
    auto nl = datagram.find('\n', at);
    if (nl == std::string::npos) break;
    auto line = datagram.substr(at, nl - at);
    if (auto eq = line.find('='); eq != std::string::npos) {
      fields[line.substr(0, eq)] = line.substr(eq + 1);
      at = nl + 1;
      continue;
    }
    std::uint64_t size = 0;
    if (nl + 1 + sizeof size > datagram.size()) break;
    std::memcpy(&size, datagram.data() + nl + 1, sizeof size);
    fields[line] = datagram.substr(nl + 1 + sizeof size, size);
    at = nl + 1 + sizeof size + size + 1;
  }
  return fields;
}

TEST_F(Service, UnderSystemdItWritesToTheJournalWithPrioritiesAndTheLinesFields) {
  const std::string journal = "/run/systemd/journal/socket";
  if (::geteuid() != 0) GTEST_SKIP() << "binding the journal's socket under /run needs root";
  if (test::Fd probe(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)); std::filesystem::exists(journal)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", journal.c_str());
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      GTEST_SKIP() << "a journal runs on this machine: its socket is not the test's to take";
    std::filesystem::remove(journal);  // left by an earlier run of this test
  }
  std::filesystem::create_directories("/run/systemd/journal");
  // journald reads at once: a full socket queue would block the daemon's writes.
  NotifySocket journald(journal);
  struct Unlink {
    std::string path;
    ~Unlink() { std::filesystem::remove(path); }
  } unlink{journal};
  std::mutex mutex;
  std::vector<std::map<std::string, std::string>> entries;
  std::jthread reader([&](std::stop_token stop) {  // stopped and joined however the test ends
    while (!stop.stop_requested()) {
      auto datagram = journald.next(std::chrono::milliseconds(100));
      if (datagram.empty()) continue;
      std::lock_guard lock(mutex);
      entries.push_back(journal_fields(datagram));
    }
  });
  auto entry = [&](const std::string& start) {
    std::lock_guard lock(mutex);
    for (const auto& e : entries)
      if (auto m = e.find("MESSAGE"); m != e.end() && m->second.starts_with(start)) return e;
    return std::map<std::string, std::string>{};
  };

  // Rights that let the CLI list and ask for VMM args (of a VM with no PCI device), but not suspend.
  config["pciPassthrough"] = json::array();
  config["general"]["api"]["permissions"] = {{{"users", {::getuid()}}, {"actions", {"list", "vmm_args"}}}};
  write_config();
  // systemd names the stream it gave the service as standard error: the daemon logs natively then.
  std::ofstream(dir / "daemon.log").flush();
  struct stat log {};
  ASSERT_EQ(::stat((dir / "daemon.log").c_str(), &log), 0);
  auto daemon = start({"JOURNAL_STREAM=" + std::to_string(log.st_dev) + ":" + std::to_string(log.st_ino)});
  auto args = test::run_capture(ctl({"vmm", "args", "--vm", "vm1"}));
  EXPECT_EQ(args.exit_code, 0) << args.out << args.err;
  EXPECT_NE(test::run_capture(ctl({"usb", "suspend"})).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return !entry("api: permission denied to ").empty(); }));
  reader.request_stop();
  reader.join();

  auto plugged = entry("PCI added 0000:00:14.3 "), vm_args = entry("VMM args for vm1"), denied = entry("api: permission denied to ");
  EXPECT_EQ(plugged["VHOTPLUG_DEVICE"], "pci-0000:00:14.3");
  EXPECT_EQ(plugged["PRIORITY"], "6");
  EXPECT_EQ(plugged["SYSLOG_IDENTIFIER"], "vhotplugd");
  EXPECT_EQ(plugged.count("VHOTPLUG_VM"), 0u);
  EXPECT_EQ(vm_args["VHOTPLUG_VM"], "vm1");
  EXPECT_EQ(denied["VHOTPLUG_CALLER"], "unix uid " + std::to_string(::getuid()));
  EXPECT_EQ(denied["PRIORITY"], "4");
  EXPECT_EQ(test::read_file(dir / "daemon.log"), "");  // nothing went to standard error instead
}

// Whether the process has this library mapped.
bool maps_library(pid_t pid, const std::string& name) { return test::read_file("/proc/" + std::to_string(pid) + "/maps").find(name) != std::string::npos; }

TEST_F(Service, LibkmodIsLoadedOnlyWhenADriverRuleAsks) {
  auto daemon = start();
  EXPECT_FALSE(maps_library(daemon->pid(), "libkmod.so"));
  EXPECT_FALSE(maps_library(daemon->pid(), "libcrypto.so"));  // libkmod's, 1.4 MiB resident
  auto& groups = config["usbPassthrough"];  // first, so that every device is asked
  groups.insert(groups.begin(), json{{"targetVm", "vm1"}, {"allow", {{{"driverPath", ".*/drivers/usb/.*"}}}}});
  write_config();
  ::kill(daemon->pid(), SIGHUP);
  EXPECT_TRUE(eventually([&] {
    (void)test::run_capture(ctl({"usb", "list"}));  // the rules are asked about each device
    return maps_library(daemon->pid(), "libkmod.so.2");
  })) << test::read_file(dir / "daemon.log");
}

// One version: CMake's project version is what both binaries print and what the package carries.
TEST(Version, BothBinariesPrintTheProjectVersionTheDebianChangelogCarries) {
  EXPECT_EQ(test::run_capture({VHOTPLUGD_BINARY, "--version"}).out, "vhotplugd " VHP_VERSION "\n");
  EXPECT_EQ(test::run_capture({VHOTPLUGCTL_BINARY, "--version"}).out, "vhotplugctl " VHP_VERSION "\n");
  EXPECT_EQ(test::run_capture({VHOTPLUGCLI_BINARY, "--version"}).out, "vhotplugcli " VHP_VERSION "\n");
  std::ifstream changelog(VHP_SOURCE_DIR "/debian/changelog");
  std::string first;
  std::getline(changelog, first);
  EXPECT_EQ(first.substr(0, first.find(')') + 1), "vhotplugd (" VHP_VERSION ")");
}

}  // namespace
}  // namespace vhp::service_test
