/* builtins/exec.c — (being written) */
#include "mpx.h"
