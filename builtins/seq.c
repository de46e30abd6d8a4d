/* builtins/seq.c — (being written) */
#include "mpx.h"
