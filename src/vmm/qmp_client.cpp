#include "vmm/qmp_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {
constexpr std::size_t kMaxMessageBytes = 16 * 1024 * 1024;
}

QmpClient::QmpClient(asio::any_io_executor ex) : socket_(std::move(ex)) {}

QmpClient::~QmpClient() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<json> QmpClient::read_message(Duration timeout) {
  // A watchdog closes the socket if the peer stays silent (a hung VM must not hang us).
  asio::steady_timer watchdog(socket_.get_executor());
  watchdog.expires_after(timeout);
  bool expired = false;
  watchdog.async_wait([this, &expired](boost::system::error_code ec) {
    if (ec) return;
    expired = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
  });
  boost::system::error_code ec;
  std::size_t n = co_await asio::async_read_until(socket_, asio::dynamic_buffer(input_, kMaxMessageBytes), '\n',
                                                  asio::redirect_error(asio::use_awaitable, ec));
  watchdog.cancel();
  if (expired) throw QmpError("Timeout", "no answer from QMP");
  if (ec) throw QmpError("Disconnected", "QMP connection failed: " + ec.message());
  auto message = json::parse(std::string_view(input_.data(), n), nullptr, false);
  input_.erase(0, n);
  if (message.is_discarded() || !message.is_object()) throw QmpError("Disconnected", "QMP sent something that is not JSON");
  co_return message;
}

asio::awaitable<void> QmpClient::connect(const std::string& socket_path, Duration timeout) {
  boost::system::error_code ec;
  co_await socket_.async_connect(asio::local::stream_protocol::endpoint(socket_path),
                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw QmpError("Disconnected", "cannot connect to " + socket_path + ": " + ec.message());
  auto greeting = co_await read_message(timeout);
  if (!greeting.contains("QMP")) throw QmpError("Disconnected", "no QMP greeting on " + socket_path);
  co_await asio::async_write(socket_, asio::buffer(std::string("{\"execute\":\"qmp_capabilities\"}\n")),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw QmpError("Disconnected", "QMP write failed: " + ec.message());
  while (true) {  // events cannot come before negotiation; anything else is the answer
    auto reply = co_await read_message(timeout);
    if (reply.contains("error"))
      throw QmpError(reply["error"].value("class", "GenericError"), reply["error"].value("desc", "capabilities refused"));
    if (reply.contains("return")) break;
  }
  connected_ = true;
  auto self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), [self] { return self->read_loop(); }, asio::detached);
}

asio::awaitable<json> QmpClient::execute(const std::string& command, json arguments, Duration timeout) {
  if (!connected_) throw QmpError("Disconnected", "QMP is not connected");
  auto self = shared_from_this();  // stay alive until the answer, even if the owner lets go
  std::uint64_t id = next_id_++;
  json request{{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = std::move(arguments);
  auto pending = std::make_shared<Pending>(socket_.get_executor());
  pending_[id] = pending;
  std::string line = request.dump() + "\n";
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(line), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    pending_.erase(id);
    throw QmpError("Disconnected", "QMP write failed: " + ec.message());
  }
  bool answered = co_await pending->done.wait(timeout);
  pending_.erase(id);
  if (!answered) throw QmpError("Timeout", command + " got no answer within " +
                                               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
  if (pending->reply.is_null()) throw QmpError("Disconnected", "QMP connection closed during " + command);
  if (auto error = pending->reply.find("error"); error != pending->reply.end())
    throw QmpError(error->value("class", "GenericError"), error->value("desc", "unknown QMP error"));
  co_return pending->reply.value("return", json());
}

std::shared_ptr<QmpClient::EventWaiter> QmpClient::expect_event(std::string name, std::function<bool(const json&)> matches) {
  auto waiter = std::make_shared<EventWaiter>(EventWaiter{std::move(name), std::move(matches), AsyncEvent(socket_.get_executor()), {}});
  waiters_.push_back(waiter);
  return waiter;
}

asio::awaitable<void> QmpClient::read_loop() {
  auto self = shared_from_this();
  while (connected_) {
    boost::system::error_code ec;
    std::size_t n = co_await asio::async_read_until(socket_, asio::dynamic_buffer(input_, kMaxMessageBytes), '\n',
                                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    auto message = json::parse(std::string_view(input_.data(), n), nullptr, false);
    input_.erase(0, n);
    if (message.is_object()) dispatch(message);
    else spdlog::warn("qmp: ignoring a message that is not a JSON object");
  }
  close();
}

void QmpClient::dispatch(const json& message) {
  if (auto event = message.find("event"); event != message.end() && event->is_string()) {
    auto data = message.value("data", json::object());
    std::erase_if(waiters_, [](const auto& w) { return w.expired(); });
    for (const auto& weak : waiters_) {
      auto w = weak.lock();
      if (w && !w->arrived.is_set() && w->name == *event && (!w->matches || w->matches(data))) {
        w->data = data;
        w->arrived.set();
      }
    }
    return;
  }
  auto id = message.find("id");
  if (id == message.end() || !id->is_number_unsigned()) return;  // not ours
  auto it = pending_.find(id->get<std::uint64_t>());
  if (it == pending_.end()) return;  // timed out already
  it->second->reply = message;
  it->second->done.set();
}

void QmpClient::fail_all() {
  for (auto& [id, pending] : pending_) pending->done.set();  // reply stays null: "closed"
}

void QmpClient::close() {
  bool was_connected = connected_;
  connected_ = false;
  boost::system::error_code ignored;
  socket_.close(ignored);
  fail_all();
  if (was_connected && on_closed) {
    auto callback = std::move(on_closed);
    callback();
  }
}

}  // namespace vhp
