/* builtins/write.c — Write: every item it receives appended to a file, all
 * its parts in one write, so that instances sharing the file never mix
 * their items.  Written with the public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mpx.h"

typedef struct write_args {
    char path[MPX_PATH_MAX];
    bool truncate; /* mode "w" */
} write_args_t;

typedef struct write_state {
    int fd;
    bool open; /* state starts zeroed, and 0 is a valid descriptor */
    char *buf; /* items of more parts than one writev takes are joined here */
    size_t cap;
} write_state_t;

/* Parts gathered for one writev on the stack; an item with more is copied
 * into one buffer instead (still one write). */
#define WRITE_IOV 64

/* The file is opened in the parent, before any fork, so that a path that
 * cannot be written fails mpx_graph_start() before anything runs; every
 * instance gets its own descriptor, which its process inherits.  O_APPEND
 * makes each write land whole at the end of the file, whoever else
 * appends.  Only instance 0 truncates: instances are initialized in
 * order, all before the first fork, so none has written yet. */
static int write_initialize(mpx_stage_t *st)
{
    const write_args_t *a = mpx_args(st);
    write_state_t *s = mpx_state(st);
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
    if (a->truncate && mpx_stage_instance(st) == 0)
        flags |= O_TRUNC;
    int fd;
    while ((fd = open(a->path, flags, 0666)) < 0 && errno == EINTR)
        ;
    if (fd < 0)
        return mpx_fail(st, "write: cannot open %s: %s", a->path, strerror(errno));
    s->fd = fd;
    s->open = true;
    return 0;
}

/* Write every byte of iov[0..n), retrying after a short write or EINTR.
 * A short write to a regular file happens only when the disk is full or a
 * limit is reached: the rest follows in another write, and the error, if
 * any, comes with it. */
static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static int write_process(mpx_stage_t *st, mpx_item_t *it)
{
    const write_args_t *a = mpx_args(st);
    write_state_t *s = mpx_state(st);
    size_t nparts = mpx_item_parts(it);
    struct iovec iov[WRITE_IOV];
    int n = 0;
    if (nparts <= WRITE_IOV) {
        for (size_t i = 0; i < nparts; i++)
            if (mpx_item_size(it, i) > 0)
                iov[n++] = (struct iovec){(void *)mpx_item_data(it, i), mpx_item_size(it, i)};
    } else {
        size_t total = 0;
        for (size_t i = 0; i < nparts; i++)
            total += mpx_item_size(it, i);
        if (total > s->cap) {
            char *b = realloc(s->buf, total);
            if (!b)
                return mpx_fail(st, "write: out of memory for an item of %zu bytes", total);
            s->buf = b;
            s->cap = total;
        }
        size_t off = 0;
        for (size_t i = 0; i < nparts; i++) {
            size_t sz = mpx_item_size(it, i);
            if (sz) /* memcpy from a NULL source is undefined even for 0 bytes */
                memcpy(s->buf + off, mpx_item_data(it, i), sz);
            off += sz;
        }
        if (total > 0)
            iov[n++] = (struct iovec){s->buf, total};
    }
    if (write_all(s->fd, iov, n) != 0)
        return mpx_fail(st, "write: writing to %s: %s", a->path, strerror(errno));
    return 0;
}

/* close(2) may report a deferred write error (NFS, quota): the run fails
 * then, as it would have on the write. */
static int write_teardown(mpx_stage_t *st)
{
    const write_args_t *a = mpx_args(st);
    write_state_t *s = mpx_state(st);
    free(s->buf);
    s->buf = NULL;
    if (!s->open)
        return 0;
    s->open = false;
    if (close(s->fd) != 0 && errno != EINTR)
        return mpx_fail(st, "write: closing %s: %s", a->path, strerror(errno));
    return 0;
}

/* The parent's copy of the descriptor. */
static void write_finalize(mpx_stage_t *st)
{
    write_state_t *s = mpx_state(st);
    if (s->open)
        close(s->fd);
    s->open = false;
}

static const mpx_stage_def_t write_def = {
    .name = "write",
    .args_size = sizeof(write_args_t),
    .state_size = sizeof(write_state_t),
    .initialize = write_initialize,
    .process = write_process,
    .teardown = write_teardown,
    .finalize = write_finalize,
};

mpx_node_t *mpx_write(const char *path, const char *mode)
{
    if (!path)
        return mpx_invalid("mpx_write: the path is NULL");
    size_t n = strlen(path);
    if (n == 0)
        return mpx_invalid("mpx_write: the path is empty");
    if (n >= MPX_PATH_MAX)
        return mpx_invalid("mpx_write: the path is %zu bytes long, more than %d: %.60s...", n,
                           MPX_PATH_MAX - 1, path);
    if (!mode || (strcmp(mode, "w") != 0 && strcmp(mode, "a") != 0))
        return mpx_invalid("mpx_write: mode %s%s%s for %s is neither \"w\" nor \"a\"",
                           mode ? "\"" : "", mode ? mode : "NULL", mode ? "\"" : "", path);
    write_args_t a;
    memset(&a, 0, sizeof a);
    memcpy(a.path, path, n + 1);
    a.truncate = mode[0] == 'w';
    return mpx_stage(&write_def, &a);
}
