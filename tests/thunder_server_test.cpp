// The Thunder facade in-process on its own loop thread, over real HTTP and WebSocket, on a umockdev host.
#include <gtest/gtest.h>

#include "device/udev_watcher.h"
#include "support/host_fixture.h"
#include "support/loop_thread.h"
#include "support/policy.h"
#include "support/sockets.h"
#include "support/thunder_client.h"
#include "thunder/server.h"

namespace vhp::thunder::thunder_server_test {
namespace {

using json = nlohmann::json;
using test::eventually;

class Thunder : public testing::Test {
 protected:
  Thunder() {
    host = test::add_realistic_host(tb);
    config.port = test::free_tcp_port();
  }
  ~Thunder() override { stop(); }

  void start() {
    watcher.start();
    server.emplace(io, manager, config);
    server->start();
    loop.start();
  }
  void stop() {
    loop.stop([this] {
      server->stop();
      watcher.stop();
    });
  }
  std::size_t clients() { return loop.run([this] { return server->client_count(); }); }
  json post(const std::string& body, const std::string& target = "/jsonrpc") {
    auto r = test::http("POST", config.port, target, body);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }
  std::string plug_key(int devnum, const std::string& name) {
    auto spec = test::security_key_spec(host.hub);
    spec.name = name, spec.devnum = devnum, spec.serial = "K" + std::to_string(devnum);
    return tb.plug(spec);
  }

  test::Testbed tb;
  test::HostPaths host;
  ThunderConfig config;
  boost::asio::io_context io;
  DeviceRegistry registry;
  StateStore store{""};
  DeviceManager manager{registry, test::make_policy(test::kAllToVm1), store};
  UdevWatcher watcher{io, registry};
  std::optional<ThunderServer> server;
  test::LoopThread loop{io};
};

TEST_F(Thunder, EveryMethodOverHttp) {
  start();
  auto devices = post(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"})")["result"];
  EXPECT_EQ(devices.size(), 9u);  // every USB device, hubs and root hubs included
  EXPECT_NE(std::find(devices.begin(), devices.end(), "001/003"), devices.end());
  EXPECT_EQ(post(R"({"jsonrpc":"2.0","id":2,"method":"USBHub.1.vendorDevices","params":{"vendorId":16700,"productId":8467}})")["result"],
            json::parse(R"(["001/007","001/008"])"));  // the two identical keyboards
  auto key = post(R"({"jsonrpc":"2.0","id":3,"method":"USBHub.1.device","params":{"deviceName":"001/003"}})")["result"];
  EXPECT_EQ(key.size(), 20u);
  EXPECT_EQ(key["parentId"], (1 << 8) | 2);  // the hub 1-2 is device 2 on bus 1
  EXPECT_EQ(key["deviceLevel"], 2);
  EXPECT_EQ(key["portNumber"], 1);
  EXPECT_EQ(key["busSpeed"], "SPEED_FULL");
  EXPECT_EQ(key["flags"], "FLAGS_SWITCHABLE");  // a rule passes it through
  EXPECT_EQ(key["productInfo1"]["manufacturer"], "Yubico");
  EXPECT_EQ(key["productInfo1"]["languageId"], 9);
  auto root = post(R"({"jsonrpc":"2.0","id":4,"method":"USBHub.device","params":{"deviceName":"002/001"}})")["result"];
  EXPECT_EQ(root["busSpeed"], "SPEED_SUPER");
  EXPECT_EQ(root["status"], "STATUS_SELF_POWERED");
  EXPECT_EQ(root["flags"], "FLAGS_AVAILABLE");  // hubs never pass through
  EXPECT_EQ(post(R"({"jsonrpc":"2.0","id":5,"method":"USBHub.1.device","params":{"deviceName":"009/009"}})")["error"],
            json::parse(R"({"code":-31022,"message":"ERROR_UNKNOWN_KEY"})"));
  EXPECT_EQ(post(R"({"jsonrpc":"2.0","id":6,"method":"1.devices"})", "/jsonrpc/USBHub")["result"].size(), 9u);  // implicit callsign
}

TEST_F(Thunder, HttpStatusCodesAsThunder) {
  start();
  EXPECT_EQ(test::http("GET", config.port, "/jsonrpc", "").status, 405);
  EXPECT_EQ(test::http("POST", config.port, "/jsonrpc", "").status, 405);
  EXPECT_EQ(test::http("POST", config.port, "/elsewhere", R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"})").status, 404);
  auto malformed = test::http("POST", config.port, "/jsonrpc", "{not json");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(json::parse(malformed.body)["error"]["code"], -31050);
  EXPECT_EQ(test::http("POST", config.port, "/jsonrpc", R"({"jsonrpc":"2.0","method":"USBHub.1.devices"})").status, 204);
  auto unknown = test::http("POST", config.port, "/jsonrpc", R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.nope"})");
  EXPECT_EQ(unknown.status, 200);  // JSON-RPC errors are HTTP 200
  EXPECT_EQ(json::parse(unknown.body)["error"]["code"], -32601);
}

TEST_F(Thunder, WebSocketSubprotocolsAndCalls) {
  start();
  test::WsClient thunderjs(config.port, "/jsonrpc", "notification");
  EXPECT_EQ(thunderjs.accepted_subprotocol(), "notification");
  EXPECT_EQ(test::WsClient(config.port, "/jsonrpc", "json").accepted_subprotocol(), "json");
  EXPECT_EQ(test::WsClient(config.port, "/jsonrpc/USBHub", "").accepted_subprotocol(), "");
  EXPECT_EQ(json::parse(thunderjs.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"})"))["result"].size(), 9u);
  EXPECT_EQ(json::parse(thunderjs.call(R"({"jsonrpc":"2.0","id":2,"method":"USBHub.1.device","params":{"deviceName":"001/004"}})"))["result"]["deviceClass"], 8);
}

TEST_F(Thunder, AnnounceAndRevokeReachEverySubscriber) {
  start();
  test::WsClient a(config.port), b(config.port), silent(config.port);
  EXPECT_EQ(a.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"client.USBHub.events"}})"),
            R"({"jsonrpc":"2.0","id":1,"result":null})");
  a.call(R"({"jsonrpc":"2.0","id":2,"method":"USBHub.1.register","params":{"event":"revoke","id":"client.USBHub.events"}})");
  b.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.register","params":{"event":"announce","id":"other"}})");
  EXPECT_EQ(json::parse(a.call(R"({"jsonrpc":"2.0","id":3,"method":"USBHub.1.register","params":{"event":"announce","id":"client.USBHub.events"}})"))["error"]["code"],
            -31048);

  auto key = plug_key(40, "1-2.2");
  auto announced = json::parse(a.read());
  EXPECT_EQ(announced["method"], "client.USBHub.events.announce");
  EXPECT_EQ(announced["params"]["device"]["deviceName"], "001/040");
  EXPECT_EQ(announced["params"]["device"].size(), 20u);
  EXPECT_EQ(json::parse(b.read())["method"], "other.announce");

  tb.unplug(key);
  auto revoked = json::parse(a.read());
  EXPECT_EQ(revoked["method"], "client.USBHub.events.revoke");
  EXPECT_EQ(revoked["params"]["device"], announced["params"]["device"]);  // captured when it arrived
  EXPECT_THROW(silent.read(300), std::exception);  // it registered for nothing
  EXPECT_THROW(b.read(300), std::exception);       // it registered for announce only
}

TEST_F(Thunder, AClientThatRegistersThenDisconnectsLeavesOthersServed) {
  start();
  {
    test::WsClient gone(config.port);
    gone.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"gone"}})");
  }
  ASSERT_TRUE(eventually([&] { return clients() == 0; }));
  test::WsClient stays(config.port);
  stays.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"stays"}})");
  plug_key(40, "1-2.2");
  EXPECT_EQ(json::parse(stays.read())["method"], "stays.announce");
}

TEST_F(Thunder, ASlowWebSocketClientIsDroppedWithoutAffectingOthers) {
  config.send_queue_bytes = 64 * 1024;
  start();
  // A small receive buffer: the answers it never reads fill the server's queue, not the kernel's
  // buffers (which loopback TCP grows to megabytes, more than a slow server answers in seconds).
  test::WsClient stuck(config.port, "/jsonrpc", "notification", {}, 4096), healthy(config.port);
  healthy.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"h"}})");
  // Requests whose answers it never reads: its queue overflows and it is dropped.
  ASSERT_EQ(clients(), 2u);
  bool dropped = false;
  for (int i = 0; i < 20000 && !dropped; ++i) {
    try {
      stuck.send(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device","params":{"deviceName":"001/003"}})");
    } catch (const std::exception&) {
      dropped = true;  // the server closed it
    }
    if (i % 100 == 99) dropped = dropped || clients() == 1;
  }
  ASSERT_TRUE(eventually([&] { return clients() == 1; }));  // the stuck one is gone, the healthy one stays
  plug_key(40, "1-2.2");
  EXPECT_EQ(json::parse(healthy.read())["method"], "h.announce");
}

TEST_F(Thunder, AClientLimit) {
  config.max_clients = 1;
  start();
  test::WsClient first(config.port);
  EXPECT_THROW(test::WsClient second(config.port), std::exception);
  EXPECT_EQ(json::parse(first.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"})"))["result"].size(), 9u);
}

// ---- who may call (a web page in the host's browser must not) --------------------------------

constexpr const char* kDevices = R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"})";

TEST_F(Thunder, ACrossOriginPageIsRefusedOverWebSocketAndPost) {
  config.allowed_origins = {"https://app.example"};
  start();
  auto evil = test::http("POST", config.port, "/jsonrpc", kDevices, "Host: localhost\r\nOrigin: https://evil.example\r\nConnection: close\r\n");
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(evil.body, "Origin https://evil.example is not allowed\n");
  EXPECT_THROW(test::WsClient(config.port, "/jsonrpc", "notification", {{"Origin", "https://evil.example"}}), std::exception);
  test::WsClient app(config.port, "/jsonrpc", "notification", {{"Origin", "https://app.example"}});
  EXPECT_EQ(json::parse(app.call(kDevices))["result"].size(), 9u);
  auto native = test::http("POST", config.port, "/jsonrpc", kDevices);  // no Origin: not a browser page
  EXPECT_EQ(native.status, 200);
}

// An Origin is the caller's text: a terminal's C1 control (CSI, 0x9b) or invalid UTF-8 reaches
// neither the log line nor the answer as such.
TEST_F(Thunder, ARefusedOriginIsEscaped) {
  config.allowed_origins = {"https://app.example"};
  start();
  auto evil = test::http("POST", config.port, "/jsonrpc", kDevices,
                         "Host: localhost\r\nOrigin: https://\xc2\x9b" "2J\xff.example\r\nConnection: close\r\n");
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(evil.body, "Origin https://\\xc2\\x9b2J\\xff.example is not allowed\n");
}

// DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends its own Host.
TEST_F(Thunder, ARebindingHostIsRefused) {
  config.allowed_hosts = {"stb.local"};
  start();
  auto with_host = [&](const std::string& host) {
    return test::http("POST", config.port, "/jsonrpc", kDevices, "Host: " + host + "\r\nConnection: close\r\n").status;
  };
  EXPECT_EQ(with_host("evil.example:" + std::to_string(config.port)), 403);
  EXPECT_EQ(with_host("127.0.0.1:" + std::to_string(config.port)), 200);
  EXPECT_EQ(with_host("[::1]:" + std::to_string(config.port)), 200);
  EXPECT_EQ(with_host("LOCALHOST"), 200);
  EXPECT_EQ(with_host("stb.local:" + std::to_string(config.port)), 200);
  EXPECT_THROW(test::WsClient(config.port, "/jsonrpc", "notification", {{"Host", "evil.example"}}), std::exception);
}

// As Thunder clients send it: the `token` query parameter on the WebSocket, a bearer on HTTP.
TEST_F(Thunder, TheTokenIsRequiredWhenSet) {
  config.token = "s3cret";
  start();
  EXPECT_EQ(test::http("POST", config.port, "/jsonrpc", kDevices).status, 401);
  EXPECT_EQ(test::http("POST", config.port, "/jsonrpc", kDevices, "Host: localhost\r\nAuthorization: Bearer s3cre\r\nConnection: close\r\n").status, 401);
  EXPECT_EQ(test::http("POST", config.port, "/jsonrpc", kDevices, "Host: localhost\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n").status, 200);
  EXPECT_THROW(test::WsClient(config.port, "/jsonrpc"), std::exception);
  EXPECT_THROW(test::WsClient(config.port, "/jsonrpc?token=wrong"), std::exception);
  test::WsClient client(config.port, "/jsonrpc?token=s3cret");
  EXPECT_EQ(json::parse(client.call(kDevices))["result"].size(), 9u);
}

// ---- bounds --------------------------------------------------------------------------------------

TEST_F(Thunder, RegistrationsOnOneConnectionAreBounded) {
  start();
  test::WsClient client(config.port);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 1000; ++i) {
    auto reply = json::parse(client.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"c)" +
                                         std::to_string(i) + R"("}})"));
    if (reply.contains("result")) ++accepted;
    else if (reply["error"]["code"] == -31048) ++refused;
  }
  EXPECT_EQ(accepted, 64);
  EXPECT_EQ(refused, 1000 - 64);
  EXPECT_EQ(json::parse(client.call(kDevices))["result"].size(), 9u);  // the connection is still served
}

// Connections that never ask anything make room for one that does.
TEST_F(Thunder, IdleSocketsDoNotLockOutARealClient) {
  start();
  std::vector<test::Fd> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(test::tcp_connect(config.port));
  ASSERT_TRUE(eventually([&] { return clients() >= 64; }));
  auto r = test::http("POST", config.port, "/jsonrpc", kDevices);
  EXPECT_EQ(r.status, 200);
  test::WsClient client(config.port);
  EXPECT_EQ(json::parse(client.call(kDevices))["result"].size(), 9u);
}

TEST_F(Thunder, WebSocketsPerPeerAreBounded) {
  config.max_websockets_per_peer = 3;
  start();
  std::vector<std::unique_ptr<test::WsClient>> sessions;
  for (int i = 0; i < 3; ++i) sessions.push_back(std::make_unique<test::WsClient>(config.port));
  EXPECT_THROW(test::WsClient(config.port), std::exception);
  sessions.pop_back();
  EXPECT_TRUE(eventually([&] {
    try {
      test::WsClient again(config.port);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }));
}

// A device's strings are the device's choice: bytes that are not UTF-8 reach subscribers escaped.
TEST_F(Thunder, ADeviceStringThatIsNotUtf8IsEscapedInTheAnnounce) {
  start();
  test::WsClient client(config.port);
  client.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"c"}})");
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40, spec.serial = "K40", spec.product = "Key\xff\xfe";
  tb.plug(spec);
  auto announced = json::parse(client.read());
  EXPECT_EQ(announced["params"]["device"]["productInfo1"]["product"], "Key\xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
}  // namespace vhp::thunder::thunder_server_test
