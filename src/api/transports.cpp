#include "api/transports.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fcntl.h>
#include <grp.h>
#include <linux/vm_sockets.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "api/server.h"
#include "common/accept_backoff.h"
#include "common/log_failure.h"

namespace vhp {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using generic = asio::generic::stream_protocol;

[[noreturn]] void fail(const std::string& what, int err) { throw std::runtime_error(what + ": " + std::strerror(err)); }

// Accepts on `Acceptor` until closed; each socket becomes a generic stream socket for admit().
template <class Acceptor, class MakePeer>
class AcceptLoop : public Listener {
 public:
  AcceptLoop(Acceptor acceptor, generic protocol, Admit admit, MakePeer make_peer, std::function<void()> on_close = {})
      : acceptor_(std::move(acceptor)), protocol_(protocol), admit_(std::move(admit)), make_peer_(std::move(make_peer)),
        on_close_(std::move(on_close)) {
    asio::co_spawn(acceptor_.get_executor(), run(), log_failure("api: an accept loop"));
  }
  ~AcceptLoop() override {
    *alive_ = false;
    close();
  }
  void close() override {
    if (!acceptor_.is_open()) return;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (on_close_) on_close_();
  }

 private:
  asio::awaitable<void> run() {
    auto alive = alive_;  // the loop may be destroyed while a completion is already queued
    while (*alive && acceptor_.is_open()) {
      boost::system::error_code ec;
      typename Acceptor::endpoint_type endpoint;
      auto socket = co_await acceptor_.async_accept(endpoint, asio::redirect_error(asio::use_awaitable, ec));
      if (!*alive || ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) {  // EMFILE and the like: pause on this frame's own timer, not a member's
        backoff_.failed(ec);
        asio::steady_timer pause(acceptor_.get_executor());
        pause.expires_after(AcceptBackoff::pause);
        boost::system::error_code ignored;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        if (!*alive) co_return;  // closed and destroyed during the pause
        continue;
      }
      backoff_.succeeded();
      Peer peer = make_peer_(socket, endpoint);
      int fd = socket.release();
      admit_(Connection::Socket(acceptor_.get_executor(), protocol_, fd), peer);
    }
  }

  Acceptor acceptor_;
  generic protocol_;
  Admit admit_;
  MakePeer make_peer_;
  std::function<void()> on_close_;
  AcceptBackoff backoff_{"api"};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

template <class Acceptor, class MakePeer>
std::unique_ptr<Listener> make_loop(Acceptor acceptor, generic protocol, Admit admit, MakePeer make_peer,
                                    std::function<void()> on_close = {}) {
  return std::make_unique<AcceptLoop<Acceptor, MakePeer>>(std::move(acceptor), protocol, std::move(admit),
                                                          std::move(make_peer), std::move(on_close));
}

// Is something accepting connections on this Unix socket path?
bool unix_socket_alive(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool alive = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return alive;
}

// Whoever may write the socket's directory may replace the socket with their own: refused when
// that is anyone but root or us (a sticky directory such as /tmp keeps others' hands off our file).
void check_directory(const std::string& path) {
  auto dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) throw std::runtime_error("cannot look at " + dir.string() + ": " + std::strerror(errno));
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    throw std::runtime_error(dir.string() + " belongs to uid " + std::to_string(st.st_uid) + ", who could replace the socket " + path);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
    throw std::runtime_error(dir.string() + " is writable by others, who could replace the socket " + path);
}

void prepare_unix_path(const std::string& path) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) throw std::runtime_error("cannot create the directory of " + path + ": " + ec.message());
  check_directory(path);
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
  if (unix_socket_alive(path)) throw std::runtime_error("another daemon is listening on " + path);
  spdlog::info("api: replacing stale socket {}", path);
  ::unlink(path.c_str());
}

// The owner the config names, set on the socket itself (never through a symbolic link). Its mode
// was right from the bind on (the umask), so until this runs only its creator can connect.
void apply_owner(const ApiConfig& c) {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  if (!c.unix_socket_user.empty()) {
    if (passwd* pw = ::getpwnam(c.unix_socket_user.c_str())) uid = pw->pw_uid;
    else spdlog::warn("api: unixSocketUser '{}' does not exist; socket stays owner-only", c.unix_socket_user);
  }
  if (!c.unix_socket_group.empty()) {
    if (group* gr = ::getgrnam(c.unix_socket_group.c_str())) gid = gr->gr_gid;
    else spdlog::warn("api: unixSocketGroup '{}' does not exist", c.unix_socket_group);
  }
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
      ::fchownat(AT_FDCWD, c.unix_socket.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
    fail("chown " + c.unix_socket, errno);
}

}  // namespace

std::vector<gid_t> peer_groups(int fd, const std::optional<ucred>& cred) {
  std::vector<gid_t> groups;
  if (cred) groups.push_back(cred->gid);
  std::vector<gid_t> more(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto len = static_cast<socklen_t>(more.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, more.data(), &len) == 0) {
      more.resize(len / sizeof(gid_t));
      groups.insert(groups.end(), more.begin(), more.end());
      break;
    }
    if (errno != ERANGE) break;
    more.resize(len / sizeof(gid_t));  // the kernel said how much it needs
  }
  return groups;
}

std::unique_ptr<Listener> listen_tcp(asio::io_context& io, const ApiConfig& c, Admit admit) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(c.host, ec);
  if (ec) throw std::runtime_error("general.api.host: '" + c.host + "' is not an IP address");
  asio::ip::tcp::endpoint endpoint(address, static_cast<unsigned short>(c.port));
  asio::ip::tcp::acceptor acceptor(io);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint, ec);
  if (ec) throw std::runtime_error("cannot listen on tcp " + c.host + ":" + std::to_string(c.port) + ": " + ec.message());
  acceptor.listen();
  spdlog::info("api: listening on tcp {}:{}", c.host, acceptor.local_endpoint().port());
  generic protocol(endpoint.protocol().family(), IPPROTO_TCP);
  return make_loop(std::move(acceptor), protocol, std::move(admit), [](auto&, const asio::ip::tcp::endpoint& remote) {
    Peer peer;
    peer.transport = "tcp", peer.address = remote.address().to_string() + ":" + std::to_string(remote.port());
    peer.ip = remote.address().to_string();
    return peer;
  });
}

std::unique_ptr<Listener> listen_unix(asio::io_context& io, const ApiConfig& c, Admit admit) {
  prepare_unix_path(c.unix_socket);
  asio::local::stream_protocol::acceptor acceptor(io);
  acceptor.open();
  boost::system::error_code ec;
  // Its mode from the first instant (no chmod after the socket is visible): 0600 unless the config says.
  mode_t mode = c.unix_socket_mode.value_or(0600) & 0777;
  mode_t old_mask = ::umask(~mode & 0777);
  acceptor.bind(asio::local::stream_protocol::endpoint(c.unix_socket), ec);
  ::umask(old_mask);
  if (ec) throw std::runtime_error("cannot bind " + c.unix_socket + ": " + ec.message());
  apply_owner(c);
  acceptor.listen();
  spdlog::info("api: listening on unix {}", c.unix_socket);
  std::string path = c.unix_socket;
  return make_loop(
      std::move(acceptor), generic(AF_UNIX, 0), std::move(admit),
      [path](asio::local::stream_protocol::socket& s, auto&) {
        Peer peer;
        peer.transport = "unix", peer.address = path;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) peer.cred = cred;
        peer.groups = peer_groups(s.native_handle(), peer.cred);
        return peer;
      },
      [path] { ::unlink(path.c_str()); });
}

std::unique_ptr<Listener> listen_vsock(asio::io_context& io, const ApiConfig& c, Admit admit) {
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = static_cast<unsigned>(c.port);
  generic protocol(AF_VSOCK, 0);
  asio::basic_socket_acceptor<generic> acceptor(io);
  boost::system::error_code ec;
  acceptor.open(protocol, ec);
  if (!ec) acceptor.bind(generic::endpoint(&addr, sizeof addr), ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on vsock port " + std::to_string(c.port) + ": " + ec.message());
  spdlog::info("api: listening on vsock port {}", c.port);
  return make_loop(std::move(acceptor), protocol, std::move(admit), [](auto&, const generic::endpoint& remote) {
    Peer peer;
    peer.transport = "vsock", peer.address = "";
    if (remote.size() >= sizeof(sockaddr_vm)) {
      const auto* vm = reinterpret_cast<const sockaddr_vm*>(remote.data());
      peer.cid = vm->svm_cid;
      peer.address = "port " + std::to_string(vm->svm_port);
    }
    return peer;
  });
}

}  // namespace vhp
