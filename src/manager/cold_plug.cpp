#include "manager/cold_plug.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/log_fields.h"
#include "vmm/cold_plug_args.h"

namespace vhp {

namespace asio = boost::asio;

namespace {

bool is_nvidia_display(const PciDevice& d) { return d.vendor_id == 0x10de && d.pci_class == 3; }

// getpwnam_r / getgrnam_r: names from the config, looked up only when vmm_args asks (a VM starting).
std::optional<uid_t> user_id(const std::string& name) {
  std::vector<char> buffer(16384);
  passwd entry{}, *found = nullptr;
  if (getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
  return found->pw_uid;
}
std::optional<gid_t> group_id(const std::string& name) {
  std::vector<char> buffer(16384);
  group entry{}, *found = nullptr;
  if (getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
  return found->gr_gid;
}

// chown without following a symlink put in the table's place: opened O_NOFOLLOW, then fchown.
std::optional<std::string> chown_table(const AcpiTable& t) {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  if (t.set_user) {
    auto id = user_id(*t.set_user);
    if (!id) return "getpwnam(): name not found: '" + *t.set_user + "'";
    uid = *id;
  }
  if (t.set_group) {
    auto id = group_id(*t.set_group);
    if (!id) return "getgrnam(): name not found: '" + *t.set_group + "'";
    gid = *id;
  }
  int fd = ::open(t.acpi_table.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::string(std::strerror(errno));
  std::optional<std::string> error;
  if (::fchown(fd, uid, gid) != 0) error = std::strerror(errno);
  ::close(fd);
  return error;
}

}  // namespace

std::vector<std::pair<PciDevice, PciMatch>> ColdPlug::pci_devices(const Policy& policy, const std::string& vm) const {
  std::vector<std::pair<PciDevice, PciMatch>> out;
  std::set<std::string> taken;
  for (const auto& d : manager_.registry().pci_devices()) {  // by address, as the reference's udev enumeration
    auto match = policy.match_pci(d);
    if (!match || match->skips(d) || taken.contains(d.address)) continue;
    if (match->iommu_add_all)
      for (const auto& member : d.iommu_group_members)
        if (const auto* m = manager_.registry().find_pci(member); m && taken.insert(member).second) out.emplace_back(*m, *match);
    if (taken.insert(d.address).second) out.emplace_back(d, *match);
  }
  std::ranges::stable_sort(out, {}, [](const auto& p) { return std::pair(p.second.order, p.first.address); });
  std::erase_if(out, [&](const auto& p) { return p.second.target_vm != vm; });
  return out;
}

void ColdPlug::check_required(const Policy& policy, const std::string& vm, bool any_device) const {
  const auto& groups = policy.config().pci;
  auto targets = [&](const PciRuleGroup& g) { return g.enabled && g.target_vm == vm; };
  if (std::ranges::none_of(groups, targets)) throw VmError("No PCI passthrough rules are configured for VM " + vm);
  if (!any_device) throw VmError("PCI passthrough is configured for VM " + vm + ", but no matching devices are present");
  auto devices = manager_.registry().pci_devices();
  for (const auto& g : groups) {
    if (!targets(g)) continue;
    for (const auto& s : g.allow)
      if (s.enabled && s.address && std::ranges::none_of(devices, [&](const PciDevice& d) { return s.matches(d); }))
        throw VmError("PCI device " + *s.address + " named by the rules for VM " + vm + " is not present");
  }
}

std::vector<std::string> ColdPlug::acpi_tables(const Policy& policy, const std::string& vm) const {
  std::vector<std::string> out;
  for (const auto& t : policy.acpi_tables(vm)) {
    struct stat st{};
    if (::stat(t.acpi_table.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      about_vm(vm).warn("ACPI table {} doesn't exist on the system", t.acpi_table);
      continue;
    }
    if (t.set_user || t.set_group) {
      if (auto error = chown_table(t)) {
        about_vm(vm).warn("Failed to chown ACPI table {}: {}", t.acpi_table, *error);
        continue;
      }
    }
    out.push_back(t.acpi_table);
  }
  return out;
}

asio::awaitable<std::vector<std::string>> ColdPlug::args(VmmArgs request) {
  auto policy = manager_.policy_ptr();  // this request's rules, whatever a reload swaps in while it binds
  const auto* vm = policy->config().find_vm(request.vm);
  if (!vm) throw VmError("VM " + request.vm + " is not found in the config file");
  auto devices = pci_devices(*policy, request.vm);
  if (request.require_pci) check_required(*policy, request.vm, !devices.empty());

  ColdPlugPlan plan;
  plan.has_pci_rules = std::ranges::any_of(policy->config().pci, [&](const PciRuleGroup& g) { return g.enabled && g.target_vm == request.vm; });
  plan.qemu_bus_prefix = request.qemu_bus_prefix;
  plan.qemu_bus_start_index = request.qemu_bus_start_index;
  plan.ovmf_code = policy->config().general.ovmf_code;
  plan.ovmf_vars = policy->config().general.ovmf_vars;
  for (const auto& [d, match] : devices) {
    if (match.auto_ovmf && is_nvidia_display(d)) plan.needs_ovmf = true;
    co_await pci_.prepare_cold_plug(d);  // the VM opens /dev/vfio/<group> at start
    plan.pci.push_back({d.address, match.qemu_use_root_bus, match.crosvm_use_root_bus});
  }
  plan.acpi_tables = acpi_tables(*policy, request.vm);
  for (const auto& d : manager_.registry().evdev_devices())
    if (auto match = policy->match_evdev(d); match && match->target_vm == request.vm) plan.evdev_nodes.push_back(d.device_node);
  auto args = cold_plug_args(vm->type, plan);
  about_vm(request.vm).info("VMM args for {}: {}", request.vm, fmt::join(args, " "));
  co_return args;
}

}  // namespace vhp
