/*
 * cmd_gate.c — `lcbench gate --db NEW --baseline BASE`: the CI regression gate.  Flags ->
 * GateOptions -> gate_compare (reports/gate.c, where the rules are).  Exit status: 0 pass,
 * 1 regression, 2 usage error (a bad flag, or a file that is missing or not a results file).
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "reports/reports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_real(Cli *c, const char *f, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) return cli_usage_error(c, "%s \"%s\" must be a number in [%g, %g]", f, v, lo, hi);
    *out = x;
    return 0;
}

int cmd_gate(int argc, char **argv) {
    Cli c;
    cli_init(&c, "gate", argc, argv);
    GateOptions o;
    gate_defaults(&o);
    const char *db = NULL, *base = NULL;
    double cf = REP_COLLAPSE_FACTOR;
    uint64_t u;
    for (const char *f; (f = cli_next(&c));) {
        const char *v = NULL;
#define VAL() do { if (!(v = cli_value(&c))) return EXIT_USAGE; } while (0)
        if (!strcmp(f, "--db")) { VAL(); db = v; }
        else if (!strcmp(f, "--baseline")) { VAL(); base = v; }
        else if (!strcmp(f, "--rel-tol")) { VAL(); if (parse_real(&c, f, v, 0, 100, &o.rel_tol)) return EXIT_USAGE; }
        else if (!strcmp(f, "--sigma")) { VAL(); if (parse_real(&c, f, v, 0, 1000, &o.sigma)) return EXIT_USAGE; }
        else if (!strcmp(f, "--pos-tol")) { VAL(); if (parse_real(&c, f, v, 0, 1, &o.pos_tol)) return EXIT_USAGE; }
        else if (!strcmp(f, "--collapse-factor")) { VAL(); if (parse_real(&c, f, v, 1, 1e6, &cf)) return EXIT_USAGE; }
        else if (!strcmp(f, "--min-steps")) {
            VAL();
            if (cli_parse_count(f, v, 1, 1, 1ull << 40, &u)) return cli_usage_error(&c, "--min-steps \"%s\" must be a positive integer", v);
            o.min_steps = (int64_t)u;
        } else if (!strcmp(f, "--metric")) {
            VAL();
            if (rep_metric_parse(v, &o.metric)) return cli_usage_error(&c, "--metric \"%s\" must be ppl, bpb or word_ppl", v);
        } else if (!strcmp(f, "--pair-by")) {
            VAL();
            char why[160];
            if (gate_pair_parse(v, &o.pair_by, why, sizeof why)) return cli_usage_error(&c, "--pair-by: %s", why);
        } else if (!strcmp(f, "--allow-missing")) o.allow_missing = 1;
        else if (!strcmp(f, "--allow-empty")) o.allow_empty = 1;
        else if (!strcmp(f, "--verbose")) o.verbose = 1;
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
#undef VAL
    }
    if (!db) return cli_usage_error(&c, "--db NEW is required");
    if (!base) return cli_usage_error(&c, "--baseline BASE is required");
    char err[LCB_ERRLEN];
    RepDb b, n;
    int lrc = rep_load(&b, base, "--baseline", cf, err, sizeof err);
    if (lrc) { cli_error("gate", "%s", err); return lrc == -2 ? EXIT_USAGE : 1; }
    if ((lrc = rep_load(&n, db, "--db", cf, err, sizeof err))) { cli_error("gate", "%s", err); rep_free(&b); return lrc == -2 ? EXIT_USAGE : 1; }
    int rc;
    if (b.n == 0) { cli_error("gate", "--baseline %s: the file holds no run", base); rc = EXIT_USAGE; }
    else rc = gate_compare(&b, &n, &o, stdout);
    rep_free(&b);
    rep_free(&n);
    return rc;
}
