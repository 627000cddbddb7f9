/*
 * test_reliability_cli.c — every lcbench command validates its flags the same way (harness/cli.h):
 * `--help` and `-h` print its usage and exit 0; an unknown flag, a flag without its value and a
 * malformed count are usage errors (exit 2) whose message names the argument at fault.
 *
 * The commands and their flags are read from `lcbench --help` and each `lcbench CMD --help`, so
 * a new command or flag is covered without editing this file: a flag is taken to need a value
 * when its help shows an upper-case placeholder (`--db PATH`), and to be an integer count when
 * the placeholder is N.  Commands run in a scratch folder with stdin from /dev/null and a
 * time limit, so a validation gap shows up as a failure, not as a run.
 */
#include "testutil.h"

#include <ctype.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct { char name[128]; char meta[32]; } Flag;

/* Flags of a help text: "--name META" (META upper case) or a bare "--name". */
static int parse_flags(const char *help, Flag *out, int max) {
    int n = 0;
    for (const char *p = help; (p = strstr(p, "--")) && n < max; p += 2) {
        if (p > help && (isalnum((unsigned char)p[-1]) || p[-1] == '-')) continue;
        const char *q = p + 2;
        if (!islower((unsigned char)*q)) continue;
        while (isalnum((unsigned char)*q) || *q == '-') q++;
        Flag f = {0};
        snprintf(f.name, sizeof f.name, "%.*s", (int)(q - p), p);
        if (*q == ' ' && isupper((unsigned char)q[1])) {
            const char *m = q + 1, *e = m;
            while (isupper((unsigned char)*e) || *e == '_') e++;
            if (*e == 0 || *e == ' ' || *e == '\n' || *e == ']' || *e == ',' || *e == ')') snprintf(f.meta, sizeof f.meta, "%.*s", (int)(e - m), m);
        }
        int seen = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(out[i].name, f.name)) { seen = 1; if (!out[i].meta[0]) snprintf(out[i].meta, sizeof out[i].meta, "%s", f.meta); }
        if (!seen) out[n++] = f;
    }
    return n;
}

static char g_lcb[4096], g_dir[600];

/* Run `lcbench ARGS` in the scratch folder; returns the exit status, output in *out. */
static int lcb(char **out, const char *args) {
    return tu_run(out, "cd %s && OMP_NUM_THREADS=1 timeout 60 %s %s </dev/null", g_dir, g_lcb, args); /* one thread: 200+ short processes */
}

static void test_commands(void **state) {
    (void)state;
    const char *b = tu_lcbench();
    if (b[0] == '/') snprintf(g_lcb, sizeof g_lcb, "%s", b);
    else { char cwd[2048]; if (!getcwd(cwd, sizeof cwd)) fail_msg("getcwd"); snprintf(g_lcb, sizeof g_lcb, "%s/%s", cwd, b); }
    snprintf(g_dir, sizeof g_dir, "%s/cli", tu_tmpdir());
    mkdir(g_dir, 0755);

    char *out;
    int rc = lcb(&out, "");
    if (rc != 2) fail_msg("lcbench with no command: exit %d", rc);
    free(out);
    rc = lcb(&out, "no-such-command");
    if (rc != 2 || !strstr(out, "no-such-command")) fail_msg("unknown command: exit %d: %s", rc, out);
    free(out);
    char *top;
    if ((rc = lcb(&top, "--help"))) fail_msg("lcbench --help: exit %d", rc);

    int n_cmd = 0, n_checks = 0;
    for (char *line = strtok(top, "\n"); line; line = strtok(NULL, "\n")) {
        char cmd[64];
        if (line[0] != ' ' || sscanf(line, " %63s", cmd) != 1 || !islower((unsigned char)cmd[0])) continue;
        n_cmd++;
        char args[1024], *help = NULL;
        for (int h = 0; h < 2; h++) {
            char *text;
            snprintf(args, sizeof args, "%s %s", cmd, h ? "-h" : "--help");
            rc = lcb(&text, args);
            if (rc != 0 || !strstr(text, "usage")) fail_msg("lcbench %s: exit %d, no usage: %s", args, rc, text);
            if (h) free(text); else help = text; /* flags are read from the --help text */
        }
        snprintf(args, sizeof args, "%s --no-such-flag", cmd);
        rc = lcb(&out, args);
        if (rc != 2 || !strstr(out, "--no-such-flag")) fail_msg("lcbench %s: exit %d (2 expected), flag not named: %s", args, rc, out);
        free(out);
        n_checks += 3;
        Flag flags[96];
        int nf = parse_flags(help, flags, 96);
        for (int i = 0; i < nf; i++) {
            if (!flags[i].meta[0] || !strcmp(flags[i].name, "--help")) continue;
            /* the value is missing */
            snprintf(args, sizeof args, "%s %.127s", cmd, flags[i].name);
            rc = lcb(&out, args);
            if (rc != 2 || !strstr(out, flags[i].name)) fail_msg("lcbench %s (no value): exit %d (2 expected), flag not named: %s", args, rc, out);
            free(out);
            n_checks++;
            if (strcmp(flags[i].meta, "N")) continue;
            /* an integer count: malformed, negative, fractional, overflowing, unknown unit */
            static const char *const bad[] = {"abc", "-5", "1.5", "1e30", "12Q", ""};
            for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
                snprintf(args, sizeof args, "%s %.127s '%s'", cmd, flags[i].name, bad[k]);
                rc = lcb(&out, args);
                if (rc != 2 || !strstr(out, flags[i].name)) fail_msg("lcbench %s: exit %d (2 expected), flag not named: %s", args, rc, out);
                free(out);
                n_checks++;
            }
        }
        free(help);
    }
    free(top);
    print_message("%d commands, %d flag checks: help, unknown flags, missing values and malformed counts all usage errors naming the argument\n",
                  n_cmd, n_checks);
    assert_true(n_cmd >= 5);
    /* nothing was created by a refused command */
    rc = tu_run(&out, "ls -A %s | wc -l", g_dir);
    if (atoi(out) != 0) { char *ls; tu_run(&ls, "ls -A %s", g_dir); fail_msg("refused commands left files behind: %s", ls); }
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_commands)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
