#include "vmm/cloud_hypervisor_vm.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "common/log_failure.h"
#include "common/log_fields.h"
#include "vmm/cloud_hypervisor_info.h"
#include "vmm/socket_identity.h"

namespace vhp {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;

namespace {

std::string sysfs_dir(const std::string& address) { return "/sys/bus/pci/devices/" + address + "/"; }

}  // namespace

CloudHypervisorVm::CloudHypervisorVm(asio::io_context& io, std::string name, std::string socket_path, CloudHypervisorTimeouts timeouts)
    : Vm(std::move(name)),
      io_(io),
      socket_path_(std::move(socket_path)),
      timeouts_(timeouts),
      operations_(io.get_executor()),
      socket_watch_(io, socket_path_, timeouts.watch_fallback, [this] { refused_left_ = timeouts_.refused_retries, check(); }),
      recheck_(io) {}

CloudHypervisorVm::~CloudHypervisorVm() {
  *alive_ = false;
  stop();
}

void CloudHypervisorVm::start() {
  stopped_ = false;
  socket_watch_.start();
  refused_left_ = timeouts_.refused_retries;
  check();
}

void CloudHypervisorVm::stop() {
  stopped_ = true;
  socket_watch_.stop();
  recheck_.cancel();
  up_ = false;
}

void CloudHypervisorVm::check() {
  if (stopped_) return;
  if (probing_) {
    probe_again_ = true;
    return;
  }
  probing_ = true;
  auto alive = alive_;
  asio::co_spawn(io_, probe(), [this, alive, log = log_failure("vm " + name() + ": a probe")](std::exception_ptr e) {
    if (!*alive) return;
    probing_ = false;
    log(e);
    if (std::exchange(probe_again_, false)) check();
  });
}

// Up while vm.info answers with the VM running.
asio::awaitable<void> CloudHypervisorVm::probe() {
  bool running = false, answers = false;
  std::string why = "its API socket does not answer";
  auto identity = socket_identity(socket_path_);
  try {
    auto answer = co_await request("GET", "/api/v1/vm.info", "");
    answers = true;
    auto info = parse_vm_info(answer.body);
    running = answer.status == 200 && info && info->state == "Running";
    if (!running) why = "its API answers " + std::to_string(answer.status) + (info ? ", state " + (info->state.empty() ? "?" : info->state) : "");
  } catch (const VmError&) {
  }
  // A VM created but not booted yet (or paused) changes nothing on the socket when it starts
  // running, and its API has no events: looked at again while its API answers. A socket that is
  // there but refuses may be between bind() and listen(): looked at again a few times.
  bool refused = !answers && !identity.empty() && refused_left_ > 0;
  if (refused) --refused_left_;
  if ((answers && !running && !stopped_) || refused) {
    recheck_.expires_after(refused ? timeouts_.refused_retry_interval : timeouts_.not_running_recheck);
    recheck_.async_wait([this, alive = alive_](boost::system::error_code ec) {
      if (!ec && *alive) check();
    });
  }
  if (stopped_) co_return;
  if (running && up_ && identity != identity_) {  // restarted between two looks
    about_vm(name()).info("vm {}: down (its API socket was replaced)", name());
    up_ = false;
    announce_down();
  }
  if (running) identity_ = identity;
  if (running == up_) co_return;
  up_ = running;
  if (up_) {
    about_vm(name()).info("vm {}: up (cloud-hypervisor API {})", name(), socket_path_);
    announce_up();
  } else {
    about_vm(name()).info("vm {}: down ({})", name(), why);
    announce_down();
  }
}

asio::awaitable<CloudHypervisorVm::Answer> CloudHypervisorVm::request(std::string method, std::string target, std::string body) {
  auto ex = co_await asio::this_coro::executor;
  // Shared with the deadline's handler, which may run after this frame is gone.
  struct Connection {
    explicit Connection(const asio::any_io_executor& ex) : socket(ex) {}
    asio::local::stream_protocol::socket socket;
    bool expired = false;
  };
  auto conn = std::make_shared<Connection>(ex);
  auto& socket = conn->socket;
  const bool& expired = conn->expired;
  asio::steady_timer deadline(ex);
  deadline.expires_after(timeouts_.request);
  deadline.async_wait([conn](boost::system::error_code ec) {
    if (ec || !conn->socket.is_open()) return;
    conn->expired = true;
    boost::system::error_code ignored;
    conn->socket.close(ignored);  // every pending step fails at once
  });
  auto fail = [&](const std::string& what, const boost::system::error_code& ec) {
    return VmError("VM " + name() + ": cloud-hypervisor API " + method + " " + target + ": " +
                   (expired ? "no answer within " + std::to_string(timeouts_.request.count()) + " ms" : what + ": " + ec.message()));
  };
  boost::system::error_code ec;
  co_await socket.async_connect(asio::local::stream_protocol::endpoint(socket_path_), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    deadline.cancel();
    throw fail("connect", ec);
  }
  http::request<http::string_body> req{method == "PUT" ? http::verb::put : http::verb::get, target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::accept, "application/json");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  co_await http::async_write(socket, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    deadline.cancel();
    throw fail("send", ec);
  }
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(timeouts_.max_answer_bytes);
  co_await http::async_read(socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  deadline.cancel();
  if (ec) throw fail("answer", ec);
  auto& res = parser.get();
  Answer answer{res.result_int(), res.body()};
  socket.close(ec);
  co_return answer;
}

VmError CloudHypervisorVm::refusal(const Answer& answer) const {
  // Its errors come as text (the OpenAPI description says nothing of the body); kept short.
  std::string message = answer.body.substr(0, 512);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
  return VmError("VM " + name() + ": cloud-hypervisor answered " + std::to_string(answer.status) + " " +
                 std::string(http::obsolete_reason(static_cast<http::status>(answer.status))) + (message.empty() ? "" : ": " + message));
}

asio::awaitable<CloudHypervisorVm::Answer> CloudHypervisorVm::expect_success(std::string method, std::string target, std::string body) {
  auto answer = co_await request(method, target, body);
  if (answer.status / 100 != 2) throw refusal(answer);
  co_return answer;
}

std::optional<std::string> CloudHypervisorVm::usb_unsupported() const {
  return "USB passthrough is not supported by cloud-hypervisor (no USB hot-plug in its API)";
}

asio::awaitable<void> CloudHypervisorVm::attach_usb(UsbDevice) {
  throw VmError(*usb_unsupported());
  co_return;
}

asio::awaitable<void> CloudHypervisorVm::detach_usb(VmUsbDevice) { co_return; }  // it can hold none of ours

asio::awaitable<std::vector<VmUsbDevice>> CloudHypervisorVm::list_usb() { co_return std::vector<VmUsbDevice>{}; }

asio::awaitable<void> CloudHypervisorVm::attach_pci(PciDevice device, bool) {
  auto lock = co_await operations_.lock();
  if (!up_) throw VmError("VM " + name() + " is not running");
  json body{{"path", sysfs_dir(device.address)}, {"id", pci_device_id(device.address)}};
  co_await expect_success("PUT", "/api/v1/vm.add-device", body.dump());
}

asio::awaitable<void> CloudHypervisorVm::detach_pci(VmPciDevice device) {
  auto lock = co_await operations_.lock();
  if (!up_) throw VmError("VM " + name() + " is not running");
  json body{{"id", device.id.empty() ? pci_device_id(device.host) : device.id}};
  auto answer = co_await request("PUT", "/api/v1/vm.remove-device", body.dump());
  if (answer.status == 404) co_return;  // no such device: detached already
  if (answer.status / 100 != 2) throw refusal(answer);
}

asio::awaitable<std::vector<VmPciDevice>> CloudHypervisorVm::list_pci() {
  auto lock = co_await operations_.lock();
  if (!up_) throw VmError("VM " + name() + " is not running");
  auto answer = co_await expect_success("GET", "/api/v1/vm.info", "");
  auto info = parse_vm_info(answer.body);
  if (!info) throw VmError("VM " + name() + ": cloud-hypervisor sent a malformed vm.info");
  std::vector<VmPciDevice> out;
  for (const auto& d : info->devices) out.push_back({d.id, d.address});
  co_return out;
}

asio::awaitable<void> CloudHypervisorVm::attach_evdev(EvdevDevice) {
  throw VmError("Unsupported vm type: cloud-hypervisor");  // the reference's text for evdev on it
  co_return;
}

asio::awaitable<void> CloudHypervisorVm::detach_evdev(EvdevDevice) { co_return; }

}  // namespace vhp
