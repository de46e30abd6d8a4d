/* tests/test_layout.c — the graph as a text tree and as Graphviz DOT. */
#include "harness.h"

static void refuses_null(void)
{
    CHECK_EQ(mpx_graph_print_layout(NULL, stdout), MPX_EINVAL);
    CHECK_EQ(mpx_graph_write_dot(NULL, stdout), MPX_EINVAL);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(refuses_null),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
