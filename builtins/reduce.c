/* builtins/reduce.c — (being written) */
#include "mpx.h"
