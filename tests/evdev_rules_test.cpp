// evdevPassthrough rule semantics, the reference's config.py (_match_evdev 255-294,
// vm_for_evdev_device 388-421): criteria OR-ed, deny within the group, first group with a
// targetVm wins, prefix-anchored case-insensitive names.
#include <gtest/gtest.h>

#include "support/policy.h"

namespace vhp::evdev_rules_test {
namespace {

using test::make_policy;

std::shared_ptr<const Policy> evdev_rules(const std::string& groups) {
  return make_policy(R"({"vms": [{"name": "gui-vm", "type": "qemu", "socket": "/a"}, {"name": "vm2", "type": "qemu", "socket": "/b"}],
                         "evdevPassthrough": )" + groups + "}");
}

EvdevDevice keyboard() {
  EvdevDevice d;
  d.sys_path = "/sys/devices/platform/i8042/serio0/input/input3/event3";
  d.sys_name = "event3";
  d.name = "AT Translated Set 2 keyboard";
  d.bus = "i8042";
  d.device_node = "/dev/input/event3";
  d.path_tag = "platform-i8042-serio-0";
  d.properties = {{"ID_INPUT", "1"}, {"ID_INPUT_KEYBOARD", "1"}, {"ID_PATH_TAG", "platform-i8042-serio-0"}};
  return d;
}

std::optional<std::string> vm_for(const Policy& p, const EvdevDevice& d) {
  auto m = p.match_evdev(d);
  return m ? std::optional(m->target_vm) : std::nullopt;
}

TEST(EvdevRules, NameIsAPrefixAnchoredCaseInsensitiveRegex) {
  auto p = evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"name": "at translated"}]}])");
  EXPECT_EQ(vm_for(*p, keyboard()), "gui-vm");
  auto q = evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"name": "Set 2"}]}])");
  EXPECT_EQ(vm_for(*q, keyboard()), std::nullopt);  // re.match: anchored at the start
}

TEST(EvdevRules, PathTagAndPropertyValueEachMatchOnTheirOwn) {
  EXPECT_EQ(vm_for(*evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"pathTag": "platform-i8042-serio-0"}]}])"), keyboard()), "gui-vm");
  EXPECT_EQ(vm_for(*evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"property": "ID_INPUT_KEYBOARD", "value": "1"}]}])"), keyboard()),
            "gui-vm");
  auto d = keyboard();
  d.properties["ID_INPUT_KEYBOARD"] = "TRUE";
  EXPECT_EQ(vm_for(*evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"property": "ID_INPUT_KEYBOARD", "value": "true"}]}])"), d),
            "gui-vm");  // casefold equality
  EXPECT_EQ(vm_for(*evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"property": "ID_INPUT_KEYBOARD"}]}])"), d), std::nullopt);
  EXPECT_EQ(vm_for(*evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"property": "ID_INPUT_MOUSE", "value": "1"}]}])"), d), std::nullopt);
  EXPECT_EQ(vm_for(*evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"name": ""}]}])"), d), std::nullopt);  // empty: not a criterion
}

TEST(EvdevRules, DenyInTheGroupDisabledEntriesAndGroupsAndNoTargetGoOnToTheNextGroup) {
  auto p = evdev_rules(R"([
    {"targetVm": "gui-vm", "allow": [{"property": "ID_INPUT", "value": "1"}], "deny": [{"name": "AT Translated"}]},
    {"targetVm": "gui-vm", "disable": true, "allow": [{"name": "AT"}]},
    {"targetVm": "gui-vm", "allow": [{"name": "AT", "disable": true}]},
    {"allow": [{"name": "AT"}]},
    {"targetVm": "vm2", "tag": "kbd", "allow": [{"pathTag": "platform-i8042"}]}])");
  auto m = p->match_evdev(keyboard());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->target_vm, "vm2");
  EXPECT_EQ(m->tag, "kbd");
}

TEST(EvdevRules, FirstMatchingGroupWins) {
  auto p = evdev_rules(R"([{"targetVm": "gui-vm", "allow": [{"name": "AT"}]}, {"targetVm": "vm2", "allow": [{"name": "AT"}]}])");
  EXPECT_EQ(vm_for(*p, keyboard()), "gui-vm");
}

TEST(AcpiRules, EnabledTablesOfTheVmInConfigOrder) {
  auto p = make_policy(R"({"vms": [{"name": "audio-vm", "type": "qemu", "socket": "/a"}, {"name": "vm2", "type": "qemu", "socket": "/b"}],
    "acpiPassthrough": [
      {"targetVm": "audio-vm", "allow": [{"acpiTable": "/t/NHLT", "setUser": "microvm"}, {"acpiTable": "/t/SSDT", "disable": true}]},
      {"targetVm": "vm2", "allow": [{"acpiTable": "/t/DSDT"}]},
      {"targetVm": "audio-vm", "disable": true, "allow": [{"acpiTable": "/t/OFF"}]},
      {"targetVm": "audio-vm", "allow": [{"acpiTable": "/t/SSDT2", "setGroup": "kvm"}]}]})");
  auto tables = p->acpi_tables("audio-vm");
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].acpi_table, "/t/NHLT");
  EXPECT_EQ(tables[0].set_user, "microvm");
  EXPECT_EQ(tables[1].acpi_table, "/t/SSDT2");
  EXPECT_EQ(tables[1].set_group, "kvm");
}

}  // namespace
}  // namespace vhp::evdev_rules_test
