#pragma once
// Puts the current process under umockdev's LD_PRELOAD (re-executing itself once when needed).
// As root it first moves into a private network namespace with a large AF_UNIX datagram queue,
// because umockdev 0.17 aborts when more than ~10 uevents wait unread (net.unix.max_dgram_qlen).
namespace vhp::test {

void enter_mock_environment(int argc, char** argv);

}  // namespace vhp::test
