/*
 * cmd_merge.c — `lcbench merge SHARD... -o ALL.db`: results files (Slurm array shards, or
 * any lcbench results files) into one, runs renumbered, every row that hangs off a run copied
 * with it, duplicates skipped (store_merge in reports/store/store_sweep.c).  Merging again is a no-op.
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/sweep/sweep.h"

#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_merge(int argc, char **argv) {
    Cli c;
    cli_init(&c, "merge", argc, argv);
    const char *out = NULL;
    const char **shards = calloc((size_t)argc + 1, sizeof *shards);
    int n = 0;
    if (!shards) { cli_error("merge", "out of memory"); return 1; }
    for (const char *f; (f = cli_next(&c));) {
        if (!strcmp(f, "-o") || !strcmp(f, "--out") || !strcmp(f, "--output")) {
            const char *v = cli_value(&c);
            if (!v) { free(shards); return EXIT_USAGE; }
            out = v;
        } else if (f[0] != '-' || !strcmp(f, "-")) shards[n++] = f;
        else { free(shards); return cli_usage_error(&c, "unknown argument \"%s\"", f); }
    }
    if (!out) { free(shards); return cli_usage_error(&c, "-o ALL.db is missing"); }
    if (n == 0) { free(shards); return cli_usage_error(&c, "no SHARD to merge"); }
    char ro[PATH_MAX], rs[PATH_MAX];
    int have_out = realpath(out, ro) != NULL;
    for (int i = 0; i < n; i++)
        if (have_out && realpath(shards[i], rs) && !strcmp(ro, rs)) {
            free(shards);
            return cli_usage_error(&c, "-o %s is also a SHARD", out);
        }
    int rc = 0;
    StoreMergeStats tot = {0};
    for (int i = 0; i < n; i++) {
        char err[LCB_ERRLEN];
        StoreMergeStats ms;
        if (store_merge(out, shards[i], &ms, err, sizeof err)) { cli_error("merge", "%s", err); rc = 1; continue; }
        fprintf(stderr, "merge: %s: %lld runs added, %lld updated, %lld already in %s\n", shards[i], (long long)ms.added, (long long)ms.replaced,
                (long long)ms.skipped, out);
        tot.added += ms.added; tot.replaced += ms.replaced; tot.skipped += ms.skipped;
    }
    /* the path as a JSON string through cJSON (a quote or a backslash in it stays valid JSON);
     * the line's layout is what scripts and tests match */
    cJSON *js = cJSON_CreateString(out);
    char *jout = js ? cJSON_PrintUnformatted(js) : NULL;
    cJSON_Delete(js);
    if (!jout) { cli_error("merge", "out of memory printing the summary"); free(shards); return 1; }
    printf("{\"out\": %s, \"shards\": %d, \"added\": %lld, \"updated\": %lld, \"skipped\": %lld, \"failed_shards\": %s}\n", jout, n,
           (long long)tot.added, (long long)tot.replaced, (long long)tot.skipped, rc ? "true" : "false");
    free(jout);
    free(shards);
    return rc;
}
