/*
 * cli.h — the command-line conventions every lcbench command follows: `--flag VALUE` or
 * `--flag=VALUE`, unknown flags and bad values are usage errors (exit 2) that name the flag,
 * other failures exit 1, every message goes to stderr prefixed with "lcbench <command>:".
 */
#ifndef LCB_CLI_H
#define LCB_CLI_H

#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 2

typedef struct {
    const char *cmd;    /* command name, for messages */
    int argc;
    char **argv;
    int i;              /* next argument */
    const char *flag;   /* current flag name (without value) */
    const char *inline_val; /* value given as --flag=VALUE */
} Cli;

void cli_init(Cli *c, const char *cmd, int argc, char **argv);
/* Next flag, or NULL at the end.  A positional argument is returned as is (no leading --). */
const char *cli_next(Cli *c);
/* The current flag's value; on a missing value prints a usage error and returns NULL. */
const char *cli_value(Cli *c);
/* Integer / size value with K/M/G suffixes (powers of 1000 for token counts when si=1,
 * of 1024 for bytes when si=0). */
int cli_parse_count(const char *flag, const char *s, int si, uint64_t lo, uint64_t hi, uint64_t *out);
int cli_usage_error(const Cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Where a command's model runs: --device cpu|cuda, --dtype bf16|fp16|fp32 (cuda), --tp N (cuda). */
typedef struct {
    const char *device;  /* "cpu" (default) or "cuda" */
    const char *dtype;   /* NULL: bf16 on the GPU (the CPU path is fp32) */
    uint64_t tp;         /* GPUs to split the model over, 1 by default */
} CliDevice;
#define CLI_DEVICE_DEFAULTS {"cpu", NULL, 1}
#define CLI_DEVICE_HELP                                                                                \
    "  --device D          cpu (default) or cuda\n"                                                    \
    "  --dtype T           weights on the GPU: bf16 (default), fp16 or fp32\n"                         \
    "  --tp N              split the model over N GPUs of this host (tensor parallelism; default 1)\n"
/* 1 if f is --device, --dtype or --tp (its value taken and checked), 0 if it is none of them,
 * -1 after a usage error (printed). */
int cli_device_flag(Cli *c, const char *f, CliDevice *d);
/* The combination: --dtype and --tp > 1 need --device cuda.  0, or EXIT_USAGE after printing. */
int cli_device_check(const Cli *c, const CliDevice *d);


/* Commands (harness/cmd/cmd_*.c).  Each returns the process exit status. */
int cmd_tokenize(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);   /* harness/cmd/cmd_report.c, reports/report.c */
int cmd_gate(int argc, char **argv);     /* harness/cmd/cmd_gate.c, reports/gate.c */
int cmd_plan(int argc, char **argv);     /* harness/cmd/cmd_plan.c, reports/plan.c */
/* fluency detection (harness/cmd/cmd_generate.c, cmd_passkey.c, cmd_fluency.c) */
int cmd_generate(int argc, char **argv);
int cmd_passkey(int argc, char **argv);
int cmd_fluency(int argc, char **argv);
int cmd_sweep(int argc, char **argv);      /* harness/cmd/cmd_sweep.c, harness/sweep/ */
int cmd_merge(int argc, char **argv);      /* harness/cmd/cmd_merge.c, reports/store/store_sweep.c */

#endif
