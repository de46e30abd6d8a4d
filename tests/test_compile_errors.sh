#!/usr/bin/env bash
# tests/test_compile_errors.sh SRC CC... — what a C programmer sees when a
# function given to MPX_MAP, MPX_MAP_CTX, MPX_FILTER or MPX_FILTER_CTX has
# a type they do not take: exactly one error, which names the macro and
# lists the types it takes (not _Generic's "selector ... not compatible
# with any association").  And that every type they do take compiles
# without a warning under -Wall -Wextra -Wpedantic, in strict C11.
#
# CC is the compiler meson builds with (a command with arguments, as
# meson gives it); gcc and clang are checked as well when installed, since
# a user may build with either.  Only -fsyntax-only runs: nothing is
# linked, nothing is left behind (the temporary directory goes at exit).
set -uo pipefail
src=$1
shift
cc_meson=("$@")
tmp=$(mktemp -d /tmp/mpxtest-compile-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

cat >"$tmp/good.c" <<'C'
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <mpx.h>

static int i(int x) { return x; }
static long l(long x) { return x; }
static long long ll(long long x) { return x; }
static int64_t i64(int64_t x) { return x; }
static int32_t i32(int32_t x) { return x; }
static double f64(double x) { return x; }
static char *str(const char *s) { return calloc(1, *s != 0); }
static int i_c(int x, void *c) { return x + (c != 0); }
static long l_c(long x, void *c) { return x + (c != 0); }
static long long ll_c(long long x, void *c) { return x + (c != 0); }
static int64_t i64_c(int64_t x, void *c) { return x + (c != 0); }
static double f64_c(double x, void *c) { return x + (c != 0); }
static char *str_c(const char *s, void *c) { return c ? calloc(1, *s != 0) : 0; }
static bool pi(int x) { return x; }
static bool pl(long x) { return x; }
static bool pll(long long x) { return x; }
static bool pi64(int64_t x) { return x; }
static bool pf64(double x) { return x > 0; }
static bool pstr(const char *s) { return *s; }
static bool pitem(const mpx_item_t *it) { return mpx_item_parts(it); }
static bool pi_c(int x, void *c) { return x && c; }
static bool pl_c(long x, void *c) { return x && c; }
static bool pll_c(long long x, void *c) { return x && c; }
static bool pi64_c(int64_t x, void *c) { return x && c; }
static bool pf64_c(double x, void *c) { return x > 0 && c; }
static bool pstr_c(const char *s, void *c) { return *s && c; }
static bool pitem_c(const mpx_item_t *it, void *c) { return mpx_item_parts(it) && c; }

int main(void)
{
    int ctx = 0;
    int64_t (*ptr)(int64_t) = i64; /* a pointer variable, not only a name */
    mpx_node_t *g = MPX_EZ(
        MPX_MAP(i), MPX_MAP(l), MPX_MAP(ll), MPX_MAP(i64), MPX_MAP(i32), MPX_MAP(f64),
        MPX_MAP(str), MPX_MAP(ptr), MPX_MAP_CTX(i_c, &ctx), MPX_MAP_CTX(l_c, &ctx),
        MPX_MAP_CTX(ll_c, &ctx), MPX_MAP_CTX(i64_c, &ctx), MPX_MAP_CTX(f64_c, &ctx),
        MPX_MAP_CTX(str_c, &ctx), MPX_FILTER(pi), MPX_FILTER(pl), MPX_FILTER(pll),
        MPX_FILTER(pi64), MPX_FILTER(pf64), MPX_FILTER(pstr), MPX_FILTER(pitem),
        MPX_FILTER_CTX(pi_c, &ctx), MPX_FILTER_CTX(pl_c, &ctx), MPX_FILTER_CTX(pll_c, &ctx),
        MPX_FILTER_CTX(pi64_c, &ctx), MPX_FILTER_CTX(pf64_c, &ctx),
        MPX_FILTER_CTX(pstr_c, &ctx), MPX_FILTER_CTX(pitem_c, &ctx));
    int rc = mpx_graph_check(g);
    mpx_node_destroy(&g);
    return rc != 0;
}
C

# name | declaration | use | the text the one error must hold
bad_cases=(
    "map_unsigned|static unsigned sq(unsigned x) { return x * x; }|MPX_MAP(sq)|MPX_MAP(sq): the function must be int f(int), long f(long), long long f(long long), int64_t f(int64_t), double f(double) or char *f(const char *)"
    "map_float|static float half(float x) { return x / 2; }|MPX_MAP(half)|MPX_MAP(half): the function must be int f(int)"
    "map_null||MPX_MAP(NULL)|MPX_MAP(NULL): the function must be int f(int)"
    "map_given_ctx_form|static int add(int x, void *c) { return x + (c != 0); }|MPX_MAP(add)|MPX_MAP(add): the function must be int f(int)"
    "map_ctx_given_plain_form|static long sq(long x) { return x * x; }|MPX_MAP_CTX(sq, NULL)|MPX_MAP_CTX(sq, ctx): the function must be int f(int, void *), long f(long, void *), long long f(long long, void *), int64_t f(int64_t, void *), double f(double, void *) or char *f(const char *, void *)"
    "filter_int_result|static int odd(int x) { return x % 2; }|MPX_FILTER(odd)|MPX_FILTER(odd): the predicate must be bool p(int), bool p(long), bool p(long long), bool p(int64_t), bool p(double), bool p(const char *) or bool p(const mpx_item_t *)"
    "filter_ctx_short|static bool big(short x, void *c) { return x > *(short *)c; }|MPX_FILTER_CTX(big, NULL)|MPX_FILTER_CTX(big, ctx): the predicate must be bool p(int, void *), bool p(long, void *), bool p(long long, void *), bool p(int64_t, void *), bool p(double, void *), bool p(const char *, void *) or bool p(const mpx_item_t *, void *)"
)

check_compiler() { # label, command...
    local label=$1
    shift
    local -a cc=("$@")
    local flags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$src/include")
    if ! "${cc[@]}" "${flags[@]}" "$tmp/good.c" >"$tmp/good.err" 2>&1; then
        fail "$label: the accepted types do not compile cleanly:"
        cat "$tmp/good.err"
    fi
    local c name decl use want
    for c in "${bad_cases[@]}"; do
        IFS='|' read -r name decl use want <<<"$c"
        printf '#include <stdbool.h>\n#include <stddef.h>\n#include <mpx.h>\n%s\n' "$decl" >"$tmp/$name.c"
        printf 'mpx_node_t *node(void);\nmpx_node_t *node(void) { return %s; }\n' "$use" >>"$tmp/$name.c"
        if "${cc[@]}" "${flags[@]}" "$tmp/$name.c" >"$tmp/$name.err" 2>&1; then
            fail "$label $name: $use compiled"
            continue
        fi
        local errors
        errors=$(grep -c 'error:' "$tmp/$name.err")
        if ! grep -qF -- "$want" "$tmp/$name.err" || [ "$errors" -ne 1 ] ||
            grep -q 'not compatible with any' "$tmp/$name.err"; then
            fail "$label $name: $use gave $errors error(s), not one saying \"$want\":"
            cat "$tmp/$name.err"
        fi
    done
    echo "$label (${cc[*]}): checked $((${#bad_cases[@]} + 1)) programs"
}

check_compiler "meson's compiler" "${cc_meson[@]}"
# The other common compiler(s), if installed: a user may build with them.
for other in gcc clang; do
    if command -v "$other" >/dev/null; then
        check_compiler "$other" "$other"
    else
        echo "$other: not installed, not checked"
    fi
done
[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "every rejected type gives one error naming the macro and the accepted types"
