#include "vmm/qemu_vm.h"

#include <filesystem>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/log_failure.h"
#include "common/log_fields.h"
#include "vmm/qmp_args.h"
#include "vmm/socket_identity.h"

namespace vhp {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {
constexpr const char* kUsbPrefix = "vhp-usb-";
const char* const kContainers[] = {"/machine/peripheral", "/machine/peripheral-anon"};

using qmp::by_id;
using qmp::qom_get;

std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// What a probe found when it could not complete: nobody listens (gone), someone else holds the
// monitor (busy), or the session broke after connecting (a timeout, a garbled answer: transient).
struct MonitorUnreachable : VmError {
  enum class Kind { Gone, Busy, Broken };
  MonitorUnreachable(const std::string& text, Kind kind) : VmError(text), kind(kind) {}
  Kind kind;
};

// DEVICE_DELETED names a device by id, or (anonymous ones) only by QOM path.
bool names(const json& data, const std::string& id) {
  if (!data.is_object()) return false;
  auto device = data.find("device"), path = data.find("path");
  return (device != data.end() && *device == id) ||
         (path != data.end() && (*path == id || *path == "/machine/peripheral/" + id));
}

asio::awaitable<void> pause(asio::io_context& io, std::chrono::milliseconds d) {
  asio::steady_timer timer(io);
  timer.expires_after(d);
  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

}  // namespace

QemuVm::QemuVm(asio::io_context& io, std::string name, std::string socket_path, QemuTimeouts timeouts)
    : Vm(std::move(name)),
      io_(io),
      socket_path_(std::move(socket_path)),
      timeouts_(timeouts),
      operations_(io.get_executor()),
      socket_watch_(io, socket_path_, timeouts.watch_fallback, [this] { probe(timeouts_.probe_retries); }),
      process_(io),
      probe_timer_(io) {}

QemuVm::~QemuVm() {
  *alive_ = false;
  stop();
}

std::string QemuVm::usb_id(int busnum, int devnum) {
  return kUsbPrefix + std::to_string(busnum) + "-" + std::to_string(devnum);
}

void QemuVm::start() {
  stopped_ = false;
  socket_watch_.start();
  probe();
}

void QemuVm::stop() {
  stopped_ = true;
  socket_watch_.stop();
  process_.cancel();
  probe_timer_.cancel();
  if (conn_) conn_->close();  // an operation in flight fails at once; the ones queued find us stopped
  conn_.reset();
  up_ = false;
}

// ---- lifecycle --------------------------------------------------------------------------------

void QemuVm::probe(int retries) {
  if (stopped_) return;
  if (probing_) {
    probe_again_ = true;
    probe_again_retries_ = std::max(probe_again_retries_, retries);
    return;
  }
  probing_ = true;
  auto alive = alive_;
  asio::co_spawn(io_, probe_loop(retries), [this, alive, log = log_failure("vm " + name() + ": a probe")](std::exception_ptr e) {
    if (*alive) probing_ = false;
    log(e);
  });
}

asio::awaitable<void> QemuVm::probe_loop(int retries) {
  auto alive = alive_;
  while (true) {
    probe_again_ = false;
    std::optional<pid_t> pid;
    auto identity = socket_identity(socket_path_);
    std::string failure;
    auto kind = MonitorUnreachable::Kind::Gone;
    try {
      Body status = [this, &pid](QmpConnection& c) -> asio::awaitable<void> {
        co_await execute(c, "query-status", nullptr);
        pid = c.peer_pid();
      };
      co_await borrowed("query-status", std::move(status), false);
    } catch (const MonitorUnreachable& e) {
      failure = e.what();
      kind = e.kind;
    } catch (const VmError& e) {  // its queue is long: operations are running, so it is there
      failure = e.what();
      kind = MonitorUnreachable::Kind::Busy;
    }
    if (!*alive || stopped_) co_return;
    std::error_code ec;
    if (failure.empty()) {
      set_up(pid, identity);
    } else if (kind != MonitorUnreachable::Kind::Gone) {
      // QEMU is there: its monitor is someone else's for now, or the session broke. Not "down".
      about_vm(name()).debug("vm {}: {}", name(), failure);
      probe_later(timeouts_.busy_retry_interval, 0);
    } else if (retries > 0 && std::filesystem::exists(socket_path_, ec)) {
      probe_later(timeouts_.probe_retry_interval, retries - 1);  // maybe between QEMU's bind() and listen()
    } else {
      set_down(failure);
    }
    if (!probe_again_) co_return;
    retries = std::exchange(probe_again_retries_, 0);
  }
}

void QemuVm::probe_later(std::chrono::milliseconds after, int retries) {
  probe_timer_.expires_after(after);
  auto alive = alive_;
  probe_timer_.async_wait([this, alive, retries](boost::system::error_code ec) {
    if (!ec && *alive) probe(retries);
  });
}

void QemuVm::set_up(std::optional<pid_t> pid, const std::string& identity) {
  if (up_ && pid && process_.pid() && process_.pid() != *pid) set_down("a new QEMU process answers on its socket");  // restarted unseen
  if (up_ && identity != identity_) set_down("its QMP socket was replaced");
  if (up_) return;
  up_ = true;
  identity_ = identity;
  auto alive = alive_;
  bool watched = pid && process_.watch(*pid, [this, alive] {
    if (*alive && !stopped_) set_down("its QEMU process exited");
  });
  about_vm(name()).info("vm {}: up (QMP on {}{})", name(), socket_path_,
                        watched ? ", QEMU pid " + std::to_string(*pid) : std::string(", its process cannot be watched"));
  announce_up();
}

void QemuVm::set_down(const std::string& why) {
  if (!up_) {
    about_vm(name()).debug("vm {}: not reachable ({})", name(), why);
    return;
  }
  up_ = false;
  process_.cancel();
  ids_.clear();
  about_vm(name()).warn("vm {}: down ({})", name(), why);
  announce_down();
}

// ---- the borrowed monitor ---------------------------------------------------------------------

asio::awaitable<void> QemuVm::borrowed(std::string what, Body body, bool need_up) {
  auto alive = alive_;
  auto not_running = [&] { return VmError("VM " + name() + " is not running"); };
  if (stopped_ || (need_up && !up_)) throw not_running();
  auto lock = co_await operations_.lock(timeouts_.operation);
  if (!*alive) throw not_running();
  if (!lock) throw VmError("VM " + name() + " is busy: " + what + " waited " + millis(timeouts_.operation) + " for its turn");
  if (stopped_ || (need_up && !up_)) {  // it went away while this waited: leave nothing open behind
    if (operations_.waiting() == 0 && conn_) {
      conn_->close();
      conn_.reset();
    }
    throw not_running();
  }

  // The whole operation has a deadline: past it the connection is closed, which fails the step in flight.
  struct Deadline {
    std::shared_ptr<QmpConnection> conn;
    bool expired = false;
  };
  auto deadline = std::make_shared<Deadline>();
  asio::steady_timer timer(io_);
  timer.expires_after(timeouts_.operation);
  timer.async_wait([weak = std::weak_ptr<Deadline>(deadline)](boost::system::error_code ec) {
    auto d = weak.lock();
    if (ec || !d) return;
    d->expired = true;
    if (d->conn) d->conn->close();
  });

  std::string failure;
  bool unreachable = false, busy = false, connection_broken = false;
  try {
    if (!conn_ || !conn_->is_open()) {
      conn_ = std::make_shared<QmpConnection>(io_.get_executor());
      deadline->conn = conn_;
      try {
        co_await conn_->open(socket_path_, timeouts_.connect);
      } catch (const QmpError& e) {
        busy = e.error_class == "Timeout";  // connected, but no greeting: another client has the monitor
        unreachable = e.error_class != "Protocol";  // a garbled greeting: QEMU (or something) is there
        failure = busy ? "VM " + name() + ": its monitor gave no greeting within " + millis(timeouts_.connect) +
                             " (another client holds it?)"
                       : "VM " + name() + " is not running (" + e.what() + ")";
      }
    }
    if (failure.empty()) {
      deadline->conn = conn_;
      co_await body(*conn_);
    }
  } catch (const VmError& e) {
    failure = e.what();
  } catch (const QmpError& e) {  // QEMU's own error the body did not handle
    failure = e.what();
  } catch (const std::exception& e) {  // nothing else should come, but the session must end all the same
    failure = "VM " + name() + ": " + e.what();
    if (conn_) conn_->close();
  }
  timer.cancel();
  if (deadline->expired) failure = "VM " + name() + " did not complete " + what + " within " + millis(timeouts_.operation);
  connection_broken = unreachable || !conn_ || !conn_->is_open();
  if (connection_broken || operations_.waiting() == 0 || stopped_) {
    if (conn_) conn_->close();
    conn_.reset();
  }
  if (failure.empty()) co_return;
  if (!need_up)  // the probe tells these apart
    throw MonitorUnreachable(failure, busy ? MonitorUnreachable::Kind::Busy
                                      : unreachable ? MonitorUnreachable::Kind::Gone
                                                    : MonitorUnreachable::Kind::Broken);
  if (connection_broken && !busy && !stopped_) probe();  // it looked up, and the session broke: find out
  if (unreachable && !busy) throw not_running();
  throw VmError(failure);
}

VmError QemuVm::session_failure(QmpConnection& c, const std::string& command, const QmpError& e) {
  c.close();  // a late or garbled answer would desynchronise the session
  if (e.error_class == "Timeout") return VmError("VM " + name() + " did not answer " + command);
  if (e.error_class == "Protocol") return VmError("VM " + name() + " sent a malformed answer to " + command + ": " + e.what());
  return VmError("VM " + name() + " went away during " + command);
}

asio::awaitable<std::uint64_t> QemuVm::send(QmpConnection& c, const std::string& command, json arguments) {
  auto id = arguments.is_object() ? arguments.find("id") : arguments.end();
  about_vm(name()).debug("qmp: -> {} {}on {}", command,
                         id != arguments.end() && id->is_string() ? id->get<std::string>() + " " : "", name());
  try {
    co_return co_await c.send(command, std::move(arguments), timeouts_.command);
  } catch (const QmpError& e) {  // only ever a local failure: nothing was answered yet
    throw session_failure(c, command, e);
  }
}

asio::awaitable<json> QemuVm::receive(QmpConnection& c, std::uint64_t id, const std::string& command) {
  try {
    co_return co_await c.receive(id, command, timeouts_.command);
  } catch (const QmpError& e) {
    if (!e.local()) throw;  // QEMU's own error: the caller decides
    throw session_failure(c, command, e);
  }
}

asio::awaitable<json> QemuVm::execute(QmpConnection& c, const std::string& command, json arguments) {
  auto id = co_await send(c, command, std::move(arguments));
  co_return co_await receive(c, id, command);
}

// ---- USB --------------------------------------------------------------------------------------

// QEMU 7.2 and later realize a usb-host given by hostbus and hostaddr alone by opening the host
// device and attaching it to the guest's port, or fail device_add ("failed to find host usb
// device", "failed to open host usb device"), and unplug a USB device within device_del (the USB bus
// has no unplug request step): their answers are final (hw/usb/host-libusb.c, hw/usb/bus.c, read for
// 7.2 and probed here; docs/PASSTHROUGH.md). An older or unnamed QEMU is asked, and so is any QEMU
// about an id found taken (a usb-host of ours whose device may have gone since).
namespace {
bool usb_answers_are_final(const QmpConnection& c) { return c.qemu_at_least(7, 2); }
}  // namespace

asio::awaitable<void> QemuVm::attach_usb(UsbDevice device) {
  int bus = device.busnum, addr = device.devnum;
  Body body = [this, bus, addr](QmpConnection& c) -> asio::awaitable<void> {
    auto id = usb_id(bus, addr);
    json args{{"driver", "usb-host"}, {"id", id}, {"hostbus", bus}, {"hostaddr", addr}};
    auto args_attached = qom_get("/machine/peripheral/" + id, "attached");
    bool ask = !usb_answers_are_final(c);
    std::optional<std::uint64_t> verification;
    for (int attempt = 0;; ++attempt) {
      // The question goes out behind device_add: QEMU reads it while it realizes the device rather
      // than after answering (docs/BENCHMARKS.md). After a failed attempt its answer is skipped.
      auto add = co_await send(c, "device_add", args);
      if (ask) verification = co_await send(c, "qom-get", args_attached);
      std::string error;
      try {
        co_await receive(c, add, "device_add");
        break;
      } catch (const QmpError& e) {
        error = e.what();
      }
      if (error.starts_with("Duplicate device ID")) {  // ours already: is its device still attached?
        if (!verification) verification = co_await send(c, "qom-get", args_attached);
        break;
      }
      if (!error.starts_with("failed to find host usb device") || attempt >= timeouts_.attach_retries) throw VmError(error);
      co_await pause(io_, timeouts_.attach_retry_interval);
    }
    if (verification && co_await receive(c, *verification, "qom-get") != true) {
      bool removed = true;
      auto args_del = by_id(id);
      try {
        co_await execute(c, "device_del", std::move(args_del));
      } catch (const std::exception&) {
        removed = false;
      }
      throw VmError("QEMU added " + id + " but did not attach the host device" + (removed ? "" : " (and could not remove it)"));
    }
    ids_[{bus, addr}] = id;
  };
  co_await borrowed("device_add", std::move(body));
}

asio::awaitable<void> QemuVm::detach_usb(VmUsbDevice device) {
  Body body = [this, device](QmpConnection& c) -> asio::awaitable<void> {
    std::pair<int, int> address{device.hostbus, device.hostaddr};
    std::string id = device.id;
    if (id.empty())
      if (auto known = ids_.find(address); known != ids_.end()) id = known->second;
    if (id.empty())  // not seen since the VM came up: find it by what it is
      for (const auto& held : co_await scan_usb(c))
        if (held.hostbus == device.hostbus && held.hostaddr == device.hostaddr) id = held.id;
    if (id.empty()) co_return;  // QEMU holds nothing at that address
    // A USB device is unplugged within device_del: from QEMU 7.2 on its answer says so; before,
    // the look behind it (as attach_usb's question) finds it out of the QOM tree. QEMU sends
    // DEVICE_DELETED only ~50 ms later (its RCU thread batches): awaited only when it is still there.
    auto path = id.starts_with('/') ? id : "/machine/peripheral/" + id;
    auto args_del = by_id(id);
    json args_path{{"path", path}};  // named: GCC 12 rejects a braced temporary among a co_await's arguments
    auto del = co_await send(c, "device_del", std::move(args_del));
    std::optional<std::uint64_t> looked;
    if (!usb_answers_are_final(c)) looked = co_await send(c, "qom-list", std::move(args_path));
    try {
      co_await receive(c, del, "device_del");
    } catch (const QmpError& e) {
      if (e.error_class != "DeviceNotFound") throw VmError(e.what());
      ids_.erase(address);  // not there: nothing to detach
      co_return;
    }
    bool gone = !looked;
    if (looked) {
      try {
        co_await receive(c, *looked, "qom-list");
      } catch (const QmpError&) {
        gone = true;  // "Device … not found": out of the tree
      }
    }
    if (gone) {
      ids_.erase(address);
      co_return;
    }
    co_await wait_deleted(c, id, timeouts_.device_deleted, "");
    ids_.erase(address);
  };
  co_await borrowed("device_del", std::move(body));
}

asio::awaitable<std::vector<VmUsbDevice>> QemuVm::list_usb() {
  std::vector<VmUsbDevice> out;
  Body body = [this, &out](QmpConnection& c) -> asio::awaitable<void> { out = co_await scan_usb(c); };
  co_await borrowed("qom-list", std::move(body));
  co_return out;
}

asio::awaitable<std::vector<VmUsbDevice>> QemuVm::scan_usb(QmpConnection& c) {
  std::vector<VmUsbDevice> out;
  auto integer = [this](const json& v) {
    if (!v.is_number_integer()) throw VmError("VM " + name() + " sent a malformed answer to qom-get: " + v.dump());
    return v.get<int>();
  };
  for (const auto& [id, path] : co_await peripherals(c, "usb-host")) {
    auto bus_args = qom_get(path, "hostbus"), addr_args = qom_get(path, "hostaddr"), attached_args = qom_get(path, "attached");
    VmUsbDevice held;
    held.id = id;
    auto hostbus = co_await execute(c, "qom-get", std::move(bus_args));
    auto hostaddr = co_await execute(c, "qom-get", std::move(addr_args));
    auto attached = co_await execute(c, "qom-get", std::move(attached_args));
    held.hostbus = integer(hostbus);
    held.hostaddr = integer(hostaddr);
    held.attached = attached == true;
    if (held.attached) ids_[{held.hostbus, held.hostaddr}] = held.id;
    out.push_back(held);
  }
  co_return out;
}

}  // namespace vhp

namespace vhp {

asio::awaitable<std::vector<std::pair<std::string, std::string>>> QemuVm::peripherals(QmpConnection& c, std::string type) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string container : kContainers) {
    json children;
    try {
      json args{{"path", container}};
      children = co_await execute(c, "qom-list", std::move(args));
    } catch (const QmpError&) {
      continue;  // no such container on this machine type
    }
    if (!children.is_array()) throw VmError("VM " + name() + " sent a malformed answer to qom-list");
    for (const auto& child : children) {
      if (!child.is_object() || child.value("type", json()) != "child<" + type + ">") continue;
      auto name_it = child.find("name");
      if (name_it == child.end() || !name_it->is_string()) continue;
      std::string child_name = *name_it;
      auto path = container + "/" + child_name;
      out.emplace_back(container == kContainers[0] ? child_name : path, path);  // device_del takes an id or a QOM path
    }
  }
  co_return out;
}

asio::awaitable<void> QemuVm::wait_deleted(QmpConnection& c, std::string id, std::chrono::milliseconds timeout, std::string why) {
  std::function<bool(const json&)> deleted = [id](const json& data) { return names(data, id); };  // not a temporary in co_await: GCC 12
  try {
    co_await c.wait_event("DEVICE_DELETED", std::move(deleted), timeout);
  } catch (const QmpError& e) {
    if (e.error_class == "Timeout") throw VmError("VM " + name() + " did not confirm the removal of " + id + why);
    c.close();
    throw VmError("VM " + name() + " went away during device_del");
  }
}

}  // namespace vhp
