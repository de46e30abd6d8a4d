/* tests/test_files.c — Files (mpx_files, mpx_files_follow) and Save
 * (mpx_save), checked as a user would: the set of files against what
 * find(1) lists, their meta, the order, what happens to a directory that
 * cannot be read under each error policy, files copied flat through a
 * graph byte for byte, the names Save refuses, parallel instances and a
 * write that fails.  Every tree lives under harness_tmpdir() and is
 * removed before the case ends, pass or fail. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"

/* ---- trees -------------------------------------------------------------- */

static char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return p;
}

/* `size` bytes that depend on `seed` (xorshift): files tell apart. */
static unsigned char *pattern(size_t size, unsigned seed)
{
    unsigned char *b = malloc(size ? size : 1);
    REQUIRE(b, "out of memory");
    uint64_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (unsigned char)(x >> 24);
    }
    return b;
}

static void write_file(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0, "create %s: %s", path, strerror(errno));
    const char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        REQUIRE(w > 0, "write %s: %s", path, strerror(errno));
        p += w;
        size -= (size_t)w;
    }
    close(fd);
}

/* root/rel, a file of `size` pattern bytes. */
static void make_file(const char *root, const char *rel, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    unsigned char *b = pattern(size, (unsigned)strlen(rel) * 31u + (unsigned)size);
    write_file(path, b, size);
    free(b);
}

static void make_dir(const char *root, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    REQUIRE(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
}

static void make_link(const char *root, const char *rel, const char *target)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    REQUIRE(symlink(target, path) == 0, "symlink %s: %s", path, strerror(errno));
}

/* The whole file; NULL when it cannot be opened.  *size gets its length. */
static unsigned char *slurp(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, cap *= 2);
        REQUIRE(buf, "out of memory");
        ssize_t r = read(fd, buf + len, cap - len);
        REQUIRE(r >= 0, "read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    *size = len;
    return buf;
}

/* Remove `fd`'s entries, depth first, making each directory readable
 * first (as a plain user, a mode-0 directory could not be emptied). */
static void empty_dir_at(int fd)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
            fchmodat(dirfd(d), e->d_name, 0700, 0);
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (sub >= 0)
                empty_dir_at(sub);
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        } else {
            unlinkat(dirfd(d), e->d_name, 0);
        }
    }
    closedir(d);
}

static void rm_tree(const char *path)
{
    chmod(path, 0700);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        empty_dir_at(fd);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ---- lists of paths ----------------------------------------------------- */

typedef struct strs {
    char **v;
    size_t n;
} strs_t;

static void strs_add(strs_t *s, const char *p, size_t n)
{
    s->v = realloc(s->v, (s->n + 1) * sizeof *s->v);
    REQUIRE(s->v, "out of memory");
    s->v[s->n] = strndup(p, n);
    REQUIRE(s->v[s->n], "out of memory");
    s->n++;
}

static void strs_free(strs_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (strs_t){0};
}

/* The order Files promises: names compared with strcmp within each
 * directory, a directory's entries where its name sorts — that is, whole
 * paths compared byte by byte with '/' below every other byte. */
static int tree_order(const void *pa, const void *pb)
{
    const unsigned char *a = *(const unsigned char *const *)pa;
    const unsigned char *b = *(const unsigned char *const *)pb;
    for (;; a++, b++) {
        int x = *a == '/' ? 1 : *a, y = *b == '/' ? 1 : *b;
        if (x != y || !x)
            return x - y;
    }
}

static int plain_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qsort, but not given NULL for an empty list. */
static void strs_sort(strs_t *s, int (*cmp)(const void *, const void *))
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof *s->v, cmp);
}

/* What `find [-L] root -type f` lists (names may hold any byte but NUL,
 * hence -print0), sorted with strcmp. */
static strs_t find_files(const char *root, bool follow)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "find %s '%s' -type f -print0 2>/dev/null", follow ? "-L" : "",
             root);
    FILE *f = popen(cmd, "r");
    REQUIRE(f, "popen %s: %s", cmd, strerror(errno));
    char *text = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 > cap)
            text = realloc(text, cap = cap * 2 + 8192);
        REQUIRE(text, "out of memory");
        size_t r = fread(text + len, 1, cap - len, f);
        if (r == 0)
            break;
        len += r;
    }
    pclose(f); /* find -L says 1 on a loop it skipped: only the list matters */
    strs_t s = {0};
    for (size_t i = 0; i < len;) {
        size_t n = strlen(text + i);
        strs_add(&s, text + i, n);
        i += n + 1;
    }
    free(text);
    strs_sort(&s, plain_order);
    return s;
}

/* Run a graph to its end and keep every item's part 0, checking the meta
 * Files promises on each: path equal to part 0, name its last component,
 * size the file's (as stat, or lstat without following, says). */
static strs_t files_output(mpx_graph_t *g, bool follow, int *rc)
{
    mpx_list_t *list = NULL;
    *rc = mpx_graph_collect(g, &list);
    strs_t s = {0};
    for (size_t i = 0; list && i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        const char *p = mpx_item_str(it);
        CHECK_EQ(mpx_item_parts(it), 1);
        strs_add(&s, p, strlen(p));
        const char *meta_path = mpx_item_meta_str(it, "path");
        const char *name = mpx_item_meta_str(it, "name");
        const char *slash = strrchr(p, '/');
        CHECK(meta_path && strcmp(meta_path, p) == 0, "meta path %s of %s", meta_path, p);
        CHECK(name && strcmp(name, slash ? slash + 1 : p) == 0, "meta name %s of %s", name, p);
        int64_t size = -1;
        struct stat sb;
        CHECK_EQ(mpx_item_meta_i64(it, "size", &size), 0);
        REQUIRE((follow ? stat(p, &sb) : lstat(p, &sb)) == 0, "stat %s: %s", p, strerror(errno));
        CHECK(S_ISREG(sb.st_mode), "%s is not a regular file", p);
        CHECK_EQ(size, sb.st_size);
    }
    mpx_list_destroy(&list);
    return s;
}

/* Same strings, in the same order (after sorting both when `sort`). */
static void check_same(strs_t *got, strs_t *want, const char *what)
{
    CHECK(got->n == want->n, "%s: %zu files, find lists %zu", what, got->n, want->n);
    for (size_t i = 0; i < got->n && i < want->n; i++)
        if (strcmp(got->v[i], want->v[i]) != 0) {
            CHECK(false, "%s: #%zu is %s, expected %s", what, i, got->v[i], want->v[i]);
            break;
        }
}

/* Files' output against find's, as a set, and in the promised order. */
static void check_like_find(mpx_node_t *node, const char *root, bool follow, size_t expect_n)
{
    mpx_graph_t *g = MPX_EZ(node);
    int rc;
    strs_t got = files_output(g, follow, &rc);
    CHECK(rc == 0, "%s: %.400s", root, mpx_graph_error(g));
    strs_t want = find_files(root, follow);
    CHECK_EQ(want.n, expect_n);
    /* The promised order: already so as it came. */
    strs_t ordered = {0};
    for (size_t i = 0; i < got.n; i++)
        strs_add(&ordered, got.v[i], strlen(got.v[i]));
    strs_sort(&ordered, tree_order);
    check_same(&got, &ordered, "order");
    strs_sort(&got, plain_order);
    check_same(&got, &want, root);
    strs_free(&ordered);
    strs_free(&got);
    strs_free(&want);
    mpx_node_destroy(&g);
}

/* A tree with something of everything find tells apart.  Names are
 * unique by base name (for the flat copy). */
static void build_tree(const char *root)
{
    REQUIRE(mkdir(root, 0755) == 0, "mkdir %s: %s", root, strerror(errno));
    make_file(root, "top.txt", 10);
    make_file(root, "Zed", 1); /* strcmp puts capitals first */
    make_file(root, "a.txt", 3); /* sorts after directory "a"'s contents */
    make_dir(root, "a");
    make_file(root, "a/one", 0);
    make_dir(root, "a/b");
    make_dir(root, "a/b/c");
    make_file(root, "a/b/c/deep.bin", 300000);
    make_file(root, "a/b/mid", 77);
    make_dir(root, "empty");
    make_file(root, "sp ace", 5);
    make_file(root, "new\nline", 6);
    make_file(root, "\xc3\xa9t\xc3\xa9", 7); /* UTF-8, bytes above 0x7f */
    make_link(root, "link-file", "top.txt");
    make_link(root, "link-dir", "a");
    make_link(root, "dangling", "nowhere");
    char fifo[1024];
    snprintf(fifo, sizeof fifo, "%s/fifo", root);
    REQUIRE(mkfifo(fifo, 0644) == 0, "mkfifo: %s", strerror(errno));
}

/* ---- Files -------------------------------------------------------------- */

static void files_same_as_find(void)
{
    char *root = tmp_path("tree");
    build_tree(root);
    /* 9 regular files; links, the FIFO and directories are not. */
    check_like_find(mpx_files(root), root, false, 9);
    /* A root ending in "/": find prints no second slash, nor does Files. */
    char slashed[600];
    snprintf(slashed, sizeof slashed, "%s/", root);
    check_like_find(mpx_files(slashed), slashed, false, 9);
    /* A root that is a link is not followed, as by find; "link/" is. */
    char *link_root = tmp_path("link-to-tree");
    REQUIRE(symlink(root, link_root) == 0, "symlink: %s", strerror(errno));
    check_like_find(mpx_files(link_root), link_root, false, 0);
    snprintf(slashed, sizeof slashed, "%s/", link_root);
    check_like_find(mpx_files(slashed), slashed, false, 9);
    unlink(link_root);
    /* A root that is a regular file is that one file. */
    char file_root[600];
    snprintf(file_root, sizeof file_root, "%s/a/b/mid", root);
    check_like_find(mpx_files(file_root), file_root, false, 1);
    /* An empty directory gives nothing, successfully. */
    snprintf(file_root, sizeof file_root, "%s/empty", root);
    check_like_find(mpx_files(file_root), file_root, false, 0);
    rm_tree(root);
}

static void files_follow_like_find_L(void)
{
    char *root = tmp_path("tree");
    build_tree(root);
    /* Loops: back to the root from below, and a directory to itself. */
    make_link(root, "a/b/up", "../..");
    make_link(root, "a/self", ".");
    /* Followed: link-file (top.txt again) and everything under link-dir
     * (a's 3 files) besides the 9; the loops add nothing. */
    check_like_find(mpx_files_follow(root), root, true, 13);
    /* Without following, the loops are links and nothing more. */
    check_like_find(mpx_files(root), root, false, 9);
    /* A root that is a link is followed. */
    char *link_root = tmp_path("link-to-tree");
    REQUIRE(symlink(root, link_root) == 0, "symlink: %s", strerror(errno));
    check_like_find(mpx_files_follow(link_root), link_root, true, 13);
    unlink(link_root);
    rm_tree(root);
}

static void files_missing_root(void)
{
    char *root = tmp_path("no-such-dir");
    mpx_graph_t *g = MPX_EZ(mpx_files(root));
    CHECK(mpx_graph_start(g) != 0, "started");
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    char want[700];
    snprintf(want, sizeof want, "files: cannot read %s: No such file or directory", root);
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Builder mistakes are refused before anything runs. */
    const char *bad[] = {NULL, ""};
    const char *says[] = {"mpx_files: the root is NULL", "mpx_files_follow: the root is empty"};
    for (int i = 0; i < 2; i++) {
        g = MPX_EZ(i ? mpx_files_follow(bad[i]) : mpx_files(bad[i]));
        CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
        CHECK(strstr(mpx_graph_error(g), says[i]), "message: %s", mpx_graph_error(g));
        mpx_node_destroy(&g);
    }
}

/* A directory this process cannot open.  Mode 0 does it for a plain user;
 * root reads any directory while it has CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH, so as root those two are taken out of the effective
 * set (they stay permitted, to be taken back) for as long as the graph
 * runs: its stage processes, forked from here, inherit the set. */
typedef struct lock {
    const char *dir;
    bool dropped;
    struct __user_cap_data_struct saved[2];
} lock_t;

static bool lock_dir(lock_t *l, const char *dir)
{
    *l = (lock_t){.dir = dir};
    if (chmod(dir, 0) != 0)
        return false;
    DIR *d = opendir(dir);
    if (!d)
        return true;
    closedir(d);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    if (syscall(SYS_capget, &h, l->saved) != 0)
        return false;
    memcpy(caps, l->saved, sizeof caps);
    caps[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    if (syscall(SYS_capset, &h, caps) != 0)
        return false;
    l->dropped = true;
    d = opendir(dir);
    if (d)
        closedir(d);
    return d == NULL;
}

static void unlock_dir(lock_t *l)
{
    if (l->dropped) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        if (syscall(SYS_capset, &h, l->saved) != 0)
            fprintf(stderr, "capset (restoring): %s\n", strerror(errno));
        l->dropped = false;
    }
    chmod(l->dir, 0755);
}

/* Dead letters: each item's part 0, part 1 and meta mpx.error on a line
 * of the file named by args. */
static int letters_process(mpx_stage_t *st, mpx_item_t *it)
{
    const char *path = mpx_args(st);
    char line[4096];
    const char *error = mpx_item_meta_str(it, "mpx.error");
    const char *where = mpx_item_meta_str(it, "path");
    int n = snprintf(line, sizeof line, "%s|%s|%s|%s\n", mpx_item_str(it),
                     mpx_item_parts(it) > 1 ? (const char *)mpx_item_data(it, 1) : "",
                     error ? error : "", where ? where : "");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return mpx_fail(st, "open %s: %s", path, strerror(errno));
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    return w == n ? 0 : mpx_fail(st, "write %s", path);
}

static const mpx_stage_def_t Letters = {.name = "letters", .args_size = 512,
                                        .process = letters_process};

static long long failed_at(mpx_graph_t *g, const char *name)
{
    long long v = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, name) == 0)
            v += (long long)info.items_failed;
    }
    return v;
}

typedef struct run {
    mpx_graph_t *g;
    strs_t got;
    int rc;
} run_t;

static void run_files(void *arg)
{
    run_t *r = arg;
    r->got = files_output(r->g, false, &r->rc);
}

/* The walk meets a directory it cannot open (made so as above: chmod 0,
 * and as root the two capabilities that bypass it dropped while the graph
 * runs).  Under each policy: stop fails the run naming the directory and
 * the error; skip logs and counts it and lists the rest; dead letter sends
 * the directory's path there and lists the rest. */
static void files_unreadable_dir(void)
{
    char *root = tmp_path("tree");
    REQUIRE(mkdir(root, 0755) == 0, "mkdir: %s", strerror(errno));
    make_file(root, "a.txt", 1);
    make_dir(root, "locked");
    make_file(root, "locked/hidden", 1);
    make_dir(root, "z");
    make_file(root, "z/y", 2);
    char locked[600], want[800];
    snprintf(locked, sizeof locked, "%s/locked", root);
    snprintf(want, sizeof want, "files: cannot open directory %s: Permission denied", locked);
    char *dead = tmp_path("dead.txt");

    /* Nothing below may REQUIRE until unlock_dir: the case would end
     * with the capabilities and the mode still off. */
    lock_t l;
    bool locked_ok = lock_dir(&l, locked);
    CHECK(locked_ok, "cannot make %s unreadable here", locked);

    /* Stop (the default). */
    mpx_graph_t *g = MPX_EZ(mpx_files(root));
    int rc;
    strs_t got = files_output(g, false, &rc);
    CHECK_EQ(rc, MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stage 'files'") && strstr(msg, want), "message: %s", msg);
    strs_free(&got);
    mpx_node_destroy(&g);

    /* Skip: logged on stderr and counted; the other files all listed. */
    run_t r = {.g = MPX_EZ(mpx_files(root))};
    CHECK_EQ(mpx_node_on_error(r.g, MPX_ON_ERROR_SKIP, NULL), 0);
    char *err = capture_stderr(run_files, &r);
    CHECK(r.rc == 0, "skip: %s", mpx_graph_error(r.g));
    CHECK_EQ(r.got.n, 2);
    if (r.got.n == 2)
        CHECK(strstr(r.got.v[0], "/a.txt") && strstr(r.got.v[1], "/z/y"), "%s %s", r.got.v[0],
              r.got.v[1]);
    CHECK_EQ(failed_at(r.g, "files"), 1);
    char meta[1600];
    snprintf(meta, sizeof meta, " skipped {path: \"%s\"}: %s", locked, want);
    CHECK(strstr(err, meta), "stderr: %s", err);
    free(err);
    strs_free(&r.got);
    mpx_node_destroy(&r.g);

    /* Dead letter: the path, and the error, land in the side graph. */
    char args[512] = {0};
    snprintf(args, sizeof args, "%s", dead);
    mpx_node_t *files = mpx_files(root);
    g = MPX_EZ(files);
    CHECK_EQ(mpx_graph_xcut(g, "dead", MPX_EZ(mpx_stage(&Letters, args))), 0);
    CHECK_EQ(mpx_node_on_error(files, MPX_ON_ERROR_DEAD_LETTER, "dead"), 0);
    got = files_output(g, false, &rc);
    CHECK(rc == 0, "dead letter: %s", mpx_graph_error(g));
    CHECK_EQ(got.n, 2);
    CHECK_EQ(failed_at(g, "files"), 1);
    strs_free(&got);
    mpx_node_destroy(&g);

    unlock_dir(&l);
    size_t n = 0;
    char *text = (char *)slurp(dead, &n);
    CHECK(text, "no dead letter");
    if (text) {
        text = realloc(text, n + 1);
        text[n] = 0;
        char line[3000];
        snprintf(line, sizeof line, "%s||%s|%s\n", locked, want, locked);
        CHECK(strcmp(text, line) == 0, "dead letters: %s", text);
        free(text);
    }
    unlink(dead);
    rm_tree(root);
}

/* ---- Save --------------------------------------------------------------- */

/* Copies what Files lists: the file's bytes in place of its path, meta
 * kept — the middle of mpyx's image example. */
static int slurp_process(mpx_stage_t *st, mpx_item_t *it)
{
    size_t n = 0;
    unsigned char *b = slurp(mpx_item_str(it), &n);
    if (!b)
        return mpx_fail(st, "cannot read %s", mpx_item_str(it));
    int rc = mpx_put(st, b, n);
    free(b);
    return rc;
}

static const mpx_stage_def_t Slurp = {.name = "slurp", .process = slurp_process};

/* Entries of a directory, sorted, "." and ".." left out. */
static strs_t listing(const char *dir)
{
    strs_t s = {0};
    DIR *d = opendir(dir);
    REQUIRE(d, "opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            strs_add(&s, e->d_name, strlen(e->d_name));
    closedir(d);
    strs_sort(&s, plain_order);
    return s;
}

static bool same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void save_copies_tree_flat(void)
{
    char *src = tmp_path("tree"), *dst = tmp_path("flat"), *outside = tmp_path("outside");
    build_tree(src);
    REQUIRE(mkdir(dst, 0755) == 0, "mkdir: %s", strerror(errno));
    /* Replaced, not appended to nor written through: a longer file and a
     * link to a file outside dst, both of a name that is saved. */
    make_file(dst, "top.txt", 5000);
    write_file(outside, "keep", 4);
    REQUIRE(symlink(outside, tmp_path("flat/mid")) == 0, "symlink: %s", strerror(errno));

    mpx_graph_t *g = MPX_EZ(mpx_files(src), mpx_instances(mpx_stage(&Slurp, NULL), 2),
                            mpx_save(dst, "name"));
    CHECK(mpx_graph_join(g) == 0, "%s", mpx_graph_error(g));
    strs_t want = find_files(src, false);
    strs_t have = listing(dst);
    CHECK_EQ(have.n, want.n); /* no temporary file left, nothing more */
    for (size_t i = 0; i < want.n; i++) {
        const char *slash = strrchr(want.v[i], '/');
        char copy[1024];
        snprintf(copy, sizeof copy, "%s/%s", dst, slash + 1);
        struct stat sb;
        CHECK(lstat(copy, &sb) == 0 && S_ISREG(sb.st_mode), "%s is no regular file", copy);
        CHECK(same_file(want.v[i], copy), "%s differs from %s", copy, want.v[i]);
    }
    size_t n = 0;
    unsigned char *kept = slurp(outside, &n);
    CHECK(kept && n == 4 && memcmp(kept, "keep", 4) == 0, "the link's target was written");
    free(kept);
    strs_free(&want);
    strs_free(&have);
    unlink(outside);
    rm_tree(src);
    rm_tree(dst);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A source of items given as "name=content" (no "=": no meta "name"),
 * each content put as parts of up to 3 bytes, so that Save must join
 * them.  A name "\\0" stands for a value holding a NUL byte. */
typedef struct named_args {
    const char *items[16];
    size_t n;
} named_args_t;

static int named_setup(mpx_stage_t *st)
{
    const named_args_t *a = mpx_args(st);
    for (size_t i = 0; i < a->n; i++) {
        const char *eq = strchr(a->items[i], '=');
        mpx_meta_clear(st);
        int rc = 0;
        if (eq && strncmp(a->items[i], "\\0", 2) == 0)
            rc = mpx_meta_set(st, "name", "a\0b", 3);
        else if (eq)
            rc = mpx_meta_set(st, "name", a->items[i], (size_t)(eq - a->items[i]));
        const char *content = eq ? eq + 1 : a->items[i];
        mpx_part_t parts[8];
        size_t np = 0, len = strlen(content);
        for (size_t off = 0; off < len && np < 8; off += 3, np++)
            parts[np] = (mpx_part_t){content + off, len - off < 3 ? len - off : 3};
        if (rc == 0)
            rc = mpx_put_parts(st, parts, np);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}

static const mpx_stage_def_t Named = {.name = "named", .args_size = sizeof(named_args_t),
                                      .setup = named_setup};

/* Every name that would leave dst, or name no file, is refused with a
 * message holding the value; nothing is written for it. */
static void save_refuses_names(void)
{
    char *dst = tmp_path("out");
    REQUIRE(mkdir(dst, 0755) == 0, "mkdir: %s", strerror(errno));
    static const struct {
        const char *item, *says;
    } cases[] = {
        {"..=x", "meta \"name\" = \"..\" cannot name a file in %s: its base name is a directory's"},
        {"/etc/x=x", "meta \"name\" = \"/etc/x\" cannot name a file in %s: it is an absolute path"},
        {"=x", "meta \"name\" = \"\" cannot name a file in %s: it is empty"},
        {"a/=x", "meta \"name\" = \"a/\" cannot name a file in %s: its base name is empty"},
        {"a/.=x", "meta \"name\" = \"a/.\" cannot name a file in %s: its base name is a"},
        {"../..=x", "meta \"name\" = \"../..\" cannot name a file in %s: its base name is a"},
        {"\\0=x", "meta \"name\" = \"a\\x00b\" cannot name a file in %s: it holds a NUL byte"},
        {"x", "the item has no meta \"name\" to name its file in %s"},
    };
    size_t ncases = sizeof cases / sizeof *cases;
    for (size_t i = 0; i < ncases; i++) {
        named_args_t a = {{cases[i].item}, 1};
        mpx_graph_t *g = MPX_EZ(mpx_stage(&Named, &a), mpx_save(dst, "name"));
        CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
        /* "%s" in says stands for dst. */
        char want[800];
        const char *at = strstr(cases[i].says, "%s");
        snprintf(want, sizeof want, "%.*s%s%s", (int)(at - cases[i].says), cases[i].says, dst,
                 at + 2);
        const char *msg = mpx_graph_error(g);
        CHECK(strstr(msg, "stage 'save'") && strstr(msg, "process failed on item 1") &&
                  strstr(msg, want),
              "%s: message: %s", cases[i].item, msg);
        CHECK_EQ(dir_entries(dst), 0);
        mpx_node_destroy(&g);
    }
    /* Under skip, the good ones around them are saved, whole: a base name
     * is taken from a relative path. */
    named_args_t a = {{"good=first", "..=x", "/etc/x=x", "x", "sub/dir/second=2nd item", "=x"},
                      6};
    run_t r = {.g = MPX_EZ(mpx_stage(&Named, &a), mpx_save(dst, "name"))};
    CHECK_EQ(mpx_node_on_error(r.g, MPX_ON_ERROR_SKIP, NULL), 0);
    char *err = capture_stderr(run_files, &r);
    CHECK(r.rc == 0, "%s", mpx_graph_error(r.g));
    CHECK_EQ(failed_at(r.g, "save"), 4);
    CHECK(strstr(err, "\"/etc/x\" cannot name a file"), "stderr: %s", err);
    free(err);
    strs_free(&r.got);
    strs_t have = listing(dst);
    CHECK(have.n == 2 && strcmp(have.v[0], "good") == 0 && strcmp(have.v[1], "second") == 0,
          "saved: %zu files", have.n);
    size_t n = 0;
    char *text = (char *)slurp(tmp_path("out/second"), &n);
    CHECK(text && n == 8 && memcmp(text, "2nd item", 8) == 0, "second: %.*s", (int)n, text);
    free(text);
    strs_free(&have);
    rm_tree(dst);
    expect_clean(r.g);
    mpx_node_destroy(&r.g);
}

static void save_missing_dir_and_bad_args(void)
{
    char *dst = tmp_path("no-such-dir");
    named_args_t a = {{"f=x"}, 1};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Named, &a), mpx_save(dst, "name"));
    CHECK(mpx_graph_start(g) != 0, "started");
    char want[700];
    snprintf(want, sizeof want, "save: cannot open directory %s: No such file or directory", dst);
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    CHECK(mpx_graph_join(g) != 0, "joined");
    expect_clean(g);
    mpx_node_destroy(&g);

    struct {
        const char *dir, *key, *says;
    } bad[] = {
        {NULL, "name", "mpx_save: the directory is NULL"},
        {"", "name", "mpx_save: the directory is empty"},
        {"/tmp", NULL, "mpx_save: the meta key for /tmp is NULL"},
        {"/tmp", "", "mpx_save: the meta key for /tmp is empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        g = MPX_EZ(mpx_stage(&Named, &a), mpx_save(bad[i].dir, bad[i].key));
        CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
        CHECK(strstr(mpx_graph_error(g), bad[i].says), "message: %s", mpx_graph_error(g));
        mpx_node_destroy(&g);
    }
}

/* A source of n items named "f<i>" (or all "same"), of i*37 % 3000
 * pattern bytes. */
typedef struct many_args {
    int n;
    bool same;
} many_args_t;

static int many_setup(mpx_stage_t *st)
{
    const many_args_t *a = mpx_args(st);
    for (int i = 0; i < a->n; i++) {
        char name[32];
        snprintf(name, sizeof name, a->same ? "same" : "f%d", i);
        size_t size = (size_t)i * 37 % 3000;
        unsigned char *b = pattern(size, (unsigned)i);
        int rc = mpx_meta_set_str(st, "name", name);
        if (rc == 0)
            rc = mpx_put(st, b, size);
        free(b);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}

static const mpx_stage_def_t Many = {.name = "many", .args_size = sizeof(many_args_t),
                                     .setup = many_setup};

static void save_parallel(void)
{
    char *dst = tmp_path("out");
    REQUIRE(mkdir(dst, 0755) == 0, "mkdir: %s", strerror(errno));
    int n = 2000;
    many_args_t a = {n, false};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Many, &a), mpx_instances(mpx_save(dst, "name"), 4));
    CHECK(mpx_graph_join(g) == 0, "%s", mpx_graph_error(g));
    int per[4] = {0};
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "save") == 0)
            per[info.instance] = (int)info.items_in;
    }
    CHECK_EQ(per[0] + per[1] + per[2] + per[3], n);
    CHECK_EQ(dir_entries(dst), n); /* no temporary file left */
    for (int i = 0; i < n; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/f%d", dst, i);
        size_t size = (size_t)i * 37 % 3000, got = 0;
        unsigned char *want = pattern(size, (unsigned)i);
        unsigned char *have = slurp(path, &got);
        CHECK(have && got == size && memcmp(have, want, size) == 0, "%s differs", path);
        free(want);
        free(have);
    }
    rm_tree(dst);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Items of one name, saved at once by four instances: the file holds
     * one of them, whole, never a mix. */
    REQUIRE(mkdir(dst, 0755) == 0, "mkdir: %s", strerror(errno));
    a = (many_args_t){400, true};
    g = MPX_EZ(mpx_stage(&Many, &a), mpx_instances(mpx_save(dst, "name"), 4));
    CHECK(mpx_graph_join(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(dir_entries(dst), 1);
    size_t got = 0;
    unsigned char *have = slurp(tmp_path("out/same"), &got);
    bool whole = false;
    for (int i = 0; have && i < a.n && !whole; i++) {
        size_t size = (size_t)i * 37 % 3000;
        unsigned char *want = pattern(size, (unsigned)i);
        whole = got == size && memcmp(have, want, size) == 0;
        free(want);
    }
    CHECK(whole, "out/same (%zu bytes) is no item's content", got);
    free(have);
    rm_tree(dst);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A write that fails part way (the file size limit, which makes write
 * return short and then EFBIG, as a full disk does with ENOSPC) fails the
 * item naming the file, and leaves no partial file. */
static void save_write_error(void)
{
    char *dst = tmp_path("out");
    REQUIRE(mkdir(dst, 0755) == 0, "mkdir: %s", strerror(errno));
    signal(SIGXFSZ, SIG_IGN); /* inherited by the stage processes */
    struct rlimit old, lim;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = 2048;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit: %s", strerror(errno));
    /* f55 (2035 bytes) fits, f56 (2072) does not */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Many, &(many_args_t){200, false}), mpx_save(dst, "name"));
    int rc = mpx_graph_join(g);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_EQ(rc, MPX_ESTAGE);
    char want[700];
    snprintf(want, sizeof want, "save: writing %s/f56: File too large", dst);
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    /* Neither f56 nor its temporary file is there; f0 .. f55 are. */
    char path[600];
    snprintf(path, sizeof path, "%s/f56", dst);
    CHECK(access(path, F_OK) != 0, "%s exists", path);
    strs_t have = listing(dst);
    CHECK_EQ(have.n, 56);
    for (size_t i = 0; i < have.n; i++)
        CHECK(have.v[i][0] == 'f', "left in %s: %s", dst, have.v[i]);
    strs_free(&have);
    rm_tree(dst);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(files_same_as_find),
        TEST_CASE(files_follow_like_find_L),
        TEST_CASE(files_missing_root),
        TEST_CASE(files_unreadable_dir),
        TEST_CASE(save_copies_tree_flat),
        TEST_CASE(save_refuses_names),
        TEST_CASE(save_missing_dir_and_bad_args),
        TEST_CASE(save_parallel),
        TEST_CASE(save_write_error),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
