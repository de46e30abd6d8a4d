/* lib/item.c — reading an item: its parts, typed views, and its meta.
 * Items are views of validated records (lib/wire.c), so nothing here
 * re-checks the encoding. */
#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"
#include "wire.h"

size_t mpx_item_parts(const mpx_item_t *it) { return it ? it->nparts : 0; }

const void *mpx_item_data(const mpx_item_t *it, size_t part)
{
    return it && part < it->nparts ? it->parts[part].data : NULL;
}

size_t mpx_item_size(const mpx_item_t *it, size_t part)
{
    return it && part < it->nparts ? it->parts[part].size : 0;
}

static int get8(const mpx_item_t *it, size_t part, void *out)
{
    if (!it || !out)
        return MPX_EINVAL;
    if (part >= it->nparts || it->parts[part].size != 8)
        return MPX_ERANGE;
    memcpy(out, it->parts[part].data, 8);
    return 0;
}

int mpx_item_get_i64(const mpx_item_t *it, size_t part, int64_t *out) { return get8(it, part, out); }
int mpx_item_get_f64(const mpx_item_t *it, size_t part, double *out) { return get8(it, part, out); }

int64_t mpx_item_i64(const mpx_item_t *it)
{
    int64_t v = 0;
    return get8(it, 0, &v) == 0 ? v : 0;
}

double mpx_item_f64(const mpx_item_t *it)
{
    double v = 0;
    return get8(it, 0, &v) == 0 ? v : 0.0;
}

const char *mpx_item_str(const mpx_item_t *it)
{
    return it && it->nparts ? (const char *)it->parts[0].data : "";
}

const void *mpx_item_meta(const mpx_item_t *it, const char *key, size_t *size)
{
    if (!it || !key || !it->nmeta)
        return NULL;
    return wire_meta_find(it->meta, it->meta_size, it->nmeta, key, size);
}

const char *mpx_item_meta_str(const mpx_item_t *it, const char *key)
{
    return mpx_item_meta(it, key, NULL);
}

int mpx_item_meta_i64(const mpx_item_t *it, const char *key, int64_t *out)
{
    size_t n;
    const void *v = mpx_item_meta(it, key, &n);
    if (!v || !out)
        return MPX_EINVAL;
    if (n != sizeof *out)
        return MPX_ERANGE;
    memcpy(out, v, sizeof *out);
    return 0;
}

size_t mpx_item_meta_count(const mpx_item_t *it) { return it ? it->nmeta : 0; }

int mpx_item_meta_at(const mpx_item_t *it, size_t i, const char **key, const void **value,
                     size_t *size)
{
    if (!it)
        return MPX_EINVAL;
    return wire_meta_at(it->meta, it->meta_size, it->nmeta, i, key, value, size);
}

/* A copy is one allocation: the item, its part table, then the record. */
mpx_item_t *mpx_item_dup(const mpx_item_t *it)
{
    if (!it)
        return NULL;
    size_t head = sizeof(mpx_item_t) + (size_t)it->nparts * sizeof(mpx_part_t);
    head = (head + 7) & ~(size_t)7; /* parts stay 8-byte aligned */
    uint8_t *mem = malloc(head + it->size);
    if (!mem)
        return NULL;
    mpx_item_t *copy = (mpx_item_t *)(void *)mem;
    uint8_t *rec = mem + head;
    memcpy(rec, it->rec, it->size);
    if (wire_rec_decode(rec, it->size, copy, (mpx_part_t *)(void *)(mem + sizeof *copy)) != 0) {
        free(mem);
        return NULL;
    }
    return copy;
}

void mpx_item_free(mpx_item_t **it)
{
    if (!it)
        return;
    free(*it);
    *it = NULL;
}
