/* builtins/read.c — (being written) */
#include "mpx.h"
