// The API server in-process, on its own loop thread, spoken to over real sockets.
#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "api/client.h"
#include "api/server.h"
#include "device/udev_watcher.h"
#include "support/host_fixture.h"
#include "support/api_server_fixture.h"
#include "support/policy.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::api_server_test {
namespace {

using json = nlohmann::json;
using test::eventually;

class ApiServerTest : public test::ApiServerFixture {};

TEST_F(ApiServerTest, SameAnswersOverUnixAndTcp) {
  start();
  auto over_unix = connect("unix")->request({{"action", "usb_list"}});
  auto over_tcp = connect("tcp")->request({{"action", "usb_list"}});
  EXPECT_EQ(over_unix, over_tcp);
  EXPECT_EQ(over_unix["result"], "ok");
  EXPECT_EQ(over_unix["usb_devices"].size(), 6u);  // the hubs are not listed
}

TEST_F(ApiServerTest, SeveralRequestsInOneWriteAreAnsweredInOrder) {
  start();
  auto c = connect();
  c->send_raw("{\"action\":\"pci_list\"}\n{\"action\":\"nope\"}\n{\"action\":\"usb_list\"}\n");
  EXPECT_TRUE(json::parse(c->read_line()).contains("pci_devices"));
  EXPECT_EQ(json::parse(c->read_line())["error"], "Unknown message: nope");
  EXPECT_TRUE(json::parse(c->read_line()).contains("usb_devices"));
}

TEST_F(ApiServerTest, AMessageSplitAcrossWritesInsideAUtf8CharacterIsReassembled) {
  start();
  auto c = connect();
  std::string line = "{\"action\":\"usb_list\",\"tag\":\"caf\xc3\xa9\"}\n";  // é is c3 a9
  auto split = line.find('\xc3') + 1;
  c->send_raw(line.substr(0, split));
  // A round trip on another connection: the loop reads what is ready in order, so the first half,
  // sent before, has been read (alone) by the time this answer comes back.
  EXPECT_EQ(connect()->request({{"action", "usb_list"}, {"tag", "none"}})["result"], "ok");
  c->send_raw(line.substr(split));
  EXPECT_EQ(c->read_line(), R"({"result":"ok","usb_devices":[]})");
}

TEST_F(ApiServerTest, BadInputIsAnsweredAndTheConnectionStaysUsable) {
  start();
  auto c = connect();
  for (const char* bad : {"not json", "[1,2]", "\"text\"", "{}", "{\"action\":7}", "{\"action\":\"usb_list\",\"tag\":1}",
                          "{\"action\":\"\xff\"}", "\xc3\x28", ""}) {
    c->send_raw(std::string(bad) + "\n");
    auto response = json::parse(c->read_line());
    EXPECT_EQ(response["result"], "failed") << bad;
    EXPECT_FALSE(response["error"].get<std::string>().empty()) << bad;
  }
  EXPECT_EQ(c->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(ApiServerTest, ALineAtTheLimitIsServedAndOneOverIsAnsweredAndSkipped) {
  config.max_line_bytes = 4096;
  start();
  auto c = connect();
  std::string request = "{\"action\":\"usb_list\",\"tag\":\"";
  request += std::string(4096 - request.size() - 2, 'x') + "\"}";
  ASSERT_EQ(request.size(), 4096u);
  c->send_raw(request + "\n");
  EXPECT_EQ(c->read_line(), R"({"result":"ok","usb_devices":[]})");

  c->send_raw(std::string(5000, 'x'));  // no newline in sight: answered at once
  EXPECT_EQ(c->read_line(), R"({"result":"failed","error":"Message too long: the limit is 4096 bytes per line"})");
  // The rest of that line, however long, is skipped up to its newline; the next request is served.
  c->send_raw(std::string(20000, 'y') + "\n{\"action\":\"usb_list\",\"tag\":\"none\"}\n");
  EXPECT_EQ(c->read_line(), R"({"result":"ok","usb_devices":[]})");
  EXPECT_EQ(c->request({{"action", "usb_list"}, {"tag", "none"}})["result"], "ok");
  EXPECT_EQ(clients(), 1u);
}

TEST_F(ApiServerTest, ClientLimitRefusesWithAReasonAndFreesSlots) {
  config.max_clients = 2;
  start();
  auto a = connect(), b = connect();
  EXPECT_EQ(a->request({{"action", "usb_list"}})["result"], "ok");
  EXPECT_EQ(b->request({{"action", "usb_list"}})["result"], "ok");
  auto c = connect();
  EXPECT_EQ(c->read_line(), R"({"result":"failed","error":"Too many clients: the limit is 2"})");
  EXPECT_TRUE(closed_by_server(*c));
  a.reset();  // frees a slot
  ASSERT_TRUE(eventually([&] { return clients() == 1; }));
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(ApiServerTest, EachTransportHasItsOwnPool) {
  config.max_clients = 2;
  start();
  auto a = connect("tcp"), b = connect("tcp");
  EXPECT_EQ(a->request({{"action", "usb_list"}})["result"], "ok");
  EXPECT_EQ(b->request({{"action", "usb_list"}})["result"], "ok");
  auto refused = connect("tcp");
  EXPECT_EQ(refused->read_line(), R"({"result":"failed","error":"Too many clients: the limit is 2"})");
  EXPECT_EQ(connect("unix")->request({{"action", "usb_list"}})["result"], "ok");  // TCP cannot lock Unix clients out
}

TEST_F(ApiServerTest, AConnectionThatNeverSendsARequestIsClosedOthersStay) {
  config.first_request_timeout_ms = 300;
  start();
  auto subscriber = connect();
  ASSERT_EQ(subscriber->request({{"action", "enable_notifications"}})["result"], "ok");
  auto silent = connect();
  silent->send_raw("{\"action\":");  // half a request, then nothing
  EXPECT_TRUE(closed_by_server(*silent));  // it outlived its timeout…
  EXPECT_EQ(subscriber->request({{"action", "usb_list"}})["result"], "ok");  // …and so did the subscriber, which stays
  EXPECT_TRUE(eventually([&] { return clients() == 1; }));
}

TEST_F(ApiServerTest, AClientThatStopsReadingIsDroppedAndNobodyElseNotices) {
  config.send_queue_bytes = 64 * 1024;
  start();
  auto listener = connect();
  ASSERT_EQ(listener->request({{"action", "enable_notifications"}})["result"], "ok");
  auto stuck = connect();
  std::string burst;
  for (int i = 0; i < 4000; ++i) burst += "{\"action\":\"usb_list\"}\n";  // ~8 MB of answers it never reads
  try {
    stuck->send_raw(burst);
  } catch (const boost::system::system_error&) {
    // the server dropped it before it had even finished writing: that is the drop itself
  }
  ASSERT_TRUE(eventually([&] { return clients() == 1; }));
  // The other client is served and still hears events.
  EXPECT_EQ(connect()->request({{"action", "pci_list"}})["result"], "ok");
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40;
  tb.add_usb(spec);
  auto event = json::parse(listener->read_line());
  EXPECT_EQ(event["event"], "usb_connected");
  EXPECT_EQ(event["usb_device"]["device_node"], "/dev/bus/usb/001/040");
}

// Answers wait in the queue while the client is not reading, and go out several to a write once it
// does: each must arrive whole, once, and in the order asked.
TEST_F(ApiServerTest, AClientThatFallsBehindGetsEveryAnswerWholeAndInOrder) {
  start();
  auto client = connect();
  std::string burst;
  for (int i = 0; i < 600; ++i) burst += i % 2 ? "{\"action\":\"bogus " + std::to_string(i) + "\"}\n" : "{\"action\":\"usb_list\"}\n";
  client->send_raw(burst);  // about 1 MB of answers: more than the socket holds, so the rest queues
  for (int i = 0; i < 600; ++i) {
    auto answer = json::parse(client->read_line());
    if (i % 2) ASSERT_EQ(answer["error"], "Unknown message: bogus " + std::to_string(i)) << i;
    else ASSERT_EQ(answer["result"], "ok") << i;
  }
  EXPECT_EQ(client->request({{"action", "bogus end"}})["error"], "Unknown message: bogus end");  // nothing more was waiting
}

TEST_F(ApiServerTest, AWriteThatStallsPastTheSendTimeoutDropsTheClient) {
  config.send_queue_bytes = 64 << 20;  // the queue would hold it all: only the timeout can act
  config.send_timeout_ms = 300;
  start();
  auto stuck = connect();
  std::string burst;
  for (int i = 0; i < 4000; ++i) burst += "{\"action\":\"usb_list\"}\n";
  stuck->send_raw(burst);
  EXPECT_TRUE(eventually([&] { return clients() == 0; }));
}

TEST_F(ApiServerTest, AClientThatDisconnectsMidResponseHarmsNothing) {
  start();
  for (int i = 0; i < 20; ++i) {
    auto c = connect();
    std::string burst;
    for (int j = 0; j < 200; ++j) burst += "{\"action\":\"usb_list\"}\n";
    c->send_raw(burst);
    c.reset();  // gone while answers are being written
  }
  EXPECT_TRUE(eventually([&] { return clients() == 0; }));
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(ApiServerTest, EventsGoOnlyToConnectionsThatEnabledThem) {
  start();
  auto listener = connect(), quiet = connect();
  ASSERT_EQ(listener->request({{"action", "enable_notifications"}}), json::parse(R"({"result":"ok"})"));
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40, spec.serial = "77";
  auto path = tb.plug(spec);
  std::string connected =
      R"({"event":"usb_connected","usb_device":{"device_node":"/dev/bus/usb/001/040","vid":"1050","pid":"0407",)"
      R"("vendor_name":"Yubico.com","product_name":"Yubikey 4/5 OTP+U2F+CCID","interfaces":":030101:030000:0b0000:",)"
      R"("device_class":0,"device_subclass":0,"device_protocol":0,"busnum":1,"devnum":40,"portnum":2,"serial":"77",)"
      R"("sys_name":"1-2.2"}})";
  EXPECT_EQ(listener->read_line(), connected);
  tb.unplug(path);
  std::string disconnected = connected;
  disconnected.replace(disconnected.find("usb_connected"), 13, "usb_disconnected");
  EXPECT_EQ(listener->read_line(), disconnected);
  // The quiet connection got nothing: its next line is the answer to its request.
  EXPECT_EQ(quiet->request({{"action", "enable_notifications"}}), json::parse(R"({"result":"ok"})"));
}

TEST_F(ApiServerTest, PciEventsToo) {
  start();
  auto listener = connect();
  listener->request({{"action", "enable_notifications"}});
  auto path = tb.add_pci({.address = "0000:05:00.0", .vendor = "10ec", .device = "8168", .class_code = 0x020000});
  EXPECT_EQ(json::parse(listener->read_line())["event"], "pci_connected");
  tb.unplug(path);
  auto event = json::parse(listener->read_line());
  EXPECT_EQ(event["event"], "pci_disconnected");
  EXPECT_EQ(event["pci_device"]["address"], "0000:05:00.0");
}

// VSOCK cannot loop back on these machines: the accept path gets an injected peer over a socketpair.
class VsockAdmission : public ApiServerTest {
 protected:
  // The peer on `fd` is served: a request gets its answer.
  static void expect_served(int fd) {
    ASSERT_EQ(::write(fd, "{\"action\":\"enable_notifications\"}\n", 34), 34);
    EXPECT_EQ(test::read_line_fd(fd), R"({"result":"ok"})");
    ::close(fd);
  }
};

TEST_F(VsockAdmission, ACidOutsideAllowedCidsIsToldWhyAndClosed) {
  config.allowed_cids = {3, 4};
  start();
  int fd = admit_vsock_peer(7);
  EXPECT_EQ(test::read_line_fd(fd), R"({"result":"failed","error":"Access denied: VSOCK CID 7 is not allowed"})");
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);  // closed
  ::close(fd);
}

TEST_F(VsockAdmission, AnAllowedCidIsServed) {
  config.allowed_cids = {3, 4};
  start();
  expect_served(admit_vsock_peer(3));
}

TEST_F(VsockAdmission, AnEmptyListAllowsEveryCid) {
  start();
  expect_served(admit_vsock_peer(99));
}

TEST_F(ApiServerTest, TheVsockListenerBinds) {
  int probe = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no AF_VSOCK on this kernel";
  ::close(probe);
  config.transports = {"vsock"};
  config.port = 40000 + ::getpid() % 20000;
  EXPECT_NO_THROW(start());
}

// The real CID extraction (the listener's own peer address), where the kernel has a VSOCK loopback
// (vsock_loopback): a client on CID 1 is seen as CID 1, and refused when only CID 3 may connect.
TEST_F(ApiServerTest, TheRealVsockPathTellsThePeersCid) {
  int probe = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no AF_VSOCK on this kernel";
  ::close(probe);
  config.transports = {"vsock"};
  config.port = 40000 + ::getpid() % 20000;
  config.allowed_cids = {3};
  start();
  ClientOptions o;
  o.transport = "vsock", o.cid = 1, o.port = config.port, o.timeout_ms = 3000;  // VMADDR_CID_LOCAL
  std::unique_ptr<ApiClient> c;
  try {
    c = std::make_unique<ApiClient>(o);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no VSOCK loopback here (" << e.what() << "): the CID path is covered through admit() only";
  }
  EXPECT_EQ(c->read_line(), R"({"result":"failed","error":"Access denied: VSOCK CID 1 is not allowed"})");
}

class UnixAccess : public ApiServerTest {};

TEST_F(UnixAccess, APeerWhoseUidIsNotAllowedIsToldWhyAndClosed) {
  config.allowed_users = {{"", ::getuid() + 1}};
  start();
  auto c = connect();
  EXPECT_EQ(c->read_line(), R"({"result":"failed","error":"Access denied: uid )" + std::to_string(::getuid()) + R"( is not allowed"})");
  EXPECT_TRUE(closed_by_server(*c));
  EXPECT_EQ(connect("tcp")->request({{"action", "usb_list"}})["result"], "ok");  // TCP has no peer credentials
}

TEST_F(UnixAccess, AllowedByUid) {
  config.allowed_users = {{"", ::getuid()}};
  start();
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(UnixAccess, AllowedByPrimaryGroup) {
  config.allowed_users = {{"", ::getuid() + 1}};
  config.allowed_groups = {{"", ::getgid()}};
  start();
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(UnixAccess, AnUnknownUserNameIsAStartError) {
  config.allowed_users = {{"no-such-user-vhp", std::nullopt}};
  server.emplace(io, manager, config, &passthrough);
  EXPECT_THROW(server->start(), std::runtime_error);
}

class UnixSocketFile : public ApiServerTest {
 protected:
  unsigned mode() {
    struct stat st{};
    ::stat(config.unix_socket.c_str(), &st);
    return st.st_mode & 07777;
  }
  // Leaves a socket file behind, as a crashed daemon does; listening when `live`.
  int leave_socket(bool live) {
    std::filesystem::create_directories(std::filesystem::path(config.unix_socket).parent_path());
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, config.unix_socket.c_str(), sizeof addr.sun_path - 1);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (live) ::listen(fd, 1);
    else ::close(fd);
    return fd;
  }
};

TEST_F(UnixSocketFile, CreatedOwnerOnlyInANewDirectoryAndRemovedOnStop) {
  config.unix_socket = dir / "a/b/api.sock";
  start();
  EXPECT_EQ(mode(), 0600u);
  stop();
  EXPECT_FALSE(std::filesystem::exists(config.unix_socket));
}

TEST_F(UnixSocketFile, ModeFromTheConfig) {
  config.unix_socket_mode = 0660;
  start();
  EXPECT_EQ(mode(), 0660u);
}

// The group set on the socket itself; the mode is the bind's (the umask), never a later chmod.
TEST_F(UnixSocketFile, GroupAndModeFromTheConfig) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  config.unix_socket_group = "nogroup";
  config.unix_socket_mode = 0660;
  start();
  struct stat st{};
  ASSERT_EQ(::lstat(config.unix_socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

// Whoever may write the directory may swap the socket for theirs: refused, saying why; a
// sticky directory (as /tmp) is not such a place.
TEST_F(UnixSocketFile, ADirectoryOthersMayWriteIsRefused) {
  auto open_dir = dir / "open";
  std::filesystem::create_directories(open_dir);
  ::chmod(open_dir.c_str(), 0777);
  config.unix_socket = open_dir + "/api.sock";
  server.emplace(io, manager, config, &passthrough);
  try {
    server->start();
    FAIL() << "listened in a directory anyone may write";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), open_dir + " is writable by others, who could replace the socket " + config.unix_socket);
  }
  EXPECT_FALSE(std::filesystem::exists(config.unix_socket));
  ::chmod(open_dir.c_str(), 01777);
  server.emplace(io, manager, config, &passthrough);
  EXPECT_NO_THROW(server->start());
}

TEST_F(UnixSocketFile, AStaleSocketIsReplaced) {
  leave_socket(false);
  start();
  EXPECT_EQ(connect()->request({{"action", "usb_list"}})["result"], "ok");
}

TEST_F(UnixSocketFile, ALiveSocketIsAnError) {
  int other = leave_socket(true);
  server.emplace(io, manager, config, &passthrough);
  try {
    server->start();
    FAIL() << "started over a live socket";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "another daemon is listening on " + config.unix_socket);
  }
  ::close(other);
}

TEST_F(UnixSocketFile, SomethingElseAtThePathIsAnError) {
  std::filesystem::create_directories(std::filesystem::path(config.unix_socket).parent_path());
  std::ofstream(config.unix_socket) << "not a socket";
  server.emplace(io, manager, config, &passthrough);
  EXPECT_THROW(server->start(), std::runtime_error);
  EXPECT_EQ(test::read_file(config.unix_socket), "not a socket");  // left alone
}

}  // namespace
}  // namespace vhp::api_server_test
