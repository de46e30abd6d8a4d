/* examples/frames.c — mpyx's FFmpeg video pipeline: raw video frames from
 * one ffmpeg, filtered by a parallel group of workers, handed in their
 * original order to a second ffmpeg that encodes them losslessly to a
 * file.  Frames travel through the graph's shared-memory pool: only a
 * reference to each 6 MB frame crosses a socket.
 *
 *     frames [-j WORKERS] [-n FRAMES] [-s WxH] [-r RATE] [--dot] OUTPUT.mkv
 *
 * Defaults: 100 frames of 1920x1080 at 25 frames/s, one worker per CPU (at
 * least 2).  At the end it prints the frames encoded, the time from start
 * to join, frames/s and MB/s (of raw frames, 10^6 bytes).  --dot prints
 * the graph in Graphviz DOT instead of running it.
 *
 *   decode ──▶ frame ──▶ seq( curve ×N ) ──▶ encode
 *
 *   decode  mpx_exec: ffmpeg's built-in test pattern (testsrc) as raw
 *           rgb24 on its stdout, put in pieces of whatever size the pipe
 *           gives;
 *   frame   cuts that byte stream into frames of W*H*3 bytes, each written
 *           into a pool block (mpx_alloc) and put by reference;
 *   curve   a brightness curve applied to every byte of a frame, in place
 *           in the pool when mpx_item_writable allows it, by N workers
 *           at once;
 *   seq     puts the workers' frames back in the order decode made them,
 *           whichever worker finished first;
 *   encode  mpx_exec: ffmpeg reading raw frames on its stdin, writing
 *           FFV1 (lossless) in Matroska, so the file decodes back to
 *           exactly the filtered frames (examples/test_examples.sh checks
 *           every frame's MD5 against its own computation).
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
#include <time.h>
#include <unistd.h>

#include <mpx.h>

/* ---- frame: a byte stream cut into frames ---------------------------------- */

typedef struct frame_args {
    size_t frame_bytes; /* W * H * 3 */
} frame_args;

typedef struct frame_state {
    uint8_t *block; /* the frame being filled (from mpx_alloc), or NULL */
    size_t filled;
    uint64_t frames; /* frames put so far */
} frame_state;

/* Each frame is written straight into a pool block, so the workers read
 * it where this stage wrote it. */
static int frame_process(mpx_stage_t *st, mpx_item_t *item)
{
    const frame_args *a = mpx_args(st);
    frame_state *s = mpx_state(st);
    const uint8_t *p = mpx_item_data(item, 0);
    size_t n = mpx_item_size(item, 0);
    while (n > 0) {
        if (!s->block && !(s->block = mpx_alloc(st, a->frame_bytes)))
            return mpx_stopping(st) ? MPX_ESTOPPED
                                    : mpx_fail(st, "no memory for frame %" PRIu64, s->frames);
        size_t take = a->frame_bytes - s->filled < n ? a->frame_bytes - s->filled : n;
        memcpy(s->block + s->filled, p, take);
        s->filled += take;
        p += take;
        n -= take;
        if (s->filled == a->frame_bytes) {
            /* The block is no longer ours once put, whatever the result. */
            uint8_t *full = s->block;
            s->block = NULL;
            s->filled = 0;
            s->frames++;
            int rc = mpx_put_alloc(st, full, a->frame_bytes);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* A stream that ends inside a frame is not video of this size: ffmpeg
 * and we disagree on the geometry.  (Unless the stage is being stopped:
 * then the stream was cut, not wrong.) */
static int frame_teardown(mpx_stage_t *st)
{
    const frame_args *a = mpx_args(st);
    frame_state *s = mpx_state(st);
    if (!s->block)
        return 0;
    size_t filled = s->filled;
    int rc = mpx_free(st, s->block);
    s->block = NULL;
    if (rc != 0)
        return mpx_fail(st, "mpx_free: %s", mpx_strerror(rc));
    if (mpx_stopping(st))
        return 0;
    return mpx_fail(st, "the decoder's output ended %zu bytes into frame %" PRIu64
                        " (a frame is %zu bytes)",
                    filled, s->frames, a->frame_bytes);
}

static const mpx_stage_def_t Frame = {
    .name = "frame",
    .args_size = sizeof(frame_args),
    .state_size = sizeof(frame_state),
    .process = frame_process,
    .teardown = frame_teardown,
};

/* ---- curve: the filter ------------------------------------------------------ */

/* A brightness curve that lifts the shadows and keeps black and white:
 * v -> 255 - (255 - v)^2 / 255, in integers so that the test can compute
 * exactly the same bytes in another language. */
static uint8_t curve_of(unsigned v) { return (uint8_t)(255u - (255u - v) * (255u - v) / 255u); }

typedef struct curve_args {
    size_t frame_bytes;
    uint8_t table[256];
} curve_args;

/* In place when mpx_item_writable allows it: when nothing but this worker
 * and the record it came in holds the frame's block (not a broadcast's,
 * not one a stage upstream still holds or keeps a copy of, and never in a
 * worker that would be sent the frame again after a crash, stage.h).
 * Otherwise the filtered frame goes into a block of this worker's own,
 * written in the same pass that reads the input: each byte read once and
 * written once either way, nothing copied. */
static int curve_process(mpx_stage_t *st, mpx_item_t *item)
{
    const curve_args *a = mpx_args(st);
    size_t n = mpx_item_size(item, 0);
    if (n != a->frame_bytes)
        return mpx_fail(st, "a frame of %zu bytes, not %zu", n, a->frame_bytes);
    uint8_t *here = mpx_item_writable(st, item, 0);
    if (here) {
        for (size_t i = 0; i < n; i++)
            here[i] = a->table[here[i]];
        return mpx_put_item(st, item);
    }
    const uint8_t *in = mpx_item_data(item, 0);
    uint8_t *out = mpx_alloc(st, n);
    if (!out)
        return mpx_stopping(st) ? MPX_ESTOPPED : mpx_fail(st, "no memory for a frame");
    for (size_t i = 0; i < n; i++)
        out[i] = a->table[in[i]];
    return mpx_put_alloc(st, out, n);
}

static const mpx_stage_def_t Curve = {
    .name = "curve",
    .args_size = sizeof(curve_args),
    .process = curve_process,
};

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: frames [-j WORKERS] [-n FRAMES] [-s WxH] [-r RATE] [--dot] OUTPUT.mkv\n"
               "Decode ffmpeg's test pattern to raw RGB frames, apply a brightness curve\n"
               "with parallel workers, and encode the frames in order, losslessly (FFV1),\n"
               "to OUTPUT.mkv; print frames/s and MB/s.\n");
}

static bool parse_count(const char *s, unsigned long long lo, unsigned long long hi,
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

/* "WxH", each even (as video tools commonly want) and at most 8192. */
static bool parse_geometry(const char *s, unsigned *w, unsigned *h)
{
    unsigned ww, hh;
    char x, rest;
    if (sscanf(s, "%u%c%u%c", &ww, &x, &hh, &rest) != 3 || x != 'x' || ww < 2 || hh < 2 ||
        ww > 8192 || hh > 8192 || ww % 2 || hh % 2)
        return false;
    *w = ww;
    *h = hh;
    return true;
}

/* `s` in single quotes for /bin/sh, each ' written as '\''. */
static bool shell_quote(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    if (k + 1 >= cap)
        return false;
    out[k++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : (char[]){*s, 0};
        size_t len = strlen(piece);
        if (k + len + 2 > cap)
            return false;
        memcpy(out + k, piece, len);
        k += len;
    }
    out[k++] = '\'';
    out[k] = '\0';
    return true;
}

/* Run the graph and print what went through: 0, or nonzero once the
 * failure has been said on stderr. */
static int run_graph(mpx_graph_t *g, unsigned long long nframes, unsigned width,
                     unsigned height)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = mpx_graph_join(g);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != 0) {
        fprintf(stderr, "frames: %s\n", mpx_graph_error(g));
        return rc;
    }
    /* What reached the encoder, counted by mpx (the encode stage's input). */
    unsigned long long encoded = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "encode") == 0)
            encoded = info.items_in;
    }
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double bytes = (double)encoded * width * height * 3;
    printf("frames: %llu  size: %ux%u  seconds: %.3f  frames/s: %.1f  MB/s: %.1f\n", encoded,
           width, height, seconds, (double)encoded / seconds, bytes / 1e6 / seconds);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "frames: writing the report: %s\n", strerror(errno));
        return -1;
    }
    if (encoded != nframes) {
        fprintf(stderr, "frames: %llu frames asked for, %llu encoded\n", nframes, encoded);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long long workers = online > 2 ? (unsigned long long)online : 2, nframes = 100,
                       rate = 25;
    unsigned width = 1920, height = 1080;
    bool dot = false;
    static const struct option long_options[] = {{"dot", no_argument, NULL, 'D'}, {0}};
    for (int opt; (opt = getopt_long(argc, argv, "j:n:s:r:h", long_options, NULL)) != -1;) {
        switch (opt) {
        case 'j':
            if (!parse_count(optarg, 1, 256, &workers)) {
                fprintf(stderr, "frames: -j wants a count from 1 to 256\n");
                return EXIT_FAILURE;
            }
            break;
        case 'n':
            if (!parse_count(optarg, 1, 1000000, &nframes)) {
                fprintf(stderr, "frames: -n wants a count from 1 to 1000000\n");
                return EXIT_FAILURE;
            }
            break;
        case 's':
            if (!parse_geometry(optarg, &width, &height)) {
                fprintf(stderr, "frames: -s wants WxH, even numbers from 2 to 8192\n");
                return EXIT_FAILURE;
            }
            break;
        case 'r':
            if (!parse_count(optarg, 1, 1000, &rate)) {
                fprintf(stderr, "frames: -r wants frames per second from 1 to 1000\n");
                return EXIT_FAILURE;
            }
            break;
        case 'D': dot = true; break;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        default: usage(stderr); return EXIT_FAILURE;
        }
    }
    /* --dot draws the graph without running it: the output may be left out. */
    if (argc - optind > 1 || (argc - optind == 0 && !dot)) {
        usage(stderr);
        return EXIT_FAILURE;
    }
    const char *output = optind < argc ? argv[optind] : "out.mkv";
    char quoted[2 * MPX_PATH_MAX];
    if (!shell_quote(output, quoted, sizeof quoted)) {
        fprintf(stderr, "frames: the output path is too long\n");
        return EXIT_FAILURE;
    }

    size_t frame_bytes = (size_t)width * height * 3;
    char decode[512], encode[MPX_COMMAND_MAX];
    snprintf(decode, sizeof decode,
             "exec ffmpeg -nostdin -v error -f lavfi -i testsrc=size=%ux%u:rate=%llu "
             "-frames:v %llu -f rawvideo -pix_fmt rgb24 -",
             width, height, rate, nframes);
    if (snprintf(encode, sizeof encode,
                 "exec ffmpeg -nostdin -v error -f rawvideo -pix_fmt rgb24 -s %ux%u -r %llu "
                 "-i - -c:v ffv1 -y %s",
                 width, height, rate, quoted) >= (int)sizeof encode) {
        fprintf(stderr, "frames: the output path is too long\n");
        return EXIT_FAILURE;
    }

    curve_args curve = {frame_bytes, {0}};
    for (unsigned v = 0; v < 256; v++)
        curve.table[v] = curve_of(v);
    /* No mpx_graph_set_pool: the default pool (1 GiB, or a quarter of
     * the memory when less) takes memory only as frames use it, and what
     * is in flight is bounded without our help: an edge's 16 MiB window
     * counts the frames it carries by reference, and seq closes an epoch
     * every 16 MiB of frames: at 1080p with a few workers the pool held
     * 17 to 24 frames at most (104-151 MB, 1 to 8 workers).  A pool
     * smaller than that saves nothing and costs time: when it is full,
     * mpx_alloc waits 100 ms, then gives private memory, and that frame
     * crosses the socket instead. */
    mpx_node_t *dec = mpx_exec(decode, MPX_EXEC_CHUNKS);
    mpx_node_t *enc = mpx_exec(encode, MPX_EXEC_CHUNKS);
    mpx_graph_t *g = MPX_EZ(dec, mpx_stage(&Frame, &(frame_args){frame_bytes}),
                            mpx_seq(mpx_as((int)workers, &Curve, &curve)), enc);
    int rc = g && dec && enc ? 0 : MPX_ENOMEM;
    if (rc == 0)
        rc = mpx_node_set_name(dec, "decode");
    if (rc == 0)
        rc = mpx_node_set_name(enc, "encode");
    if (rc != 0) {
        fprintf(stderr, "frames: setting up the graph: %s\n", mpx_strerror(rc));
    } else if (dot) {
        rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "frames: cannot draw the graph: %s\n", mpx_strerror(rc));
    } else {
        rc = run_graph(g, nframes, width, height);
    }
    mpx_node_destroy(&g);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
