#pragma once
// A test fixture: the API server in-process on its own loop thread (support/loop_thread.h), with
// the real manager and passthrough on a umockdev laptop host, spoken to over real sockets. VSOCK
// peers come in through the accept path over a socketpair (no VSOCK loopback on these machines).
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <sys/socket.h>

#include <gtest/gtest.h>

#include "api/client.h"
#include "api/server.h"
#include "device/udev_watcher.h"
#include "support/host_fixture.h"
#include "support/loop_thread.h"
#include "support/policy.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::test {

class ApiServerFixture : public testing::Test {
 protected:
  explicit ApiServerFixture(const char* policy = kAllToVm1) : manager{registry, make_policy(policy), store} {
    host = add_realistic_host(tb);
    config.transports = {"unix", "tcp"};
    config.unix_socket = dir / "run/api.sock";
    config.port = free_tcp_port();
  }
  ~ApiServerFixture() override { stop(); }

  void start() {
    watcher.start();
    passthrough.start();
    server.emplace(io, manager, config, &passthrough);
    server->start();
    loop.start();
  }
  void stop() {
    loop.stop([this] {
      if (server) server->stop();
      passthrough.stop();
      watcher.stop();
    });
  }
  template <class F>
  auto on_loop(F f) {
    return loop.run(std::move(f));
  }
  std::size_t clients() { return on_loop([this] { return server->client_count(); }); }

  std::unique_ptr<ApiClient> connect(const std::string& transport = "unix") {
    ClientOptions o;
    o.transport = transport, o.path = config.unix_socket, o.port = config.port, o.timeout_ms = 5000;
    return std::make_unique<ApiClient>(o);
  }
  // True when the server ends the stream; false when it stays silent (the client's read times out).
  static bool closed_by_server(ApiClient& c) {
    try {
      while (true) c.read_line();  // whatever was in flight, then end of stream
    } catch (const boost::system::system_error&) {
      return true;  // end of stream or reset
    } catch (const std::exception&) {
      return false;  // "no answer within …": still open
    }
  }

  // Admits one end of a socketpair as a VSOCK peer with `cid`; returns the other end.
  int admit_vsock_peer(unsigned cid) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    on_loop([&] {
      Connection::Socket socket(io, boost::asio::generic::stream_protocol(AF_UNIX, 0), fds[0]);
      Peer peer;
      peer.transport = "vsock", peer.address = "port 1025", peer.cid = cid;
      server->admit(std::move(socket), peer);
      return 0;
    });
    return fds[1];
  }

  Testbed tb;
  HostPaths host;
  TempDir dir;
  ApiConfig config;
  boost::asio::io_context io;
  DeviceRegistry registry;
  StateStore store{""};
  DeviceManager manager;
  VfioBinding vfio{io};
  Passthrough passthrough{io, manager, default_vm_factory(io), vfio, false};
  UdevWatcher watcher{io, registry};
  std::optional<ApiServer> server;
  LoopThread loop{io};
};

}  // namespace vhp::test
