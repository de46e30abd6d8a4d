#!/usr/bin/env bash
# tests/test_install.sh SRC BUILD SANITIZE — install mpx from BUILD into a
# staging root and build an example out of tree against the installed
# copy, as a user would: with `pkg-config --cflags --libs mpx`, once
# against the shared library and once against the static one.  Both run
# under no_leftovers (from BUILD): with a private TMPDIR, as a child
# subreaper, so that a stage process or a runtime directory left behind
# fails the test, as tests/harness.c does for the C tests.
set -euo pipefail
src=$1 build=$2 sanitize=${3:-none}
guard=$(cd "$build" && pwd)/no_leftovers
[ -x "$guard" ] || { echo "no $guard (build first)"; exit 1; }
tmp=$(mktemp -d /tmp/mpxtest-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --destdir "$tmp/root" >/dev/null
pc=$(find "$tmp/root" -name mpx.pc)
[ -n "$pc" ] || { echo "no mpx.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
for f in "$libdir/libmpx.so" "$libdir/libmpx.a"; do
  [ -e "$f" ] || { echo "missing $f"; exit 1; }
done
inc=$(find "$tmp/root" -path '*/include/mpx.h')
for h in error.h graph.h stage.h short.h wiring.h builtins/fn.h builtins/print.h builtins/zip.h builtins/io.h; do
  [ -f "$(dirname "$inc")/mpx/$h" ] || { echo "missing header mpx/$h"; exit 1; }
done
echo "installed: $(cd "$tmp/root" && find . -name 'libmpx*' -o -name 'mpx.pc' -o -name 'mpx.h' | sort | tr '\n' ' ')"

export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
flags=()
[ "$sanitize" = none ] || flags=(-fsanitize="$sanitize")
cp "$src/examples/count_addx.c" "$tmp/"
cd "$tmp"
echo "cc count_addx.c \$(pkg-config --cflags --libs mpx): $(pkg-config --cflags --libs mpx)"
cc "${flags[@]}" -o count_shared count_addx.c $(pkg-config --cflags --libs mpx)
cc "${flags[@]}" -o count_static count_addx.c $(pkg-config --cflags mpx) \
  "$libdir/libmpx.a" $(pkg-config --libs libzmq) -pthread

expected=$(printf '%s\n' 11 12 13 14 15)
# 125 is the guard's: the program left a process or a file behind (named
# on stderr above it).
run() { # name, command...
  local name=$1 rc=0
  shift
  out=$("$guard" "$@") || rc=$?
  [ "$rc" -ne 125 ] || { echo "$name left a process or a file behind, or could not be run"; exit 1; }
  [ "$rc" -eq 0 ] || { echo "$name exited with status $rc"; exit 1; }
}
run "the shared build" env LD_LIBRARY_PATH="$libdir" ./count_shared
ldd_line=$(LD_LIBRARY_PATH="$libdir" ldd ./count_shared | grep libmpx)
case "$ldd_line" in *"$tmp"*) ;; *) echo "not linked against the installed copy: $ldd_line"; exit 1;; esac
[ "$out" = "$expected" ] || { echo "shared build printed: $out"; exit 1; }
run "the static build" ./count_static
[ "$out" = "$expected" ] || { echo "static build printed: $out"; exit 1; }
! ldd ./count_static | grep -q libmpx || { echo "static build links libmpx.so"; exit 1; }
echo "both builds print 11..15"
