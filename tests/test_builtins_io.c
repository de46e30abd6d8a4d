/* tests/test_builtins_io.c — Read, Read chunks, Write and Exec, checked as
 * a user would: the exact lines and bytes that come out or land in the
 * file, the messages of failures, and that no process (stage, command,
 * orphan) and no file is left.  Files live under harness_tmpdir() and are
 * removed before each case ends. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- helpers ------------------------------------------------------------ */

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return p;
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

/* The whole file, NUL-terminated; *size gets its length. */
static char *slurp(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0, "open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
        REQUIRE(buf, "out of memory");
        ssize_t r = read(fd, buf + len, cap - len);
        REQUIRE(r >= 0, "read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    *size = len;
    return buf;
}

/* The file's content, and the file removed: expect_clean() wants the
 * case's directory empty after every graph. */
static char *take_file(const char *path, size_t *size)
{
    char *text = slurp(path, size);
    unlink(path);
    return text;
}

/* Pseudo-random bytes (xorshift), many of them NUL. */
static unsigned char *random_bytes(size_t n, uint64_t seed)
{
    unsigned char *b = malloc(n);
    REQUIRE(b, "out of memory");
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (x >> 40) % 3 == 0 ? 0 : (unsigned char)(x >> 24);
    }
    return b;
}

/* Process pid's command line, arguments joined by spaces ("" when it
 * cannot be read: gone, or between fork and exec). */
static void read_cmdline(long pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t len = read(fd, buf, cap - 1);
    close(fd);
    if (len <= 0)
        return;
    for (ssize_t i = 0; i < len; i++)
        if (buf[i] == 0)
            buf[i] = ' ';
    buf[len] = 0;
}

/* Whether process pid's command line starts with `prefix`. */
static bool cmdline_starts(long pid, const char *prefix)
{
    char buf[1024];
    read_cmdline(pid, buf, sizeof buf);
    return strncmp(buf, prefix, strlen(prefix)) == 0;
}

/* Processes (anywhere on the system) whose command line contains marker,
 * or with at_start, begins with it: a command left running by Exec is
 * found even if it was not ours. */
static int processes_matching(const char *marker, bool at_start)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        char buf[1024];
        read_cmdline(pid, buf, sizeof buf);
        if (at_start ? strncmp(buf, marker, strlen(marker)) == 0 : strstr(buf, marker) != NULL)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static int processes_with(const char *marker) { return processes_matching(marker, false); }

/* Every stage process of a started graph was never forked. */
static bool nothing_forked(const mpx_graph_t *g)
{
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && info.pid != 0)
            return false;
    }
    return true;
}

/* After a graph with Exec: expect_clean() (no zombie: an unreaped command
 * would come back to the harness, a subreaper, and be seen), then no
 * process at all whose parent is the harness (an orphaned command would
 * be one). */
static void expect_exec_clean(mpx_graph_t *g)
{
    expect_clean(g);
    CHECK(no_children_left(0), "a process is left");
}

/* ---- sources the tests feed stages with --------------------------------- */

/* Line i of a test, without newline, into buf; returns its length.  Each
 * item carries meta "i" = i. */
typedef size_t (*line_fn)(int64_t i, char *buf, size_t cap);

typedef struct lines_args {
    int64_t n;
    line_fn line;
    bool newline; /* put "\n" as a second part of every item (for Write) */
} lines_args_t;

static int lines_setup(mpx_stage_t *st)
{
    const lines_args_t *a = mpx_args(st);
    static char buf[1 << 20];
    for (int64_t i = 0; i < a->n; i++) {
        size_t len = a->line(i, buf, sizeof buf);
        mpx_part_t parts[2] = {{buf, len}, {"\n", 1}};
        int rc = mpx_meta_set_i64(st, "i", i);
        if (rc == 0)
            rc = mpx_put_parts(st, parts, a->newline ? 2 : 1);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Lines = {
    .name = "lines", .args_size = sizeof(lines_args_t), .setup = lines_setup};

static mpx_node_t *lines_node(int64_t n, line_fn line, bool newline)
{
    return mpx_stage(&Lines, &(lines_args_t){n, line, newline});
}

/* Pieces of a byte array inherited by fork, of sizes 1 .. max. */
typedef struct bytes_args {
    const unsigned char *data;
    size_t size, max;
} bytes_args_t;

static int bytes_setup(mpx_stage_t *st)
{
    const bytes_args_t *a = mpx_args(st);
    uint64_t x = 88172645463325252u;
    for (size_t off = 0; off < a->size;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = 1 + (size_t)(x % a->max);
        if (n > a->size - off)
            n = a->size - off;
        int rc = mpx_put(st, a->data + off, n);
        if (rc != 0)
            return rc;
        off += n;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Bytes = {
    .name = "bytes", .args_size = sizeof(bytes_args_t), .setup = bytes_setup};

/* "line <i> <letters>" with 0 .. 40 letters, lower case. */
static size_t text_line(int64_t i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "line %lld ", (long long)i);
    for (int k = 0; k < (int)(i % 41); k++)
        buf[n++] = (char)('a' + (i + k) % 26);
    return (size_t)n;
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

/* Takes 10 items, then stops: what is upstream must end quietly. */
static int take10(mpx_stage_t *st, mpx_item_t *it)
{
    int *seen = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (++*seen == 10)
        mpx_stop(st);
    return rc;
}
static const mpx_stage_def_t Take10 = {
    .name = "take10", .state_size = sizeof(int), .process = take10};

/* ---- Read --------------------------------------------------------------- */

static void read_lines_exact(void)
{
    size_t big = 100 * 1024;
    char *long_line = malloc(big + 1);
    REQUIRE(long_line, "out of memory");
    for (size_t i = 0; i < big; i++)
        long_line[i] = (char)('a' + i % 26);
    long_line[big] = 0;
    const char *want[] = {"first", "", long_line, "tab\there", "crlf\r", "", "no newline"};
    size_t n = sizeof want / sizeof *want;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(want[i]) + 1;
    char *file = malloc(total);
    REQUIRE(file, "out of memory");
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(file + len, want[i], strlen(want[i]));
        len += strlen(want[i]);
        if (i + 1 < n)
            file[len++] = '\n'; /* the last line has none */
    }
    const char *path = tmp_path("lines.txt");
    write_file(path, file, len);

    mpx_graph_t *g = MPX_EZ(mpx_read(path));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_list_size(out), n);
    for (size_t i = 0; i < n && i < mpx_list_size(out); i++) {
        mpx_item_t *it = mpx_list_at(out, i);
        CHECK_EQ(mpx_item_parts(it), 1);
        CHECK_EQ(mpx_item_size(it, 0), strlen(want[i]));
        CHECK(mpx_item_size(it, 0) == strlen(want[i]) &&
                  memcmp(mpx_item_data(it, 0), want[i], strlen(want[i])) == 0,
              "line %zu differs", i + 1);
        int64_t line = 0;
        CHECK(mpx_item_meta_i64(it, "line", &line) == 0 && line == (int64_t)i + 1,
              "meta line of item %zu is %lld", i, (long long)line);
    }
    mpx_list_destroy(&out);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(file);
    free(long_line);
}

/* Many lines of every length, so that lines straddle every read block;
 * a trailing newline ends the last line (no empty item after it). */
static void read_many_lines(void)
{
    const int64_t n = 200000;
    size_t cap = 64u << 20, len = 0;
    char *file = malloc(cap);
    REQUIRE(file, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        len += text_line(i, file + len, cap - len);
        file[len++] = '\n';
    }
    const char *path = tmp_path("many.txt");
    write_file(path, file, len);
    free(file);

    mpx_graph_t *g = MPX_EZ(mpx_read(path));
    int64_t got = 0;
    bool same = true;
    mpx_item_t *it;
    char want[256];
    while ((it = mpx_graph_next(g))) {
        size_t wl = text_line(got, want, sizeof want);
        if (same && (mpx_item_size(it, 0) != wl || memcmp(mpx_item_data(it, 0), want, wl))) {
            CHECK(false, "line %lld is '%s'", (long long)got + 1, mpx_item_str(it));
            same = false;
        }
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(got, n);

    /* A consumer that stops after 10 lines: Read ends quietly. */
    mpx_graph_t *g2 = MPX_EZ(mpx_read(path), mpx_stage(&Take10, NULL));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g2, &out), 0);
    CHECK(strcmp(mpx_graph_error(g2), "") == 0, "%s", mpx_graph_error(g2));
    CHECK_EQ(mpx_list_size(out), 10);
    mpx_list_destroy(&out);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
    expect_clean(g2);
    mpx_node_destroy(&g2);

    /* An empty file gives no item at all. */
    write_file(path, "", 0);
    g = MPX_EZ(mpx_read(path));
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK_EQ(mpx_list_size(out), 0);
    mpx_list_destroy(&out);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void read_chunks_binary(void)
{
    const size_t size = 1000003, chunk = 4096;
    unsigned char *data = random_bytes(size, 7);
    const char *path = tmp_path("data.bin");
    write_file(path, data, size);

    mpx_graph_t *g = MPX_EZ(mpx_read_chunks(path, chunk));
    unsigned char *back = malloc(size);
    REQUIRE(back, "out of memory");
    size_t len = 0, items = 0;
    bool sizes_ok = true, offsets_ok = true;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        size_t n = mpx_item_size(it, 0);
        bool last = len + n == size;
        if (n != (last ? size % chunk : chunk))
            sizes_ok = false;
        int64_t off = -1;
        if (mpx_item_meta_i64(it, "offset", &off) != 0 || off != (int64_t)len)
            offsets_ok = false;
        if (len + n <= size)
            memcpy(back + len, mpx_item_data(it, 0), n);
        len += n;
        items++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(len, size);
    CHECK_EQ(items, (size + chunk - 1) / chunk);
    CHECK(sizes_ok, "every chunk but the last has %zu bytes, the last %zu", chunk, size % chunk);
    CHECK(offsets_ok, "meta offset is each chunk's offset");
    CHECK(len == size && memcmp(back, data, size) == 0, "the chunks reassemble to the file");
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* A chunk larger than the file: one item, the whole file. */
    write_file(path, data, size);
    g = MPX_EZ(mpx_read_chunks(path, 64u << 20));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK_EQ(mpx_list_size(out), 1);
    if (mpx_list_size(out) == 1)
        CHECK(mpx_item_size(mpx_list_at(out, 0), 0) == size &&
                  memcmp(mpx_item_data(mpx_list_at(out, 0), 0), data, size) == 0,
              "one chunk holds the file");
    mpx_list_destroy(&out);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(back);
    free(data);
}

static void read_missing_file(void)
{
    const char *path = tmp_path("no-such-file");
    mpx_graph_t *g = MPX_EZ(mpx_read(path), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    char want[600];
    snprintf(want, sizeof want, "read: cannot open %s: %s", path, strerror(ENOENT));
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    printf("error: %s\n", mpx_graph_error(g));
    CHECK(no_children_left(5), "processes left");
    expect_clean(g);
    mpx_node_destroy(&g);

    /* A directory opens, but cannot be read: start fails too. */
    g = MPX_EZ(mpx_read(harness_tmpdir()));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    snprintf(want, sizeof want, "read: reading %s: %s", harness_tmpdir(), strerror(EISDIR));
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    CHECK(no_children_left(5), "processes left");
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Refused by mpx_graph_check with a message containing `want`. */
static void expect_refused(mpx_node_t *node, const char *want)
{
    mpx_graph_t *g = MPX_EZ(node, mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(g), want), "message for '%s': %s", want, mpx_graph_error(g));
    mpx_node_destroy(&g);
}

static void expect_accepted(mpx_node_t *node)
{
    mpx_graph_t *g = MPX_EZ(node, mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_check(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    mpx_node_destroy(&g);
}

static void read_bad_args(void)
{
    char longest[MPX_PATH_MAX + 1];
    memset(longest, 'x', sizeof longest);
    longest[0] = '/';
    longest[MPX_PATH_MAX - 1] = 0; /* 1023 bytes: kept */
    expect_accepted(mpx_read(longest));
    longest[MPX_PATH_MAX - 1] = 'x';
    longest[MPX_PATH_MAX] = 0; /* 1024 bytes: too long */
    expect_refused(mpx_read(longest), "mpx_read: the path is 1024 bytes long, more than 1023");
    expect_refused(mpx_read_chunks(longest, 10), "mpx_read_chunks: the path is 1024 bytes");
    expect_refused(mpx_read(NULL), "mpx_read: the path is NULL");
    expect_refused(mpx_read(""), "mpx_read: the path is empty");
    expect_refused(mpx_read_chunks(NULL, 10), "mpx_read_chunks: the path is NULL");
    expect_refused(mpx_read_chunks("/etc/passwd", 0),
                   "mpx_read_chunks: chunk size 0 is out of range (1 .. 67108864 bytes)");
    expect_refused(mpx_read_chunks("/etc/passwd", (64u << 20) + 1),
                   "chunk size 67108865 is out of range");
    expect_accepted(mpx_read_chunks("/etc/passwd", 1));
    expect_accepted(mpx_read_chunks("/etc/passwd", 64u << 20));
    CHECK(no_children_left(0), "check forks nothing");
}

/* ---- Write -------------------------------------------------------------- */

static size_t short_line(int64_t i, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "x-%lld", (long long)i);
}

static size_t other_line(int64_t i, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "y-%lld", (long long)i);
}

/* One item of many parts (more than one writev takes at once). */
static int parts_setup(mpx_stage_t *st)
{
    static const char digits[] = "0123456789";
    mpx_part_t parts[101];
    for (int i = 0; i < 100; i++)
        parts[i] = (mpx_part_t){digits + i % 10, 1};
    parts[100] = (mpx_part_t){"\n", 1};
    int rc = mpx_put_parts(st, parts, 101);
    if (rc == 0)
        rc = mpx_put_parts(st, (mpx_part_t[]){{"ab", 2}, {"", 0}, {"cd", 2}, {"\n", 1}}, 4);
    return rc != 0 ? rc : mpx_stop(st);
}
static const mpx_stage_def_t Parts = {.name = "parts", .setup = parts_setup};

static void write_truncate_append(void)
{
    const char *path = tmp_path("out.txt");
    write_file(path, "old content that is longer than what replaces it\n", 50);
    mpx_graph_t *g = MPX_EZ(lines_node(3, short_line, true), mpx_write(path, "w"));
    CHECK_EQ(mpx_graph_join(g), 0);
    size_t len;
    char *got = take_file(path, &len);
    CHECK(strcmp(got, "x-0\nx-1\nx-2\n") == 0, "after \"w\": '%s'", got);
    expect_clean(g);
    mpx_node_destroy(&g);

    write_file(path, got, len); /* (put back after expect_clean) */
    free(got);
    g = MPX_EZ(lines_node(2, other_line, true), mpx_write(path, "a"));
    CHECK_EQ(mpx_graph_join(g), 0);
    got = take_file(path, &len);
    CHECK(strcmp(got, "x-0\nx-1\nx-2\ny-0\ny-1\n") == 0, "after \"a\": '%s'", got);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Parts are written as they are, in order, with nothing between. */
    write_file(path, got, len);
    free(got);
    g = MPX_EZ(mpx_stage(&Parts, NULL), mpx_write(path, "w"));
    CHECK_EQ(mpx_graph_join(g), 0);
    got = take_file(path, &len);
    char want[128] = "";
    for (int i = 0; i < 100; i++)
        want[i] = (char)('0' + i % 10);
    strcat(want, "\nabcd\n");
    CHECK(strcmp(got, want) == 0, "multi-part items: '%s'", got);
    free(got);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* "a" creates a file that does not exist. */
    g = MPX_EZ(lines_node(1, short_line, true), mpx_write(path, "a"));
    CHECK_EQ(mpx_graph_join(g), 0);
    got = take_file(path, &len);
    CHECK(strcmp(got, "x-0\n") == 0, "\"a\" on a new file: '%s'", got);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* A graph that writes nothing still truncates with "w". */
    write_file(path, got, len);
    free(got);
    g = MPX_EZ(lines_node(0, short_line, true), mpx_write(path, "w"));
    CHECK_EQ(mpx_graph_join(g), 0);
    got = take_file(path, &len);
    CHECK_EQ(len, 0);
    free(got);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Lines of 10 .. ~8000 bytes whose content says which line they are, so
 * that a line cut or mixed with another is seen. */
static size_t checked_line(int64_t i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%lld:", (long long)i);
    size_t len = 8 + (size_t)((i * 7919) % 8000);
    for (size_t k = (size_t)n; k < len && k < cap; k++)
        buf[k] = (char)('a' + (i + (int64_t)k) % 26);
    return len;
}

static void write_parallel_whole_lines(void)
{
    const int64_t n = 30000;
    const char *path = tmp_path("shared.txt");
    mpx_graph_t *g = MPX_EZ(lines_node(n, checked_line, true),
                            MPX_P(mpx_write(path, "w"), mpx_write(path, "w"),
                                  mpx_write(path, "w")));
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    int64_t per_branch[3] = {0};
    for (size_t i = 0; i < mpx_graph_instance_count(g) && i < 4; i++) {
        mpx_instance_info_t info;
        CHECK_EQ(mpx_graph_instance_info(g, i, &info), 0);
        if (i > 0)
            per_branch[i - 1] = (int64_t)info.items_in;
    }
    printf("items per Write instance: %lld %lld %lld\n", (long long)per_branch[0],
           (long long)per_branch[1], (long long)per_branch[2]);
    /* Lines from one writer alone would say nothing of appends that meet:
     * the least loaded branch takes each item, so a stream of 30000 that
     * outruns its writers reaches more than one. */
    CHECK((per_branch[0] > 0) + (per_branch[1] > 0) + (per_branch[2] > 0) >= 2,
          "only one Write instance wrote");
    size_t len;
    char *file = take_file(path, &len);
    expect_clean(g);
    mpx_node_destroy(&g);

    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "out of memory");
    char *want = malloc(1 << 14);
    REQUIRE(want, "out of memory");
    int64_t lines = 0, bad = 0, dup = 0;
    for (char *p = file; p < file + len;) {
        char *nl = memchr(p, '\n', (size_t)(file + len - p));
        REQUIRE(nl, "the file does not end with a newline");
        long long i = strtoll(p, NULL, 10);
        size_t wl = i >= 0 && i < n ? checked_line(i, want, 1 << 14) : 0;
        if (wl == 0 || (size_t)(nl - p) != wl || memcmp(p, want, wl) != 0)
            bad++;
        else if (seen[i]++)
            dup++;
        lines++;
        p = nl + 1;
    }
    int64_t missing = 0;
    for (int64_t i = 0; i < n; i++)
        missing += !seen[i];
    CHECK_EQ(lines, n);
    CHECK_EQ(bad, 0);
    CHECK_EQ(dup, 0);
    CHECK_EQ(missing, 0);
    free(want);
    free(seen);
    free(file);
}

/* Read chunks into Write: a binary copy, byte for byte. */
static void copy_with_chunks(void)
{
    const size_t size = 2000000;
    unsigned char *data = random_bytes(size, 3);
    const char *src = tmp_path("src.bin"), *dst = tmp_path("dst.bin");
    write_file(src, data, size);
    mpx_graph_t *g = MPX_EZ(mpx_read_chunks(src, 65536), mpx_write(dst, "w"));
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    size_t len;
    char *copy = take_file(dst, &len);
    CHECK(len == size && memcmp(copy, data, size) == 0, "the copy differs (%zu bytes)", len);
    unlink(src);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(copy);
    free(data);
}

static void write_unwritable(void)
{
    const char *dir = harness_tmpdir();
    mpx_graph_t *g = MPX_EZ(lines_node(10, short_line, true), mpx_write(dir, "a"));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    char want[600];
    snprintf(want, sizeof want, "write: cannot open %s: %s", dir, strerror(EISDIR));
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    printf("error: %s\n", mpx_graph_error(g));
    CHECK(nothing_forked(g), "a stage process was forked");
    CHECK(no_children_left(0), "processes left");
    expect_clean(g);
    mpx_node_destroy(&g);

    const char *path = tmp_path("no-such-dir/out.txt");
    g = MPX_EZ(lines_node(10, short_line, true), mpx_write(path, "w"));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    snprintf(want, sizeof want, "write: cannot open %s: %s", path, strerror(ENOENT));
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    CHECK(nothing_forked(g), "a stage process was forked");
    CHECK(no_children_left(0), "processes left");
    expect_clean(g);
    mpx_node_destroy(&g);

    /* The second of three instances cannot open: the first one's file is
     * closed again (finalize), nothing forks. */
    const char *ok = tmp_path("ok.txt");
    g = MPX_EZ(lines_node(10, short_line, true), MPX_P(mpx_write(ok, "w"), mpx_write(path, "w")));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    CHECK(strstr(mpx_graph_error(g), want), "message: %s", mpx_graph_error(g));
    CHECK(nothing_forked(g), "a stage process was forked");
    unlink(ok);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void write_bad_args(void)
{
    const char *path = tmp_path("never.txt");
    expect_refused(mpx_write(path, "x"), "is neither \"w\" nor \"a\"");
    expect_refused(mpx_write(path, "wa"), "mpx_write: mode \"wa\"");
    expect_refused(mpx_write(path, "r"), "mode \"r\"");
    expect_refused(mpx_write(path, NULL), "mpx_write: mode NULL");
    expect_refused(mpx_write(NULL, "w"), "mpx_write: the path is NULL");
    char longest[MPX_PATH_MAX + 1];
    memset(longest, 'x', sizeof longest);
    longest[MPX_PATH_MAX] = 0;
    expect_refused(mpx_write(longest, "w"), "mpx_write: the path is 1024 bytes long");
    CHECK(access(path, F_OK) != 0, "a refused Write created its file");
    CHECK(no_children_left(0), "check forks nothing");
}

/* ---- Exec --------------------------------------------------------------- */

static void exec_tr_lines(void)
{
    const int64_t n = 100000;
    mpx_graph_t *g = MPX_EZ(lines_node(n, text_line, false), mpx_exec("tr a-z A-Z", MPX_EXEC_LINES));
    int64_t got = 0;
    bool same = true;
    char want[256];
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        want[text_line(got, want, sizeof want - 1)] = 0;
        upper(want);
        if (same && strcmp(mpx_item_str(it), want) != 0) {
            CHECK(false, "line %lld: '%s', not '%s'", (long long)got, mpx_item_str(it), want);
            same = false;
        }
        CHECK_EQ(mpx_item_meta_count(it), 0); /* input meta does not ride on output */
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(got, n);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* Three commands in parallel: every line once (in no particular order). */
static void exec_parallel_multiset(void)
{
    const int64_t n = 30000;
    mpx_graph_t *g =
        MPX_EZ(lines_node(n, short_line, false),
               MPX_P(mpx_exec("tr x X", MPX_EXEC_LINES), mpx_exec("tr x X", MPX_EXEC_LINES),
                     mpx_exec("tr x X", MPX_EXEC_LINES)));
    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "out of memory");
    int64_t got = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        const char *s = mpx_item_str(it);
        char *end;
        long long i = s[0] == 'X' && s[1] == '-' ? strtoll(s + 2, &end, 10) : -1;
        if (i < 0 || i >= n || *end || seen[i]++)
            bad++;
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(got, n);
    CHECK_EQ(bad, 0);
    free(seen);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

static size_t number_line(int64_t i, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "%08lld", (long long)((i * 2654435761u) % 100000000));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void exec_sort_at_teardown(void)
{
    const int64_t n = 50000;
    char **want = malloc((size_t)n * sizeof *want);
    REQUIRE(want, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        char buf[32];
        number_line(i, buf, sizeof buf);
        want[i] = strdup(buf);
    }
    qsort(want, (size_t)n, sizeof *want, cmp_str);
    mpx_graph_t *g = MPX_EZ(lines_node(n, number_line, false),
                            mpx_exec("LC_ALL=C sort", MPX_EXEC_LINES));
    int64_t got = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (got >= n || strcmp(mpx_item_str(it), want[got]) != 0)
            bad++;
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(got, n);
    CHECK_EQ(bad, 0);
    for (int64_t i = 0; i < n; i++)
        free(want[i]);
    free(want);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

static void chunks_roundtrip(const char *command)
{
    const size_t size = 3u << 20;
    unsigned char *data = random_bytes(size, 99);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Bytes, &(bytes_args_t){data, size, 200000}),
                            mpx_exec(command, MPX_EXEC_CHUNKS));
    unsigned char *back = malloc(size);
    REQUIRE(back, "out of memory");
    size_t len = 0, items = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        size_t n = mpx_item_size(it, 0);
        if (len + n <= size)
            memcpy(back + len, mpx_item_data(it, 0), n);
        len += n;
        items++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(len, size);
    CHECK(len == size && memcmp(back, data, size) == 0, "'%s' gave other bytes back", command);
    printf("'%s': %zu bytes back in %zu items\n", command, len, items);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
    free(back);
    free(data);
}

static void exec_chunks_roundtrip(void)
{
    chunks_roundtrip("cat");
    chunks_roundtrip("gzip -c | gzip -dc");
}

/* 10 lines out for every line in, with far more input than the pipes
 * hold: the stage must read the output while the command's stdin is full,
 * or both would wait for ever. */
static void exec_more_out_than_in(void)
{
    const int64_t n = 100000;
    mpx_graph_t *g = MPX_EZ(lines_node(n, short_line, false),
                            mpx_exec("awk '{for (i = 0; i < 10; i++) print $0 \"/\" i}'",
                                     MPX_EXEC_LINES));
    int64_t got = 0, bad = 0;
    char want[64];
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        snprintf(want, sizeof want, "x-%lld/%lld", (long long)(got / 10), (long long)(got % 10));
        if (strcmp(mpx_item_str(it), want) != 0)
            bad++;
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(got, n * 10);
    CHECK_EQ(bad, 0);
    expect_exec_clean(g);
    mpx_node_destroy(&g);

    /* A command that ignores its input and writes a lot. */
    g = MPX_EZ(lines_node(100000, short_line, false),
               mpx_exec("yes | head -n 200000", MPX_EXEC_LINES));
    got = bad = 0;
    while ((it = mpx_graph_next(g))) {
        bad += strcmp(mpx_item_str(it), "y") != 0;
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(got, 200000);
    CHECK_EQ(bad, 0);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* Lines of 200 KiB, more than a pipe holds: the write of one blocks
 * until `cat` gives back what it read. */
static size_t huge_line(int64_t i, char *buf, size_t cap)
{
    size_t len = 200 * 1024 + (size_t)i;
    for (size_t k = 0; k < len && k < cap; k++)
        buf[k] = (char)('a' + (i + (int64_t)k / 1000) % 26);
    return len;
}

static void exec_long_lines(void)
{
    const int64_t n = 40;
    mpx_graph_t *g = MPX_EZ(lines_node(n, huge_line, false), mpx_exec("cat", MPX_EXEC_LINES));
    static char want[1 << 20];
    int64_t got = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        size_t wl = huge_line(got, want, sizeof want);
        bad += mpx_item_size(it, 0) != wl || memcmp(mpx_item_data(it, 0), want, wl) != 0;
        /* Output read while an item was being written is put during its
         * process call: the item's meta must not ride on it. */
        bad += mpx_item_meta_count(it) != 0;
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(got, n);
    CHECK_EQ(bad, 0);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* Exec as a source (first stage, no input): the output of a command, and
 * a last line without newline. */
static void exec_as_source(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_exec("seq 1 1000; printf 'tail\\r'", MPX_EXEC_LINES));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK_EQ(mpx_list_size(out), 1001);
    int64_t bad = 0;
    for (size_t i = 0; i < 1000 && i < mpx_list_size(out); i++)
        bad += strtoll(mpx_item_str(mpx_list_at(out, i)), NULL, 10) != (long long)i + 1;
    CHECK_EQ(bad, 0);
    if (mpx_list_size(out) == 1001)
        CHECK(strcmp(mpx_item_str(mpx_list_at(out, 1000)), "tail\r") == 0, "last: '%s'",
              mpx_item_str(mpx_list_at(out, 1000)));
    mpx_list_destroy(&out);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* The run fails (MPX_ESTAGE) with a message containing every string of
 * want, and the command is reaped all the same. */
static void expect_exec_failure(const char *command, const char *const *want, size_t nwant)
{
    mpx_graph_t *g = MPX_EZ(lines_node(1000, short_line, false),
                            mpx_exec(command, MPX_EXEC_LINES), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    for (size_t i = 0; i < nwant; i++)
        CHECK(strstr(msg, want[i]), "'%s' not in the message: %s", want[i], msg);
    printf("error: %s\n", msg);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

static void exec_failures(void)
{
    expect_exec_failure("echo oops >&2; exit 3",
                        (const char *[]){"stage 'exec' (pid ", "teardown failed: ",
                                         "exec: 'echo oops >&2; exit 3' exited with status 3: oops"},
                        3);
    /* After reading all its input (no early stop of the input). */
    expect_exec_failure("cat >/dev/null; echo 'bad input' >&2; exit 1",
                        (const char *[]){"exited with status 1: bad input"}, 1);
    expect_exec_failure("kill -9 $$",
                        (const char *[]){"exec: 'kill -9 $$' was killed by signal 9 (Killed): "
                                         "(nothing on stderr)"},
                        1);
    expect_exec_failure("no-such-program-mpx",
                        (const char *[]){"exec: 'no-such-program-mpx' exited with status 127: ",
                                         "no-such-program-mpx: not found"},
                        2);
    /* Only the last lines of a long stderr are shown, whole. */
    expect_exec_failure("i=0; while [ $i -lt 500 ]; do echo \"warning $i\" >&2; i=$((i+1)); "
                        "done; exit 2",
                        (const char *[]){"status 2: ...warning 492\nwarning 493\n", "warning 499"}, 2);
}

static void exec_head_one(void)
{
    const int64_t n = 1000000;
    mpx_graph_t *g = MPX_EZ(lines_node(n, text_line, false), mpx_exec("head -1", MPX_EXEC_LINES));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_list_size(out), 1);
    if (mpx_list_size(out) == 1)
        CHECK(strcmp(mpx_item_str(mpx_list_at(out, 0)), "line 0 ") == 0, "got '%s'",
              mpx_item_str(mpx_list_at(out, 0)));
    mpx_instance_info_t info;
    CHECK_EQ(mpx_graph_instance_info(g, 0, &info), 0);
    printf("the source put %llu of %lld lines before it was stopped\n", info.items_out,
           (long long)n);
    mpx_list_destroy(&out);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

static void exec_downstream_stops(void)
{
    /* `yes` never ends by itself: the stage must cut it off. */
    mpx_graph_t *g = MPX_EZ(mpx_exec("yes", MPX_EXEC_LINES), mpx_stage(&Take10, NULL));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_list_size(out), 10);
    mpx_list_destroy(&out);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* The command starts with SIGPIPE and SIGINT at their defaults whatever
 * the application did, with no signal blocked, in a process group of its
 * own; and the stage survives writing to a command that is gone while the
 * application ignores SIGPIPE as well. */
static void exec_signals_reset(void)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL); /* this case runs in a process of its own */
    mpx_graph_t *g = MPX_EZ(mpx_exec("exec cat /proc/self/status", MPX_EXEC_LINES));
    mpx_list_t *out = NULL;
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    unsigned long long ign_mask = ~0ull, blk_mask = ~0ull;
    long pid = -1, pgid = -2;
    for (size_t i = 0; i < mpx_list_size(out); i++) {
        const char *s = mpx_item_str(mpx_list_at(out, i));
        sscanf(s, "SigIgn: %llx", &ign_mask);
        sscanf(s, "SigBlk: %llx", &blk_mask);
        sscanf(s, "NSpid: %ld", &pid);
        sscanf(s, "NSpgid: %ld", &pgid);
    }
    CHECK(!(ign_mask & (1ull << (SIGPIPE - 1))), "SIGPIPE ignored: SigIgn %llx", ign_mask);
    CHECK(!(ign_mask & (1ull << (SIGINT - 1))), "SIGINT ignored: SigIgn %llx", ign_mask);
    CHECK_EQ(blk_mask, 0);
    CHECK(pid > 0 && pgid == pid, "pid %ld in process group %ld", pid, pgid);
    mpx_list_destroy(&out);
    expect_exec_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(lines_node(200000, short_line, false), mpx_exec("head -n 2", MPX_EXEC_LINES));
    CHECK_EQ(mpx_graph_collect(g, &out), 0);
    CHECK_EQ(mpx_list_size(out), 2);
    mpx_list_destroy(&out);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* The info of the graph's one Exec instance. */
static mpx_instance_info_t exec_instance(mpx_graph_t *g)
{
    mpx_instance_info_t info = {0};
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++)
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "exec") == 0)
            return info;
    harness_abort(__FILE__, __LINE__, "exec_instance", "no Exec instance in the graph");
}

/* The stage process ended by itself, as told: it heard the stop (in a put
 * or in mpx_poll) and was not killed for want of hearing it — a kill
 * would have left its guard behind. */
static void expect_exec_exited(mpx_graph_t *g)
{
    mpx_instance_info_t info = exec_instance(g);
    CHECK(info.exited && WIFEXITED(info.wait_status) && WEXITSTATUS(info.wait_status) == 0,
          "the exec stage process ended with wait status %#x", (unsigned)info.wait_status);
}

/* The parent of process pid, or -1. */
static long parent_of(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return -1;
    buf[len] = 0;
    char *rp = strrchr(buf, ')');
    char state;
    long ppid;
    return rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 ? ppid : -1;
}

/* Start a graph whose Exec runs `exec <marker>` (sleep: it reads nothing
 * and writes nothing) after writing its pid to pidfile, and wait until
 * the marker runs; returns the command's pid. */
static long start_sleeper(mpx_graph_t *g, const char *pidfile, const char *marker)
{
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    for (int i = 0; i < 10000 && access(pidfile, F_OK) != 0; i++)
        usleep(1000);
    size_t len;
    char *text = take_file(pidfile, &len);
    long pid = strtol(text, NULL, 10);
    free(text);
    /* Until sh has become sleep: sh's own command line holds the marker
     * too, and while it execs its command line reads empty.  (10 s: a
     * guard against a hang, not a measure of time.) */
    for (int i = 0; i < 10000 && !cmdline_starts(pid, marker); i++)
        usleep(1000);
    REQUIRE(cmdline_starts(pid, marker), "the command did not start");
    return pid;
}

/* A stop while Exec waits for a command that writes nothing: at teardown
 * (3 lines of input, all written) or in process, for room in the
 * command's stdin (200000 lines, more than a pipe holds).  The stop must
 * reach the stage there, and the command and its guard be killed and
 * reaped by the time join returns: nothing comes back to the harness, a
 * subreaper, neither running nor as a zombie. */
static void exec_stop_kills_command(void)
{
    const char *pidfile = tmp_path("command.pid");
    int64_t inputs[] = {3, 200000};
    for (size_t k = 0; k < 2; k++) {
        /* A command line no other process has, even another run of this case. */
        char marker[64], command[800];
        snprintf(marker, sizeof marker, "sleep 999.%07d", (int)getpid());
        snprintf(command, sizeof command, "echo $$ > %s.tmp && mv %s.tmp %s && exec %s",
                 pidfile, pidfile, pidfile, marker);
        mpx_graph_t *g = MPX_EZ(lines_node(inputs[k], short_line, false),
                                mpx_exec(command, MPX_EXEC_LINES), mpx_stage(&Drop, NULL));
        long pid = start_sleeper(g, pidfile, marker);
        CHECK_EQ(processes_with(marker), 1);
        CHECK_EQ(mpx_graph_stop(g), 0);
        CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
        CHECK(kill((pid_t)pid, 0) != 0 && errno == ESRCH, "command %ld still exists", pid);
        CHECK_EQ(processes_with(marker), 0);
        expect_exec_exited(g);
        expect_exec_clean(g);
        mpx_node_destroy(&g);
    }
}

/* Every process of a pipeline ends with a stopped stage, not only sh: one
 * that reads and writes nothing (sleep) would otherwise live on. */
static void exec_stop_kills_pipeline(void)
{
    char marker[64], command[200];
    snprintf(marker, sizeof marker, "sleep 998.%07d", (int)getpid());
    snprintf(command, sizeof command, "%s | cat", marker);
    mpx_graph_t *g = MPX_EZ(lines_node(3, short_line, false), mpx_exec(command, MPX_EXEC_LINES),
                            mpx_stage(&Drop, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    /* Until sleep itself runs: its own command line starts with the
     * marker.  sh's holds the marker too, from before it has forked
     * sleep; a stop then would leave no sleep behind to find, and the
     * case would pass with only sh killed.  (10 s: a guard against a
     * hang, not a measure of time.) */
    for (int i = 0; i < 10000 && processes_matching(marker, true) == 0; i++)
        usleep(1000);
    REQUIRE(processes_matching(marker, true) == 1, "sleep did not start: %d process(es) hold '%s'",
            processes_with(marker), marker);
    CHECK_EQ(mpx_graph_stop(g), 0);
    CHECK_EQ(processes_with(marker), 0);
    expect_exec_exited(g);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* Fails on its 50th item. */
static int fail_at_50(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    int *seen = mpx_state(st);
    return ++*seen == 50 ? mpx_fail(st, "item 50 is bad") : 0;
}
static const mpx_stage_def_t FailAt50 = {
    .name = "failat50", .state_size = sizeof(int), .process = fail_at_50};

/* Another stage fails while the command writes without end and blocks on
 * a full stdout (Exec waits inside a put for room that never comes): the
 * run fails with that stage's message, and by the time join returns the
 * command — every process of a pipeline — and the guard between it and
 * the stage have been killed and reaped, none left to the harness. */
static void exec_failure_elsewhere_reaps_command(void)
{
    const char *commands[] = {"exec cat /dev/zero", "cat /dev/zero | cat"};
    for (size_t i = 0; i < 2; i++) {
        mpx_graph_t *g =
            MPX_EZ(mpx_exec(commands[i], MPX_EXEC_CHUNKS), mpx_stage(&FailAt50, NULL));
        CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
        CHECK(strstr(mpx_graph_error(g), "item 50 is bad"), "%s: %s", commands[i],
              mpx_graph_error(g));
        expect_exec_exited(g);
        expect_exec_clean(g);
        mpx_node_destroy(&g);
    }
}

/* Exec fails itself (its command's output is larger than an item may be):
 * it kills the command through the guard, which reaps the whole pipeline
 * before it exits, so that nothing is left a zombie for the harness. */
static void exec_own_failure_reaps_command(void)
{
    mpx_node_t *ex = mpx_exec("cat /dev/zero | cat", MPX_EXEC_CHUNKS);
    CHECK_EQ(mpx_node_set_max_item(ex, 1024), 0);
    mpx_graph_t *g = MPX_EZ(ex, mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    CHECK(strstr(mpx_graph_error(g), "exec: putting the output of 'cat /dev/zero | cat'"), "%s",
          mpx_graph_error(g));
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* The stage process killed outright (SIGKILL) runs nothing more: the
 * kernel tells the guard (PR_SET_PDEATHSIG), which kills the command,
 * reaps it, and exits.  The guard itself is then adopted by the nearest
 * subreaper — here the harness, which reaps it — and is all that comes
 * back: the command never does. */
static void exec_stage_killed(void)
{
    const char *pidfile = tmp_path("command.pid");
    char marker[64], command[800];
    snprintf(marker, sizeof marker, "sleep 997.%07d", (int)getpid());
    snprintf(command, sizeof command, "echo $$ > %s.tmp && mv %s.tmp %s && exec %s", pidfile,
             pidfile, pidfile, marker);
    mpx_graph_t *g = MPX_EZ(lines_node(3, short_line, false), mpx_exec(command, MPX_EXEC_LINES),
                            mpx_stage(&Drop, NULL));
    long pid = start_sleeper(g, pidfile, marker);
    long guard = parent_of(pid);
    mpx_instance_info_t ex = exec_instance(g);
    REQUIRE(guard > 0 && parent_of(guard) == (long)ex.pid, "command %ld, guard %ld, stage %d",
            pid, guard, (int)ex.pid);
    CHECK_EQ(kill(ex.pid, SIGKILL), 0);
    CHECK(mpx_graph_join(g) < 0, "the run survived its stage");
    int status = 0;
    REQUIRE(wait_child((pid_t)guard, &status, 10), "the guard %ld did not end", guard);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL, "guard wait status %#x",
          (unsigned)status);
    CHECK(kill((pid_t)pid, 0) != 0 && errno == ESRCH, "command %ld not reaped", pid);
    CHECK_EQ(processes_with(marker), 0);
    expect_exec_clean(g);
    mpx_node_destroy(&g);
}

/* What the command writes while no input comes is put at once: the source
 * puts one line, then waits until the last stage has received cat's echo
 * of it.  If the echo waited for the next input, neither would move. */
static mpx_event_t *echoed;

static int ping_setup(mpx_stage_t *st)
{
    for (int64_t i = 0; i < 20; i++) {
        char line[32];
        snprintf(line, sizeof line, "ping %lld", (long long)i);
        int rc = mpx_put_str(st, line);
        if (rc == 0)
            rc = mpx_flush(st);
        if (rc != 0)
            return rc;
        if (mpx_event_wait(echoed, 20000) != 1)
            return mpx_fail(st, "no echo of line %lld", (long long)i);
        mpx_event_clear(echoed);
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Ping = {.name = "ping", .setup = ping_setup};

static int echo_seen(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_item(st, it);
    if (rc == 0)
        rc = mpx_event_set(echoed);
    return rc;
}
static const mpx_stage_def_t EchoSeen = {.name = "echoseen", .process = echo_seen};

static void exec_output_flows_between_inputs(void)
{
    echoed = mpx_event_new();
    REQUIRE(echoed, "event");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Ping, NULL), mpx_exec("cat", MPX_EXEC_LINES),
                            mpx_stage(&EchoSeen, NULL));
    int64_t n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        n += strncmp(mpx_item_str(it), "ping ", 5) == 0;
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 20);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&echoed);
}

static void exec_bad_args(void)
{
    expect_refused(mpx_exec(NULL, MPX_EXEC_LINES), "mpx_exec: the command is NULL");
    expect_refused(mpx_exec("", MPX_EXEC_LINES), "mpx_exec: the command is empty");
    char *longest = malloc(MPX_COMMAND_MAX + 1);
    REQUIRE(longest, "out of memory");
    memset(longest, ' ', MPX_COMMAND_MAX);
    longest[0] = ':';
    longest[MPX_COMMAND_MAX - 1] = 0;
    expect_accepted(mpx_exec(longest, MPX_EXEC_LINES));
    longest[MPX_COMMAND_MAX - 1] = ' ';
    longest[MPX_COMMAND_MAX] = 0;
    expect_refused(mpx_exec(longest, MPX_EXEC_LINES),
                   "mpx_exec: the command is 4096 bytes long, more than 4095");
    free(longest);
    expect_refused(mpx_exec("cat", (mpx_exec_mode_t)7),
                   "mpx_exec: mode 7 for 'cat' is neither MPX_EXEC_LINES nor MPX_EXEC_CHUNKS");
    CHECK(no_children_left(0), "check forks nothing");
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(read_lines_exact),
        TEST_CASE(read_many_lines),
        TEST_CASE(read_chunks_binary),
        TEST_CASE(read_missing_file),
        TEST_CASE(read_bad_args),
        TEST_CASE(write_truncate_append),
        TEST_CASE(write_parallel_whole_lines),
        TEST_CASE(copy_with_chunks),
        TEST_CASE(write_unwritable),
        TEST_CASE(write_bad_args),
        TEST_CASE(exec_tr_lines),
        TEST_CASE(exec_parallel_multiset),
        TEST_CASE(exec_sort_at_teardown),
        TEST_CASE(exec_chunks_roundtrip),
        TEST_CASE(exec_more_out_than_in),
        TEST_CASE(exec_long_lines),
        TEST_CASE(exec_as_source),
        TEST_CASE(exec_failures),
        TEST_CASE(exec_head_one),
        TEST_CASE(exec_downstream_stops),
        TEST_CASE(exec_signals_reset),
        TEST_CASE(exec_stop_kills_command),
        TEST_CASE(exec_stop_kills_pipeline),
        TEST_CASE(exec_failure_elsewhere_reaps_command),
        TEST_CASE(exec_own_failure_reaps_command),
        TEST_CASE(exec_stage_killed),
        TEST_CASE(exec_output_flows_between_inputs),
        TEST_CASE(exec_bad_args),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
