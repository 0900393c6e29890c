#pragma once
// Which run of a VM a control socket belongs to: a VM that restarts binds a new socket, so the
// file's device, inode and birth time change even when the restart is quicker than we look.
#include <string>

namespace vhp {

// "device:inode:birth" of the socket at `path`; "" when there is no socket there.
std::string socket_identity(const std::string& path);

}  // namespace vhp
