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
echo "--- install test: passed"
