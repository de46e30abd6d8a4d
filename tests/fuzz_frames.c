/* tests/fuzz_frames.c — a libFuzzer target for the framing of lib/xport.c,
 * what every edge's bytes pass through before lib/wire.c decodes them
 * (tests/fuzz_wire.c fuzzes that decoder).  Each input is what a peer
 * writes on a connection the xport accepted: its first byte chooses how
 * the rest is cut into writes, the rest is the byte stream — a hello (the
 * peer's routing id), then frames, each a 4-byte length and its bytes.
 * The target writes the stream piece by piece into one end of a
 * socketpair adopted by an xport, takes every frame the xport hands out
 * after each piece, closes its end, takes the rest, and checks the result
 * against its own reading of the stream:
 *
 *  - every whole frame before the first broken one (an empty frame, an
 *    empty hello or one longer than XPORT_RID_MAX) is handed out, in
 *    order, with its bytes and the hello as the sender's id, and nothing
 *    else is: not a frame the closing cut short, nothing after a broken
 *    one;
 *  - a broken frame or hello is counted once in xport_refused, a stream
 *    that is merely cut short is not;
 *  - once its frames are taken and the connection has ended, the peer is
 *    gone (xport_has_peer) and nothing waits to be written.
 *
 * Built by tests/test_fuzz.sh with small buffer sizes (IB_START, IB_MAX,
 * BIG_FRAME, BIG_FIRST) so that short inputs reach every path of the
 * input code: buffers growing and compacting, frames read straight into a
 * buffer of their own and that buffer growing, a header whose claimed
 * length is never sent.  With -DFUZZ_FRAMES_REPORT it prints, for each
 * input, whether the connection was refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/xport.h"

#define MUST(cond)                                                                         \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_frames.c:%d: invariant failed: %s\n", __LINE__, #cond);  \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the stream should give: its frames (offsets into the stream), the
 * hello, and whether it breaks the framing. */
typedef struct expect {
    size_t *off, *len; /* room for every frame the stream can hold */
    size_t n;
    const uint8_t *rid;
    size_t rid_len;
    bool broken;
} expect_t;

static void read_stream(const uint8_t *s, size_t size, expect_t *e)
{
    size_t at = 0;
    bool hello = true;
    e->n = 0;
    e->broken = false;
    e->rid = NULL;
    e->rid_len = 0;
    while (size - at >= 4) {
        uint32_t len;
        memcpy(&len, s + at, 4);
        if (len == 0 || (hello && len > XPORT_RID_MAX)) {
            e->broken = true;
            return;
        }
        if (size - at - 4 < len)
            return; /* cut short by the end */
        if (hello) {
            e->rid = s + at + 4;
            e->rid_len = len;
            hello = false;
        } else {
            e->off[e->n] = at + 4;
            e->len[e->n] = len;
            e->n++;
        }
        at += 4 + (size_t)len;
    }
}

/* Take every frame the xport has now; check each against the next one
 * expected. */
static void take_all(xport_t *x, const uint8_t *s, const expect_t *e, size_t *got)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint8_t rid[XPORT_RID_MAX];
    size_t rid_len;
    while (xport_recv(x, rid, &rid_len, &m) == 0) {
        MUST(*got < e->n);
        MUST(rid_len == e->rid_len && memcmp(rid, e->rid, rid_len) == 0);
        MUST(zmq_msg_size(&m) == e->len[*got]);
        MUST(memcmp(zmq_msg_data(&m), s + e->off[*got], e->len[*got]) == 0);
        (*got)++;
    }
    MUST(errno == EAGAIN);
    zmq_msg_close(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* A frame takes 5 bytes at least. */
    expect_t e = {.off = malloc((size / 5 + 1) * sizeof(size_t)),
                  .len = malloc((size / 5 + 1) * sizeof(size_t))};
    MUST(e.off && e.len);
    /* Pieces of 1..16 bytes, or of 64 times that: a frame's header and
     * bytes arrive split anywhere. */
    size_t piece = (size_t)(data[0] & 15) + 1;
    if (data[0] & 16)
        piece *= 64;
    const uint8_t *s = data + 1;
    size -= 1;
    read_stream(s, size, &e);

    int sv[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    xport_t *x = xport_new("fuzz", 4);
    MUST(x);
    MUST(xport_adopt(x, sv[0]) == 0);

    size_t got = 0;
    for (size_t at = 0; at < size;) {
        size_t n = size - at < piece ? size - at : piece;
        /* A refused connection is closed: the writes after it fail
         * (EPIPE, without the signal), which is what its peer sees. */
        ssize_t w = send(sv[1], s + at, n, MSG_NOSIGNAL);
        if (w < 0) {
            MUST(errno == EPIPE || errno == ECONNRESET);
            MUST(e.broken);
            break;
        }
        at += (size_t)w;
        take_all(x, s, &e, &got);
    }
    close(sv[1]);
    /* The end of the stream needs a read to be seen; a few rounds, each
     * reading what the socket holds. */
    for (int round = 0; round < 4; round++)
        take_all(x, s, &e, &got);

    MUST(got == e.n);
    MUST(xport_refused(x) == (e.broken ? 1u : 0u));
    if (e.rid)
        MUST(!xport_has_peer(x, e.rid, e.rid_len));
    MUST(xport_queued(x) == 0);
#ifdef FUZZ_FRAMES_REPORT
    printf("%zu frames\nmpx-fuzz: %s\n", got, e.broken ? "rejected" : "accepted");
#endif
    xport_destroy(&x);
    free(e.off);
    free(e.len);
    return 0;
}
