// The state file: the reference's shape, atomic writes that survive kill -9, corrupt files moved aside.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "manager/identity.h"
#include "manager/state_store.h"
#include "manager/stored_crosvm_usb_ports.h"
#include "support/temp_dir.h"

namespace vhp::state_store_test {
namespace {

namespace fs = std::filesystem;

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(StateStore, WritesTheReferencesShape) {
  test::TempDir dir;
  StateStore store(dir / "sub/vhotplug.state");  // the directory is created
  store.set_selected_vm("usb-1050:0407:123", "vm1");
  store.set_disconnected("usb-0781:5581:S1", true);
  store.set_disconnected("pci-0000:00:14.3", true);
  EXPECT_EQ(read(dir / "sub/vhotplug.state"),
            "{\n  \"disconnected_devices\": [\n    \"pci-0000:00:14.3\",\n    \"usb-0781:5581:S1\"\n  ],\n"
            "  \"selected_vms\": {\n    \"usb-1050:0407:123\": \"vm1\"\n  }\n}\n");
  StateStore again(dir / "sub/vhotplug.state");
  EXPECT_EQ(again.state(), store.state());
  again.set_disconnected("usb-0781:5581:S1", false);
  EXPECT_EQ(StateStore(dir / "sub/vhotplug.state").state().disconnected_devices, std::set<std::string>{"pci-0000:00:14.3"});
}

TEST(StateStore, ReadsAFileTheReferenceWrote) {
  test::TempDir dir;
  std::ofstream(dir / "state") << R"({"selected_vms": {"usb-1050:0407:123": "vm1"}, "disconnected_devices": ["usb-046d:c52b:None"]})";
  StateStore store(dir / "state");
  EXPECT_EQ(store.state().selected_vms.at("usb-1050:0407:123"), "vm1");
  EXPECT_TRUE(store.state().disconnected_devices.contains("usb-046d:c52b:None"));
}

// A host that ran ghaf-device-manager: its keys (crosvm_usb_ports) stay in the file, as read,
// across our writes, so switching back loses nothing.
TEST(StateStore, KeysOfAnotherManagerAreKeptAsRead) {
  test::TempDir dir;
  std::ofstream(dir / "s") << R"({"selected_vms": {}, "disconnected_devices": [],
    "crosvm_usb_ports": {"3-2": {"vm": "gui-vm", "port": 1, "socket_generation": "2049:77:123", "vid": "046d", "pid": "0825", "serial": null}}})";
  StateStore store(dir / "s");
  store.set_disconnected("usb-0781:5581:S1", true);
  auto written = nlohmann::json::parse(read(dir / "s"));
  EXPECT_EQ(written["crosvm_usb_ports"]["3-2"]["socket_generation"], "2049:77:123");
  EXPECT_EQ(written["disconnected_devices"], nlohmann::json::array({"usb-0781:5581:S1"}));
  EXPECT_EQ(StateStore(dir / "s").state(), store.state());
}

// The crosvm port book in ghaf-device-manager's shape: its entries read (ours add the plug's bus
// and device numbers), written back in that shape, an entry of another shape left alone.
TEST(StateStore, CrosvmUsbPortsInGhafDeviceManagersShape) {
  test::TempDir dir;
  std::ofstream(dir / "s") << R"({"selected_vms": {}, "disconnected_devices": [], "crosvm_usb_ports": {
    "3-2": {"vm": "gui-vm", "port": 1, "socket_generation": "2049:77:123", "vid": "046d", "pid": "0825", "serial": null},
    "3-4": {"vm": "gui-vm", "port": "two"}}})";
  StateStore store(dir / "s");
  StoredCrosvmUsbPorts book(store);
  auto ports = book.ports();
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_EQ(ports["3-2"], (CrosvmUsbPort{"gui-vm", 1, "2049:77:123", "046d", "0825", std::nullopt, 0, 0}));
  book.record("1-2.2", {"gui-vm", 2, "2049:78:9:100", "1050", "0407", "K40", 1, 40});
  book.forget("3-2");
  auto written = nlohmann::json::parse(read(dir / "s"))["crosvm_usb_ports"];
  EXPECT_EQ(written, nlohmann::json::parse(R"({"3-4": {"vm": "gui-vm", "port": "two"},
    "1-2.2": {"vm": "gui-vm", "port": 2, "socket_generation": "2049:78:9:100", "vid": "1050", "pid": "0407", "serial": "K40",
              "busnum": 1, "devnum": 40}})"));
  EXPECT_EQ(StoredCrosvmUsbPorts(store).ports().size(), 1u);
}

// A host without crosvm VMs keeps the reference's file: forgetting writes no book.
TEST(StateStore, NoCrosvmPortBookUntilAPortIsRecorded) {
  test::TempDir dir;
  StateStore store(dir / "s");
  store.set_disconnected("usb-0781:5581:S1", true);
  StoredCrosvmUsbPorts(store).forget("1-2");
  EXPECT_FALSE(nlohmann::json::parse(read(dir / "s")).contains("crosvm_usb_ports"));
}

TEST(StateStore, ACorruptOrTruncatedFileIsMovedAsideAndTheDaemonStartsEmpty) {
  for (const char* content : {"{\"selected_vms\": {\"usb-1050", "[]", "{\"selected_vms\": []}", "\x01\x02"}) {
    test::TempDir dir;
    std::ofstream(dir / "state") << content;
    StateStore store(dir / "state");
    EXPECT_TRUE(store.state().selected_vms.empty()) << content;
    EXPECT_FALSE(fs::exists(dir / "state"));
    int aside = 0;
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename().string().starts_with("state.corrupt-")) {
        ++aside;
        EXPECT_EQ(read(e.path()), content);
      }
    EXPECT_EQ(aside, 1) << content;
    store.set_selected_vm("usb-x", "vm1");  // and it works from there
    EXPECT_EQ(StateStore(dir / "state").state().selected_vms.at("usb-x"), "vm1");
  }
}

TEST(StateStore, InMemoryWhenPersistencyIsOff) {
  StateStore store("");
  store.set_selected_vm("usb-x", "vm1");
  EXPECT_EQ(store.state().selected_vms.at("usb-x"), "vm1");
}

// kill -9 at random moments while a process rewrites the file: it is always the old or the new version.
TEST(StateStore, AKillDuringAWriteLeavesTheOldOrTheNewVersion) {
  test::TempDir dir;
  std::string path = dir / "state";
  PersistentState a, b;
  a.selected_vms["usb-1050:0407:123"] = "vm1";
  for (int i = 0; i < 200; ++i) b.disconnected_devices.insert("usb-0781:5581:S" + std::to_string(i));  // a larger file
  const std::string va = StateStore::serialize(a), vb = StateStore::serialize(b);
  ASSERT_EQ(StateStore::write_atomically(path, va), "");
  std::mt19937 random(42);
  for (int round = 0; round < 100; ++round) {
    pid_t child = ::fork();
    if (child == 0) {
      for (unsigned n = 0;; ++n) StateStore::write_atomically(path, n % 2 ? va : vb);
    }
    ::usleep(std::uniform_int_distribution<int>(100, 3000)(random));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    auto content = read(path);
    ASSERT_TRUE(content == va || content == vb) << "round " << round << ": " << content.size() << " bytes";
    EXPECT_NO_THROW(StateStore::parse(content));
  }
}

TEST(StateStore, APlantedSymlinkNeverRedirectsTheWrite) {
  test::TempDir dir;
  std::string victim = dir / "victim";
  std::ofstream(victim) << "precious";
  // At the state file's own name: replaced, not followed.
  fs::create_symlink(victim, dir / "state");
  StateStore store(dir / "state");
  store.set_disconnected("usb-0781:5581:S1", true);
  EXPECT_FALSE(fs::is_symlink(dir / "state"));
  EXPECT_EQ(read(victim), "precious");
  EXPECT_EQ(fs::status(dir / "state").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  // At the old fixed temporary name: never used.
  fs::create_symlink(victim, dir / "state.tmp");
  store.set_disconnected("usb-0781:5581:S2", true);
  EXPECT_EQ(read(victim), "precious");
  // In the directory path: refused, and the change is not made.
  fs::create_directory(dir / "real");
  fs::create_directory_symlink(dir / "real", dir / "link");
  StateStore linked(dir / "link/state");
  EXPECT_THROW(linked.set_disconnected("usb-0781:5581:S1", true), StateError);
  EXPECT_TRUE(linked.state().disconnected_devices.empty());
  EXPECT_TRUE(fs::is_empty(dir / "real"));
  EXPECT_EQ(StateStore::write_atomically(dir / "link/state", "{}").find("a symbolic link in the path"), std::string(dir / "link").size() + 2);
}

TEST(StateStore, AFailedWriteChangesNothingAndSaysWhy) {
  test::TempDir dir;
  fs::create_directory(dir / "sub");
  StateStore store(dir / "sub/state");
  store.set_disconnected("usb-0781:5581:S1", true);
  fs::remove_all(dir / "sub");
  std::ofstream(dir / "sub") << "not a directory";  // every write fails now
  try {
    store.set_selected_vm("usb-0781:5581:S1", "vm2");
    FAIL() << "a failed write was accepted";
  } catch (const StateError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("Cannot save the state: " + dir / "sub", 0), 0u) << e.what();
  }
  EXPECT_TRUE(store.state().selected_vms.empty());
  EXPECT_EQ(store.state().disconnected_devices, std::set<std::string>{"usb-0781:5581:S1"});
}

TEST(StateStore, TemporaryFilesAWriterLeftBehindAreRemovedAtStart) {
  test::TempDir dir;
  std::ofstream(dir / ".state.tmp-1234-1-99") << "{";
  std::ofstream(dir / "other") << "kept";
  StateStore store(dir / "state");
  EXPECT_FALSE(fs::exists(dir / ".state.tmp-1234-1-99"));
  EXPECT_TRUE(fs::exists(dir / "other"));
}

TEST(Identity, SerialWhenThereIsOneElseThePort) {
  UsbDevice d;
  d.vid = "1050", d.pid = "0407", d.busnum = 3, d.devpath = "2.1";
  d.serial = "123";
  EXPECT_EQ(persistent_id(d), "usb-1050:0407:123");  // the reference's form
  EXPECT_TRUE(persistent_id_fallbacks(d).empty());
  d.serial.reset();
  EXPECT_EQ(persistent_id(d), "usb-1050:0407:port-3-2.1");  // identical devices stay apart
  EXPECT_EQ(persistent_id_fallbacks(d), std::vector<std::string>{"usb-1050:0407:None"});  // what the reference wrote
  d.vendor_name = "Yubico.com", d.product_name = "YubiKey";
  EXPECT_EQ(friendly_name(d), "1050:0407 (Yubico.com YubiKey)");
}

}  // namespace
}  // namespace vhp::state_store_test
