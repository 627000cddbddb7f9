/*
 * cli.c — flag parsing and error reporting shared by the lcbench commands (see cli.h), and the
 * token-id file reader used by `score` and `run`.
 */
#include "harness/cli.h"
#include "engine/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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

int read_ids_file(const char *path, int32_t **ids, size_t *n, char *err, size_t errlen) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1024, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    char tok[64];
    int rc = 0;
    if (!v) { rc = lcb_fail(err, errlen, "%s: out of memory", path); goto out; }
    for (;;) {
        int c;
        while ((c = fgetc(f)) != EOF && isspace(c)) {}
        if (c == EOF) break;
        size_t len = 0;
        do {
            if (len + 1 < sizeof tok) tok[len] = (char)c;
            len++;
        } while ((c = fgetc(f)) != EOF && !isspace(c));
        if (len >= sizeof tok) { rc = lcb_fail(err, errlen, "%s: token %zu is not an integer (too long)", path, k); goto out; }
        tok[len] = 0;
        char *end;
        errno = 0;
        long long x = strtoll(tok, &end, 10);
        if (*end || errno || x < 0 || x > INT32_MAX) {
            rc = lcb_fail(err, errlen, "%s: token %zu \"%s\" is not a non-negative integer id", path, k, tok);
            goto out;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) { rc = lcb_fail(err, errlen, "%s: out of memory", path); goto out; }
            v = nv;
        }
        v[k++] = (int32_t)x;
    }
    if (ferror(f)) rc = lcb_fail(err, errlen, "%s: read error", path);
out:
    if (f != stdin) fclose(f);
    if (rc) { free(v); return -1; }
    *ids = v;
    *n = k;
    return 0;
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

int cli_spawn(char *const argv[], const char *cwd, const char *out_path, const char *err_path, char *capture, size_t capn,
              char *err, size_t errlen) {
    posix_spawn_file_actions_t fa;
    int pipefd[2] = {-1, -1}, piped = capture && capn && out_path && !out_path[0];
    if (capture && capn) capture[0] = 0;
    if (piped && pipe2(pipefd, O_CLOEXEC)) return lcb_fail(err, errlen, "%s: cannot create a pipe: %s", argv[0], strerror(errno));
    posix_spawn_file_actions_init(&fa);
    int rc = 0;
    if (cwd) rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    /* files are opened after the chdir, so relative paths are the child's; make them ours */
    char outp[8192] = "", errp[8192] = "", here[4096] = "";
    if ((out_path && out_path[0] && out_path[0] != '/') || (err_path && err_path[0] != '/'))
        if (!getcwd(here, sizeof here)) here[0] = 0;
    if (out_path && out_path[0]) snprintf(outp, sizeof outp, "%s%s%s", out_path[0] == '/' || !here[0] ? "" : here, out_path[0] == '/' || !here[0] ? "" : "/", out_path);
    if (err_path) snprintf(errp, sizeof errp, "%s%s%s", err_path[0] == '/' || !here[0] ? "" : here, err_path[0] == '/' || !here[0] ? "" : "/", err_path);
    if (!rc && piped) rc = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    else if (!rc && outp[0]) rc = posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (!rc && errp[0]) rc = posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    pid_t pid = -1;
    if (!rc) rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (piped) close(pipefd[1]);
    if (rc) {
        if (piped) close(pipefd[0]);
        return lcb_fail(err, errlen, "cannot start %s: %s", argv[0], strerror(rc));
    }
    if (piped) {
        size_t n = 0;
        char sink[4096];
        for (;;) {
            ssize_t k = n + 1 < capn ? read(pipefd[0], capture + n, capn - 1 - n) : read(pipefd[0], sink, sizeof sink);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            if (n + 1 < capn) n += (size_t)k;
        }
        capture[n] = 0;
        close(pipefd[0]);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return lcb_fail(err, errlen, "waiting for %s: %s", argv[0], strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
