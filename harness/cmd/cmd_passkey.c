/*
 * cmd_passkey.c — `lcbench passkey`: LongLoRA's passkey retrieval (harness/fluency/passkey.h) under
 * one or more cache strategies.  Each test feeds the prompt (with the tokenizer's BOS, as HF
 * tokenizer() does) through a fresh strategy, greedily generates as many tokens as the answer
 * has, and compares them token for token with the answer's tokens.  The answer's tokens are
 * those that follow the prompt in the tokenization of prompt + " " + key (for a SentencePiece
 * tokenizer these are LongLoRA's tokenizer(key)[1:], whose dummy prefix is that space); when
 * the prompt's tokens are not a prefix of that, the tokens of " " + key.  Rows go to the
 * passkey and passkey_runs tables (harness/fluency/fluency.h).
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"
#include "harness/fluency/fluency.h"
#include "harness/fluency/generate.h"
#include "harness/fluency/passkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int encode(const Tokenizer *tok, const char *text, size_t len, int special, int32_t **ids, size_t *n, char *err, size_t errlen) {
    return tokenizer_encode(tok, text, len, special, ids, n, err, errlen);
}

static char *ids_text(const int32_t *ids, size_t n) {
    char *s = malloc(n * 12 + 1), *w = s;
    if (!s) return NULL;
    *w = 0;
    for (size_t i = 0; i < n; i++) w += sprintf(w, "%s%d", i ? " " : "", ids[i]);
    return s;
}

int cmd_passkey(int argc, char **argv) {
    Cli c;
    cli_init(&c, "passkey", argc, argv);
    const char *model = NULL, *tokenizer = NULL, *db = "results.db", *specs[16];
    CliDevice dev = CLI_DEVICE_DEFAULTS;
    int n_specs = 0;
    uint64_t interval = 256, max_tokens = 4096, num_tests = 10;
    char err[LCB_ERRLEN], argv_text[8192] = "lcbench passkey";
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv_text);
        snprintf(argv_text + l, sizeof argv_text - l, " %s", argv[i]);
    }
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
#define VAL() do { if (!(v = cli_value(&c))) return EXIT_USAGE; } while (0)
#define COUNT(var, lo, hi, what) do { VAL(); if (cli_parse_count(f, v, 1, lo, hi, &var)) return cli_usage_error(&c, "%s \"%s\" must be %s", f, v, what); } while (0)
        int df = cli_device_flag(&c, f, &dev);
        if (df < 0) return EXIT_USAGE;
        if (df) continue;
        if (!strcmp(f, "--model")) { VAL(); model = v; }
        else if (!strcmp(f, "--tokenizer")) { VAL(); tokenizer = v; }
        else if (!strcmp(f, "--db")) { VAL(); db = v; }
        else if (!strcmp(f, "--strategy")) {
            VAL();
            if (n_specs == 16) return cli_usage_error(&c, "--strategy: at most 16");
            specs[n_specs++] = v;
        }
        else if (!strcmp(f, "--interval")) COUNT(interval, 1, 1u << 24, "a positive integer");
        else if (!strcmp(f, "--max-tokens")) COUNT(max_tokens, 1, 1u << 26, "a positive integer (K suffix)");
        else if (!strcmp(f, "--num-tests")) COUNT(num_tests, 1, 100000, "an integer in [1, 100000]");
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
#undef VAL
#undef COUNT
    }
    if (!n_specs) specs[n_specs++] = "dense";
    int64_t n_points = (int64_t)(max_tokens / interval);
    if (cli_device_check(&c, &dev)) return EXIT_USAGE;
    if (n_points < 1) return cli_usage_error(&c, "--max-tokens %llu is below --interval %llu: no point", (unsigned long long)max_tokens, (unsigned long long)interval);
    if (passkey_n_garbage(n_points - 1, (int64_t)interval) > 5000 * 89 + 4999)
        return cli_usage_error(&c, "--max-tokens: n_garbage passes the 5000 filler sentences LongLoRA's prompt has");
    Strategy s[16];
    for (int k = 0; k < n_specs; k++) {
        if (strategy_parse(&s[k], specs[k], err, sizeof err)) { cli_error("passkey", "%s", err); return EXIT_USAGE; }
        if (!strategy_can_generate(&s[k])) { cli_error("passkey", "--strategy %s: a whole-input policy cannot generate", specs[k]); return EXIT_USAGE; }
    }
    Store st;
    if (store_open(&st, db, err, sizeof err)) { cli_error("passkey", "%s", err); return 1; }
    Model m;
    Tokenizer *tok = NULL;
    char path[4200];
    memset(&m, 0, sizeof m);
    if (gen_open_model(model, tokenizer, &dev, &m, &tok, path, sizeof path, err, sizeof err)) {
        cli_error("passkey", "--model: %s", err);
        store_close(&st);
        return 1;
    }
    int rc = 0;
    char rev[64], now[32];
    run_git_revision(rev, sizeof rev);
    Sampler sm;
    sampler_init(&sm, 0, 0, 1, 0);
    printf("strategy\tpoint\tn_garbage\ttokens\taccuracy\n");
    for (int k = 0; rc == 0 && k < n_specs; k++) {
        double t0 = lcb_now();
        int64_t pk_id = 0, tests = 0, correct_all = 0;
        store_now(now);
        const StoreVal run_row[] = {
            SV_TEXT("status", store_status_name(STORE_RUNNING)), SV_TEXT("started", now), SV_TEXT("lcbench_rev", rev), SV_TEXT("argv", argv_text),
            SV_TEXT("model", path), SV_INT("max_pos", m.cfg.max_pos), SV_TEXT("strategy", specs[k]), SV_INT("interval", interval),
            SV_INT("max_tokens", max_tokens), SV_INT("num_tests", num_tests),
        };
        if ((rc = store_row_insert(&st, "passkey_runs", run_row, sizeof run_row / sizeof *run_row, &pk_id, err, sizeof err))) break;
        for (int64_t i = 0; rc == 0 && i < n_points; i++) {
            int64_t ng = passkey_n_garbage(i, (int64_t)interval);
            if (ng < 1) continue;
            int64_t tok_sum = 0, ok_sum = 0;
            if ((rc = store_begin(&st, err, sizeof err))) break;
            for (uint64_t seed = 0; rc == 0 && seed < num_tests; seed++) {
                char *prompt = NULL, key[16], *full = NULL;
                size_t plen, info_off, n_ids = 0, n_full = 0, n_info = 0, n_ans;
                int32_t *ids = NULL, *fids = NULL, *iids = NULL, *ans, *out = NULL, *alt = NULL;
                if (passkey_prompt(ng, (uint32_t)seed, &prompt, &plen, key, &info_off)) { rc = lcb_fail(err, sizeof err, "out of memory"); break; }
                full = malloc(plen + 32);
                if (!full) rc = lcb_fail(err, sizeof err, "out of memory");
                else snprintf(full, plen + 32, "%s %s", prompt, key);
                if (rc == 0) rc = encode(tok, prompt, plen, 1, &ids, &n_ids, err, sizeof err);
                if (rc == 0) rc = encode(tok, full, strlen(full), 1, &fids, &n_full, err, sizeof err);
                if (rc == 0) rc = encode(tok, prompt, info_off, 1, &iids, &n_info, err, sizeof err);
                if (rc == 0) {
                    if (n_full > n_ids && !memcmp(fids, ids, n_ids * sizeof *ids)) { ans = fids + n_ids; n_ans = n_full - n_ids; }
                    else {
                        char sk[20];
                        snprintf(sk, sizeof sk, " %s", key);
                        rc = encode(tok, sk, strlen(sk), 0, &alt, &n_ans, err, sizeof err);
                        ans = alt;
                    }
                }
                if (rc == 0 && !(out = malloc(n_ans * sizeof *out))) rc = lcb_fail(err, sizeof err, "out of memory");
                if (rc == 0 && (rc = strategy_begin(&s[k], &m, err, sizeof err)) == 0)
                    rc = gen_tokens(&s[k], ids, (int64_t)n_ids, &sm, out, (int64_t)n_ans, NULL, NULL, err, sizeof err);
                strategy_end(&s[k]);
                if (rc == 0) {
                    int ok = !memcmp(out, ans, n_ans * sizeof *out);
                    char *at = ids_text(ans, n_ans), *ot = ids_text(out, n_ans), *dec = NULL;
                    size_t dl = 0;
                    if (tokenizer_decode(tok, out, n_ans, 0, &dec, &dl, err, sizeof err)) dec = NULL;
                    const StoreVal row[] = {
                        SV_INT("pk_run_id", pk_id), SV_TEXT("strategy", specs[k]), SV_INT("length_idx", i), SV_INT("n_garbage", ng),
                        SV_INT("seed", seed), SV_INT("tokens", n_ids), SV_TEXT("key", key), SV_INT("key_pos", n_info),
                        SV_TEXT("answer_ids", at ? at : ""), SV_TEXT("output_ids", ot ? ot : ""), SV_TEXTN("output", dec ? dec : "", dec ? dl : 0),
                        SV_INT("correct", ok),
                    };
                    rc = store_row_insert(&st, "passkey", row, sizeof row / sizeof *row, NULL, err, sizeof err);
                    free(at); free(ot); free(dec);
                    tok_sum += (int64_t)n_ids;
                    ok_sum += ok;
                }
                free(prompt); free(full); free(ids); free(fids); free(iids); free(alt); free(out);
            }
            if (rc == 0) rc = store_commit(&st, err, sizeof err); else store_rollback(&st);
            if (rc) break;
            tests += (int64_t)num_tests;
            correct_all += ok_sum;
            printf("%s\t%lld\t%lld\t%lld\t%.3f\n", specs[k], (long long)i, (long long)ng, (long long)(tok_sum / (int64_t)num_tests),
                   (double)ok_sum / (double)num_tests);
            fflush(stdout);
        }
        store_now(now);
        const StoreVal end[] = {
            SV_TEXT("status", store_status_name(rc ? STORE_FAILED : STORE_DONE)), SV_TEXT("ended", now), SV_INT("tests", tests),
            SV_INT("correct", correct_all), SV_REAL("wall_s", lcb_now() - t0),
        };
        char err2[LCB_ERRLEN];
        if (pk_id && store_row_update(&st, "passkey_runs", "id", pk_id, end, sizeof end / sizeof *end, err2, sizeof err2))
            cli_error("passkey", "%s", err2);
        fprintf(stderr, "lcbench passkey: run %lld (%s): %lld/%lld correct, %.1f s (%s)\n", (long long)pk_id, specs[k],
                (long long)correct_all, (long long)tests, lcb_now() - t0, db);
    }
    if (rc) cli_error("passkey", "%s", err);
    sampler_free(&sm);
    model_free(&m);
    tokenizer_free(tok);
    store_close(&st);
    return rc ? 1 : 0;
}
