/* builtins/map.c — (being written) */
#include "mpx.h"
