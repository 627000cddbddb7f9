/*
 * cmd_plan.c — `lcbench plan`: flags -> plan_predict (reports/plan.c) -> a table of the
 * memory a stream run would take (weights, KV cache, workspace), or one JSON object.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "reports/reports.h"
#include <cJSON.h>
#include <stdlib.h>

#include <stdio.h>
#include <string.h>

int cmd_plan(int argc, char **argv) {
    Cli c;
    cli_init(&c, "plan", argc, argv);
    PlanInput in = {.strategy = "sink", .chunk = 256};
    int json = 0;
    uint64_t u;
    for (const char *f; (f = cli_next(&c));) {
        const char *v = NULL;
#define VAL() do { if (!(v = cli_value(&c))) return EXIT_USAGE; } while (0)
        if (!strcmp(f, "--model")) { VAL(); in.model = v; }
        else if (!strcmp(f, "--config")) { VAL(); in.config = v; }
        else if (!strcmp(f, "--strategy")) { VAL(); in.strategy = v; }
        else if (!strcmp(f, "--tokens")) {
            VAL();
            if (cli_parse_count(f, v, 1, 2, 1ull << 40, &u)) return cli_usage_error(&c, "--tokens \"%s\" must be a token count >= 2 (K/M/G suffixes)", v);
            in.tokens = u;
        } else if (!strcmp(f, "--chunk")) {
            VAL();
            if (cli_parse_count(f, v, 1, 0, 1ull << 30, &u)) return cli_usage_error(&c, "--chunk \"%s\" must be a non-negative integer", v);
            in.chunk = (int64_t)u;
        } else if (!strcmp(f, "--device")) {
            VAL();
            if (strcmp(v, "cpu") && strcmp(v, "cuda")) return cli_usage_error(&c, "--device \"%s\" must be cpu or cuda", v);
            in.cuda = !strcmp(v, "cuda");
        } else if (!strcmp(f, "--json")) json = 1;
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
#undef VAL
    }
    if (!in.model) return cli_usage_error(&c, "--model is required (a checkpoint folder or random:SHAPE)");
    if (!in.tokens) return cli_usage_error(&c, "--tokens is required");
    char err[LCB_ERRLEN];
    PlanResult r;
    if (plan_predict(&in, &r, err, sizeof err)) { cli_error("plan", "%s", err); return EXIT_USAGE; }
    if (json) { /* through cJSON: a model path may hold any character */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", in.model);
        cJSON_AddStringToObject(o, "strategy", r.strategy);
        cJSON_AddNumberToObject(o, "tokens", (double)in.tokens);
        cJSON_AddNumberToObject(o, "chunk", (double)in.chunk);
        cJSON_AddStringToObject(o, "device", in.cuda ? "cuda" : "cpu");
        cJSON_AddStringToObject(o, "dtype", r.dtype);
        cJSON_AddNumberToObject(o, "n_params", (double)r.n_params);
        cJSON_AddNumberToObject(o, "weights", (double)r.weights);
        if (r.file_weights) {
            cJSON_AddNumberToObject(o, "file_weights", (double)r.file_weights);
            cJSON_AddStringToObject(o, "file_types", r.file_types);
        } else {
            cJSON_AddNullToObject(o, "file_weights");
            cJSON_AddNullToObject(o, "file_types");
        }
        cJSON_AddNumberToObject(o, "kv", (double)r.kv);
        cJSON_AddNumberToObject(o, "kv_formula", (double)r.kv_formula);
        cJSON_AddNumberToObject(o, "work", (double)r.work);
        cJSON_AddNumberToObject(o, "scores", (double)r.scores);
        cJSON_AddNumberToObject(o, "total", (double)r.total);
        char *txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!txt) { cli_error("plan", "out of memory"); return 1; }
        printf("%s\n", txt);
        free(txt);
        return 0;
    }
    char w[32], k[32], kf[32], wk[32], sc[32], t[32];
    rep_human_bytes(w, sizeof w, (double)r.weights);
    rep_human_bytes(k, sizeof k, (double)r.kv);
    rep_human_bytes(kf, sizeof kf, (double)r.kv_formula);
    rep_human_bytes(wk, sizeof wk, (double)r.work);
    rep_human_bytes(sc, sizeof sc, (double)r.scores);
    rep_human_bytes(t, sizeof t, (double)r.total);
    printf("plan: %s (%s, %.3g%s params, pre-training context %lld), %s, %llu tokens, chunk %lld, %s %s\n", in.model, r.arch,
           r.n_params >= 1e9 ? r.n_params / 1e9 : r.n_params / 1e6, r.n_params >= 1e9 ? "B" : "M", (long long)r.max_pos, r.strategy, (unsigned long long)in.tokens, (long long)in.chunk,
           in.cuda ? "cuda" : "cpu", r.dtype);
    printf("  %-11s %12s  %s\n", "weights", w, in.cuda ? "n_params x 2 B (bf16)"
           : r.file_weights ? "layer matrices as the file's blocks, the rest in fp32" : "fp32 arena (n_params x 4 B + norm/bias slots)");
    if (r.file_weights) {
        char fw[32];
        rep_human_bytes(fw, sizeof fw, (double)r.file_weights);
        printf("  %-11s %12s  tensor data on file (%s)%s\n", "on file", fw, r.file_types, in.cuda ? ", dequantized to the line above on upload" : "");
    }
    printf("  %-11s %12s  allocated at the end of the stream (the policy keeps %s)\n", "KV cache", k, kf);
    printf("  %-11s %12s  forward buffers for %lld rows (logits scratch included)\n", "workspace", wk, (long long)r.rows);
    printf("  %-11s %12s  transient attention score block (64 queries x visible keys)\n", "scores", sc);
    printf("  %-11s %12s  %s\n", "total", t, in.cuda ? "(estimate: the CUDA path is not yet measured)" : "(process RSS adds the binary, BLAS and SQLite)");
    return 0;
}
