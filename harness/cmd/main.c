/*
 * main.c — the `lcbench` command: dispatches to the commands of harness/cmd_*.c.
 * Exit status: 0 success, 2 usage error, 1 any other failure (SPEC §5).
 */
#include "harness/cmd/cli.h"
#include "harness/run/version.h"
#include "harness/run/run.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct { const char *name; int (*fn)(int, char **); const char *help; } Command;

static const Command commands[] = {
    {"tokenize", cmd_tokenize, "text on stdin -> token ids (SPEC §5)"},
    {"score", cmd_score, "token ids -> per-step NLLs under a cache strategy (SPEC §5)"},
    {"run", cmd_run, "stream a dataset through a model and a strategy into the results file"},
    {"runs", cmd_runs, "list the runs of a results file"},
    {"show", cmd_show, "summarise one run (provenance, events, memory, per-bin PPL)"},
    {"bench", cmd_bench, "CPU throughput of dense scoring and sink streaming"},
    {"report", cmd_report, "render a results file: gnuplot figures, index.md and index.html"},
    {"gate", cmd_gate, "regression gate: a results file against a baseline (exit 0 pass, 1 regression)"},
    {"plan", cmd_plan, "predict the memory of a run (weights, KV cache, workspace) without running"},
    {"generate", cmd_generate, "generate through a strategy (endless or multi-prompt chat); fluency verdicts per window"},
    {"passkey", cmd_passkey, "LongLoRA passkey retrieval: accuracy against prompt length under a strategy"},
    {"fluency", cmd_fluency, "fluency measures and verdict of text on stdin (the detector of generate/run probes)"},
    {"sweep", cmd_sweep, "run a PLAN's matrix of runs here (worker pool) or as a Slurm job array"},
    {"merge", cmd_merge, "combine results files (sweep shards) into one, without duplicates"},
    {"export", cmd_export, "a run's bins or per-step NLLs as CSV or JSON (docs/results.md)"},
    {"version", cmd_version, "the source revision and build flags compiled into this binary (also --version)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lcbench COMMAND [options]   (lcbench COMMAND --help for its options)\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
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
 * they compute: results stay bit for bit the same. */
static void runtime_env(char **argv) {
    int restart = 0;
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
    if (restart) execv("/proc/self/exe", argv); /* on failure: carry on as we are */
}

int main(int argc, char **argv) {
    runtime_env(argv);
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    if (!strcmp(argv[1], "--version")) return cmd_version(1, argv + 1);
    /* `lcbench help CMD` = `lcbench CMD --help` */
    if (!strcmp(argv[1], "help") && argc > 2) {
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            if (!strcmp(argv[2], commands[i].name)) { char *hv[] = {argv[2], "--help", NULL}; return commands[i].fn(2, hv); }
        fprintf(stderr, "lcbench help: unknown command \"%s\"\n", argv[2]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lcbench: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
