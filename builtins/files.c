/* builtins/files.c — Files: a source of every regular file under a root,
 * walked depth first with names sorted, as `find root -type f` would list
 * them (or `find -L` when following links).  Written with the public API
 * only.
 *
 * A directory that cannot be opened, read or looked into must not simply
 * be missing from the output, and whether that stops the run is the
 * user's error policy's to decide (mpx_node_on_error): the walker hands
 * each such path to mpx_reject, which stops the run, or skips and counts
 * it, or sends it to the dead-letter side graph, and the walk goes on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph/source.h"
#include "mpx.h"

typedef struct files_args {
    source_opts_t opts; /* first: mpx_node_set_index */
    char root[MPX_PATH_MAX];
    bool follow; /* follow symbolic links (find -L) */
} files_args_t;

/* A directory on the current path, to see a followed link lead back. */
typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id_t;

typedef struct walk {
    mpx_stage_t *st;
    bool follow;
    bool index;    /* number the files put (mpx.index) */
    uint64_t next; /* the next file's number */
    char *path; /* the path of what is being looked at, NUL-terminated */
    size_t len, cap;
    dir_id_t *open; /* directories from the root down to the current one */
    size_t depth, open_cap;
} walk_t;

/* ---- the walker's output ------------------------------------------------ */

/* The one place a file becomes an item. */
static int put_file(walk_t *w, const char *name, const struct stat *sb)
{
    mpx_stage_t *st = w->st;
    int rc = source_index(st, w->index, w->next++);
    if (rc == 0)
        rc = mpx_meta_set_str(st, "path", w->path);
    if (rc == 0)
        rc = mpx_meta_set_str(st, "name", name);
    if (rc == 0)
        rc = mpx_meta_set_i64(st, "size", (int64_t)sb->st_size);
    if (rc == 0)
        rc = mpx_put_str(st, w->path);
    return rc;
}

/* What could not be read, to the stage's error policy: the path as the
 * rejected item's part, and as its meta "path" (alone, so that a message
 * shows which path it was). */
static int report(walk_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int report(walk_t *w, const char *fmt, ...)
{
    char msg[1024 + MPX_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mpx_meta_clear(w->st);
    int rc = mpx_meta_set_str(w->st, "path", w->path);
    if (rc != 0)
        return rc;
    mpx_part_t part = {w->path, w->len};
    return mpx_reject(w->st, &part, 1, "files: %s", msg);
}

/* ---- the walk ------------------------------------------------------------ */

/* Append "/name" to the path (no slash after a root that ends in one, as
 * find prints it); returns the length to cut back to, or -1. */
static ssize_t path_push(walk_t *w, const char *name)
{
    size_t old = w->len, n = strlen(name);
    bool slash = old > 0 && w->path[old - 1] != '/';
    size_t need = old + slash + n + 1;
    if (need > w->cap) {
        size_t cap = w->cap * 2 > need ? w->cap * 2 : need;
        char *p = realloc(w->path, cap);
        if (!p)
            return -1;
        w->path = p;
        w->cap = cap;
    }
    if (slash)
        w->path[w->len++] = '/';
    memcpy(w->path + w->len, name, n + 1);
    w->len += n;
    return (ssize_t)old;
}

static void path_pop(walk_t *w, ssize_t old)
{
    w->len = (size_t)old;
    w->path[w->len] = 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The names in directory `fd` (w->path), sorted, "." and ".." left out.
 * 0 with *out set; otherwise the error is reported (or the put's code
 * returned) and *out is NULL. */
static int read_names(walk_t *w, int fd, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    /* fdopendir takes the descriptor over: give it a copy, keeping fd to
     * look at the entries with. */
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
    if (!d) {
        int e = errno;
        if (copy >= 0)
            close(copy);
        return report(w, "cannot read directory %s: %s", w->path, strerror(e));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0)
                rc = report(w, "cannot read directory %s: %s", w->path, strerror(errno));
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t c = cap ? cap * 2 : 32;
            char **p = realloc(names, c * sizeof *p);
            if (!p) {
                rc = mpx_fail(w->st, "files: out of memory listing %s", w->path);
                break;
            }
            names = p;
            cap = c;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = mpx_fail(w->st, "files: out of memory listing %s", w->path);
            break;
        }
        n++;
    }
    closedir(d);
    /* A directory that could be read only in part has been reported
     * (above), and what it gave is still walked. */
    if (rc != 0) {
        free_names(names, n);
        return rc;
    }
    if (n > 1) /* names is NULL when empty, which qsort may not get */
        qsort(names, n, sizeof *names, by_name);
    *out = names;
    *count = n;
    return 0;
}

static int walk_dir(walk_t *w, int fd);

/* Enter directory `name` of `parent`, unless following links led back to
 * a directory on the current path (it would repeat forever; everything
 * under it is listed under its own path). */
static int enter(walk_t *w, int parent, const char *name)
{
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (w->follow ? 0 : O_NOFOLLOW);
    int fd;
    while ((fd = openat(parent, name, flags)) < 0 && errno == EINTR)
        ;
    if (fd < 0) {
        if (errno == ENOENT) /* gone since it was listed */
            return 0;
        return report(w, "cannot open directory %s: %s", w->path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return report(w, "cannot look at directory %s: %s", w->path, strerror(e));
    }
    for (size_t i = 0; w->follow && i < w->depth; i++)
        if (w->open[i].dev == sb.st_dev && w->open[i].ino == sb.st_ino) {
            close(fd);
            return 0;
        }
    if (w->depth == w->open_cap) {
        size_t c = w->open_cap ? w->open_cap * 2 : 16;
        dir_id_t *p = realloc(w->open, c * sizeof *p);
        if (!p) {
            close(fd);
            return mpx_fail(w->st, "files: out of memory at %s", w->path);
        }
        w->open = p;
        w->open_cap = c;
    }
    w->open[w->depth++] = (dir_id_t){sb.st_dev, sb.st_ino};
    int rc = walk_dir(w, fd);
    w->depth--;
    close(fd);
    return rc;
}

/* Every entry of directory `fd` (whose path is w->path), in name order:
 * regular files are put, directories entered where their name sorts. */
static int walk_dir(walk_t *w, int fd)
{
    char **names;
    size_t n;
    int rc = read_names(w, fd, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        ssize_t old = path_push(w, names[i]);
        if (old < 0) {
            rc = mpx_fail(w->st, "files: out of memory at %s", w->path);
            break;
        }
        struct stat sb;
        int r = fstatat(fd, names[i], &sb, w->follow ? 0 : AT_SYMLINK_NOFOLLOW);
        if (r != 0 && errno == ENOENT) {
            /* Gone since it was listed, or (following links) a link that
             * leads nowhere: not a file, as find sees it. */
        } else if (r != 0) {
            rc = report(w, "cannot look at %s: %s", w->path, strerror(errno));
        } else if (S_ISREG(sb.st_mode)) {
            rc = put_file(w, names[i], &sb);
        } else if (S_ISDIR(sb.st_mode)) {
            rc = enter(w, fd, names[i]);
        }
        path_pop(w, old);
    }
    free_names(names, n);
    return rc;
}

/* The last component of a root that is a regular file (so it does not
 * end in a slash). */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int walk_root(walk_t *w, const char *root)
{
    struct stat sb;
    int r = w->follow ? stat(root, &sb) : lstat(root, &sb);
    if (r != 0)
        return mpx_fail(w->st, "files: cannot read %s: %s", root, strerror(errno));
    size_t n = strlen(root);
    w->cap = n + 256;
    if (!(w->path = malloc(w->cap)))
        return mpx_fail(w->st, "files: out of memory");
    memcpy(w->path, root, n + 1);
    w->len = n;
    if (S_ISREG(sb.st_mode))
        return put_file(w, base_name(root), &sb);
    if (!S_ISDIR(sb.st_mode))
        return 0; /* a link not followed, a device, a socket: no file, as for find */
    return enter(w, AT_FDCWD, root);
}

static int files_setup(mpx_stage_t *st)
{
    const files_args_t *a = mpx_args(st);
    walk_t w = {.st = st, .follow = a->follow, .index = a->opts.index};
    int rc = walk_root(&w, a->root);
    free(w.path);
    free(w.open);
    /* MPX_ESTOPPED from a put (everything downstream stopped) ends the
     * stage quietly. */
    return rc;
}

static const mpx_stage_def_t files_def = {
    .name = "files",
    .args_size = sizeof(files_args_t),
    .setup = files_setup,
};

/* ---- building ----------------------------------------------------------- */

static mpx_node_t *make(const char *fn, const char *root, bool follow)
{
    if (!root)
        return mpx_invalid("%s: the root is NULL", fn);
    size_t n = strlen(root);
    if (n == 0)
        return mpx_invalid("%s: the root is empty", fn);
    if (n >= MPX_PATH_MAX)
        return mpx_invalid("%s: the root is %zu bytes long, more than %d: %.60s...", fn, n,
                           MPX_PATH_MAX - 1, root);
    files_args_t a;
    memset(&a, 0, sizeof a);
    memcpy(a.root, root, n + 1);
    a.follow = follow;
    return source_stage(&files_def, &a);
}

mpx_node_t *mpx_files(const char *root) { return make("mpx_files", root, false); }

mpx_node_t *mpx_files_follow(const char *root) { return make("mpx_files_follow", root, true); }
