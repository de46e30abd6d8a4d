#!/usr/bin/env bash
# tests/test_must_check.sh SRC CC... — the calls whose result a program
# must look at (MPX_MUST_CHECK in mpx/error.h) warn under -Wall when the
# result is dropped, as a user's compiler would show it; a checked call
# compiles clean under -Werror; C23's [[nodiscard]] lets a cast to void
# drop one on purpose; defining MPX_MUST_CHECK empty turns it off.
set -euo pipefail
src=$1; shift
cc=("$@")
tmp=$(mktemp -d /tmp/mpxtest-mustcheck-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0

write() { # name, body of a stage callback and of main
  cat > "$tmp/$1.c" <<C
#include <mpx.h>
static int cb(mpx_stage_t *st)
{
$2
    return 0;
}
static const mpx_stage_def_t def = {.name = "cb", .setup = cb};
int main(void)
{
    mpx_graph_t *g = mpx_stage(&def, NULL);
$3
    mpx_node_destroy(&g);
    return 0;
}
C
}

expect_warnings() { # name, flags, calls that must be named in a warning
  local name=$1 flags=$2; shift 2
  local out before=$fails
  # shellcheck disable=SC2086
  out=$("${cc[@]}" $flags -Wall -I"$src/include" -c -o "$tmp/$name.o" "$tmp/$name.c" 2>&1) || true
  for call in "$@"; do
    # The warning is on the call's line: clang does not name the function.
    local line
    line=$(grep -n "^ *$call(" "$tmp/$name.c" | cut -d: -f1)
    if ! grep -E "^[^:]*$name\.c:$line:[0-9]+: (warning|error):" <<<"$out" |
         grep -q -E 'unused-result|warn_unused_result|nodiscard'; then
      echo "FAIL $name ($flags): no warning for $call on line $line; the compiler said:"
      echo "$out"
      fails=$((fails + 1))
    fi
  done
  [ "$fails" -ne "$before" ] || echo "ok   $name: dropped results of $* warned"
}

expect_clean() { # name, flags
  local out
  # shellcheck disable=SC2086
  if ! out=$("${cc[@]}" $2 -Wall -Wextra -Werror -I"$src/include" -c -o "$tmp/$1.o" "$tmp/$1.c" 2>&1); then
    echo "FAIL $1 ($2): should compile clean under -Werror; the compiler said:"
    echo "$out"
    fails=$((fails + 1))
  else
    echo "ok   $1 ($2): compiles clean"
  fi
}

write dropped '    mpx_put_i64(st, 1);
    mpx_put_str(st, "x");
    mpx_meta_set_str(st, "k", "v");' '    mpx_node_set_capacity(g, 10, 0);
    mpx_graph_start(g);
    mpx_graph_join(g);
    mpx_item_t *it;
    mpx_graph_poll(g, 0, &it);
    mpx_graph_fd(g);
    mpx_graph_dispatch(g);
    mpx_graph_put(g, "x", 1);
    mpx_graph_put_str(g, "x");
    mpx_graph_put_parts(g, NULL, 0);
    mpx_graph_set_nonblocking(g, true);
    mpx_graph_meta_set(g, "k", "v", 1);
    mpx_graph_meta_set_str(g, "k", "v");
    mpx_graph_meta_set_i64(g, "k", 1);
    mpx_run(g);
    mpx_shared_new(4096);
    mpx_shared_map("/etc/hostname", false);'
expect_warnings dropped "-std=gnu17" mpx_put_i64 mpx_put_str mpx_meta_set_str \
  mpx_node_set_capacity mpx_graph_start mpx_graph_join mpx_graph_poll mpx_graph_fd \
  mpx_graph_dispatch mpx_graph_put mpx_graph_put_str mpx_graph_put_parts \
  mpx_graph_set_nonblocking mpx_graph_meta_set mpx_graph_meta_set_str mpx_graph_meta_set_i64 \
  mpx_run mpx_shared_new mpx_shared_map

write checked '    int rc = mpx_put_i64(st, 1);
    if (rc != 0)
        return rc;' '    if (mpx_run(g) != 0)
        return 1;'
expect_clean checked "-std=gnu17"
expect_clean checked "-std=c11 -Wpedantic"
expect_clean dropped "-std=gnu17 -DMPX_MUST_CHECK="

# Where the compiler has C23's [[nodiscard]], a cast to void says "on purpose".
if "${cc[@]}" -std=c2x -x c -c -o /dev/null - <<<'[[nodiscard]] int f(void); int f(void) { return 0; }' 2>/dev/null; then
  write voided '    (void)mpx_put_i64(st, 1);' '    (void)mpx_run(g);'
  expect_clean voided "-std=c2x"
  write dropped23 '    mpx_put_i64(st, 1);' '    mpx_run(g);'
  expect_warnings dropped23 "-std=c2x" mpx_put_i64 mpx_run
fi

[ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
