/* examples/count_addx.c — mpyx's first example in C:
 *
 *     EZ(Count(5), AddX(10), Print()).start()      prints 11 to 15
 *
 * Count is a source: it produces in setup and ends itself with mpx_stop.
 * AddX adds its argument to every item.  Print writes each item.
 *
 *     count_addx [--dot]      --dot: print the graph in Graphviz DOT instead
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpx.h>

typedef struct count_args {
    long n;
} count_args;

static int count_setup(mpx_stage_t *st)
{
    const count_args *a = mpx_args(st);
    for (long i = 1; i <= a->n; i++) {
        int rc = mpx_put_i64(st, i);
        if (rc != 0)
            return rc; /* MPX_ESTOPPED when downstream stopped: not an error */
    }
    return 0; /* a source's output ends when setup returns */
}

static const mpx_stage_def_t Count = {
    .name = "count",
    .args_size = sizeof(count_args),
    .setup = count_setup,
};

static int addx_process(mpx_stage_t *st, mpx_item_t *item)
{
    const long *x = mpx_args(st);
    return mpx_put_i64(st, mpx_item_i64(item) + *x);
}

static const mpx_stage_def_t AddX = {
    .name = "addx",
    .args_size = sizeof(long),
    .process = addx_process,
};

int main(int argc, char **argv)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Count, &(count_args){5}),
                            mpx_stage(&AddX, &(long){10}),
                            mpx_print(NULL));
    if (argc > 1 && strcmp(argv[1], "--dot") == 0) {
        int rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "count_addx: cannot draw the graph: %s\n", mpx_strerror(rc));
        mpx_node_destroy(&g);
        return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    int rc = mpx_run(g);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
