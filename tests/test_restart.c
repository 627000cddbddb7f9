/*
 * test_restart.c — lcbench's restart into OMP_WAIT_POLICY=passive (runtime_env in
 * harness/cmd/main.c): the binary, run with LCB_TRACE_RESTART set, writes one line on stderr each
 * time runtime_env runs (its pid, OMP_WAIT_POLICY, GOMP_SPINCOUNT, OPENBLAS_CORETYPE and its
 * arguments, each as LENGTH:BYTES) and one line before it restarts itself.
 *
 *   unset:    neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set: exactly one restart (same pid), after
 *             which the process sees OMP_WAIT_POLICY=passive and restarts no more; its arguments
 *             (empty ones, spaces, tabs, quotes, UTF-8) reach it byte for byte, and the command
 *             runs once with them;
 *   user's:   OMP_WAIT_POLICY=active, or GOMP_SPINCOUNT set: kept as they are, and no restart.
 * Each case runs the binary directly (fork, execve) with an environment it builds, so that the
 * caller's OMP_* and OPENBLAS_CORETYPE do not count; OPENBLAS_CORETYPE, the other reason to
 * restart, is set in the user's cases to what the unset case ended with.
 */
#include "testutil.h"

#include <poll.h>

extern char **environ;

#define TRACE "lcbench: runtime_env "

/* The output (stdout and stderr) of the binary run with argv and the environment minus the
 * variables runtime_env reads, plus `extra` (NULL-terminated "NAME=VALUE"s) and LCB_TRACE_RESTART.
 * A restart loop is cut off after 8 restarts (or 20 s) and fails the test. */
static char *run_traced(char *const argv[], const char *const extra[], int *status) {
    static const char *drop[] = {"OMP_WAIT_POLICY=", "GOMP_SPINCOUNT=", "OPENBLAS_CORETYPE=", "LCB_TRACE_RESTART="};
    size_t n = 0;
    for (char **e = environ; *e; e++) n++;
    for (const char *const *x = extra; *x; x++) n++;
    char **envp = calloc(n + 2, sizeof *envp);
    assert_non_null(envp);
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        int skip = 0;
        for (size_t d = 0; d < sizeof drop / sizeof *drop; d++) skip |= !strncmp(*e, drop[d], strlen(drop[d]));
        if (!skip) envp[k++] = *e;
    }
    for (const char *const *x = extra; *x; x++) envp[k++] = (char *)*x;
    envp[k++] = "LCB_TRACE_RESTART=1";
    envp[k] = NULL;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(fd[1]);
    free(envp);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    int looping = 0;
    for (int waited = 0;;) {
        struct pollfd p = {fd[0], POLLIN, 0};
        if (poll(&p, 1, 100) == 0) {
            if ((waited += 100) >= 20000) { looping = 1; break; }
            continue;
        }
        if (len + 4096 > cap) out = realloc(out, cap *= 2);
        ssize_t r = read(fd[0], out + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
        out[len] = 0;
        int restarts = 0;
        for (char *q = out; (q = strstr(q, TRACE "restart")); q++) restarts++;
        if (restarts > 8) { looping = 1; break; }
    }
    out[len] = 0;
    close(fd[0]);
    if (looping) kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, status, 0), pid);
    if (looping) fail_msg("%s %s: restarted more than 8 times or ran 20 s:\n%s", argv[0], argv[1], out);
    return out;
}

/* The trace lines of an output, in order (pointers into it, each cut at its end of line). */
static size_t trace_lines(char *out, char **lines, size_t max) {
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (!strncmp(l, TRACE, strlen(TRACE))) {
            if (n == max) fail_msg("more than %zu trace lines", max);
            lines[n++] = l;
        }
    return n;
}

/* A field "NAME=VALUE" of a trace line, VALUE malloc'd ("-" for unset). */
static char *field(const char *line, const char *name) {
    char key[64];
    snprintf(key, sizeof key, " %s=", name);
    const char *p = strstr(line, key);
    if (!p) fail_msg("no %s in \"%s\"", name, line);
    p += strlen(key);
    return strndup(p, strcspn(p, " "));
}

/* What the trace line of argv must end with: " argv" and " LEN:ARG" an argument. */
static char *argv_trace(char *const argv[]) {
    size_t cap = 16;
    for (char *const *a = argv; *a; a++) cap += strlen(*a) + 24;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, " argv");
    for (char *const *a = argv; *a; a++) p += sprintf(p, " %zu:%s", strlen(*a), *a);
    return s;
}

static void expect_argv(const char *line, char *const argv[]) {
    char *want = argv_trace(argv);
    const char *got = strstr(line, " argv");
    if (!got || strcmp(got, want)) fail_msg("arguments after the restart:\n  got  \"%s\"\n  want \"%s\"", got ? got : line, want);
    free(want);
}

static void expect_field(const char *line, const char *name, const char *want) {
    char *v = field(line, name);
    if (strcmp(v, want)) fail_msg("%s=%s, want %s, in \"%s\"", name, v, want, line);
    free(v);
}

/* An unknown command whose arguments carry what a re-exec could lose: empty strings, spaces
 * (leading, trailing, several), a tab, quotes, a backslash, UTF-8. */
static char *const *odd_argv(void) {
    static char *argv[16];
    if (!argv[0]) {
        char *a[] = {(char *)tu_lcbench(), "no such  command", "", " lead and trail ", "tab\there", "q\"uo'te\\", "", "ünïcødé ✓", "--db", "x y", NULL};
        memcpy(argv, a, sizeof a);
    }
    return argv;
}

/* OPENBLAS_CORETYPE as the unset case's restarted process saw it ("-" if unset), for the user's
 * cases: with it, OpenBLAS's core is no reason to restart. */
static char coretype[64];

/* (a) and (c): unset -> one restart, same pid, passive after it, arguments byte for byte */
static void test_unset_restarts_once_into_passive(void **state) {
    char *const *argv = odd_argv();
    const char *none[] = {NULL};
    int st;
    char *out = run_traced(argv, none, &st), *copy = strdup(out), *l[16];
    size_t n = trace_lines(copy, l, 16);
    if (n != 3 || strcmp(l[1], TRACE "restart")) fail_msg("want a start, one restart and a start; got %zu trace lines:\n%s", n, out);
    expect_field(l[0], "OMP_WAIT_POLICY", "-");
    expect_field(l[0], "GOMP_SPINCOUNT", "-");
    expect_argv(l[0], argv);
    expect_field(l[2], "OMP_WAIT_POLICY", "passive");
    expect_field(l[2], "GOMP_SPINCOUNT", "-");
    expect_argv(l[2], argv);
    char *p0 = field(l[0], "pid"), *p2 = field(l[2], "pid"), *ct = field(l[2], "OPENBLAS_CORETYPE");
    if (strcmp(p0, p2)) fail_msg("the restart changed the pid: %s, then %s", p0, p2);
    snprintf(coretype, sizeof coretype, "%s", ct);
    /* the command ran once, after the restart, with its first argument intact */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    const char *msg = "lcbench: unknown command \"no such  command\"";
    char *hit = strstr(out, msg);
    if (!hit || strstr(hit + 1, msg)) fail_msg("want \"%s\" once:\n%s", msg, out);
    int argc = 0;
    while (argv[argc]) argc++;
    print_message("unset: one restart (pid %s), then OMP_WAIT_POLICY=passive; %d arguments kept byte for byte; OPENBLAS_CORETYPE=%s after\n",
                  p0, argc, coretype);
    free(p0); free(p2); free(ct); free(copy); free(out);
}

/* the user's setting: kept, and no restart; OPENBLAS_CORETYPE as the unset case ended with */
static void expect_no_restart(const char *name, const char *value) {
    if (!coretype[0]) test_unset_restarts_once_into_passive(NULL);
    char set[128], ct[96];
    snprintf(set, sizeof set, "%s=%s", name, value);
    snprintf(ct, sizeof ct, "OPENBLAS_CORETYPE=%s", coretype);
    const char *extra[] = {set, strcmp(coretype, "-") ? ct : NULL, NULL};
    char *argv[] = {(char *)tu_lcbench(), "version", NULL};
    int st;
    char *out = run_traced(argv, extra, &st), *copy = strdup(out), *l[16];
    size_t n = trace_lines(copy, l, 16);
    if (n != 1) fail_msg("%s: want one start and no restart; got %zu trace lines:\n%s", set, n, out);
    expect_field(l[0], name, value);
    expect_field(l[0], "OMP_WAIT_POLICY", strcmp(name, "OMP_WAIT_POLICY") ? "-" : value);
    expect_argv(l[0], argv);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(out, "lcbench ")) fail_msg("%s: version exited %d:\n%s", set, st, out);
    print_message("%s: kept, no restart\n", set);
    free(copy);
    free(out);
}

/* (b) */
static void test_user_wait_policy_kept(void **state) {
    expect_no_restart("OMP_WAIT_POLICY", "active");
}

static void test_user_spincount_kept(void **state) { expect_no_restart("GOMP_SPINCOUNT", "1000"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unset_restarts_once_into_passive),
        cmocka_unit_test(test_user_wait_policy_kept),
        cmocka_unit_test(test_user_spincount_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
