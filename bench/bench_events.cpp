// Notification fan-out at scale: the real vhotplugd on a umockdev host, 256 subscribers on the Unix
// socket of which a few never read, and devices plugged and unplugged so that about 1,000 events a
// second go out, for 5 minutes. Prints what every reading subscriber received against what was
// sent (no loss), whether the stalled ones were dropped, the uevent → arrival latency, and the
// daemon's RSS over the run (flat within 2 MiB is issue 17's bar).
//   ./build/bench/bench_events [--seconds 300] [--subscribers 256] [--stalled 8] [--rate 1000]
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ranges>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_facts.h"
#include "percentile.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "support/testbed.h"

namespace {

using clock_type = std::chrono::steady_clock;
using vhp::bench::percentile;
using vhp::bench::option;
using vhp::bench::rss_kib;

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count(); }

constexpr int kFirstAddress = 2, kAddresses = 120;  // the plugged devices' numbers on bus 1

// When the uevent behind each (event, device number) was sent; 0: not yet.
struct SentAt {
  std::atomic<std::int64_t> connected[128]{}, disconnected[128]{};
};

// The reading subscribers, all served by one epoll thread: lines counted, latency of each arrival.
class Readers {
 public:
  Readers(const std::vector<int>& fds, SentAt& sent) : fds_(fds), counts_(fds.size()), sent_(sent), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    for (std::size_t i = 0; i < fds.size(); ++i) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = i;
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fds[i], &e);
    }
    buffers_.resize(fds.size());
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
  }
  ~Readers() { ::close(epoll_); }
  void stop() { thread_ = {}; }
  const std::vector<long>& counts() const { return counts_; }
  std::vector<double>& latencies_ms() { return latencies_ms_; }
  std::size_t closed() const { return closed_; }

 private:
  void run(const std::stop_token& stop) {
    epoll_event ready[64];
    char chunk[65536];
    while (!stop.stop_requested()) {
      int n = ::epoll_wait(epoll_, ready, 64, 100);
      for (int k = 0; k < n; ++k) {
        auto i = ready[k].data.u64;
        auto got = ::read(fds_[i], chunk, sizeof chunk);
        if (got <= 0) {
          ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fds_[i], nullptr);
          ++closed_;
          continue;
        }
        auto& buffer = buffers_[i];
        buffer.append(chunk, static_cast<std::size_t>(got));
        for (std::size_t end; (end = buffer.find('\n')) != std::string::npos; buffer.erase(0, end + 1)) line(buffer.substr(0, end), i);
      }
    }
  }
  void line(const std::string& text, std::size_t reader) {
    bool connected = text.find("\"usb_connected\"") != std::string::npos;
    if (!connected && text.find("\"usb_disconnected\"") == std::string::npos) return;  // the subscription's "ok"
    ++counts_[reader];
    auto at = text.find("/dev/bus/usb/001/");
    if (at == std::string::npos) return;
    int devnum = std::atoi(text.c_str() + at + 17);
    if (devnum < 0 || devnum >= 128) return;
    auto sent = (connected ? sent_.connected : sent_.disconnected)[devnum].load();
    if (sent > 0 && latencies_ms_.size() < 20'000'000) latencies_ms_.push_back(static_cast<double>(now_ns() - sent) / 1e6);
  }

  std::vector<int> fds_;
  std::vector<long> counts_;
  std::vector<std::string> buffers_;
  std::vector<double> latencies_ms_;
  std::size_t closed_ = 0;
  SentAt& sent_;
  int epoll_;
  std::jthread thread_;
};

// Whether the daemon closed this connection (after what it had sent is read).
bool dropped(int fd) {
  char chunk[65536];
  for (;;) {
    auto n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

}  // namespace

int main(int argc, char** argv) {
  vhp::test::enter_mock_environment(argc, argv);
  int seconds = option(argc, argv, "--seconds", 300, 5, 3600);
  int subscribers = option(argc, argv, "--subscribers", 256, 1, 1000);
  int stalled = option(argc, argv, "--stalled", 8, 0, subscribers - 1);
  int rate = option(argc, argv, "--rate", 1000, 10, 20000);

  vhp::test::Testbed tb;
  auto xhci = tb.add_pci({.address = "0000:00:14.0", .class_code = 0x0c0330});
  auto root = tb.add_usb({.parent = xhci, .name = "usb1", .busnum = 1, .devnum = 1, .cls = 9, .interfaces = {{9, 0, 0, "hub"}}});
  vhp::test::TempDir dir;
  auto socket = dir / "api.sock";
  nlohmann::json config = nlohmann::json::parse(R"({"vms": [{"name": "vm1", "type": "qemu", "socket": "/nonexistent/vm1.sock"}],
      "usbPassthrough": [{"targetVm": "vm1", "allow": [{"vendorId": "1050", "productId": "0407"}]}]})");
  config["general"] = {{"statePath", dir / "state"},
                       {"api", {{"transports", {"unix"}}, {"unixSocket", socket}, {"maxClients", subscribers + 8}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();
  vhp::test::Child daemon({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  if (!vhp::test::eventually([&] { return vhp::test::unix_socket_accepts(socket); })) {
    std::fprintf(stderr, "the daemon did not start; see %s\n", (dir / "daemon.log").c_str());
    return 1;
  }

  std::vector<vhp::test::Fd> connections;
  std::vector<int> reading, stalling;
  for (int i = 0; i < subscribers; ++i) {
    connections.emplace_back(vhp::test::connect_unix(socket));
    int fd = connections.back().get();
    std::string enable = "{\"action\":\"enable_notifications\"}\n";
    if (fd < 0 || ::write(fd, enable.data(), enable.size()) != static_cast<ssize_t>(enable.size())) {
      std::fprintf(stderr, "subscriber %d could not connect\n", i);
      return 1;
    }
    (i < stalled ? stalling : reading).push_back(fd);
  }
  for (int fd : connections | std::views::transform([](const vhp::test::Fd& f) { return f.get(); }))  // every "ok" is in
    if (vhp::test::read_line_fd(fd).find("\"ok\"") == std::string::npos) return 1;

  SentAt sent;
  Readers readers(reading, sent);
  long events = 0;
  std::vector<long> rss;
  // The devices' sysfs entries stay; only their uevents come and go (creating and deleting the
  // entries each time costs the bench more than the daemon: the testbed is on disk).
  std::vector<std::string> paths(kFirstAddress + kAddresses);
  std::vector<bool> plugged(paths.size());
  for (int devnum = kFirstAddress; devnum < kFirstAddress + kAddresses; ++devnum)
    paths[static_cast<std::size_t>(devnum)] = tb.add_usb({.parent = root, .name = "1-" + std::to_string(devnum), .busnum = 1, .devnum = devnum,
                                                          .vid = "1a86", .pid = "7523", .interfaces = {{0xff, 1, 2, "ch341"}}});
  auto start = clock_type::now(), next = start;
  auto period = std::chrono::nanoseconds(1'000'000'000 / rate);
  auto next_sample = start;
  for (long i = 0; clock_type::now() - start < std::chrono::seconds(seconds); ++i, next += period) {
    std::this_thread::sleep_until(next);
    int devnum = kFirstAddress + static_cast<int>((i / 2) % kAddresses);
    auto slot = static_cast<std::size_t>(devnum);
    (plugged[slot] ? sent.disconnected : sent.connected)[devnum] = now_ns();
    tb.uevent(paths[slot], plugged[slot] ? "remove" : "add");
    plugged[slot] = !plugged[slot];
    ++events;
    if (clock_type::now() >= next_sample) {
      rss.push_back(rss_kib(daemon.pid()));
      next_sample += std::chrono::seconds(10);
    }
  }
  double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  // Settled: every reading subscriber has what the last uevent caused, or nothing more comes for 2 s.
  auto counts_settled = [&] { return std::ranges::all_of(readers.counts(), [&](long c) { return c >= events; }); };
  for (auto waited = clock_type::now(); !counts_settled() && clock_type::now() - waited < std::chrono::seconds(2);)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  readers.stop();
  rss.push_back(rss_kib(daemon.pid()));

  auto [low, high] = std::ranges::minmax(readers.counts());
  long stalled_dropped = std::ranges::count_if(stalling, dropped);
  auto& lat = readers.latencies_ms();
  auto [rss_low, rss_high] = std::ranges::minmax(std::vector<long>(rss.begin() + std::min<std::ptrdiff_t>(1, static_cast<std::ptrdiff_t>(rss.size()) - 1), rss.end()));
  std::printf("%d subscribers (%d never reading), %ld uevents in %.0f s: %.0f events/s sent to each\n", subscribers, stalled, events,
              elapsed, static_cast<double>(events) / elapsed);
  std::printf("reading subscribers: each received %ld to %ld of %ld events; %zu closed by the daemon\n", low, high, events,
              readers.closed());
  std::printf("never-reading subscribers dropped by the daemon: %ld of %d\n", stalled_dropped, stalled);
  std::printf("uevent → event at a reading subscriber: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu arrivals)\n", percentile(lat, 0.50),
              percentile(lat, 0.99), lat.empty() ? 0.0 : *std::ranges::max_element(lat), lat.size());
  std::printf("daemon RSS: %ld KiB at the start, %ld KiB at the end; %ld to %ld KiB after the first 10 s (%zu samples)\n", rss.front(),
              rss.back(), rss_low, rss_high, rss.size());
  return low == events && high == events ? 0 : 2;
}
