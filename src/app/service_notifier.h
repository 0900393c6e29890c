#pragma once
// Tells systemd how the daemon is doing when it runs as a Type=notify service (NOTIFY_SOCKET set;
// otherwise every call does nothing): READY once serving, RELOADING/READY around a reload,
// STOPPING, a STATUS line, and WATCHDOG=1 sent from the event loop itself, so that a loop that
// stops turning stops the pings and systemd restarts the service.
#include <chrono>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace vhp {

class ServiceNotifier {
 public:
  // `status_line` is asked at each ping: "6 USB and 5 PCI devices, 2/3 VMs up, 1 client".
  ServiceNotifier(boost::asio::io_context& io, std::function<std::string()> status_line);

  void ready();      // and starts the watchdog pings when WatchdogSec= is set
  void reloading();  // RELOADING=1; ready() follows
  void stopping();

 private:
  void ping();

  boost::asio::steady_timer timer_;
  std::function<std::string()> status_line_;
  std::chrono::microseconds interval_{0};  // half the watchdog's timeout; zero: no watchdog
  bool stopped_ = false;
};

}  // namespace vhp
