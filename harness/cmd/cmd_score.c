/*
 * cmd_score.c — `lcbench score`, the stable scripting interface of SPEC §5: token ids in, the
 * T-1 per-step NLLs out, one per line, under any cache strategy and chunk size.
 */
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/model.h"
#include "datasets/dataset.h"
#include "harness/cmd/cli.h"
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_score(int argc, char **argv) {
    Cli c;
    cli_init(&c, "score", argc, argv);
    const char *model = NULL, *ids_path = NULL, *spec = "dense", *config = NULL;
    CliDevice dev = CLI_DEVICE_DEFAULTS;
    uint64_t chunk = 0;
    int chunk_set = 0;
    int attn_stats = 0;
    for (const char *f; (f = cli_next(&c));) {
        const char *v;
        int df = cli_device_flag(&c, f, &dev);
        if (df < 0) return EXIT_USAGE;
        if (df) continue;
        if (!strcmp(f, "--model")) { if (!(v = cli_value(&c))) return EXIT_USAGE; model = v; }
        else if (!strcmp(f, "--ids")) { if (!(v = cli_value(&c))) return EXIT_USAGE; ids_path = v; }
        else if (!strcmp(f, "--strategy")) { if (!(v = cli_value(&c))) return EXIT_USAGE; spec = v; }
        else if (!strcmp(f, "--config")) { if (!(v = cli_value(&c))) return EXIT_USAGE; config = v; }
        else if (!strcmp(f, "--attn-stats")) attn_stats = 1;
        else if (!strcmp(f, "--chunk")) {
            if (!(v = cli_value(&c))) return EXIT_USAGE;
            if (cli_parse_count(f, v, 1, 0, 1u << 30, &chunk)) return cli_usage_error(&c, "--chunk \"%s\" must be a non-negative integer", v);
            chunk_set = 1;
        } else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    if (!model) return cli_usage_error(&c, "--model is required");
    if (!ids_path) return cli_usage_error(&c, "--ids is required");
    char err[LCB_ERRLEN];
    Strategy s;
    if (strategy_parse(&s, spec, err, sizeof err)) { cli_error("score", "%s", err); return EXIT_USAGE; }
    if (cli_device_check(&c, &dev)) return EXIT_USAGE;
    if (!chunk_set) chunk = strcmp(dev.device, "cuda") ? 256 : 4096; /* a GPU wants large forwards (run does the same) */
    int32_t *ids = NULL;
    size_t T = 0;
    if (dataset_read_ids(ids_path, &ids, &T, err, sizeof err)) { cli_error("score", "%s", err); return 1; }
    if (T < 2) { cli_error("score", "%s: %zu token ids; scoring needs at least 2", ids_path, T); free(ids); return 1; }
    Model m;
    if (model_open_tp(&m, model, config, lcb_device_parse(dev.device), dev.dtype, (int)dev.tp, err, sizeof err)) { cli_error("score", "%s", err); free(ids); return 1; }
    for (size_t i = 0; i < T; i++)
        if (ids[i] >= m.cfg.vocab) {
            cli_error("score", "%s: token id %d at index %zu is outside the vocabulary of %s (size %d)", ids_path, ids[i], i, model, m.cfg.vocab);
            model_free(&m); free(ids);
            return 1;
        }
    double *nll = malloc((T - 1) * sizeof *nll);
    if (attn_stats && m.device == 0) {
        s.first_mass = calloc(m.cfg.n_layers, sizeof(double));
        s.first_count = calloc(m.cfg.n_layers, sizeof(double));
    }
    int rc = nll ? strategy_score(&s, &m, ids, T, chunk, nll, err, sizeof err) : lcb_fail(err, sizeof err, "out of memory");
    if (rc == 0) {
        for (size_t t = 0; t + 1 < T; t++) printf("%#.9g\n", nll[t]); /* # keeps trailing zeros: always 9 significant digits */
        if (fflush(stdout) != 0 || ferror(stdout)) { cli_error("score", "writing standard output failed"); rc = -1; }
        if (s.first_mass && s.first_count) {
            fprintf(stderr, "attention on position 0 (mean over heads and steps t >= 1), %s:", spec);
            for (int l = 0; l < m.cfg.n_layers; l++)
                fprintf(stderr, " L%d=%.4f", l, s.first_count[l] > 0 ? s.first_mass[l] / s.first_count[l] : 0.0);
            fputc('\n', stderr);
        }
    } else cli_error("score", "%s", err);
    free(s.first_mass);
    free(s.first_count);
    free(nll);
    free(ids);
    model_free(&m);
    return rc ? 1 : 0;
}
