/* builtins/print.c — Print: one line per item on stdout, item passed on.
 * Written with the public API only. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpx.h"

typedef struct print_args {
    char prefix[64];
} print_args_t;

typedef struct print_state {
    char *line;
    size_t cap;
} print_state_t;

/* Printable text: no control bytes but white space, and well-formed UTF-8
 * (so that the bytes of a negative integer, say, are not taken for it). */
static bool is_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if ((c < 0x20 && !isspace(c)) || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || c == 0xc0 || c == 0xc1 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* Append to the state's line buffer; returns false when out of memory. */
static bool append(print_state_t *s, size_t *len, const char *src, size_t n)
{
    if (*len + n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < *len + n + 2)
            cap *= 2;
        char *l = realloc(s->line, cap);
        if (!l)
            return false;
        s->line = l;
        s->cap = cap;
    }
    memcpy(s->line + *len, src, n);
    *len += n;
    return true;
}

static bool append_part(print_state_t *s, size_t *len, const unsigned char *p, size_t n)
{
    char buf[96];
    if (is_text(p, n))
        return append(s, len, (const char *)p, n);
    if (n == 8) {
        int64_t v;
        memcpy(&v, p, 8);
        int w = snprintf(buf, sizeof buf, "%" PRId64, v);
        return append(s, len, buf, (size_t)w);
    }
    /* Other binary parts: their size and first bytes in hex. */
    int w = snprintf(buf, sizeof buf, "<%zu bytes:", n);
    for (size_t i = 0; i < n && i < 16; i++)
        w += snprintf(buf + w, sizeof buf - (size_t)w, " %02x", p[i]);
    w += snprintf(buf + w, sizeof buf - (size_t)w, "%s>", n > 16 ? " ..." : "");
    return append(s, len, buf, (size_t)w);
}

static int print_process(mpx_stage_t *st, mpx_item_t *it)
{
    const print_args_t *a = mpx_args(st);
    print_state_t *s = mpx_state(st);
    size_t len = 0;
    bool ok = true;
    /* mpyx's Print("A") prints "A 1": the prefix is a label, one space
     * from the value, and no prefix is no space either. */
    if (a->prefix[0])
        ok = append(s, &len, a->prefix, strlen(a->prefix)) && append(s, &len, " ", 1);
    for (size_t i = 0; ok && i < mpx_item_parts(it); i++) {
        if (i > 0)
            ok = append(s, &len, " ", 1);
        ok = ok && append_part(s, &len, mpx_item_data(it, i), mpx_item_size(it, i));
    }
    if (!ok)
        return mpx_fail(st, "out of memory");
    s->line[len++] = '\n';
    /* One write per line: lines of parallel Print instances never mix. */
    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDOUT_FILENO, s->line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return mpx_fail(st, "writing to stdout: %s", strerror(errno));
        off += (size_t)w;
    }
    return mpx_put_item(st, it);
}

static int print_teardown(mpx_stage_t *st)
{
    print_state_t *s = mpx_state(st);
    free(s->line);
    s->line = NULL;
    return 0;
}

static const mpx_stage_def_t print_def = {
    .name = "print",
    .args_size = sizeof(print_args_t),
    .state_size = sizeof(print_state_t),
    .process = print_process,
    .teardown = print_teardown,
};

mpx_node_t *mpx_print(const char *prefix)
{
    print_args_t a = {{0}};
    if (prefix)
        snprintf(a.prefix, sizeof a.prefix, "%s", prefix);
    return mpx_stage(&print_def, &a);
}
