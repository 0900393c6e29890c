// general.api parsing: defaults, every key, and errors that name the JSON path.
#include <gtest/gtest.h>

#include "policy/config.h"

namespace vhp {
namespace {

using json = nlohmann::json;

TEST(ApiConfig, ReferenceDefaultsWhenTheSectionIsAbsent) {
  auto c = parse_config(json::object(), "test");
  EXPECT_TRUE(c.api.enable);
  EXPECT_TRUE(c.api.transports.empty());  // the reference listens nowhere without transports
  EXPECT_EQ(c.api.host, "127.0.0.1");
  EXPECT_EQ(c.api.port, 2000);
  EXPECT_EQ(c.api.unix_socket, "/var/lib/vhotplug/vhotplug.sock");
  EXPECT_EQ(c.api.max_line_bytes, 1024u * 1024u);
  EXPECT_EQ(c.api.max_clients, 64u);
}

TEST(ApiConfig, BuiltInDefaultListensOnTheUnixSocket) {
  auto c = builtin_config();
  EXPECT_EQ(c.api.transports, std::vector<std::string>{"unix"});
  EXPECT_EQ(c.source, "built-in default");
}

TEST(ApiConfig, EveryKey) {
  auto c = parse_config(json::parse(R"({"general":{"api":{"enable":true,"host":"0.0.0.0","port":2001,
      "transports":["tcp","vsock","unix","tcp"],"allowedCids":[3,4,5],"unixSocket":"/run/v.sock",
      "unixSocketUser":"microvm","unixSocketGroup":"kvm","unixSocketMode":"0660","allowedUsers":["root",1000],
      "allowedGroups":["kvm"],"maxLineBytes":4096,"maxClients":8,"sendQueueBytes":65536,"sendTimeoutMs":500}},
      "crosvmUseRootBus":true})"), "test");
  const auto& a = c.api;
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 2001);
  EXPECT_EQ(a.transports, (std::vector<std::string>{"tcp", "vsock", "unix"}));
  EXPECT_EQ(a.allowed_cids, (std::vector<unsigned>{3, 4, 5}));
  EXPECT_EQ(a.unix_socket, "/run/v.sock");
  EXPECT_EQ(a.unix_socket_user, "microvm");
  EXPECT_EQ(a.unix_socket_group, "kvm");
  EXPECT_EQ(a.unix_socket_mode, 0660u);
  ASSERT_EQ(a.allowed_users.size(), 2u);
  EXPECT_EQ(a.allowed_users[0].name, "root");
  EXPECT_EQ(a.allowed_users[1].id, 1000u);
  EXPECT_EQ(a.max_line_bytes, 4096u);
  EXPECT_EQ(a.max_clients, 8u);
  EXPECT_EQ(a.send_queue_bytes, 65536u);
  EXPECT_EQ(a.send_timeout_ms, 500);
  EXPECT_EQ(c.warnings, std::vector<std::string>{"(top level).crosvmUseRootBus: unknown key, ignored"});
}

TEST(ApiConfig, NullAllowedCidsAllowsEveryCid) {
  auto c = parse_config(json::parse(R"({"general":{"api":{"allowedCids":null}}})"), "test");
  EXPECT_TRUE(c.api.allowed_cids.empty());
}

struct Bad {
  const char* config;
  const char* error;
};

class BadApiConfig : public testing::TestWithParam<Bad> {};

TEST_P(BadApiConfig, NamesThePathAndTheProblem) {
  try {
    parse_config(json::parse(GetParam().config), "test");
    FAIL() << "accepted " << GetParam().config;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), GetParam().error);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadApiConfig,
    testing::Values(
        Bad{R"([])", R"((top level): expected an object, got [])"},
        Bad{R"({"general":[]})", R"(general: expected an object, got [])"},
        Bad{R"({"general":{"api":{"port":"2000"}}})", R"(general.api.port: expected an integer 1-65535, got "2000")"},
        Bad{R"({"general":{"api":{"port":70000}}})", R"(general.api.port: expected an integer 1-65535, got 70000)"},
        Bad{R"({"general":{"api":{"transports":["usb"]}}})",
            R"(general.api.transports[0]: expected "tcp", "vsock" or "unix", got "usb")"},
        Bad{R"({"general":{"api":{"transports":"tcp"}}})", R"(general.api.transports: expected a list, got "tcp")"},
        Bad{R"({"general":{"api":{"allowedCids":[3,"x"]}}})", R"(general.api.allowedCids[1]: expected an integer 0-4294967294, got "x")"},
        Bad{R"({"general":{"api":{"unixSocketMode":"rw"}}})", R"(general.api.unixSocketMode: expected an octal mode such as "0660", got "rw")"},
        Bad{R"({"general":{"api":{"enable":"yes"}}})", R"(general.api.enable: expected true or false, got "yes")"},
        Bad{R"({"general":{"api":{"allowedUsers":[true]}}})", R"(general.api.allowedUsers[0]: expected a name or a numeric id, got true)"},
        Bad{R"({"general":{"api":{"maxLineBytes":10}}})", R"(general.api.maxLineBytes: expected an integer 256-67108864, got 10)"}));

}  // namespace
}  // namespace vhp
