/* tests/test_meta.c — per-item meta: set before put, carried with exactly
 * that item through serial, parallel and broadcast sections, binary-safe,
 * each item's own, and the current meta while processing. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "stages.h"

/* The binary value the source attaches to item v: NULs and high bytes. */
static size_t blob_of(int64_t v, unsigned char *out)
{
    size_t n = 1 + (size_t)(v % 13);
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(i % 3 == 0 ? 0 : (v * 31 + (int64_t)i * 7) & 0xff);
    return n;
}

static int tagged_setup(mpx_stage_t *st)
{
    int64_t n = *(const int64_t *)mpx_args(st);
    for (int64_t v = 0; v < n; v++) {
        unsigned char blob[16];
        char id[32];
        snprintf(id, sizeof id, "item-%lld", (long long)v);
        int rc = mpx_meta_set_str(st, "id", id);
        if (!rc)
            rc = mpx_meta_set(st, "blob", blob, blob_of(v, blob));
        /* Only even items carry "even": no key may leak to the next item. */
        if (!rc)
            rc = v % 2 == 0 ? mpx_meta_set_i64(st, "even", v) : (mpx_meta_del(st, "even"), 0);
        if (!rc)
            rc = mpx_put_i64(st, v);
        if (rc)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Tagged = {.name = "tagged", .args_size = sizeof(int64_t),
                                       .setup = tagged_setup};

/* Checks that the current meta is the item's own, then adds a key named
 * after itself (args: a one-letter name) and passes the item on. */
static int visit(mpx_stage_t *st, mpx_item_t *it)
{
    const char *me = mpx_args(st);
    char want[32];
    snprintf(want, sizeof want, "item-%lld", (long long)mpx_item_i64(it));
    const char *id = mpx_meta_str(st, "id");
    if (!id || strcmp(id, want) != 0 || strcmp(mpx_item_meta_str(it, "id"), want) != 0)
        return mpx_fail(st, "item %s arrived with meta id %s", want, id ? id : "(none)");
    if (mpx_meta_count(st) != mpx_item_meta_count(it))
        return mpx_fail(st, "current meta differs from the item's");
    if (mpx_meta_get(st, me, NULL))
        return mpx_fail(st, "key %s left over from an earlier item", me);
    char path[64] = "";
    const char *before = mpx_meta_str(st, "path");
    snprintf(path, sizeof path, "%s%s", before ? before : "", me);
    int rc = mpx_meta_set_str(st, "path", path);
    if (!rc)
        rc = mpx_meta_set_str(st, me, "visited");
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Visit = {.name = "visit", .args_size = 2, .process = visit};

static mpx_node_t *visit_node(const char *name) { return mpx_stage(&Visit, name); }

/* S(tagged, P(a, S(b, c)), B(d, P(e, f)), g): every item's "path" tells
 * which stages it went through, in order; its other keys say the same. */
static void meta_through_graph(void)
{
    const int64_t n = 3000;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Tagged, &n),
                            MPX_P(visit_node("a"), MPX_S(visit_node("b"), visit_node("c"))),
                            MPX_B(visit_node("d"), MPX_P(visit_node("e"), visit_node("f"))),
                            visit_node("g"));
    int64_t items = 0, bad = 0;
    int copies[3000] = {0};
    /* Per item, how many of its copies went through d and through e or f,
     * and the prefix of each copy's path: the broadcast hands one copy to
     * each branch, after the item took one way through P(a, S(b, c)). */
    int via_d[3000] = {0}, via_ef[3000] = {0};
    char first_way[3000] = {0};
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        REQUIRE(v >= 0 && v < n, "value %lld", (long long)v);
        copies[v]++;
        items++;
        char want[32];
        snprintf(want, sizeof want, "item-%lld", (long long)v);
        const char *id = mpx_item_meta_str(it, "id");
        bad += !id || strcmp(id, want) != 0;
        unsigned char blob[16];
        size_t len, wl = blob_of(v, blob);
        const void *got = mpx_item_meta(it, "blob", &len);
        bad += !got || len != wl || memcmp(got, blob, wl) != 0;
        int64_t even;
        int rc = mpx_item_meta_i64(it, "even", &even);
        bad += v % 2 == 0 ? rc != 0 || even != v : rc != MPX_EINVAL;
        const char *path = mpx_item_meta_str(it, "path");
        bad += !path || !(strcmp(path, "adg") == 0 || strcmp(path, "bcdg") == 0 ||
                          strcmp(path, "aeg") == 0 || strcmp(path, "afg") == 0 ||
                          strcmp(path, "bceg") == 0 || strcmp(path, "bcfg") == 0);
        if (path) {
            via_d[v] += strchr(path, 'd') != NULL;
            via_ef[v] += strpbrk(path, "ef") != NULL;
            if (!first_way[v])
                first_way[v] = path[0];
            else
                bad += first_way[v] != path[0];
        }
        for (const char *p = path ? path : ""; *p; p++) {
            char key[2] = {*p, 0};
            const char *val = mpx_item_meta_str(it, key);
            bad += !val || strcmp(val, "visited") != 0;
        }
        /* id, blob, path, one key per stage, and "even" on even items */
        bad += mpx_item_meta_count(it) != 3 + strlen(path ? path : "") + (v % 2 == 0);
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(items, 2 * n);
    CHECK_EQ(bad, 0);
    for (int64_t v = 0; v < n; v++)
        if (copies[v] != 2) {
            CHECK_EQ(copies[v], 2);
            break;
        }
    for (int64_t v = 0; v < n; v++)
        if (via_d[v] != 1 || via_ef[v] != 1) {
            CHECK(false, "item %lld: %d copies through d, %d through e or f (one each wanted)",
                  (long long)v, via_d[v], via_ef[v]);
            break;
        }
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* The meta API in a stage: set, overwrite, delete, clear, enumerate. */
static int api(mpx_stage_t *st, mpx_item_t *it)
{
    const char *err = NULL;
    char longkey[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    size_t n;
    const char *k;
    const void *v;
    if (mpx_meta_set(st, longkey, "x", 1) != MPX_EINVAL)
        err = "a 299-byte key was accepted";
    else if (mpx_meta_set(st, "", "x", 1) != MPX_EINVAL)
        err = "an empty key was accepted";
    else if (mpx_meta_set(st, "empty", NULL, 0) != 0 || !mpx_meta_get(st, "empty", &n) || n != 0)
        err = "an empty value was refused";
    else if (mpx_meta_set_str(st, "k", "one") || mpx_meta_set_str(st, "k", "two") ||
             strcmp(mpx_meta_str(st, "k"), "two") != 0)
        err = "overwrite";
    else if (mpx_meta_count(st) != mpx_item_meta_count(it) + 2)
        err = "count after set";
    else if (mpx_meta_at(st, mpx_meta_count(st) - 1, &k, &v, &n) != 0 || strcmp(k, "k") != 0 ||
             n != 3 || memcmp(v, "two", 3) != 0)
        err = "enumeration";
    else if (mpx_meta_del(st, "k") != 0 || mpx_meta_get(st, "k", NULL) ||
             mpx_meta_del(st, "k") != MPX_EINVAL)
        err = "delete";
    else if (mpx_meta_at(st, 99, &k, &v, &n) != MPX_ERANGE)
        err = "enumeration out of range";
    if (err)
        return mpx_fail(st, "%s", err);
    /* The input item's own meta is unchanged by all this. */
    if (mpx_item_meta(it, "empty", NULL) || !mpx_item_meta(it, "i", NULL))
        return mpx_fail(st, "the input item's meta changed");
    if (mpx_item_i64(it) % 2) {
        mpx_meta_clear(st);
        if (mpx_meta_count(st) != 0)
            return mpx_fail(st, "clear");
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Api = {.name = "api", .process = api};

static void meta_api(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 50), mpx_stage(&Api, NULL));
    int64_t items = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it), i;
        if (v % 2) {
            CHECK_EQ(mpx_item_meta_count(it), 0);
        } else {
            CHECK(mpx_item_meta_i64(it, "i", &i) == 0 && i == v, "i");
            CHECK(mpx_item_meta(it, "empty", NULL) != NULL, "empty value lost");
            CHECK(mpx_item_meta(it, "k", NULL) == NULL, "deleted key came back");
        }
        items++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(items, 50);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Meta set in setup stays across puts until changed; teardown starts
 * with empty meta. */
static int sticky_setup(mpx_stage_t *st)
{
    if (mpx_meta_set_str(st, "run", "r1") != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (mpx_put_i64(st, i))
            return -1;
    if (mpx_meta_set_str(st, "run", "r2") != 0)
        return -1;
    return mpx_put_i64(st, 3);
}
static int sticky_teardown(mpx_stage_t *st)
{
    return mpx_put_i64(st, mpx_meta_count(st) == 0 ? 100 : -100);
}
static const mpx_stage_def_t Sticky = {.name = "sticky", .setup = sticky_setup,
                                       .teardown = sticky_teardown};

static void meta_in_setup_and_teardown(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Sticky, NULL));
    mpx_item_t *it;
    int64_t n = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        const char *run = mpx_item_meta_str(it, "run");
        if (v < 3)
            CHECK(run && strcmp(run, "r1") == 0, "item %lld", (long long)v);
        else if (v == 3)
            CHECK(run && strcmp(run, "r2") == 0, "item 3");
        else
            CHECK(v == 100 && !run, "teardown meta");
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 5);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Thousands of keys, set, changed, deleted and set again, in the
 * stage's meta (an index finds them once there are many; a delete moves
 * the entries after it).  Every key reads back what was last set, in the
 * stage and in the item it put. */
enum { MANY_KEYS = 4000 };
static int64_t many_expected(int i, bool *present)
{
    *present = !(i % 5 == 0 && i % 10 != 0);
    return i % 10 == 0 ? -i : i % 3 == 0 ? i + 100000 : i;
}
static int many_setup(mpx_stage_t *st)
{
    char key[16];
    for (int pass = 0; pass < 4; pass++)
        for (int i = 0; i < MANY_KEYS; i++) {
            snprintf(key, sizeof key, "k%d", i);
            int rc = 0;
            if (pass == 0)
                rc = mpx_meta_set_i64(st, key, i);
            else if (pass == 1 && i % 3 == 0)
                rc = mpx_meta_set_i64(st, key, i + 100000);
            else if (pass == 2 && i % 5 == 0)
                rc = mpx_meta_del(st, key);
            else if (pass == 3 && i % 10 == 0)
                rc = mpx_meta_set_i64(st, key, -i);
            if (rc != 0)
                return mpx_fail(st, "pass %d, %s: %s", pass, key, mpx_strerror(rc));
        }
    for (int i = 0; i < MANY_KEYS; i++) {
        bool present;
        int64_t want = many_expected(i, &present), v = 0;
        snprintf(key, sizeof key, "k%d", i);
        int rc = mpx_meta_i64(st, key, &v);
        if (present ? rc != 0 || v != want : rc != MPX_EINVAL)
            return mpx_fail(st, "%s reads %lld (rc %d)", key, (long long)v, rc);
    }
    if (mpx_meta_get(st, "k4000", NULL) || mpx_meta_get(st, "", NULL))
        return mpx_fail(st, "a key never set is found");
    int rc = mpx_put_i64(st, (int64_t)mpx_meta_count(st));
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t ManyKeys = {.name = "manykeys", .setup = many_setup};

static void meta_with_many_keys(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&ManyKeys, NULL));
    mpx_item_t *it = mpx_graph_next(g);
    REQUIRE(it, "an item: %s", mpx_graph_error(g));
    int64_t present = 0;
    for (int i = 0; i < MANY_KEYS; i++) {
        bool there;
        int64_t want = many_expected(i, &there), v = 0;
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        present += there;
        int rc = mpx_item_meta_i64(it, key, &v);
        CHECK(there ? rc == 0 && v == want : rc != 0, "%s: %lld (rc %d)", key, (long long)v, rc);
    }
    CHECK_EQ(mpx_item_i64(it), present);
    CHECK_EQ((int64_t)mpx_item_meta_count(it), present);
    CHECK(mpx_graph_next(g) == NULL, "one item");
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(meta_through_graph),
        TEST_CASE(meta_api),
        TEST_CASE(meta_in_setup_and_teardown),
        TEST_CASE(meta_with_many_keys),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
