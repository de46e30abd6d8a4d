/* tests/test_wire.c — the wire format on its own: records round-trip with
 * parts and meta intact and aligned, and no damaged or hostile bytes make
 * the decoder read out of bounds or accept a broken record. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lib/meta.h"
#include "lib/wire.h"

/* Encode a record of `nparts` parts and the given meta into buf (8-byte
 * aligned), return its size. */
static size_t encode(uint8_t *buf, const mpx_part_t *parts, size_t nparts, meta_cur_t *m)
{
    size_t meta_size = meta_cur_size(m);
    size_t size = WIRE_REC_HEAD + meta_size;
    for (size_t i = 0; i < nparts; i++)
        size += wire_part_size(parts[i].size);
    uint8_t *p = wire_rec_head_put(buf, size, nparts, meta_cur_n(m), meta_size);
    meta_cur_encode(m, p);
    p += meta_size;
    for (size_t i = 0; i < nparts; i++)
        p = wire_part_put(p, parts[i].data, parts[i].size);
    REQUIRE((size_t)(p - buf) == size, "size mismatch");
    return size;
}

static void roundtrip(void)
{
    static uint64_t store[4096];
    uint8_t *buf = (uint8_t *)store;
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    const unsigned char bin[5] = {0, 1, 0, 255, 0};
    mpx_part_t parts[4] = {{"hello", 5}, {big, sizeof big}, {"", 0}, {bin, sizeof bin}};
    for (size_t nparts = 0; nparts <= 4; nparts++) {
        meta_cur_t m = {0};
        if (nparts % 2) {
            CHECK_EQ(meta_cur_set(&m, "name", "file.txt", 8), 0);
            CHECK_EQ(meta_cur_set(&m, "bin", bin, sizeof bin), 0);
            CHECK_EQ(meta_cur_set(&m, "empty", NULL, 0), 0);
        }
        size_t size = encode(buf, parts, nparts, &m);
        CHECK_EQ(size % 8, 0);
        uint32_t peek_size = 0;
        uint16_t peek_parts = 0;
        CHECK_EQ(wire_rec_peek(buf, size, &peek_size, &peek_parts), 0);
        CHECK_EQ(peek_size, size);
        CHECK_EQ(peek_parts, nparts);
        mpx_item_t it;
        mpx_part_t out[4];
        REQUIRE(wire_rec_decode(buf, (uint32_t)size, &it, out) == 0, "decode");
        CHECK_EQ(mpx_item_parts(&it), nparts);
        for (size_t i = 0; i < nparts; i++) {
            CHECK_EQ(mpx_item_size(&it, i), parts[i].size);
            CHECK(memcmp(mpx_item_data(&it, i), parts[i].data, parts[i].size) == 0, "part %zu", i);
            CHECK(((uintptr_t)mpx_item_data(&it, i) & 7) == 0, "part %zu not aligned", i);
            CHECK(((const char *)mpx_item_data(&it, i))[parts[i].size] == 0, "no NUL after part");
        }
        CHECK(mpx_item_data(&it, nparts) == NULL, "part past the end");
        CHECK_EQ(mpx_item_meta_count(&it), nparts % 2 ? 3 : 0);
        if (nparts % 2) {
            size_t len;
            const void *v = mpx_item_meta(&it, "bin", &len);
            CHECK(v && len == sizeof bin && memcmp(v, bin, len) == 0, "binary meta");
            CHECK(strcmp(mpx_item_meta_str(&it, "name"), "file.txt") == 0, "meta name");
            CHECK(mpx_item_meta(&it, "empty", &len) && len == 0, "empty value");
            CHECK(mpx_item_meta(&it, "nope", NULL) == NULL, "absent key");
            const char *k;
            CHECK(mpx_item_meta_at(&it, 2, &k, NULL, NULL) == 0 && strcmp(k, "empty") == 0, "at");
            CHECK_EQ(mpx_item_meta_at(&it, 3, &k, NULL, NULL), MPX_ERANGE);
        }
        meta_cur_free(&m);
    }
}

/* Meta taken from a decoded block and changed is re-encoded correctly. */
static void meta_edit_roundtrip(void)
{
    static uint64_t a[256], b[256];
    meta_cur_t m = {0};
    meta_cur_set(&m, "a", "1", 1);
    meta_cur_set(&m, "b", "22", 2);
    size_t size = encode((uint8_t *)a, NULL, 0, &m);
    meta_cur_free(&m);
    mpx_item_t it;
    mpx_part_t none[1];
    REQUIRE(wire_rec_decode((uint8_t *)a, (uint32_t)size, &it, none) == 0, "decode");
    meta_cur_t cur = {0};
    meta_cur_reset(&cur, it.meta, it.meta_size, it.nmeta);
    size_t len;
    CHECK(meta_cur_get(&cur, "b", &len) && len == 2, "clean get");
    CHECK_EQ(meta_cur_set(&cur, "c", "333", 3), 0);
    CHECK_EQ(meta_cur_del(&cur, "a"), 0);
    CHECK_EQ(meta_cur_set(&cur, "b", "x", 1), 0);
    size = encode((uint8_t *)b, NULL, 0, &cur);
    REQUIRE(wire_rec_decode((uint8_t *)b, (uint32_t)size, &it, none) == 0, "decode edited");
    CHECK_EQ(it.nmeta, 2);
    CHECK(strcmp(mpx_item_meta_str(&it, "b"), "x") == 0, "b");
    CHECK(strcmp(mpx_item_meta_str(&it, "c"), "333") == 0, "c");
    CHECK(mpx_item_meta(&it, "a", NULL) == NULL, "a deleted");
    meta_cur_free(&cur);
}

static void header(void)
{
    uint8_t h[WIRE_HEAD];
    wire_head_put(h, &(wire_head_t){WIRE_DATA, 3, 77, 12, 5});
    wire_head_t out;
    CHECK_EQ(wire_head_get(h, sizeof h, &out), 0);
    CHECK(out.type == WIRE_DATA && out.flags == 3 && out.sender == 77 && out.count == 12 &&
              out.gen == 5,
          "fields");
    CHECK_EQ(wire_head_get(h, sizeof h - 1, &out), MPX_EPROTO);
    h[0] ^= 1;
    CHECK_EQ(wire_head_get(h, sizeof h, &out), MPX_EPROTO);
    h[0] ^= 1;
    h[1] = WIRE_VERSION + 1;
    CHECK_EQ(wire_head_get(h, sizeof h, &out), MPX_EPROTO);
}

/* A valid record cut short, or with any length field changed, or with
 * random bytes flipped, is refused or decoded within its bounds; the
 * copy handed to the decoder is exactly as long as the record so that
 * AddressSanitizer sees any read past it. */
static void damaged_records(void)
{
    static uint64_t store[256];
    uint8_t *good = (uint8_t *)store;
    meta_cur_t m = {0};
    meta_cur_set(&m, "key", "value", 5);
    mpx_part_t parts[2] = {{"abc", 3}, {"0123456789abcdef", 16}};
    size_t size = encode(good, parts, 2, &m);
    meta_cur_free(&m);

    mpx_item_t it;
    mpx_part_t out[8];
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, good, cut);
        uint32_t s;
        uint16_t np;
        CHECK(wire_rec_peek(copy, cut, &s, &np) != 0, "peek accepted %zu of %zu bytes", cut, size);
        free(copy);
    }
    uint64_t accepted = 0, refused = 0;
    uint64_t rng = 12345;
    for (int round = 0; round < 200000; round++) {
        uint8_t *copy = malloc(size);
        memcpy(copy, good, size);
        int flips = 1 + round % 4;
        for (int f = 0; f < flips; f++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            copy[(rng >> 33) % size] ^= (uint8_t)(1u << ((rng >> 20) % 8));
        }
        uint32_t s;
        uint16_t np;
        if (wire_rec_peek(copy, size, &s, &np) == 0 && np <= 8 &&
            wire_rec_decode(copy, s, &it, out) == 0) {
            accepted++;
            for (size_t i = 0; i < it.nparts; i++) {
                const uint8_t *d = it.parts[i].data;
                CHECK(d >= copy && d + it.parts[i].size < copy + s && d[it.parts[i].size] == 0,
                      "part outside its record");
            }
            for (size_t i = 0; i < it.nmeta; i++) {
                const char *k;
                const void *v;
                size_t len;
                CHECK(mpx_item_meta_at(&it, i, &k, &v, &len) == 0 && strlen(k) > 0 &&
                          (const uint8_t *)v + len < copy + s,
                      "meta outside its record");
            }
        } else {
            refused++;
        }
        free(copy);
    }
    printf("damaged records: %llu refused, %llu still well-formed\n", (unsigned long long)refused,
           (unsigned long long)accepted);
    CHECK(refused > accepted, "most damage must be noticed");
}

/* The short record (one part, no meta) decodes to the same item as the
 * full record of that part, 16 bytes smaller; cut short it is refused,
 * and with bits flipped it is refused or decoded within its bounds. */
static void short_records(void)
{
    static uint64_t store[2][256];
    uint8_t *sh = (uint8_t *)store[0], *full = (uint8_t *)store[1];
    char text[1000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    const size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 100, sizeof text};
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        size_t n = lens[l];
        uint8_t *end = wire_short_put(sh, text, n);
        size_t size = (size_t)(end - sh);
        meta_cur_t none = {0};
        size_t fsize = encode(full, &(mpx_part_t){text, n}, 1, &none);
        CHECK_EQ(size, wire_short_size(n));
        CHECK_EQ(size + 16, fsize);
        uint32_t ps = 0;
        uint16_t np = 0;
        CHECK_EQ(wire_rec_peek(sh, size, &ps, &np), 0);
        CHECK_EQ(ps, size);
        CHECK_EQ(np, 1);
        CHECK_EQ(wire_rec_size(sh), size);
        CHECK_EQ(wire_rec_flags(sh), 0);
        mpx_item_t a, b;
        mpx_part_t pa, pb;
        REQUIRE(wire_rec_decode(sh, (uint32_t)size, &a, &pa) == 0, "decode short %zu", n);
        REQUIRE(wire_rec_decode_full(full, (uint32_t)fsize, &b, &pb) == 0, "decode full");
        CHECK_EQ(mpx_item_parts(&a), 1);
        CHECK_EQ(mpx_item_meta_count(&a), 0);
        CHECK_EQ(mpx_item_size(&a, 0), n);
        CHECK(memcmp(mpx_item_data(&a, 0), mpx_item_data(&b, 0), n) == 0, "same bytes");
        CHECK(((uintptr_t)mpx_item_data(&a, 0) & 7) == 0, "aligned");
        CHECK(((const char *)mpx_item_data(&a, 0))[n] == 0, "NUL after the part");
        /* The full decoder takes it too (copies of items decode that way). */
        REQUIRE(wire_rec_decode_full(sh, (uint32_t)size, &b, &pb) == 0, "full decoder");
        CHECK(pb.data == pa.data && pb.size == n, "same view");
        /* Nothing to drop from it: no meta. */
        uint32_t s2 = (uint32_t)size;
        CHECK(!wire_rec_drop_meta(sh, &s2, "k", NULL) && s2 == size, "no meta to drop");
        for (size_t cut = 0; cut < size; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, sh, cut);
            CHECK(wire_rec_peek(copy, cut, &ps, &np) != 0 ||
                      wire_rec_decode(copy, ps, &a, &pa) != 0,
                  "accepted %zu of %zu bytes", cut, size);
            free(copy);
        }
        uint64_t rng = 99 + n;
        for (int round = 0; round < 20000; round++) {
            uint8_t *copy = malloc(size);
            memcpy(copy, sh, size);
            for (int f = 0; f <= round % 3; f++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                copy[(rng >> 33) % size] ^= (uint8_t)(1u << ((rng >> 20) % 8));
            }
            mpx_part_t out[8];
            if (wire_rec_peek(copy, size, &ps, &np) == 0 && np <= 8 &&
                wire_rec_decode(copy, ps, &a, out) == 0)
                for (size_t i = 0; i < a.nparts; i++) {
                    const uint8_t *d = a.parts[i].data;
                    CHECK(d >= copy && d + a.parts[i].size < copy + ps && d[a.parts[i].size] == 0,
                          "part outside its record");
                }
            free(copy);
        }
    }
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(roundtrip),
        TEST_CASE(meta_edit_roundtrip),
        TEST_CASE(header),
        TEST_CASE(damaged_records),
        TEST_CASE(short_records),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
