/* builtins/stamp.c — Stamp: a debugging counter writing "<prefix> <n>" on
 * stderr for every item (n from 1 in each instance) and passing the item
 * on unchanged. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mpx.h"

typedef struct stamp_args {
    char prefix[64];
} stamp_args_t;

typedef struct stamp_state {
    uint64_t n;
} stamp_state_t;

static int stamp_process(mpx_stage_t *st, mpx_item_t *it)
{
    const stamp_args_t *a = mpx_args(st);
    stamp_state_t *s = mpx_state(st);
    char line[sizeof a->prefix + 24];
    int len = snprintf(line, sizeof line, "%s %" PRIu64 "\n", a->prefix, ++s->n);
    /* One write per line, so that the lines of parallel instances (and of
     * other stages sharing stderr) never interleave within a line. */
    for (size_t off = 0; off < (size_t)len;) {
        ssize_t w = write(STDERR_FILENO, line + off, (size_t)len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return mpx_fail(st, "writing to stderr: %s", strerror(errno));
        off += (size_t)w;
    }
    return mpx_put_item(st, it);
}

static const mpx_stage_def_t stamp_def = {
    .name = "stamp",
    .args_size = sizeof(stamp_args_t),
    .state_size = sizeof(stamp_state_t),
    .process = stamp_process,
};

mpx_node_t *mpx_stamp(const char *prefix)
{
    stamp_args_t a = {{0}};
    snprintf(a.prefix, sizeof a.prefix, "%s", prefix ? prefix : "item");
    return mpx_stage(&stamp_def, &a);
}
