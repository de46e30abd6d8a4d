/* lib/shared_stage.h — what a stage process does with the graph's shared
 * memory as it starts (lib/shared.c). */
#ifndef MPX_LIB_SHARED_STAGE_H
#define MPX_LIB_SHARED_STAGE_H

/* Make every mpx_shared_new_readonly object this process inherited
 * read-only (a write is then a SIGSEGV), and the list's lock free.  Called
 * first in each stage process, while it has one thread; walks the list
 * without its lock (see lib/shared.c).  0, or -1 with errno set by
 * mprotect: the stage must not run with the memory writable. */
int shared_stage_protect(void);

#endif
