/* mpx/builtins/io.h — Read and Write files; list a tree (Files) and save
 * items as files (Save), below.
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

/* ---- Files: every regular file under a directory -------------------------
 *
 * A source of one item per regular file under `root`, at any depth: part 0
 * is the file's path (a C string, as mpx_put_str puts it), and its meta
 * holds "path" (the same string), "name" (its last component: what
 * mpx_save(dir, "name") needs) and "size" (int64, st_size when it was
 * listed).  Paths start with `root` as given ("root/a/b"; a root ending in
 * "/" gets no second one), so they are absolute when root is.
 *
 * The files are those `find root -type f` lists.  mpx_files does not
 * follow symbolic links, not even when root itself is one (as find;
 * "link/" reaches the directory behind it); a root that is a regular file
 * gives that one file; anything else that is not a directory gives
 * nothing.  mpx_files_follow follows every link, root included, as
 * `find -L`: a link to a file is listed under the link's path with the
 * size of its target, a link to a directory is entered, and a file
 * reachable by several paths is listed once per path.  A link that leads
 * back to a directory on the way down to it is not entered (it would
 * repeat forever, and everything under it is listed under its first
 * path), and a link that leads nowhere is, as for find, no file.
 *
 * Order: depth first, the entries of each directory in strcmp order of
 * their names, a directory's files where its name sorts — so the output of
 * an unchanged tree is the same each run.
 *
 * A root that does not exist (or cannot be looked at) fails the run at
 * mpx_graph_start(), naming it.  Anything that cannot be read on the way
 * (a directory that cannot be opened or read, an entry whose type cannot
 * be learned) is never skipped silently: the walker hands it to the
 * node's error policy (mpx_node_on_error) with mpx_reject().  Under the
 * default policy the run fails with "files: cannot open directory <path>:
 * <error>" (mpx_graph_error names the stage "files"); under SKIP the path
 * is logged with meta "path", counted in the stage's items_failed, and the
 * walk goes on; under DEAD_LETTER an item goes to that side graph with
 * part 0 the path, meta "path" and "mpx.error".  Entries removed while the
 * walk runs are not files any more and are not reported.
 * mpx_node_set_index(node, true) numbers the files put (mpx.index).
 *
 *     // mpyx's image example: every file under photos/, made smaller by
 *     // four Thumbnail processes, saved flat under thumbs/ by its name.
 *     int rc = mpx_run(MPX_EZ(mpx_files("photos"), mpx_as(4, &Thumbnail, NULL),
 *                             mpx_save("thumbs", "name")));
 */
mpx_node_t *mpx_files(const char *root);
mpx_node_t *mpx_files_follow(const char *root);

/* ---- Save: each item into a file of its own ------------------------------
 *
 * A sink (mpyx's SaveTo): each item's bytes, its parts one after the
 * other as Write writes them, become the file dir/<base name of the
 * item's meta value under meta_key> — everything after its last "/", so
 * that "photos/cat.jpg" is saved as dir/cat.jpg.  Save puts nothing
 * downstream (put it in a broadcast, MPX_B, beside what should see the
 * items too).
 *
 * The file is created, or replaced if it exists: the item is written to
 * a temporary file ".mpx-save.<pid>.<n>" in dir, which is renamed over the
 * name once complete, so the name only ever holds a whole item (a link of
 * that name is replaced, not written through).  Items of the same base
 * name overwrite each other: the last one renamed stays.  A write error
 * (ENOSPC, EFBIG, EDQUOT, ...) fails the item, naming the file, and
 * leaves no partial file.  Only a process killed in the middle of writing
 * (mpx_graph_stop, a crash) leaves its temporary file behind.
 *
 * Refused, failing the item under the node's error policy with a message
 * naming the key and the value: an item without the key, and a value that
 * is empty, holds a NUL byte, is an absolute path, or whose base name is
 * empty ("a/"), "." or "..".  Values come from data, so nothing outside
 * dir is ever written.
 *
 * dir must exist: it is opened in initialize, and a missing one fails
 * mpx_graph_start() naming it.  Several instances (mpx_as, mpx_instances)
 * may write into the same dir. */
mpx_node_t *mpx_save(const char *dir, const char *meta_key);

#ifdef __cplusplus
}
#endif
#endif
