# The build trees' configurations, one place for the scripts that build them (sourced).
# -g1: line tables only (symbolized backtraces and sanitizer reports, no variables), which compiles
# about a quarter faster than -g. VHP_UNITY: a full build in half the work (docs/TESTING.md); to
# rebuild one file at a time, configure a tree of your own without it. src/ adds -Os where a tree
# optimizes (src/CMakeLists.txt).
plain_tree=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DVHP_UNITY=ON)
asan_tree=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" -DVHP_SANITIZE=ON -DVHP_BUILD_BENCH=OFF -DVHP_UNITY=ON)
fuzz_tree=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DVHP_FUZZ=ON -DVHP_UNITY=ON)
