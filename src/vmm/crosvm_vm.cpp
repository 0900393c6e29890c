#include "vmm/crosvm_vm.h"

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <set>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/log_fields.h"
#include "vmm/child_process.h"
#include "vmm/crosvm_output.h"
#include "vmm/socket_identity.h"

namespace vhp {

namespace asio = boost::asio;

namespace {

std::string sysfs_path(const std::string& address) { return "/sys/bus/pci/devices/" + address; }

asio::awaitable<void> pause(std::chrono::milliseconds interval) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(interval);
  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

}  // namespace

CrosvmVm::CrosvmVm(asio::io_context& io, std::string name, std::string socket_path, std::string crosvm, CrosvmTimeouts timeouts,
                   std::shared_ptr<CrosvmUsbPortBook> book)
    : Vm(std::move(name)),
      io_(io),
      socket_path_(std::move(socket_path)),
      crosvm_(crosvm.empty() ? "crosvm" : std::move(crosvm)),
      timeouts_(timeouts),
      operations_(io.get_executor()),
      socket_watch_(io, socket_path_, timeouts.watch_fallback, [this] { check(kRefusedRetries); }),
      process_(io),
      retry_timer_(io),
      book_(std::move(book)) {}

CrosvmVm::~CrosvmVm() { stop(); }

std::string CrosvmVm::usb_id(int port) { return "crosvm-usb-" + std::to_string(port); }

void CrosvmVm::start() {
  stopped_ = false;
  socket_watch_.start();
  check(kRefusedRetries);
}

void CrosvmVm::stop() {
  stopped_ = true;
  socket_watch_.stop();
  process_.cancel();
  retry_timer_.cancel();
  up_ = false;
  generation_.clear();
  ports_.clear();
}

// A non-blocking connect to a listening Unix socket completes (or is refused) at once. The socket's
// identity and the pid of the crosvm serving it say which run of the VM this is.
std::string CrosvmVm::generation(pid_t& pid) const {
  pid = 0;
  auto identity = socket_identity(socket_path_);
  if (identity.empty()) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof addr.sun_path) return "";
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  bool accepts = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ucred peer{};
  socklen_t len = sizeof peer;
  if (accepts && ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0) pid = peer.pid;
  ::close(fd);
  if (!accepts) return "";
  return identity + ":" + std::to_string(pid);
}

void CrosvmVm::check(int retries) {
  if (stopped_) return;
  pid_t pid = 0;
  auto now = generation(pid);
  if (now.empty() && retries > 0 && ::access(socket_path_.c_str(), F_OK) == 0) {
    // The socket is there but refuses: crosvm between bind() and listen(); look again shortly.
    retry_timer_.expires_after(timeouts_.retry_interval);
    retry_timer_.async_wait([this, retries](boost::system::error_code ec) {
      if (!ec) check(retries - 1);
    });
  }
  if (now == generation_) return;
  bool was_up = up_;
  generation_ = now;
  ports_.clear();  // ports belong to one run of the VM
  read_book();
  process_.cancel();
  if (was_up) {
    up_ = false;
    about_vm(name()).info("vm {}: down ({})", name(),
                          now.empty() ? "its control socket is gone" : "its control socket was replaced");
    announce_down();
  }
  if (!now.empty()) {
    up_ = true;
    if (pid > 0) process_.watch(pid, [this] { check(); });  // a crosvm that dies leaves its socket behind
    about_vm(name()).info("vm {}: up (crosvm control socket {})", name(), socket_path_);
    announce_up();
  }
}

void CrosvmVm::read_book() {
  if (!book_) return;
  for (const auto& [sys_name, entry] : book_->ports()) {
    if (entry.vm != name()) continue;
    if (!generation_.empty() && entry.socket_generation == generation_)
      ports_[{entry.busnum, entry.devnum}] = {entry.port, sys_name, entry.vid + ":" + entry.pid};
    else
      book_->forget(sys_name);  // the VM is gone or was restarted: that port holds nothing of ours
  }
}

void CrosvmVm::remember(const UsbDevice& device, int port) {
  ports_[{device.busnum, device.devnum}] = {port, device.sys_name, device.vid + ":" + device.pid};
  if (book_) book_->record(device.sys_name, {name(), port, generation_, device.vid, device.pid, device.serial, device.busnum, device.devnum});
}

void CrosvmVm::forget(const HostAddress& address) {
  auto it = ports_.find(address);
  if (it == ports_.end()) return;
  if (book_) book_->forget(it->second.sys_name);
  ports_.erase(it);
}

asio::awaitable<CrosvmVm::Lock> CrosvmVm::begin(const char* what) {
  auto lock = co_await operations_.lock();
  check();  // no event is missed, but one may still be on its way
  if (stopped_ || !up_) throw VmError("VM " + name() + " is not running");
  about_vm(name()).debug("vm {}: {}", name(), what);
  co_return lock;
}

asio::awaitable<std::string> CrosvmVm::crosvm(std::vector<std::string> args) {
  auto run_of_the_vm = generation_;
  std::vector<std::string> argv{crosvm_};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(socket_path_);
  ChildOutput result;
  try {
    result = co_await run_child(argv, timeouts_.command);
  } catch (const ChildError& e) {
    throw VmError("VM " + name() + ": crosvm " + args.front() + " " + args.at(1) + ": " + e.what());
  }
  check();  // what it answered belongs to the run of the VM it was asked, or to none
  if (!up_ || generation_ != run_of_the_vm) throw VmError("VM " + name() + " went away during crosvm " + args.front() + " " + args.at(1));
  if (result.exit_code != 0) {
    auto said = words(result.err.empty() ? result.out : result.err);
    std::string text;
    for (const auto& w : said) text += (text.empty() ? "" : " ") + w;
    throw VmError("VM " + name() + ": crosvm " + args.front() + " " + args.at(1) + " failed with code " +
                  std::to_string(result.exit_code) + (text.empty() ? "" : ": " + text));
  }
  co_return result.out;
}

asio::awaitable<std::vector<std::pair<int, std::string>>> CrosvmVm::usb_ports() {
  std::vector<std::string> args{"usb", "list"};
  auto out = co_await crosvm(std::move(args));
  auto ports = parse_usb_list(out);
  if (!ports) throw VmError("VM " + name() + ": malformed crosvm usb list answer: " + out);
  co_return *ports;
}

asio::awaitable<void> CrosvmVm::attach_usb(UsbDevice device) {
  auto lock = co_await begin("usb attach");
  if (ports_.contains({device.busnum, device.devnum})) co_return;  // ours already
  // A port we do not know (attached before a daemon restart) holding a device with these ids is
  // taken for this one, as the reference does: crosvm names no host address.
  std::vector<int> unknown_alike;  // only one: two identical devices cannot be told apart by crosvm
  for (const auto& [port, ids] : co_await usb_ports())
    if (ids == device.vid + ":" + device.pid && std::ranges::none_of(ports_, [&](const auto& p) { return p.second.port == port; }))
      unknown_alike.push_back(port);
  if (unknown_alike.size() == 1) {
    about_vm(name()).info("vm {}: already holds {}:{} at port {}; taking it for {}", name(), device.vid, device.pid,
                          unknown_alike[0], device.device_node);
    remember(device, unknown_alike[0]);
    co_return;
  }
  // The guest takes USB devices only once its kernel runs: no_available_port until then.
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> args{"usb", "attach", "00:00:00:00", device.device_node};
    auto out = co_await crosvm(std::move(args));
    if (auto port = parse_usb_attached(out)) {
      remember(device, *port);
      co_return;
    }
    auto w = words(out);
    bool busy = !w.empty() && w.front() == "no_available_port";
    if (!busy) throw VmError("VM " + name() + ": crosvm usb attach answered: " + (w.empty() ? "nothing" : w.front()));
    if (attempt >= timeouts_.busy_retries) throw VmError("VM " + name() + ": crosvm usb attach answered: no_available_port");
    co_await pause(timeouts_.retry_interval);
    if (!up_) throw VmError("VM " + name() + " went away during usb attach");
  }
}

asio::awaitable<void> CrosvmVm::detach_usb(VmUsbDevice device) {
  auto lock = co_await begin("usb detach");
  int port = -1;
  if (device.id.starts_with("crosvm-usb-")) port = std::atoi(device.id.c_str() + 11);
  else if (auto it = ports_.find({device.hostbus, device.hostaddr}); it != ports_.end()) port = it->second.port;
  if (port < 0) co_return;  // nothing of ours at that address
  std::vector<std::string> args{"usb", "detach", std::to_string(port)};
  auto w = words(co_await crosvm(std::move(args)));
  if (w.empty() || (w.front() != "ok" && w.front() != "no_such_port"))
    throw VmError("VM " + name() + ": crosvm usb detach answered: " + (w.empty() ? "nothing" : w.front()));
  std::vector<HostAddress> gone;
  for (const auto& [address, ours] : ports_)
    if (ours.port == port) gone.push_back(address);
  for (const auto& address : gone) forget(address);
}

asio::awaitable<std::vector<VmUsbDevice>> CrosvmVm::list_usb() {
  auto lock = co_await begin("usb list");
  std::vector<VmUsbDevice> out;
  auto listed = co_await usb_ports();
  std::set<HostAddress> still;
  for (const auto& [port, ids] : listed) {
    VmUsbDevice held{usb_id(port), 0, 0, true};
    for (const auto& [address, ours] : ports_)
      if (ours.port == port && ours.ids == ids) held.hostbus = address.first, held.hostaddr = address.second, still.insert(address);
    out.push_back(held);
  }
  std::vector<HostAddress> gone;  // a port crosvm no longer lists (or lists with another device) is free again
  for (const auto& [address, ours] : ports_)
    if (!still.contains(address)) gone.push_back(address);
  for (const auto& address : gone) forget(address);
  co_return out;
}

asio::awaitable<std::vector<std::string>> CrosvmVm::vfio_paths() {
  std::vector<std::string> args{"vfio", "list"};
  auto out = co_await crosvm(std::move(args));
  auto paths = parse_vfio_list(out);
  if (!paths) throw VmError("VM " + name() + ": malformed crosvm vfio list answer: " + out);
  co_return *paths;
}

asio::awaitable<void> CrosvmVm::attach_pci(PciDevice device, bool) {
  auto lock = co_await begin("vfio add");
  auto path = sysfs_path(device.address);
  auto listed = co_await vfio_paths();
  if (std::ranges::find(listed, path) != listed.end()) co_return;
  std::vector<std::string> args{"vfio", "add", path};
  co_await crosvm(std::move(args));
  for (int attempt = 0; attempt <= timeouts_.busy_retries; ++attempt) {  // it appears once the guest took it
    listed = co_await vfio_paths();
    if (std::ranges::find(listed, path) != listed.end()) co_return;
    co_await pause(timeouts_.retry_interval);
  }
  // Not taken back unasked: crosvm may still be opening it, and unbinding it then would block.
  std::vector<std::string> undo{"vfio", "remove", path};
  co_await crosvm(std::move(undo));
  throw VmError("VM " + name() + ": crosvm accepted vfio add but " + path + " did not appear");
}

asio::awaitable<void> CrosvmVm::detach_pci(VmPciDevice device) {
  auto lock = co_await begin("vfio remove");
  auto path = sysfs_path(device.host);
  auto listed = co_await vfio_paths();
  if (std::ranges::find(listed, path) == listed.end()) co_return;
  std::vector<std::string> args{"vfio", "remove", path};
  co_await crosvm(std::move(args));
  for (int attempt = 0; attempt <= timeouts_.busy_retries; ++attempt) {
    listed = co_await vfio_paths();
    if (std::ranges::find(listed, path) == listed.end()) co_return;
    co_await pause(timeouts_.retry_interval);
  }
  throw VmError("VM " + name() + ": crosvm accepted vfio remove but " + path + " is still attached");
}

asio::awaitable<std::vector<VmPciDevice>> CrosvmVm::list_pci() {
  auto lock = co_await begin("vfio list");
  std::vector<VmPciDevice> out;
  for (const auto& path : co_await vfio_paths())
    if (path.starts_with("/sys/bus/pci/devices/")) out.push_back({pci_device_id(path.substr(21)), path.substr(21)});
  co_return out;
}

asio::awaitable<void> CrosvmVm::attach_evdev(EvdevDevice) {
  throw VmError("Evdev passthrough is not supported by crosvm");
  co_return;
}

asio::awaitable<void> CrosvmVm::detach_evdev(EvdevDevice) {
  throw VmError("Evdev passthrough is not supported by crosvm");
  co_return;
}

}  // namespace vhp
