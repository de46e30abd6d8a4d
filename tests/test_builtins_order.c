/* tests/test_builtins_order.c — (being written) */
#include "harness.h"

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {{NULL, NULL}};
    return harness_main(argc, argv, cases, 0);
}
