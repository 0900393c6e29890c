// vhotplugcli against the reference CLI: for each case recorded from the reference
// (tests/data/cli, see its README), a server gives our CLI the same daemon answer; the request it
// sends must mean the same, and its standard output, standard error and exit code must be the
// reference's byte for byte.
#include <filesystem>
#include <fstream>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::cli_compat_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Answers the first line of its one client with `answer`, then waits for the client to leave.
class OneAnswer {
 public:
  OneAnswer(const std::string& path, std::string answer) : path_(path), answer_(std::move(answer)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 1) != 0) throw std::runtime_error("listen");
    thread_ = std::thread([this] {
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      request_ = test::read_line_fd(client);
      auto line = answer_ + "\n";
      (void)!::send(client, line.data(), line.size(), MSG_NOSIGNAL);
      char c;
      while (::read(client, &c, 1) > 0) {
      }
      ::close(client);
    });
  }
  ~OneAnswer() {
    if (thread_.joinable()) {  // a client that never came: one that leaves at once ends the wait
      int fd = test::connect_unix(path_);
      if (fd >= 0) ::close(fd);
      thread_.join();
    }
    ::close(fd_);
  }
  // The request line, once the client has left.
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  int fd_ = -1;
  std::string path_, answer_, request_;
  std::thread thread_;
};

std::vector<std::string> cases() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(std::string(VHP_TEST_DATA) + "/cli"))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::ranges::sort(names);
  return names;
}

class ReferenceCli : public testing::TestWithParam<std::string> {};

TEST_P(ReferenceCli, SameRequestSameOutputSameExitCode) {
  json recorded = json::parse(std::ifstream(std::string(VHP_TEST_DATA) + "/cli/" + GetParam() + ".json"));
  test::TempDir dir;
  std::string socket = dir / "api.sock";
  std::optional<OneAnswer> server;
  if (!recorded["answer"].is_null()) server.emplace(socket, recorded["answer"].get<std::string>());
  std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", socket};
  for (const auto& a : recorded["args"]) argv.push_back(a);
  auto result = test::run_capture(argv);
  EXPECT_EQ(result.out, recorded["stdout"].get<std::string>());
  EXPECT_EQ(result.err, recorded["stderr"].get<std::string>());
  EXPECT_EQ(result.exit_code, recorded["exit_code"].get<int>());
  if (server && !recorded["request"].is_null()) {  // the same meaning; the spacing is Python's there
    auto ours = json::parse(server->request(), nullptr, false);
    EXPECT_EQ(ours, json::parse(recorded["request"].get<std::string>())) << server->request();
  }
}

INSTANTIATE_TEST_SUITE_P(Recorded, ReferenceCli, testing::ValuesIn(cases()), [](const auto& info) { return info.param; });

}  // namespace
}  // namespace vhp::cli_compat_test
