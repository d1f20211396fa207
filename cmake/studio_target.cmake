# Helpers shared by every studio library target: warnings, the shared precompiled header.

# One precompiled header (cmake/pch.h: torch, nlohmann-json) compiled once by studio_kernels, the
# lowest layer, and reused by every torch-heavy target. A #include <torch/torch.h> TU costs ~20 s on
# 2 cores; the PCH pays that once per build.
function(studio_use_torch_pch target)
  if(NOT STUDIO_PCH)
    return()
  endif()
  if(target STREQUAL "studio_kernels")
    target_precompile_headers(${target} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/pch.h)
  else()
    target_precompile_headers(${target} REUSE_FROM studio_kernels)
  endif()
endfunction()

function(studio_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# A library per folder: every .cpp in the folder (CONFIGURE_DEPENDS so new files are picked up).
function(studio_library name)
  cmake_parse_arguments(ARG "" "" "PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  add_library(${name} STATIC ${_srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  studio_warnings(${name})
endfunction()
