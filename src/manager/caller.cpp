#include "manager/caller.h"

namespace vhp {

std::string Caller::describe() const {
  std::string s = transport + " " + address;
  if (cid) s += " (cid " + std::to_string(*cid) + ")";
  if (uid) s += " (uid " + std::to_string(*uid) + ", gid " + std::to_string(gid.value_or(0)) + ", pid " + std::to_string(pid.value_or(0)) + ")";
  return s;
}

std::string Caller::identity() const {
  if (uid) return transport + " uid " + std::to_string(*uid);
  if (cid) return transport + " cid " + std::to_string(*cid);
  if (ip) return transport + " " + *ip;
  return transport + " " + address;
}

}  // namespace vhp
