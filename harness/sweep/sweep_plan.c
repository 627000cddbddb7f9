/*
 * sweep_plan.c — the PLAN file of `lcbench sweep` (see sweep.h, docs/sweeps.md): JSON read
 * with cJSON, every value checked and normalized as `lcbench run` would read it, the
 * cartesian product expanded in a fixed order, and each cell keyed by the SHA-256 of its
 * normalized arguments.  Errors name the plan file and the field at fault.
 */
#include "harness/sweep/sweep.h"
#include "datasets/sha256.h"
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"
#include "strategies/strategy.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_STR, K_MODEL, K_STRATEGY, K_PROTOCOL, K_DEVICE, K_COUNT, K_BYTES, K_BOOL, K_NUMBER, K_ENUM } Kind;

static const struct {
    const char *name, *flag;
    Kind kind;
    uint64_t lo;          /* K_COUNT: smallest value */
    int in_key;           /* changes what is measured */
    const char *choices;  /* K_ENUM: "|a|b|c|" */
} fields[SF_N] = {
    [SF_MODEL] = {"model", "--model", K_MODEL, 0, 1, NULL},
    [SF_STRATEGY] = {"strategy", "--strategy", K_STRATEGY, 0, 1, NULL},
    [SF_TOKENS] = {"tokens", "--tokens", K_COUNT, 2, 1, NULL},
    [SF_PROTOCOL] = {"protocol", "--protocol", K_PROTOCOL, 0, 1, NULL},
    [SF_DEVICE] = {"device", "--device", K_DEVICE, 0, 1, NULL},
    [SF_DATASET] = {"dataset", "--dataset", K_STR, 0, 1, NULL},
    [SF_CTX] = {"ctx", "--ctx", K_COUNT, 2, 1, NULL},
    [SF_STRIDE] = {"stride", "--stride", K_COUNT, 1, 1, NULL},
    [SF_CHUNK] = {"chunk", "--chunk", K_COUNT, 0, 1, NULL},
    [SF_CONFIG] = {"config", "--config", K_STR, 0, 1, NULL},
    [SF_TOKENIZER] = {"tokenizer", "--tokenizer", K_STR, 0, 1, NULL},
    [SF_FIELD] = {"field", "--field", K_STR, 0, 1, NULL},
    [SF_TOKEN_FORMAT] = {"token_format", "--token-format", K_ENUM, 0, 1, "|auto|text|jsonl|u16|u32|ids|"},
    [SF_BOS] = {"bos", "--bos", K_ENUM, 0, 1, "|auto|none|first|each-doc|"},
    [SF_REPEAT] = {"repeat", "--no-repeat", K_BOOL, 0, 1, NULL},
    [SF_MEM_LIMIT] = {"mem_limit", "--mem-limit", K_BYTES, 0, 1, NULL},
    [SF_BATCH] = {"batch", "--batch", K_COUNT, 1, 0, NULL},
    [SF_BATCH_SECONDS] = {"batch_seconds", "--batch-seconds", K_NUMBER, 0, 0, NULL},
    [SF_BIN_WIDTH] = {"bin_width", "--bin-width", K_COUNT, 1, 1, NULL},
};

/* The axes, in expansion order (the first varies slowest). */
static const struct { const char *name; SweepField f; } axes[] = {
    {"models", SF_MODEL}, {"strategies", SF_STRATEGY}, {"tokens", SF_TOKENS},
    {"protocols", SF_PROTOCOL}, {"devices", SF_DEVICE}, {"datasets", SF_DATASET},
};
#define N_AXES (int)(sizeof axes / sizeof *axes)


static int field_find(const char *name) {
    for (int i = 0; i < SF_N; i++) if (!strcmp(fields[i].name, name)) return i;
    return -1;
}

/* Normalize one JSON value of field f into out; -1 with err naming where. */
static int norm_value(SweepField f, const cJSON *v, char *out, size_t n, const char *where, char *err, size_t errlen) {
    char raw[1024];
    if (cJSON_IsString(v)) snprintf(raw, sizeof raw, "%s", v->valuestring);
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(long long)d) snprintf(raw, sizeof raw, "%lld", (long long)d); else snprintf(raw, sizeof raw, "%.17g", d);
    } else if (cJSON_IsBool(v)) snprintf(raw, sizeof raw, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else return lcb_fail(err, errlen, "%s: %s must be a string or a number", where, fields[f].name);
    if (fields[f].kind != K_BOOL && cJSON_IsBool(v)) return lcb_fail(err, errlen, "%s: %s must be a string or a number, not a boolean", where, fields[f].name);
    if (!raw[0]) return lcb_fail(err, errlen, "%s: %s is empty", where, fields[f].name);
    char e2[LCB_ERRLEN];
    uint64_t u;
    switch (fields[f].kind) {
    case K_STR: snprintf(out, n, "%s", raw); return 0;
    case K_MODEL: {
        size_t l = strlen(raw);
        while (l > 1 && raw[l - 1] == '/') raw[--l] = 0;
        snprintf(out, n, "%s", raw);
        return 0;
    }
    case K_STRATEGY: {
        /* a bare sink/window stays bare: with the cell's model in the key it names one cache,
         * sized by the run from that model (strategies/) */
        Strategy s;
        if (strategy_parse(&s, raw, e2, sizeof e2)) return lcb_fail(err, errlen, "%s: strategy \"%s\": %s", where, raw, e2);
        snprintf(out, n, "%s", raw);
        return 0;
    }
    case K_PROTOCOL: {
        RunProtocol p;
        if (protocol_parse(raw, &p)) return lcb_fail(err, errlen, "%s: protocol \"%s\" must be stream, stride, chunks or longlora", where, raw);
        snprintf(out, n, "%s", protocol_name(p));
        return 0;
    }
    case K_DEVICE:
        if (strcmp(raw, "cpu") && strcmp(raw, "cuda")) return lcb_fail(err, errlen, "%s: device \"%s\" must be cpu or cuda", where, raw);
        snprintf(out, n, "%s", raw);
        return 0;
    case K_COUNT:
        if (cli_parse_count(fields[f].name, raw, 1, fields[f].lo, 1ull << 40, &u))
            return lcb_fail(err, errlen, "%s: %s \"%s\" must be an integer >= %llu (K/M/G suffixes, powers of 1000)", where, fields[f].name, raw,
                            (unsigned long long)fields[f].lo);
        snprintf(out, n, "%llu", (unsigned long long)u);
        return 0;
    case K_BYTES:
        if (cli_parse_count(fields[f].name, raw, 0, 1, UINT64_MAX / 2, &u))
            return lcb_fail(err, errlen, "%s: %s \"%s\" must be a byte count (K/M/G suffixes, powers of 1024)", where, fields[f].name, raw);
        snprintf(out, n, "%llu", (unsigned long long)u);
        return 0;
    case K_BOOL:
        if (!strcmp(raw, "true") || !strcmp(raw, "1")) snprintf(out, n, "1");
        else if (!strcmp(raw, "false") || !strcmp(raw, "0")) snprintf(out, n, "0");
        else return lcb_fail(err, errlen, "%s: %s \"%s\" must be true or false", where, fields[f].name, raw);
        return 0;
    case K_NUMBER: {
        char *end;
        double d = strtod(raw, &end);
        if (*end || !(d > 0)) return lcb_fail(err, errlen, "%s: %s \"%s\" must be a positive number", where, fields[f].name, raw);
        snprintf(out, n, "%s", raw);
        return 0;
    }
    case K_ENUM: {
        char pat[80];
        snprintf(pat, sizeof pat, "|%.70s|", raw);
        if (!strstr(fields[f].choices, pat)) return lcb_fail(err, errlen, "%s: %s \"%s\" must be one of %s", where, fields[f].name, raw, fields[f].choices);
        snprintf(out, n, "%s", raw);
        return 0;
    }
    }
    return 0;
}

/* A set of field values (NULL = unset), as read from an options or override object. */
typedef struct { char *v[SF_N]; } FieldSet;

static void fs_free(FieldSet *s) { for (int i = 0; i < SF_N; i++) { free(s->v[i]); s->v[i] = NULL; } }

static int fs_read(FieldSet *s, const cJSON *obj, const char *skip, const char *where, char *err, size_t errlen) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (skip && !strcmp(it->string, skip)) continue;
        int f = field_find(it->string);
        if (f < 0) return lcb_fail(err, errlen, "%s: unknown field \"%s\" (fields: model, strategy, tokens, protocol, device, dataset, ctx, stride, chunk, config, tokenizer, field, token_format, bos, repeat, mem_limit, batch, batch_seconds, bin_width)", where, it->string);
        char buf[1024];
        if (norm_value((SweepField)f, it, buf, sizeof buf, where, err, errlen)) return -1;
        free(s->v[f]);
        s->v[f] = strdup(buf);
    }
    return 0;
}

/* One axis: its values and, per value, the overrides that come with it. */
typedef struct { int n; char **val; FieldSet *ovr; } Axis;

static void axis_free(Axis *a) {
    for (int i = 0; i < a->n; i++) { free(a->val[i]); fs_free(&a->ovr[i]); }
    free(a->val); free(a->ovr);
    memset(a, 0, sizeof *a);
}

static int axis_read(Axis *a, SweepField f, const cJSON *j, const char *path, const char *aname, char *err, size_t errlen) {
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
    if (n == 0) return lcb_fail(err, errlen, "%s: \"%s\" is an empty list", path, aname);
    a->n = n;
    a->val = calloc((size_t)n, sizeof *a->val);
    a->ovr = calloc((size_t)n, sizeof *a->ovr);
    if (!a->val || !a->ovr) return lcb_fail(err, errlen, "out of memory");
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, i) : j;
        char where[256], buf[1024];
        snprintf(where, sizeof where, "%s: %s[%d]", path, aname, i);
        const cJSON *v = e;
        if (cJSON_IsObject(e)) {
            v = cJSON_GetObjectItemCaseSensitive(e, "value");
            if (!v) return lcb_fail(err, errlen, "%s: an object entry needs \"value\"", where);
            if (fs_read(&a->ovr[i], e, "value", where, err, errlen)) return -1;
        }
        if (norm_value(f, v, buf, sizeof buf, where, err, errlen)) return -1;
        a->val[i] = strdup(buf);
    }
    return 0;
}

static int read_int(const cJSON *o, const char *name, int lo, int hi, int *out, const char *path, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valuedouble < lo || v->valuedouble > hi)
        return lcb_fail(err, errlen, "%s: executor.%s must be an integer in %d..%d", path, name, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int read_executor(SweepPlan *p, const cJSON *x, const char *path, char *err, size_t errlen) {
    if (!cJSON_IsObject(x)) return lcb_fail(err, errlen, "%s: \"executor\" must be an object", path);
    for (const cJSON *it = x->child; it; it = it->next)
        if (strcmp(it->string, "jobs") && strcmp(it->string, "retries") && strcmp(it->string, "threads") && strcmp(it->string, "gpus") &&
            strcmp(it->string, "sbatch"))
            return lcb_fail(err, errlen, "%s: unknown field \"executor.%s\" (jobs, retries, threads, gpus, sbatch)", path, it->string);
    if (read_int(x, "jobs", 1, 1024, &p->jobs, path, err, errlen) || read_int(x, "retries", 0, 100, &p->retries, path, err, errlen) ||
        read_int(x, "threads", 1, 4096, &p->threads, path, err, errlen))
        return -1;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(x, "gpus");
    if (g) {
        if (!cJSON_IsArray(g) || cJSON_GetArraySize(g) > 64) return lcb_fail(err, errlen, "%s: executor.gpus must be a list of GPU indices", path);
        p->n_gpus = 0;
        for (const cJSON *e = g->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble != (double)(int)e->valuedouble)
                return lcb_fail(err, errlen, "%s: executor.gpus must be a list of GPU indices", path);
            p->gpus[p->n_gpus++] = (int)e->valuedouble;
        }
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(x, "sbatch");
    if (s) {
        if (!cJSON_IsArray(s)) return lcb_fail(err, errlen, "%s: executor.sbatch must be a list of sbatch options (\"--time=1:00:00\")", path);
        p->n_sbatch = cJSON_GetArraySize(s);
        p->sbatch = calloc((size_t)p->n_sbatch + 1, sizeof *p->sbatch);
        int i = 0;
        for (const cJSON *e = s->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e) || strncmp(e->valuestring, "-", 1) || strchr(e->valuestring, '\n'))
                return lcb_fail(err, errlen, "%s: executor.sbatch[%d] must be one sbatch option such as \"--time=1:00:00\"", path, i);
            p->sbatch[i] = strdup(e->valuestring);
        }
    }
    return 0;
}

static void cell_key(SweepCell *c) {
    char text[8192];
    sweep_cell_text(c, text, sizeof text);
    Sha256 h;
    char hex[65];
    sha256_init(&h);
    sha256_update(&h, text, strlen(text));
    sha256_hex(&h, hex);
    memcpy(c->key, hex, 16);
    c->key[16] = 0;
}

void sweep_cell_text(const SweepCell *c, char *buf, size_t n) {
    size_t l = 0;
    buf[0] = 0;
    for (int f = 0; f < SF_N; f++)
        if (fields[f].in_key && c->v[f] && l < n)
            l += (size_t)snprintf(buf + l, n - l, "%s%s=%s", l ? " " : "", fields[f].name, c->v[f]);
}

int sweep_cell_args(const SweepCell *c, const char *db, const char **args) {
    int k = 0;
    for (int f = 0; f < SF_N; f++) {
        if (!c->v[f]) continue;
        if (fields[f].kind == K_BOOL) { if (!strcmp(c->v[f], "0")) args[k++] = fields[f].flag; continue; }
        args[k++] = fields[f].flag;
        args[k++] = c->v[f];
    }
    args[k++] = "--db";
    args[k++] = db;
    args[k++] = "--no-progress";
    args[k] = NULL;
    return k;
}

void sweep_cell_label(const SweepPlan *p, const SweepCell *c, int skip_field, int axes_only, char *buf, size_t n) {
    size_t l = 0;
    buf[0] = 0;
    for (int f = 0; f < SF_N && l < n; f++) {
        if (f == skip_field || !(axes_only ? p->axis_vary[f] : p->vary[f]) || !c->v[f]) continue;
        const char *v = c->v[f];
        if (f == SF_MODEL || f == SF_DATASET) { const char *s = strrchr(v, '/'); if (s && s[1]) v = s + 1; }
        if (f == SF_STRATEGY || f == SF_MODEL || f == SF_PROTOCOL || f == SF_DEVICE || f == SF_DATASET)
            l += (size_t)snprintf(buf + l, n - l, "%s%s", l ? " " : "", v);
        else l += (size_t)snprintf(buf + l, n - l, "%s%s=%s", l ? " " : "", fields[f].name, v);
    }
    if (!buf[0]) snprintf(buf, n, axes_only ? "-" : "cell %d", c->idx);
}

static int cells_push(SweepPlan *p, int *cap, const SweepCell *c) {
    for (int i = 0; i < p->n_cells; i++)
        if (!strcmp(p->cells[i].key, c->key)) return 0;   /* the same measurement twice: once */
    if (p->n_cells == *cap) {
        int nc = *cap ? 2 * *cap : 16;
        SweepCell *v = realloc(p->cells, (size_t)nc * sizeof *v);
        if (!v) return -1;
        p->cells = v;
        *cap = nc;
    }
    p->cells[p->n_cells] = *c;
    p->cells[p->n_cells].idx = p->n_cells;
    p->n_cells++;
    return 1;
}

int sweep_plan_parse(SweepPlan *p, const char *text, const char *path, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->jobs = p->retries = p->threads = p->n_gpus = -1;
    p->path = strdup(path);
    p->text = strdup(text);
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *q = text; at && q < at && *q; q++) line += *q == '\n';
        return lcb_fail(err, errlen, "%s: not valid JSON (near line %d)", path, line);
    }
    int rc = -1, cap = 0;
    Axis ax[N_AXES];
    memset(ax, 0, sizeof ax);
    FieldSet opts;
    memset(&opts, 0, sizeof opts);
    FieldSet *excl = NULL;
    int n_excl = 0;
    if (!cJSON_IsObject(j)) { lcb_fail(err, errlen, "%s: the plan must be a JSON object", path); goto out; }
    for (const cJSON *it = j->child; it; it = it->next) {
        int known = !strcmp(it->string, "name") || !strcmp(it->string, "description") || !strcmp(it->string, "options") ||
                    !strcmp(it->string, "exclude") || !strcmp(it->string, "executor");
        for (int a = 0; a < N_AXES; a++) known |= !strcmp(it->string, axes[a].name);
        if (!known) {
            lcb_fail(err, errlen, "%s: unknown field \"%s\" (name, description, models, strategies, tokens, protocols, devices, datasets, options, exclude, executor)", path, it->string);
            goto out;
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (name) {
        const char *s = cJSON_IsString(name) ? name->valuestring : "";
        size_t l = strlen(s);
        if (l == 0 || l > 100 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != l || s[0] == '.') {
            lcb_fail(err, errlen, "%s: name must be 1-100 characters of A-Z a-z 0-9 . _ - (it names the sweep's files)", path);
            goto out;
        }
        snprintf(p->id, sizeof p->id, "%s", s);
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "options");
    if (o) {
        char where[300];
        snprintf(where, sizeof where, "%s: options", path);
        if (!cJSON_IsObject(o)) { lcb_fail(err, errlen, "%s must be an object", where); goto out; }
        if (fs_read(&opts, o, NULL, where, err, errlen)) goto out;
    }
    for (int a = 0; a < N_AXES; a++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, axes[a].name);
        if (v && opts.v[axes[a].f]) {
            lcb_fail(err, errlen, "%s: %s is given both as the axis \"%s\" and in options", path, fields[axes[a].f].name, axes[a].name);
            goto out;
        }
        if (v && axis_read(&ax[a], axes[a].f, v, path, axes[a].name, err, errlen)) goto out;
    }
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "exclude");
    if (x) {
        if (!cJSON_IsArray(x)) { lcb_fail(err, errlen, "%s: exclude must be a list of objects", path); goto out; }
        n_excl = cJSON_GetArraySize(x);
        excl = calloc((size_t)n_excl + 1, sizeof *excl);
        for (int i = 0; i < n_excl; i++) {
            const cJSON *e = cJSON_GetArrayItem(x, i);
            char where[300];
            snprintf(where, sizeof where, "%s: exclude[%d]", path, i);
            if (!cJSON_IsObject(e) || !e->child) { lcb_fail(err, errlen, "%s must be a non-empty object of fields", where); goto out; }
            if (fs_read(&excl[i], e, NULL, where, err, errlen)) goto out;
        }
    }
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "executor");
    if (ex && read_executor(p, ex, path, err, errlen)) goto out;

    /* the cartesian product: an odometer over the axes, the last axis fastest */
    int at[N_AXES] = {0};
    for (;;) {
        SweepCell c;
        memset(&c, 0, sizeof c);
        for (int f = 0; f < SF_N; f++) c.v[f] = opts.v[f] ? strdup(opts.v[f]) : NULL;
        for (int a = 0; a < N_AXES; a++)
            if (ax[a].n) { free(c.v[axes[a].f]); c.v[axes[a].f] = strdup(ax[a].val[at[a]]); }
        for (int a = 0; a < N_AXES; a++)
            if (ax[a].n)
                for (int f = 0; f < SF_N; f++)
                    if (ax[a].ovr[at[a]].v[f]) { free(c.v[f]); c.v[f] = strdup(ax[a].ovr[at[a]].v[f]); }
        if (!c.v[SF_PROTOCOL]) c.v[SF_PROTOCOL] = strdup("stream");
        if (!c.v[SF_DEVICE]) c.v[SF_DEVICE] = strdup("cpu");
        int drop = 0;
        for (int i = 0; i < n_excl && !drop; i++) {
            int all = 1;
            for (int f = 0; f < SF_N && all; f++)
                if (excl[i].v[f] && (!c.v[f] || strcmp(c.v[f], excl[i].v[f]))) all = 0;
            drop = all;
        }
        int pushed = 0;
        if (!drop) {
            cell_key(&c);
            pushed = cells_push(p, &cap, &c);
            if (pushed < 0) { lcb_fail(err, errlen, "out of memory"); goto out; }
        }
        if (!pushed) for (int f = 0; f < SF_N; f++) free(c.v[f]);
        int a = N_AXES - 1;
        for (; a >= 0; a--) {
            if (ax[a].n && ++at[a] < ax[a].n) break;
            at[a] = 0;
        }
        if (a < 0) break;
    }
    if (p->n_cells == 0) { lcb_fail(err, errlen, "%s: every cell is excluded: nothing to run", path); goto out; }
    for (int f = 0; f < SF_N; f++)
        for (int i = 1; i < p->n_cells && !p->vary[f]; i++) {
            const char *a0 = p->cells[0].v[f], *b = p->cells[i].v[f];
            p->vary[f] = (a0 == NULL) != (b == NULL) || (a0 && b && strcmp(a0, b));
        }
    for (int a = 0; a < N_AXES; a++) p->axis_vary[axes[a].f] = ax[a].n > 1;
    if (!p->id[0]) {
        Sha256 h;
        char hex[65];
        sha256_init(&h);
        for (int i = 0; i < p->n_cells; i++) sha256_update(&h, p->cells[i].key, 16);
        sha256_hex(&h, hex);
        snprintf(p->id, sizeof p->id, "sweep-%.12s", hex);
    }
    rc = 0;
out:
    for (int a = 0; a < N_AXES; a++) axis_free(&ax[a]);
    fs_free(&opts);
    for (int i = 0; i < n_excl; i++) fs_free(&excl[i]);
    free(excl);
    cJSON_Delete(j);
    return rc;
}

int sweep_plan_load(SweepPlan *p, const char *path, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (!f) return lcb_fail(err, errlen, "%s: cannot open the plan: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap = cap ? 2 * cap : 8192);
            if (!nb) { free(buf); fclose(f); return lcb_fail(err, errlen, "%s: out of memory", path); }
            buf = nb;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return lcb_fail(err, errlen, "%s: read error", path); }
    buf[n] = 0;
    int rc = sweep_plan_parse(p, buf, path, err, errlen);
    free(buf);
    return rc ? -2 : 0;
}

void sweep_plan_free(SweepPlan *p) {
    for (int i = 0; i < p->n_cells; i++)
        for (int f = 0; f < SF_N; f++) free(p->cells[i].v[f]);
    free(p->cells);
    for (int i = 0; i < p->n_sbatch; i++) free(p->sbatch[i]);
    free(p->sbatch);
    free(p->path);
    free(p->text);
    memset(p, 0, sizeof *p);
}
