/* builtins/zip.c — (being written) */
#include "mpx.h"
