/* tools/mpx-top.c — a full-screen monitor of a running mpx graph, in the
 * manner of htop.  The graph's parent publishes a JSON snapshot of every
 * stage's figures on the socket "stats" in its runtime directory (schema in
 * the README, "Monitoring"); mpx-top subscribes to it and draws each one as
 * the graph's tree, a row per stage.  It only listens — a SUB socket that
 * never sends and lingers 0 — so attaching and leaving cannot disturb the
 * graph, and any number of monitors may watch one graph at once.
 *
 *     mpx-top [--json] [--interval MS] PID | RUNTIME_DIR
 */
#define _GNU_SOURCE
#define NCURSES_WIDECHAR 1

#include <cJSON.h>
#include <curses.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>
#include <zmq.h>

#define DEFAULT_INTERVAL_MS 250
/* A graph that is starting may have made its directory but not yet bound
 * its socket: wait this long for it before giving up. */
#define ATTACH_WAIT_MS 2000
/* Once the directory or the process is gone, the final snapshot may still
 * be on its way through the socket: --json waits this long for it. */
#define END_GRACE_MS 500
/* Deeper nesting is drawn at this depth, so that names stay visible. */
#define MAX_INDENT_DEPTH 12

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- finding the graph -------------------------------------------------- */

typedef struct target {
    char dir[PATH_MAX];  /* the runtime directory */
    char sock[PATH_MAX]; /* its "stats" socket */
    pid_t pid;           /* the graph's parent, 0 when the name does not say */
} target_t;

typedef enum probe {
    PROBE_OK,        /* a socket this user may connect to */
    PROBE_NO_SOCKET, /* the directory holds no socket (yet) */
    PROBE_DENIED,    /* another user's directory */
    PROBE_BROKEN,    /* anything else; the message says what */
} probe_t;

static void deny_message(const char *dir, char *err, size_t cap)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        snprintf(err, cap, "permission denied: %s", dir);
        return;
    }
    const struct passwd *pw = getpwuid(sb.st_uid);
    snprintf(err, cap,
             "permission denied: %s belongs to %s (uid %u, mode 0%03o); only its owner can attach",
             dir, pw ? pw->pw_name : "another user", (unsigned)sb.st_uid,
             (unsigned)(sb.st_mode & 0777));
}

static probe_t probe_socket(const target_t *t, char *err, size_t cap)
{
    struct stat sb;
    if (stat(t->sock, &sb) != 0) {
        if (errno == EACCES) {
            deny_message(t->dir, err, cap);
            return PROBE_DENIED;
        }
        if (errno == ENOENT) {
            snprintf(err, cap, "%s has no stats socket: not the runtime directory of a running "
                     "graph (or one without monitoring)", t->dir);
            return PROBE_NO_SOCKET;
        }
        snprintf(err, cap, "%s: %s", t->sock, strerror(errno));
        return PROBE_BROKEN;
    }
    if (!S_ISSOCK(sb.st_mode)) {
        snprintf(err, cap, "%s is not a socket", t->sock);
        return PROBE_BROKEN;
    }
    /* Connecting to a unix socket takes write permission on it. */
    if (access(t->sock, R_OK | W_OK) != 0) {
        deny_message(t->dir, err, cap);
        return PROBE_DENIED;
    }
    return PROBE_OK;
}

static bool set_dir(target_t *t, const char *dir)
{
    int a = snprintf(t->dir, sizeof t->dir, "%s", dir);
    int b = snprintf(t->sock, sizeof t->sock, "%s/stats", dir);
    return a >= 0 && (size_t)a < sizeof t->dir && b >= 0 && (size_t)b < sizeof t->sock;
}

/* The pid in a runtime directory's name, mpx-<pid>-XXXXXX; 0 if none. */
static pid_t pid_of_dir(const char *dir)
{
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (strncmp(base, "mpx-", 4) != 0)
        return 0;
    char *end;
    long v = strtol(base + 4, &end, 10);
    return end != base + 4 && *end == '-' && v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

static probe_t target_from_dir(target_t *t, const char *arg, char *err, size_t cap)
{
    char real[PATH_MAX];
    struct stat sb;
    if (!realpath(arg, real) || stat(real, &sb) != 0) {
        if (errno == ENOENT)
            snprintf(err, cap, "%s: no such directory (has the graph ended?)", arg);
        else if (errno == EACCES)
            snprintf(err, cap, "%s: permission denied; only the graph's owner can attach", arg);
        else
            snprintf(err, cap, "%s: %s", arg, strerror(errno));
        return PROBE_BROKEN;
    }
    if (S_ISSOCK(sb.st_mode)) /* the socket itself was named */
        *strrchr(real, '/') = '\0';
    else if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, cap, "%s is not a runtime directory", arg);
        return PROBE_BROKEN;
    }
    if (!set_dir(t, real)) {
        snprintf(err, cap, "%s: path too long", arg);
        return PROBE_BROKEN;
    }
    t->pid = pid_of_dir(t->dir);
    probe_t p = probe_socket(t, err, cap);
    /* Only a directory named like a graph's is worth waiting for. */
    return p == PROBE_NO_SOCKET && !t->pid ? PROBE_BROKEN : p;
}

/* The value of variable `name` in process pid's initial environment ("" if
 * unknown): the graph's parent picked its base directory from its own
 * $XDG_RUNTIME_DIR and $TMPDIR, which need not be ours. */
static void env_of(pid_t pid, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *var = NULL;
    size_t vcap = 0, len = strlen(name);
    while (getdelim(&var, &vcap, '\0', f) > 0)
        if (strncmp(var, name, len) == 0 && var[len] == '=') {
            snprintf(out, cap, "%s", var + len + 1);
            break;
        }
    free(var);
    fclose(f);
}

/* Append s to a list of names in buf, cut off when full. */
static void list_add(char *buf, size_t cap, const char *s)
{
    size_t used = strlen(buf);
    if (snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", s) < 0)
        buf[used] = '\0';
}

static probe_t target_from_pid(target_t *t, pid_t pid, char *err, size_t cap)
{
    /* The places lib/rundir.c tries, as the graph's process and we see them. */
    char their_xdg[PATH_MAX], their_tmp[PATH_MAX];
    env_of(pid, "XDG_RUNTIME_DIR", their_xdg, sizeof their_xdg);
    env_of(pid, "TMPDIR", their_tmp, sizeof their_tmp);
    const char *cand[] = {their_xdg,           their_tmp, getenv("XDG_RUNTIME_DIR"),
                          getenv("TMPDIR"), "/dev/shm", "/tmp"};
    enum { NCAND = sizeof cand / sizeof *cand };
    const char *bases[NCAND];
    size_t nbases = 0;
    for (size_t i = 0; i < NCAND; i++) {
        bool use = cand[i] && cand[i][0] == '/';
        for (size_t j = 0; use && j < nbases; j++)
            use = strcmp(bases[j], cand[i]) != 0;
        if (use)
            bases[nbases++] = cand[i];
    }

    char prefix[32], found[512] = "", why[PATH_MAX + 200] = "";
    snprintf(prefix, sizeof prefix, "mpx-%ld-", (long)pid);
    int nfound = 0;
    probe_t worst = PROBE_BROKEN; /* the most telling failure: denied, then no socket */
    for (size_t i = 0; i < nbases; i++) {
        DIR *d = opendir(bases[i]);
        if (!d)
            continue;
        for (const struct dirent *e; (e = readdir(d));) {
            target_t c = {.pid = pid};
            char dir[PATH_MAX], cerr[sizeof why];
            if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
                snprintf(dir, sizeof dir, "%s/%s", bases[i], e->d_name) >= (int)sizeof dir ||
                !set_dir(&c, dir))
                continue;
            probe_t p = probe_socket(&c, cerr, sizeof cerr);
            if (p == PROBE_OK) {
                if (nfound++ == 0)
                    *t = c;
                list_add(found, sizeof found, c.dir);
            } else if (p == PROBE_DENIED || (p == PROBE_NO_SOCKET && worst != PROBE_DENIED)) {
                worst = p;
                snprintf(why, sizeof why, "%s", cerr);
            }
        }
        closedir(d);
    }
    if (nfound == 1)
        return PROBE_OK;
    if (nfound > 1) {
        snprintf(err, cap, "process %ld runs %d graphs (%s): name the runtime directory to watch",
                 (long)pid, nfound, found);
        return PROBE_BROKEN;
    }
    if (worst != PROBE_BROKEN) {
        snprintf(err, cap, "%s", why);
        return worst;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        snprintf(err, cap, "no process %ld", (long)pid);
    } else if (errno == EPERM) {
        snprintf(err, cap, "process %ld belongs to another user: only its owner can attach to "
                 "its graphs (their runtime directories are private, mode 0700)", (long)pid);
    } else {
        char where[1024] = "";
        for (size_t i = 0; i < nbases; i++)
            list_add(where, sizeof where, bases[i]);
        snprintf(err, cap, "process %ld runs no mpx graph (no mpx-%ld-*/stats in %s)", (long)pid,
                 (long)pid, where);
    }
    return PROBE_BROKEN;
}

/* Find the graph named by the command line, waiting a little for one that
 * is starting.  0, or -1 with the message printed. */
static int find_target(target_t *t, const char *arg)
{
    char err[PATH_MAX + 600];
    pid_t pid = 0;
    if (!strchr(arg, '/')) {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v <= 0 || v > INT_MAX) {
            fprintf(stderr, "mpx-top: '%s' is neither a pid nor a runtime directory "
                    "(a path containing '/')\n", arg);
            return -1;
        }
        pid = (pid_t)v;
    }
    long deadline = mono_ms() + ATTACH_WAIT_MS;
    for (;;) {
        probe_t p = pid ? target_from_pid(t, pid, err, sizeof err)
                        : target_from_dir(t, arg, err, sizeof err);
        if (p == PROBE_OK)
            return 0;
        if (p != PROBE_NO_SOCKET || mono_ms() >= deadline || stop_signal)
            break;
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    fprintf(stderr, "mpx-top: %s\n", err);
    return -1;
}

/* ---- snapshots ----------------------------------------------------------- */

typedef struct snapshot {
    cJSON *doc;           /* the latest valid snapshot; NULL before the first */
    const cJSON **stage;  /* its "stages", by index */
    size_t nstages;
    long got_ms;          /* when it arrived */
} snapshot_t;

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = get(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

/* Keep `doc` as the latest snapshot if it is one: version 1 with an array
 * of stages.  Anything else is ignored (false), so that a malformed
 * message never replaces good figures. */
static bool snapshot_take(snapshot_t *s, cJSON *doc)
{
    const cJSON *stages = get(doc, "stages");
    if (!cJSON_IsObject(doc) || num(doc, "mpx_stats", 0) != 1 || !cJSON_IsArray(stages))
        return false;
    size_t n = (size_t)cJSON_GetArraySize(stages);
    const cJSON **index = malloc((n ? n : 1) * sizeof *index);
    if (!index)
        return false;
    size_t i = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, stages) index[i++] = st;
    cJSON_Delete(s->doc);
    free(s->stage);
    *s = (snapshot_t){doc, index, n, mono_ms()};
    return true;
}

static void snapshot_free(snapshot_t *s)
{
    cJSON_Delete(s->doc);
    free(s->stage);
    *s = (snapshot_t){0};
}

static const cJSON *stage_at(const snapshot_t *s, double i)
{
    return i >= 0 && i < (double)s->nstages && i == (double)(size_t)i ? s->stage[(size_t)i] : NULL;
}

/* ---- the monitor ---------------------------------------------------------- */

typedef enum row_kind { ROW_GROUP, ROW_XCUT, ROW_STAGE, ROW_INSTANCE, ROW_OUTPUT } row_kind_t;

typedef struct row {
    row_kind_t kind;
    int depth;
    const cJSON *obj; /* the group node, xcut, stage (NULL: a bad index),
                         instance, or the "output" object */
    int index;        /* an instance's number */
} row_t;

typedef struct top {
    target_t target;
    void *sub;
    int interval_ms;
    snapshot_t snap;
    bool ended;          /* the final snapshot came */
    const char *gone;    /* why the graph is over without one, or NULL */
    long gone_ms;
    long last_ms;        /* when the last snapshot came, or when we attached */
    unsigned long ignored; /* malformed messages */
    /* the screen */
    bool colors, show_instances;
    int scroll, page;
    row_t *rows;
    size_t nrows, rows_cap;
} top_t;

/* One line on `f`: JSON allows raw newlines only as whitespace, so turning
 * them into spaces keeps the document intact. */
static void print_line(FILE *f, const char *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        putc(data[i] == '\n' || data[i] == '\r' ? ' ' : data[i], f);
    putc('\n', f);
    fflush(f);
}

/* A message as a JSON document, or NULL.  JSON text holds no control
 * bytes but whitespace, nor anything after the value: checking both keeps
 * the --json lines clean, since cJSON lets both through. */
static cJSON *parse(const char *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if ((unsigned char)data[i] < 0x20 && data[i] != '\n' && data[i] != '\r' && data[i] != '\t')
            return NULL;
    const char *end = data;
    cJSON *doc = cJSON_ParseWithLengthOpts(data, size, &end, false);
    while (doc && end < data + size && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (doc && end != data + size) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* Take every message waiting; with `json`, print each valid snapshot.
 * Returns how many valid snapshots came.  After the final one the rest is
 * left unread: the figures stay as the graph ended. */
static int receive(top_t *t, FILE *json)
{
    int n = 0;
    /* Snapshots may come faster than they are parsed (a short interval,
     * a slow machine): a signal must still end the program, and the screen
     * be drawn now and then. */
    for (int taken = 0; !t->ended && !stop_signal && taken < 256; taken++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, t->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        cJSON *doc = parse(zmq_msg_data(&m), zmq_msg_size(&m));
        if (doc && snapshot_take(&t->snap, doc)) {
            if (json)
                print_line(json, zmq_msg_data(&m), zmq_msg_size(&m));
            t->ended = cJSON_IsTrue(get(doc, "ended"));
            t->last_ms = t->snap.got_ms;
            n++;
        } else {
            cJSON_Delete(doc);
            t->ignored++;
        }
        zmq_msg_close(&m);
    }
    return n;
}

/* Why the graph is over although no final snapshot came, or NULL: its
 * parent removes the directory when the graph ends, and a parent killed
 * outright leaves it behind. */
static const char *why_gone(const top_t *t)
{
    struct stat sb;
    if (stat(t->target.sock, &sb) != 0 && errno == ENOENT)
        return "its runtime directory is gone";
    double pid = t->snap.doc ? num(t->snap.doc, "pid", 0) : 0;
    pid_t p = pid > 0 && pid <= INT_MAX ? (pid_t)pid : t->target.pid;
    if (p > 0 && kill(p, 0) != 0 && errno == ESRCH)
        return "its process is gone";
    return NULL;
}

static void check_gone(top_t *t, long now)
{
    if (!t->ended && !t->gone && (t->gone = why_gone(t)))
        t->gone_ms = now;
}

static int run_json(top_t *t)
{
    while (!stop_signal) {
        zmq_pollitem_t item = {t->sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, t->interval_ms) < 0 && errno != EINTR) {
            fprintf(stderr, "mpx-top: %s\n", zmq_strerror(errno));
            return 1;
        }
        int got = receive(t, stdout);
        if (ferror(stdout))
            return 1;
        if (t->ended)
            return 0;
        long now = mono_ms();
        if (!got)
            check_gone(t, now);
        if (t->gone && now - t->gone_ms >= END_GRACE_MS) {
            fprintf(stderr, "mpx-top: the graph ended without a final snapshot (%s)\n", t->gone);
            return 1;
        }
    }
    return 0;
}

/* ---- the screen ------------------------------------------------------------ */

enum { C_GREEN = 1, C_YELLOW, C_RED, C_CYAN, C_MAGENTA };

static attr_t color(const top_t *t, short pair)
{
    return t->colors ? COLOR_PAIR(pair) : A_NORMAL;
}

/* The next character of s, for the screen: its width, with undecodable
 * bytes and control characters turned into a '?'.  Advances s. */
static int next_char(const char **s, size_t *left, mbstate_t *ps, wchar_t *wc)
{
    size_t k = mbrtowc(wc, *s, *left, ps);
    if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
        k = 1;
        *ps = (mbstate_t){0};
        *wc = L'?';
    }
    *s += k;
    *left -= k;
    int w = wcwidth(*wc);
    if (w < 0) {
        *wc = L'?';
        w = 1;
    }
    return w;
}

static int text_width(const char *s)
{
    int w = 0;
    mbstate_t ps = {0};
    wchar_t wc;
    for (size_t left = strlen(s); left;)
        w += next_char(&s, &left, &ps, &wc);
    return w;
}

/* Draw UTF-8 text at (y, x) in a field of w columns, clipped at the right
 * edge of the screen so that a narrow terminal never wraps a row. */
static void text(int y, int x, int w, const char *s, bool right, attr_t attr)
{
    if (w > COLS - x)
        w = COLS - x;
    if (w <= 0 || y < 0 || y >= LINES || x < 0)
        return;
    wchar_t buf[512];
    int used = 0, n = 0;
    mbstate_t ps = {0};
    for (size_t left = strlen(s); left && n < (int)(sizeof buf / sizeof *buf) - 1;) {
        int cw = next_char(&s, &left, &ps, &buf[n]);
        if (used + cw > w)
            break;
        used += cw;
        n++;
    }
    buf[n] = L'\0';
    attron(attr);
    mvaddnwstr(y, x + (right ? w - used : 0), buf, n);
    attroff(attr);
}

/* Columns: a field, then a space.  Returns where the next one starts. */
static int cell(int y, int x, int w, const char *s, bool right, attr_t attr)
{
    text(y, x, w, s, right, attr);
    return x + w + 1;
}

/* v with three significant digits and a unit: 999, 1.23k, 45.6M. */
static void human(char *buf, size_t cap, double v)
{
    static const char units[] = "kMGTPE";
    if (!(v > 0))
        v = 0;
    if (v < 1000) {
        snprintf(buf, cap, v < 10 && v != (double)(long)v ? "%.1f" : "%.0f", v);
        return;
    }
    int u = -1;
    while (v >= 1000 && u < (int)sizeof units - 2) {
        v /= 1000;
        u++;
    }
    snprintf(buf, cap, v < 10 ? "%.2f%c" : v < 100 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* Counts exactly while they fit in 5 digits, then as human(). */
static void count(char *buf, size_t cap, double v)
{
    if (v >= 0 && v < 100000)
        snprintf(buf, cap, "%.0f", v);
    else
        human(buf, cap, v);
}

static void percent(char *buf, size_t cap, double share)
{
    snprintf(buf, cap, "%.0f%%", share > 0 ? (share > 1 ? 100 : 100 * share) : 0);
}

static void elapsed(char *buf, size_t cap, double s)
{
    long tenths = s > 0 && s < 1e9 ? (long)(s * 10) : 0;
    long h = tenths / 36000, m = tenths / 600 % 60, sec = tenths / 10 % 60;
    if (h)
        snprintf(buf, cap, "%ld:%02ld:%02ld", h, m, sec);
    else
        snprintf(buf, cap, "%ld:%02ld.%ld", m, sec, tenths % 10);
}

static attr_t state_attr(const top_t *t, const char *state)
{
    if (strcmp(state, "running") == 0)
        return color(t, C_GREEN);
    if (strcmp(state, "failed") == 0)
        return color(t, C_RED) | A_BOLD;
    if (strcmp(state, "done") == 0)
        return A_DIM;
    return color(t, C_YELLOW); /* starting, draining, teardown: on the way in or out */
}

static void add_row(top_t *t, row_kind_t kind, int depth, const cJSON *obj, int index)
{
    if (t->nrows == t->rows_cap) {
        size_t cap = t->rows_cap ? 2 * t->rows_cap : 64;
        row_t *rows = realloc(t->rows, cap * sizeof *rows);
        if (!rows)
            return; /* the screen shows fewer rows; the next draw tries again */
        t->rows = rows;
        t->rows_cap = cap;
    }
    t->rows[t->nrows++] = (row_t){kind, depth, obj, index};
}

static void add_stage(top_t *t, const cJSON *stage, int depth)
{
    add_row(t, ROW_STAGE, depth, stage, 0);
    if (!t->show_instances || !stage)
        return;
    const cJSON *inst;
    int i = 0;
    cJSON_ArrayForEach(inst, get(stage, "inst")) add_row(t, ROW_INSTANCE, depth + 1, inst, i++);
}

static void add_tree(top_t *t, const cJSON *node, int depth)
{
    if (!cJSON_IsObject(node))
        return;
    if (strcmp(str(node, "kind", ""), "stage") == 0) {
        add_stage(t, stage_at(&t->snap, num(node, "stage", -1)), depth);
        return;
    }
    add_row(t, ROW_GROUP, depth, node, 0);
    const cJSON *c;
    cJSON_ArrayForEach(c, get(node, "children")) add_tree(t, c, depth + 1);
    cJSON_ArrayForEach(c, get(node, "xcuts")) {
        add_row(t, ROW_XCUT, depth + 1, c, 0);
        add_tree(t, get(c, "graph"), depth + 2);
    }
}

static void build_rows(top_t *t)
{
    t->nrows = 0;
    const cJSON *doc = t->snap.doc;
    if (cJSON_IsObject(get(doc, "tree")))
        add_tree(t, get(doc, "tree"), 0);
    else /* no tree to follow: the stages in order */
        for (size_t i = 0; i < t->snap.nstages; i++)
            add_stage(t, t->snap.stage[i], 0);
    if (cJSON_IsObject(get(doc, "output")))
        add_row(t, ROW_OUTPUT, 0, get(doc, "output"), 0);
}

static void row_label(const row_t *r, char *buf, size_t cap)
{
    switch (r->kind) {
    case ROW_GROUP: {
        const char *name = str(r->obj, "name", NULL);
        if (name)
            snprintf(buf, cap, "%s \"%s\"", str(r->obj, "kind", "?"), name);
        else
            snprintf(buf, cap, "%s", str(r->obj, "kind", "?"));
        break;
    }
    case ROW_XCUT: snprintf(buf, cap, "xcut \"%s\"", str(r->obj, "name", "?")); break;
    case ROW_STAGE: snprintf(buf, cap, "%s", r->obj ? str(r->obj, "name", "?") : "?"); break;
    case ROW_INSTANCE: snprintf(buf, cap, "#%d pid %.0f", r->index, num(r->obj, "pid", 0)); break;
    case ROW_OUTPUT: snprintf(buf, cap, "(to the parent)"); break;
    }
}

/* Field widths after the name; the queue takes what is left. */
enum { W_INST = 7, W_STATE = 9, W_COUNT = 7, W_RATE = 8, W_SHARE = 5, W_BAR = 10 };

static void draw_queue(const top_t *t, int y, int x, double depth, double capacity, double dropped)
{
    if (capacity > 0) {
        double f = depth > 0 ? (depth >= capacity ? 1 : depth / capacity) : 0;
        int fill = (int)(f * W_BAR + 0.5);
        if (depth > 0 && fill == 0)
            fill = 1; /* a queue that holds anything never looks empty */
        char bar[W_BAR + 1], d[16], c[16], nums[40];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(W_BAR - fill));
        bar[W_BAR] = '\0';
        attr_t a = color(t, f < 0.5 ? C_GREEN : f < 0.9 ? C_YELLOW : C_RED);
        x = cell(y, x, 1, "[", false, A_NORMAL) - 1;
        x = cell(y, x, W_BAR, bar, false, a) - 1;
        count(d, sizeof d, depth);
        count(c, sizeof c, capacity);
        snprintf(nums, sizeof nums, "] %s/%s", d, c);
        x = cell(y, x, (int)strlen(nums), nums, false, A_NORMAL);
    }
    if (dropped > 0) {
        char s[40], n[16];
        count(n, sizeof n, dropped);
        snprintf(s, sizeof s, "dropped %s", n);
        cell(y, x, (int)strlen(s), s, false, color(t, C_RED));
    }
}

static void draw_row(const top_t *t, int y, const row_t *r, int name_w)
{
    char label[512];
    row_label(r, label, sizeof label);
    int depth = r->depth < MAX_INDENT_DEPTH ? r->depth : MAX_INDENT_DEPTH;
    int indent = 2 * depth < name_w - 4 ? 2 * depth : 0;
    attr_t name_attr = r->kind == ROW_GROUP     ? color(t, C_CYAN)
                       : r->kind == ROW_XCUT    ? color(t, C_MAGENTA)
                       : r->kind == ROW_STAGE   ? A_BOLD
                                                : A_DIM;
    int x = cell(y, indent, name_w - indent, label, false, name_attr);
    if (r->kind == ROW_GROUP || r->kind == ROW_XCUT || !r->obj)
        return;

    const cJSON *o = r->obj;
    char inst[24] = "", in[16], out[16], rate[16], busy[8], blocked[8];
    const char *state = str(o, "state", "");
    if (r->kind == ROW_STAGE) {
        int n = (int)num(o, "instances", 1);
        if (n > 1)
            snprintf(inst, sizeof inst, "%.0f/%d", num(o, "running", 0), n);
        else
            snprintf(inst, sizeof inst, "%d", n);
    }
    count(in, sizeof in, num(o, "in", 0));
    count(out, sizeof out, num(o, "out", 0));
    /* Items handled per second: taken in, or made by a source (no input). */
    rate[0] = '\0';
    if (r->kind == ROW_STAGE)
        human(rate, sizeof rate, num(o, "in", 0) > 0 ? num(o, "in_rate", 0) : num(o, "out_rate", 0));
    busy[0] = blocked[0] = '\0';
    if (r->kind != ROW_OUTPUT) {
        percent(busy, sizeof busy, num(o, "busy", 0));
        percent(blocked, sizeof blocked, num(o, "blocked", 0));
    }
    x = cell(y, x, W_INST, inst, true, A_NORMAL);
    x = cell(y, x, W_STATE, state, false, state_attr(t, state));
    x = cell(y, x, W_COUNT, in, true, A_NORMAL);
    x = cell(y, x, W_COUNT, r->kind == ROW_OUTPUT ? "" : out, true, A_NORMAL);
    x = cell(y, x, W_RATE, rate, true, A_NORMAL);
    x = cell(y, x, W_SHARE, busy, true, A_NORMAL);
    x = cell(y, x, W_SHARE, blocked, true, A_NORMAL);
    draw_queue(t, y, x, num(o, "depth", 0), num(o, "capacity", 0), num(o, "dropped", 0));
}

static void draw_header(const top_t *t, long now)
{
    const cJSON *doc = t->snap.doc;
    char line[PATH_MAX + 64], clock[32];
    snprintf(line, sizeof line, "mpx-top  pid %.0f  %s",
             doc ? num(doc, "pid", t->target.pid) : (double)t->target.pid, t->target.dir);
    text(0, 0, COLS, line, false, A_BOLD);
    if (doc) {
        double s = num(doc, "t", 0);
        if (!t->ended && !t->gone)
            s += (double)(now - t->snap.got_ms) / 1000; /* keep the clock going between snapshots */
        elapsed(clock, sizeof clock, s);
        snprintf(line, sizeof line, "elapsed %s", clock);
        int w = (int)strlen(line);
        if (COLS - w > text_width(t->target.dir) + 20)
            text(0, COLS - w, w, line, false, A_NORMAL);
    }

    int x = 0;
    if (t->ended) {
        const char *outcome = str(doc, "outcome", "ok");
        snprintf(line, sizeof line, "graph ended: %s", outcome);
        attr_t a = strcmp(outcome, "ok") == 0 ? color(t, C_GREEN) : color(t, C_RED);
        x = cell(1, x, text_width(line), line, false, a | A_BOLD);
    } else if (t->gone) {
        snprintf(line, sizeof line, "graph ended: outcome unknown (%s)", t->gone);
        x = cell(1, x, text_width(line), line, false, color(t, C_RED) | A_BOLD);
    } else if (!doc) {
        x = cell(1, x, 30, "waiting for the first snapshot", false, color(t, C_YELLOW));
    } else {
        long quiet = now - t->snap.got_ms;
        double every = num(doc, "interval_ms", DEFAULT_INTERVAL_MS);
        x = cell(1, x, 7, "running", false, color(t, C_GREEN) | A_BOLD);
        if (quiet > 3 * every + 500) {
            snprintf(line, sizeof line, "(no snapshot for %lds)", quiet / 1000);
            x = cell(1, x, (int)strlen(line), line, false, color(t, C_YELLOW));
        }
    }
    if (doc) {
        int procs = 0, running = 0;
        const cJSON *progress = NULL;
        for (size_t i = 0; i < t->snap.nstages; i++) {
            procs += (int)num(t->snap.stage[i], "instances", 0);
            running += (int)num(t->snap.stage[i], "running", 0);
            const cJSON *p = get(t->snap.stage[i], "progress");
            if (!progress && num(p, "total", 0) > 0)
                progress = p;
        }
        snprintf(line, sizeof line, "  %zu stages  %d processes (%d running)", t->snap.nstages,
                 procs, running);
        x = cell(1, x, (int)strlen(line), line, false, A_NORMAL);
        if (progress) {
            snprintf(line, sizeof line, "  progress %.0f%%",
                     100 * num(progress, "done", 0) / num(progress, "total", 1));
            x = cell(1, x, (int)strlen(line), line, false, A_NORMAL);
        }
        const cJSON *pool = get(doc, "pool");
        if (cJSON_IsObject(pool)) {
            char used[16], cap[16];
            count(used, sizeof used, num(pool, "bytes_in_use", 0));
            count(cap, sizeof cap, num(pool, "capacity", 0));
            snprintf(line, sizeof line, "  pool %sB of %sB (%.0f blocks)", used, cap,
                     num(pool, "blocks_in_use", 0));
            x = cell(1, x, (int)strlen(line), line, false, A_NORMAL);
        }
        /* Elastic groups: the budget, and the controller's last decision
         * with its reason (the JSON stream has every one). */
        const cJSON *el = get(doc, "elastic");
        if (cJSON_IsObject(el)) {
            const cJSON *last = get(el, "last");
            int n = cJSON_IsArray(last) ? cJSON_GetArraySize(last) : 0;
            const cJSON *e = n > 0 ? cJSON_GetArrayItem(last, n - 1) : NULL;
            const cJSON *stage = get(e, "stage"), *why = get(e, "reason");
            if (e && cJSON_IsString(stage) && cJSON_IsString(why))
                snprintf(line, sizeof line, "  budget %.0f; at %.1fs '%s' %.0f -> %.0f: %s",
                         num(el, "budget", 0), num(e, "t", 0), stage->valuestring,
                         num(e, "from", 0), num(e, "to", 0), why->valuestring);
            else
                snprintf(line, sizeof line, "  budget %.0f; no change yet", num(el, "budget", 0));
            int w = COLS - x - 1;
            if (w > 0)
                x = cell(1, x, w < (int)strlen(line) ? w : (int)strlen(line), line, false,
                         color(t, C_YELLOW));
        }
    }
    if (t->ignored) {
        snprintf(line, sizeof line, "  (%lu malformed messages ignored)", t->ignored);
        cell(1, x, (int)strlen(line), line, false, A_DIM);
    }
}

static void draw(top_t *t, long now)
{
    erase();
    draw_header(t, now);
    int top = 3, help = LINES >= 8 ? 1 : 0;
    t->page = LINES - top - 1 - help;
    if (t->snap.doc) {
        build_rows(t);
        /* The name column fits the widest name, within reason, and leaves
         * the figures room on a narrow terminal. */
        int name_w = 12;
        for (size_t i = 0; i < t->nrows; i++) {
            char label[512];
            row_label(&t->rows[i], label, sizeof label);
            int d = t->rows[i].depth < MAX_INDENT_DEPTH ? t->rows[i].depth : MAX_INDENT_DEPTH;
            int w = 2 * d + text_width(label);
            if (w > name_w)
                name_w = w;
        }
        int room = COLS - (W_INST + W_STATE + 2 * W_COUNT + W_RATE + 2 * W_SHARE + 7) - 24;
        if (name_w > room)
            name_w = room > 12 ? room : 12;
        if (name_w > 40)
            name_w = 40;

        mvhline(top, 0, ' ' | A_REVERSE, COLS);
        int x = cell(top, 0, name_w, "STAGE", false, A_REVERSE);
        x = cell(top, x, W_INST, "INST", true, A_REVERSE);
        x = cell(top, x, W_STATE, "STATE", false, A_REVERSE);
        x = cell(top, x, W_COUNT, "IN", true, A_REVERSE);
        x = cell(top, x, W_COUNT, "OUT", true, A_REVERSE);
        x = cell(top, x, W_RATE, "ITEMS/S", true, A_REVERSE);
        x = cell(top, x, W_SHARE, "BUSY", true, A_REVERSE);
        x = cell(top, x, W_SHARE, "BLKD", true, A_REVERSE);
        cell(top, x, 5, "QUEUE", false, A_REVERSE);

        int max_scroll = (int)t->nrows - t->page;
        if (t->scroll > max_scroll)
            t->scroll = max_scroll;
        if (t->scroll < 0)
            t->scroll = 0;
        for (int i = 0; i < t->page && (size_t)(t->scroll + i) < t->nrows; i++)
            draw_row(t, top + 1 + i, &t->rows[t->scroll + i], name_w);
    } else {
        char line[PATH_MAX + 64];
        snprintf(line, sizeof line, "listening on %s", t->target.sock);
        text(top, 0, COLS, line, false, A_DIM);
    }
    if (help) {
        char line[160];
        snprintf(line, sizeof line, " q quit   i instances (%s)   arrows PgUp PgDn Home End scroll",
                 t->show_instances ? "shown" : "hidden");
        if (t->nrows > (size_t)t->page)
            snprintf(line + strlen(line), sizeof line - strlen(line), "   rows %d-%d of %zu",
                     t->scroll + 1, t->scroll + t->page, t->nrows);
        mvhline(LINES - 1, 0, ' ' | A_REVERSE, COLS);
        text(LINES - 1, 0, COLS, line, false, A_REVERSE);
    }
    refresh();
}

/* Act on a key; false to quit. */
static bool key(top_t *t, int ch)
{
    switch (ch) {
    case 'q': case 'Q': return false;
    case 'i': case 'I': t->show_instances = !t->show_instances; break;
    case KEY_UP: case 'k': t->scroll--; break;
    case KEY_DOWN: case 'j': t->scroll++; break;
    case KEY_PPAGE: t->scroll -= t->page > 1 ? t->page - 1 : 1; break;
    case KEY_NPAGE: case ' ': t->scroll += t->page > 1 ? t->page - 1 : 1; break;
    case KEY_HOME: case 'g': t->scroll = 0; break;
    case KEY_END: case 'G': t->scroll = INT_MAX / 2; break; /* draw clamps it */
    case 12: clearok(curscr, TRUE); break; /* Ctrl-L: repaint from scratch */
    default: break; /* KEY_RESIZE among others: a redraw is all it takes */
    }
    return true;
}

static int run_screen(top_t *t)
{
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        const char *term = getenv("TERM");
        fprintf(stderr, "mpx-top: cannot drive terminal type '%s' (use --json)\n", term ? term : "");
        return 1;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    if (has_colors() && start_color() == OK) {
        use_default_colors();
        init_pair(C_GREEN, COLOR_GREEN, -1);
        init_pair(C_YELLOW, COLOR_YELLOW, -1);
        init_pair(C_RED, COLOR_RED, -1);
        init_pair(C_CYAN, COLOR_CYAN, -1);
        init_pair(C_MAGENTA, COLOR_MAGENTA, -1);
        t->colors = true;
    }

    int rc = 0;
    long next = 0; /* the next redraw at the regular pace */
    bool redraw = true;
    while (!stop_signal) {
        long now = mono_ms();
        if (now >= next) {
            /* Nothing for a whole interval: the graph may have ended
             * without its final snapshot reaching us. */
            if (now - t->last_ms >= t->interval_ms)
                check_gone(t, now);
            next = now + t->interval_ms;
            redraw = true;
        }
        if (redraw)
            draw(t, now);
        redraw = false;

        zmq_pollitem_t items[2] = {{t->sub, 0, ZMQ_POLLIN, 0}, {NULL, STDIN_FILENO, ZMQ_POLLIN, 0}};
        long wait = next - mono_ms();
        if (zmq_poll(items, 2, wait > 0 ? wait : 0) < 0 && errno != EINTR) {
            rc = errno;
            break;
        }
        if (items[1].revents & ZMQ_POLLERR)
            break; /* the terminal hung up */
        bool was_ended = t->ended;
        receive(t, NULL);
        redraw = t->ended != was_ended; /* show the outcome at once */
        for (int ch; (ch = getch()) != ERR; redraw = true)
            if (!key(t, ch))
                goto quit;
    }
quit:
    endwin();
    delscreen(scr);
    if (rc)
        fprintf(stderr, "mpx-top: %s\n", zmq_strerror(rc));
    return rc ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpx-top [--json] [--interval MS] PID | RUNTIME_DIR\n"
            "Watch a running mpx graph: every stage's state, items in and out, rate, busy\n"
            "share and input queue, as a tree that follows the graph.  PID is the graph's\n"
            "parent process; RUNTIME_DIR its runtime directory (mpx-PID-XXXXXX under\n"
            "$XDG_RUNTIME_DIR, $TMPDIR, /dev/shm or /tmp).  Only the graph's owner can\n"
            "attach.\n"
            "  --json         print each snapshot as one line of JSON until the graph ends\n"
            "                 (exit 0; 1 if it ended without its final snapshot)\n"
            "  --interval MS  redraw every MS milliseconds, 10 to 60000 (default %d)\n"
            "keys: q quit, i show instances, arrows PgUp PgDn Home End scroll\n",
            DEFAULT_INTERVAL_MS);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    top_t t = {.interval_ms = DEFAULT_INTERVAL_MS};
    bool json = false;
    for (int opt; (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (opt) {
        case 'j': json = true; break;
        case 'i': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 10 || v > 60000) {
                fprintf(stderr, "mpx-top: --interval wants milliseconds from 10 to 60000\n");
                return 2;
            }
            t.interval_ms = (int)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (!json && !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "mpx-top: standard output is not a terminal (use --json)\n");
        return 1;
    }
    setlocale(LC_CTYPE, ""); /* names are UTF-8; numbers keep the C locale */

    /* No SA_RESTART: the signal must end the wait in zmq_poll. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (find_target(&t.target, argv[optind]) != 0)
        return 1;

    /* libzmq starts its threads with the first socket; they must not take
     * the signals that should wake this thread (Ctrl-C, window resize). */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    void *ctx = zmq_ctx_new();
    t.sub = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    char endpoint[PATH_MAX + 8];
    snprintf(endpoint, sizeof endpoint, "ipc://%s", t.target.sock);
    int zero = 0, rc = 1;
    if (!t.sub || zmq_setsockopt(t.sub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(t.sub, ZMQ_SUBSCRIBE, "", 0) != 0 || zmq_connect(t.sub, endpoint) != 0) {
        fprintf(stderr, "mpx-top: cannot subscribe to %s: %s\n", endpoint, zmq_strerror(errno));
    } else {
        t.last_ms = mono_ms();
        rc = json ? run_json(&t) : run_screen(&t);
    }
    if (t.sub)
        zmq_close(t.sub);
    if (ctx)
        zmq_ctx_term(ctx);
    snapshot_free(&t.snap);
    free(t.rows);
    return rc;
}
