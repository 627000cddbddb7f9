/*
 * main.c — the `lcbench` command: dispatches to the commands of harness/cmd/cmd_*.c and prints
 * their help, which lives here in the command table.
 * Exit status: 0 success, 2 usage error, 1 any other failure (SPEC §5).
 */
#include "harness/cmd/cli.h"
#include "harness/run/version.h"
#include "harness/run/run.h"
#include "harness/fluency/fluency.h"
#include "strategies/strategy.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A command: its name, its function (argc, argv from the command name on; the exit status), the
 * line of `lcbench --help`, and its help, which `lcbench help CMD` and `lcbench CMD --help` (or -h,
 * anywhere among its arguments) print before the command runs, so that no command parses --help
 * itself.  The line HELP_STRATEGIES stands for the strategy registry, one strategy a line. */
typedef struct { const char *name; int (*fn)(int, char **); const char *summary; const char *help; } Command;

#define HELP_STRATEGIES "{strategies}\n"

static const Command commands[] = {
    {"tokenize", cmd_tokenize, "text on stdin -> token ids (SPEC §5)",
     "usage: lcbench tokenize --tokenizer PATH [--bos | --special] [--decode]\n"
     "  --tokenizer PATH  a tokenizer.json, or a checkpoint folder that holds one\n"
     "  --bos             prepend the tokenizer's BOS token\n"
     "  --special         add special tokens as the tokenizer's post-processor does\n"
     "  --decode          read ids on stdin and print the decoded text instead\n"
     "Reads UTF-8 text on stdin; prints the ids space-separated on one line.\n"},
    {"score", cmd_score, "token ids -> per-step NLLs under a cache strategy (SPEC §5)",
     "usage: lcbench score --model PATH --ids FILE --strategy SPEC [--chunk N] [--device cpu|cuda]\n"
     "                     [--dtype bf16|fp16|fp32] [--tp N] [--config FILE]\n"
     "  --model PATH     HF checkpoint folder (config.json + safetensors), or random:SHAPE[:SEED]\n"
     "  --ids FILE       token ids separated by white space (- for stdin)\n"
     "  --strategy SPEC  cache policy (default dense):\n"
     HELP_STRATEGIES
     "  --chunk N        tokens per forward pass (default 256 on the CPU, 4096 on a GPU; 0 = the whole input)\n"
     CLI_DEVICE_HELP
     "  --config FILE    read the model config from FILE instead of PATH/config.json\n"
     "  --attn-stats     also print to stderr, per layer, the mean attention on position 0\n"
     "                   (the first token, the usual attention sink) over steps t >= 1 (CPU)\n"
     "Prints the T-1 per-step NLLs (natural log), one per line.\n"},
    {"run", cmd_run, "stream a dataset through a model and a strategy into the results file",
     "usage: lcbench run [options]            a new run\n"
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
     "JSON object on stdout.\n"},
    {"runs", cmd_runs, "list the runs of a results file",
     "usage: lcbench runs [--db PATH] [--limit N] [--json | --csv]\n"
     "  --db PATH   results file (default results.db)\n"
     "  --limit N   only the last N runs\n"
     "  --json      a JSON array, one object per run: every column of its row and the headline's\n"
     "              values (docs/results.md); --csv: the same as CSV with a header row\n"
     "Columns: id, status (running, stale, done, oom, interrupted, failed), start time, model,\n"
     "strategy, protocol (L/S), dataset, steps done/total, PPL over the steps done.\n"},
    {"show", cmd_show, "summarise one run (provenance, events, memory, per-bin PPL)",
     "usage: lcbench show RUN [--db PATH] [--bins log2|linear|all|none] [--nll] [--json | --csv]\n"
     "  --db PATH     results file (default results.db)\n"
     "  --bins KIND   which per-position bins to print (default log2)\n"
     "  --nll         print every scored step instead: window start, in-window position, NLL\n"
     "                (tab-separated, commit order)\n"
     "  --json        the run as one JSON object: every column of its row, the headline's values,\n"
     "                its bins and events (docs/results.md)\n"
     "  --csv         the run's row and headline values as CSV (the columns of lcbench runs --csv)\n"},
    {"bench", cmd_bench, "CPU throughput of dense scoring and sink streaming",
     "usage: lcbench bench [--model M] [--tokens N] [--reps R]\n"
     "  CPU throughput of dense scoring and sink streaming (default random:llama-10m, 8192 tokens);\n"
     "  each rate is the best of R timings (default 3)\n"},
    {"report", cmd_report, "render a results file: gnuplot figures, index.md and index.html",
     "usage: lcbench report --db FILE --out DIR [--collapse-factor K] [--gnuplot PATH] [--no-svg]\n"
     "  renders a results file with gnuplot (pngcairo and svg terminals) into DIR:\n"
     "  per model log PPL and memory against position, throughput, events, the model-size x strategy\n"
     "  grid, and index.md / index.html with the tables (PPL at context lengths, PPL per bin and strategy,\n"
     "  collapse position, peak memory) and the provenance of every run\n"
     "  --db FILE              results file (default results.db)\n"
     "  --out DIR              output folder (created; files in it are replaced)\n"
     "  --collapse-factor K    collapse = first log2 bin past the context with PPL > K x a reference run's\n"
     "                         on the same steps (sinks kept, cache within the context), else the\n"
     "                         run's last in-context octave (default 3; reports/reports.h, as gate)\n"
     "  --gnuplot PATH         gnuplot binary (default gnuplot)\n"
     "  --no-svg               PNG only\n"},
    {"gate", cmd_gate, "regression gate: a results file against a baseline (exit 0 pass, 1 regression)",
     "usage: lcbench gate --db NEW --baseline BASE [options]\n"
     "  pairs runs by model hash, strategy, protocol, dataset and tokens, and fails when a pair regressed:\n"
     "  a per-bin PPL worse beyond tolerance, a worse fluency verdict, an earlier OOM or collapse\n"
     "  --db NEW               results file to judge\n"
     "  --baseline BASE        results file to judge against\n"
     "  --rel-tol R            a bin's PPL may grow by this fraction (default 0.01)\n"
     "  --sigma K              ... and by more than K combined stderrs, to fail (default 3)\n"
     "  --min-steps N          bins with fewer steps are shown, not judged (default 32)\n"
     "  --pos-tol F            an OOM, collapse or fluency loss counts as earlier when it is earlier\n"
     "                         by more than this fraction of the baseline's position (default 0)\n"
     "  --collapse-factor K    collapse = first log2 bin past the context with PPL > K x a reference\n"
     "                         run's on the same steps, else the last in-context octave (default 3)\n"
     "  --metric M             ppl (per bin and overall, default), bpb (bits per byte) or word_ppl:\n"
     "                         the tokenizer-independent ones over the whole run\n"
     "  --pair-by FIELDS       which fields pair a run with its baseline, comma-separated from model,\n"
     "                         strategy, protocol, dataset, tokens (default: all); without model,\n"
     "                         checkpoint B is gated against checkpoint A\n"
     "  --allow-missing        a baseline run with no partner, or one that did not finish (failed,\n"
     "                         killed: not comparable), is not a failure\n"
     "  --allow-empty          pass even when no pair was compared (default: that fails)\n"
     "  --verbose              print every bin, not only the regressed ones\n"
     "Exit status: 0 pass, 1 regression, 2 usage error.\n"},
    {"plan", cmd_plan, "predict the memory of a run (weights, KV cache, workspace) without running",
     "usage: lcbench plan --model M --strategy S --tokens N [--chunk N] [--device cpu|cuda] [--json]\n"
     "  predicts the memory of `lcbench run --protocol stream` without running (no weights read)\n"
     "  --model M       checkpoint folder (its config.json only), a config.json, or random:SHAPE\n"
     "                  (llama2-7b, llama2-13b, llama2-70b, mistral-7b, falcon-7b, pythia-6.9b, ...)\n"
     "  --config FILE   model config instead of M/config.json\n"
     "  --strategy S    cache policy spec (default sink = sink:4:(context-4))\n"
     "  --tokens N      stream length (K/M/G suffixes, powers of 1000)\n"
     "  --chunk N       tokens per forward pass, as for run (default 256; 0 = whole stream)\n"
     "  --device D      cpu (fp32, default) or cuda (bf16 weights and KV: an estimate)\n"
     "  --json          one JSON object on stdout (bytes)\n"},
    {"generate", cmd_generate, "generate through a strategy (endless or multi-prompt chat); fluency verdicts per window",
     "usage: lcbench generate --prompt TEXT | --prompts-file FILE [options]\n"
     "  --model PATH         checkpoint folder (default models/lcb-0.8m)\n"
     "  --tokenizer PATH     tokenizer.json or a folder holding one (default: the model's)\n"
     CLI_DEVICE_HELP
     "  --strategy SPEC      cache policy (default sink = sink:4:(context-4); not s2)\n"
     "  --prompt TEXT        a prompt (repeatable: a chat of several prompts)\n"
     "  --prompts-file FILE  one prompt a line (blank lines and #-lines skipped; \\n = newline);\n"
     "                       the project's set: datasets/prompts/chat.txt\n"
     "  --max-new N          tokens generated after each prompt (default 512; K/M suffixes)\n"
     "  --temperature T      0 = greedy (default); > 0 samples\n"
     "  --top-k K            keep the K most likely tokens (default 0 = all)\n"
     "  --top-p P            nucleus: smallest set with mass >= P (default 1)\n"
     "  --seed N             sampler seed (default 0)\n"
     "  --window G           tokens per classified window (default 128)\n"
     "  --no-bos             do not start the stream with the tokenizer's BOS\n"
     "  --words FILE         word list (default " FLUENCY_WORDLIST ", package wamerican)\n"
     "  --db PATH            results file (default results.db)\n"
     "  --print              write the prompts and the generated text to stdout (summary to stderr)\n"
     "Prompts after the first are fed as \"\\n\" + prompt after the previous answer, on the same cache.\n"
     "Output: one JSON summary line (generation id, tokens, first collapse position and verdict).\n"},
    {"passkey", cmd_passkey, "LongLoRA passkey retrieval: accuracy against prompt length under a strategy",
     "usage: lcbench passkey [options]\n"
     "  --model PATH        checkpoint folder (default models/lcb-0.8m)\n"
     "  --tokenizer PATH    tokenizer.json or a folder holding one (default: the model's)\n"
     CLI_DEVICE_HELP
     "  --strategy SPEC     cache policy (repeatable; default dense; not s2)\n"
     "  --interval N        LongLoRA's --interval (default 256): point i has\n"
     "                      n_garbage = int(3.75 (i+1) N // 1024 * 1024) filler characters\n"
     "  --max-tokens M      LongLoRA's --max_tokens (default 4096): M/N points\n"
     "  --num-tests K       seeds 0 .. K-1 per length (default 10)\n"
     "  --db PATH           results file (default results.db)\n"
     "Points with n_garbage = 0 are skipped (numpy's randint(0, 0) refuses them).\n"
     "Output: per strategy and length, mean prompt tokens and accuracy; one JSON line per point.\n"},
    {"fluency", cmd_fluency, "fluency measures and verdict of text on stdin (the detector of generate/run probes)",
     "usage: lcbench fluency [--tokenizer PATH [--window G]] [--words FILE] < text\n"
     "  --tokenizer PATH   tokenize the text (repetition measured on tokens; else on bytes)\n"
     "  --window G         classify windows of G tokens (default: the whole text as one)\n"
     "  --words FILE       word list (default " FLUENCY_WORDLIST ")\n"
     "Output: one JSON line per window: position, measures, verdict.\n"},
    {"sweep", cmd_sweep, "run a PLAN's matrix of runs here (worker pool) or as a Slurm job array",
     "usage: lcbench sweep PLAN [options]               run the plan's cells here (local executor)\n"
     "       lcbench sweep PLAN --slurm [--wait] [...]  one Slurm job array, one DB shard per cell\n"
     "       lcbench sweep PLAN --cell I --db SHARD    run cell I only (what each array task runs)\n"
     "PLAN: a JSON file listing the matrix (models x strategies x tokens x protocols x devices x\n"
     "datasets) and run options; see docs/sweeps.md.  Each cell is one `lcbench run`, recorded\n"
     "under the sweep's id and the cell's key; cells already recorded (done, or oom) are not run\n"
     "again, interrupted ones are resumed: rerun the same command after an interruption.\n"
     "  --db PATH        results file (default results.db); with --slurm, where shards are merged\n"
     "  --jobs N         worker processes (default: the plan's, else one per GPU for cuda cells, else 1)\n"
     "  --threads N      OMP/OpenBLAS threads per worker (default: cores / jobs); CPU workers get\n"
     "                   disjoint core groups\n"
     "  --gpus LIST      GPU indices for cuda cells, e.g. 0,1,2,3 (default: CUDA_VISIBLE_DEVICES,\n"
     "                   else every /dev/nvidiaN); worker k gets CUDA_VISIBLE_DEVICES=LIST[k]\n"
     "  --retries N      extra attempts of a failed cell (default: the plan's, else 1)\n"
     "  --log-dir DIR    per-cell logs (default DB.logs/)\n"
     "  --dry-run        list the cells, their state and their commands; run nothing\n"
     "  --status         print the cells' results grid from the results file; run nothing\n"
     "  --cell I         run only cell I (0-based, the order of --dry-run)\n"
     "  --slurm          submit a job array with sbatch instead of running here\n"
     "  --dir DIR        (--slurm) sweep folder: plan copy, sbatch script, shards/, logs/\n"
     "                   (default sweeps/SWEEP_ID)\n"
     "  --wait           (--slurm) poll squeue until the array ends, then merge into --db\n"
     "  --poll S         (--slurm --wait) seconds between polls (default 5)\n"
     "Exit status: 0 every cell recorded, 1 some cell failed, 2 usage or plan error,\n"
     "130/143 interrupted (rerun to resume).\n"},
    {"merge", cmd_merge, "combine results files (sweep shards) into one, without duplicates",
     "usage: lcbench merge SHARD... -o ALL.db\n"
     "  -o, --out PATH   the merged results file (created if missing; merging into an existing\n"
     "                   file adds what it lacks)\n"
     "Each run of each shard is copied with its per-step NLLs, bins, samples, events, document\n"
     "boundaries and sweep cells, under a new id, plus a `merged` event naming its shard and old\n"
     "id.  A run already in the output (same start time, command line, model and dataset hashes,\n"
     "revision) is skipped, unless the shard's copy went further, which then replaces it.\n"},
    {"export", cmd_export, "a run's bins or per-step NLLs as CSV or JSON (docs/results.md)",
     "usage: lcbench export RUN (--bins | --steps) [--json | --csv] [-o FILE] [--db PATH] [--kind K]\n"
     "  --bins        the run's per-position bins: kind, lo, hi, count, mean_nll, ppl, stderr\n"
     "  --steps       every scored step from the nll blobs: win_start, pos (in-window position t),\n"
     "                stream_pos (win_start + pos), nll (nats; the target is stream token stream_pos + 1)\n"
     "  --kind K      with --bins: only log2, linear or all (default: every kind)\n"
     "  --csv         CSV with a header row (default); --json: one JSON array of objects (--steps:\n"
     "                streamed, one object a line, in bounded memory)\n"
     "  -o FILE       write there instead of stdout\n"
     "  --db PATH     results file (default results.db)\n"
     "Columns and the results file's schema: docs/results.md.\n"},
    {"version", cmd_version, "the source revision and build flags compiled into this binary (also --version)",
     "usage: lcbench version   (or lcbench --version)\n"
     "  the source revision, compiler flags and data folder this binary was built with\n"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lcbench COMMAND [options]   (lcbench COMMAND --help for its options)\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

/* A command's help text, HELP_STRATEGIES expanded. */
static void help_print(const char *text) {
    const char *mark = strstr(text, HELP_STRATEGIES);
    if (!mark) { fputs(text, stdout); return; }
    fwrite(text, 1, (size_t)(mark - text), stdout);
    size_t n;
    const StrategyOps *const *list = strategy_list(&n);
    for (size_t i = 0; i < n; i++) printf("                     %-14s %s\n", list[i]->synopsis, list[i]->help);
    fputs(mark + strlen(HELP_STRATEGIES), stdout);
}

/* Settings that the OpenBLAS and OpenMP runtimes read when they load, before main: lcbench
 * restarts itself once (execv of /proc/self/exe, same pid and arguments) when one is needed.
 * A variable set by the user is always respected.
 *
 * OpenBLAS 0.3.21 (Debian 12) does not know recent Intel cores (e.g. Sapphire Rapids) and falls
 * back to its generic SSE3 "Prescott" kernels, 3-5x slower.  On a CPU with AVX2, OPENBLAS_CORETYPE
 * then names the newest kernel family it has; the fixture tests pass with these kernels.
 *
 * libgomp's threads spin while they wait for the next parallel region or at a barrier (about
 * 300,000 polls before they sleep).  On cores shared with other jobs a spinning thread burns the
 * time its partner, descheduled, needs to reach the barrier: perf of a 2-thread chunks-bos run on
 * BENCHMARKS.md's 2-core machine under load put 80% of the samples in libgomp's spin, and the run
 * took 6.1-7.1 s against 1.5-1.6 s with OMP_WAIT_POLICY=passive.  So waiting threads sleep,
 * unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set.  Only when threads sleep changes, never what
 * they compute: results stay bit for bit the same.
 *
 * LCB_TRACE_RESTART (set to anything) makes the restart visible, for tests/test_restart.c: each
 * time this runs, before and after a restart, it writes to stderr a line
 *   lcbench: runtime_env pid=PID OMP_WAIT_POLICY=V GOMP_SPINCOUNT=V OPENBLAS_CORETYPE=V argv LEN:ARG ...
 * (V: the value, or "-" for unset; each argument as its length in bytes, a colon and its bytes,
 * so that empty ones and spaces show), and a line "lcbench: runtime_env restart" before execv. */
static void runtime_trace(char **argv) {
    const char *names[] = {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_CORETYPE"};
    fprintf(stderr, "lcbench: runtime_env pid=%ld", (long)getpid());
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) fprintf(stderr, " %s=%s", names[i], getenv(names[i]) ? getenv(names[i]) : "-");
    fputs(" argv", stderr);
    for (char **a = argv; *a; a++) fprintf(stderr, " %zu:%s", strlen(*a), *a);
    fputc('\n', stderr);
}

static void runtime_env(char **argv) {
    int restart = 0, trace = getenv("LCB_TRACE_RESTART") != NULL;
    if (trace) runtime_trace(argv);
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        restart = 1;
    }
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : openblas_get_corename();
    if (core && strcasecmp(core, "prescott") == 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            setenv("OPENBLAS_CORETYPE", __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell", 1);
            restart = 1;
        }
    }
    if (!restart) return;
    if (trace) fputs("lcbench: runtime_env restart\n", stderr);
    execv("/proc/self/exe", argv); /* on failure: carry on as we are */
}

int main(int argc, char **argv) {
    runtime_env(argv);
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    if (!strcmp(argv[1], "--version")) return cmd_version(1, argv + 1);
    /* `lcbench help CMD` = `lcbench CMD --help` */
    if (!strcmp(argv[1], "help") && argc > 2) {
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            if (!strcmp(argv[2], commands[i].name)) { help_print(commands[i].help); return 0; }
        fprintf(stderr, "lcbench help: unknown command \"%s\"\n", argv[2]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            for (int j = 2; j < argc; j++)
                if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) { help_print(commands[i].help); return 0; }
            return commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "lcbench: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
