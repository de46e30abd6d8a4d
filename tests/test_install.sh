#!/usr/bin/env bash
# tests/test_install.sh MODE SRC BUILD [SANITIZE] — install mpx and build
# an example out of tree against the installed copy, as a user would: with
# `pkg-config --cflags --libs mpx`, once against the shared library and
# once against the static one, and run both without LD_LIBRARY_PATH.
#
#   staged   installs BUILD into a staging root (meson install --destdir)
#            and builds with PKG_CONFIG_SYSROOT_DIR set to it, which pkgconf
#            also applies to the rpath the pkg-config file carries.
#   prefix   configures SRC afresh with a prefix of its own and the tests,
#            the benchmark and the examples left out (-Dtests=false
#            -Dbench=false -Dexamples=false), checks that it builds nothing
#            but what it installs and installs what BUILD installs, and
#            installs it for real, as `ninja install` into ~/.local would.
#            It compiles the library once more: the plain build runs it.
#
# The programs run under no_leftovers (from BUILD): with a private TMPDIR,
# as a child subreaper, so that a stage process or a runtime directory left
# behind fails the test, as tests/harness.c does for the C tests.
set -euo pipefail
mode=$1 src=$2 build=$3 sanitize=${4:-none}
# What a caller's environment could add would hide a missing rpath
# (LD_LIBRARY_PATH) or supply one (ld reads LD_RUN_PATH when no -rpath is
# given): the programs must find libmpx by what pkg-config gave them.
unset LD_LIBRARY_PATH LD_RUN_PATH
build=$(cd "$build" && pwd)
guard=$build/no_leftovers
[ -x "$guard" ] || { echo "no $guard (build first)"; exit 1; }
tmp=$(mktemp -d /tmp/mpxtest-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The files an install made under ROOT, one relative path a line.
installed() { (cd "$1" && find . \( -type f -o -type l \) | sort); }
# BUILD's prefix, as meson was told.
build_prefix() {
  meson introspect --buildoptions "$build" | python3 -c \
    'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))'
}

case $mode in
staged)
  meson install -C "$build" --no-rebuild --destdir "$tmp/root" >/dev/null
  root=$tmp/root
  ;;
prefix)
  # A default build installs the same files: compare with BUILD's.
  meson install -C "$build" --no-rebuild --destdir "$tmp/stage" >/dev/null
  want=$(installed "$tmp/stage$(build_prefix)")
  root=$tmp/prefix
  log=$tmp/build.log
  meson setup "$tmp/build" "$src" --prefix="$root" \
    -Dtests=false -Dbench=false -Dexamples=false >"$log" 2>&1 &&
    ninja -C "$tmp/build" >>"$log" 2>&1 || { cat "$log"; echo "the build with the options off failed"; exit 1; }
  echo "with -Dtests=false -Dbench=false -Dexamples=false: $(grep -c '^\[' "$log") build steps"
  for d in tests bench examples; do
    [ ! -e "$tmp/build/$d" ] || { echo "$d/ was configured: $(cd "$tmp/build" && find "$d" -type f | head)"; exit 1; }
  done
  [ ! -e "$tmp/build/no_leftovers" ] || { echo "no_leftovers was built"; exit 1; }
  # Every program or library built is one that is installed.
  inst=$(meson introspect --installed "$tmp/build")
  while IFS= read -r f; do
    grep -qF "\"$tmp/build/$f\"" <<<"$inst" || { echo "built but not installed: $f"; exit 1; }
  done < <(cd "$tmp/build" && find . -path ./meson-private -prune -o -type f -perm -u+x -printf '%P\n')
  ninja -C "$tmp/build" install >"$log" 2>&1 || { cat "$log"; echo "ninja install failed"; exit 1; }
  got=$(installed "$root")
  [ "$got" = "$want" ] || { echo "installed files differ from a default build's:"; diff <(echo "$want") <(echo "$got") || true; exit 1; }
  ;;
*) echo "usage: $0 staged|prefix SRC BUILD [SANITIZE]"; exit 2;;
esac

pc=$(find "$root" -name mpx.pc)
[ -n "$pc" ] || { echo "no mpx.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
for f in "$libdir/libmpx.so" "$libdir/libmpx.a"; do
  [ -e "$f" ] || { echo "missing $f"; exit 1; }
done
inc=$(find "$root" -path '*/include/mpx.h')
for h in error.h graph.h stage.h short.h wiring.h shared.h builtins/fn.h builtins/print.h builtins/zip.h builtins/io.h; do
  [ -f "$(dirname "$inc")/mpx/$h" ] || { echo "missing header mpx/$h"; exit 1; }
done
echo "installed: $(cd "$root" && find . -name 'libmpx*' -o -name 'mpx.pc' -o -name 'mpx.h' -o -name 'mpx-top' | sort | tr '\n' ' ')"

export PKG_CONFIG_PATH="$(dirname "$pc")"
[ "$mode" = prefix ] || export PKG_CONFIG_SYSROOT_DIR="$root"
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
run "the static build" ./count_static
[ "$out" = "$expected" ] || { echo "static build printed: $out"; exit 1; }
! ldd ./count_static | grep -q libmpx || { echo "static build links libmpx.so"; exit 1; }
if [ "$mode" = staged ] && [ "$(build_prefix)" = /usr ]; then
  # Under /usr the pkg-config file carries no rpath (meson.build): only a
  # real install puts libmpx where the loader looks.
  ! grep -q rpath <<<"$(pkg-config --libs mpx)" || { echo "an rpath under prefix /usr"; exit 1; }
  echo "the static build prints 11..15; prefix /usr: the shared build is not run from the staging root"
  exit 0
fi
run "the shared build" ./count_shared
[ "$out" = "$expected" ] || { echo "shared build printed: $out"; exit 1; }
# The loader found the installed copy, not another one on its path.
ldd_line=$(ldd ./count_shared | grep libmpx | sed 's/^[[:space:]]*//')
case "$ldd_line" in *" => $libdir/libmpx.so"*) ;; *) echo "not loaded from $libdir: $ldd_line"; exit 1;; esac
echo "both builds print 11..15 without LD_LIBRARY_PATH; libmpx from $ldd_line"
