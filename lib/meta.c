/* lib/meta.c — the stage's current meta (see meta.h). */
#include "meta.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"
#include "wire.h"

static void drop_entries(meta_cur_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->ents[i].owned);
    m->n = 0;
    m->indexed = false;
}

void meta_cur_reset(meta_cur_t *m, const uint8_t *blk, uint32_t size, uint16_t n)
{
    if (m->dirty)
        drop_entries(m);
    m->blk = blk;
    m->blk_size = size;
    m->blk_n = n;
    m->dirty = false;
}

void meta_cur_free(meta_cur_t *m)
{
    drop_entries(m);
    free(m->ents);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int reserve(meta_cur_t *m, size_t n)
{
    if (n <= m->cap)
        return 0;
    size_t cap = m->cap ? 2 * m->cap : 8;
    while (cap < n)
        cap *= 2;
    meta_ent_t *e = realloc(m->ents, cap * sizeof *e);
    if (!e)
        return MPX_ENOMEM;
    m->ents = e;
    m->cap = cap;
    return 0;
}

/* Turn the clean block into entries that point into it. */
static int materialize(meta_cur_t *m)
{
    if (m->dirty)
        return 0;
    if (reserve(m, m->blk_n) != 0)
        return MPX_ENOMEM;
    m->n = 0;
    m->indexed = false;
    for (uint16_t i = 0; i < m->blk_n; i++) {
        meta_ent_t *e = &m->ents[m->n++];
        const void *val;
        wire_meta_at(m->blk, m->blk_size, m->blk_n, i, &e->key, &val, &e->vlen);
        e->val = val;
        e->klen = strlen(e->key);
        e->owned = NULL;
    }
    m->dirty = true;
    return 0;
}

/* Below this many entries a scan is as quick as hashing the key. */
#define META_INDEX_MIN 16

static size_t key_hash(const char *key, size_t klen)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (uint8_t)key[i]) * 0x100000001b3u;
    return (size_t)(h ^ (h >> 32));
}

static void index_put(meta_cur_t *m, size_t i)
{
    size_t mask = m->nslots - 1;
    size_t s = key_hash(m->ents[i].key, m->ents[i].klen) & mask;
    while (m->slots[s])
        s = (s + 1) & mask;
    m->slots[s] = (uint32_t)(i + 1);
}

/* Index ents[0..n) in a table with room for `want` entries; false when
 * out of memory (lookups then scan). */
static bool index_build(meta_cur_t *m, size_t want)
{
    size_t nslots = 64;
    while (nslots < 2 * want)
        nslots *= 2;
    if (nslots != m->nslots) {
        uint32_t *slots = malloc(nslots * sizeof *slots);
        if (!slots)
            return false;
        free(m->slots);
        m->slots = slots;
        m->nslots = nslots;
    }
    memset(m->slots, 0, m->nslots * sizeof *m->slots);
    for (size_t i = 0; i < m->n; i++)
        index_put(m, i);
    m->indexed = true;
    return true;
}

/* The entry of `key`, through the index when there is one. */
static meta_ent_t *lookup(const meta_cur_t *m, const char *key, size_t klen)
{
    if (m->indexed) {
        size_t mask = m->nslots - 1;
        for (size_t s = key_hash(key, klen) & mask; m->slots[s]; s = (s + 1) & mask) {
            meta_ent_t *e = &m->ents[m->slots[s] - 1];
            if (e->klen == klen && memcmp(e->key, key, klen) == 0)
                return e;
        }
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->ents[i].klen == klen && memcmp(m->ents[i].key, key, klen) == 0)
            return &m->ents[i];
    return NULL;
}

/* The same for a change, building the index first when it is due (a
 * reader of a const meta only uses one). */
static meta_ent_t *find(meta_cur_t *m, const char *key, size_t klen)
{
    if (!m->indexed && m->n >= META_INDEX_MIN)
        (void)index_build(m, m->n);
    return lookup(m, key, klen);
}

int meta_cur_set(meta_cur_t *m, const char *key, const void *val, size_t vlen)
{
    if (!key || (!val && vlen))
        return MPX_EINVAL;
    size_t klen = strlen(key);
    if (klen == 0 || klen > WIRE_KEY_MAX)
        return MPX_EINVAL;
    if (vlen > UINT32_MAX - 64)
        return MPX_ERANGE;
    if (materialize(m) != 0)
        return MPX_ENOMEM;
    char *copy = malloc(klen + 1 + vlen + 1);
    if (!copy)
        return MPX_ENOMEM;
    memcpy(copy, key, klen + 1);
    if (vlen)
        memcpy(copy + klen + 1, val, vlen);
    copy[klen + 1 + vlen] = '\0';
    meta_ent_t *e = find(m, key, klen);
    if (!e) {
        if (m->n >= UINT16_MAX || reserve(m, m->n + 1) != 0) {
            free(copy);
            return m->n >= UINT16_MAX ? MPX_ERANGE : MPX_ENOMEM;
        }
        e = &m->ents[m->n++];
        e->key = copy;
        e->klen = klen;
        /* Past half full the table grows (a rebuild); failing that,
         * lookups scan until the next build. */
        if (m->indexed && 2 * m->n > m->nslots && !index_build(m, 2 * m->n))
            m->indexed = false;
        else if (m->indexed)
            index_put(m, m->n - 1);
    } else {
        free(e->owned);
    }
    e->key = copy;
    e->klen = klen;
    e->val = copy + klen + 1;
    e->vlen = vlen;
    e->owned = copy;
    return 0;
}

const void *meta_cur_get(const meta_cur_t *m, const char *key, size_t *vlen)
{
    if (!key)
        return NULL;
    if (!m->dirty)
        return m->blk_n ? wire_meta_find(m->blk, m->blk_size, m->blk_n, key, vlen) : NULL;
    const meta_ent_t *e = lookup(m, key, strlen(key));
    if (!e)
        return NULL;
    if (vlen)
        *vlen = e->vlen;
    return e->val;
}

int meta_cur_del(meta_cur_t *m, const char *key)
{
    if (!key || !meta_cur_get(m, key, NULL))
        return MPX_EINVAL;
    if (materialize(m) != 0)
        return MPX_ENOMEM;
    meta_ent_t *e = find(m, key, strlen(key));
    free(e->owned);
    size_t i = (size_t)(e - m->ents);
    memmove(e, e + 1, (m->n - i - 1) * sizeof *e);
    m->n--;
    m->indexed = false; /* the entries after it moved */
    return 0;
}

size_t meta_cur_count(const meta_cur_t *m)
{
    return m->dirty ? m->n : m->blk_n;
}

int meta_cur_at(const meta_cur_t *m, size_t i, const char **key, const void **val,
                size_t *vlen)
{
    if (!m->dirty)
        return wire_meta_at(m->blk, m->blk_size, m->blk_n, i, key, val, vlen);
    if (i >= m->n)
        return MPX_ERANGE;
    if (key)
        *key = m->ents[i].key;
    if (val)
        *val = m->ents[i].val;
    if (vlen)
        *vlen = m->ents[i].vlen;
    return 0;
}

size_t meta_cur_size(const meta_cur_t *m)
{
    if (!m->dirty)
        return m->blk_size;
    size_t s = 0;
    for (size_t i = 0; i < m->n; i++)
        s += wire_meta_entry_size(m->ents[i].klen, m->ents[i].vlen);
    return s;
}

uint16_t meta_cur_n(const meta_cur_t *m)
{
    return m->dirty ? (uint16_t)m->n : m->blk_n;
}

void meta_cur_encode(const meta_cur_t *m, uint8_t *dst)
{
    if (!m->dirty) {
        if (m->blk_size)
            memcpy(dst, m->blk, m->blk_size);
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        const meta_ent_t *e = &m->ents[i];
        wire_meta_entry_put(dst, e->key, e->klen, e->val, e->vlen);
        dst += wire_meta_entry_size(e->klen, e->vlen);
    }
}

/* One value as a reader would want it in a message: printable bytes as a
 * quoted string, eight other bytes as the int64 they most likely are. */
static size_t describe_value(char *buf, size_t cap, const uint8_t *v, size_t len)
{
    bool text = len > 0;
    for (size_t i = 0; i < len && text; i++)
        text = v[i] >= 0x20 && v[i] < 0x7f;
    if (text)
        return (size_t)snprintf(buf, cap, "\"%.*s%s\"", len > 60 ? 60 : (int)len, (const char *)v,
                                len > 60 ? "..." : "");
    if (len == 8) {
        int64_t x;
        memcpy(&x, v, 8);
        return (size_t)snprintf(buf, cap, "%lld", (long long)x);
    }
    return (size_t)snprintf(buf, cap, "<%zu bytes>", len);
}

size_t meta_describe(const uint8_t *blk, uint32_t size, uint16_t n, char *buf, size_t cap)
{
    size_t len = 0;
#define ADD(expr)                                                                          \
    do {                                                                                   \
        size_t w_ = (expr);                                                                \
        len = len + w_ < cap ? len + w_ : (cap ? cap - 1 : 0);                            \
    } while (0)
    ADD((size_t)snprintf(buf, cap, "{"));
    for (size_t i = 0; i < n && len + 1 < cap; i++) {
        const char *key;
        const void *val;
        size_t vlen;
        if (wire_meta_at(blk, size, n, i, &key, &val, &vlen) != 0)
            break;
        ADD((size_t)snprintf(buf + len, cap - len, "%s%s: ", i ? ", " : "", key));
        ADD(describe_value(buf + len, cap - len, val, vlen));
    }
    ADD((size_t)snprintf(buf + len, cap - len, "}"));
#undef ADD
    return len;
}

void meta_describe_item(uint64_t no, const uint8_t *blk, uint32_t size, uint16_t n, bool cut,
                        char *buf, size_t cap)
{
    int w = snprintf(buf, cap, "item %llu%s", (unsigned long long)no,
                     cut ? " (meta too large to show)" : "");
    if (!cut && n && w > 0 && (size_t)w + 1 < cap) {
        buf[w++] = ' ';
        meta_describe(blk, size, n, buf + w, cap - (size_t)w);
    }
}
