/* tests/test_xport.c — lib/xport on its own: frames arrive whole, in
 * order and from the peer that sent them, whatever their size and however
 * the sockets cut them; output waits while a socket is full and neither
 * side stalls when both are; a peer that dies mid-frame, sends a broken
 * frame or a broken hello is dropped without harm; a connected peer comes
 * back when its listener does; and the descriptor wakes a poll when a
 * frame comes and stays quiet while the input buffers are full. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lib/xport.h"

static char *sock_path(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return p;
}

/* Byte j of frame i: both ends compute it. */
static uint8_t pattern(size_t i, size_t j)
{
    return (uint8_t)(i * 131 + j * 7 + (j >> 8));
}

static size_t frame_size(size_t i)
{
    /* Small, around the buffer sizes, and large. */
    static const size_t sizes[] = {1, 5, 100, 4095, 4096, 8191, 8192, 20000, 32768, 70000, 300000};
    return sizes[i % (sizeof sizes / sizeof *sizes)] + i % 3;
}

static void send_frame(xport_t *x, const char *rid, size_t i, size_t size)
{
    zmq_msg_t m;
    REQUIRE(zmq_msg_init_size(&m, size) == 0, "msg");
    uint8_t *d = zmq_msg_data(&m);
    for (size_t j = 0; j < size; j++)
        d[j] = pattern(i, j);
    REQUIRE(xport_send(x, rid, strlen(rid), &m) == 0, "send %zu: %s", i, strerror(errno));
    CHECK_EQ(zmq_msg_size(&m), 0); /* taken */
    zmq_msg_close(&m);
}

/* Receive one frame at `to`, servicing `other` meanwhile (both live in
 * this process, so each must be given its turn); fails after many empty
 * rounds, each of which waits on both descriptors. */
static void recv_frame(xport_t *to, xport_t *other, zmq_msg_t *m, char *rid, size_t *rid_len)
{
    for (int round = 0; round < 3000; round++) {
        if (xport_recv(to, rid, rid_len, m) == 0)
            return;
        REQUIRE(errno == EAGAIN, "recv: %s", strerror(errno));
        if (other)
            (void)xport_service(other);
        struct pollfd p[2] = {{xport_fd(to), POLLIN, 0}, {other ? xport_fd(other) : -1, POLLIN, 0}};
        long due = xport_due_ms(to);
        long due2 = other ? xport_due_ms(other) : -1;
        if (due < 0 || (due2 >= 0 && due2 < due))
            due = due2;
        (void)poll(p, 2, due < 0 || due > 10 ? 10 : (int)due);
    }
    REQUIRE(false, "no frame came");
}

static void expect_frame(xport_t *to, xport_t *other, const char *from, size_t i, size_t size)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    char rid[XPORT_RID_MAX];
    size_t rid_len = 0;
    recv_frame(to, other, &m, rid, &rid_len);
    CHECK(rid_len == strlen(from) && memcmp(rid, from, rid_len) == 0, "frame %zu from %.*s", i,
          (int)rid_len, rid);
    CHECK_EQ(zmq_msg_size(&m), size);
    const uint8_t *d = zmq_msg_data(&m);
    size_t bad = SIZE_MAX;
    for (size_t j = 0; j < zmq_msg_size(&m) && bad == SIZE_MAX; j++)
        if (d[j] != pattern(i, j))
            bad = j;
    CHECK(bad == SIZE_MAX, "frame %zu differs at byte %zu", i, bad);
    /* Records are decoded in place: the bytes start 8-byte aligned. */
    CHECK(((uintptr_t)d & 7) == 0, "frame %zu not aligned", i);
    zmq_msg_close(&m);
}

/* The next frame at `to` comes from peer `from` (a one-byte id) and holds
 * exactly `bytes`. */
static void expect_bytes(xport_t *to, xport_t *other, char from, const char *bytes,
                         const char *what)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    char rid[XPORT_RID_MAX];
    size_t rl, len = strlen(bytes);
    recv_frame(to, other, &m, rid, &rl);
    CHECK(rl == 1 && rid[0] == from, "%s: from %c", what, from);
    CHECK(zmq_msg_size(&m) == len && memcmp(zmq_msg_data(&m), bytes, len) == 0, "%s (%zu bytes)",
          what, zmq_msg_size(&m));
    zmq_msg_close(&m);
}

/* A listening at `path`, and B connected to it under A's routing id. */
static void make_pair(const char *path, xport_t **a, xport_t **b)
{
    *a = xport_new("A", 1);
    *b = xport_new("B", 1);
    REQUIRE(*a && *b && xport_bind(*a, path, 16) == 0, "bind: %s", strerror(errno));
    REQUIRE(xport_connect(*b, path, "A", 1) == 0, "connect");
}

static void end_pair(const char *path, xport_t **a, xport_t **b)
{
    xport_destroy(a);
    xport_destroy(b);
    CHECK(*a == NULL && *b == NULL, "destroy clears");
    unlink(path);
}

/* Service b until it found its connection lost and waits to connect
 * again. */
static void until_loss_noticed(xport_t *b)
{
    for (int i = 0; i < 1000 && xport_due_ms(b) < 0; i++) {
        struct pollfd p = {xport_fd(b), POLLIN, 0};
        (void)poll(&p, 1, 10);
        (void)xport_service(b);
    }
    REQUIRE(xport_due_ms(b) >= 0, "loss noticed");
}

static void frames_arrive_whole_and_in_order_both_ways(void)
{
    const char *path = sock_path("a");
    xport_t *a, *b;
    make_pair(path, &a, &b);
    CHECK(xport_has_peer(b, "A", 1), "a connected peer is addressable at once");
    const size_t n = 300;
    for (size_t i = 0; i < n; i++)
        send_frame(b, "A", i, frame_size(i));
    for (size_t i = 0; i < n; i++)
        expect_frame(a, b, "B", i, frame_size(i));
    CHECK(xport_has_peer(a, "B", 1), "the hello named the peer");
    for (size_t i = 0; i < n; i++)
        send_frame(a, "B", i + 7, frame_size(i + 5));
    for (size_t i = 0; i < n; i++)
        expect_frame(b, a, "A", i + 7, frame_size(i + 5));
    /* Longer than the first buffer a large frame gets (1 MiB): it grows
     * as the bytes come, to a length that is no power of two. */
    for (size_t i = 0; i < 3; i++)
        send_frame(b, "A", 1000 + i, (5u << 19) + 3 * i);
    for (size_t i = 0; i < 3; i++)
        expect_frame(a, b, "B", 1000 + i, (5u << 19) + 3 * i);
    CHECK_EQ(xport_queued(a) + xport_queued(b), 0);
    CHECK_EQ(xport_refused(a) + xport_refused(b), 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    char rid[XPORT_RID_MAX];
    size_t rl;
    CHECK(xport_recv(a, rid, &rl, &m) == -1 && errno == EAGAIN, "nothing more");
    CHECK(!xport_has_input(a), "nothing buffered");
    zmq_msg_close(&m);
    errno = 0;
    CHECK(xport_send_buf(a, "Z", 1, "x", 1) == -1 && errno == EHOSTUNREACH, "unknown peer");
    CHECK(xport_send_buf(b, "A", 1, "", 0) == -1 && errno == EMSGSIZE, "empty frame");
    end_pair(path, &a, &b);
}

static void sends_before_the_peer_listens_wait_for_it(void)
{
    const char *path = sock_path("late");
    xport_t *b = xport_new("B", 1);
    REQUIRE(b, "new");
    REQUIRE(xport_connect(b, path, "A", 1) == 0, "connect");
    CHECK(xport_has_peer(b, "A", 1), "addressable before it listens");
    for (size_t i = 0; i < 20; i++)
        send_frame(b, "A", i, frame_size(i));
    CHECK(xport_queued(b) > 0, "waiting in the process");
    CHECK(xport_due_ms(b) >= 0, "a reconnect is due");
    CHECK(xport_send_buf(b, "A", 1, "", 0) == -1, "still refuses an empty frame");
    xport_t *a = xport_new("A", 1);
    REQUIRE(a && xport_bind(a, path, 16) == 0, "bind");
    for (size_t i = 0; i < 20; i++)
        expect_frame(a, b, "B", i, frame_size(i));
    CHECK_EQ(xport_due_ms(b), -1);
    CHECK_EQ(xport_queued(b), 0);
    end_pair(path, &a, &b);
}

/* Both sides queue far more than their sockets hold, towards each other,
 * before either reads: servicing either in turn moves everything. */
static void both_directions_full_do_not_stall(void)
{
    const char *path = sock_path("full");
    xport_t *a, *b;
    make_pair(path, &a, &b);
    const size_t n = harness_sanitized() ? 12 : 40, size = 1 << 20;
    /* The hello first, so that a knows whom to send to. */
    send_frame(b, "A", 0, 10);
    expect_frame(a, b, "B", 0, 10);
    for (size_t i = 1; i <= n; i++) {
        send_frame(b, "A", i, size);
        send_frame(a, "B", i + 1000, size);
    }
    CHECK(xport_queued(a) > size && xport_queued(b) > size, "queued %zu and %zu",
          xport_queued(a), xport_queued(b));
    for (size_t i = 1; i <= n; i++) {
        expect_frame(a, b, "B", i, size);
        expect_frame(b, a, "A", i + 1000, size);
    }
    CHECK_EQ(xport_flush(a), 0);
    CHECK_EQ(xport_flush(b), 0);
    end_pair(path, &a, &b);
}

static int raw_connect(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "raw connect");
    return fd;
}

static void raw_frame(int fd, const void *data, uint32_t len, uint32_t claimed)
{
    REQUIRE(write(fd, &claimed, 4) == 4, "write header");
    if (len)
        REQUIRE(write(fd, data, len) == (ssize_t)len, "write body");
}

/* Service `a` until it has no peer `rid` (its connection ended and every
 * whole frame of it was taken), taking and counting frames meanwhile. */
static size_t drain_until_gone(xport_t *a, const char *rid)
{
    size_t frames = 0;
    for (int round = 0; round < 5000 && xport_has_peer(a, rid, strlen(rid)); round++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        char r[XPORT_RID_MAX];
        size_t rl;
        if (xport_recv(a, r, &rl, &m) == 0)
            frames++;
        else {
            struct pollfd p = {xport_fd(a), POLLIN, 0};
            (void)poll(&p, 1, 10);
        }
        zmq_msg_close(&m);
    }
    CHECK(!xport_has_peer(a, rid, strlen(rid)), "peer %s forgotten", rid);
    return frames;
}

static void peer_dying_mid_frame_leaves_its_whole_frames(void)
{
    const char *path = sock_path("die");
    xport_t *a = xport_new("A", 1);
    REQUIRE(a && xport_bind(a, path, 16) == 0, "bind");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        int fd = raw_connect(path);
        raw_frame(fd, "C", 1, 1);
        raw_frame(fd, "first", 5, 5);
        raw_frame(fd, "0123456789", 10, 100); /* cut short */
        _exit(0);
    }
    int status;
    REQUIRE(wait_child(pid, &status, 30) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "child");
    expect_bytes(a, NULL, 'C', "first", "the whole frame");
    CHECK_EQ(drain_until_gone(a, "C"), 0); /* never the partial one */
    CHECK(xport_send_buf(a, "C", 1, "x", 1) == -1 && errno == EHOSTUNREACH, "gone");
    CHECK_EQ(xport_refused(a), 0);
    xport_destroy(&a);
    unlink(path);
}

static void broken_frames_and_hellos_are_refused(void)
{
    const char *path = sock_path("bad");
    xport_t *a = xport_new("A", 1);
    REQUIRE(a && xport_bind(a, path, 16) == 0, "bind");
    int empty_hello = raw_connect(path), long_hello = raw_connect(path);
    raw_frame(empty_hello, "", 0, 0);
    raw_frame(long_hello, "0123456789abcdefg", 17, 17);
    int empty_frame = raw_connect(path);
    raw_frame(empty_frame, "E", 1, 1);
    raw_frame(empty_frame, "", 0, 0);
    raw_frame(empty_frame, "late", 4, 4);
    int first = raw_connect(path);
    raw_frame(first, "D", 1, 1);
    /* Its hello taken before the second one's comes. */
    for (int i = 0; i < 1000 && !xport_has_peer(a, "D", 1); i++) {
        (void)xport_service(a);
        usleep(1000);
    }
    REQUIRE(xport_has_peer(a, "D", 1), "the first D");
    int second = raw_connect(path);
    raw_frame(second, "D", 1, 1);
    raw_frame(second, "imposter", 8, 8);
    raw_frame(first, "real", 4, 4);
    expect_bytes(a, NULL, 'D', "real", "the first D's frame, never the second's");
    for (int i = 0; i < 1000 && xport_refused(a) < 4; i++) {
        (void)xport_service(a);
        usleep(1000);
    }
    CHECK_EQ(xport_refused(a), 4);
    CHECK(!xport_has_peer(a, "E", 1), "the one that sent an empty frame");
    zmq_msg_t m;
    zmq_msg_init(&m);
    char rid[XPORT_RID_MAX];
    size_t rl;
    CHECK(xport_recv(a, rid, &rl, &m) == -1 && errno == EAGAIN, "nothing else came through");
    /* The refused ones see their connection closed. */
    char c;
    CHECK(read(second, &c, 1) == 0, "the second D closed");
    CHECK(read(empty_frame, &c, 1) == 0, "E closed");
    zmq_msg_close(&m);
    close(empty_hello);
    close(long_hello);
    close(empty_frame);
    close(first);
    close(second);
    xport_destroy(&a);
    unlink(path);
}

static void connected_peer_comes_back_with_its_listener(void)
{
    const char *path = sock_path("again");
    xport_t *a, *b;
    make_pair(path, &a, &b);
    for (size_t i = 0; i < 5; i++)
        send_frame(b, "A", i, frame_size(i));
    for (size_t i = 0; i < 5; i++)
        expect_frame(a, b, "B", i, frame_size(i));
    xport_destroy(&a);
    unlink(path);
    until_loss_noticed(b);
    CHECK(xport_has_peer(b, "A", 1), "still addressable");
    for (size_t i = 5; i < 10; i++)
        send_frame(b, "A", i, frame_size(i));
    a = xport_new("A", 1);
    REQUIRE(a && xport_bind(a, path, 16) == 0, "bind again");
    for (size_t i = 5; i < 10; i++)
        expect_frame(a, b, "B", i, frame_size(i));
    CHECK_EQ(xport_refused(a), 0); /* one hello, not two */
    CHECK(xport_disconnect(b, "A", 1) == 0, "disconnect");
    CHECK(!xport_has_peer(b, "A", 1), "forgotten");
    CHECK(xport_disconnect(b, "A", 1) == -1 && errno == ENOENT, "twice");
    CHECK(xport_send_buf(b, "A", 1, "x", 1) == -1 && errno == EHOSTUNREACH, "not addressable");
    CHECK_EQ(drain_until_gone(a, "B"), 0);
    CHECK(xport_connect(b, path, "A", 1) == 0, "connect anew");
    CHECK(xport_connect(b, path, "A", 1) == -1 && errno == EEXIST, "twice");
    end_pair(path, &a, &b);
}

/* What a connected peer had begun to receive when the connection was lost
 * is dropped: the next connection's frames come whole. */
static void connected_peer_drops_what_the_loss_cut_short(void)
{
    const char *path = sock_path("cut");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(l >= 0 && bind(l, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(l, 4) == 0,
            "raw listener");
    xport_t *b = xport_new("B", 1);
    REQUIRE(b && xport_connect(b, path, "A", 1) == 0, "connect");
    int fd = accept(l, NULL, NULL);
    REQUIRE(fd >= 0, "accept");
    uint8_t hello[5];
    REQUIRE(read(fd, hello, 5) == 5 && hello[4] == 'B', "hello");
    raw_frame(fd, "one", 3, 3);
    raw_frame(fd, "0123456789", 10, 50); /* cut short by the close */
    close(fd);
    close(l);
    unlink(path);
    expect_bytes(b, NULL, 'A', "one", "the whole one");
    until_loss_noticed(b);
    xport_t *a = xport_new("A", 1);
    REQUIRE(a && xport_bind(a, path, 16) == 0, "bind");
    /* a learns b from its hello on the new connection, then answers. */
    for (int i = 0; i < 2000 && !xport_has_peer(a, "B", 1); i++) {
        (void)xport_service(b);
        struct pollfd p = {xport_fd(a), POLLIN, 0};
        (void)poll(&p, 1, 5);
        (void)xport_service(a);
    }
    REQUIRE(xport_has_peer(a, "B", 1), "b came back");
    REQUIRE(xport_send_buf(a, "B", 1, "two", 3) == 0, "send");
    expect_bytes(b, a, 'A', "two", "the new connection's frame, whole");
    CHECK_EQ(xport_refused(b), 0);
    end_pair(path, &a, &b);
}

/* A frame sent from another process after a while wakes a poll on the
 * descriptor; with input buffers full it stays quiet, and every frame
 * still comes once they are taken. */
static void descriptor_wakes_and_stays_quiet_when_full(void)
{
    const char *path = sock_path("wake");
    xport_t *a = xport_new("A", 1);
    REQUIRE(a && xport_bind(a, path, 16) == 0, "bind");
    const size_t n = 3000, size = 90;
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        xport_t *b = xport_new("B", 1);
        if (!b || xport_connect(b, path, "A", 1) != 0)
            _exit(1);
        usleep(100000);
        send_frame(b, "A", 0, size);
        /* Wait for the go-ahead, then the rest at once. */
        zmq_msg_t m;
        zmq_msg_init(&m);
        char rid[XPORT_RID_MAX];
        size_t rl;
        while (xport_recv(b, rid, &rl, &m) != 0) {
            struct pollfd p = {xport_fd(b), POLLIN, 0};
            (void)poll(&p, 1, 100);
        }
        for (size_t i = 1; i < n; i++)
            send_frame(b, "A", i, size);
        while (xport_flush(b) > 0) {
            struct pollfd p = {xport_fd(b), POLLIN, 0};
            (void)poll(&p, 1, 100);
            (void)xport_service(b);
        }
        /* Stay until told, so that nothing is lost with the connection. */
        while (xport_recv(b, rid, &rl, &m) != 0) {
            struct pollfd p = {xport_fd(b), POLLIN, 0};
            (void)poll(&p, 1, 100);
        }
        zmq_msg_close(&m);
        xport_destroy(&b);
        _exit(0);
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    char rid[XPORT_RID_MAX];
    size_t rl;
    CHECK(xport_recv(a, rid, &rl, &m) == -1 && errno == EAGAIN, "nothing yet");
    int woke = 0;
    while (!xport_has_input(a)) {
        struct pollfd p = {xport_fd(a), POLLIN, 0};
        int rc = poll(&p, 1, 30000);
        REQUIRE(rc == 1, "the descriptor did not wake (%d)", rc);
        woke++;
        (void)xport_service(a);
    }
    CHECK(woke >= 1 && woke < 100, "woke %d times", woke);
    expect_frame(a, NULL, "B", 0, size);
    REQUIRE(xport_send_buf(a, "B", 1, "go", 2) == 0, "go");
    /* Take nothing until the buffer is full and the sender is done. */
    for (int i = 0; i < 3000; i++) {
        (void)xport_service(a);
        struct pollfd p = {xport_fd(a), POLLIN, 0};
        if (xport_has_input(a) && poll(&p, 1, 0) == 0 && i > 200)
            break;
        usleep(1000);
    }
    struct pollfd p = {xport_fd(a), POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 0, "quiet while full");
    for (size_t i = 1; i < n; i++)
        expect_frame(a, NULL, "B", i, size);
    REQUIRE(xport_send_buf(a, "B", 1, "bye", 3) == 0, "bye");
    int status;
    for (int i = 0; i < 3000 && xport_flush(a) > 0; i++)
        usleep(1000);
    CHECK(wait_child(pid, &status, 30) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "sender");
    zmq_msg_close(&m);
    xport_destroy(&a);
    unlink(path);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(frames_arrive_whole_and_in_order_both_ways),
        TEST_CASE(sends_before_the_peer_listens_wait_for_it),
        TEST_CASE(both_directions_full_do_not_stall),
        TEST_CASE(peer_dying_mid_frame_leaves_its_whole_frames),
        TEST_CASE(broken_frames_and_hellos_are_refused),
        TEST_CASE(connected_peer_comes_back_with_its_listener),
        TEST_CASE(connected_peer_drops_what_the_loss_cut_short),
        TEST_CASE(descriptor_wakes_and_stays_quiet_when_full),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
