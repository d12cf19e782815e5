# Shared build conventions for agentroot targets.

# Warnings for our own code. Third-party headers are included as SYSTEM
# (imported targets), so -Werror only bites on what we wrote.
function(agentroot_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Wunused -Woverloaded-virtual -Wdouble-promotion
    -Wformat=2 -Wimplicit-fallthrough)
  if(AGENTROOT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# agentroot_library(NAME <folder> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Creates target agentroot_<folder> with alias agentroot::<folder>; public
# headers live in <folder>/include/agentroot/<folder>/.
function(agentroot_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(target agentroot_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SOURCES})
  add_library(agentroot::${ARG_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(${target} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  agentroot_warnings(${target})
endfunction()

# agentroot_executable(NAME <exe> SOURCES ... DEPS ...)
function(agentroot_executable)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  agentroot_warnings(${ARG_NAME})
endfunction()

# agentroot_test(NAME <test> SOURCES ... DEPS ... LABELS ... [TIMEOUT s] [RESOURCE_LOCK l])
# A GoogleTest binary; each TEST becomes its own ctest entry with the labels.
function(agentroot_test)
  # The fuzz tree (clang, -fsanitize=fuzzer) builds and runs fuzz targets only.
  if(NOT AGENTROOT_BUILD_TESTS OR AGENTROOT_FUZZ)
    return()
  endif()
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS;RESOURCE_LOCK" ${ARGN})
  if(NOT ARG_LABELS)
    message(FATAL_ERROR "agentroot_test(${ARG_NAME}): LABELS is required")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${AGENTROOT_TEST_BIN_DIR})
  agentroot_warnings(${ARG_NAME})
  list(LENGTH ARG_LABELS label_count)
  if(label_count GREATER 1)
    # gtest_discover_tests (CMake 3.25, PRE_TEST) flattens PROPERTIES and
    # loses list values: a binary with several labels is one ctest entry.
    add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME} WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
    set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
    if(ARG_RESOURCE_LOCK)
      set_tests_properties(${ARG_NAME} PROPERTIES RESOURCE_LOCK "${ARG_RESOURCE_LOCK}")
    endif()
    return()
  endif()
  set(props LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
  if(ARG_RESOURCE_LOCK)
    list(APPEND props RESOURCE_LOCK "${ARG_RESOURCE_LOCK}")
  endif()
  gtest_discover_tests(${ARG_NAME}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES ${props})
endfunction()

# agentroot_benchmark(NAME <bench> SOURCES ... DEPS ...)
# Google Benchmark binaries, collected by scripts/bench.py through build/bench-bin.
function(agentroot_benchmark)
  if(NOT AGENTROOT_BUILD_BENCH)
    return()
  endif()
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench-bin)
  agentroot_warnings(${ARG_NAME})
endfunction()
