/* graph/layout.c — being written (helper). */
#include "mpx/monitor.h"
#include "mpx/error.h"
int mpx_graph_print_layout(const mpx_graph_t *g, FILE *f) { (void)g; (void)f; return MPX_EINVAL; }
int mpx_graph_write_dot(const mpx_graph_t *g, FILE *f) { (void)g; (void)f; return MPX_EINVAL; }
