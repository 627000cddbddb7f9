/*
 * main.c — the `lcbench` command: dispatches to the commands of harness/cmd_*.c.
 * Exit status: 0 success, 2 usage error, 1 any other failure (SPEC §5).
 */
#include "harness/cli.h"

#include <stdio.h>
#include <string.h>

typedef struct { const char *name; int (*fn)(int, char **); const char *help; } Command;

static const Command commands[] = {
    {"tokenize", cmd_tokenize, "text on stdin -> token ids (SPEC §5)"},
    {"score", cmd_score, "token ids -> per-step NLLs under a cache strategy (SPEC §5)"},
    {"run", cmd_run, "stream a dataset through a model and a strategy into the results file"},
    {"runs", cmd_runs, "list the runs of a results file"},
    {"show", cmd_show, "summarise one run (provenance, events, memory, per-bin PPL)"},
    {"bench", cmd_bench, "CPU throughput of dense scoring and sink streaming"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lcbench COMMAND [options]   (lcbench COMMAND --help for its options)\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lcbench: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
