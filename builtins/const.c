/* builtins/const.c — (being written) */
#include "mpx.h"
