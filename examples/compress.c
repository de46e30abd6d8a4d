/* examples/compress.c — mpyx's 17-process pipeline in C, doing real work:
 * gzip every file under a directory with zlib, in five steps of different
 * widths, while the parent reads what leaves the graph and sums it up.
 *
 *     compress OUTDIR [PATH...]      (default /usr/share/common-licenses)
 *     compress --dot [OUTDIR [PATH...]]   the graph in Graphviz DOT, not run
 *
 *     list ─▶ read ×3 ─▶ deflate ×7 ─▶ verify ×3 ─▶ write ×3 ─▶ parent
 *      1         3           7             3            3      = 17 processes
 *
 * mpyx's version:  EZ(ImgFiles, (imread×3), (resize×7), (enhance×3),
 * (watermark×2), (SaveTo×2)).  Here the widths follow the cost: deflate at
 * level 9 is what takes the time.
 *
 * A file named on the command line becomes OUTDIR/NAME.gz; a file found
 * under a named directory DIR becomes OUTDIR/<path below DIR>.gz, so give
 * arguments whose names do not collide.  Meta carries "rel" (that path),
 * "size" and "crc" (of the original) from the stage that knows them to the
 * stages that need them.  The summary's ratio is input bytes over output.
 */
#define _GNU_SOURCE
#define ZLIB_CONST /* next_in is then a const pointer, as our input is */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <mpx.h>

/* A whole file is one item, and zlib's one-shot calls count in uInt. */
#define MAX_FILE_SIZE (32u * 1024u * 1024u)

typedef struct buffer {
    unsigned char *data;
    size_t len, cap;
} buffer;

static int buffer_reserve(buffer *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < need)
        cap *= 2;
    unsigned char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static void buffer_free(buffer *b)
{
    free(b->data);
    *b = (buffer){0};
}

/* ---- list: the source ------------------------------------------------------ */

typedef struct list_args {
    /* argv or a static array: both outlive the run and fork copies them. */
    const char *const *paths;
    int npaths;
} list_args;

static int put_file(mpx_stage_t *st, const char *path, const char *rel)
{
    int rc;
    if ((rc = mpx_meta_set_str(st, "rel", rel)) != 0)
        return rc;
    return mpx_put_str(st, path);
}

static int walk(mpx_stage_t *st, char *path, size_t len, size_t rel);

/* Walk directory path[0..len); `rel` is where the output's relative path
 * begins in path. */
static int walk_dir(mpx_stage_t *st, char *path, size_t len, size_t rel)
{
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "compress: %s: %s\n", path, strerror(errno));
        return 0;
    }
    size_t sep = path[len - 1] == '/' ? 0 : 1;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t n = strlen(e->d_name);
        if (len + sep + n >= PATH_MAX)
            continue;
        if (sep)
            path[len] = '/';
        memcpy(path + len + sep, e->d_name, n + 1);
        rc = walk(st, path, len + sep + n, rel);
        path[len] = '\0';
    }
    closedir(d);
    return rc;
}

/* Inside a directory, links lead to files but never to directories, so
 * that the walk cannot loop. */
static int walk(mpx_stage_t *st, char *path, size_t len, size_t rel)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (S_ISDIR(sb.st_mode))
        return walk_dir(st, path, len, rel);
    if (S_ISLNK(sb.st_mode) && stat(path, &sb) != 0)
        return 0;
    if (!S_ISREG(sb.st_mode))
        return 0;
    if ((uint64_t)sb.st_size > MAX_FILE_SIZE) {
        fprintf(stderr, "compress: %s: skipped, larger than %u bytes\n", path, MAX_FILE_SIZE);
        return 0;
    }
    return put_file(st, path, path + rel);
}

static int list_setup(mpx_stage_t *st)
{
    const list_args *a = mpx_args(st);
    char path[PATH_MAX];
    for (int i = 0; i < a->npaths; i++) {
        struct stat sb;
        size_t len = strlen(a->paths[i]);
        if (stat(a->paths[i], &sb) != 0 || len >= sizeof path) {
            fprintf(stderr, "compress: %s: %s\n", a->paths[i],
                    len >= sizeof path ? "path too long" : strerror(errno));
            continue;
        }
        memcpy(path, a->paths[i], len + 1);
        int rc;
        if (S_ISDIR(sb.st_mode))
            rc = walk_dir(st, path, len, path[len - 1] == '/' ? len : len + 1);
        else {
            const char *slash = strrchr(path, '/');
            rc = walk(st, path, len, slash ? (size_t)(slash + 1 - path) : 0);
        }
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}

static const mpx_stage_def_t List = {
    .name = "list",
    .args_size = sizeof(list_args),
    .setup = list_setup,
};

/* ---- read: a path in, the file's bytes out, its size and CRC in meta ------- */

static int read_process(mpx_stage_t *st, mpx_item_t *item)
{
    buffer *b = mpx_state(st);
    const char *path = mpx_item_str(item);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mpx_fail(st, "%s: %s", path, strerror(errno));
    b->len = 0;
    for (;;) {
        if (buffer_reserve(b, b->len + 65536) != 0) {
            close(fd);
            return mpx_fail(st, "out of memory reading %s", path);
        }
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return mpx_fail(st, "%s: %s", path, strerror(err));
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
        if (b->len > MAX_FILE_SIZE) {
            close(fd);
            return mpx_fail(st, "%s grew past %u bytes while being read", path, MAX_FILE_SIZE);
        }
    }
    close(fd);
    int rc;
    if ((rc = mpx_meta_set_i64(st, "size", (int64_t)b->len)) != 0 ||
        (rc = mpx_meta_set_i64(st, "crc", (int64_t)crc32_z(crc32_z(0, NULL, 0), b->data, b->len))) != 0)
        return rc;
    return mpx_put(st, b->data, b->len);
}

static int read_teardown(mpx_stage_t *st)
{
    buffer_free(mpx_state(st));
    return 0;
}

static const mpx_stage_def_t Read = {
    .name = "read",
    .state_size = sizeof(buffer),
    .process = read_process,
    .teardown = read_teardown,
};

/* ---- deflate: bytes in, a gzip member out ----------------------------------- */

/* One zlib stream per process, made in setup and reset per file: setup and
 * teardown are where a stage keeps what outlives one item. */
typedef struct zstate {
    z_stream z;
    bool ready;
    buffer out;
} zstate;

static int deflate_setup(mpx_stage_t *st)
{
    zstate *s = mpx_state(st);
    /* windowBits 15 + 16: a gzip header and trailer rather than zlib's. */
    if (deflateInit2(&s->z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return mpx_fail(st, "deflateInit2: %s", s->z.msg ? s->z.msg : "failed");
    s->ready = true;
    return 0;
}

static int deflate_process(mpx_stage_t *st, mpx_item_t *item)
{
    zstate *s = mpx_state(st);
    const char *rel = mpx_meta_str(st, "rel") ? mpx_meta_str(st, "rel") : "a file";
    size_t n = mpx_item_size(item, 0);
    if (deflateReset(&s->z) != Z_OK)
        return mpx_fail(st, "deflateReset failed");
    size_t bound = deflateBound(&s->z, (uLong)n);
    if (buffer_reserve(&s->out, bound) != 0)
        return mpx_fail(st, "out of memory compressing %s", rel);
    s->z.next_in = mpx_item_data(item, 0);
    s->z.avail_in = (uInt)n;
    s->z.next_out = s->out.data;
    s->z.avail_out = (uInt)bound;
    /* With deflateBound's room, one call finishes the whole stream. */
    int zrc = deflate(&s->z, Z_FINISH);
    if (zrc != Z_STREAM_END)
        return mpx_fail(st, "deflate %s: %d", rel, zrc);
    return mpx_put(st, s->out.data, s->z.total_out);
}

static int deflate_teardown(mpx_stage_t *st)
{
    zstate *s = mpx_state(st);
    if (s->ready)
        deflateEnd(&s->z);
    s->ready = false;
    buffer_free(&s->out);
    return 0;
}

static const mpx_stage_def_t Deflate = {
    .name = "deflate",
    .state_size = sizeof(zstate),
    .setup = deflate_setup,
    .process = deflate_process,
    .teardown = deflate_teardown,
};

/* ---- verify: inflate again and compare with the original's size and CRC ---- */

static int verify_setup(mpx_stage_t *st)
{
    zstate *s = mpx_state(st);
    if (inflateInit2(&s->z, 15 + 16) != Z_OK)
        return mpx_fail(st, "inflateInit2: %s", s->z.msg ? s->z.msg : "failed");
    s->ready = true;
    return 0;
}

static int verify_process(mpx_stage_t *st, mpx_item_t *item)
{
    zstate *s = mpx_state(st);
    const char *rel = mpx_meta_str(st, "rel");
    int64_t size, crc;
    if (!rel || mpx_meta_i64(st, "size", &size) != 0 || mpx_meta_i64(st, "crc", &crc) != 0)
        return mpx_fail(st, "an item came without its rel, size and crc meta");
    /* One byte more than expected, so that too much output shows. */
    if (inflateReset(&s->z) != Z_OK || buffer_reserve(&s->out, (size_t)size + 1) != 0)
        return mpx_fail(st, "cannot prepare to inflate %s", rel);
    s->z.next_in = mpx_item_data(item, 0);
    s->z.avail_in = (uInt)mpx_item_size(item, 0);
    s->z.next_out = s->out.data;
    s->z.avail_out = (uInt)size + 1;
    int zrc = inflate(&s->z, Z_FINISH);
    if (zrc != Z_STREAM_END || s->z.total_out != (uLong)size || s->z.avail_in != 0)
        return mpx_fail(st, "%s: does not inflate to %" PRId64 " bytes (zlib %d, %lu bytes)",
                        rel, size, zrc, (unsigned long)s->z.total_out);
    uLong got = crc32_z(crc32_z(0, NULL, 0), s->out.data, (size_t)size);
    if (got != (uLong)crc)
        return mpx_fail(st, "%s: CRC-32 %08lx after the round trip, %08lx before", rel, got,
                        (unsigned long)crc);
    return mpx_put_item(st, item);
}

static int verify_teardown(mpx_stage_t *st)
{
    zstate *s = mpx_state(st);
    if (s->ready)
        inflateEnd(&s->z);
    s->ready = false;
    buffer_free(&s->out);
    return 0;
}

static const mpx_stage_def_t Verify = {
    .name = "verify",
    .state_size = sizeof(zstate),
    .setup = verify_setup,
    .process = verify_process,
    .teardown = verify_teardown,
};

/* ---- write: the gzip member to OUTDIR/rel.gz; sizes out to the parent -------- */

typedef struct write_args {
    const char *outdir; /* argv: outlives the run */
} write_args;

/* mkdir -p of the directories leading to path.  Three writers may race to
 * make the same directory, hence EEXIST is fine. */
static int make_parents(char *path)
{
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0777);
        int err = errno;
        *p = '/';
        if (rc != 0 && err != EEXIST)
            return err;
    }
    return 0;
}

static int write_all(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return errno;
    for (const char *p = data; n > 0;) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int err = errno;
            close(fd);
            return err;
        }
        p += w;
        n -= (size_t)w;
    }
    return close(fd) == 0 ? 0 : errno;
}

static int write_process(mpx_stage_t *st, mpx_item_t *item)
{
    const write_args *a = mpx_args(st);
    const char *rel = mpx_meta_str(st, "rel");
    int64_t size;
    if (!rel || mpx_meta_i64(st, "size", &size) != 0)
        return mpx_fail(st, "an item came without its rel and size meta");
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s.gz", a->outdir, rel) >= (int)sizeof path)
        return mpx_fail(st, "%s/%s.gz: path too long", a->outdir, rel);
    int err = make_parents(path);
    if (!err)
        err = write_all(path, mpx_item_data(item, 0), mpx_item_size(item, 0));
    if (err)
        return mpx_fail(st, "%s: %s", path, strerror(err));
    int64_t sizes[2] = {size, (int64_t)mpx_item_size(item, 0)};
    mpx_part_t parts[2] = {{&sizes[0], sizeof sizes[0]}, {&sizes[1], sizeof sizes[1]}};
    return mpx_put_parts(st, parts, 2);
}

static const mpx_stage_def_t Write = {
    .name = "write",
    .args_size = sizeof(write_args),
    .process = write_process,
};

/* ---- main: build, then read the output as it leaves the graph --------------- */

int main(int argc, char **argv)
{
    static const char *const default_paths[] = {"/usr/share/common-licenses"};
    /* Drawing needs no OUTDIR: the arguments after --dot are read as they
     * would be without it, and a missing OUTDIR is never written to. */
    bool dot = argc > 1 && strcmp(argv[1], "--dot") == 0;
    if (dot) {
        argv++;
        argc--;
    } else if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: compress OUTDIR [PATH...]\n"
                        "gzip the files under PATHs (default /usr/share/common-licenses)\n"
                        "into OUTDIR with 17 processes.\n"
                        "       compress --dot [OUTDIR [PATH...]]\n"
                        "print the graph in Graphviz DOT instead.\n");
        return argc == 2 && strcmp(argv[1], "-h") == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    list_args list = {default_paths, 1};
    if (argc > 2)
        list = (list_args){(const char *const *)(argv + 2), argc - 2};

    mpx_graph_t *g = MPX_EZ(mpx_stage(&List, &list),
                            mpx_as(3, &Read, NULL),
                            mpx_as(7, &Deflate, NULL),
                            mpx_as(3, &Verify, NULL),
                            mpx_as(3, &Write, &(write_args){argc > 1 ? argv[1] : NULL}));
    if (dot) {
        int rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "compress: cannot draw the graph: %s\n", mpx_strerror(rc));
        mpx_node_destroy(&g);
        return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }

    /* mpx_graph_next starts the graph and hands over each item as it
     * leaves the last stage, meta included. */
    uint64_t files = 0, in = 0, out = 0;
    for (mpx_item_t *it; (it = mpx_graph_next(g));) {
        int64_t isize, osize;
        if (mpx_item_get_i64(it, 0, &isize) != 0 || mpx_item_get_i64(it, 1, &osize) != 0) {
            fprintf(stderr, "compress: unexpected item for %s\n",
                    mpx_item_meta_str(it, "rel") ? mpx_item_meta_str(it, "rel") : "?");
            mpx_graph_stop(g);
            break;
        }
        files++;
        in += (uint64_t)isize;
        out += (uint64_t)osize;
    }
    int rc = mpx_graph_join(g);
    if (rc != 0)
        fprintf(stderr, "compress: %s\n", mpx_graph_error(g));
    else
        printf("files: %" PRIu64 "  in: %" PRIu64 " bytes  out: %" PRIu64 " bytes  ratio: %.2f\n",
               files, in, out, out ? (double)in / (double)out : 0.0);
    mpx_node_destroy(&g);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
