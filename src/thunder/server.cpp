#include "thunder/server.h"

#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include "common/accept_backoff.h"
#include "common/log_failure.h"
#include "common/log_fields.h"
#include "common/send_queue.h"
#include "device/block_devices.h"
#include "manager/caller.h"
#include "thunder/admission.h"
#include "thunder/metadata.h"

namespace vhp::thunder {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using ordered_json = nlohmann::ordered_json;

namespace {

constexpr auto kHttpTimeout = std::chrono::seconds(30);
constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr auto kWebSocketIdle = std::chrono::seconds(60);  // pinged meanwhile: a live client always answers
// What the kernel may hold for a WebSocket client beyond its send queue (Linux doubles it). Without
// it, loopback TCP grows a client's buffer to megabytes (tcp_wmem), and a client that stops reading
// is noticed only after answers that large.
constexpr int kKernelSendBuffer = 64 * 1024;

// "/jsonrpc" → "", "/jsonrpc/USBHub" → "USBHub", anything else → nullopt.
std::optional<std::string> jsonrpc_target(std::string_view target) {
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (target == "/jsonrpc" || target == "/jsonrpc/") return "";
  if (target.starts_with("/jsonrpc/")) return std::string(target.substr(9));
  return std::nullopt;
}

// The first subprotocol the client offers that Thunder speaks (ThunderJS always offers "notification").
std::string pick_subprotocol(std::string_view offered) {
  while (!offered.empty()) {
    auto comma = offered.find(',');
    auto item = offered.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "notification" || item == "json" || item == "jsonrpc" || item == "text") return std::string(item);
    if (comma == std::string_view::npos) break;
    offered.remove_prefix(comma + 1);
  }
  return "";
}

// A client's identity in the log fields, as an API caller's would be ("thunder 10.0.0.2").
std::string caller_identity(const asio::ip::address& peer) {
  Caller caller;
  caller.transport = "thunder";
  caller.address = peer.to_string();
  caller.ip = caller.address;
  return caller.identity();
}

// A refused request: one short plain-text answer, then the connection ends.
asio::awaitable<void> refuse_and_close(beast::tcp_stream& stream, http::status status, std::string text, unsigned version) {
  http::response<http::string_body> res{status, version};
  res.body() = std::move(text) + "\n";
  res.keep_alive(false);
  res.prepare_payload();
  boost::system::error_code ec;  // a peer that has gone needs no answer
  co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

// One WebSocket client: requests answered in order, notifications queued; a bounded send queue
// drops a client that stops reading without anyone else noticing.
class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(websocket::stream<beast::tcp_stream> ws, std::size_t queue_limit, std::string caller)
      : ws_(std::move(ws)), queue_(ws_.get_executor(), queue_limit), caller_(std::move(caller)) {}

  Channel channel;

  void send(std::string text) {
    if (closed_ || queue_.push(std::move(text))) return;
    LogFields().caller(caller_)
        .warn("thunder: a WebSocket client is not reading ({} bytes waiting); dropping it", queue_.bytes());
    close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    queue_.wake();
    beast::get_lowest_layer(ws_).close();
  }

  asio::awaitable<void> writer() {
    auto self = shared_from_this();
    while (!closed_) {
      if (queue_.empty()) {
        co_await queue_.wait();
        continue;
      }
      boost::system::error_code ec;
      co_await ws_.async_write(asio::buffer(queue_.front()), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        close();
        break;
      }
      queue_.pop();
    }
  }

  websocket::stream<beast::tcp_stream>& ws() { return ws_; }

 private:
  websocket::stream<beast::tcp_stream> ws_;
  SendQueue queue_;
  bool closed_ = false;
  std::string caller_;  // its identity, for the log fields
};

ThunderServer::ThunderServer(asio::io_context& io, DeviceManager& manager, const ThunderConfig& config)
    : io_(io), manager_(manager), config_(config),
      rpc_(config.callsign, Devices{[this] { return manager_.registry().usb_devices(); },
                                    [this](const UsbDevice& d) { return metadata(d); }}),
      acceptor_(io) {}

ThunderServer::~ThunderServer() {
  *alive_ = false;
  stop();
}

ordered_json ThunderServer::metadata(const UsbDevice& d) const {
  return device_metadata(d, manager_.policy().match_usb(d).has_value(), block_device_node(d.sys_path).value_or(d.device_node));
}

unsigned short ThunderServer::port() const {
  boost::system::error_code ec;
  auto endpoint = acceptor_.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void ThunderServer::start() {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(config_.host, ec);
  if (ec) throw std::runtime_error("general.thunder.host: '" + config_.host + "' is not an IP address");
  tcp::endpoint endpoint(address, static_cast<unsigned short>(config_.port));
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) throw std::runtime_error("thunder: cannot listen on " + config_.host + ":" + std::to_string(config_.port) + ": " + ec.message());
  acceptor_.listen();
  spdlog::info("thunder: {} JSON-RPC on http://{}:{}/jsonrpc (and WebSocket)", config_.callsign, config_.host, port());
  devices_ = manager_.registry().subscribe([this](const DeviceEvent& e) { on_device_event(e); });
  asio::co_spawn(io_, accept_loop(), log_failure("thunder: the accept loop"));
}

void ThunderServer::stop() {
  devices_.reset();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (const auto& s : sessions) s->close();
}

void ThunderServer::on_device_event(const DeviceEvent& event) {
  const auto* usb = std::get_if<UsbEvent>(&event);
  if (!usb || usb->action == DeviceAction::Changed) return;
  const char* name = usb->action == DeviceAction::Added ? "announce" : "revoke";
  auto device = metadata(usb->device);  // for revoke: the data captured when it arrived
  auto sessions = sessions_;
  for (const auto& session : sessions)
    for (const auto& [event_name, client_id] : session->channel.subscriptions)
      if (event_name == name)
        session->send(JsonRpc::notification(client_id, name, device).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

asio::awaitable<void> ThunderServer::accept_loop() {
  auto alive = alive_;
  AcceptBackoff backoff("thunder");
  while (acceptor_.is_open()) {
    boost::system::error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!*alive || !acceptor_.is_open()) co_return;
    if (ec) {  // EMFILE and the like: pause instead of spinning
      backoff.failed(ec);
      asio::steady_timer pause(io_);
      pause.expires_after(AcceptBackoff::pause);
      boost::system::error_code ignored;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      if (!*alive) co_return;
      continue;
    }
    backoff.succeeded();
    if (clients_ >= config_.max_clients) {
      boost::system::error_code ignored;
      if (idle_.empty()) {
        spdlog::warn("thunder: client limit {} reached; refusing a connection", config_.max_clients);
        socket.close(ignored);
        continue;
      }
      spdlog::debug("thunder: client limit {} reached; closing the longest idle connection", config_.max_clients);
      auto oldest = idle_.begin();
      oldest->second->close(ignored);  // its read fails: that connection ends
      idle_.erase(oldest);
    }
    asio::co_spawn(io_, serve(std::move(socket)), log_failure("thunder: a connection"));
  }
}

asio::awaitable<void> ThunderServer::serve(tcp::socket socket) {
  auto alive = alive_;
  ++clients_;
  struct Count {
    std::shared_ptr<bool> alive;
    std::size_t& n;
    ~Count() {
      if (*alive) --n;
    }
  } count{alive, clients_};
  boost::system::error_code ec;
  auto peer = socket.remote_endpoint(ec).address();
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  Channel http_channel;  // subscriptions made over plain HTTP die with the request
  http_channel.max_subscriptions = config_.max_registrations;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(config_.max_message_bytes);
    stream.expires_after(kHttpTimeout);
    auto idle = next_idle_++;
    idle_[idle] = &stream.socket();
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (!*alive) co_return;
    idle_.erase(idle);
    if (ec == http::error::body_limit) {
      co_await refuse_and_close(stream, http::status::payload_too_large, "Message too long", 11);
      co_return;
    }
    if (ec) co_return;  // closed, timed out, or not HTTP
    auto request = parser.release();
    auto target = request.target();
    auto implicit = jsonrpc_target(std::string_view(target.data(), target.size()));
    auto header = [&](http::field f) -> std::optional<std::string_view> {
      auto it = request.find(f);
      if (it == request.end()) return std::nullopt;
      return std::string_view(it->value().data(), it->value().size());
    };
    if (auto refusal = refuse({header(http::field::host), header(http::field::origin), header(http::field::authorization),
                               std::string_view(target.data(), target.size())},
                              config_)) {
      LogFields().caller(caller_identity(peer)).warn("thunder: refused a request from {}: {}", peer.to_string(), refusal->text);
      co_await refuse_and_close(stream, static_cast<http::status>(refusal->status), refusal->text, request.version());
      co_return;
    }

    if (websocket::is_upgrade(request)) {
      if (!implicit) co_return;
      if (websockets_[peer] >= config_.max_websockets_per_peer) {
        LogFields().caller(caller_identity(peer))
            .warn("thunder: {} has {} WebSocket sessions already; refusing another", peer.to_string(), websockets_[peer]);
        co_await refuse_and_close(stream, http::status::too_many_requests, "Too many sessions", request.version());
        co_return;
      }
      auto offered = request[http::field::sec_websocket_protocol];
      std::string protocol = pick_subprotocol(std::string_view(offered.data(), offered.size()));
      stream.expires_never();
      websocket::stream<beast::tcp_stream> ws(std::move(stream));
      auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
      timeouts.idle_timeout = kWebSocketIdle;
      timeouts.keep_alive_pings = true;
      ws.set_option(timeouts);
      ws.set_option(websocket::stream_base::decorator([protocol](websocket::response_type& res) {
        if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
      }));
      ws.read_message_max(config_.max_message_bytes);
      co_await ws.async_accept(request, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !*alive) co_return;
      boost::system::error_code unbounded;  // the option failing leaves the kernel's default, no worse
      beast::get_lowest_layer(ws).socket().set_option(asio::socket_base::send_buffer_size(kKernelSendBuffer), unbounded);
      auto session = std::make_shared<WsSession>(std::move(ws), config_.send_queue_bytes, caller_identity(peer));
      session->channel.implicit_callsign = *implicit;
      session->channel.max_subscriptions = config_.max_registrations;
      ++websockets_[peer];
      struct Release {  // its place among its peer's sessions
        std::shared_ptr<bool> alive;
        std::map<asio::ip::address, std::size_t>& counts;
        asio::ip::address peer;
        ~Release() {
          if (*alive && --counts[peer] == 0) counts.erase(peer);
        }
      } release{alive, websockets_, peer};
      sessions_.insert(session);
      asio::co_spawn(io_, session->writer(), log_failure("thunder: a WebSocket writer"));
      beast::flat_buffer frame;
      while (true) {
        co_await session->ws().async_read(frame, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !*alive) break;
        auto text = beast::buffers_to_string(frame.data());
        frame.consume(frame.size());
        auto reply = rpc_.handle(text, session->channel);
        if (reply.message) session->send(reply.message->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
      if (*alive) sessions_.erase(session);  // its subscriptions end with it
      session->close();
      co_return;
    }

    http::response<http::string_body> res;
    res.version(request.version());
    res.keep_alive(request.keep_alive());
    if (!implicit) {
      res.result(http::status::not_found);
      res.body() = "Not found\n";
    } else if (request.method() != http::verb::post || request.body().empty()) {
      res.result(http::status::method_not_allowed);
      res.body() = "JSON-RPC only supported via POST request with a body\n";
    } else {
      http_channel.implicit_callsign = *implicit;
      auto reply = rpc_.handle(request.body(), http_channel);
      http_channel.subscriptions.clear();
      if (!reply.message) {
        res.result(http::status::no_content);
      } else {
        res.result(reply.parse_error ? http::status::bad_request : http::status::ok);
        res.set(http::field::content_type, "application/json");
        res.body() = reply.message->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
    }
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !request.keep_alive() || !*alive) co_return;
  }
}

}  // namespace vhp::thunder
