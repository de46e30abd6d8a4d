/* tests/test_shared.c — mpx_shared (memory every stage process and the
 * parent see at the same address: a zeroed array, a file mapped read-only
 * or writable) and mpx_chunks (the ranges of [0, total) a parallel group
 * works on in place): what stages write is seen by the others and by the
 * parent after join, a mapped file reads and writes through, chunks cover
 * [0, total) exactly once in order whatever the sizes, a sum of squares
 * over a shared array equals the single-process one, and bad arguments
 * are refused with a message. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers ------------------------------------------------------------ */

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", harness_tmpdir(), name);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0, "create %s: %s", path, strerror(errno));
    REQUIRE(write(fd, data, size) == (ssize_t)size, "write %s: %s", path, strerror(errno));
    REQUIRE(close(fd) == 0, "close %s: %s", path, strerror(errno));
}

/* All of the file at path, malloc'd; *size gets its length. */
static unsigned char *read_bytes(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0, "open %s: %s", path, strerror(errno));
    struct stat sb;
    REQUIRE(fstat(fd, &sb) == 0, "fstat %s: %s", path, strerror(errno));
    unsigned char *buf = malloc((size_t)sb.st_size + 1);
    REQUIRE(buf, "out of memory");
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        REQUIRE(n > 0, "read %s: %s", path, n < 0 ? strerror(errno) : "short");
        got += (size_t)n;
    }
    close(fd);
    *size = got;
    return buf;
}

/* Open descriptors of this process. */
static int open_fds(void) { return dir_entries("/proc/self/fd"); }

/* Run g to the end; it must succeed.  Destroys g.  `input` (or NULL), a
 * file of the case's directory that g uses, is read (into *contents, when
 * not NULL) and removed before the check that the directory is empty. */
static void join_ok_reading(mpx_graph_t *g, const char *input, unsigned char **contents,
                            size_t *size)
{
    REQUIRE(g != NULL, "builder returned NULL");
    int rc = mpx_graph_join(g);
    CHECK(rc == 0, "join returned %s: %s", mpx_strerror(rc), mpx_graph_error(g));
    if (contents)
        *contents = read_bytes(input, size);
    if (input)
        CHECK(unlink(input) == 0, "unlink %s: %s", input, strerror(errno));
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void join_ok(mpx_graph_t *g) { join_ok_reading(g, NULL, NULL, NULL); }

static mpx_list_t *collect_ok(mpx_graph_t *g)
{
    REQUIRE(g != NULL, "builder returned NULL");
    mpx_list_t *list = NULL;
    int rc = mpx_graph_collect(g, &list);
    CHECK(rc == 0, "collect returned %s: %s", mpx_strerror(rc), mpx_graph_error(g));
    REQUIRE(list != NULL, "no output list");
    expect_clean(g);
    mpx_node_destroy(&g);
    return list;
}

/* The chunk an item describes: two 8-byte parts, or a failed stage. */
static int chunk_of(mpx_stage_t *st, const mpx_item_t *it, int64_t *first, int64_t *count)
{
    if (mpx_item_parts(it) != 2 || mpx_item_get_i64(it, 0, first) != 0 ||
        mpx_item_get_i64(it, 1, count) != 0)
        return mpx_fail(st, "not a chunk: %zu parts", mpx_item_parts(it));
    return 0;
}

/* A deterministic byte / double for position i, far from regular. */
static unsigned char byte_at(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }
static double value_at(size_t i)
{
    return (double)((i * 2654435761u) % 1000003u) / 1000003.0 - 0.5 + (double)(i % 7);
}

/* ---- mpx_shared_new ------------------------------------------------------- */

static void shared_new_basics(void)
{
    int fds = open_fds();
    long page = sysconf(_SC_PAGESIZE);
    size_t sizes[] = {1, 4096, 3 * 4096 + 5, 10u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        mpx_shared_t *s = mpx_shared_new(sizes[k]);
        REQUIRE(s != NULL, "mpx_shared_new(%zu): %s", sizes[k], strerror(errno));
        CHECK_EQ(mpx_shared_size(s), sizes[k]);
        unsigned char *p = mpx_shared_data(s);
        REQUIRE(p != NULL, "no data for %zu bytes", sizes[k]);
        CHECK((uintptr_t)p % (uintptr_t)page == 0, "data %p is not page-aligned", (void *)p);
        size_t nonzero = 0;
        for (size_t i = 0; i < sizes[k]; i++)
            nonzero += p[i] != 0;
        CHECK(nonzero == 0, "%zu of %zu bytes are not zero", nonzero, sizes[k]);
        memset(p, 0xab, sizes[k]); /* every byte writable */
        mpx_shared_destroy(&s);
        CHECK(s == NULL, "destroy did not clear the pointer");
    }
    /* Nothing kept open: the memory is a mapping only. */
    CHECK_EQ(open_fds(), fds);

    /* Size 0: a valid, empty object. */
    mpx_shared_t *z = mpx_shared_new(0);
    REQUIRE(z != NULL, "mpx_shared_new(0): %s", strerror(errno));
    CHECK_EQ(mpx_shared_size(z), 0);
    CHECK(mpx_shared_data(z) == NULL, "size 0 has data");
    mpx_shared_destroy(&z);

    /* Too large for the address space (or the commit limit). */
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, (size_t)1 << 60};
    for (size_t k = 0; k < 3; k++) {
        errno = 0;
        mpx_shared_t *s = mpx_shared_new(huge[k]);
        CHECK(s == NULL && errno == ENOMEM, "mpx_shared_new(%zu): %p, errno %s", huge[k],
              (void *)s, strerror(errno));
        mpx_shared_destroy(&s);
    }

    /* NULL everywhere is harmless. */
    mpx_shared_destroy(NULL);
    mpx_shared_t *none = NULL;
    mpx_shared_destroy(&none);
    CHECK(mpx_shared_data(NULL) == NULL && mpx_shared_size(NULL) == 0, "NULL has data or size");
}

/* A source writes the first half and puts one item; a stage in another
 * process checks that half, writes the second; each records where it sees
 * the memory.  The parent then sees all of it. */
typedef struct halves_args {
    mpx_shared_t *mem;
    mpx_shared_t *where; /* [0]: the writer's address, [1]: the reader's */
} halves_args_t;

static unsigned char half_pattern(size_t i, int which) { return (unsigned char)(i * 7 + 1 + which * 100); }

static int first_half_setup(mpx_stage_t *st)
{
    const halves_args_t *a = mpx_args(st);
    unsigned char *p = mpx_shared_data(a->mem);
    size_t n = mpx_shared_size(a->mem), half = n / 2;
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return mpx_fail(st, "byte %zu is %d before anyone wrote", i, p[i]);
    for (size_t i = 0; i < half; i++)
        p[i] = half_pattern(i, 0);
    ((uintptr_t *)mpx_shared_data(a->where))[0] = (uintptr_t)p;
    return mpx_put_str(st, "first half written");
}
static const mpx_stage_def_t FirstHalf = {
    .name = "first_half", .args_size = sizeof(halves_args_t), .setup = first_half_setup};

static int second_half_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    const halves_args_t *a = mpx_args(st);
    unsigned char *p = mpx_shared_data(a->mem);
    size_t n = mpx_shared_size(a->mem), half = n / 2;
    for (size_t i = 0; i < half; i++)
        if (p[i] != half_pattern(i, 0))
            return mpx_fail(st, "byte %zu is %d, the writer wrote %d", i, p[i], half_pattern(i, 0));
    for (size_t i = half; i < n; i++)
        p[i] = half_pattern(i, 1);
    ((uintptr_t *)mpx_shared_data(a->where))[1] = (uintptr_t)p;
    return 0;
}
static const mpx_stage_def_t SecondHalf = {
    .name = "second_half", .args_size = sizeof(halves_args_t), .process = second_half_process};

static void shared_seen_everywhere(void)
{
    enum { N = 5 * 4096 + 77 };
    halves_args_t a = {mpx_shared_new(N), mpx_shared_new(2 * sizeof(uintptr_t))};
    REQUIRE(a.mem && a.where, "mpx_shared_new: %s", strerror(errno));
    join_ok(MPX_EZ(mpx_stage(&FirstHalf, &a), mpx_stage(&SecondHalf, &a)));
    const unsigned char *p = mpx_shared_data(a.mem);
    size_t wrong = 0;
    for (size_t i = 0; i < N; i++)
        wrong += p[i] != half_pattern(i, i >= N / 2);
    CHECK(wrong == 0, "%zu of %d bytes are not what the stages wrote", wrong, N);
    const uintptr_t *where = mpx_shared_data(a.where);
    CHECK(where[0] == (uintptr_t)p && where[1] == (uintptr_t)p,
          "the stages saw the memory at %#" PRIxPTR " and %#" PRIxPTR ", the parent at %p",
          where[0], where[1], (const void *)p);
    mpx_shared_destroy(&a.mem);
    mpx_shared_destroy(&a.where);
}

/* ---- mpx_chunks ------------------------------------------------------------ */

/* Each chunk's elements counted in a shared array of bytes (atomically:
 * two workers given the same element would both count), and the chunks
 * counted. */
typedef struct mark_args {
    mpx_shared_t *seen;   /* a byte per element */
    mpx_shared_t *chunks; /* [0]: chunks taken, all workers together */
} mark_args_t;

static int mark_process(mpx_stage_t *st, mpx_item_t *it)
{
    const mark_args_t *a = mpx_args(st);
    int64_t first, count;
    int rc = chunk_of(st, it, &first, &count);
    if (rc != 0)
        return rc;
    size_t total = mpx_shared_size(a->seen);
    if (first < 0 || count <= 0 || (uint64_t)first + (uint64_t)count > total)
        return mpx_fail(st, "chunk (%" PRId64 ", %" PRId64 ") is not inside [0, %zu)", first,
                        count, total);
    unsigned char *seen = mpx_shared_data(a->seen);
    for (int64_t i = first; i < first + count; i++)
        __atomic_fetch_add(&seen[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add((int64_t *)mpx_shared_data(a->chunks), 1, __ATOMIC_RELAXED);
    return 0;
}
static const mpx_stage_def_t Mark = {
    .name = "mark", .args_size = sizeof(mark_args_t), .process = mark_process};

/* The source alone: chunks of `chunk` (its size when 0) in order, the
 * last one short, nothing for total 0. */
static void check_order(size_t total, size_t chunk)
{
    size_t size = mpx_chunks_size(total, chunk);
    size_t want = total / size + (total % size != 0);
    mpx_list_t *list = collect_ok(MPX_EZ(mpx_chunks(total, chunk)));
    CHECK(mpx_list_size(list) == want, "chunks(%zu, %zu): %zu items, want %zu", total, chunk,
          mpx_list_size(list), want);
    int64_t next = 0;
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        const mpx_item_t *it = mpx_list_at(list, i);
        int64_t first = -1, count = -1;
        CHECK(mpx_item_parts(it) == 2 && mpx_item_get_i64(it, 0, &first) == 0 &&
                  mpx_item_get_i64(it, 1, &count) == 0,
              "chunks(%zu, %zu): item %zu is not two int64 parts", total, chunk, i);
        int64_t len = (int64_t)(total - (size_t)next < size ? total - (size_t)next : size);
        CHECK(first == next && count == len,
              "chunks(%zu, %zu): item %zu is (%" PRId64 ", %" PRId64 "), want (%" PRId64
              ", %" PRId64 ")",
              total, chunk, i, first, count, next, len);
        next += len;
    }
    mpx_list_destroy(&list);
}

/* Through 4 parallel workers: every element exactly once. */
static void check_cover(size_t total, size_t chunk)
{
    mark_args_t a = {mpx_shared_new(total), mpx_shared_new(sizeof(int64_t))};
    REQUIRE(a.seen && a.chunks, "mpx_shared_new: %s", strerror(errno));
    join_ok(MPX_EZ(mpx_chunks(total, chunk), mpx_as(4, &Mark, &a)));
    const unsigned char *seen = mpx_shared_data(a.seen);
    size_t missed = 0, twice = 0, at = total;
    for (size_t i = 0; i < total; i++) {
        missed += seen[i] == 0;
        twice += seen[i] > 1;
        if (seen[i] != 1 && at == total)
            at = i;
    }
    CHECK(missed == 0 && twice == 0,
          "chunks(%zu, %zu) through 4 workers: %zu elements missed, %zu more than once "
          "(first at %zu)",
          total, chunk, missed, twice, at);
    size_t size = mpx_chunks_size(total, chunk);
    CHECK_EQ(*(int64_t *)mpx_shared_data(a.chunks), total / size + (total % size != 0));
    mpx_shared_destroy(&a.seen);
    mpx_shared_destroy(&a.chunks);
}

static void chunks_cover_once(void)
{
    static const struct {
        size_t total, chunk;
    } cases[] = {
        {0, 1},       {0, 0},      /* nothing */
        {1, 1},       {100, 1},    /* a chunk per element */
        {7, 3},       {100000, 4095}, {1000003, 65536}, /* a short last chunk */
        {12, 3},      {100000, 4096}, {(size_t)1 << 21, 1 << 17}, /* none short */
        {5, 100},     /* chunk > total: one chunk */
        {12345, 0},   {1000003, 0}, /* automatic: one chunk; chunks of the minimum */
        {3000000, 0}, /* automatic: several per worker */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        check_order(cases[k].total, cases[k].chunk);
        check_cover(cases[k].total, cases[k].chunk);
    }
}

/* The automatic size follows the rule the header states. */
static void chunks_auto_size(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    size_t cpus = online > 0 ? (size_t)online : 1, pieces = MPX_CHUNKS_PER_CPU * cpus;
    size_t totals[] = {0, 1, 65535, 65536, 65537, 1000003, 123456789, (size_t)1 << 33,
                       (size_t)INT64_MAX};
    for (size_t k = 0; k < sizeof totals / sizeof *totals; k++) {
        size_t t = totals[k], got = mpx_chunks_size(t, 0);
        size_t want = t / pieces + (t % pieces != 0);
        want = want < MPX_CHUNKS_MIN ? MPX_CHUNKS_MIN : want;
        want = (want + MPX_CHUNKS_ALIGN - 1) / MPX_CHUNKS_ALIGN * MPX_CHUNKS_ALIGN;
        CHECK(got == want, "mpx_chunks_size(%zu, 0) = %zu, want %zu", t, got, want);
        CHECK(got % MPX_CHUNKS_ALIGN == 0 && got >= MPX_CHUNKS_MIN, "size %zu for total %zu", got,
              t);
        /* At most MPX_CHUNKS_PER_CPU chunks per CPU, and no fewer than
         * that unless the minimum size or the rounding holds it back. */
        size_t n = t / got + (t % got != 0);
        CHECK(n <= pieces, "total %zu: %zu chunks for %zu CPUs", t, n, cpus);
        if (t / pieces > 2 * MPX_CHUNKS_ALIGN)
            CHECK(n >= pieces / 2, "total %zu: only %zu chunks for %zu CPUs", t, n, cpus);
    }
    CHECK_EQ(mpx_chunks_size(10, 3), 3);
    CHECK_EQ(mpx_chunks_size(0, 7), 7);
}

/* ---- a sum of squares over a shared array ----------------------------------
 * Each worker sums its chunk's squares and writes the sum into the slot of
 * an output array that the chunk's number (mpx.index) names; the parent
 * adds the slots in order.  A single process doing the same additions in
 * the same order gets the same bits.  The second form puts the per-chunk
 * sums as items instead, and the parent puts them in order by the index
 * they carry. */

typedef struct sq_args {
    mpx_shared_t *in;  /* doubles */
    mpx_shared_t *out; /* a double per chunk, or NULL: put it */
} sq_args_t;

static double chunk_sum(const double *x, int64_t first, int64_t count)
{
    double s = 0;
    for (int64_t i = first; i < first + count; i++)
        s += x[i] * x[i];
    return s;
}

static int sq_process(mpx_stage_t *st, mpx_item_t *it)
{
    const sq_args_t *a = mpx_args(st);
    int64_t first, count, k;
    int rc = chunk_of(st, it, &first, &count);
    if (rc != 0)
        return rc;
    if ((rc = mpx_item_meta_i64(it, "mpx.index", &k)) != 0)
        return mpx_fail(st, "chunk at %" PRId64 " has no mpx.index", first);
    double s = chunk_sum(mpx_shared_data(a->in), first, count);
    if (!a->out)
        return mpx_put_f64(st, s);
    if (k < 0 || (size_t)k >= mpx_shared_size(a->out) / sizeof(double))
        return mpx_fail(st, "chunk number %" PRId64 " has no slot", k);
    ((double *)mpx_shared_data(a->out))[k] = s;
    return 0;
}
static const mpx_stage_def_t SumSq = {
    .name = "sum_sq", .args_size = sizeof(sq_args_t), .process = sq_process};

static mpx_node_t *numbered_chunks(size_t total, size_t chunk)
{
    mpx_node_t *n = mpx_chunks(total, chunk);
    REQUIRE(n != NULL, "mpx_chunks returned NULL");
    int rc = mpx_node_set_index(n, true);
    CHECK(rc == 0, "mpx_node_set_index(mpx_chunks): %s", mpx_strerror(rc));
    return n;
}

/* The input array from mpx_shared_new_readonly instead of mpx_shared_new. */
static bool readonly_input;

static void sum_of_squares_case(size_t n, size_t chunk)
{
    size_t size = mpx_chunks_size(n, chunk), nchunks = n / size + (n % size != 0);
    sq_args_t a = {readonly_input ? mpx_shared_new_readonly(n * sizeof(double))
                                  : mpx_shared_new(n * sizeof(double)),
                   mpx_shared_new((nchunks ? nchunks : 1) * sizeof(double))};
    REQUIRE(a.in && a.out, "mpx_shared_new: %s", strerror(errno));
    double *x = mpx_shared_data(a.in);
    for (size_t i = 0; i < n; i++)
        x[i] = value_at(i);

    /* The single-process computation, in chunk order. */
    double want = 0, plain = 0;
    for (size_t k = 0; k < nchunks; k++)
        want += chunk_sum(x, (int64_t)(k * size),
                          (int64_t)(n - k * size < size ? n - k * size : size));
    for (size_t i = 0; i < n; i++)
        plain += x[i] * x[i];

    /* Results written into the output array. */
    join_ok(MPX_EZ(numbered_chunks(n, chunk), mpx_as(4, &SumSq, &a)));
    const double *out = mpx_shared_data(a.out);
    double got = 0;
    for (size_t k = 0; k < nchunks; k++)
        got += out[k];
    CHECK(got == want, "n %zu, chunk %zu: sum of squares %.17g, single process %.17g", n, chunk,
          got, want);
    /* The same sum in another order of additions is close, not equal. */
    CHECK(plain == 0 ? got == 0 : (got - plain) / plain < 1e-12 && (plain - got) / plain < 1e-12,
          "n %zu: %.17g is far from the plain loop's %.17g", n, got, plain);

    /* Results put as items and reduced in the parent. */
    sq_args_t put = {a.in, NULL};
    mpx_list_t *list = collect_ok(MPX_EZ(numbered_chunks(n, chunk), mpx_as(4, &SumSq, &put)));
    CHECK(mpx_list_size(list) == nchunks, "%zu results for %zu chunks", mpx_list_size(list),
          nchunks);
    double *sums = calloc(nchunks ? nchunks : 1, sizeof *sums);
    char *have = calloc(nchunks ? nchunks : 1, 1);
    REQUIRE(sums && have, "out of memory");
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        const mpx_item_t *it = mpx_list_at(list, i);
        int64_t k = -1;
        double s = 0;
        CHECK(mpx_item_meta_i64(it, "mpx.index", &k) == 0 && k >= 0 && (size_t)k < nchunks &&
                  mpx_item_get_f64(it, 0, &s) == 0,
              "result %zu: chunk %" PRId64 " of %zu", i, k, nchunks);
        if (k >= 0 && (size_t)k < nchunks) {
            CHECK(!have[k], "chunk %" PRId64 " summed twice", k);
            have[k] = 1;
            sums[k] = s;
        }
    }
    got = 0;
    for (size_t k = 0; k < nchunks; k++)
        got += sums[k];
    CHECK(got == want, "n %zu, chunk %zu: reduced in the parent %.17g, single process %.17g", n,
          chunk, got, want);
    free(sums);
    free(have);
    mpx_list_destroy(&list);
    mpx_shared_destroy(&a.in);
    mpx_shared_destroy(&a.out);
}

static void chunks_sum_of_squares(void)
{
    sum_of_squares_case(2000003, 0); /* automatic: 16 per CPU */
    sum_of_squares_case(1000003, 10007);
    sum_of_squares_case(5, 2);
    sum_of_squares_case(0, 0);
}

/* The run ends as a crash of `stage` by signal `sig`, and says both. */
static void expect_crash(mpx_graph_t *g, const char *stage, int sig)
{
    CHECK_EQ(mpx_graph_join(g), MPX_ECRASH);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, stage) != NULL, "error '%s' does not name the stage %s", msg, stage);
#if !defined(__SANITIZE_ADDRESS__) /* ASan reports it and exits 1 instead */
    CHECK(strstr(msg, strsignal(sig)) != NULL, "error '%s' does not name %s", msg, strsignal(sig));
#else
    (void)sig;
#endif
}

/* The same over input the stages only read (mpx_shared_new_readonly):
 * every worker sees what the parent wrote before the start. */
static void chunks_readonly_input(void)
{
    readonly_input = true;
    sum_of_squares_case(3000017, 0);
    sum_of_squares_case(1000003, 10007);
    sum_of_squares_case(0, 0);
    readonly_input = false;
}

/* What the parent writes after the start is its own; a stage that writes
 * into the array crashes, and the run names the stage. */
typedef struct ro_args {
    mpx_shared_t *in;
    bool write;
} ro_args_t;

static int ro_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    const ro_args_t *a = mpx_args(st);
    volatile unsigned char *p = mpx_shared_data(a->in);
    if (a->write)
        p[100] = 7;
    return mpx_put_i64(st, p[100]);
}
static const mpx_stage_def_t RoStage = {
    .name = "ro_stage", .args_size = sizeof(ro_args_t), .process = ro_process};

static int gate_first(mpx_stage_t *st, mpx_item_t *it)
{
    /* Holds the first item until the parent has written after start. */
    mpx_event_t *const *ev = mpx_args(st);
    int64_t v;
    if (mpx_item_get_i64(it, 0, &v) == 0 && v == 0 && mpx_event_wait(*ev, 30000) != 1)
        return mpx_fail(st, "the parent did not write");
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t GateFirst = {
    .name = "gate_first", .args_size = sizeof(mpx_event_t *), .process = gate_first};

static void readonly_input_is_a_snapshot(void)
{
    mpx_shared_t *in = mpx_shared_new_readonly(1 << 20);
    REQUIRE(in && mpx_shared_size(in) == 1 << 20, "mpx_shared_new_readonly: %s", strerror(errno));
    unsigned char *p = mpx_shared_data(in);
    CHECK(p[100] == 0 && p[(1 << 20) - 1] == 0, "not zeroed");
    p[100] = 42;

    /* Written after the start: the stages still see 42. */
    mpx_event_t *ev = mpx_event_new();
    REQUIRE(ev, "mpx_event_new");
    mpx_graph_t *g = MPX_EZ(mpx_range(0, 20, 1), mpx_stage(&GateFirst, &ev),
                            mpx_as(2, &RoStage, &(ro_args_t){in, false}));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    p[100] = 99;
    CHECK_EQ(mpx_event_set(ev), 0);
    int64_t got = 0, wrong = 0;
    for (mpx_item_t *it; (it = mpx_graph_next(g)) != NULL; got++)
        wrong += mpx_item_i64(it) != 42;
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(got == 20 && wrong == 0, "%" PRId64 " results, %" PRId64 " not 42", got, wrong);
    CHECK(p[100] == 99, "the parent's own write is gone");
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&ev);

    /* A write in a stage is a crash, reported with the stage's name. */
    g = MPX_EZ(mpx_const_i64(1, 1), mpx_stage(&RoStage, &(ro_args_t){in, true}));
    REQUIRE(g != NULL, "builder returned NULL");
    expect_crash(g, "ro_stage", SIGSEGV);
    CHECK(p[100] == 99, "a stage's write reached the parent");
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_shared_destroy(&in);
    CHECK(in == NULL, "destroy did not clear the pointer");

    mpx_shared_t *empty = mpx_shared_new_readonly(0);
    REQUIRE(empty != NULL, "size 0: %s", strerror(errno));
    CHECK(mpx_shared_data(empty) == NULL && mpx_shared_size(empty) == 0, "size 0 is not empty");
    mpx_shared_destroy(&empty);
    errno = 0;
    CHECK(mpx_shared_new_readonly(SIZE_MAX) == NULL && errno == ENOMEM, "SIZE_MAX: errno %d",
          errno);
}

/* A worker dies (SIGKILL) on its first try of chunk 3; with a retry its
 * replacement, forked later from the fork server, sees the same memory and
 * writes the chunk's slot: the result is still the single-process one. */
typedef struct dying_args {
    sq_args_t sq;
    mpx_shared_t *died; /* an int: set by the worker that dies */
} dying_args_t;

static int dying_process(mpx_stage_t *st, mpx_item_t *it)
{
    const dying_args_t *a = mpx_args(st);
    int64_t k = -1;
    if (mpx_item_meta_i64(it, "mpx.index", &k) == 0 && k == 3 &&
        __atomic_exchange_n((int *)mpx_shared_data(a->died), 1, __ATOMIC_SEQ_CST) == 0)
        kill(getpid(), SIGKILL);
    return sq_process(st, it);
}
static const mpx_stage_def_t DyingSumSq = {
    .name = "dying_sum_sq", .args_size = sizeof(dying_args_t), .process = dying_process};

static void chunks_worker_replaced(void)
{
    enum { N = 1000003, CHUNK = 50000, NCHUNKS = N / CHUNK + 1 };
    dying_args_t a = {{mpx_shared_new(N * sizeof(double)), mpx_shared_new(NCHUNKS * sizeof(double))},
                      mpx_shared_new(sizeof(int))};
    REQUIRE(a.sq.in && a.sq.out && a.died, "mpx_shared_new: %s", strerror(errno));
    double *x = mpx_shared_data(a.sq.in), want = 0;
    for (size_t i = 0; i < N; i++)
        x[i] = value_at(i);
    for (size_t k = 0; k < NCHUNKS; k++)
        want += chunk_sum(x, (int64_t)(k * CHUNK), k + 1 < NCHUNKS ? CHUNK : N % CHUNK);

    mpx_node_t *workers = mpx_as(2, &DyingSumSq, &a);
    REQUIRE(workers != NULL, "mpx_as returned NULL");
    CHECK_EQ(mpx_node_set_retries(workers, 1), 0);
    mpx_graph_t *g = MPX_EZ(numbered_chunks(N, CHUNK), workers);
    REQUIRE(g != NULL, "builder returned NULL");
    int rc = mpx_graph_join(g);
    CHECK(rc == 0, "join returned %s: %s", mpx_strerror(rc), mpx_graph_error(g));
    int restarts = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0)
            restarts += info.restarts;
    }
    CHECK(*(int *)mpx_shared_data(a.died) == 1 && restarts == 1,
          "the worker died %d times, %d replacements", *(int *)mpx_shared_data(a.died), restarts);
    expect_clean(g);
    mpx_node_destroy(&g);
    const double *out = mpx_shared_data(a.sq.out);
    double got = 0;
    for (size_t k = 0; k < NCHUNKS; k++)
        got += out[k];
    CHECK(got == want, "sum of squares %.17g, single process %.17g", got, want);
    mpx_shared_destroy(&a.sq.in);
    mpx_shared_destroy(&a.sq.out);
    mpx_shared_destroy(&a.died);
}

static void chunks_bad_args(void)
{
    static const struct {
        size_t total, chunk;
        const char *want;
    } bad[] = {
        {(size_t)-1, 10, "mpx_chunks: total 18446744073709551615 is more than INT64_MAX"},
        {(size_t)INT64_MAX + 1, 0, "mpx_chunks: total 9223372036854775808 is more than INT64_MAX"},
        {10, (size_t)-5, "mpx_chunks: chunk 18446744073709551611 is more than INT64_MAX"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        mpx_node_t *src = mpx_chunks(bad[k].total, bad[k].chunk);
        REQUIRE(src != NULL, "mpx_chunks returned NULL");
        CHECK_EQ(mpx_node_set_index(src, true), MPX_EINVAL);
        mpx_graph_t *g = MPX_EZ(src, mpx_print(NULL));
        REQUIRE(g != NULL, "builder returned NULL");
        CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
        CHECK(strstr(mpx_graph_error(g), bad[k].want) != NULL, "error '%s' lacks '%s'",
              mpx_graph_error(g), bad[k].want);
        CHECK_EQ(mpx_graph_join(g), MPX_EGRAPH);
        CHECK(!mpx_graph_started(g) || mpx_graph_instance_count(g) == 0, "a refused graph ran");
        mpx_node_destroy(&g);
    }
    /* The largest values are accepted. */
    mpx_graph_t *g = MPX_EZ(mpx_chunks((size_t)INT64_MAX, (size_t)INT64_MAX));
    REQUIRE(g != NULL, "builder returned NULL");
    CHECK(mpx_graph_check(g) == 0, "chunks(INT64_MAX, INT64_MAX) refused: %s", mpx_graph_error(g));
    mpx_node_destroy(&g);
}

/* ---- mpx_shared_map --------------------------------------------------------- */

/* Each worker checksums its chunk of a mapped file into the chunk's slot. */
typedef struct sum_args {
    mpx_shared_t *file;
    mpx_shared_t *out; /* uint64 per chunk */
} sum_args_t;

static uint64_t checksum(const unsigned char *p, int64_t first, int64_t count)
{
    uint64_t h = 1469598103934665603u;
    for (int64_t i = first; i < first + count; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

static int sum_process(mpx_stage_t *st, mpx_item_t *it)
{
    const sum_args_t *a = mpx_args(st);
    int64_t first, count, k;
    int rc = chunk_of(st, it, &first, &count);
    if (rc == 0 && (rc = mpx_item_meta_i64(it, "mpx.index", &k)) != 0)
        return mpx_fail(st, "no mpx.index");
    if (rc == 0)
        ((uint64_t *)mpx_shared_data(a->out))[k] = checksum(mpx_shared_data(a->file), first, count);
    return rc;
}
static const mpx_stage_def_t Sum = {
    .name = "sum", .args_size = sizeof(sum_args_t), .process = sum_process};

static void map_read_only(void)
{
    enum { N = 300001, CHUNK = 7919 };
    const char *path = tmp_path("input.bin");
    unsigned char *bytes = malloc(N);
    REQUIRE(bytes, "out of memory");
    for (size_t i = 0; i < N; i++)
        bytes[i] = byte_at(i);
    write_bytes(path, bytes, N);

    int fds = open_fds();
    mpx_shared_t *f = mpx_shared_map(path, false);
    REQUIRE(f != NULL, "mpx_shared_map(%s, false): %s", path, strerror(errno));
    CHECK_EQ(open_fds(), fds); /* the file is not kept open */
    CHECK_EQ(mpx_shared_size(f), N);
    CHECK(mpx_shared_data(f) && memcmp(mpx_shared_data(f), bytes, N) == 0,
          "the mapping differs from the file");
    /* Bytes written into the file afterwards show through the mapping. */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0 && pwrite(fd, "HELLO", 5, 1000) == 5, "pwrite: %s", strerror(errno));
    close(fd);
    memcpy(bytes + 1000, "HELLO", 5);
    CHECK(memcmp((const char *)mpx_shared_data(f) + 1000, "HELLO", 5) == 0,
          "a write into the file does not show through the mapping");

    size_t nchunks = N / CHUNK + 1;
    sum_args_t a = {f, mpx_shared_new(nchunks * sizeof(uint64_t))};
    REQUIRE(a.out, "mpx_shared_new: %s", strerror(errno));
    join_ok_reading(MPX_EZ(numbered_chunks(N, CHUNK), mpx_as(4, &Sum, &a)), path, NULL, NULL);
    const uint64_t *out = mpx_shared_data(a.out);
    for (size_t k = 0; k < nchunks; k++) {
        int64_t first = (int64_t)(k * CHUNK), count = k + 1 < nchunks ? CHUNK : N % CHUNK;
        CHECK(out[k] == checksum(bytes, first, count), "chunk %zu: checksum differs", k);
    }
    mpx_shared_destroy(&a.out);
    mpx_shared_destroy(&f);
    free(bytes);
}

static void write_into(void *arg) { ((volatile unsigned char *)arg)[10] = 'X'; }

/* A write into a read-only mapping is a fault, and the file is unchanged. */
static void map_read_only_refuses_writes(void)
{
    const char *path = tmp_path("ro.txt");
    write_bytes(path, "0123456789abcdef", 16);
    mpx_shared_t *f = mpx_shared_map(path, false);
    REQUIRE(f != NULL, "mpx_shared_map: %s", strerror(errno));
    int status = run_in_child(write_into, mpx_shared_data(f));
#if defined(__SANITIZE_ADDRESS__)
    /* ASan turns the SIGSEGV into a report and exit status 1. */
    CHECK(status != 0, "a write into a read-only mapping went through (status %#x)", status);
#else
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
          "a write into a read-only mapping gave status %#x, not SIGSEGV", status);
#endif
    size_t size;
    unsigned char *now = read_bytes(path, &size);
    CHECK(size == 16 && memcmp(now, "0123456789abcdef", 16) == 0, "the file changed");
    free(now);
    mpx_shared_destroy(&f);
    CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
}

/* Each worker rewrites its chunk of a writable mapping in place. */
static int flip_process(mpx_stage_t *st, mpx_item_t *it)
{
    mpx_shared_t *const *f = mpx_args(st);
    int64_t first, count;
    int rc = chunk_of(st, it, &first, &count);
    if (rc != 0)
        return rc;
    unsigned char *p = mpx_shared_data(*f);
    for (int64_t i = first; i < first + count; i++)
        p[i] = (unsigned char)(p[i] ^ 0x5a);
    return 0;
}
static const mpx_stage_def_t Flip = {
    .name = "flip", .args_size = sizeof(mpx_shared_t *), .process = flip_process};

static void map_writable(void)
{
    enum { N = (1 << 20) + 123, CHUNK = 3 * 4096 + 1 };
    const char *path = tmp_path("rw.bin");
    unsigned char *bytes = malloc(N);
    REQUIRE(bytes, "out of memory");
    for (size_t i = 0; i < N; i++)
        bytes[i] = byte_at(i);
    write_bytes(path, bytes, N);
    mpx_shared_t *f = mpx_shared_map(path, true);
    REQUIRE(f != NULL, "mpx_shared_map(%s, true): %s", path, strerror(errno));
    CHECK_EQ(mpx_shared_size(f), N);
    /* The file is read through read(2) after join, before destroy: the
     * stages' writes are in it already. */
    size_t size = 0;
    unsigned char *now = NULL;
    join_ok_reading(MPX_EZ(mpx_chunks(N, CHUNK), mpx_as(4, &Flip, &f)), path, &now, &size);
    mpx_shared_destroy(&f);
    CHECK_EQ(size, N);
    size_t wrong = 0;
    for (size_t i = 0; i < N && i < size; i++)
        wrong += now[i] != (unsigned char)(bytes[i] ^ 0x5a);
    CHECK(wrong == 0, "%zu of %d bytes of the file are not what the stages wrote", wrong, N);
    free(now);
    free(bytes);
}

/* Empty files, and what cannot be mapped. */
static void map_edge_cases(void)
{
    const char *path = tmp_path("empty");
    for (int w = 0; w < 2; w++) {
        write_bytes(path, "", 0);
        mpx_shared_t *f = mpx_shared_map(path, w);
        REQUIRE(f != NULL, "mpx_shared_map(empty, %d): %s", w, strerror(errno));
        CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
        CHECK_EQ(mpx_shared_size(f), 0);
        CHECK(mpx_shared_data(f) == NULL, "an empty file has data");
        /* An empty array needs no special case downstream. */
        mark_args_t a = {f, mpx_shared_new(sizeof(int64_t))};
        REQUIRE(a.chunks, "mpx_shared_new: %s", strerror(errno));
        join_ok(MPX_EZ(mpx_chunks(mpx_shared_size(f), 0), mpx_as(4, &Mark, &a)));
        CHECK_EQ(*(int64_t *)mpx_shared_data(a.chunks), 0);
        mpx_shared_destroy(&a.chunks);
        mpx_shared_destroy(&f);
    }

    int fds = open_fds();
    static const struct {
        const char *path;
        bool writable;
        int err;
    } bad[] = {
        {NULL, false, EINVAL},
        {"", false, EINVAL},
        {"/nonexistent/mpx-test", false, ENOENT},
        {"/", false, EISDIR},
        {"/dev/null", false, EINVAL}, /* not a regular file */
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        errno = 0;
        mpx_shared_t *f = mpx_shared_map(bad[k].path, bad[k].writable);
        CHECK(f == NULL && errno == bad[k].err, "mpx_shared_map(%s): %p, errno %s, want %s",
              bad[k].path ? bad[k].path : "NULL", (void *)f, strerror(errno),
              strerror(bad[k].err));
        mpx_shared_destroy(&f);
    }
    /* A FIFO is refused at once, not waited on. */
    const char *fifo = tmp_path("fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0, "mkfifo: %s", strerror(errno));
    errno = 0;
    mpx_shared_t *f = mpx_shared_map(fifo, false);
    CHECK(f == NULL && errno == EINVAL, "mpx_shared_map(fifo): %p, errno %s", (void *)f,
          strerror(errno));
    mpx_shared_destroy(&f);
    CHECK(unlink(fifo) == 0, "unlink: %s", strerror(errno));
    /* Writable needs a file this user may write (root may write any). */
    if (geteuid() != 0) {
        const char *ro = tmp_path("readonly");
        write_bytes(ro, "x", 1);
        REQUIRE(chmod(ro, 0444) == 0, "chmod: %s", strerror(errno));
        errno = 0;
        f = mpx_shared_map(ro, true);
        CHECK(f == NULL && errno == EACCES, "writable map of a 0444 file: %p, errno %s",
              (void *)f, strerror(errno));
        mpx_shared_destroy(&f);
        f = mpx_shared_map(ro, false);
        CHECK(f != NULL, "read-only map of a 0444 file: %s", strerror(errno));
        mpx_shared_destroy(&f);
        CHECK(unlink(ro) == 0, "unlink: %s", strerror(errno));
    }
    CHECK_EQ(open_fds(), fds); /* nothing left open by a failure */
}

/* A file cut short under its mapping: a stage touching a page past the
 * new end dies of SIGBUS, and the run says so. */
static int touch_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    mpx_shared_t *const *f = mpx_args(st);
    const volatile unsigned char *p = mpx_shared_data(*f);
    return mpx_put_i64(st, p[mpx_shared_size(*f) - 1]);
}
static const mpx_stage_def_t Touch = {
    .name = "touch", .args_size = sizeof(mpx_shared_t *), .process = touch_process};

static void map_shrunk_file_is_sigbus(void)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t n = 3 * (size_t)page;
    const char *path = tmp_path("shrinks");
    unsigned char *bytes = calloc(1, n);
    REQUIRE(bytes, "out of memory");
    write_bytes(path, bytes, n);
    free(bytes);
    mpx_shared_t *f = mpx_shared_map(path, false);
    REQUIRE(f != NULL, "mpx_shared_map: %s", strerror(errno));
    REQUIRE(truncate(path, page) == 0, "truncate: %s", strerror(errno));
    CHECK_EQ(((const unsigned char *)mpx_shared_data(f))[10], 0); /* still there */

    mpx_graph_t *g = MPX_EZ(mpx_const_i64(1, 1), mpx_stage(&Touch, &f));
    REQUIRE(g != NULL, "builder returned NULL");
    expect_crash(g, "touch", SIGBUS);
    CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_shared_destroy(&f);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(shared_new_basics),
        TEST_CASE(shared_seen_everywhere),
        TEST_CASE(chunks_cover_once),
        TEST_CASE(chunks_auto_size),
        TEST_CASE(chunks_sum_of_squares),
        TEST_CASE(chunks_readonly_input),
        TEST_CASE(readonly_input_is_a_snapshot),
        TEST_CASE(chunks_worker_replaced),
        TEST_CASE(chunks_bad_args),
        TEST_CASE(map_read_only),
        TEST_CASE(map_read_only_refuses_writes),
        TEST_CASE(map_writable),
        TEST_CASE(map_edge_cases),
        TEST_CASE(map_shrunk_file_is_sigbus),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
