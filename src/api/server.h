#pragma once
// The vhotplug API server: listeners for the configured transports, admission (client limit,
// VSOCK CID allow-list, Unix peer credentials), and fan-out of device events.
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>

#include "api/connection.h"
#include "api/protocol.h"
#include "manager/caller.h"
#include "manager/passthrough.h"
#include "manager/permissions.h"
#include "policy/config.h"

namespace vhp {

class Listener;

// Who is on the other end of an accepted socket.
struct Peer {
  std::string transport;          // "tcp", "unix", "vsock"
  std::string address;            // for logs: "127.0.0.1:50312", "cid 3 port 1025", socket path
  std::optional<unsigned> cid;    // vsock
  std::optional<ucred> cred;      // unix (SO_PEERCRED)
  std::vector<gid_t> groups;      // unix: primary first, then SO_PEERGROUPS
  std::optional<std::string> ip;  // tcp
  std::string describe() const { return caller().describe(); }
  Caller caller() const;  // what travels with each of its requests
};

class ApiServer {
 public:
  // `passthrough` runs attach and detach; without it they answer "failed".
  ApiServer(boost::asio::io_context& io, DeviceManager& manager, const ApiConfig& config, Passthrough* passthrough = nullptr);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Opens every configured transport. Throws std::runtime_error naming what failed.
  void start();
  // Closes listeners and clients, and removes the Unix socket file.
  void stop();

  // The accept path once a transport has a socket and knows its peer: admission, then service.
  // Every transport calls it; tests call it with an injected peer (there is no vsock loopback here).
  void admit(Connection::Socket socket, const Peer& peer);

  std::size_t client_count() const { return connections_.size(); }
  void set_status_source(Protocol::StatusSource source) { protocol_.set_status_source(std::move(source)); }

 private:
  std::optional<std::string> refusal(const Peer& peer) const;  // why the peer may not connect
  void log_refusal_once(const Peer& peer, const std::string& reason);
  void broadcast(const ManagerEvent& event);
  void warn_without_permissions() const;

  boost::asio::io_context& io_;
  ApiConfig config_;
  Protocol protocol_;
  DeviceManager& manager_;
  Passthrough* passthrough_;
  Subscription events_;
  std::set<unsigned> allowed_uids_, allowed_gids_;
  Permissions permissions_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;
  std::map<std::string, std::size_t> per_transport_;  // connections_ by transport
  std::set<std::string> refused_logged_;
};

}  // namespace vhp
