/* builtins/chunks.c — Chunks: a source cutting [0, total) into ranges
 * (first, count) for a parallel group that works on a shared array in
 * place (mpx/shared.h).  Only the two numbers travel; the array does not.
 * The size rule for chunk 0 is the header's (mpx/builtins/sources.h). */
#include <stdint.h>
#include <unistd.h>

#include "graph/source.h"
#include "mpx.h"

typedef struct chunks_args {
    source_opts_t opts; /* first: mpx_node_set_index writes it */
    uint64_t total, chunk; /* chunk > 0, both <= INT64_MAX */
} chunks_args_t;

static int chunks_setup(mpx_stage_t *st)
{
    const chunks_args_t *a = mpx_args(st);
    const bool index = a->opts.index;
    uint64_t n = a->total / a->chunk + (a->total % a->chunk != 0);
    int rc = mpx_progress_total(st, n);
    if (rc != 0)
        return rc;
    /* first < total <= INT64_MAX, so first + chunk cannot wrap a uint64. */
    uint64_t first = 0;
    for (uint64_t i = 0; i < n; i++, first += a->chunk) {
        int64_t range[2] = {(int64_t)first,
                            (int64_t)(a->total - first < a->chunk ? a->total - first : a->chunk)};
        mpx_part_t parts[2] = {{&range[0], sizeof range[0]}, {&range[1], sizeof range[1]}};
        if ((rc = source_index(st, index, i)) != 0 || (rc = mpx_put_parts(st, parts, 2)) != 0)
            return rc;
    }
    return 0;
}

static const mpx_stage_def_t chunks_def = {
    .name = "chunks", .args_size = sizeof(chunks_args_t), .setup = chunks_setup};

size_t mpx_chunks_size(size_t total, size_t chunk)
{
    if (chunk > 0)
        return chunk;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    size_t cpus = online > 0 ? (size_t)online : 1;
    size_t pieces = MPX_CHUNKS_PER_CPU * cpus;
    size_t size = total / pieces + (total % pieces != 0);
    if (size < MPX_CHUNKS_MIN)
        size = MPX_CHUNKS_MIN;
    /* size <= total / 16 + 1 here (or MPX_CHUNKS_MIN), far from SIZE_MAX:
     * rounding up cannot wrap. */
    return (size + MPX_CHUNKS_ALIGN - 1) / MPX_CHUNKS_ALIGN * MPX_CHUNKS_ALIGN;
}

mpx_node_t *mpx_chunks(size_t total, size_t chunk)
{
    /* The parts are int64: a size_t above INT64_MAX would come out
     * negative, and is most often a negative number passed by mistake. */
    if (total > INT64_MAX)
        return mpx_invalid("mpx_chunks: total %zu is more than INT64_MAX (a negative value "
                           "converted to size_t?)",
                           total);
    if (chunk > INT64_MAX)
        return mpx_invalid("mpx_chunks: chunk %zu is more than INT64_MAX (a negative value "
                           "converted to size_t?)",
                           chunk);
    return source_stage(&chunks_def,
                        &(chunks_args_t){.total = total, .chunk = mpx_chunks_size(total, chunk)});
}
