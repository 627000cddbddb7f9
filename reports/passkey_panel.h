/*
 * passkey_panel.h — the passkey panel of `lcbench report`: accuracy against prompt length, one
 * curve per (model, strategy) passkey run, from the passkey/passkey_runs tables written by
 * `lcbench passkey` (harness/fluency.h, docs/fluency.md).  Standalone so that the report
 * writer only has to call it: it reads the results file read-only.
 */
#ifndef LCB_PASSKEY_PANEL_H
#define LCB_PASSKEY_PANEL_H

#include <stddef.h>
#include <stdio.h>

/* Write OUT/passkey.dat and OUT/passkey.gp, render passkey.png with gnuplot (NULL = "gnuplot"),
 * and append a Markdown section (figure + table) to md (may be NULL).  A results file without
 * passkey tables writes nothing and returns 0; *n_runs (may be NULL) = curves drawn. */
int report_passkey_panel(const char *db, const char *out, const char *gnuplot, FILE *md, int *n_runs, char *err, size_t errlen);

#endif
