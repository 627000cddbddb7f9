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

static void run_help(void) {
    printf("usage: lcbench run [options]            a new run\n"
           "       lcbench run --resume RUN [--db PATH] [--force]   continue an interrupted run\n"
           "  --db PATH            results file (default results.db)\n"
           "  --model PATH         checkpoint folder or random:SHAPE[:SEED] (default models/lcb-0.8m)\n"
           "  --config FILE        model config instead of PATH/config.json\n"
           "  --tokenizer PATH     tokenizer.json or a folder holding one (default: the model's)\n"
           "  --strategy SPEC      cache policy (default sink; `sink` and `window` alone take\n"
           "                       sink:4:(ctx-4) and window:ctx, ctx = the model's context)\n"
           "  --protocol P         stream (default), stride, chunks, longlora (SPEC §3)\n"
           "  --ctx L              window length of stride/chunks/longlora (default: the model's\n"
           "                       max_position_embeddings)\n"
           "  --stride S           stride: window step (default L/2); longlora: 256\n"
           "  --chunk N            tokens per forward pass (default 256 on the CPU, 4096 with --device cuda;\n"
           "                       0 = whole window/stream)\n"
           "  --dataset SPEC       comma-separated: moby-dick | sotu | spam-assassin (make corpora),\n"
           "                       DIR of .txt, FILE.jsonl, FILE.bin (uint16), FILE.u32, FILE.ids, text FILE\n"
           "                       (default moby-dick)\n"
           "  --field NAME         JSONL field holding the text (default text)\n"
           "  --token-format F     how FILE sources are read: auto (by extension), text, jsonl, u16, u32, ids\n"
           "  --bos P              auto (first for text, none for token files), none, first, each-doc\n"
           "  --tokens N           stream length, K/M/G suffixes (default: every document once); the\n"
           "                       documents are concatenated, and repeated if short (recorded)\n"
           "  --no-repeat          stop at the end of the documents instead of repeating them\n"
           "  --mem-limit BYTES    cap the engine's allocations (K/M/G = 1024^n); reaching it ends the\n"
           "                       run with status oom and an oom event at that position\n"
           "  --batch N            steps per committed batch (default 16384)\n"
           "  --batch-seconds S    also commit after S seconds (default 10)\n"
           "  --bin-width N        linear bin width in positions (default 1024); log2 bins always\n"
           CLI_DEVICE_HELP
           "  --kv-snapshot-seconds S     stream: snapshot the strategy state (CPU or GPU) beside the DB\n"
           "                       after a commit at most every S seconds (default 30; 0 = every commit),\n"
           "                       so that --resume re-feeds only from it; --no-kv-snapshot: never\n"
           "  --progress, --no-progress   progress line on stderr (default: when it is a terminal)\n"
           "  --pace-ms N          sleep N ms after each commit (for interruption tests)\n"
           "  --probe-every N      stream: every N positions, greedily generate G tokens from a copy of the\n"
           "                       cache (the scored stream is untouched) and record the fluency verdict\n"
           "  --probe-tokens G     tokens per probe (default 64)\n"
           "Exit status: 0 done, 1 failed or oom (recorded), 2 usage, 130/143 interrupted by SIGINT/SIGTERM\n"
           "(resume with --resume RUN).  Output: a progress line and a summary on a terminal, else one\n"
           "JSON object on stdout.\n");
}

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
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { run_help(); return 0; }
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
