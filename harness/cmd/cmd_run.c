/*
 * cmd_run.c — `lcbench run`: flags -> RunConfig -> run_execute (harness/run/run.c).  With no
 * arguments it runs the default reference model on the default corpus (Moby Dick, SPEC §6).
 */
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_run(int argc, char **argv) {
    Cli c;
    cli_init(&c, "run", argc, argv);
    RunConfig rc;
    CliDevice dev = CLI_DEVICE_DEFAULTS;
    int chunk_set = 0;
    run_config_defaults(&rc);
    char argv_text[8192] = "lcbench";
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv_text);
        snprintf(argv_text + l, sizeof argv_text - l, " %s", argv[i]);
    }
    rc.argv_text = argv_text;
    uint64_t u;
    for (const char *f; (f = cli_next(&c));) {
        const char *v = NULL;
#define VAL() do { if (!(v = cli_value(&c))) return EXIT_USAGE; } while (0)
#define COUNT(si, lo, hi, what) do { VAL(); if (cli_parse_count(f, v, si, lo, hi, &u)) return cli_usage_error(&c, "%s \"%s\" must be %s", f, v, what); } while (0)
        int df = cli_device_flag(&c, f, &dev);
        if (df < 0) return EXIT_USAGE;
        if (df) {
            rc.given |= !strcmp(f, "--device") ? RUN_GIVEN_DEVICE : !strcmp(f, "--dtype") ? RUN_GIVEN_DTYPE : RUN_GIVEN_TP;
            continue;
        }
        if (!strcmp(f, "--db")) { VAL(); rc.db_path = v; }
        else if (!strcmp(f, "--resume")) { COUNT(1, 1, INT64_MAX, "a run id"); rc.resume_id = (int64_t)u; }
        else if (!strcmp(f, "--force")) rc.force = 1;
        else if (!strcmp(f, "--model")) { VAL(); rc.model = v; rc.given |= RUN_GIVEN_MODEL; }
        else if (!strcmp(f, "--config")) { VAL(); rc.config = v; rc.given |= RUN_GIVEN_CONFIG; }
        else if (!strcmp(f, "--tokenizer")) { VAL(); rc.tokenizer = v; rc.given |= RUN_GIVEN_TOKENIZER; }
        else if (!strcmp(f, "--strategy")) { VAL(); rc.strategy = v; rc.given |= RUN_GIVEN_STRATEGY; }
        else if (!strcmp(f, "--protocol")) {
            VAL();
            if (protocol_parse(v, &rc.proto.proto)) return cli_usage_error(&c, "--protocol \"%s\" must be stream, stride, chunks or longlora", v);
            rc.given |= RUN_GIVEN_PROTOCOL;
        }
        else if (!strcmp(f, "--ctx")) { COUNT(1, 2, 1ull << 32, "an integer >= 2 (K/M suffixes)"); rc.proto.ctx = (int64_t)u; rc.given |= RUN_GIVEN_CTX; }
        else if (!strcmp(f, "--stride")) { COUNT(1, 1, 1ull << 32, "a positive integer"); rc.proto.stride = (int64_t)u; rc.given |= RUN_GIVEN_STRIDE; }
        else if (!strcmp(f, "--chunk")) { COUNT(1, 0, 1ull << 30, "a non-negative integer"); rc.proto.chunk = (int64_t)u; chunk_set = 1; rc.given |= RUN_GIVEN_CHUNK; }
        else if (!strcmp(f, "--dataset")) { VAL(); rc.dataset = v; rc.given |= RUN_GIVEN_DATASET; }
        else if (!strcmp(f, "--field")) { VAL(); rc.field = v; rc.given |= RUN_GIVEN_FIELD; }
        else if (!strcmp(f, "--token-format")) { VAL(); rc.token_format = v; rc.given |= RUN_GIVEN_TOKEN_FORMAT; }
        else if (!strcmp(f, "--bos")) { VAL(); rc.bos = v; rc.given |= RUN_GIVEN_BOS; }
        else if (!strcmp(f, "--tokens")) { COUNT(1, 2, 1ull << 40, "a token count >= 2 (K/M/G suffixes, powers of 1000)"); rc.tokens = u; rc.given |= RUN_GIVEN_TOKENS; }
        else if (!strcmp(f, "--no-repeat")) { rc.repeat = 0; rc.given |= RUN_GIVEN_REPEAT; }
        else if (!strcmp(f, "--mem-limit")) { COUNT(0, 1, UINT64_MAX / 2, "a byte count (K/M/G suffixes, powers of 1024)"); rc.mem_limit = u; }
        else if (!strcmp(f, "--batch")) { COUNT(1, 1, 1ull << 30, "a positive integer"); rc.batch_tokens = (int64_t)u; rc.given |= RUN_GIVEN_BATCH; }
        else if (!strcmp(f, "--batch-seconds")) {
            VAL();
            char *end;
            rc.batch_seconds = strtod(v, &end);
            if (*end || !(rc.batch_seconds > 0)) return cli_usage_error(&c, "--batch-seconds \"%s\" must be a positive number", v);
        }
        else if (!strcmp(f, "--bin-width")) { COUNT(1, 1, 1ull << 40, "a positive integer"); rc.bin_width = (int64_t)u; rc.given |= RUN_GIVEN_BIN_WIDTH; }

        else if (!strcmp(f, "--kv-snapshot-seconds")) {
            VAL();
            char *end;
            rc.kv_snapshot_seconds = strtod(v, &end);
            if (*end || !*v || !(rc.kv_snapshot_seconds >= 0 && rc.kv_snapshot_seconds <= 1e9))
                return cli_usage_error(&c, "--kv-snapshot-seconds \"%s\" must be a number of seconds >= 0", v);
        }
        else if (!strcmp(f, "--no-kv-snapshot")) rc.kv_snapshot_seconds = -1;
        else if (!strcmp(f, "--progress")) rc.progress = 1;
        else if (!strcmp(f, "--no-progress")) rc.progress = 0;
        else if (!strcmp(f, "--pace-ms")) { COUNT(1, 0, 600000, "milliseconds"); rc.pace_ms = (int)u; }
        else if (!strcmp(f, "--probe-every")) { COUNT(1, 1, 1ull << 40, "a positive integer (K/M suffixes)"); rc.probe_every = (int64_t)u; }
        else if (!strcmp(f, "--probe-tokens")) { COUNT(1, 4, 1u << 16, "an integer in [4, 65536]"); rc.probe_tokens = (int64_t)u; }
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
#undef VAL
#undef COUNT
    }
    if (cli_device_check(&c, &dev)) return EXIT_USAGE;
    rc.device = dev.device;
    rc.dtype = dev.dtype;
    rc.tp = (int)dev.tp;
    /* a GPU wants large forwards: 256 rows leave an H100 half idle (BENCHMARKS.md: 12.7K tokens/s
     * at 256 against 23.0K at 4096 on llama2-7b); the numbers do not depend on the chunk */
    if (!chunk_set && !strcmp(rc.device, "cuda") && !rc.resume_id) rc.proto.chunk = 4096;
    if (rc.probe_every && rc.proto.proto != PROTO_STREAM) return cli_usage_error(&c, "--probe-every needs --protocol stream");
    if (rc.probe_every && !rc.probe_tokens) rc.probe_tokens = 64;
    int64_t id = 0;
    return run_execute(&rc, &id);
}
