#pragma once
// Whether some process (a VM's QEMU, which grabs the node it passes through) holds an evdev node
// exclusively: the reference's EVIOCGRAB probe, released at once when it succeeds.
#include <string>

namespace vhp {

// True only when the grab is refused with EBUSY; a node that cannot be opened or is not an evdev
// node counts as free (the VM's own attach then says why).
bool evdev_grabbed_elsewhere(const std::string& device_node);

}  // namespace vhp
