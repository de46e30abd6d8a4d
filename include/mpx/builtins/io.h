/* mpx/builtins/io.h — Read and Write files.
 *
 * Read is a source: one item per line of the file (without its newline),
 * or, in chunk mode, items of `chunk` bytes (the last may be shorter) for
 * binary files.  Write appends every item it receives to a file, parts as
 * they are (add newlines yourself), and puts nothing.  A file that cannot
 * be opened fails mpx_graph_start() with a message naming the path (Write
 * opens it in initialize, in the parent; Read in setup).  Several Write
 * instances may share one file: each item is written in one append.
 * mpx_node_set_index (graph.h) numbers Read's items in meta "mpx.index".
 *
 *     MPX_EZ(mpx_read("/usr/share/dict/words"), MPX_FILTER(long_word),
 *            MPX_MAP(with_newline), mpx_write("/tmp/long-words", "w"))
 */
#ifndef MPX_BUILTINS_IO_H
#define MPX_BUILTINS_IO_H

#include <stddef.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest path kept. */
#define MPX_PATH_MAX 1024

mpx_node_t *mpx_read(const char *path);
/* 1 <= chunk <= 64 MiB */
mpx_node_t *mpx_read_chunks(const char *path, size_t chunk);

/* mode "w": the file is truncated at start; "a": appended to. */
mpx_node_t *mpx_write(const char *path, const char *mode);

#ifdef __cplusplus
}
#endif
#endif
