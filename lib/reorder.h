/* lib/reorder.h — the reorder half of Seq (graph/seqhost.h): what a
 * parallel node put, in the order of the inputs it was made from.
 *
 * One engine for the three places it runs: its own stage process
 * (builtins/seq.c), the process of the stage after the Seq (lib/child.c)
 * and the program reading the graph's output (lib/supervisor.c).  It
 * keeps a copy of each item taken, without the Seq's number; at each of
 * the Seq's marks it hands the items the mark covers to `put`, sorted by
 * input, and the rest waits for a later mark.
 */
#ifndef MPX_LIB_REORDER_H
#define MPX_LIB_REORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/seqhost.h"
#include "mpx/stage.h"

/* Outputs of one input in arrival order; most inputs have one. */
typedef struct reorder_bucket {
    mpx_item_t *one;
    mpx_item_t **more;
    size_t nmore, capmore;
} reorder_bucket_t;

/* Kept items that belong to no open input, in arrival order; each leaves
 * once the outputs of inputs before `after` have. */
typedef struct reorder_held {
    mpx_item_t *it;
    int64_t after;
} reorder_held_t;

typedef struct reorder_list {
    reorder_held_t *v;
    size_t n, cap;
} reorder_list_t;

/* Inputs done .. seen-1 are open; input q's bucket is ring[q mod cap].
 * `late` holds outputs of inputs already put (a stage inside kept them
 * past their mark): they leave first at the next mark.  `loose` holds
 * those that belong to no input (made in a teardown inside the node):
 * each leaves after the outputs of every input seen before it arrived,
 * since the stage that made it had passed those on first — but possibly
 * not its sibling instances, so the next mark may be too early. */
typedef struct reorder {
    const seq_args_t *a;
    /* Keep copies of pool parts' bytes, not holds on the blocks: the
     * program's reorder, which a stage process running a graph of its own
     * runs too, where the process's pool (lib/item.c) is another graph's. */
    bool inline_parts;
    int64_t done, seen;
    size_t cap;
    reorder_bucket_t *ring;
    reorder_list_t late, loose;
    size_t held; /* items kept */
} reorder_t;

/* Hands on kept item *it (now the callee's: it frees it and sets *it to
 * NULL, whatever it returns); 0, or an error that ends the flush. */
typedef int (*reorder_put_fn)(void *ctx, mpx_item_t **it);

void reorder_init(reorder_t *r, const seq_args_t *a);
/* Keep a copy of `it`.  0; MPX_ENOMEM; or MPX_EPROTO for a number far
 * beyond the inputs open (a meta value someone changed), with a message
 * in err. */
int reorder_take(reorder_t *r, const mpx_item_t *it, char *err, size_t errcap);
/* Whether mark `value` is this Seq's. */
bool reorder_ours(const reorder_t *r, uint64_t value);
/* This Seq's mark `value` arrived (everything the inputs it covers made
 * came before it): put those inputs' outputs.  0, or put's error. */
int reorder_mark(reorder_t *r, uint64_t value, reorder_put_fn put, void *ctx);
/* Every path has ended: put everything kept, in order. */
int reorder_flush_all(reorder_t *r, reorder_put_fn put, void *ctx);
/* Free what is kept (nothing is put). */
void reorder_free(reorder_t *r);

#endif
