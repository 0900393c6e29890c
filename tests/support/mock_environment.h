#pragma once
// Puts the current process under umockdev's LD_PRELOAD (re-executing itself once when needed).
// As root it first moves into a private network namespace with a large AF_UNIX datagram queue,
// because umockdev 0.17 aborts when more than ~10 uevents wait unread (net.unix.max_dgram_qlen).
namespace vhp::test {

void enter_mock_environment(int argc, char** argv);

// From now on, adding a device to a testbed sends no automatic "add" uevent; only explicit uevents
// (Testbed::plug) announce devices, as a kernel announces a device once its sysfs entry is complete.
// Works only before the process's first testbed (umockdev caches the answer it relies on).
void disable_automatic_uevents();

}  // namespace vhp::test
