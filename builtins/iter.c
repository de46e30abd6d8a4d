/* builtins/iter.c — (being written) */
#include "mpx.h"
