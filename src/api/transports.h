#pragma once
// Listening sockets for the three transports. Each accepted socket goes to ApiServer::admit.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>

#include "api/connection.h"
#include "policy/config.h"

namespace vhp {

struct Peer;
using Admit = std::function<void(Connection::Socket, const Peer&)>;

class Listener {
 public:
  virtual ~Listener() = default;
  virtual void close() = 0;
};

// Each throws std::runtime_error when it cannot listen.
// A Unix peer's groups, its primary one first, as the kernel knew them at connect (SO_PEERGROUPS):
// no user database lookup on the event loop.
std::vector<gid_t> peer_groups(int fd, const std::optional<ucred>& cred);

std::unique_ptr<Listener> listen_tcp(boost::asio::io_context& io, const ApiConfig& config, Admit admit);
// Creates the parent directory; replaces a stale socket file, refuses a live one; the socket is
// created owner-only, then chowned and chmodded as configured. Its file is removed on close().
std::unique_ptr<Listener> listen_unix(boost::asio::io_context& io, const ApiConfig& config, Admit admit);
std::unique_ptr<Listener> listen_vsock(boost::asio::io_context& io, const ApiConfig& config, Admit admit);

}  // namespace vhp
