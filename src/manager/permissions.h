#pragma once
// Who may do what (general.api.permissions): the grant a caller gets when it connects, and the
// checks its requests, lists and events go through. Without the section every caller may do
// everything, as before. Names are resolved once, when the table is built, never per request.
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include "manager/caller.h"
#include "manager/commands.h"
#include "manager/events.h"
#include "policy/config.h"

namespace vhp {

class DeviceManager;

// What one permission entry lets its callers do.
struct Grant {
  std::string name;             // for logs: "permissions[1]"
  std::set<std::string> rights;  // of kApiActions
  std::optional<std::set<std::string>> vms;  // the VMs it may act on; nothing: every VM

  bool may(const std::string& right) const { return rights.contains(right); }
  bool manages(const std::string& vm) const { return !vms || vms->contains(vm); }
  bool manages_any(const std::vector<std::string>& names) const;
  bool everywhere() const { return !vms.has_value(); }
};

class Permissions {
 public:
  Permissions() = default;  // not configured
  // Resolves user and group names (NSS). Throws std::runtime_error naming one that does not exist.
  explicit Permissions(const std::vector<ApiPermission>& entries);

  bool configured() const { return configured_; }
  // Not configured: nullptr (everything allowed). Otherwise the first matching entry's grant, or a
  // grant of nothing when none matches.
  std::shared_ptr<const Grant> grant_for(const Caller& caller) const;

 private:
  struct Entry {
    std::set<unsigned> uids, gids, cids;
    std::vector<boost::asio::ip::network_v4> v4;
    std::vector<boost::asio::ip::network_v6> v6;
    bool matches_everyone = false;
    std::shared_ptr<const Grant> grant;
    bool matches(const Caller& caller) const;
  };
  bool configured_ = false;
  std::vector<Entry> entries_;
  std::shared_ptr<const Grant> nothing_ = std::make_shared<Grant>(Grant{"no permissions entry", {}, std::set<std::string>{}});
};

// Why a caller with `grant` may not run `command` (the right is checked before): a VM it does not
// manage, or a device in or only for such a VM. The text follows "Permission denied: ".
std::optional<std::string> scope_denial(const DeviceManager& manager, const Grant& grant, const Command& command);

// Whether a caller with `grant` hears of `event`: its VMs' events, and those of devices it may act on.
bool concerns(const DeviceManager& manager, const Grant& grant, const ManagerEvent& event);

}  // namespace vhp
