# One place for warnings, visibility and sanitizer flags (docs/style.md).

function(troupe_set_options target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
      -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
      -Wimplicit-fallthrough)
    # Not -Wnull-dereference: GCC 12 reports false positives at -O2 through
    # inlined std::vector::front() and similar.
    if(TROUPE_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  # Clang checks the lock rules written as annotations
  # (mailbox/include/troupe/mailbox/thread_annotations.hpp). A broken rule is a
  # bug, not a style matter: an error in every clang build, with or without
  # TROUPE_WERROR. (GCC has no such analysis; the annotations expand to nothing.)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety -Werror=thread-safety)
  endif()
endfunction()

# Sanitizers apply to everything in the build (libraries, tests, examples) so
# that instrumented and uninstrumented code never mix. Debug information comes
# from the build type (scripts/test: line tables, enough for the reports).
# UBSan without its `function` check (a call through a function pointer of
# another type): clang 14 cannot compile some coroutines with it ("Cannot
# represent a difference across sections"; a task<> handler awaiting
# rpc_client's call_on, tests/gateway); every other UBSan check stays on.
set(troupe_ubsan_flags -fsanitize=address,undefined -fno-sanitize=function -fno-sanitize-recover=all)
if(TROUPE_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(TROUPE_SANITIZE STREQUAL "address")
  add_compile_options(${troupe_ubsan_flags} -fno-omit-frame-pointer)
  add_link_options(${troupe_ubsan_flags})
elseif(NOT TROUPE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "TROUPE_SANITIZE must be '', 'thread' or 'address'")
endif()

# Fuzzing (tests/fuzz): libFuzzer's coverage instrumentation and ASan+UBSan on
# everything, so the code under test is instrumented too; tests/fuzz links its
# targets with -fsanitize=fuzzer (libFuzzer's main). TROUPE_SANITIZE may be
# empty or 'address' (the same sanitizers): scripts/test's asan build is also its
# fuzz build, so CI compiles the tree once with ASan, not twice.
if(TROUPE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TROUPE_FUZZ needs clang (libFuzzer)")
  endif()
  if(TROUPE_SANITIZE STREQUAL "")
    add_compile_options(${troupe_ubsan_flags} -fno-omit-frame-pointer)
    add_link_options(${troupe_ubsan_flags})
  elseif(NOT TROUPE_SANITIZE STREQUAL "address")
    message(FATAL_ERROR "TROUPE_FUZZ brings ASan+UBSan: TROUPE_SANITIZE must be empty or 'address'")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# troupe_add_library(<name> SOURCES ... [DEPENDS ...] [COMPONENT <component> PACKAGES <find_dependency args>...])
# Defines troupe_<name> with alias troupe::<name>; public headers in <name>/include
# (or the folder's include/), private ones in src/ if there is one.
# Without COMPONENT the library is part of the core export set (troupe-targets).
# With COMPONENT it gets an export set of its own and a troupe-<component>-component.cmake
# that find_package(troupe COMPONENTS <component>) includes: one find_dependency() per
# PACKAGES entry (each a quoted argument list, e.g. "SQLite3"), then its targets. A user
# who does not ask for the component never looks for its dependencies.
function(troupe_add_library name)
  cmake_parse_arguments(ARG "" "COMPONENT" "SOURCES;DEPENDS;PACKAGES" ${ARGN})
  add_library(troupe_${name} ${ARG_SOURCES})
  add_library(troupe::${name} ALIAS troupe_${name})
  set_target_properties(troupe_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME troupe_${name}
    CXX_VISIBILITY_PRESET default POSITION_INDEPENDENT_CODE ON)
  target_include_directories(troupe_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_include_directories(troupe_${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  endif()
  target_link_libraries(troupe_${name} PUBLIC ${ARG_DEPENDS})
  troupe_set_options(troupe_${name})
  if(ARG_COMPONENT)
    set(export_set troupe-${ARG_COMPONENT}-targets)
  else()
    set(export_set troupe-targets)
  endif()
  install(TARGETS troupe_${name} EXPORT ${export_set}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  if(ARG_COMPONENT)
    install(EXPORT ${export_set} NAMESPACE troupe:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/troupe)
    set(component_file ${PROJECT_BINARY_DIR}/troupe-${ARG_COMPONENT}-component.cmake)
    set(text "# find_package(troupe COMPONENTS ${ARG_COMPONENT}): its dependencies, then its targets.\n")
    foreach(package IN LISTS ARG_PACKAGES)
      string(APPEND text "find_dependency(${package})\n")
    endforeach()
    string(APPEND text "include(\"\${CMAKE_CURRENT_LIST_DIR}/${export_set}.cmake\")\n")
    file(WRITE ${component_file} "${text}")
    install(FILES ${component_file} DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/troupe)
  endif()
endfunction()

# troupe_add_test(<name> SOURCES ... [DEPENDS ...] [LABELS ...] [TIMEOUT s] [OWN_MAIN])
# One GoogleTest executable registered as one CTest test. OWN_MAIN: the sources
# define main() (multi-process tests, whose executable is also the child program).
function(troupe_add_test name)
  cmake_parse_arguments(ARG "OWN_MAIN" "TIMEOUT" "SOURCES;DEPENDS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPENDS} GTest::gtest Threads::Threads)
  if(NOT ARG_OWN_MAIN)
    target_link_libraries(${name} PRIVATE GTest::gtest_main)
  endif()
  troupe_set_options(${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
  troupe_set_test_environment(${name})
endfunction()

# troupe_set_test_environment(<test>): the sanitizer options a test runs with.
function(troupe_set_test_environment test)
  if(TROUPE_SANITIZE STREQUAL "thread")
    set_tests_properties(${test} PROPERTIES ENVIRONMENT
      "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${PROJECT_SOURCE_DIR}/tests/tsan.supp")
  elseif(TROUPE_SANITIZE STREQUAL "address")
    set_tests_properties(${test} PROPERTIES ENVIRONMENT
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
endfunction()
