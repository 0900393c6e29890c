#include "common/path_watch.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sys/inotify.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

namespace asio = boost::asio;

struct PathWatch::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io, std::string path, std::chrono::milliseconds fallback, std::function<void()> changed)
      : descriptor(io), timer(io), path(std::move(path)), fallback(fallback), changed(std::move(changed)) {
    std::filesystem::path p(this->path);
    directory = p.parent_path().empty() ? "." : p.parent_path().string();
    name = p.filename().string();
  }

  bool try_watch() {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return false;
    constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
    if (::inotify_add_watch(fd, directory.c_str(), kMask) < 0) {
      if (!warned) spdlog::warn("vm socket {}: cannot watch {} ({}); probing every {} ms until it can", path, directory,
                                std::strerror(errno), fallback.count());
      warned = true;
      ::close(fd);
      return false;
    }
    descriptor.assign(fd);
    read();
    return true;
  }

  void read() {
    auto self = shared_from_this();
    descriptor.async_read_some(asio::buffer(buffer), [self](boost::system::error_code ec, std::size_t n) {
      if (self->stopped || ec == asio::error::operation_aborted) return;
      if (ec) return self->rewatch();
      bool ours = false, lost = false;
      for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
        inotify_event event;
        std::memcpy(&event, self->buffer.data() + at, sizeof event);
        const char* name = event.len ? self->buffer.data() + at + sizeof(inotify_event) : "";
        if (event.mask & IN_Q_OVERFLOW) ours = true;  // events were dropped: look anyway
        else if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) lost = true;
        else if (self->name == name) ours = true;
        at += sizeof(inotify_event) + event.len;
      }
      if (lost) return self->rewatch();
      if (ours) self->changed();
      if (!self->stopped) self->read();
    });
  }

  // The directory went away (the VM's state directory was removed): fall back until it is back.
  void rewatch() {
    boost::system::error_code ignored;
    descriptor.close(ignored);
    changed();
    if (!stopped) tick();
  }

  void tick() {
    if (try_watch()) {
      if (warned) spdlog::info("vm socket {}: watching {} again", path, directory);
      warned = false;
      changed();  // it may have appeared before the watch was in place
      return;
    }
    changed();
    timer.expires_after(fallback);
    auto self = shared_from_this();
    timer.async_wait([self](boost::system::error_code ec) {
      if (!ec && !self->stopped) self->tick();
    });
  }

  asio::posix::stream_descriptor descriptor;
  asio::steady_timer timer;
  std::string path, directory, name;
  std::chrono::milliseconds fallback;
  std::function<void()> changed;
  alignas(inotify_event) std::array<char, 4096> buffer{};
  bool stopped = false, warned = false;
};

PathWatch::PathWatch(asio::io_context& io, std::string path, std::chrono::milliseconds fallback, std::function<void()> changed)
    : state_(std::make_shared<State>(io, std::move(path), fallback, std::move(changed))) {}

PathWatch::~PathWatch() { stop(); }

void PathWatch::start() {
  state_->stopped = false;
  if (!state_->try_watch()) state_->tick();
}

void PathWatch::stop() {
  state_->stopped = true;  // pending handlers check it before calling `changed`
  boost::system::error_code ignored;
  state_->descriptor.close(ignored);
  state_->timer.cancel();
}

bool PathWatch::watching() const { return state_->descriptor.is_open(); }

}  // namespace vhp
