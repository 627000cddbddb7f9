/*
 * cli.c — flag parsing and error reporting shared by the lcbench commands (see cli.h).
 */
#include "harness/cmd/cli.h"
#include "engine/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


void cli_init(Cli *c, const char *cmd, int argc, char **argv) {
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->argc = argc;
    c->argv = argv;
    c->i = 1;
}

const char *cli_next(Cli *c) {
    static char name[128];
    c->inline_val = NULL;
    if (c->i >= c->argc) return NULL;
    const char *a = c->argv[c->i++];
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (eq && (size_t)(eq - a) < sizeof name) {
        memcpy(name, a, eq - a);
        name[eq - a] = 0;
        c->inline_val = eq + 1;
        c->flag = name;
        return name;
    }
    c->flag = a;
    return a;
}

const char *cli_value(Cli *c) {
    if (c->inline_val) return c->inline_val;
    if (c->i >= c->argc) {
        cli_usage_error(c, "%s needs a value", c->flag);
        return NULL;
    }
    return c->argv[c->i++];
}

int cli_parse_count(const char *flag, const char *s, int si, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || !isdigit((unsigned char)*s)) return -1;
    double v = strtod(s, &end);
    if (errno || end == s) return -1;
    double mul = 1, base = si ? 1000.0 : 1024.0;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mul = base; break;
        case 'M': mul = base * base; break;
        case 'G': mul = base * base * base; break;
        case 'T': mul = base * base * base * base; break;
        default: return -1;
        }
        end++;
        if (!si && (*end == 'B' || *end == 'b')) end++;
        else if (!si && (*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b')) end += 2;
        if (*end) return -1;
    }
    v *= mul;
    /* range first: converting a double at or above 2^64 (e.g. "1e30") to uint64_t is undefined */
    if (!(v >= 0 && v < 18446744073709551616.0) || v != (double)(uint64_t)v || v < (double)lo || v > (double)hi) return -1;
    *out = (uint64_t)v;
    (void)flag;
    return 0;
}

int cli_usage_error(const Cli *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lcbench %s: ", c->cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see lcbench %s --help)\n", c->cmd);
    va_end(ap);
    return EXIT_USAGE;
}

void cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lcbench %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}


int cli_device_flag(Cli *c, const char *f, CliDevice *d) {
    const char *v;
    if (!strcmp(f, "--device")) {
        if (!(v = cli_value(c))) return -1;
        if (strcmp(v, "cpu") && strcmp(v, "cuda")) { cli_usage_error(c, "--device \"%s\" must be cpu or cuda", v); return -1; }
        d->device = v;
        return 1;
    }
    if (!strcmp(f, "--dtype")) {
        if (!(v = cli_value(c))) return -1;
        if (strcmp(v, "bf16") && strcmp(v, "fp16") && strcmp(v, "fp32")) { cli_usage_error(c, "--dtype \"%s\" must be bf16, fp16 or fp32", v); return -1; }
        d->dtype = v;
        return 1;
    }
    if (!strcmp(f, "--tp")) {
        if (!(v = cli_value(c))) return -1;
        if (cli_parse_count(f, v, 0, 1, 8, &d->tp)) { cli_usage_error(c, "--tp \"%s\" must be a GPU count from 1 to 8", v); return -1; }
        return 1;
    }
    return 0;
}

int cli_device_check(const Cli *c, const CliDevice *d) {
    if (d->dtype && strcmp(d->device, "cuda")) return cli_usage_error(c, "--dtype applies to --device cuda (the CPU path is fp32)");
    if (d->tp > 1 && strcmp(d->device, "cuda")) return cli_usage_error(c, "--tp applies to --device cuda");
    return 0;
}
