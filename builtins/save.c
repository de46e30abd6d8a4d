/* builtins/save.c — Save: every item it receives written to a file of its
 * own in one directory, named by one of the item's meta values (mpyx's
 * SaveTo).  Written with the public API only.
 *
 * Names come from data, so only a base name is ever used, and a value
 * that is no plain relative name is refused rather than bent into one.
 * Each item is written to a temporary file beside its destination and
 * renamed over it once complete: a reader of the directory never sees a
 * half-written file, and two items of the same name (from parallel
 * instances too) leave one of them whole rather than a mix of both.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mpx.h"

#define SAVE_KEY_MAX 255 /* the longest meta key */
#define SAVE_IOV 64      /* parts handed to one writev */

typedef struct save_args {
    char dir[MPX_PATH_MAX];
    char key[SAVE_KEY_MAX + 1];
} save_args_t;

typedef struct save_state {
    int dirfd;
    bool open; /* state starts zeroed, and 0 is a valid descriptor */
    unsigned long long made; /* temporary files made: part of their names */
} save_state_t;

/* The directory is opened in the parent, before any fork, so that a
 * directory that is missing fails mpx_graph_start() before anything runs;
 * every instance gets its own descriptor, which its process inherits, and
 * writes relative to it (a directory renamed meanwhile is still the one
 * written into). */
static int save_initialize(mpx_stage_t *st)
{
    const save_args_t *a = mpx_args(st);
    save_state_t *s = mpx_state(st);
    int fd;
    while ((fd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (fd < 0)
        return mpx_fail(st, "save: cannot open directory %s: %s", a->dir, strerror(errno));
    s->dirfd = fd;
    s->open = true;
    return 0;
}

/* `v` (n bytes) for a message: printable ASCII as it is, the rest as \xNN,
 * cut after 200 bytes. */
static void quote(char *out, size_t cap, const char *v, size_t n)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)v[i];
        if (i == 200) {
            o += (size_t)snprintf(out + o, cap - o, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o++] = '"';
    out[o] = 0;
}

/* Why `v` (n bytes) cannot name a file in the directory, or NULL when its
 * base name can; *base gets that base name. */
static const char *refusal(const char *v, size_t n, const char **base)
{
    if (n == 0)
        return "it is empty";
    if (memchr(v, 0, n))
        return "it holds a NUL byte";
    if (v[0] == '/')
        return "it is an absolute path";
    const char *slash = strrchr(v, '/');
    *base = slash ? slash + 1 : v;
    if (!**base)
        return "its base name is empty";
    if (strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0)
        return "its base name is a directory's";
    return NULL;
}

/* Write every part of `it` to fd, retrying after a short write or EINTR
 * (a short write to a file means a full disk or a limit: the next write
 * returns the error). */
static int write_item(int fd, const mpx_item_t *it)
{
    size_t nparts = mpx_item_parts(it);
    for (size_t first = 0; first < nparts;) {
        struct iovec iov[SAVE_IOV];
        int n = 0;
        for (; first < nparts && n < SAVE_IOV; first++)
            if (mpx_item_size(it, first) > 0)
                iov[n++] = (struct iovec){(void *)mpx_item_data(it, first),
                                          mpx_item_size(it, first)};
        struct iovec *v = iov;
        while (n > 0) {
            ssize_t w = writev(fd, v, n);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            size_t done = (size_t)w;
            while (n > 0 && done >= v->iov_len) {
                done -= v->iov_len;
                v++;
                n--;
            }
            if (n > 0) {
                v->iov_base = (char *)v->iov_base + done;
                v->iov_len -= done;
            }
        }
    }
    return 0;
}

/* A temporary file in the directory, of a name no other process uses
 * (pid) and this one has not used; left over only if the process is
 * killed while writing. */
static int make_temp(save_state_t *s, char *name, size_t cap)
{
    for (int tries = 0; tries < 100; tries++) {
        snprintf(name, cap, ".mpx-save.%ld.%llu", (long)getpid(), s->made++);
        int fd;
        while ((fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0 &&
               errno == EINTR)
            ;
        if (fd >= 0 || errno != EEXIST) /* EEXIST: left by a killed process of our pid */
            return fd;
    }
    return -1;
}

static int save_process(mpx_stage_t *st, mpx_item_t *it)
{
    const save_args_t *a = mpx_args(st);
    save_state_t *s = mpx_state(st);
    size_t n;
    const char *v = mpx_item_meta(it, a->key, &n);
    if (!v)
        return mpx_fail(st, "save: the item has no meta \"%s\" to name its file in %s", a->key,
                        a->dir);
    const char *base = NULL;
    const char *why = refusal(v, n, &base);
    if (why) {
        char q[1024];
        quote(q, sizeof q, v, n);
        return mpx_fail(st, "save: meta \"%s\" = %s cannot name a file in %s: %s", a->key, q,
                        a->dir, why);
    }
    char tmp[64];
    int fd = make_temp(s, tmp, sizeof tmp);
    if (fd < 0)
        return mpx_fail(st, "save: cannot create a file in %s (for %s): %s", a->dir, base,
                        strerror(errno));
    /* close(2) may be where a deferred write error shows (NFS, quota). */
    int rc = write_item(fd, it);
    int e = errno;
    if (close(fd) != 0 && errno != EINTR && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && renameat(s->dirfd, tmp, s->dirfd, base) != 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0) {
        unlinkat(s->dirfd, tmp, 0); /* no half-written file is left */
        return mpx_fail(st, "save: writing %s/%s: %s", a->dir, base, strerror(e));
    }
    return 0;
}

static int save_teardown(mpx_stage_t *st)
{
    save_state_t *s = mpx_state(st);
    if (s->open)
        close(s->dirfd); /* opened read-only: nothing to learn from close */
    s->open = false;
    return 0;
}

/* The parent's copy of the descriptor. */
static void save_finalize(mpx_stage_t *st) { (void)save_teardown(st); }

static const mpx_stage_def_t save_def = {
    .name = "save",
    .args_size = sizeof(save_args_t),
    .state_size = sizeof(save_state_t),
    .initialize = save_initialize,
    .process = save_process,
    .teardown = save_teardown,
    .finalize = save_finalize,
};

mpx_node_t *mpx_save(const char *dir, const char *meta_key)
{
    if (!dir)
        return mpx_invalid("mpx_save: the directory is NULL");
    size_t n = strlen(dir);
    if (n == 0)
        return mpx_invalid("mpx_save: the directory is empty");
    if (n >= MPX_PATH_MAX)
        return mpx_invalid("mpx_save: the directory is %zu bytes long, more than %d: %.60s...",
                           n, MPX_PATH_MAX - 1, dir);
    if (!meta_key || !*meta_key)
        return mpx_invalid("mpx_save: the meta key for %s is %s", dir,
                           meta_key ? "empty" : "NULL");
    size_t k = strlen(meta_key);
    if (k > SAVE_KEY_MAX)
        return mpx_invalid("mpx_save: the meta key is %zu bytes long, more than %d: %.60s...",
                           k, SAVE_KEY_MAX, meta_key);
    save_args_t a;
    memset(&a, 0, sizeof a);
    memcpy(a.dir, dir, n + 1);
    memcpy(a.key, meta_key, k + 1);
    return mpx_stage(&save_def, &a);
}
