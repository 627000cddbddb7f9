/*
 * cmd_report.c — `lcbench report --db FILE --out DIR`: flags -> report_write (reports/report.c),
 * which turns a results file into gnuplot figures (PNG + SVG), index.md and index.html.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "reports/reports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_report(int argc, char **argv) {
    Cli c;
    cli_init(&c, "report", argc, argv);
    ReportOptions o = {.db = "results.db", .gnuplot = "gnuplot", .collapse_factor = REP_COLLAPSE_FACTOR, .svg = 1};
    for (const char *f; (f = cli_next(&c));) {
        const char *v = NULL;
#define VAL() do { if (!(v = cli_value(&c))) return EXIT_USAGE; } while (0)
        if (!strcmp(f, "--db")) { VAL(); o.db = v; }
        else if (!strcmp(f, "--out")) { VAL(); o.out = v; }
        else if (!strcmp(f, "--gnuplot")) { VAL(); o.gnuplot = v; }
        else if (!strcmp(f, "--no-svg")) o.svg = 0;
        else if (!strcmp(f, "--collapse-factor")) {
            VAL();
            char *end;
            o.collapse_factor = strtod(v, &end);
            if (!*v || *end || !(o.collapse_factor >= 1)) return cli_usage_error(&c, "--collapse-factor \"%s\" must be a number >= 1", v);
        } else return cli_usage_error(&c, "unknown argument \"%s\"", f);
#undef VAL
    }
    if (!o.out) return cli_usage_error(&c, "--out DIR is required");
    char err[LCB_ERRLEN];
    if (report_write(&o, err, sizeof err)) {
        cli_error("report", "%s", err);
        return !strncmp(err, "--db", 4) ? EXIT_USAGE : 1;
    }
    printf("report: %s/index.md, %s/index.html\n", o.out, o.out);
    return 0;
}
