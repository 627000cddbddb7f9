/*
 * slurm.c — the Slurm executor of `lcbench sweep --slurm` (see sweep.h): Slurm schedules, we
 * only describe the work.  The sweep folder gets a frozen copy of the plan (array indices
 * are cell indices of that copy), one job-array script in which task i runs
 *   lcbench sweep DIR/plan.json --cell i --db DIR/shards/shard-i.db
 * (the local executor restricted to one cell: retries and resume included), and the shards.
 * `sbatch --parsable` submits; with --wait we poll `squeue` until the array is gone, then
 * merge the shards into the results file (`lcbench merge`).  Cells already recorded in the
 * results file or in their shard are left out of the array, so a resubmission after an
 * interruption runs only what is missing.
 */
#include "harness/sweep/sweep.h"
#include "engine/common.h"
#include "harness/cmd/cli.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int mkdirs(const char *path) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') { *s = 0; if (mkdir(p, 0777) && errno != EEXIST) return -1; *s = '/'; }
    return mkdir(p, 0777) && errno != EEXIST ? -1 : 0;
}

/* 'x' for /bin/sh. */
static void shq(char *out, size_t n, const char *s) {
    size_t k = 0;
    if (k < n) out[k++] = '\'';
    for (; *s && k + 5 < n; s++) {
        if (*s == '\'') { memcpy(out + k, "'\\''", 4); k += 4; }
        else out[k++] = *s;
    }
    if (k + 1 < n) out[k++] = '\'';
    out[k < n ? k : n - 1] = 0;
}

/* Run argv (PATH lookup), stdout and stderr into out; the exit status, or -1. */
static int capture(char *const *argv, char *out, size_t n) {
    int fd[2];
    out[0] = 0;
    if (pipe(fd)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(fd[0]); close(fd[1]); return -1; }
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot execute %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t k = 0;
    ssize_t r;
    char sink[4096];
    while ((r = read(fd[0], k + 1 < n ? out + k : sink, k + 1 < n ? n - 1 - k : sizeof sink)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0 && k + 1 < n) k += (size_t)r;
    out[k] = 0;
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether the cell is recorded (done or oom) in the results file at path (absent: no). */
static int recorded_in(const char *path, const char *key) {
    if (access(path, R_OK)) return 0;
    Store s;
    char err[LCB_ERRLEN];
    int64_t rid;
    StoreStatus st;
    if (store_open(&s, path, err, sizeof err)) return 0;
    int yes = store_sweep_cell(&s, key, &rid, &st, err, sizeof err) == 0 && rid > 0 && store_status_final(st);
    store_close(&s);
    return yes;
}

static int write_file(const char *path, const char *text, int mode, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) return lcb_fail(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f)) return lcb_fail(err, errlen, "%s: write error", path);
    if (mode) chmod(path, (mode_t)mode);
    return 0;
}

static volatile sig_atomic_t wait_stop;
static void on_wait_stop(int sig) { wait_stop = sig; }

/* Poll squeue until job `id` has no task left; one line per task state change. */
static int wait_job(const SweepPlan *p, const char *id, double poll_s) {
    char states[4096][12];
    memset(states, 0, sizeof states);
    struct sigaction sa, o1, o2;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_wait_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &o1);
    sigaction(SIGTERM, &sa, &o2);
    wait_stop = 0;
    int rc = 0, misses = 0;
    double t0 = lcb_now();
    for (;;) {
        char out[65536];
        char *argv[] = {"squeue", "-h", "-r", "-j", (char *)id, "-o", "%i %T", NULL};
        int r = capture(argv, out, sizeof out);
        int any = 0;
        if (r == 0) {
            misses = 0;
            for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
                char jid[64], st[32];
                if (sscanf(line, "%63s %31s", jid, st) != 2) continue;
                any = 1;
                const char *us = strchr(jid, '_');
                int task = us ? atoi(us + 1) : 0;
                if (task < 0 || task >= 4096 || !strcmp(states[task], st)) continue;
                snprintf(states[task], sizeof states[task], "%.11s", st);
                fprintf(stderr, "sweep %s: slurm job %s task %d (cell %d): %s  (%.0f s)\n", p->id, id, task, task, st, lcb_now() - t0);
            }
        } else if (strstr(out, "Invalid job id")) any = 0;  /* gone from the controller: finished */
        else if (++misses > 5) { cli_error("sweep", "squeue failed %d times in a row (exit %d): %s", misses, r, out); rc = 1; break; }
        else any = 1;
        if (!any) break;
        for (double t = 0; t < poll_s && !wait_stop; t += 0.1) { struct timespec ts = {0, 100000000L}; nanosleep(&ts, NULL); }
        if (wait_stop) {
            fprintf(stderr, "sweep %s: stopped waiting; job %s keeps running (scancel %s to stop it; rerun with --wait to collect)\n", p->id, id, id);
            rc = 128 + (int)wait_stop;
            break;
        }
    }
    sigaction(SIGINT, &o1, NULL);
    sigaction(SIGTERM, &o2, NULL);
    return rc;
}

static int collect(const SweepPlan *p, const SlurmOptions *o, const char *shards) {
    char pat[PATH_MAX + 32], err[LCB_ERRLEN];
    snprintf(pat, sizeof pat, "%s/shard-*.db", shards);
    glob_t g;
    int rc = 0;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            StoreMergeStats ms;
            if (store_merge(o->db, g.gl_pathv[i], &ms, err, sizeof err)) { cli_error("sweep", "merge: %s", err); rc = 1; continue; }
            fprintf(stderr, "sweep %s: merged %s: %lld added, %lld updated, %lld already there\n", p->id, g.gl_pathv[i], (long long)ms.added,
                    (long long)ms.replaced, (long long)ms.skipped);
        }
        globfree(&g);
    }
    int n_rec = 0;
    for (int i = 0; i < p->n_cells; i++) {
        int r = recorded_in(o->db, p->cells[i].key);
        n_rec += r;
        if (!r) fprintf(stderr, "sweep %s: cell %d not recorded (see %s/../logs/)\n", p->id, i, shards);
    }
    fprintf(stderr, "sweep %s: %d of %d cells recorded in %s\n", p->id, n_rec, p->n_cells, o->db);
    if (sweep_print_grid(p, o->db, err, sizeof err)) { cli_error("sweep", "%s", err); rc = 1; }
    return rc || n_rec < p->n_cells ? 1 : 0;
}

int slurm_submit(const SweepPlan *p, const SlurmOptions *o) {
    char err[LCB_ERRLEN], dir[PATH_MAX], shards[PATH_MAX + 16], logs[PATH_MAX + 16], plan[PATH_MAX + 16], script[PATH_MAX + 16];
    char given[PATH_MAX];
    if (o->dir) snprintf(given, sizeof given, "%s", o->dir); else snprintf(given, sizeof given, "sweeps/%s", p->id);
    if (mkdirs(given) || !realpath(given, dir)) { cli_error("sweep", "--dir %s: cannot create the sweep folder: %s", given, strerror(errno)); return 1; }
    snprintf(shards, sizeof shards, "%s/shards", dir);
    snprintf(logs, sizeof logs, "%s/logs", dir);
    snprintf(plan, sizeof plan, "%s/plan.json", dir);
    snprintf(script, sizeof script, "%s/sweep.sbatch", dir);
    if (mkdirs(shards) || mkdirs(logs)) { cli_error("sweep", "%s: cannot create shards/ and logs/: %s", dir, strerror(errno)); return 1; }
    /* the frozen plan: its cell indices are the array's */
    if (access(plan, R_OK) == 0) {
        SweepPlan old;
        int same = sweep_plan_load(&old, plan, err, sizeof err) == 0 && old.n_cells == p->n_cells;
        for (int i = 0; same && i < p->n_cells; i++) same = !strcmp(old.cells[i].key, p->cells[i].key);
        sweep_plan_free(&old);
        if (!same) {
            cli_error("sweep", "--dir %s holds a different plan (its cells differ from %s); use another --dir", dir, p->path);
            return EXIT_USAGE;
        }
    } else if (write_file(plan, p->text, 0, err, sizeof err)) { cli_error("sweep", "%s", err); return 1; }

    /* the cells still to run, as an sbatch array list "0-3,5,7-9" */
    char list[16384] = "";
    size_t l = 0;
    int n_todo = 0, any_cuda = 0;
    for (int i = 0; i < p->n_cells; i++) {
        char shard[PATH_MAX + 64];
        snprintf(shard, sizeof shard, "%s/shard-%d.db", shards, i);
        if (recorded_in(o->db, p->cells[i].key) || recorded_in(shard, p->cells[i].key)) continue;
        any_cuda |= p->cells[i].v[SF_DEVICE] && !strcmp(p->cells[i].v[SF_DEVICE], "cuda");
        int j = i;
        while (j + 1 < p->n_cells) {
            char s2[PATH_MAX + 64];
            snprintf(s2, sizeof s2, "%s/shard-%d.db", shards, j + 1);
            if (recorded_in(o->db, p->cells[j + 1].key) || recorded_in(s2, p->cells[j + 1].key)) break;
            j++;
        }
        if (l + 32 < sizeof list) l += (size_t)snprintf(list + l, sizeof list - l, j > i ? "%s%d-%d" : "%s%d", l ? "," : "", i, j);
        n_todo += j - i + 1;
        i = j;
    }
    if (n_todo == 0) {
        fprintf(stderr, "sweep %s: every cell is already recorded; nothing to submit\n", p->id);
        return o->wait && !o->dry_run ? collect(p, o, shards) : 0;
    }

    char exe[PATH_MAX], cwd[PATH_MAX];
    if (!realpath("/proc/self/exe", exe)) snprintf(exe, sizeof exe, "lcbench");
    if (!getcwd(cwd, sizeof cwd)) { cli_error("sweep", "getcwd: %s", strerror(errno)); return 1; }
    char q_exe[PATH_MAX * 4], q_plan[PATH_MAX * 4], q_shards[PATH_MAX * 4], q_logs[PATH_MAX * 4], name[160];
    shq(q_exe, sizeof q_exe, exe);
    shq(q_plan, sizeof q_plan, plan);
    shq(q_shards, sizeof q_shards, shards);
    shq(q_logs, sizeof q_logs, logs);
    snprintf(name, sizeof name, "lcb-%s", p->id);
    size_t cap = 65536 + sizeof list;
    char *s = malloc(cap);
    if (!s) { cli_error("sweep", "out of memory"); return 1; }
    size_t k = 0;
#define W(...) do { if (k < cap) k += (size_t)snprintf(s + k, cap - k, __VA_ARGS__); } while (0)
    W("#!/bin/sh\n# lcbench sweep %s: one cell of %s per array task (generated by lcbench sweep --slurm)\n", p->id, p->path);
    W("#SBATCH --job-name=%s\n#SBATCH --array=%s\n#SBATCH --output=%s/task-%%a.out\n#SBATCH --chdir=%s\n#SBATCH --ntasks=1\n", name, list, logs, cwd);
    int threads = o->threads > 0 ? o->threads : p->threads;
    if (threads > 0) W("#SBATCH --cpus-per-task=%d\n", threads);
    if (any_cuda) W("#SBATCH --gres=gpu:1\n");
    for (int i = 0; i < p->n_sbatch; i++) W("#SBATCH %s\n", p->sbatch[i]);
    W("# NVLink multicast off: it can take a shared host's GPUs down\nexport NCCL_NVLS_ENABLE=0\n");
    W("exec %s sweep %s --cell \"$SLURM_ARRAY_TASK_ID\" --db %s/shard-\"$SLURM_ARRAY_TASK_ID\".db --retries %d --log-dir %s\n", q_exe, q_plan,
      q_shards, o->retries, q_logs);
#undef W
    int wr = k >= cap ? lcb_fail(err, sizeof err, "%s: the script is too long", script) : write_file(script, s, 0755, err, sizeof err);
    free(s);
    if (wr) { cli_error("sweep", "%s", err); return 1; }
    if (o->dry_run) {
        printf("%s\n", script);
        fprintf(stderr, "sweep %s: %d cells to run; --dry-run: not submitted (sbatch %s)\n", p->id, n_todo, script);
        return 0;
    }
    char out[4096];
    char *argv[] = {"sbatch", "--parsable", script, NULL};
    int r = capture(argv, out, sizeof out);
    char job[64] = "";
    if (r == 0) sscanf(out, "%63[0-9]", job);
    if (r != 0 || !job[0]) {
        out[strcspn(out, "\n")] = 0;
        cli_error("sweep", "sbatch %s failed (exit %d): %s", script, r, out[0] ? out : "(no output)");
        return 1;
    }
    char jf[PATH_MAX + 16];
    snprintf(jf, sizeof jf, "%s/job_id", dir);
    FILE *f = fopen(jf, "a");
    if (f) { fprintf(f, "%s %s\n", job, list); fclose(f); }
    fprintf(stderr, "sweep %s: submitted Slurm job %s: %d array task%s (cells %s); shards in %s\n", p->id, job, n_todo, n_todo == 1 ? "" : "s", list, shards);
    if (!o->wait) {
        fprintf(stderr, "sweep %s: when it ends: lcbench merge %s/shard-*.db -o %s   (or rerun with --wait)\n", p->id, shards, o->db);
        printf("%s\n", job);
        return 0;
    }
    r = wait_job(p, job, o->poll_s > 0 ? o->poll_s : 5);
    if (r) return r;
    return collect(p, o, shards);
}
