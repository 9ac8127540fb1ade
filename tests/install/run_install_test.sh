#!/usr/bin/env bash
# Installs a troupe build into a temporary prefix, then configures, builds and
# runs the consumer project against it. Any failing step fails the test.
#
#   run_install_test.sh <troupe-build-dir> <consumer-source-dir>
#
# The consumer is built with the compiler and build type of <troupe-build-dir>
# so that the installed libraries and the consumer agree on the ABI.
set -euo pipefail

if (($# != 2)); then
  echo "usage: run_install_test.sh <troupe-build-dir> <consumer-source-dir>" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
consumer_dir=$(cd "$2" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/troupe-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt" | head -n 1; }
compiler=$(cache_value CMAKE_CXX_COMPILER)
build_type=$(cache_value CMAKE_BUILD_TYPE)
configure_args=(-DCMAKE_PREFIX_PATH="$prefix")
command -v ninja >/dev/null 2>&1 && configure_args+=(-G Ninja)
[[ -n $compiler ]] && configure_args+=(-DCMAKE_CXX_COMPILER="$compiler")
[[ -n $build_type ]] && configure_args+=(-DCMAKE_BUILD_TYPE="$build_type")

step() { echo "--- install test: $*"; }
fail() { echo "install test FAILED: $*" >&2; exit 1; }

step "cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" || fail "cmake --install"
[[ -f $prefix/include/troupe/troupe.hpp ]] || fail "include/troupe/troupe.hpp was not installed"

step "configure consumer ($compiler, ${build_type:-no build type})"
cmake -S "$consumer_dir" -B "$work/build" "${configure_args[@]}" ||
  fail "configuring the consumer (find_package(troupe) against $prefix)"

step "a component troupe was not built with is refused by name"
if cmake -S "$consumer_dir" -B "$work/refused" "${configure_args[@]}" -DTROUPE_EXTRA_COMPONENTS=no_such_component \
    >"$work/refused.log" 2>&1; then
  fail "find_package(troupe COMPONENTS no_such_component) succeeded"
fi
grep -q "'no_such_component' component" "$work/refused.log" ||
  { cat "$work/refused.log"; fail "the refusal does not name the missing component"; }

step "build consumer"
cmake --build "$work/build" || fail "building the consumer"

step "run consumer"
"$work/build/troupe_consumer" || fail "the consumer exited with status $?"

# A component with a dependency of its own, when this build has it: the
# consumer asks for it by name and finds SQLite through troupe's config.
if [[ -n $(find "$prefix" -name troupe-durable-component.cmake -print -quit) ]]; then
  step "configure, build and run a consumer of the durable component"
  cmake -S "$consumer_dir/../durable_consumer" -B "$work/durable" "${configure_args[@]}" ||
    fail "configuring the durable consumer (find_package(troupe COMPONENTS durable))"
  cmake --build "$work/durable" || fail "building the durable consumer"
  mkdir -p "$work/durable-data"
  "$work/durable/troupe_durable_consumer" "$work/durable-data" ||
    fail "the durable consumer exited with status $?"
fi
if [[ -n $(find "$prefix" -name troupe-ports-component.cmake -print -quit) ]]; then
  step "configure, build and run a consumer of the ports component"
  cmake -S "$consumer_dir/../ports_consumer" -B "$work/ports" "${configure_args[@]}" ||
    fail "configuring the ports consumer (find_package(troupe COMPONENTS ports))"
  cmake --build "$work/ports" || fail "building the ports consumer"
  "$work/ports/troupe_ports_consumer" || fail "the ports consumer exited with status $?"
fi
if [[ -n $(find "$prefix" -name troupe-gateway-component.cmake -print -quit) ]]; then
  step "configure, build and run a consumer of the gateway component"
  cmake -S "$consumer_dir/../gateway_consumer" -B "$work/gateway" "${configure_args[@]}" ||
    fail "configuring the gateway consumer (find_package(troupe COMPONENTS gateway))"
  cmake --build "$work/gateway" || fail "building the gateway consumer"
  "$work/gateway/troupe_gateway_consumer" || fail "the gateway consumer exited with status $?"
fi
echo "--- install test: passed"
