/* lib/shared_stage.h — what a stage process does with the graph's shared
 * memory as it starts (lib/shared.c). */
#ifndef MPX_LIB_SHARED_STAGE_H
#define MPX_LIB_SHARED_STAGE_H

/* Make every mpx_shared_new_readonly object this process inherited
 * read-only (a write is then a SIGSEGV).  Called in each stage process
 * before its setup; walks the list without its lock (see lib/shared.c). */
void shared_stage_protect(void);

#endif
