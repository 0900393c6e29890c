#include "manager/placements.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "manager/identity.h"

namespace vhp {

const Attachment* Placements::attachment(const UsbDevice& d) const {
  auto it = attached_.find(d.sys_path);
  return it != attached_.end() && it->second.is(d) ? &it->second : nullptr;
}

void Placements::record_attached(const UsbDevice& d, const std::string& vm, const Cause& cause) {
  attached_[d.sys_path] = Attachment{vm, d.busnum, d.devnum};
  ++attachments_version_;
  about(d).vm(vm).caller(cause.caller).info("usb {}: attached to {} ({})", friendly_name(d), vm, cause.text);
}

std::optional<Attachment> Placements::record_detached(const UsbDevice& d, const Cause& cause) {
  auto it = attached_.find(d.sys_path);
  if (it == attached_.end()) return std::nullopt;
  Attachment gone = it->second;
  attached_.erase(it);
  ++attachments_version_;
  about(d).vm(gone.vm).caller(cause.caller).info("usb {}: detached from {} ({})", friendly_name(d), gone.vm, cause.text);
  return gone;
}

std::vector<std::string> Placements::attached_to(const std::string& vm) const {
  std::vector<std::string> out;
  for (const auto& [path, a] : attached_)
    if (a.vm == vm) out.push_back(path);
  return out;
}

std::optional<std::string> Placements::wanted(const UsbDevice& d) const {
  auto it = wanted_.find(d.sys_path);
  return it == wanted_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

void Placements::want(const UsbDevice& d, const std::string& vm, const Cause& cause) {
  auto [it, added] = wanted_.insert_or_assign(d.sys_path, vm);
  (void)it;
  about(d).vm(vm).caller(cause.caller)
      .debug("usb {}: belongs on {} ({}{})", friendly_name(d), vm, cause.text, added ? "" : ", replacing an earlier wish");
}

void Placements::unwant(const UsbDevice& d, const Cause& cause) {
  if (wanted_.erase(d.sys_path))
    about(d).caller(cause.caller).debug("usb {}: belongs on no VM now ({})", friendly_name(d), cause.text);
}

std::vector<std::string> Placements::wanted_on(const std::string& vm) const {
  std::vector<std::string> out;
  for (const auto& [path, wanted_vm] : wanted_)
    if (wanted_vm == vm) out.push_back(path);
  return out;
}

void Placements::suspended(const UsbDevice& d, const std::string& vm) { suspended_[persistent_id(d)] = vm; }

std::optional<std::string> Placements::take_suspended(const UsbDevice& d) {
  auto it = suspended_.find(persistent_id(d));
  if (it == suspended_.end()) return std::nullopt;
  auto vm = it->second;
  suspended_.erase(it);
  return vm;
}

void Placements::ask(const UsbDevice& d, std::vector<std::string> allowed_vms) { pending_[d.sys_path] = std::move(allowed_vms); }

void Placements::answered(const UsbDevice& d) { pending_.erase(d.sys_path); }

void Placements::unplugged(const UsbDevice& d) {
  pending_.erase(d.sys_path);
  wanted_.erase(d.sys_path);
}

bool Placements::is_disconnected(const UsbDevice& d) const {
  const auto& set = store_.state().disconnected_devices;
  if (set.contains(persistent_id(d))) return true;
  return std::ranges::any_of(persistent_id_fallbacks(d), [&](const std::string& id) { return set.contains(id); });
}

void Placements::set_disconnected(const UsbDevice& d, bool disconnected, const Cause& cause) {
  if (disconnected == is_disconnected(d)) return;
  store_.update([&](PersistentState& s) {  // one write: both forms, or neither
    if (disconnected) s.disconnected_devices.insert(persistent_id(d));
    else s.disconnected_devices.erase(persistent_id(d));
    if (!disconnected)  // also the forms the reference wrote, or the device would stay blocked
      for (const auto& id : persistent_id_fallbacks(d)) s.disconnected_devices.erase(id);
  });
  about(d).caller(cause.caller)
      .info("usb {}: {} ({})", friendly_name(d), disconnected ? "kept on the host from now on" : "may be attached again", cause.text);
}

std::optional<std::string> Placements::saved_choice(const UsbDevice& d) const {
  const auto& map = store_.state().selected_vms;
  if (auto it = map.find(persistent_id(d)); it != map.end()) return it->second;
  for (const auto& id : persistent_id_fallbacks(d))
    if (auto it = map.find(id); it != map.end()) return it->second;
  return std::nullopt;
}

void Placements::migrate_reference_ids(const std::vector<UsbDevice>& devices) {
  std::vector<std::pair<std::string, std::string>> moved;  // (old -> new, the device's id)
  store_.update([&](PersistentState& s) {
    std::set<std::string> used;
    for (const auto& d : devices)
      for (const auto& old_id : persistent_id_fallbacks(d)) {
        if (s.disconnected_devices.contains(old_id)) {
          s.disconnected_devices.insert(persistent_id(d));
          used.insert(old_id);
        }
        if (auto it = s.selected_vms.find(old_id); it != s.selected_vms.end()) {
          s.selected_vms.try_emplace(persistent_id(d), it->second);
          used.insert(old_id);
        }
        if (used.contains(old_id)) moved.emplace_back(old_id + " -> " + persistent_id(d), persistent_id(d));
      }
    for (const auto& old_id : used) {
      s.disconnected_devices.erase(old_id);
      s.selected_vms.erase(old_id);
    }
  });
  for (const auto& [m, id] : moved) LogFields().device(id).info("state: the reference's entry {} rewritten in our identity", m);
}

void Placements::save_choice(const UsbDevice& d, const std::string& vm, const Cause& cause) {
  if (saved_choice(d) == vm) return;
  store_.set_selected_vm(persistent_id(d), vm);
  about(d).vm(vm).caller(cause.caller).info("usb {}: {} saved as its VM ({})", friendly_name(d), vm, cause.text);
}

}  // namespace vhp
