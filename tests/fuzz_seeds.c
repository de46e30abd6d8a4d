/* tests/fuzz_seeds.c — writes the seed corpus of tests/fuzz_wire.c: one
 * file per kind of message, made with the real encoders of lib/wire.h, so
 * that the fuzzer starts from what processes actually send.  Files named
 * bad_* are damaged on purpose and must be rejected; every other one must
 * be accepted (tests/test_fuzz.sh checks both).
 *
 *   fuzz_seeds DIR      (DIR exists; files in it are overwritten)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wire.h"

/* The largest seed; the fuzzer runs with -max_len=4096. */
#define SEED_MAX 4096

typedef struct seed {
    uint64_t buf[SEED_MAX / 8]; /* 8-byte aligned, as a received message */
    size_t len;
} seed_t;

typedef struct meta_kv {
    const char *key;
    const void *val;
    size_t vlen;
} meta_kv_t;

static uint8_t *bytes(seed_t *s) { return (uint8_t *)s->buf; }

static void head(seed_t *s, uint8_t type, uint8_t flags, uint32_t count)
{
    memset(s->buf, 0, sizeof s->buf);
    wire_head_put(bytes(s), &(wire_head_t){.type = type, .flags = flags, .sender = 3, .count = count});
    s->len = WIRE_HEAD;
}

static void payload(seed_t *s, const void *p, size_t n)
{
    memcpy(bytes(s) + s->len, p, n);
    s->len += n;
}

/* Append one item record, as stage.c put_on lays it out; returns where
 * it starts. */
static uint8_t *item(seed_t *s, const meta_kv_t *meta, size_t nmeta, const mpx_part_t *parts,
                     size_t nparts)
{
    size_t meta_size = 0, size = WIRE_REC_HEAD;
    for (size_t i = 0; i < nmeta; i++)
        meta_size += wire_meta_entry_size(strlen(meta[i].key), meta[i].vlen);
    size += meta_size;
    for (size_t i = 0; i < nparts; i++)
        size += wire_part_size(parts[i].size);
    uint8_t *rec = bytes(s) + s->len;
    uint8_t *p = wire_rec_head_put(rec, size, nparts, nmeta, meta_size);
    for (size_t i = 0; i < nmeta; i++) {
        size_t klen = strlen(meta[i].key);
        wire_meta_entry_put(p, meta[i].key, klen, meta[i].val, meta[i].vlen);
        p += wire_meta_entry_size(klen, meta[i].vlen);
    }
    for (size_t i = 0; i < nparts; i++)
        p = wire_part_put(p, parts[i].data, parts[i].size);
    s->len += size;
    return rec;
}

/* Append one short record (no meta, one part), as stage.c put_one lays
 * it out; returns where it starts. */
static uint8_t *short_item(seed_t *s, const void *data, size_t len)
{
    uint8_t *rec = bytes(s) + s->len;
    s->len = (size_t)(wire_short_put(rec, data, len) - bytes(s));
    return rec;
}

static void mark(seed_t *s, uint32_t origin, uint64_t value)
{
    wire_mark_put(bytes(s) + s->len, origin, value, 3);
    s->len += WIRE_MARK_SIZE;
}

static void notice(seed_t *s)
{
    wire_notice_t nt = {2, 1, 0, 2};
    wire_notice_pair_t pairs[2] = {{0, 0, 5}, {3, 0, 9}};
    wire_notice_put(bytes(s) + s->len, &nt, pairs);
    s->len += wire_notice_size(nt.n);
}

static int save(const char *dir, const char *name, const seed_t *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static seed_t s;
    int bad = 0;
    int64_t i64 = -42;
    char big[1500];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    const unsigned char bin[5] = {0, 1, 0, 255, 0};

    /* Items. */
    head(&s, WIRE_DATA, 0, 1);
    item(&s, NULL, 0, (mpx_part_t[]){{"hello", 5}}, 1);
    bad |= save(dir, "data_one_item", &s);

    head(&s, WIRE_DATA, 0, 3);
    item(&s,
         (meta_kv_t[]){{"name", "file.txt", 8}, {"bin", bin, sizeof bin}, {"n", &i64, sizeof i64}},
         3, (mpx_part_t[]){{"key", 3}, {bin, sizeof bin}, {"a longer third part", 19}}, 3);
    item(&s, (meta_kv_t[]){{"empty", NULL, 0}}, 1, NULL, 0);
    item(&s, NULL, 0, (mpx_part_t[]){{"x", 1}, {"yz", 2}}, 2);
    bad |= save(dir, "data_items_meta_parts", &s);

    /* Short records, the common item: among full ones, empty, 8 bytes
     * (a 64-bit integer: no padding after the NUL's word), longer. */
    head(&s, WIRE_DATA, 0, 5);
    short_item(&s, &i64, sizeof i64);
    short_item(&s, "", 0);
    item(&s, (meta_kv_t[]){{"k", "v", 1}}, 1, (mpx_part_t[]){{"full", 4}}, 1);
    short_item(&s, "a short record of some length", 29);
    short_item(&s, big, 100);
    bad |= save(dir, "data_short_items", &s);

    /* A run of int64 (a range's items): first and step, and nothing
     * else; damaged, a body one number short, and the flag with another. */
    const int64_t run[2] = {-5, 3};
    head(&s, WIRE_DATA, WIRE_DATA_ARITH, 1000);
    payload(&s, run, sizeof run);
    bad |= save(dir, "data_arith_run", &s);
    head(&s, WIRE_DATA, WIRE_DATA_ARITH, 2);
    payload(&s, run, 8);
    bad |= save(dir, "bad_arith_short", &s);
    head(&s, WIRE_DATA, WIRE_DATA_ARITH | WIRE_DATA_POOL, 2);
    payload(&s, run, sizeof run);
    bad |= save(dir, "bad_arith_pool", &s);
    /* Packed int64 (the results of a map of integers); damaged, a count
     * one more than the values. */
    const int64_t vals[3] = {42, -1, INT64_MIN};
    head(&s, WIRE_DATA, WIRE_DATA_I64, 3);
    payload(&s, vals, sizeof vals);
    bad |= save(dir, "data_packed_i64", &s);
    head(&s, WIRE_DATA, WIRE_DATA_I64, 4);
    payload(&s, vals, sizeof vals);
    bad |= save(dir, "bad_packed_count", &s);

    head(&s, WIRE_DATA, 0, 2);
    item(&s, NULL, 0, (mpx_part_t[]){{"", 0}}, 1);
    item(&s, NULL, 0, (mpx_part_t[]){{"", 0}, {"", 0}}, 2);
    bad |= save(dir, "data_empty_part", &s);

    head(&s, WIRE_DATA, 0, 1);
    item(&s, (meta_kv_t[]){{"time/map", &i64, sizeof i64}}, 1, (mpx_part_t[]){{big, sizeof big}},
         1);
    bad |= save(dir, "data_large_part", &s);

    /* An item sent again after its consumer died: the same record,
     * flagged. */
    head(&s, WIRE_DATA, 0, 1);
    uint8_t *rec = item(&s, NULL, 0, (mpx_part_t[]){{"again", 5}}, 1);
    uint32_t redo = WIRE_REC_REDO;
    memcpy(rec + 12, &redo, 4);
    bad |= save(dir, "data_redo_item", &s);

    /* A part in the pool: a reference to the fuzzer's held block (the
     * first one allocated), 14 bytes (its byte 14 is a NUL), after a part
     * in the record. */
    head(&s, WIRE_DATA, WIRE_DATA_POOL, 1);
    {
        uint8_t *r = bytes(&s) + s.len;
        size_t size = WIRE_REC_HEAD + wire_part_size(2) + WIRE_POOLED_PART_SIZE;
        uint8_t *p = wire_rec_head_put(r, size, 2, 0, 0);
        uint32_t pooled = WIRE_REC_POOL;
        memcpy(r + 12, &pooled, 4);
        p = wire_part_put(p, "hi", 2);
        wire_part_put_pooled(p, 0, 14);
        s.len += size;
    }
    bad |= save(dir, "data_pooled_part", &s);

    /* Marks travel among items. */
    head(&s, WIRE_DATA, 0, 3);
    item(&s, NULL, 0, (mpx_part_t[]){{"before", 6}}, 1);
    mark(&s, 1, 7);
    item(&s, NULL, 0, (mpx_part_t[]){{"after", 5}}, 1);
    bad |= save(dir, "data_mark", &s);

    /* A notice that an elastic group grew, among items. */
    head(&s, WIRE_DATA, 0, 2);
    notice(&s);
    item(&s, NULL, 0, (mpx_part_t[]){{"after", 5}}, 1);
    bad |= save(dir, "data_notice", &s);

    head(&s, WIRE_EOS, 0, 0);
    bad |= save(dir, "eos", &s);

    /* Damaged on purpose: the last record cut short; a record too many
     * bytes for the count. */
    head(&s, WIRE_DATA, 0, 2);
    item(&s, NULL, 0, (mpx_part_t[]){{"whole", 5}}, 1);
    item(&s, (meta_kv_t[]){{"k", "v", 1}}, 1, (mpx_part_t[]){{"cut short", 9}}, 1);
    s.len -= 8;
    bad |= save(dir, "bad_data_truncated_record", &s);

    head(&s, WIRE_DATA, 0, 1);
    item(&s, NULL, 0, (mpx_part_t[]){{"one", 3}}, 1);
    item(&s, NULL, 0, (mpx_part_t[]){{"extra", 5}}, 1);
    bad |= save(dir, "bad_data_trailing_record", &s);

    /* A short record whose length runs past its size. */
    head(&s, WIRE_DATA, 0, 1);
    rec = short_item(&s, "sixteen bytes!!!", 16);
    uint32_t too_long = 24;
    memcpy(rec + 4, &too_long, 4);
    bad |= save(dir, "bad_data_short_overrun", &s);

    /* Credit: wire_credit_t, exactly EDGE_CREDIT_SIZE with the header. */
    wire_credit_t credit = {64, 1 << 20, 5, 0, 0};
    head(&s, WIRE_CREDIT, 0, 0);
    payload(&s, &credit, sizeof credit);
    bad |= save(dir, "credit", &s);
    head(&s, WIRE_CREDIT, WIRE_CREDIT_CLOSED, 0);
    payload(&s, &credit, sizeof credit);
    bad |= save(dir, "credit_closed", &s);

    /* Control, child -> parent. */
    uint32_t pid = 4242;
    head(&s, WIRE_HELLO, 0, 0);
    payload(&s, &pid, sizeof pid);
    bad |= save(dir, "ctl_hello", &s);

    head(&s, WIRE_READY, 0, 0);
    bad |= save(dir, "ctl_ready", &s);

    uint64_t done[4] = {10, 9, 1, 0};
    head(&s, WIRE_DONE, 0, 0);
    payload(&s, done, sizeof done);
    bad |= save(dir, "ctl_done", &s);

    uint32_t phase = 2;
    head(&s, WIRE_ERROR, 0, 0);
    payload(&s, &phase, sizeof phase);
    payload(&s, "process: bad input", 18);
    bad |= save(dir, "ctl_error", &s);

    wire_stats_t ws = {.state = 2, .nout = 1, .nin = 2, .items_in = 100, .items_out = 99,
                       .now = 123456789, .wait_in = 1000, .progress_total = 100};
    uint64_t pairs[6] = {4, 99, 0, 60, 1, 40};
    head(&s, WIRE_STATS, 0, 0);
    payload(&s, &ws, sizeof ws);
    payload(&s, pairs, sizeof pairs);
    bad |= save(dir, "ctl_stats", &s);

    /* Control, parent -> child. */
    head(&s, WIRE_GO, 0, 0);
    bad |= save(dir, "ctl_go", &s);

    wire_restart_t rs = {.consumer = 4, .gen = 1, .hand_gen = 0, .has_hand = 1, .hand_rec = 17};
    head(&s, WIRE_RESTART, 0, 0);
    payload(&s, &rs, sizeof rs);
    payload(&s, "killed", 6);
    bad |= save(dir, "ctl_restart", &s);

    return bad;
}
