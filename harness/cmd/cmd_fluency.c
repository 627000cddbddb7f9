/*
 * cmd_fluency.c — `lcbench fluency`: the detector on text from stdin, so that its verdicts can
 * be checked by hand and its thresholds calibrated (docs/fluency.md).  With --tokenizer the
 * text is tokenized and cut into windows of G tokens, as generate and the run probes do.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/fluency/fluency.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_window(int64_t pos, const FluencyMetrics *m) {
    printf("{\"pos\": %lld, \"units\": %lld, \"chars\": %lld, \"newline_run\": %lld, \"newline_frac\": %.4f, \"bad_frac\": %.4f,"
           " \"alpha_frac\": %.4f, \"words\": %lld, \"dict_ratio\": %.4f, \"rep_len\": %lld, \"rep_frac\": %.4f, \"distinct3\": %.4f,"
           " \"verdict\": \"%s\"}\n",
           (long long)pos, (long long)m->tokens, (long long)m->chars, (long long)m->newline_run, m->newline_frac, m->bad_frac,
           m->alpha_frac, (long long)m->words, isnan(m->dict_ratio) ? -1.0 : m->dict_ratio, (long long)m->rep_len, m->rep_frac,
           m->distinct3, fluency_verdict_name(fluency_verdict(m)));
}

int cmd_fluency(int argc, char **argv) {
    Cli c;
    cli_init(&c, "fluency", argc, argv);
    const char *tokp = NULL, *words = NULL;
    uint64_t G = 0;
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
        if (!strcmp(f, "--tokenizer")) { if (!(v = cli_value(&c))) return EXIT_USAGE; tokp = v; }
        else if (!strcmp(f, "--words")) { if (!(v = cli_value(&c))) return EXIT_USAGE; words = v; }
        else if (!strcmp(f, "--window")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (cli_parse_count(f, v, 1, 4, 1u << 20, &G)) return cli_usage_error(&c, "--window \"%s\" must be an integer >= 4", v);
        }
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    if (G && !tokp) return cli_usage_error(&c, "--window needs --tokenizer");
    char err[LCB_ERRLEN];
    FluencyDict *dict = fluency_dict_load(words, err, sizeof err);
    if (!dict) { cli_error("fluency", "%s", err); return 1; }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (size_t k; text && (k = fread(text + len, 1, cap - len, stdin)) > 0;) {
        len += k;
        if (len == cap) { char *nt = realloc(text, cap *= 2); if (!nt) { free(text); text = NULL; } else text = nt; }
    }
    if (!text) { cli_error("fluency", "out of memory"); fluency_dict_free(dict); return 1; }
    int rc = 0;
    FluencyMetrics m;
    if (!tokp) {
        fluency_measure(text, len, NULL, 0, dict, &m);
        print_window(0, &m);
    } else {
        Tokenizer *tok = tokenizer_load(tokp, err, sizeof err);
        int32_t *ids = NULL;
        size_t n = 0;
        if (!tok || tokenizer_encode(tok, text, len, 0, &ids, &n, err, sizeof err)) { cli_error("fluency", "--tokenizer: %s", err); rc = 1; }
        size_t w = G ? G : n;
        for (size_t p = 0; rc == 0 && p < n; p += w) {
            size_t k = n - p < w ? n - p : w;
            if (G && k < w) break;   /* whole windows only */
            char *t = NULL;
            size_t tl = 0;
            if (tokenizer_decode(tok, ids + p, k, 0, &t, &tl, err, sizeof err)) { cli_error("fluency", "%s", err); rc = 1; break; }
            fluency_measure(t, tl, ids + p, k, dict, &m);
            print_window((int64_t)p, &m);
            free(t);
        }
        free(ids);
        if (tok) tokenizer_free(tok);
    }
    free(text);
    fluency_dict_free(dict);
    return rc;
}
