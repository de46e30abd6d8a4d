/* builtins/range.c — (being written) */
#include "mpx.h"
