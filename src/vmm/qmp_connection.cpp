#include "vmm/qmp_connection.h"

#include <algorithm>

#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

std::string millis(QmpConnection::Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

// {"class":…,"desc":…} as QmpError; anything else shaped as an error is a protocol error.
QmpError error_of(const json& error) {
  if (!error.is_object()) return QmpError("Protocol", "QMP sent an error that is not an object");
  auto cls = error.find("class");
  auto desc = error.find("desc");
  return QmpError(cls != error.end() && cls->is_string() ? cls->get<std::string>() : "GenericError",
                  desc != error.end() && desc->is_string() ? desc->get<std::string>() : "unknown QMP error");
}

// {"version": {"qemu": {"major": 7, "minor": 2, …}}} → {7, 2}; {0, 0} for anything else.
std::pair<int, int> greeting_version(const json& qmp) {
  auto number = [](const json& object, const char* key) -> std::optional<int> {
    auto it = object.find(key);
    if (it == object.end() || !it->is_number_unsigned() || it->get<std::uint64_t>() > 1000) return std::nullopt;
    return static_cast<int>(it->get<std::uint64_t>());
  };
  auto version = qmp.find("version");
  if (version == qmp.end() || !version->is_object()) return {0, 0};
  auto qemu = version->find("qemu");
  if (qemu == version->end() || !qemu->is_object()) return {0, 0};
  auto major = number(*qemu, "major"), minor = number(*qemu, "minor");
  if (!major || !minor) return {0, 0};
  return {*major, *minor};
}

}  // namespace

QmpConnection::QmpConnection(asio::any_io_executor ex) : socket_(ex), deadline_(ex) {}

QmpConnection::~QmpConnection() { close(); }

void QmpConnection::close() {
  open_ = false;
  ++generation_;
  deadline_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);
}

void QmpConnection::arm(Duration timeout) {
  timed_out_ = false;
  auto generation = ++generation_;
  deadline_.expires_after(timeout);
  std::weak_ptr<QmpConnection> weak = shared_from_this();
  deadline_.async_wait([weak, generation](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->generation_ != generation) return;  // finished (or closed) before the deadline
    self->timed_out_ = true;
    boost::system::error_code ignored;
    self->socket_.cancel(ignored);
  });
}

void QmpConnection::disarm() {
  ++generation_;
  deadline_.cancel();
}

asio::awaitable<void> QmpConnection::write_line(const std::string& line, Duration timeout) {
  if (!socket_.is_open()) throw QmpError("Disconnected", "QMP connection is closed");
  arm(timeout);
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(line), asio::redirect_error(asio::use_awaitable, ec));
  disarm();
  if (timed_out_) throw QmpError("Timeout", "QMP write took longer than " + millis(timeout));
  if (ec) throw QmpError("Disconnected", "QMP write failed: " + ec.message());
}

asio::awaitable<json> QmpConnection::read_message(Duration timeout) {
  if (!socket_.is_open()) throw QmpError("Disconnected", "QMP connection is closed");
  arm(timeout);
  boost::system::error_code ec;
  std::size_t n = co_await asio::async_read_until(socket_, asio::dynamic_buffer(input_, kMaxMessageBytes), '\n',
                                                  asio::redirect_error(asio::use_awaitable, ec));
  disarm();
  if (timed_out_) throw QmpError("Timeout", "no answer from QMP within " + millis(timeout));
  if (ec == asio::error::not_found)
    throw QmpError("Protocol", "QMP sent a message over " + std::to_string(kMaxMessageBytes) + " bytes");
  if (ec) throw QmpError("Disconnected", "QMP connection ended: " + ec.message());
  auto message = json::parse(std::string_view(input_.data(), n), nullptr, false);
  input_.erase(0, n);
  if (message.is_discarded() || !message.is_object()) throw QmpError("Protocol", "QMP sent something that is not a JSON object");
  co_return message;
}

bool QmpConnection::keep_if_event(json& message) {
  auto event = message.find("event");
  if (event == message.end()) return false;
  if (event->is_string()) {  // anything else is not an event QEMU would send: nothing waits for it
    if (events_.size() == kMaxKeptEvents) events_.pop_front();
    events_.push_back(std::move(message));
  }
  return true;
}

asio::awaitable<void> QmpConnection::open(const std::string& socket_path, Duration timeout) {
  auto self = shared_from_this();
  auto started = std::chrono::steady_clock::now();
  auto left = [&] { return std::max<Duration>(Duration::zero(), timeout - (std::chrono::steady_clock::now() - started)); };
  arm(timeout);
  boost::system::error_code ec;
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un::sun_path))
    throw QmpError("Disconnected", "cannot connect to " + socket_path + ": not a usable socket path");
  co_await socket_.async_connect(asio::local::stream_protocol::endpoint(socket_path),
                                 asio::redirect_error(asio::use_awaitable, ec));
  disarm();
  if (timed_out_) throw QmpError("Timeout", "connecting to " + socket_path + " took longer than " + millis(timeout));
  if (ec) throw QmpError("Disconnected", "cannot connect to " + socket_path + ": " + ec.message());
  json greeting;
  do greeting = co_await read_message(left());
  while (greeting.contains("event"));  // none should come first; one left over from an earlier session is no greeting
  auto qmp = greeting.find("QMP");
  if (qmp == greeting.end() || !qmp->is_object())
    throw QmpError("Protocol", "no QMP greeting on " + socket_path + " (got " + greeting.dump().substr(0, 120) + ")");
  qemu_version_ = greeting_version(*qmp);
  auto offered = qmp->find("capabilities");
  bool oob = offered != qmp->end() && offered->is_array() && std::ranges::find(*offered, json("oob")) != offered->end();
  co_await write_line(oob ? "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n"
                          : "{\"execute\":\"qmp_capabilities\"}\n",
                      left());
  json reply;
  do reply = co_await read_message(left());
  while (keep_if_event(reply));
  if (auto error = reply.find("error"); error != reply.end()) throw error_of(*error);
  if (!reply.contains("return")) throw QmpError("Protocol", "QMP answered qmp_capabilities with neither return nor error");
  open_ = true;
}

asio::awaitable<std::uint64_t> QmpConnection::send(const std::string& command, json arguments, Duration timeout) {
  auto self = shared_from_this();
  if (!open_) throw QmpError("Disconnected", "QMP is not connected");
  std::uint64_t id = next_id_++;
  json request{{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = std::move(arguments);
  co_await write_line(request.dump() + "\n", timeout);
  co_return id;
}

asio::awaitable<json> QmpConnection::receive(std::uint64_t id, const std::string& command, Duration timeout) {
  auto self = shared_from_this();
  if (!open_) throw QmpError("Disconnected", "QMP is not connected");
  auto started = std::chrono::steady_clock::now();
  while (true) {
    auto spent = std::chrono::steady_clock::now() - started;
    json reply;
    try {
      reply = co_await read_message(std::max<Duration>(Duration::zero(), timeout - spent));
    } catch (const QmpError& e) {
      if (e.error_class == "Timeout") throw QmpError("Timeout", command + " got no answer within " + millis(timeout));
      throw;
    }
    if (keep_if_event(reply)) continue;
    auto rid = reply.find("id");
    if (rid == reply.end() || !rid->is_number_unsigned() || rid->get<std::uint64_t>() != id) {
      spdlog::debug("qmp: ignoring a reply that is not for {} (id {})", command, id);  // an earlier, abandoned command's
      continue;
    }
    if (auto error = reply.find("error"); error != reply.end()) throw error_of(*error);
    auto result = reply.find("return");
    if (result == reply.end()) throw QmpError("Protocol", "QMP answered " + command + " with neither return nor error");
    co_return *result;
  }
}

asio::awaitable<json> QmpConnection::wait_event(const std::string& name, std::function<bool(const json&)> matches,
                                                Duration timeout) {
  auto self = shared_from_this();
  auto started = std::chrono::steady_clock::now();
  while (true) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if ((*it)["event"] != name) continue;
      auto data = it->contains("data") ? (*it)["data"] : json::object();
      if (!matches || matches(data)) {
        events_.erase(it);
        co_return data;
      }
    }
    auto spent = std::chrono::steady_clock::now() - started;
    if (spent >= timeout) throw QmpError("Timeout", "no " + name + " event within " + millis(timeout));
    auto message = co_await read_message(timeout - spent);
    keep_if_event(message);  // a stray reply is dropped: nothing asked for it
  }
}

std::optional<pid_t> QmpConnection::peer_pid() {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      cred.pid <= 0)
    return std::nullopt;
  return cred.pid;
}

}  // namespace vhp
