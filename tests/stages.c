/* tests/stages.c — see stages.h. */
#include "stages.h"

static int range_setup(mpx_stage_t *st)
{
    const range_args_t *a = mpx_args(st);
    for (int64_t v = a->start; v < a->start + a->n; v++) {
        int rc = mpx_meta_set_i64(st, "i", v);
        if (rc == 0)
            rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
const mpx_stage_def_t Range = {.name = "range", .args_size = sizeof(range_args_t),
                               .setup = range_setup};

mpx_node_t *range_node(int64_t start, int64_t n)
{
    return mpx_stage(&Range, &(range_args_t){start, n});
}

static int endless_setup(mpx_stage_t *st)
{
    for (int64_t v = 0;; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
}
const mpx_stage_def_t Endless = {.name = "endless", .setup = endless_setup};

static int inc_process(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_put_i64(st, mpx_item_i64(it) + 1);
}
const mpx_stage_def_t Inc = {.name = "inc", .process = inc_process};

static int drop_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)st;
    (void)it;
    return 0;
}
const mpx_stage_def_t Drop = {.name = "drop", .process = drop_process};

static int spin_process(mpx_stage_t *st, mpx_item_t *it)
{
    long n = *(const long *)mpx_args(st);
    for (long i = 0; i < n; i++)
        __asm__ volatile("" ::: "memory"); /* a loop the compiler keeps */
    return mpx_put_item(st, it);
}
const mpx_stage_def_t Spin = {.name = "spin", .args_size = sizeof(long), .process = spin_process};

int64_t drain_sum(mpx_graph_t *g, int64_t *count)
{
    int64_t sum = 0, n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        sum += mpx_item_i64(it);
        n++;
    }
    if (count)
        *count = n;
    return sum;
}

uint64_t test_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
