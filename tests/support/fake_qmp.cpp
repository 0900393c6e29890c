#include "support/fake_qmp.h"

#include <cstring>
#include <stdexcept>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vhp::test {

namespace {
// QEMU 7.2's greeting (Debian 12's package), with another version when asked.
std::string greeting(std::pair<int, int> version) {
  auto [major, minor] = version;
  auto text = std::to_string(major) + "." + std::to_string(minor);
  return R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": )" + std::to_string(minor) + R"(, "major": )" +
         std::to_string(major) + R"(}, "package": "Debian 1:)" + text + R"(+dfsg-7+deb12u6"}, "capabilities": ["oob"]}})";
}

void send_line(int fd, const std::string& line) {
  std::string out = line + "\r\n";
  (void)!::write(fd, out.data(), out.size());
}
}  // namespace

FakeQmp::FakeQmp(std::string path, Answer answer, std::pair<int, int> qemu_version)
    : path_(std::move(path)), answer_(std::move(answer)), greeting_(greeting(qemu_version)) {
  ::unlink(path_.c_str());
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 8) != 0)
    throw std::runtime_error("fake QMP: cannot listen on " + path_);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      ++connections_;
      serve(client);
      ::close(client);
    }
  });
}

FakeQmp::~FakeQmp() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
  ::unlink(path_.c_str());
}

std::vector<std::string> FakeQmp::commands() const {
  std::lock_guard lock(mutex_);
  return commands_;
}

std::string FakeQmp::reply(const nlohmann::json& request, const nlohmann::json& value) {
  nlohmann::json r{{"return", value}};
  if (request.contains("id")) r["id"] = request["id"];
  return r.dump();
}

void FakeQmp::serve(int client) {
  send_line(client, greeting_);
  std::string buffer;
  while (!stop_) {
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::read(client, chunk, sizeof chunk);
    if (n <= 0) return;  // the client left
    buffer.append(chunk, static_cast<size_t>(n));
    for (auto end = buffer.find('\n'); end != std::string::npos; end = buffer.find('\n')) {
      auto request = nlohmann::json::parse(buffer.substr(0, end), nullptr, false);
      buffer.erase(0, end + 1);
      std::string command = request.is_object() ? request.value("execute", "") : "";
      {
        std::lock_guard lock(mutex_);
        commands_.push_back(command);
      }
      auto line = answer_(request);
      if (!line && command == "qmp_capabilities") line = reply(request, nlohmann::json::object());
      if (!line && command == "query-status") line = reply(request, {{"status", "running"}, {"singlestep", false}, {"running", true}});
      if (line && !line->empty()) send_line(client, *line);
    }
  }
}

}  // namespace vhp::test
