#include "api/server.h"

#include <algorithm>
#include <stdexcept>

#include <grp.h>
#include <pwd.h>

#include <boost/asio/ip/address.hpp>
#include <spdlog/spdlog.h>

#include "api/transports.h"
#include "api/wire.h"
#include "common/log_fields.h"

namespace vhp {

Caller Peer::caller() const {
  Caller c{transport, address, cid, std::nullopt, std::nullopt, std::nullopt, groups, ip};
  if (cred) c.uid = cred->uid, c.gid = cred->gid, c.pid = cred->pid;
  return c;
}

namespace {

unsigned resolve_user(const Principal& p) {
  if (p.id) return *p.id;
  if (passwd* pw = ::getpwnam(p.name.c_str())) return pw->pw_uid;
  throw std::runtime_error("general.api.allowedUsers: no user named '" + p.name + "'");
}

unsigned resolve_group(const Principal& p) {
  if (p.id) return *p.id;
  if (group* gr = ::getgrnam(p.name.c_str())) return gr->gr_gid;
  throw std::runtime_error("general.api.allowedGroups: no group named '" + p.name + "'");
}

boost::asio::awaitable<nlohmann::ordered_json> run_and_encode(Passthrough* passthrough, Command command, Caller caller) {
  co_return to_wire(co_await passthrough->run(command, caller));
}

}  // namespace

ApiServer::ApiServer(boost::asio::io_context& io, DeviceManager& manager, const ApiConfig& config, Passthrough* passthrough)
    : io_(io), config_(config), protocol_(manager), manager_(manager), passthrough_(passthrough) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::start() {
  for (const auto& u : config_.allowed_users) allowed_uids_.insert(resolve_user(u));
  for (const auto& g : config_.allowed_groups) allowed_gids_.insert(resolve_group(g));
  if (config_.permissions) permissions_ = Permissions(*config_.permissions);
  else warn_without_permissions();
  auto admit = [this](Connection::Socket socket, const Peer& peer) { this->admit(std::move(socket), peer); };
  if (config_.has_transport("unix")) listeners_.push_back(listen_unix(io_, config_, admit));
  if (config_.has_transport("tcp")) listeners_.push_back(listen_tcp(io_, config_, admit));
  if (config_.has_transport("vsock")) listeners_.push_back(listen_vsock(io_, config_, admit));
  events_ = manager_.subscribe([this](const ManagerEvent& event) { broadcast(event); });
}

void ApiServer::stop() {
  events_.reset();
  for (auto& l : listeners_) l->close();
  listeners_.clear();
  auto connections = std::move(connections_);
  connections_.clear();
  per_transport_.clear();
  for (auto& [raw, conn] : connections) conn->close();
}

std::optional<std::string> ApiServer::refusal(const Peer& peer) const {
  if (auto n = per_transport_.find(peer.transport); n != per_transport_.end() && n->second >= config_.max_clients)  // each transport its own pool
    return "Too many clients: the limit is " + std::to_string(config_.max_clients);
  if (peer.transport == "vsock" && !config_.allowed_cids.empty() &&
      (!peer.cid || std::ranges::find(config_.allowed_cids, *peer.cid) == config_.allowed_cids.end()))
    return "Access denied: VSOCK CID " + (peer.cid ? std::to_string(*peer.cid) : std::string("unknown")) +
           " is not allowed";
  if (peer.transport == "unix" && (!allowed_uids_.empty() || !allowed_gids_.empty())) {
    if (!peer.cred) return std::string("Access denied: peer credentials unavailable");
    if (allowed_uids_.contains(peer.cred->uid)) return std::nullopt;
    for (gid_t g : peer.groups)
      if (allowed_gids_.contains(g)) return std::nullopt;
    return "Access denied: uid " + std::to_string(peer.cred->uid) + " is not allowed";
  }
  return std::nullopt;
}

void ApiServer::log_refusal_once(const Peer& peer, const std::string& reason) {
  auto identity = peer.transport + (peer.cid ? " cid " + std::to_string(*peer.cid) : "") +
                  (peer.cred ? " uid " + std::to_string(peer.cred->uid) : "") + ": " + reason;
  auto fields = LogFields().caller(peer.caller().identity());
  if (refused_logged_.insert(identity).second) fields.warn("api: refused {}: {}", peer.describe(), reason);
  else fields.debug("api: refused {}: {}", peer.describe(), reason);
}

void ApiServer::admit(Connection::Socket socket, const Peer& peer) {
  ConnectionLimits limits{config_.max_line_bytes, config_.send_queue_bytes, std::chrono::milliseconds(config_.send_timeout_ms),
                          std::chrono::milliseconds(config_.first_request_timeout_ms)};
  if (auto reason = refusal(peer)) {
    log_refusal_once(peer, *reason);
    auto conn = std::make_shared<Connection>(std::move(socket), peer.describe(), protocol_, limits, nullptr);
    conn->refuse(Protocol::to_line(Protocol::failed(*reason)));
    return;
  }
  Session session{false, peer.caller(), permissions_.grant_for(peer.caller())};
  Connection::RunCommand run;
  if (passthrough_) run = [p = passthrough_, caller = peer.caller()](const Command& c) { return run_and_encode(p, c, caller); };
  auto pending = [this, grant = session.grant] {
    std::vector<nlohmann::ordered_json> events;
    for (const auto& selection : manager_.pending_selections())
      if (!grant || concerns(manager_, *grant, selection))
        if (auto event = to_wire(ManagerEvent(selection))) events.push_back(std::move(*event));
    return events;
  };
  auto on_closed = [this, transport = peer.transport](Connection* c) {
    if (connections_.erase(c)) --per_transport_[transport];
  };
  auto conn = std::make_shared<Connection>(std::move(socket), peer.describe(), protocol_, limits, std::move(on_closed),
                                           std::move(run), std::move(pending), std::move(session));
  connections_.emplace(conn.get(), conn);
  ++per_transport_[peer.transport];
  LogFields().caller(peer.caller().identity()).debug("api: client {} connected ({} now)", peer.describe(), connections_.size());
  conn->start();
}

void ApiServer::broadcast(const ManagerEvent& event) {
  auto message = to_wire(event);
  if (!message) return;
  auto line = std::make_shared<const std::string>(Protocol::to_line(*message));  // one buffer for every subscriber
  std::vector<std::shared_ptr<Connection>> targets;  // send() may close, and so erase, a connection
  for (const auto& [raw, conn] : connections_)
    if (conn->wants_notifications() && (!conn->grant() || concerns(manager_, *conn->grant(), event))) targets.push_back(conn);
  for (const auto& conn : targets) conn->send(line);
}

// Said once at start: who can reach the API when no permissions say who may do what.
void ApiServer::warn_without_permissions() const {
  std::vector<std::string> open;
  if (config_.has_transport("unix"))
    open.push_back("unix " + config_.unix_socket + (config_.allowed_users.empty() && config_.allowed_groups.empty()
                                                        ? " (every user its file mode lets in)"
                                                        : " (allowedUsers and allowedGroups)"));
  if (config_.has_transport("tcp")) {
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(config_.host, ec);
    bool local = !ec && address.is_loopback();
    open.push_back("tcp " + config_.host + ":" + std::to_string(config_.port) +
                   (local ? " (every local user and process)" : " (reachable by anyone on that network)"));
  }
  if (config_.has_transport("vsock"))
    open.push_back("vsock port " + std::to_string(config_.port) + (config_.allowed_cids.empty() ? " (every VM)" : " (allowedCids)"));
  for (const auto& t : open)
    spdlog::warn("api: {} is open without general.api.permissions: every caller admitted there may do everything", t);
}

}  // namespace vhp
