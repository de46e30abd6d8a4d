/* bench/raw.c — hand-written libzmq baselines (see raw.h). */
#define _GNU_SOURCE
#include "raw.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"

static void die(const char *what)
{
    fprintf(stderr, "raw baseline: %s: %s\n", what, zmq_strerror(errno));
    exit(1);
}

static void *sock(void *ctx, int type, const char *dir, const char *name, int bind)
{
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/%s", dir, name);
    void *s = zmq_socket(ctx, type);
    /* The same short reconnect interval mpx uses: with zmq's default
     * (100 ms), a connect made before the peer binds would make the
     * baseline slower than hand-written code needs to be. */
    int zero = 0, ivl = 2;
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        (bind ? zmq_bind(s, ep) : zmq_connect(s, ep)))
        die(ep);
    return s;
}

static int recv_into(void *s, zmq_msg_t *m)
{
    int n;
    while ((n = zmq_msg_recv(m, s, 0)) < 0 && errno == EINTR)
        ;
    return n;
}

/* Receive until the one-byte end message, then acknowledge it. */
static _Noreturn void stream_receiver(const char *dir)
{
    void *ctx = zmq_ctx_new();
    void *in = sock(ctx, ZMQ_PULL, dir, "data", 1);
    void *ack = sock(ctx, ZMQ_PUSH, dir, "ack", 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t count = 0;
    for (;;) {
        int n = recv_into(in, &m);
        if (n < 0)
            die("recv");
        if (n == 1 && *(char *)zmq_msg_data(&m) == 'E')
            break;
        count++;
    }
    zmq_msg_close(&m);
    uint64_t reply[2] = {count, (uint64_t)bench_private_kib()};
    if (zmq_send(ack, reply, sizeof reply, 0) < 0)
        die("ack");
    /* The sender exits only after the ack arrived; we wait for its
     * release so that the ack is not lost to our exit either. */
    void *rel = sock(ctx, ZMQ_PULL, dir, "release", 1);
    char b;
    zmq_recv(rel, &b, 1, 0);
    zmq_close(rel);
    zmq_close(in);
    zmq_close(ack);
    zmq_ctx_term(ctx);
    _exit(0);
}

raw_result_t raw_stream(uint64_t n, size_t size)
{
    char dir[256];
    if (!bench_mkdtemp(dir, sizeof dir))
        die("mkdtemp");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        stream_receiver(dir);
    void *ctx = zmq_ctx_new();
    void *out = sock(ctx, ZMQ_PUSH, dir, "data", 0);
    void *ack = sock(ctx, ZMQ_PULL, dir, "ack", 1);
    char *payload = calloc(1, size ? size : 1);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        zmq_msg_t m;
        /* What a hand-written sender does: a message per item, its bytes
         * copied in (zero-copy would need a free callback per message). */
        zmq_msg_init_size(&m, size);
        memcpy(zmq_msg_data(&m), payload, size);
        while (zmq_msg_send(&m, out, 0) < 0)
            if (errno != EINTR)
                die("send");
    }
    if (zmq_send(out, "E", 1, 0) < 0)
        die("send end");
    uint64_t reply[2] = {0, 0};
    while (zmq_recv(ack, reply, sizeof reply, 0) < 0)
        if (errno != EINTR)
            die("recv ack");
    uint64_t count = reply[0];
    double t1 = bench_now();
    void *rel = sock(ctx, ZMQ_PUSH, dir, "release", 0);
    zmq_send(rel, "R", 1, 0);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    zmq_close(rel);
    zmq_close(out);
    zmq_close(ack);
    zmq_ctx_term(ctx);
    free(payload);
    bench_rmdir(dir);
    if (count != n) {
        fprintf(stderr, "raw baseline lost messages: %llu of %llu\n", (unsigned long long)count,
                (unsigned long long)n);
        exit(1);
    }
    return (raw_result_t){t1 - t0, ru.ru_maxrss, (long)reply[1]};
}

double raw_stream_heap_kept(uint64_t n, size_t size, size_t keep)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        size_t block = keep < ((size_t)32 << 20) ? keep : (size_t)32 << 20;
        mallopt(M_MMAP_THRESHOLD, (int)block);
        mallopt(M_TRIM_THRESHOLD, (int)keep);
        double t = raw_stream(n, size).seconds;
        _exit(write(fd[1], &t, sizeof t) == (ssize_t)sizeof t ? 0 : 1);
    }
    close(fd[1]);
    double t = 0;
    ssize_t got = read(fd[0], &t, sizeof t);
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof t || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "raw baseline (heap kept) failed\n");
        exit(1);
    }
    return t;
}

static _Noreturn void echo_server(const char *dir, uint64_t n)
{
    void *ctx = zmq_ctx_new();
    void *rep = sock(ctx, ZMQ_REP, dir, "rep", 1);
    char buf[8];
    for (uint64_t i = 0; i < n; i++) {
        if (zmq_recv(rep, buf, sizeof buf, 0) < 0 || zmq_send(rep, buf, sizeof buf, 0) < 0)
            die("echo");
    }
    /* The client's last receive is the acknowledgement: it exits after. */
    zmq_recv(rep, buf, sizeof buf, 0);
    zmq_close(rep);
    zmq_ctx_term(ctx);
    _exit(0);
}

void raw_pingpong(uint64_t n, double *rtt_us)
{
    char dir[256];
    if (!bench_mkdtemp(dir, sizeof dir))
        die("mkdtemp");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        echo_server(dir, n);
    void *ctx = zmq_ctx_new();
    void *req = sock(ctx, ZMQ_REQ, dir, "rep", 0);
    char buf[8] = {0};
    for (uint64_t i = 0; i < n; i++) {
        double t0 = bench_now();
        if (zmq_send(req, buf, sizeof buf, 0) < 0 || zmq_recv(req, buf, sizeof buf, 0) < 0)
            die("ping");
        rtt_us[i] = (bench_now() - t0) * 1e6;
    }
    zmq_send(req, buf, sizeof buf, 0); /* let the server go */
    waitpid(pid, NULL, 0);
    zmq_close(req);
    zmq_ctx_term(ctx);
    bench_rmdir(dir);
}

/* One link of the chain: relay from in<k> to in<k+1>; the last reports
 * the count to the parent.  Each waits for its consumer's word that the
 * end arrived before it exits. */
static _Noreturn void chain_link(const char *dir, int k, int procs)
{
    void *ctx = zmq_ctx_new();
    char name[32];
    snprintf(name, sizeof name, "in%d", k);
    void *in = sock(ctx, ZMQ_PULL, dir, name, 1);
    snprintf(name, sizeof name, k + 1 < procs ? "in%d" : "done", k + 1);
    void *out = sock(ctx, ZMQ_PUSH, dir, name, 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (;;) {
        int n = recv_into(in, &m);
        if (n < 0)
            die("chain recv");
        bool end = n == 1 && *(char *)zmq_msg_data(&m) == 'E';
        if (zmq_msg_send(&m, out, 0) < 0)
            die("chain send");
        zmq_msg_init(&m);
        if (end)
            break;
    }
    /* Wait until the end has gone through the whole chain. */
    snprintf(name, sizeof name, "release%d", k);
    void *rel = sock(ctx, ZMQ_PULL, dir, name, 1);
    char b;
    zmq_recv(rel, &b, 1, 0);
    zmq_close(rel);
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    _exit(0);
}

double raw_chain_startup(int procs, uint64_t n)
{
    char dir[256];
    if (!bench_mkdtemp(dir, sizeof dir))
        die("mkdtemp");
    pid_t *pids = calloc((size_t)procs, sizeof *pids);
    fflush(NULL);
    double t0 = bench_now();
    for (int k = 0; k < procs; k++) {
        pids[k] = fork();
        if (pids[k] == 0)
            chain_link(dir, k, procs);
    }
    void *ctx = zmq_ctx_new();
    void *out = sock(ctx, ZMQ_PUSH, dir, "in0", 0);
    void *done = sock(ctx, ZMQ_PULL, dir, "done", 1);
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; i++)
        zmq_send(out, &v, sizeof v, 0);
    zmq_send(out, "E", 1, 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t got = 0;
    for (;;) {
        int r = recv_into(done, &m);
        if (r == 1 && *(char *)zmq_msg_data(&m) == 'E')
            break;
        got += r >= 0;
    }
    zmq_msg_close(&m);
    void **rel = calloc((size_t)procs, sizeof *rel);
    if (!rel)
        die("calloc");
    int nrel = procs;
    for (int k = 0; k < nrel; k++) {
        char name[32];
        snprintf(name, sizeof name, "release%d", k);
        rel[k] = sock(ctx, ZMQ_PUSH, dir, name, 0);
        zmq_send(rel[k], "R", 1, 0);
    }
    for (int k = 0; k < procs; k++)
        waitpid(pids[k], NULL, 0);
    double t1 = bench_now();
    for (int k = 0; k < nrel; k++)
        zmq_close(rel[k]);
    free(rel);
    zmq_close(out);
    zmq_close(done);
    zmq_ctx_term(ctx);
    free(pids);
    bench_rmdir(dir);
    if (got != n) {
        fprintf(stderr, "raw chain lost messages: %llu of %llu\n", (unsigned long long)got,
                (unsigned long long)n);
        exit(1);
    }
    return t1 - t0;
}

static _Noreturn void farm_worker(const char *dir, double work)
{
    void *ctx = zmq_ctx_new();
    void *in = sock(ctx, ZMQ_PULL, dir, "tasks", 0);
    void *out = sock(ctx, ZMQ_PUSH, dir, "results", 0);
    uint64_t v;
    for (;;) {
        int n;
        while ((n = zmq_recv(in, &v, sizeof v, 0)) < 0 && errno == EINTR)
            ;
        if (n != sizeof v || v == UINT64_MAX)
            break;
        bench_burn(work);
        zmq_send(out, &v, sizeof v, 0);
    }
    /* Our results are in the parent's hands before it sends the ends. */
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    _exit(0);
}

double raw_farm(int workers, uint64_t n, double work)
{
    char dir[256];
    if (!bench_mkdtemp(dir, sizeof dir))
        die("mkdtemp");
    pid_t *pids = calloc((size_t)workers, sizeof *pids);
    fflush(NULL);
    for (int k = 0; k < workers; k++) {
        pids[k] = fork();
        if (pids[k] == 0)
            farm_worker(dir, work);
    }
    void *ctx = zmq_ctx_new();
    void *tasks = sock(ctx, ZMQ_PUSH, dir, "tasks", 1);
    void *results = sock(ctx, ZMQ_PULL, dir, "results", 1);
    /* Small queues, as a farm of slow tasks wants: a worker does not hoard
     * tasks another could take. */
    int one = 1;
    zmq_setsockopt(tasks, ZMQ_SNDHWM, &one, sizeof one);
    double t0 = bench_now();
    uint64_t sent = 0, got = 0, v;
    zmq_pollitem_t items[2] = {{tasks, 0, ZMQ_POLLOUT, 0}, {results, 0, ZMQ_POLLIN, 0}};
    while (got < n) {
        items[0].events = sent < n ? ZMQ_POLLOUT : 0;
        if (zmq_poll(items, 2, -1) < 0 && errno != EINTR)
            die("poll");
        if ((items[0].revents & ZMQ_POLLOUT) && sent < n && zmq_send(tasks, &sent, sizeof sent, ZMQ_DONTWAIT) > 0)
            sent++;
        while (zmq_recv(results, &v, sizeof v, ZMQ_DONTWAIT) > 0)
            got++;
    }
    double t1 = bench_now();
    /* Every worker must get an end.  PUSH deals them to whichever worker
     * has room, so one worker may take two while another gets none: send
     * ends until every worker has left (one that left takes no more). */
    v = UINT64_MAX;
    int left = workers;
    while (left > 0) {
        zmq_send(tasks, &v, sizeof v, ZMQ_DONTWAIT);
        usleep(1000);
        for (int k = 0; k < workers; k++)
            if (pids[k] > 0 && waitpid(pids[k], NULL, WNOHANG) == pids[k]) {
                pids[k] = 0;
                left--;
            }
    }
    zmq_close(tasks);
    zmq_close(results);
    zmq_ctx_term(ctx);
    free(pids);
    bench_rmdir(dir);
    return t1 - t0;
}

double raw_split(int workers, uint64_t n, uint64_t turns, uint64_t *sum)
{
    uint64_t *part = mmap(NULL, (size_t)workers * sizeof *part, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t *pids = calloc((size_t)workers, sizeof *pids);
    if (part == MAP_FAILED || !pids)
        die("mmap");
    fflush(NULL);
    double t0 = bench_now();
    for (int k = 0; k < workers; k++) {
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork");
        if (pids[k] == 0) {
            uint64_t from = n * (uint64_t)k / (uint64_t)workers;
            uint64_t to = n * (uint64_t)(k + 1) / (uint64_t)workers, s = 0;
            for (uint64_t i = from; i < to; i++)
                s += bench_spin(turns, i);
            part[k] = s;
            _exit(0);
        }
    }
    for (int k = 0; k < workers; k++)
        waitpid(pids[k], NULL, 0);
    double t = bench_now() - t0;
    *sum = 0;
    for (int k = 0; k < workers; k++)
        *sum += part[k];
    munmap(part, (size_t)workers * sizeof *part);
    free(pids);
    return t;
}

/* ---- raw_pipeline ---------------------------------------------------------- */

static void pipe_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("raw pipeline: write");
        p += k;
        len -= (size_t)k;
    }
}

/* A worker: 8-byte items in, bench_spin of each out, until end of file. */
static void pipe_worker(int in, int out, uint64_t turns)
{
    uint64_t ib[RAW_PIPE_BATCH + 1], ob[RAW_PIPE_BATCH];
    size_t have = 0, nout = 0; /* bytes in ib, items in ob */
    for (;;) {
        ssize_t k = read(in, (char *)ib + have, RAW_PIPE_BATCH * sizeof *ib - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die("raw pipeline: read");
        if (k == 0)
            break;
        have += (size_t)k;
        size_t items = have / sizeof *ib;
        for (size_t i = 0; i < items; i++) {
            ob[nout++] = bench_spin(turns, ib[i]);
            if (nout == RAW_PIPE_BATCH) {
                pipe_write(out, ob, sizeof ob);
                nout = 0;
            }
        }
        /* A partial item stays for the next read. */
        memmove(ib, (char *)ib + items * sizeof *ib, have - items * sizeof *ib);
        have -= items * sizeof *ib;
    }
    if (nout)
        pipe_write(out, ob, nout * sizeof *ob);
}

double raw_pipeline(int workers, uint64_t n, uint64_t turns, uint64_t *sum)
{
    enum { MAXW = 64 };
    if (workers < 1 || workers > MAXW)
        die("raw pipeline: workers");
    int to_w[MAXW][2], from_w[MAXW][2];
    pid_t pids[MAXW + 1];
    fflush(NULL);
    double t0 = bench_now();
    for (int k = 0; k < workers; k++)
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, to_w[k]) != 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, from_w[k]) != 0)
            die("raw pipeline: socketpair");
    for (int k = 0; k < workers; k++) {
        if ((pids[k] = fork()) < 0)
            die("raw pipeline: fork");
        if (pids[k] == 0) {
            for (int j = 0; j < workers; j++) {
                close(to_w[j][0]);
                close(from_w[j][0]);
                if (j != k) {
                    close(to_w[j][1]);
                    close(from_w[j][1]);
                }
            }
            pipe_worker(to_w[k][1], from_w[k][1], turns);
            _exit(0);
        }
    }
    /* The source: batches round robin, a blocking write each; at most a
     * sixteenth of each worker's share, so that few items spread too. */
    if ((pids[workers] = fork()) < 0)
        die("raw pipeline: fork");
    if (pids[workers] == 0) {
        uint64_t b[RAW_PIPE_BATCH];
        size_t nb = 0, batch = (size_t)(n / (16 * (uint64_t)workers));
        batch = batch < 1 ? 1 : batch > RAW_PIPE_BATCH ? RAW_PIPE_BATCH : batch;
        int next = 0;
        for (int j = 0; j < workers; j++) {
            close(from_w[j][0]);
            close(from_w[j][1]);
            close(to_w[j][1]);
        }
        for (uint64_t i = 0; i < n; i++) {
            b[nb++] = i;
            if (nb == batch) {
                pipe_write(to_w[next][0], b, nb * sizeof *b);
                next = (next + 1) % workers;
                nb = 0;
            }
        }
        if (nb)
            pipe_write(to_w[next][0], b, nb * sizeof *b);
        _exit(0);
    }
    /* The program: results from every worker until each one's end. */
    struct pollfd pfd[MAXW];
    uint64_t rb[4 * RAW_PIPE_BATCH + 1];
    size_t have[MAXW] = {0};
    uint8_t part[MAXW][8] = {{0}};
    for (int k = 0; k < workers; k++) {
        close(to_w[k][0]);
        close(to_w[k][1]);
        close(from_w[k][1]);
        pfd[k] = (struct pollfd){from_w[k][0], POLLIN, 0};
    }
    uint64_t s = 0, got = 0;
    for (int open = workers; open > 0;) {
        if (poll(pfd, (nfds_t)workers, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("raw pipeline: poll");
        }
        for (int k = 0; k < workers; k++) {
            if (pfd[k].fd < 0 || !pfd[k].revents)
                continue;
            /* Bytes of an item cut by the last read go first. */
            memcpy(rb, part[k], have[k]);
            ssize_t r = read(pfd[k].fd, (char *)rb + have[k], sizeof rb - 8 - have[k]);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                die("raw pipeline: read");
            if (r == 0) {
                close(pfd[k].fd);
                pfd[k].fd = -1;
                open--;
                continue;
            }
            size_t bytes = have[k] + (size_t)r, items = bytes / 8;
            for (size_t i = 0; i < items; i++)
                s += rb[i];
            got += items;
            have[k] = bytes - items * 8;
            memcpy(part[k], (char *)rb + items * 8, have[k]);
        }
    }
    for (int k = 0; k <= workers; k++)
        waitpid(pids[k], NULL, 0);
    double t = bench_now() - t0;
    if (got != n)
        die("raw pipeline: items lost");
    *sum = s;
    return t;
}
