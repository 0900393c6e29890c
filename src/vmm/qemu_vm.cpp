#include "vmm/qemu_vm.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {
constexpr const char* kUsbPrefix = "vhp-usb-";

// Arguments are built outside co_await expressions: GCC 12 miscompiles braced temporaries there.
json qom_get(const std::string& path, const char* property) { return {{"path", path}, {"property", property}}; }
json by_id(const std::string& id) { return {{"id", id}}; }
}

QemuVm::QemuVm(asio::io_context& io, std::string name, std::string socket_path, QemuTimeouts timeouts)
    : io_(io), name_(std::move(name)), socket_path_(std::move(socket_path)), timeouts_(timeouts),
      operations_(io.get_executor()) {}

QemuVm::~QemuVm() {
  *alive_ = false;
  stop();
}

std::string QemuVm::usb_id(int busnum, int devnum) {
  return kUsbPrefix + std::to_string(busnum) + "-" + std::to_string(devnum);
}

void QemuVm::start() {
  stopped_ = false;
  asio::co_spawn(io_, keep_connected(), asio::detached);
}

void QemuVm::stop() {
  stopped_ = true;
  if (client_) {
    client_->on_closed = nullptr;
    client_->close();
  }
}

asio::awaitable<void> QemuVm::keep_connected() {
  auto alive = alive_;
  asio::steady_timer pause(io_);
  bool reported_down = false;
  while (*alive && !stopped_) {
    auto client = std::make_shared<QmpClient>(io_.get_executor());
    AsyncEvent closed(io_.get_executor());
    try {
      co_await client->connect(socket_path_, timeouts_.connect);
      if (!*alive || stopped_) co_return;
      client->on_closed = [&closed] { closed.set(); };
      client_ = client;
      spdlog::info("vm {}: QMP connected on {}", name_, socket_path_);
      reported_down = false;
      if (on_up) on_up();
      while (!co_await closed.wait(std::chrono::hours(1))) {
        if (!*alive || stopped_) co_return;
      }
      if (!*alive) co_return;
      client_.reset();
      spdlog::warn("vm {}: QMP connection lost", name_);
      if (on_down && !stopped_) on_down();
    } catch (const QmpError& e) {
      if (!*alive) co_return;
      if (!reported_down) spdlog::info("vm {}: not reachable ({}); retrying every {} ms", name_, e.what(),
                                       timeouts_.reconnect_interval.count());
      reported_down = true;
    }
    pause.expires_after(timeouts_.reconnect_interval);
    boost::system::error_code ignored;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

std::shared_ptr<QmpClient> QemuVm::client_or_throw() {
  if (!running()) throw VmError("VM " + name_ + " is not running");
  return client_;
}

asio::awaitable<json> QemuVm::execute(const std::string& command, json arguments) {
  auto client = client_or_throw();
  try {
    co_return co_await client->execute(command, std::move(arguments), timeouts_.command);
  } catch (const QmpError& e) {
    if (e.error_class == "Disconnected") throw VmError("VM " + name_ + " went away during " + command);
    if (e.error_class == "Timeout") throw VmError("VM " + name_ + " did not answer " + command);
    throw;  // QEMU's own error: the caller decides
  }
}

asio::awaitable<void> QemuVm::attach_usb(int busnum, int devnum) {
  auto lock = co_await operations_.lock();
  auto id = usb_id(busnum, devnum);
  json args{{"driver", "usb-host"}, {"id", id}, {"hostbus", busnum}, {"hostaddr", devnum}};
  for (int attempt = 0;; ++attempt) {
    std::string error;
    spdlog::debug("qmp: -> device_add {} on {}", id, name_);
    try {
      co_await execute("device_add", args);
      break;
    } catch (const QmpError& e) {
      error = e.what();
    }
    if (error.starts_with("Duplicate device ID")) break;  // ours already: verify below
    if (!error.starts_with("failed to find host usb device") || attempt >= timeouts_.attach_retries) throw VmError(error);
    asio::steady_timer pause(io_);
    pause.expires_after(timeouts_.attach_retry_interval);
    boost::system::error_code ignored;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  json attached;
  try {
    auto args_attached = qom_get("/machine/peripheral/" + id, "attached");
    attached = co_await execute("qom-get", std::move(args_attached));
  } catch (const QmpError& e) {
    throw VmError(e.what());
  }
  if (attached != true) {
    bool removed = true;
    auto args_del = by_id(id);
    try {
      co_await execute("device_del", std::move(args_del));
    } catch (const std::exception&) {
      removed = false;
    }
    throw VmError("QEMU added " + id + " but did not attach the host device" + (removed ? "" : " (and could not remove it)"));
  }
}

asio::awaitable<void> QemuVm::detach_usb(int busnum, int devnum) {
  auto lock = co_await operations_.lock();
  auto client = client_or_throw();
  auto id = usb_id(busnum, devnum);
  auto deleted = client->expect_event("DEVICE_DELETED", [id](const json& data) { return data.value("device", "") == id; });
  auto args_del = by_id(id);
  try {
    co_await execute("device_del", std::move(args_del));
  } catch (const QmpError& e) {
    if (e.error_class == "DeviceNotFound") co_return;  // not there: nothing to detach
    throw VmError(e.what());
  }
  if (!co_await deleted->arrived.wait(timeouts_.device_deleted))
    throw VmError("VM " + name_ + " did not confirm the removal of " + id);
}

asio::awaitable<std::vector<QemuUsbDevice>> QemuVm::list_usb() {
  auto lock = co_await operations_.lock();
  std::vector<QemuUsbDevice> out;
  try {
    json args_list{{"path", "/machine/peripheral"}};
    auto children = co_await execute("qom-list", std::move(args_list));
    for (const auto& child : children) {
      std::string name = child.value("name", "");
      if (!name.starts_with(kUsbPrefix) || child.value("type", "") != "child<usb-host>") continue;
      auto path = "/machine/peripheral/" + name;
      QemuUsbDevice d{name, 0, 0, false};
      auto bus_args = qom_get(path, "hostbus"), addr_args = qom_get(path, "hostaddr"), attached_args = qom_get(path, "attached");
      d.hostbus = (co_await execute("qom-get", std::move(bus_args))).get<int>();
      d.hostaddr = (co_await execute("qom-get", std::move(addr_args))).get<int>();
      d.attached = (co_await execute("qom-get", std::move(attached_args))) == true;
      out.push_back(d);
    }
  } catch (const QmpError& e) {
    throw VmError(e.what());
  } catch (const json::exception& e) {
    throw VmError(std::string("unexpected QOM answer: ") + e.what());
  }
  co_return out;
}

}  // namespace vhp
