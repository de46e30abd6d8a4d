/* builtins/write.c — (being written) */
#include "mpx.h"
