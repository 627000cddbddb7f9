/*
 * cmd_generate.c — `lcbench generate`: endless generation, or streaming chat over a list of
 * prompts with one cache carried across them, through any token-by-token cache strategy.
 * The generated stream is cut into windows of G tokens; the fluency detector classifies each
 * (harness/fluency/fluency.h) and every window goes to the store (generation_windows), with the
 * position of the first collapse (first non-fluent window) on the generation's row.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"
#include "harness/fluency/fluency.h"
#include "harness/fluency/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    Store *st;
    int64_t gen_id, prompt_idx;
    const Tokenizer *tok;
    const FluencyDict *dict;
    int64_t G;
    int32_t *win;            /* (G) the window being filled */
    int64_t n_win, win_pos;  /* tokens in it, stream position of its first token */
    int64_t pos;             /* stream position of the next token */
    int64_t generated, windows, counts[4];
    int64_t first_pos, first_prompt;
    FluencyVerdict first_v;
    int print;
    int failed;
    char err[LCB_ERRLEN];
} GenCtx;

static int flush_window(GenCtx *g) {
    if (g->n_win == 0) return 0;
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(g->tok, g->win, (size_t)g->n_win, 0, &text, &len, g->err, sizeof g->err)) return -1;
    FluencyMetrics m;
    fluency_measure(text, len, g->win, (size_t)g->n_win, g->dict, &m);
    FluencyVerdict v = fluency_verdict(&m);
    int rc = fluency_store_window(g->st, "generation_windows", g->gen_id, g->prompt_idx, g->win_pos, text, len, &m, v, g->err,
                                  sizeof g->err);
    if (g->print) { fwrite(text, 1, len, stdout); fflush(stdout); }
    free(text);
    g->counts[v]++;
    g->windows++;
    if (v != FLU_FLUENT && g->first_pos < 0) { g->first_pos = g->win_pos; g->first_v = v; g->first_prompt = g->prompt_idx; }
    g->n_win = 0;
    return rc;
}

static int on_token(void *ctx, int64_t i, int32_t id) {
    GenCtx *g = ctx;
    if (g->n_win == 0) g->win_pos = g->pos;
    g->win[g->n_win++] = id;
    g->pos++;
    g->generated++;
    if (g->n_win == g->G && flush_window(g)) { g->failed = 1; return 1; }
    return 0;
}

/* Prompts file: one a line, "\n" escapes, blank and # lines skipped. */
static int load_prompts(const char *path, char ***out, int *n, char *err, size_t errlen) {
    char *data;
    size_t len;
    if (lcb_read_file(path, &data, &len, err, errlen)) return -1;
    for (char *p = data, *e; *p; p = e + (*e != 0)) {
        e = p + strcspn(p, "\n");
        char save = *e;
        *e = 0;
        if (*p && *p != '#') {
            char *q = malloc(strlen(p) + 1), *w = q;
            for (const char *r = p; *r; r++) {
                if (r[0] == '\\' && r[1] == 'n') { *w++ = '\n'; r++; }
                else *w++ = *r;
            }
            *w = 0;
            char **np = realloc(*out, (size_t)(*n + 1) * sizeof *np);
            if (!q || !np) { free(q); free(data); return lcb_fail(err, errlen, "out of memory"); }
            *out = np;
            (*out)[(*n)++] = q;
        }
        *e = save;
        if (!save) break;
    }
    free(data);
    if (*n == 0) return lcb_fail(err, errlen, "--prompts-file %s: no prompts", path);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    Cli c;
    cli_init(&c, "generate", argc, argv);
    const char *model = NULL, *tokenizer = NULL, *spec = "sink", *db = "results.db", *words = NULL;
    CliDevice dev = CLI_DEVICE_DEFAULTS;
    char **prompts = NULL;
    int n_prompts = 0, bos = 1, print = 0, rc_exit = 1;
    uint64_t max_new = 512, top_k = 0, seed = 0, G = 128;
    double temperature = 0, top_p = 1;
    char err[LCB_ERRLEN], argv_text[8192] = "lcbench generate";
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv_text);
        snprintf(argv_text + l, sizeof argv_text - l, " %s", argv[i]);
    }
    for (const char *f; (f = cli_next(&c));) {
        const char *v = NULL;
#define VAL() do { if (!(v = cli_value(&c))) goto bad; } while (0)
#define COUNT(var, lo, hi, what) do { VAL(); if (cli_parse_count(f, v, 1, lo, hi, &var)) { cli_usage_error(&c, "%s \"%s\" must be %s", f, v, what); goto bad; } } while (0)
#define REAL(var, ok, what) do { VAL(); char *e_; var = strtod(v, &e_); if (*e_ || !*v || !(ok)) { cli_usage_error(&c, "%s \"%s\" must be %s", f, v, what); goto bad; } } while (0)
        int df = cli_device_flag(&c, f, &dev);
        if (df < 0) goto bad;
        if (df) continue;
        if (!strcmp(f, "--model")) { VAL(); model = v; }
        else if (!strcmp(f, "--tokenizer")) { VAL(); tokenizer = v; }
        else if (!strcmp(f, "--strategy")) { VAL(); spec = v; }
        else if (!strcmp(f, "--db")) { VAL(); db = v; }
        else if (!strcmp(f, "--words")) { VAL(); words = v; }
        else if (!strcmp(f, "--prompt")) {
            VAL();
            char **np = realloc(prompts, (size_t)(n_prompts + 1) * sizeof *np);
            if (!np || !(np[n_prompts] = strdup(v))) { cli_error("generate", "out of memory"); free(np ? np : prompts); return 1; }
            prompts = np;
            n_prompts++;
        }
        else if (!strcmp(f, "--prompts-file")) {
            VAL();
            if (load_prompts(v, &prompts, &n_prompts, err, sizeof err)) { cli_usage_error(&c, "--prompts-file: %s", err); goto bad; }
        }
        else if (!strcmp(f, "--max-new")) COUNT(max_new, 1, 1ull << 32, "a positive token count (K/M suffixes)");
        else if (!strcmp(f, "--top-k")) COUNT(top_k, 0, 1u << 30, "a non-negative integer");
        else if (!strcmp(f, "--seed")) COUNT(seed, 0, UINT64_MAX, "a non-negative integer");
        else if (!strcmp(f, "--window")) COUNT(G, 4, 1u << 16, "an integer in [4, 65536]");
        else if (!strcmp(f, "--temperature")) REAL(temperature, temperature >= 0 && temperature <= 100, "a number in [0, 100]");
        else if (!strcmp(f, "--top-p")) REAL(top_p, top_p > 0 && top_p <= 1, "a number in (0, 1]");
        else if (!strcmp(f, "--no-bos")) bos = 0;
        else if (!strcmp(f, "--print")) print = 1;
        else { cli_usage_error(&c, "unknown argument \"%s\"", f); goto bad; }
#undef VAL
#undef COUNT
#undef REAL
    }
    if (cli_device_check(&c, &dev)) goto bad;
    if (n_prompts == 0) { cli_usage_error(&c, "--prompt or --prompts-file is required (--prompt \"\" generates from BOS alone)"); goto bad; }
    Strategy s;
    if (strategy_parse(&s, spec, err, sizeof err)) { cli_error("generate", "%s", err); goto bad; }
    if (!strategy_can_generate(&s)) { cli_error("generate", "--strategy %s: a whole-input policy cannot generate token by token", spec); goto bad; }

    FluencyDict *dict = fluency_dict_load(words, err, sizeof err);
    if (!dict) { cli_error("generate", "%s", err); goto out; }
    Store st;
    if (store_open(&st, db, err, sizeof err)) {
        cli_error("generate", "%s", err);
        fluency_dict_free(dict);
        goto out;
    }
    Model m;
    Tokenizer *tok = NULL;
    char path[4200];
    memset(&m, 0, sizeof m);
    if (gen_open_model(model, tokenizer, &dev, &m, &tok, path, sizeof path, err, sizeof err)) {
        cli_error("generate", "--model: %s", err);
        store_close(&st);
        fluency_dict_free(dict);
        goto out;
    }
    /* in full: a bare sink/window sized from the model (a failure comes back from strategy_begin) */
    if (strategy_resolve(&s, &m.cfg, err, sizeof err) == 0) spec = s.spec;
    GenCtx g;
    memset(&g, 0, sizeof g);
    g.st = &st; g.tok = tok; g.dict = dict; g.G = (int64_t)G; g.first_pos = -1; g.first_prompt = -1; g.print = print;
    g.win = malloc(G * sizeof *g.win);
    char now[32], rev[64];
    store_now(now);
    run_git_revision(rev, sizeof rev);
    int rc = g.win ? 0 : lcb_fail(err, sizeof err, "out of memory");
    if (rc == 0) {
        const StoreVal row[] = {
            SV_TEXT("status", store_status_name(STORE_RUNNING)), SV_TEXT("started", now), SV_TEXT("lcbench_rev", rev),
            SV_TEXT("argv", argv_text), SV_TEXT("model", path), SV_INT("max_pos", m.cfg.max_pos), SV_TEXT("strategy", spec),
            SV_TEXT("decoding", temperature > 0 ? "sample" : "greedy"), SV_REAL("temperature", temperature), SV_INT("top_k", top_k),
            SV_REAL("top_p", top_p), SV_INT("seed", seed), SV_INT("n_prompts", n_prompts), SV_INT("max_new", max_new), SV_INT("window", G),
        };
        rc = store_row_insert(&st, "generations", row, sizeof row / sizeof *row, &g.gen_id, err, sizeof err);
    }

    double t0 = lcb_now();
    if (rc == 0) rc = strategy_begin(&s, &m, err, sizeof err);
    Sampler sm;
    sampler_init(&sm, temperature, (int)top_k, top_p, seed);
    int64_t fed = 0;
    for (int k = 0; rc == 0 && k < n_prompts; k++) {
        g.prompt_idx = k;
        size_t pl = strlen(prompts[k]);
        char *text = malloc(pl + 2);
        if (!text) { rc = lcb_fail(err, sizeof err, "out of memory"); break; }
        snprintf(text, pl + 2, "%s%s", k ? "\n" : "", prompts[k]);
        int32_t *ids = NULL;
        size_t n = 0;
        rc = tokenizer_encode(tok, text, strlen(text), k == 0 && bos, &ids, &n, err, sizeof err);
        if (print && rc == 0) { printf("%s", text); fflush(stdout); }
        free(text);
        if (rc == 0 && n == 0) rc = lcb_fail(err, sizeof err, "--prompt %d is empty and there is no BOS to start from", k + 1);
        if (rc == 0) {
            g.pos += (int64_t)n;
            fed += (int64_t)n;
            rc = gen_tokens(&s, ids, (int64_t)n, &sm, NULL, (int64_t)max_new, on_token, &g, err, sizeof err);
            if (g.failed) { rc = -1; snprintf(err, sizeof err, "%s", g.err); }
            if (rc == 0 && g.n_win >= 16 && flush_window(&g)) { rc = -1; snprintf(err, sizeof err, "%s", g.err); }
            g.n_win = 0;
        }
        free(ids);
    }
    if (print) printf("\n");
    strategy_end(&s);
    sampler_free(&sm);
    double wall = lcb_now() - t0;
    store_now(now);
    if (g.gen_id) {
        int c = g.first_pos >= 0;   /* no collapse: the three first_collapse columns stay NULL */
        const StoreVal end[] = {
            SV_TEXT("status", store_status_name(rc ? STORE_FAILED : STORE_DONE)), SV_TEXT("ended", now), SV_INT("tokens_fed", fed + g.generated),
            SV_INT("tokens_generated", g.generated), c ? SV_INT("first_collapse_pos", g.first_pos) : SV_NULL("first_collapse_pos"),
            SV_TEXT("first_collapse_verdict", c ? fluency_verdict_name(g.first_v) : NULL),
            c ? SV_INT("first_collapse_prompt", g.first_prompt) : SV_NULL("first_collapse_prompt"), SV_REAL("wall_s", wall),
        };
        char err2[LCB_ERRLEN];
        if (store_row_update(&st, "generations", "id", g.gen_id, end, sizeof end / sizeof *end, err2, sizeof err2)) cli_error("generate", "%s", err2);
    }
    if (rc) cli_error("generate", "%s", err);
    FILE *o = print ? stderr : stdout;
    fprintf(o, "{\"generation\": %lld, \"strategy\": \"%s\", \"max_pos\": %d, \"tokens\": %lld, \"generated\": %lld, \"windows\": %lld,"
            " \"fluent\": %lld, \"newline_flood\": %lld, \"garbage\": %lld, \"repetition_loop\": %lld,"
            " \"first_collapse_pos\": %lld, \"first_collapse_verdict\": \"%s\", \"tok_per_s\": %.1f, \"db\": \"%s\"}\n",
            (long long)g.gen_id, spec, m.cfg.max_pos, (long long)(fed + g.generated), (long long)g.generated, (long long)g.windows,
            (long long)g.counts[0], (long long)g.counts[1], (long long)g.counts[2], (long long)g.counts[3], (long long)g.first_pos,
            g.first_pos < 0 ? "none" : fluency_verdict_name(g.first_v), wall > 0 ? g.generated / wall : 0, db);
    rc_exit = rc ? 1 : 0;
    free(g.win);
    model_free(&m);
    tokenizer_free(tok);
    store_close(&st);
    fluency_dict_free(dict);
    goto out;
bad:
    rc_exit = EXIT_USAGE;
out:
    for (int k = 0; k < n_prompts; k++) free(prompts[k]);
    free(prompts);
    return rc_exit;
}
