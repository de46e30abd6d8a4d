/* examples/wordfreq.c — the flagship example: a parallel word count over
 * text files.  One source lists the files, one worker per CPU counts each
 * file, and one merge stage adds the counts up and prints the top words.
 *
 *     wordfreq [-n TOP] [-j WORKERS] [--dot] [PATH...]
 *
 * PATHs are files or directories (walked recursively, symbolic links to
 * directories not followed); the default is /usr/share/common-licenses and
 * /usr/share/doc.  Compressed, binary, huge and special files are skipped.
 * --dot prints the graph in Graphviz DOT instead of running it.
 *
 *     files ──▶ count ×N ──▶ merge ──▶ stdout
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpx.h>

#define MAX_FILE_SIZE (8u * 1024u * 1024u)
#define BINARY_PROBE 4096

/* ---- a word → count table ---------------------------------------------- *
 * Open addressing with linear probing.  The words themselves live in one
 * pool rather than one allocation each, so that a worker can forget a
 * whole file's table by resetting two lengths.  Slots keep offsets, not
 * pointers, because the pool moves when it grows. */

typedef struct word_slot {
    uint64_t hash;
    uint64_t count; /* 0 marks an empty slot */
    size_t off;     /* of the word in the pool; a NUL follows it */
    size_t len;
} word_slot;

typedef struct word_table {
    word_slot *slots;
    size_t cap; /* a power of two, or 0 before the first word */
    size_t used;
    char *pool;
    size_t pool_len, pool_cap;
} word_table;

static uint64_t hash_word(const char *w, size_t len)
{
    /* FNV-1a: short words, no adversary, and it is four lines. */
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)w[i]) * 1099511628211u;
    return h;
}

static int table_grow(word_table *t)
{
    size_t cap = t->cap ? 2 * t->cap : 1024;
    word_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        const word_slot *s = &t->slots[i];
        if (!s->count)
            continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].count)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

static int pool_add(word_table *t, const char *w, size_t len, size_t *off)
{
    if (t->pool_len + len + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 16384;
        while (t->pool_len + len + 1 > cap)
            cap *= 2;
        char *pool = realloc(t->pool, cap);
        if (!pool)
            return -1;
        t->pool = pool;
        t->pool_cap = cap;
    }
    *off = t->pool_len;
    memcpy(t->pool + t->pool_len, w, len);
    t->pool[t->pool_len + len] = '\0';
    t->pool_len += len + 1;
    return 0;
}

/* Add n to the count of w; 0, or -1 when out of memory. */
static int table_add(word_table *t, const char *w, size_t len, uint64_t n)
{
    /* Keep the load under 3/4 so that probe runs stay short. */
    if (4 * (t->used + 1) > 3 * t->cap && table_grow(t) != 0)
        return -1;
    uint64_t h = hash_word(w, len);
    size_t i = h & (t->cap - 1);
    for (;; i = (i + 1) & (t->cap - 1)) {
        word_slot *s = &t->slots[i];
        if (!s->count)
            break;
        if (s->hash == h && s->len == len && memcmp(t->pool + s->off, w, len) == 0) {
            s->count += n;
            return 0;
        }
    }
    size_t off;
    if (pool_add(t, w, len, &off) != 0)
        return -1;
    t->slots[i] = (word_slot){h, n, off, len};
    t->used++;
    return 0;
}

static void table_clear(word_table *t)
{
    if (t->cap)
        memset(t->slots, 0, t->cap * sizeof *t->slots);
    t->used = 0;
    t->pool_len = 0;
}

static void table_free(word_table *t)
{
    free(t->slots);
    free(t->pool);
    *t = (word_table){0};
}

/* ---- a growable byte buffer --------------------------------------------- */

typedef struct buffer {
    char *data;
    size_t len, cap;
} buffer;

static int buffer_reserve(buffer *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, cap);
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

/* ---- files: the source --------------------------------------------------- */

typedef struct files_args {
    /* argv or a static array: both outlive the run and fork copies them. */
    const char *const *paths;
    int npaths;
} files_args;

static bool compressed_name(const char *path)
{
    static const char *const suffixes[] = {".gz", ".xz", ".bz2", ".zst"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(path + n - k, suffixes[i]) == 0)
            return true;
    }
    return false;
}

static int put_file(mpx_stage_t *st, const char *path)
{
    int rc;
    if ((rc = mpx_meta_set_str(st, "path", path)) != 0)
        return rc;
    return mpx_put_str(st, path);
}

static int walk(mpx_stage_t *st, char *path, size_t len, bool named);

/* Walk the entries of directory path[0..len). */
static int walk_dir(mpx_stage_t *st, char *path, size_t len)
{
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "wordfreq: %s: %s\n", path, strerror(errno));
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
        rc = walk(st, path, len + sep + n, false);
        path[len] = '\0';
    }
    closedir(d);
    return rc;
}

/* Put every countable file at or under path[0..len), a buffer of PATH_MAX
 * bytes.  Links are followed to files but not to directories, so that the
 * walk cannot loop; paths named on the command line are followed, as the
 * user surely meant them. */
static int walk(mpx_stage_t *st, char *path, size_t len, bool named)
{
    struct stat sb;
    if ((named ? stat(path, &sb) : lstat(path, &sb)) != 0) {
        if (named)
            fprintf(stderr, "wordfreq: %s: %s\n", path, strerror(errno));
        return 0;
    }
    if (S_ISDIR(sb.st_mode))
        return walk_dir(st, path, len);
    if (S_ISLNK(sb.st_mode) && stat(path, &sb) != 0)
        return 0; /* dangling */
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > MAX_FILE_SIZE || compressed_name(path))
        return 0;
    return put_file(st, path);
}

static int files_setup(mpx_stage_t *st)
{
    const files_args *a = mpx_args(st);
    char path[PATH_MAX];
    for (int i = 0; i < a->npaths; i++) {
        size_t len = strlen(a->paths[i]);
        if (len >= sizeof path) {
            fprintf(stderr, "wordfreq: %s: path too long\n", a->paths[i]);
            continue;
        }
        memcpy(path, a->paths[i], len + 1);
        int rc = walk(st, path, len, true);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}

static const mpx_stage_def_t Files = {
    .name = "files",
    .args_size = sizeof(files_args),
    .setup = files_setup,
};

/* ---- count: one file in, its counts out ----------------------------------- */

typedef struct count_state {
    buffer text;      /* the file being counted */
    buffer out;       /* its table, serialised */
    word_table words; /* its table */
} count_state;

/* Read all of fd into b; 0, or an errno value.  A file that grew past the
 * limit since it was listed is cut there rather than read unbounded. */
static int read_all(int fd, buffer *b)
{
    b->len = 0;
    for (;;) {
        if (buffer_reserve(b, b->len + 65536) != 0)
            return ENOMEM;
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0 || (b->len += (size_t)n) >= MAX_FILE_SIZE)
            return 0;
    }
}

static bool is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Count text[0..n) into *tokens and t, lowercasing text's letters in place.
 *
 * Tokens are counted as GNU wc -w counts words in the C locale (this
 * program never calls setlocale): a word ends at an isspace() byte and is
 * counted only if it holds at least one printable byte, so a lone UTF-8
 * dash between spaces is no word, as for wc.  Letters and words are
 * plain ASCII. */
static int count_text(char *text, size_t n, uint64_t *tokens, word_table *t)
{
    bool in_token = false;
    size_t word = 0, wlen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (isspace(c))
            in_token = false;
        else if (!in_token && isprint(c)) {
            in_token = true;
            ++*tokens;
        }
        if (is_letter(c)) {
            if (wlen++ == 0)
                word = i;
            text[i] = (char)(c | 0x20);
        } else if (wlen) {
            if (table_add(t, text + word, wlen, 1) != 0)
                return -1;
            wlen = 0;
        }
    }
    return wlen ? table_add(t, text + word, wlen, 1) : 0;
}

/* "word\tcount\n" for every word of t, into b. */
static int serialise(const word_table *t, buffer *b)
{
    b->len = 0;
    for (size_t i = 0; i < t->cap; i++) {
        const word_slot *s = &t->slots[i];
        if (!s->count)
            continue;
        if (buffer_reserve(b, b->len + s->len + 24) != 0)
            return -1;
        memcpy(b->data + b->len, t->pool + s->off, s->len);
        b->len += s->len;
        b->len += (size_t)sprintf(b->data + b->len, "\t%" PRIu64 "\n", s->count);
    }
    return 0;
}

static int count_process(mpx_stage_t *st, mpx_item_t *item)
{
    count_state *s = mpx_state(st);
    const char *path = mpx_item_str(item);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* Like wc: say so and carry on with the other files. */
        fprintf(stderr, "wordfreq: %s: %s\n", path, strerror(errno));
        return 0;
    }
    int err = read_all(fd, &s->text);
    close(fd);
    if (err == ENOMEM)
        return mpx_fail(st, "out of memory reading %s", path);
    if (err) {
        fprintf(stderr, "wordfreq: %s: %s\n", path, strerror(err));
        return 0;
    }
    size_t probe = s->text.len < BINARY_PROBE ? s->text.len : BINARY_PROBE;
    if (memchr(s->text.data, '\0', probe))
        return 0; /* binary: not counted, not reported */

    uint64_t tokens = 0;
    table_clear(&s->words);
    if (count_text(s->text.data, s->text.len, &tokens, &s->words) != 0 ||
        serialise(&s->words, &s->out) != 0)
        return mpx_fail(st, "out of memory counting %s", path);
    int64_t head[2] = {(int64_t)tokens, (int64_t)s->text.len};
    mpx_part_t parts[3] = {
        {&head[0], sizeof head[0]},
        {&head[1], sizeof head[1]},
        {s->out.data, s->out.len},
    };
    return mpx_put_parts(st, parts, 3);
}

static int count_teardown(mpx_stage_t *st)
{
    count_state *s = mpx_state(st);
    buffer_free(&s->text);
    buffer_free(&s->out);
    table_free(&s->words);
    return 0;
}

static const mpx_stage_def_t Count = {
    .name = "count",
    .state_size = sizeof(count_state),
    .process = count_process,
    .teardown = count_teardown,
};

/* ---- merge: all the tables into one, then the report ---------------------- */

typedef struct merge_args {
    long top;
} merge_args;

typedef struct merge_state {
    uint64_t files, bytes, tokens;
    word_table words;
} merge_state;

typedef struct ranked {
    const char *word;
    uint64_t count;
} ranked;

static int merge_process(mpx_stage_t *st, mpx_item_t *item)
{
    merge_state *s = mpx_state(st);
    const char *path = mpx_meta_str(st, "path") ? mpx_meta_str(st, "path") : "a file";
    int64_t tokens, bytes;
    if (mpx_item_parts(item) != 3 || mpx_item_get_i64(item, 0, &tokens) != 0 ||
        mpx_item_get_i64(item, 1, &bytes) != 0)
        return mpx_fail(st, "malformed counts for %s", path);
    const char *p = mpx_item_data(item, 2);
    const char *end = p + mpx_item_size(item, 2);
    while (p < end) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        char *next;
        uint64_t n = tab ? strtoull(tab + 1, &next, 10) : 0;
        if (!tab || n == 0 || *next != '\n')
            return mpx_fail(st, "malformed table for %s", path);
        if (table_add(&s->words, p, (size_t)(tab - p), n) != 0)
            return mpx_fail(st, "out of memory");
        p = next + 1;
    }
    s->files++;
    s->bytes += (uint64_t)bytes;
    s->tokens += (uint64_t)tokens;
    return 0;
}

static int by_count_then_word(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->word, y->word);
}

static int merge_teardown(mpx_stage_t *st)
{
    const merge_args *a = mpx_args(st);
    merge_state *s = mpx_state(st);
    printf("files: %" PRIu64 "  bytes: %" PRIu64 "  words (wc -w): %" PRIu64 "\n", s->files,
           s->bytes, s->tokens);
    ranked *r = malloc((s->words.used ? s->words.used : 1) * sizeof *r);
    if (!r) {
        table_free(&s->words);
        return mpx_fail(st, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < s->words.cap; i++)
        if (s->words.slots[i].count)
            r[n++] = (ranked){s->words.pool + s->words.slots[i].off, s->words.slots[i].count};
    qsort(r, n, sizeof *r, by_count_then_word);
    for (size_t i = 0; i < n && i < (size_t)a->top; i++)
        printf("%8lu  %s\n", (unsigned long)r[i].count, r[i].word);
    free(r);
    table_free(&s->words);
    return fflush(stdout) == 0 ? 0 : mpx_fail(st, "writing the report: %s", strerror(errno));
}

static const mpx_stage_def_t Merge = {
    .name = "merge",
    .args_size = sizeof(merge_args),
    .state_size = sizeof(merge_state),
    .process = merge_process,
    .teardown = merge_teardown,
};

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: wordfreq [-n TOP] [-j WORKERS] [--dot] [PATH...]\n"
               "Count words (as wc -w does) and the most frequent ASCII words in the\n"
               "text files under PATHs (default: /usr/share/common-licenses /usr/share/doc).\n"
               "--dot prints the graph in Graphviz DOT instead of running it.\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const char *const default_paths[] = {"/usr/share/common-licenses", "/usr/share/doc"};
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long top = 20, workers = online > 2 ? online : 2;
    bool dot = false;
    static const struct option long_options[] = {{"dot", no_argument, NULL, 'D'}, {0}};
    for (int opt; (opt = getopt_long(argc, argv, "n:j:h", long_options, NULL)) != -1;) {
        switch (opt) {
        case 'n':
            if (!parse_long(optarg, 0, 1000000, &top)) {
                fprintf(stderr, "wordfreq: -n wants a count from 0 to 1000000\n");
                return EXIT_FAILURE;
            }
            break;
        case 'j':
            if (!parse_long(optarg, 1, 256, &workers)) {
                fprintf(stderr, "wordfreq: -j wants a count from 1 to 256\n");
                return EXIT_FAILURE;
            }
            break;
        case 'D': dot = true; break;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        default: usage(stderr); return EXIT_FAILURE;
        }
    }
    files_args files = {default_paths, 2};
    if (optind < argc)
        files = (files_args){(const char *const *)(argv + optind), argc - optind};

    mpx_graph_t *g = MPX_EZ(mpx_stage(&Files, &files),
                            mpx_as((int)workers, &Count, NULL),
                            mpx_stage(&Merge, &(merge_args){top}));
    if (dot) {
        int rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "wordfreq: cannot draw the graph: %s\n", mpx_strerror(rc));
        mpx_node_destroy(&g);
        return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    /* mpx_run prints mpx_graph_error() when the run fails. */
    int rc = mpx_run(g);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
