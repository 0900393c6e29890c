#pragma once
// Who caused a change: an API client (with what the kernel says of it), or the daemon itself
// acting on a plug, a rule, a VM that came up. Every state change is logged once with it.
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace vhp {

struct Caller {
  std::string transport;  // "unix", "tcp", "vsock", "thunder"
  std::string address;    // socket path, "127.0.0.1:50312", "cid 3 port 1025"
  std::optional<unsigned> cid;              // vsock
  std::optional<uid_t> uid;                 // unix (SO_PEERCRED)
  std::optional<gid_t> gid;
  std::optional<pid_t> pid;
  std::vector<gid_t> groups;              // unix: every group, primary included (SO_PEERGROUPS)
  std::optional<std::string> ip;          // tcp: the peer's address without its port
  std::string describe() const;
  std::string identity() const;  // who, without what changes between connections: "unix uid 1000", "tcp 10.0.0.2"
};

// Why a state change happened, for the log line that records it.
struct Cause {
  std::string text;
  std::string caller;  // the API caller's identity() when a request caused it (a log field)
  static Cause request(const Caller& caller) { return {"request from " + caller.describe(), caller.identity()}; }
  static Cause plug() { return {"plug", ""}; }
  static Cause unplug() { return {"unplug", ""}; }
  static Cause start() { return {"start-up (-a)", ""}; }
  static Cause vm_up(const std::string& vm) { return {"VM " + vm + " came up", ""}; }
  static Cause vm_down(const std::string& vm) { return {"VM " + vm + " went down", ""}; }
  static Cause policy() { return {"the rules no longer allow it", ""}; }
  static Cause reload() { return {"the reloaded rules allow it", ""}; }
};

}  // namespace vhp
