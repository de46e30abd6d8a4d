/* builtins/read.c — Read: a source that puts a file's lines, or fixed-size
 * chunks of it, one item each.  Written with the public API only
 * (and graph/source.h, which numbers the items).
 *
 * Besides what io.h promises, every item carries meta: "line" (int64, the
 * 1-based line number) in line mode, "offset" (int64, the byte offset of
 * the chunk in the file) in chunk mode — so a later stage can say where a
 * bad record came from.  It costs one small meta entry per item.  With
 * mpx_node_set_index, "mpx.index" (the 0-based count of items put) too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph/source.h"
#include "mpx.h"

#define READ_CHUNK_MAX ((size_t)64 * 1024 * 1024)
/* What one read(2) asks for in line mode: lines are cut out of it in
 * place, so the syscall count does not depend on how short lines are. */
#define READ_BLOCK ((size_t)64 * 1024)

typedef struct read_args {
    source_opts_t opts; /* first: mpx_node_set_index writes it */
    char path[MPX_PATH_MAX];
    size_t chunk; /* 0: line mode */
} read_args_t;

/* read(2) retried on EINTR. */
static ssize_t read_some(int fd, void *buf, size_t n)
{
    ssize_t r;
    while ((r = read(fd, buf, n)) < 0 && errno == EINTR)
        ;
    return r;
}

/* A put's failure is returned as it is: MPX_ESTOPPED (everything
 * downstream stopped) then ends the stage quietly, as a writer into a
 * closed pipe would end.  Line `line` (1-based) is item line - 1. */
static int put_line(mpx_stage_t *st, bool index, int64_t line, const char *p, size_t n)
{
    int rc = mpx_meta_set_i64(st, "line", line);
    if (rc == 0)
        rc = source_index(st, index, (uint64_t)line - 1);
    return rc != 0 ? rc : mpx_put(st, p, n);
}

static int read_lines(mpx_stage_t *st, int fd, const char *path, bool index)
{
    size_t cap = 2 * READ_BLOCK, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return mpx_fail(st, "read: out of memory");
    int64_t line = 0;
    int rc = 0;
    for (;;) {
        /* Room for a whole block: a line longer than the buffer makes it
         * grow, so lines of any length come out whole. */
        if (cap - len < READ_BLOCK) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                rc = mpx_fail(st, "read: out of memory for a line of %zu bytes in %s", len,
                              path);
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t scanned = len; /* bytes before it hold no newline */
        ssize_t r = read_some(fd, buf + len, cap - len);
        if (r < 0) {
            rc = mpx_fail(st, "read: reading %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) { /* a last line without its newline is a line too */
            if (len > 0)
                rc = put_line(st, index, ++line, buf, len);
            break;
        }
        len += (size_t)r;
        mpx_progress_add(st, (uint64_t)r);
        size_t start = 0;
        char *nl;
        while (rc == 0 && (nl = memchr(buf + scanned, '\n', len - scanned))) {
            size_t end = (size_t)(nl - buf);
            rc = put_line(st, index, ++line, buf + start, end - start);
            start = scanned = end + 1;
        }
        if (rc != 0)
            break;
        memmove(buf, buf + start, len - start);
        len -= start;
    }
    free(buf);
    return rc;
}

static int read_chunks(mpx_stage_t *st, int fd, const char *path, size_t chunk, bool index)
{
    char *buf = malloc(chunk);
    if (!buf)
        return mpx_fail(st, "read: out of memory for chunks of %zu bytes", chunk);
    int64_t offset = 0;
    uint64_t put = 0; /* chunks put so far */
    int rc = 0;
    for (bool eof = false; !eof && rc == 0;) {
        /* Fill the chunk whatever sizes the reads return (a pipe or a
         * FIFO returns less), so that only the last one is short. */
        size_t len = 0;
        while (len < chunk) {
            ssize_t r = read_some(fd, buf + len, chunk - len);
            if (r < 0) {
                rc = mpx_fail(st, "read: reading %s: %s", path, strerror(errno));
                break;
            }
            if (r == 0) {
                eof = true;
                break;
            }
            len += (size_t)r;
        }
        if (rc == 0 && len > 0) {
            mpx_progress_add(st, len);
            rc = mpx_meta_set_i64(st, "offset", offset);
            if (rc == 0)
                rc = source_index(st, index, put++);
            if (rc == 0)
                rc = mpx_put(st, buf, len);
            offset += (int64_t)len;
        }
    }
    free(buf);
    return rc;
}

/* The whole file is put from setup; the stage then ends itself. */
static int read_setup(mpx_stage_t *st)
{
    const read_args_t *a = mpx_args(st);
    int fd;
    while ((fd = open(a->path, O_RDONLY | O_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (fd < 0)
        return mpx_fail(st, "read: cannot open %s: %s", a->path, strerror(errno));
    /* A regular file's size is known: the progress bar counts its bytes. */
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        mpx_progress_total(st, (uint64_t)sb.st_size);
    int rc = a->chunk ? read_chunks(st, fd, a->path, a->chunk, a->opts.index)
                      : read_lines(st, fd, a->path, a->opts.index);
    close(fd); /* read-only: nothing to learn from close */
    return rc != 0 ? rc : mpx_stop(st);
}

static const mpx_stage_def_t read_def = {
    .name = "read",
    .args_size = sizeof(read_args_t),
    .setup = read_setup,
};

static mpx_node_t *make(const char *fn, const char *path, size_t chunk)
{
    if (!path)
        return mpx_invalid("%s: the path is NULL", fn);
    size_t n = strlen(path);
    if (n == 0)
        return mpx_invalid("%s: the path is empty", fn);
    if (n >= MPX_PATH_MAX)
        return mpx_invalid("%s: the path is %zu bytes long, more than %d: %.60s...", fn, n,
                           MPX_PATH_MAX - 1, path);
    read_args_t a;
    memset(&a, 0, sizeof a);
    memcpy(a.path, path, n + 1);
    a.chunk = chunk;
    return source_stage(&read_def, &a);
}

mpx_node_t *mpx_read(const char *path) { return make("mpx_read", path, 0); }

mpx_node_t *mpx_read_chunks(const char *path, size_t chunk)
{
    if (chunk < 1 || chunk > READ_CHUNK_MAX)
        return mpx_invalid("mpx_read_chunks: chunk size %zu is out of range (1 .. %zu bytes)",
                           chunk, READ_CHUNK_MAX);
    return make("mpx_read_chunks", path, chunk);
}
