/* lib/stats.c — being written. */
#include "mpx/monitor.h"
