/* lib/rundir.h — create and remove a graph's private runtime directory. */
#ifndef MPX_LIB_RUNDIR_H
#define MPX_LIB_RUNDIR_H

#include <stddef.h>

/* Make "<base>/mpx-<pid>-XXXXXX" (mode 0700) under $XDG_RUNTIME_DIR,
 * $TMPDIR, /dev/shm or /tmp, the first that works with paths short enough
 * for unix sockets.  0 with the path in out, or MPX_ESYS with err filled. */
int rundir_create(char *out, size_t cap, char *err, size_t errcap);
/* Remove the directory and every file in it. */
int rundir_remove(const char *dir);

#endif
