/* examples/meta_filename.c — mpyx's .meta example in C: a file's name
 * travels beside the items in meta, so the stage in the middle never
 * sees it, yet the last stage can print it.
 *
 *     meta_filename [--dot] [PATH...]   (default /usr/share/common-licenses)
 *
 *     list ──path──▶ lines ×3 ──count──▶ report      meta "name" rides along
 *
 * A directory contributes the regular files directly in it.  The order of
 * the lines printed depends on which counter finishes first.  --dot prints
 * the graph in Graphviz DOT instead of running it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpx.h>

typedef struct list_args {
    /* argv or a static array: both outlive the run and fork copies them. */
    const char *const *paths;
    int npaths;
} list_args;

/* Put path with its file name in meta, if it is a regular file. */
static int put_if_file(mpx_stage_t *st, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0;
    const char *slash = strrchr(path, '/');
    /* As mpyx's ImgFiles does: set meta first, then put. */
    int rc;
    if ((rc = mpx_meta_set_str(st, "name", slash ? slash + 1 : path)) != 0)
        return rc;
    return mpx_put_str(st, path);
}

static int put_dir(mpx_stage_t *st, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "meta_filename: %s: %s\n", dir, strerror(errno));
        return 0;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        char path[4096];
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            rc = put_if_file(st, path);
    }
    closedir(d);
    return rc;
}

static int list_setup(mpx_stage_t *st)
{
    const list_args *a = mpx_args(st);
    for (int i = 0; i < a->npaths; i++) {
        struct stat sb;
        if (stat(a->paths[i], &sb) != 0) {
            fprintf(stderr, "meta_filename: %s: %s\n", a->paths[i], strerror(errno));
            continue;
        }
        int rc = S_ISDIR(sb.st_mode) ? put_dir(st, a->paths[i]) : put_if_file(st, a->paths[i]);
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

/* The item is the path; the item out is the count alone.  The meta it
 * came with leaves with it, untouched, so "name" reaches the report. */
static int lines_process(mpx_stage_t *st, mpx_item_t *item)
{
    const char *path = mpx_item_str(item);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mpx_fail(st, "%s: %s", path, strerror(errno));
    int64_t lines = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return mpx_fail(st, "%s: %s", path, strerror(err));
        }
        if (n == 0)
            break;
        for (const char *p = buf, *end = buf + n; (p = memchr(p, '\n', (size_t)(end - p))); p++)
            lines++;
    }
    close(fd);
    return mpx_put_i64(st, lines);
}

static const mpx_stage_def_t Lines = {
    .name = "lines",
    .process = lines_process,
};

static int report_process(mpx_stage_t *st, mpx_item_t *item)
{
    int64_t lines;
    const char *name = mpx_meta_str(st, "name");
    if (!name || mpx_item_get_i64(item, 0, &lines) != 0)
        return mpx_fail(st, "an item came without its name or count");
    printf("%s: %" PRId64 " lines\n", name, lines);
    return 0;
}

static const mpx_stage_def_t Report = {
    .name = "report",
    .process = report_process,
};

int main(int argc, char **argv)
{
    static const char *const default_paths[] = {"/usr/share/common-licenses"};
    bool dot = argc > 1 && strcmp(argv[1], "--dot") == 0;
    int first = dot ? 2 : 1;
    list_args list = {default_paths, 1};
    if (argc > first)
        list = (list_args){(const char *const *)(argv + first), argc - first};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&List, &list),
                            mpx_as(3, &Lines, NULL),
                            mpx_stage(&Report, NULL));
    if (dot) {
        int rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "meta_filename: cannot draw the graph: %s\n", mpx_strerror(rc));
        mpx_node_destroy(&g);
        return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    /* mpx_run prints mpx_graph_error() when the run fails. */
    int rc = mpx_run(g);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
