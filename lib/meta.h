/* lib/meta.h — the current meta of a stage: what the next put carries.
 *
 * While a stage processes an item, the current meta is that item's meta
 * block, untouched and unparsed; only when the stage changes it is the
 * block turned into a list of entries (still pointing into the received
 * message, which outlives the callback).  A put of untouched meta is one
 * memcpy of the block.
 */
#ifndef MPX_LIB_META_H
#define MPX_LIB_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct meta_ent {
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
    void *owned; /* malloc'd key+value, or NULL when pointing into blk */
} meta_ent_t;

typedef struct meta_cur {
    const uint8_t *blk; /* clean form: an encoded block */
    uint32_t blk_size;
    uint16_t blk_n;
    bool dirty;         /* entries below are the truth */
    meta_ent_t *ents;
    size_t n, cap;
    /* A hash index of the entries (slot: entry + 1, 0 empty), kept only
     * once there are many: finding a key by scanning made setting k keys
     * cost k*k/2 comparisons (65535 keys: minutes).  Dropped when entries
     * move (a delete, a reset) and built again by the next lookup. */
    uint32_t *slots;
    size_t nslots;  /* a power of two, at least twice the entries indexed */
    bool indexed;   /* slots describe ents[0..n) */
} meta_cur_t;

/* Start from an encoded block (NULL/0/0 for empty). */
void meta_cur_reset(meta_cur_t *m, const uint8_t *blk, uint32_t size, uint16_t n);
void meta_cur_free(meta_cur_t *m);

int meta_cur_set(meta_cur_t *m, const char *key, const void *val, size_t vlen);
const void *meta_cur_get(const meta_cur_t *m, const char *key, size_t *vlen);
int meta_cur_del(meta_cur_t *m, const char *key);
size_t meta_cur_count(const meta_cur_t *m);
int meta_cur_at(const meta_cur_t *m, size_t i, const char **key, const void **val,
                size_t *vlen);

/* Encoded size and entry count of the current meta, and the encoding. */
size_t meta_cur_size(const meta_cur_t *m);
uint16_t meta_cur_n(const meta_cur_t *m);
void meta_cur_encode(const meta_cur_t *m, uint8_t *dst);

/* An encoded meta block as text for messages ("{id: 7, name: \"a\"}"),
 * cut to fit `cap`; returns the length written. */
size_t meta_describe(const uint8_t *blk, uint32_t size, uint16_t n, char *buf, size_t cap);
/* "item 42 {id: 41}": an item's number at a stage and its meta ("item
 * 42" without meta; `cut`: the meta was too large to keep). */
void meta_describe_item(uint64_t no, const uint8_t *blk, uint32_t size, uint16_t n, bool cut,
                        char *buf, size_t cap);

#endif
