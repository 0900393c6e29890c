#include "app/service_notifier.h"

#include <systemd/sd-daemon.h>

namespace vhp {

ServiceNotifier::ServiceNotifier(boost::asio::io_context& io, std::function<std::string()> status_line)
    : timer_(io), status_line_(std::move(status_line)) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) interval_ = std::chrono::microseconds(usec / 2);
}

void ServiceNotifier::ready() {
  sd_notify(0, ("READY=1\nSTATUS=" + status_line_()).c_str());
  if (interval_.count() > 0 && !stopped_) ping();
}

void ServiceNotifier::reloading() { sd_notify(0, "RELOADING=1"); }

void ServiceNotifier::stopping() {
  stopped_ = true;
  timer_.cancel();
  sd_notify(0, "STOPPING=1");
}

void ServiceNotifier::ping() {
  sd_notify(0, ("WATCHDOG=1\nSTATUS=" + status_line_()).c_str());
  timer_.expires_after(interval_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) ping();
  });
}

}  // namespace vhp
