/* examples/chunk_stats.c — lines, words and bytes of one large file, as
 * `wc` counts them, and how often each byte value occurs, by a parallel
 * group of workers that read the file in place: the file is mapped once
 * in the parent (mpx_shared_map), every worker process inherits the
 * mapping, and only chunk boundaries (two numbers) cross a socket.
 *
 *     chunk_stats [-j WORKERS] [-c CHUNK] [--hist] [--dot] [FILE]
 *
 * FILE defaults to /usr/share/dict/words.  -c sets the chunk size in bytes
 * (default: mpx_chunks chooses), -j the number of workers (default: one
 * per CPU, at least 2).  --hist adds a line per byte value present: the
 * value in decimal and its count.  --dot prints the graph in Graphviz DOT
 * instead of running it.
 *
 *     chunks ──▶ count ×N ──▶ (the parent adds up)
 *
 * Lines and the histogram add up in any order: each worker keeps running
 * totals and puts them once, in teardown.  Words do not, because a word
 * may straddle two chunks, so each chunk's words are written into the
 * chunk's own slot of a shared array (the chunk's number comes from
 * mpx_node_set_index) and the parent joins the slots in order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpx.h>

/* ---- words, as GNU wc counts them in the C locale --------------------------
 * A word is a run of printable bytes that are not white space; a white
 * space byte ends it; any other byte (control bytes, bytes of 0x80 and
 * up) neither starts nor ends one.  So whether a byte starts a word
 * depends on the last byte before it that was not "other", which may lie
 * in an earlier chunk, far back.  Each chunk is therefore summed up on
 * its own, as if no word were open before it, with what is needed to
 * join it to the previous one: whether its first deciding byte is a word
 * byte (which continues a word open there instead of starting one), and
 * whether a word is open at its end. */

enum { OTHER, SPACE, WORD };

typedef struct word_piece {
    int64_t starts; /* words started in the chunk, if none was open before */
    bool decides;   /* some byte of the chunk is SPACE or WORD */
    bool lead_word; /* ... and the first such is WORD */
    bool open_end;  /* ... and the last such is WORD */
} word_piece;

static unsigned char byte_class[256];

static void init_classes(void)
{
    for (int c = 0; c < 256; c++)
        byte_class[c] = c == ' ' || (c >= '\t' && c <= '\r') ? SPACE
                        : c > ' ' && c < 0x7f                ? WORD
                                                             : OTHER;
}

/* ---- count: a worker ------------------------------------------------------- */

typedef struct count_args {
    mpx_shared_t *file;  /* the file, read-only */
    mpx_shared_t *words; /* a word_piece per chunk */
} count_args;

typedef struct count_state {
    uint64_t hist[256]; /* over every chunk this worker took */
} count_state;

static int count_process(mpx_stage_t *st, mpx_item_t *item)
{
    const count_args *a = mpx_args(st);
    count_state *s = mpx_state(st);
    int64_t first, count, k;
    if (mpx_item_get_i64(item, 0, &first) != 0 || mpx_item_get_i64(item, 1, &count) != 0 ||
        mpx_item_meta_i64(item, "mpx.index", &k) != 0)
        return mpx_fail(st, "not a numbered chunk");
    const unsigned char *p = (const unsigned char *)mpx_shared_data(a->file) + first;
    word_piece w = {0, false, false, false};
    bool open = false;
    for (int64_t i = 0; i < count; i++) {
        unsigned char c = p[i];
        s->hist[c]++;
        switch (byte_class[c]) {
        case WORD:
            w.starts += !open;
            if (!w.decides)
                w.lead_word = true;
            w.decides = open = true;
            break;
        case SPACE:
            w.decides = true;
            open = false;
            break;
        }
    }
    w.open_end = open;
    /* This chunk's slot, which no other worker writes. */
    ((word_piece *)mpx_shared_data(a->words))[k] = w;
    return 0;
}

/* The totals of every chunk this worker took: one small item. */
static int count_teardown(mpx_stage_t *st)
{
    count_state *s = mpx_state(st);
    return mpx_put(st, s->hist, sizeof s->hist);
}

static const mpx_stage_def_t Count = {
    .name = "count",
    .args_size = sizeof(count_args),
    .state_size = sizeof(count_state),
    .process = count_process,
    .teardown = count_teardown,
};

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: chunk_stats [-j WORKERS] [-c CHUNK] [--hist] [--dot] [FILE]\n"
               "Count the lines, words and bytes of FILE as wc does (default\n"
               "/usr/share/dict/words) with parallel workers reading it in place;\n"
               "--hist adds how often each byte value occurs.\n");
}

static bool parse_size(const char *s, unsigned long long lo, unsigned long long hi,
                       unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Words of the whole file: the chunks' pieces joined in order. */
static uint64_t join_words(const word_piece *w, size_t n)
{
    uint64_t words = 0;
    bool open = false; /* a word is open at the end of what was joined */
    for (size_t k = 0; k < n; k++) {
        words += (uint64_t)w[k].starts - (open && w[k].lead_word);
        if (w[k].decides)
            open = w[k].open_end;
    }
    return words;
}

int main(int argc, char **argv)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long long workers = online > 2 ? (unsigned long long)online : 2, chunk = 0;
    bool dot = false, hist = false;
    static const struct option long_options[] = {
        {"dot", no_argument, NULL, 'D'}, {"hist", no_argument, NULL, 'H'}, {0}};
    for (int opt; (opt = getopt_long(argc, argv, "j:c:h", long_options, NULL)) != -1;) {
        switch (opt) {
        case 'j':
            if (!parse_size(optarg, 1, 256, &workers)) {
                fprintf(stderr, "chunk_stats: -j wants a count from 1 to 256\n");
                return EXIT_FAILURE;
            }
            break;
        case 'c':
            if (!parse_size(optarg, 1, INT64_MAX, &chunk)) {
                fprintf(stderr, "chunk_stats: -c wants a size in bytes, at least 1\n");
                return EXIT_FAILURE;
            }
            break;
        case 'H': hist = true; break;
        case 'D': dot = true; break;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        default: usage(stderr); return EXIT_FAILURE;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return EXIT_FAILURE;
    }
    const char *path = optind < argc ? argv[optind] : "/usr/share/dict/words";
    init_classes();

    /* Made before the graph starts, so that every worker inherits them.
     * (--dot draws the graph without reading any file.) */
    mpx_shared_t *file = dot ? mpx_shared_new(0) : mpx_shared_map(path, false);
    if (!file) {
        fprintf(stderr, "chunk_stats: %s: %s\n", path, strerror(errno));
        return EXIT_FAILURE;
    }
    size_t size = mpx_shared_size(file);
    size_t chunk_size = mpx_chunks_size(size, (size_t)chunk);
    size_t nchunks = size / chunk_size + (size % chunk_size != 0);
    mpx_shared_t *words = mpx_shared_new(nchunks * sizeof(word_piece));
    if (!words) {
        fprintf(stderr, "chunk_stats: %zu chunks: %s\n", nchunks, strerror(errno));
        mpx_shared_destroy(&file);
        return EXIT_FAILURE;
    }

    mpx_node_t *chunks = mpx_chunks(size, (size_t)chunk);
    if (chunks && mpx_node_set_index(chunks, true) != 0)
        fprintf(stderr, "chunk_stats: cannot number the chunks\n"); /* the run will say more */
    mpx_graph_t *g = MPX_EZ(chunks, mpx_as((int)workers, &Count, &(count_args){file, words}));
    int rc = 0;
    if (dot) {
        rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "chunk_stats: cannot draw the graph: %s\n", mpx_strerror(rc));
    } else {
        uint64_t counts[256] = {0};
        bool odd = false;
        for (mpx_item_t *it; (it = mpx_graph_next(g)) != NULL;) {
            const uint64_t *h = mpx_item_data(it, 0);
            odd |= mpx_item_size(it, 0) != sizeof counts;
            for (int c = 0; !odd && c < 256; c++)
                counts[c] += h[c];
        }
        /* join: every worker has exited, so every slot of `words` is
         * written and seen here. */
        if ((rc = mpx_graph_join(g)) == 0 && odd) {
            fprintf(stderr, "chunk_stats: a worker put something else than its counts\n");
            rc = MPX_EPROTO;
        } else if (rc != 0) {
            fprintf(stderr, "chunk_stats: %s\n", mpx_graph_error(g));
        } else {
            uint64_t bytes = 0;
            for (int c = 0; c < 256; c++)
                bytes += counts[c];
            printf("lines: %" PRIu64 "  words: %" PRIu64 "  bytes: %" PRIu64 "\n",
                   counts['\n'], join_words(mpx_shared_data(words), nchunks), bytes);
            for (int c = 0; hist && c < 256; c++)
                if (counts[c])
                    printf("%d %" PRIu64 "\n", c, counts[c]);
            if (fflush(stdout) != 0) {
                fprintf(stderr, "chunk_stats: writing the report: %s\n", strerror(errno));
                rc = MPX_ESYS;
            }
        }
    }
    mpx_node_destroy(&g);
    /* After join: the parent reads both until here. */
    mpx_shared_destroy(&words);
    mpx_shared_destroy(&file);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
