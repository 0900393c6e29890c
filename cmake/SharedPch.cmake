# vhp_shared_pch(NAME LIBS <libs…> HEADERS <headers…> TARGETS <targets…>)
# The plain tree's test and benchmark files share one precompiled header of the heavy third-party
# headers (a fifth of a test file's compile at -O2); a unity tree parses them once a unit anyway.
# NAME is a target of its own, linked to LIBS only, because GCC takes a PCH only where each macro it
# was built with is defined alike (a target's private definitions would refuse it to the others).
function(vhp_shared_pch name)
  cmake_parse_arguments(PCH "" "" "LIBS;HEADERS;TARGETS" ${ARGN})
  if(VHP_UNITY)
    return()
  endif()
  file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp CONTENT "// the precompiled header's own translation unit\n")
  add_library(${name} OBJECT ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp)
  target_link_libraries(${name} PRIVATE ${PCH_LIBS})
  target_precompile_headers(${name} PRIVATE ${PCH_HEADERS})
  foreach(target IN LISTS PCH_TARGETS)
    target_precompile_headers(${target} REUSE_FROM ${name})
  endforeach()
endfunction()
