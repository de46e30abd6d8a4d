/* builtins/stamp.c — (being written) */
#include "mpx.h"
