/* builtins/batch.c — (being written) */
#include "mpx.h"
