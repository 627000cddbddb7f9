/*
 * dataset.c — builds the token stream of a run from corpora, text files, folders, JSONL and
 * pre-tokenized files (see dataset.h for the spec language and the BOS policy).
 */
#include "datasets/dataset.h"
#include "datasets/sha256.h"
#include "engine/common.h"

#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- names */

const char *dataset_bos_name(LcbBos b) {
    switch (b) {
    case LCB_BOS_AUTO: return "auto";
    case LCB_BOS_NONE: return "none";
    case LCB_BOS_FIRST: return "first";
    case LCB_BOS_EACH_DOC: return "each-doc";
    }
    return "?";
}

int dataset_bos_parse(const char *s, LcbBos *out) {
    static const LcbBos all[] = {LCB_BOS_AUTO, LCB_BOS_NONE, LCB_BOS_FIRST, LCB_BOS_EACH_DOC};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (!strcmp(s, dataset_bos_name(all[i]))) { *out = all[i]; return 0; }
    return -1;
}

const char *dataset_format_name(LcbTokenFormat f) {
    static const char *names[] = {"auto", "text", "jsonl", "u16", "u32", "ids"};
    return (unsigned)f < sizeof names / sizeof *names ? names[f] : "?";
}

int dataset_format_parse(const char *s, LcbTokenFormat *out) {
    for (int f = LCB_FMT_AUTO; f <= LCB_FMT_IDS; f++)
        if (!strcmp(s, dataset_format_name((LcbTokenFormat)f))) { *out = (LcbTokenFormat)f; return 0; }
    return -1;
}

/* ---------------------------------------------------------------- where things live */

const char *lcb_repo_root(void) {
    static char root[PATH_MAX];
    if (root[0]) return root;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        /* REPO/build/lcbench or REPO/build/tests/test_x: walk up until a Makefile is found */
        for (int up = 0; up < 4; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash || slash == exe) break;
            *slash = 0;
            char mk[PATH_MAX + 16];
            snprintf(mk, sizeof mk, "%s/Makefile", exe);
            if (access(mk, R_OK) == 0) { snprintf(root, sizeof root, "%s", exe); return root; }
        }
    }
    snprintf(root, sizeof root, ".");
    return root;
}

const char *dataset_corpus_dir(void) {
    static char dir[PATH_MAX + 32];
    const char *env = getenv("LCBENCH_CORPORA");
    if (env && *env) snprintf(dir, sizeof dir, "%s", env);
    else snprintf(dir, sizeof dir, "%s/.cache/corpora", lcb_repo_root());
    return dir;
}

/* ---------------------------------------------------------------- token files */

int dataset_read_tokens(const char *path, LcbTokenFormat f, int32_t **ids, size_t *n, char *err, size_t errlen) {
    if (f == LCB_FMT_IDS) return dataset_read_ids(path, ids, n, err, errlen);
    if (f != LCB_FMT_U16 && f != LCB_FMT_U32) return lcb_fail(err, errlen, "%s: not a token format (%s)", path, dataset_format_name(f));
    char *data;
    size_t len;
    if (lcb_read_file(path, &data, &len, err, errlen)) return -1;
    size_t w = f == LCB_FMT_U16 ? 2 : 4;
    if (len % w) { free(data); return lcb_fail(err, errlen, "%s: %zu bytes is not a whole number of %s ids", path, len, dataset_format_name(f)); }
    size_t k = len / w;
    int32_t *v = malloc((k ? k : 1) * sizeof *v);
    if (!v) { free(data); return lcb_fail(err, errlen, "%s: out of memory for %zu ids", path, k); }
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < k; i++) {
        uint32_t x = w == 2 ? (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8
                            : (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        if (x > INT32_MAX) { free(v); free(data); return lcb_fail(err, errlen, "%s: id %u at index %zu does not fit int32", path, x, i); }
        v[i] = (int32_t)x;
    }
    free(data);
    *ids = v;
    *n = k;
    return 0;
}

int dataset_write_tokens(const char *path, LcbTokenFormat f, const int32_t *ids, size_t n, char *err, size_t errlen) {
    if (f != LCB_FMT_U16 && f != LCB_FMT_U32) return lcb_fail(err, errlen, "%s: can only write u16 or u32", path);
    FILE *o = fopen(path, "wb");
    if (!o) return lcb_fail(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t b[4] = {(uint8_t)ids[i], (uint8_t)(ids[i] >> 8), (uint8_t)(ids[i] >> 16), (uint8_t)(ids[i] >> 24)};
        if (ids[i] < 0 || (f == LCB_FMT_U16 && ids[i] > 0xffff)) rc = lcb_fail(err, errlen, "%s: id %d at index %zu does not fit %s", path, ids[i], i, dataset_format_name(f));
        else if (fwrite(b, f == LCB_FMT_U16 ? 2 : 4, 1, o) != 1) rc = lcb_fail(err, errlen, "%s: write error", path);
    }
    if (fclose(o) && !rc) rc = lcb_fail(err, errlen, "%s: write error", path);
    return rc;
}

/* ---------------------------------------------------------------- the builder */

typedef struct {
    Dataset *d;
    const DatasetOptions *o;
    const Tokenizer *tok;
    int32_t bos_id;
    size_t cap, doc_cap;
    Sha256 src;
    int full;                  /* max_tokens reached */
    int any_text;
} Builder;

static int push_ids(Builder *b, const int32_t *ids, size_t n, char *err, size_t errlen) {
    Dataset *d = b->d;
    if (n == 0) return 0; /* an empty document: d->ids may still be NULL, and NULL + 0 is UB (fuzz_tokens) */
    if (b->o->max_tokens && d->n + n >= b->o->max_tokens) {
        if (d->n + n > b->o->max_tokens) d->truncated = 1;
        n = b->o->max_tokens - d->n;
        b->full = 1;
    }
    if (d->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1 << 16;
        while (nc < d->n + n) nc *= 2;
        int32_t *v = realloc(d->ids, nc * sizeof *v);
        if (!v) return lcb_fail(err, errlen, "dataset: out of memory for %zu token ids", nc);
        d->ids = v;
        b->cap = nc;
    }
    memcpy(d->ids + d->n, ids, n * sizeof *ids);
    d->n += n;
    return 0;
}

/* One document: its bytes (hashed), its ids (text is tokenized here when ids == NULL). */
static int add_doc(Builder *b, const char *name, const char *bytes, size_t len, const int32_t *ids, size_t n_ids,
                   char *err, size_t errlen) {
    Dataset *d = b->d;
    if (b->full) return 0;
    int32_t *own = NULL;
    if (!ids) {
        if (!b->tok) return lcb_fail(err, errlen, "%s: text needs a tokenizer (the model folder's tokenizer.json, or --tokenizer)", name);
        if (tokenizer_encode(b->tok, bytes, len, 0, &own, &n_ids, err, errlen)) { lcb_prefix(err, errlen, "%s", name); return -1; }
        ids = own;
        b->any_text = 1;
    }
    uint64_t l64 = len;
    sha256_update(&b->src, &l64, sizeof l64);
    sha256_update(&b->src, bytes, len);
    if (d->n_docs == b->doc_cap) {
        size_t nc = b->doc_cap ? 2 * b->doc_cap : 64;
        uint64_t *p = realloc(d->doc_pos, nc * sizeof *p);
        if (p) d->doc_pos = p;
        char **q = realloc(d->doc_name, nc * sizeof *q);
        if (q) d->doc_name = q;
        if (!p || !q) { free(own); return lcb_fail(err, errlen, "dataset: out of memory"); }
        b->doc_cap = nc;
    }
    d->doc_pos[d->n_docs] = d->n;
    d->doc_name[d->n_docs] = strdup(name);
    d->n_docs++;
    int rc = 0;
    int want_bos = d->bos == LCB_BOS_EACH_DOC || (d->bos == LCB_BOS_FIRST && d->n == 0);
    if (want_bos) rc = push_ids(b, &b->bos_id, 1, err, errlen);
    if (rc == 0 && !b->full) rc = push_ids(b, ids, n_ids, err, errlen);
    free(own);
    return rc;
}

static int is_dir(const char *p) { struct stat sb; return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode); }
static int is_file(const char *p) { struct stat sb; return stat(p, &sb) == 0 && S_ISREG(sb.st_mode); }

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_text_file(Builder *b, const char *path, const char *name, char *err, size_t errlen) {
    char *data;
    size_t len;
    if (lcb_read_file(path, &data, &len, err, errlen)) return -1;
    int rc = add_doc(b, name, data, len, NULL, 0, err, errlen);
    free(data);
    return rc;
}

static int add_folder(Builder *b, const char *dir, const char *label, char *err, size_t errlen) {
    DIR *dh = opendir(dir);
    if (!dh) return lcb_fail(err, errlen, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(dh));) {
        if (!ends_with(e->d_name, ".txt")) continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? 2 * cap : 256) * sizeof *nn);
            if (!nn) { rc = lcb_fail(err, errlen, "%s: out of memory", dir); break; }
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(dh);
    if (rc == 0 && n == 0) rc = lcb_fail(err, errlen, "%s: no .txt documents in this folder", dir);
    if (rc == 0) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; rc == 0 && i < n && !b->full; i++) {
        char path[PATH_MAX * 2], name[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(name, sizeof name, "%s/%s", label, names[i]);
        rc = add_text_file(b, path, name, err, errlen);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int add_jsonl(Builder *b, const char *path, char *err, size_t errlen) {
    const char *field = b->o->field ? b->o->field : "text";
    FILE *f = fopen(path, "r");
    if (!f) return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    size_t lineno = 0, docs = 0;
    while (rc == 0 && !b->full && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t k = strspn(line, " \t\r\n");
        if (line[k] == 0) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        if (!j) { rc = lcb_fail(err, errlen, "%s:%zu: not a JSON object", path, lineno); break; }
        cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
        if (!cJSON_IsString(v)) rc = lcb_fail(err, errlen, "%s:%zu: no string field \"%s\" (choose one with --field)", path, lineno, field);
        else {
            char name[PATH_MAX + 32];
            snprintf(name, sizeof name, "%s:%zu", path, lineno);
            rc = add_doc(b, name, v->valuestring, strlen(v->valuestring), NULL, 0, err, errlen);
            docs++;
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    if (rc == 0 && docs == 0 && !b->full) rc = lcb_fail(err, errlen, "%s: no documents", path);
    return rc;
}

static int add_token_file(Builder *b, const char *path, LcbTokenFormat f, char *err, size_t errlen) {
    int32_t *ids;
    size_t n;
    if (dataset_read_tokens(path, f, &ids, &n, err, errlen)) return -1;
    if (n == 0) { free(ids); return lcb_fail(err, errlen, "%s: no token ids", path); }
    /* the bytes hashed are the ids as uint32 LE, whatever the file format */
    int rc = 0;
    uint8_t *le = malloc(n * 4);
    if (!le) rc = lcb_fail(err, errlen, "%s: out of memory", path);
    else {
        for (size_t i = 0; i < n; i++) { uint32_t x = (uint32_t)ids[i]; memcpy(le + 4 * i, (uint8_t[4]){x, x >> 8, x >> 16, x >> 24}, 4); }
        rc = add_doc(b, path, (const char *)le, n * 4, ids, n, err, errlen);
    }
    free(le);
    free(ids);
    return rc;
}

static LcbTokenFormat format_of(const char *path, LcbTokenFormat forced) {
    if (forced != LCB_FMT_AUTO) return forced;
    if (ends_with(path, ".bin") || ends_with(path, ".u16")) return LCB_FMT_U16;
    if (ends_with(path, ".u32")) return LCB_FMT_U32;
    if (ends_with(path, ".ids")) return LCB_FMT_IDS;
    if (ends_with(path, ".jsonl")) return LCB_FMT_JSONL;
    return LCB_FMT_TEXT;
}

/* Whether every source of the spec is a token file (decides the auto BOS policy). */
static int all_pretokenized(const DatasetOptions *o, const char *corpora) {
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", o->spec);
    char *save = NULL;
    for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (!is_file(s)) return 0;
        LcbTokenFormat f = format_of(s, o->format);
        if (f != LCB_FMT_U16 && f != LCB_FMT_U32 && f != LCB_FMT_IDS) return 0;
    }
    (void)corpora;
    return 1;
}

static int add_source(Builder *b, const char *s, const char *corpora, char *err, size_t errlen) {
    if (is_dir(s)) return add_folder(b, s, s, err, errlen);
    if (is_file(s)) {
        LcbTokenFormat f = format_of(s, b->o->format);
        if (f == LCB_FMT_TEXT) return add_text_file(b, s, s, err, errlen);
        if (f == LCB_FMT_JSONL) return add_jsonl(b, s, err, errlen);
        return add_token_file(b, s, f, err, errlen);
    }
    if (!strchr(s, '/') && *s && *s != '.') {
        char dir[PATH_MAX * 2];
        snprintf(dir, sizeof dir, "%s/%s", corpora, s);
        if (is_dir(dir)) return add_folder(b, dir, s, err, errlen);
        return lcb_fail(err, errlen, "--dataset %s: no such file, folder or fetched corpus (looked in %s; `make corpora` fetches moby-dick, sotu, spam-assassin)", s, corpora);
    }
    return lcb_fail(err, errlen, "--dataset %s: no such file or folder", s);
}

int dataset_load(Dataset *d, const DatasetOptions *o, const Tokenizer *tok, int32_t bos_id, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    if (!o->spec || !*o->spec) return lcb_fail(err, errlen, "--dataset: empty");
    if (strlen(o->spec) >= 8192) return lcb_fail(err, errlen, "--dataset: spec too long");
    const char *corpora = o->corpus_dir ? o->corpus_dir : dataset_corpus_dir();
    d->pretokenized = all_pretokenized(o, corpora);
    d->bos = o->bos == LCB_BOS_AUTO ? (d->pretokenized ? LCB_BOS_NONE : LCB_BOS_FIRST) : o->bos;
    if (d->bos != LCB_BOS_NONE && bos_id < 0)
        return lcb_fail(err, errlen, "--bos %s: the tokenizer/model has no BOS token (use --bos none)", dataset_bos_name(d->bos));
    Builder b = {.d = d, .o = o, .tok = tok, .bos_id = bos_id};
    sha256_init(&b.src);
    int rc = 0;
    do {
        size_t before = d->n;
        d->passes++;
        if (d->passes == 2) d->repeat_pos = d->n;
        char buf[8192];
        snprintf(buf, sizeof buf, "%s", o->spec);
        char *save = NULL;
        for (char *s = strtok_r(buf, ",", &save); rc == 0 && s && !b.full; s = strtok_r(NULL, ",", &save))
            rc = add_source(&b, s, corpora, err, errlen);
        if (rc == 0 && d->n == before) rc = lcb_fail(err, errlen, "--dataset %s: no tokens", o->spec);
    } while (rc == 0 && o->repeat && o->max_tokens && !b.full);
    if (rc == 0 && d->n < 2) rc = lcb_fail(err, errlen, "--dataset %s: %zu token(s); a run needs at least 2", o->spec, d->n);
    if (rc) { dataset_free(d); return -1; }
    d->max_id = -1;
    Sha256 h;
    sha256_init(&h);
    for (size_t i = 0; i < d->n; i++) {
        uint32_t x = (uint32_t)d->ids[i];
        uint8_t le[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
        sha256_update(&h, le, 4);
        if (d->ids[i] > d->max_id) d->max_id = d->ids[i];
    }
    sha256_hex(&h, d->hash);
    sha256_hex(&b.src, d->source_hash);
    return 0;
}

void dataset_free(Dataset *d) {
    for (size_t i = 0; i < d->n_docs; i++) free(d->doc_name[i]);
    free(d->doc_name);
    free(d->doc_pos);
    free(d->ids);
    memset(d, 0, sizeof *d);
}

int dataset_read_ids(const char *path, int32_t **ids, size_t *n, char *err, size_t errlen) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1024, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    char tok[64];
    int rc = 0;
    if (!v) { rc = lcb_fail(err, errlen, "%s: out of memory", path); goto out; }
    for (;;) {
        int c;
        while ((c = fgetc(f)) != EOF && isspace(c)) {}
        if (c == EOF) break;
        size_t len = 0;
        do {
            if (len + 1 < sizeof tok) tok[len] = (char)c;
            len++;
        } while ((c = fgetc(f)) != EOF && !isspace(c));
        if (len >= sizeof tok) { rc = lcb_fail(err, errlen, "%s: token %zu is not an integer (too long)", path, k); goto out; }
        tok[len] = 0;
        char *end;
        errno = 0;
        long long x = strtoll(tok, &end, 10);
        if (*end || errno || x < 0 || x > INT32_MAX) {
            rc = lcb_fail(err, errlen, "%s: token %zu \"%s\" is not a non-negative integer id", path, k, tok);
            goto out;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) { rc = lcb_fail(err, errlen, "%s: out of memory", path); goto out; }
            v = nv;
        }
        v[k++] = (int32_t)x;
    }
    if (ferror(f)) rc = lcb_fail(err, errlen, "%s: read error", path);
out:
    if (f != stdin) fclose(f);
    if (rc) { free(v); return -1; }
    *ids = v;
    *n = k;
    return 0;
}
