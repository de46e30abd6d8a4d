/* builtins/filter.c — (being written) */
#include "mpx.h"
