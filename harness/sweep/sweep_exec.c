/*
 * sweep_exec.c — the local executor of `lcbench sweep` (see sweep.h): a pool of worker
 * processes, each one an ordinary `lcbench run` (this binary, /proc/self/exe) writing into the
 * same results file (WAL, and the store's 10 s busy timeout, let them commit side by side).
 *
 * Before anything runs, each cell's state is read from the file: a cell whose latest run is
 * done (or oom: a measured outcome, the position is recorded) is skipped; an interrupted or
 * stale run is resumed with `lcbench run --resume`; a failed one starts again.  A failed
 * attempt is retried --retries times.  SIGINT/SIGTERM stop the launching, pass SIGTERM on
 * to the workers (which commit and mark their runs interrupted) and exit 130/143; the same
 * command later resumes.  Workers get PR_SET_PDEATHSIG, so a sweep killed with -9 takes
 * them down too (as interrupted runs), and they are found again through host+pid.
 *
 * CPU cells: each worker gets a group of cores (affinity) and OMP/OpenBLAS threads to match.
 * CUDA cells: worker k gets CUDA_VISIBLE_DEVICES = the k-th GPU of the list.
 */
#include "harness/sweep/sweep.h"
#include "engine/common.h"
#include "harness/cmd/cli.h"
#include "harness/run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

typedef struct {
    pid_t pid;          /* 0: free */
    int cell, attempt;
    int64_t run_id;     /* the run resumed, or 0 until resolved */
    int64_t row;        /* its sweep_cells rowid */
    double t0;
} Slot;

typedef enum { CS_TODO, CS_RESUME, CS_RECORDED, CS_BUSY, CS_FAILED, CS_RUNNING } CellState;


/* The CPUs this process may use, in order. */
static int allowed_cpus(int *cpus, int max) {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE && n < max; i++) if (CPU_ISSET(i, &set)) cpus[n++] = i;
    }
    if (n == 0) { long k = sysconf(_SC_NPROCESSORS_ONLN); for (int i = 0; i < k && n < max; i++) cpus[n++] = i; }
    return n;
}

/* GPUs: the plan's/flag's list, else CUDA_VISIBLE_DEVICES, else /dev/nvidiaN. */
static int detect_gpus(int *gpus, int max) {
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    int n = 0;
    if (cvd && *cvd) {
        for (const char *s = cvd; *s && n < max;) {
            gpus[n++] = atoi(s);
            s += strcspn(s, ",");
            if (*s == ',') s++;
        }
        return n;
    }
    glob_t g;
    if (glob("/dev/nvidia[0-9]*", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && n < max; i++) gpus[n++] = atoi(g.gl_pathv[i] + strlen("/dev/nvidia"));
        globfree(&g);
    }
    return n;
}

/* The last line of a log file (the error a failed run printed). */
static void log_tail(const char *path, char *out, size_t n) {
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] && line[0] != '{') snprintf(out, n, "%.400s", line);
    }
    fclose(f);
}

typedef struct {
    const SweepPlan *p;
    const SweepExecOptions *o;
    Store st;
    const char *log_dir;
    int n_todo, n_done_now, n_recorded, n_failed, n_total;
    int threads, n_cpus, cpus[1024], n_gpus, gpus[64];
    char host[256];
} Exec;

static void cell_log_path(const Exec *x, int cell, char *out, size_t n) {
    snprintf(out, n, "%s/cell-%04d-%s.log", x->log_dir, cell, x->p->cells[cell].key);
}

static void say(const Exec *x, int cell, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(const Exec *x, int cell, const char *fmt, ...) {
    char label[512], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sweep_cell_label(x->p, &x->p->cells[cell], -1, 0, label, sizeof label);
    fprintf(stderr, "sweep %s [%d/%d] cell %d (%s): %s\n", x->p->id, x->n_recorded + x->n_failed, x->n_total, cell, label, msg);
    fflush(stderr);
}

static int launch(Exec *x, Slot *sl, int slot_idx, int cell, int attempt, int64_t resume_id, char *err, size_t errlen) {
    const SweepCell *c = &x->p->cells[cell];
    const char *args[2 * SF_N + 16];
    char rid[32];
    int k = 0;
    args[k++] = "lcbench";
    args[k++] = "run";
    if (resume_id > 0) {
        snprintf(rid, sizeof rid, "%lld", (long long)resume_id);
        args[k++] = "--resume"; args[k++] = rid;
        args[k++] = "--db"; args[k++] = x->o->db;
        args[k++] = "--no-progress";
        args[k] = NULL;
    } else sweep_cell_args(c, x->o->db, args + k);
    char text[8192], logp[4200];
    sweep_cell_text(c, text, sizeof text);
    cell_log_path(x, cell, logp, sizeof logp);
    int64_t floor;
    if (store_runs_max_id(&x->st, &floor, err, errlen)) return -1;
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0) return lcb_fail(err, errlen, "%s: cannot create the cell's log: %s", logp, strerror(errno));
    {   /* a header line per attempt */
        char h[9000];
        int l = snprintf(h, sizeof h, "# attempt %d: lcbench", attempt);
        for (int i = 1; args[i] && l < (int)sizeof h; i++) l += snprintf(h + l, sizeof h - l, " %s", args[i]);
        if (l < (int)sizeof h) l += snprintf(h + l, sizeof h - l, "\n");
        if (write(fd, h, (size_t)(l < (int)sizeof h ? l : (int)sizeof h - 1)) < 0) {}
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(fd); return lcb_fail(err, errlen, "fork: %s", strerror(errno)); }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(143);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        int dev_fd = open("/dev/null", O_RDONLY);
        if (dev_fd >= 0) { dup2(dev_fd, 0); close(dev_fd); }
        char t[32];
        snprintf(t, sizeof t, "%d", x->threads);
        setenv("OMP_NUM_THREADS", t, 1);
        setenv("OPENBLAS_NUM_THREADS", t, 1);
        if (c->v[SF_DEVICE] && !strcmp(c->v[SF_DEVICE], "cuda")) {
            if (x->n_gpus > 0 && x->o->only_cell < 0) {
                char g[32];
                snprintf(g, sizeof g, "%d", x->gpus[slot_idx % x->n_gpus]);
                setenv("CUDA_VISIBLE_DEVICES", g, 1);
            }
            setenv("NCCL_NVLS_ENABLE", "0", 0);
        } else if (x->o->jobs > 1 && x->n_cpus >= x->o->jobs * x->threads) {
            cpu_set_t set;   /* this worker's core group */
            CPU_ZERO(&set);
            for (int i = 0; i < x->threads; i++) CPU_SET(x->cpus[slot_idx * x->threads + i], &set);
            sched_setaffinity(0, sizeof set, &set);
        }
        execv("/proc/self/exe", (char *const *)args);
        fprintf(stderr, "lcbench sweep: cannot execute /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd);
    /* the worker runs already: a row that cannot be written is reported, and the run is still
     * found afterwards by its cell key once a later sweep resolves it */
    const StoreSweepAttempt a = {.sweep_id = x->p->id, .cell_key = c->key, .args = text, .cell_idx = cell, .attempt = attempt,
                                 .run_id = resume_id, .host = x->host, .pid = pid, .id_floor = floor};
    int64_t row = 0;
    char werr[LCB_ERRLEN];
    if (store_sweep_attempt(&x->st, &a, &row, werr, sizeof werr)) fprintf(stderr, "lcbench sweep: %s\n", werr);
    *sl = (Slot){.pid = pid, .cell = cell, .attempt = attempt, .run_id = resume_id, .row = row, .t0 = lcb_now()};
    say(x, cell, "%s (worker %d, attempt %d, log %s)", resume_id > 0 ? "resuming" : "started", slot_idx, attempt, logp);
    return 0;
}

/* A worker ended: attach its run, record the exit, classify.  Returns the cell's new state. */
static CellState reap(Exec *x, Slot *sl, int status, int64_t *resume_id) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char err[LCB_ERRLEN];
    int64_t rid = 0;
    if (sl->row && store_sweep_attempt_end(&x->st, sl->row, code, &rid, err, sizeof err)) fprintf(stderr, "lcbench sweep: %s\n", err);
    StoreStatus status_v = STORE_STATUS_UNKNOWN;
    double ppl = NAN;
    if (rid > 0) {
        StoreRun r;
        if (store_run_get(&x->st, rid, &r, err, sizeof err) == 0) {
            status_v = store_status_shown(r.status, r.host, r.pid);
            ppl = r.ppl;
            store_run_free(&r);
        } else fprintf(stderr, "lcbench sweep: %s\n", err);
    }
    const char *status_s = rid > 0 ? store_status_name(status_v) : "none";
    double dt = lcb_now() - sl->t0;
    int cell = sl->cell;
    *resume_id = 0;
    if (rid > 0 && store_status_final(status_v)) {
        x->n_recorded++;
        x->n_done_now++;
        if (status_v == STORE_DONE) say(x, cell, "done: run %lld, PPL %.4f, %.1f s", (long long)rid, ppl, dt);
        else {
            int64_t at = -1;
            if (store_oom_pos(&x->st, rid, &at, err, sizeof err)) fprintf(stderr, "lcbench sweep: %s\n", err);
            say(x, cell, "oom: run %lld stopped at position %lld (recorded), %.1f s", (long long)rid, (long long)at, dt);
        }
        return CS_RECORDED;
    }
    char logp[4200], tail[512];
    cell_log_path(x, cell, logp, sizeof logp);
    log_tail(logp, tail, sizeof tail);
    if (code == EXIT_USAGE) {
        x->n_failed++;
        say(x, cell, "usage error, not retried: %s", tail);
        return CS_FAILED;
    }
    if (stop_signal) {
        say(x, cell, "interrupted (run %lld; rerun the sweep to resume)", (long long)rid);
        return CS_FAILED;
    }
    /* a run cut short but resumable (killed, or interrupted from outside) continues; a failed
     * one starts again */
    if (rid > 0 && (status_v == STORE_INTERRUPTED || status_v == STORE_STALE)) *resume_id = rid;
    int retries = x->o->retries;
    if (sl->attempt <= retries) {
        say(x, cell, "%s (exit %d%s%s), attempt %d of %d; retrying%s", status_s, code, tail[0] ? ": " : "", tail, sl->attempt, retries + 1,
            *resume_id ? " (resume)" : "");
        return *resume_id ? CS_RESUME : CS_TODO;
    }
    x->n_failed++;
    say(x, cell, "%s after %d attempt%s (exit %d)%s%s", status_s, sl->attempt, sl->attempt > 1 ? "s" : "", code, tail[0] ? ": " : "", tail);
    return CS_FAILED;
}

int sweep_execute(const SweepPlan *p, const SweepExecOptions *o) {
    char err[LCB_ERRLEN];
    Exec x;
    memset(&x, 0, sizeof x);
    x.p = p;
    x.o = o;
    gethostname(x.host, sizeof x.host - 1);
    char logdir[4200];
    if (o->log_dir) snprintf(logdir, sizeof logdir, "%s", o->log_dir); else snprintf(logdir, sizeof logdir, "%s.logs", o->db);
    x.log_dir = logdir;
    x.n_cpus = allowed_cpus(x.cpus, 1024);
    x.n_gpus = p->n_gpus >= 0 ? p->n_gpus : detect_gpus(x.gpus, 64);
    if (p->n_gpus >= 0) memcpy(x.gpus, p->gpus, sizeof x.gpus);
    int jobs = o->jobs > 0 ? o->jobs : 1;
    const char *spt = getenv("SLURM_CPUS_PER_TASK");
    x.threads = o->threads > 0 ? o->threads : o->only_cell >= 0 && spt && atoi(spt) > 0 ? atoi(spt) : x.n_cpus / jobs > 0 ? x.n_cpus / jobs : 1;

    if (store_open(&x.st, o->db, err, sizeof err)) { cli_error("sweep", "%s", err); return 1; }
    int rc_exit = 1;
    CellState *state = calloc((size_t)p->n_cells, sizeof *state);
    int64_t *resume = calloc((size_t)p->n_cells, sizeof *resume);
    int *attempts = calloc((size_t)p->n_cells, sizeof *attempts);
    Slot *slots = calloc((size_t)jobs, sizeof *slots);
    if (!state || !resume || !attempts || !slots) { cli_error("sweep", "out of memory"); goto out; }
    if (store_sweep_record(&x.st, p->id, p->path, p->text, p->n_cells, err, sizeof err) || store_sweep_resolve(&x.st, err, sizeof err)) {
        cli_error("sweep", "%s", err);
        goto out;
    }
    int n_resume = 0, n_busy = 0;
    for (int i = 0; i < p->n_cells; i++) {
        if (o->only_cell >= 0 && i != o->only_cell) { state[i] = CS_RECORDED; continue; }
        x.n_total++;
        StoreStatus st;
        if (store_sweep_cell(&x.st, p->cells[i].key, &resume[i], &st, err, sizeof err)) { cli_error("sweep", "%s", err); goto out; }
        if (store_status_final(st)) { state[i] = CS_RECORDED; x.n_recorded++; }
        else if (st == STORE_INTERRUPTED || st == STORE_STALE) { state[i] = CS_RESUME; n_resume++; }
        else if (st == STORE_RUNNING) { state[i] = CS_BUSY; n_busy++; }
        else { state[i] = CS_TODO; resume[i] = 0; }
        if (state[i] != CS_RESUME) resume[i] = 0;
    }
    int n_run = x.n_total - x.n_recorded - n_busy;
    fprintf(stderr, "sweep %s: %d cell%s, %d already recorded, %d to run (%d to resume)%s; %d worker%s x %d thread%s; results %s\n", p->id,
            x.n_total, x.n_total == 1 ? "" : "s", x.n_recorded, n_run, n_resume, n_busy ? ", some running elsewhere" : "", jobs,
            jobs == 1 ? "" : "s", x.threads, x.threads == 1 ? "" : "s", o->db);
    if (o->dry_run) {
        for (int i = 0; i < p->n_cells; i++) {
            if (o->only_cell >= 0 && i != o->only_cell) continue;
            const char *args[2 * SF_N + 8];
            sweep_cell_args(&p->cells[i], o->db, args);
            printf("%d %s %-9s lcbench run", i, p->cells[i].key,
                   state[i] == CS_RECORDED ? "recorded" : state[i] == CS_RESUME ? "resume" : state[i] == CS_BUSY ? "running" : "todo");
            for (int k = 0; args[k]; k++) printf(" %s", args[k]);
            printf("\n");
        }
        rc_exit = 0;
        goto out;
    }
    if (n_run > 0 && lcb_mkdir_p(logdir)) { cli_error("sweep", "%s: cannot create the log folder: %s", logdir, strerror(errno)); goto out; }

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;       /* no SA_RESTART: waitpid returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_signal = 0;
    int live = 0, forwarded = 0, launch_failed = 0;
    for (;;) {
        /* fill free workers with the next cells, in matrix order */
        for (int s = 0; s < jobs && !stop_signal && !launch_failed; s++) {
            if (slots[s].pid) continue;
            int next = -1;
            for (int i = 0; i < p->n_cells && next < 0; i++) if (state[i] == CS_TODO || state[i] == CS_RESUME) next = i;
            if (next < 0) break;
            attempts[next]++;
            if (launch(&x, &slots[s], s, next, attempts[next], state[next] == CS_RESUME ? resume[next] : 0, err, sizeof err)) {
                cli_error("sweep", "%s", err);
                launch_failed = 1;
                break;
            }
            state[next] = CS_RUNNING;
            live++;
        }
        if (live == 0) break;
        if (stop_signal && !forwarded) {
            for (int s = 0; s < jobs; s++) if (slots[s].pid) kill(slots[s].pid, SIGTERM);
            forwarded = 1;
        }
        int wst;
        pid_t pid = waitpid(-1, &wst, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            cli_error("sweep", "waitpid: %s", strerror(errno));
            break;
        }
        for (int s = 0; s < jobs; s++)
            if (slots[s].pid == pid) {
                int64_t rid;
                int cell = slots[s].cell;
                state[cell] = reap(&x, &slots[s], wst, &rid);
                if (state[cell] == CS_RESUME) resume[cell] = rid;
                slots[s].pid = 0;
                live--;
            }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    int left = 0;
    for (int i = 0; i < p->n_cells; i++) left += state[i] != CS_RECORDED;
    fprintf(stderr, "sweep %s: %d of %d cells recorded (%d this time), %d failed%s\n", p->id, x.n_recorded, x.n_total, x.n_done_now, x.n_failed,
            stop_signal ? "; interrupted: rerun the same command to resume" : "");
    if (stop_signal) rc_exit = 128 + (int)stop_signal;
    else rc_exit = left || launch_failed ? 1 : 0;
    if (!stop_signal && o->only_cell < 0) {
        if (sweep_print_grid(p, o->db, err, sizeof err)) cli_error("sweep", "%s", err);
    }
out:
    free(state); free(resume); free(attempts); free(slots);
    store_close(&x.st);
    return rc_exit;
}

/* ---------------------------------------------------------------- the grid */

int sweep_print_grid(const SweepPlan *p, const char *db, char *err, size_t errlen) {
    Store st;
    if (store_open(&st, db, err, errlen)) return -1;
    int n = p->n_cells, use_cols = p->axis_vary[SF_STRATEGY];
    char (*rows)[256] = calloc((size_t)n, sizeof *rows), (*cols)[128] = calloc((size_t)n, sizeof *cols);
    char (*val)[32] = calloc((size_t)n, sizeof *val);
    int *ri = calloc((size_t)n, sizeof *ri), *ci = calloc((size_t)n, sizeof *ci), nr = 0, nc = 0, rc = 0;
    if (!rows || !cols || !val || !ri || !ci) { rc = lcb_fail(err, errlen, "out of memory"); goto out; }
    for (int i = 0; i < n; i++) {
        const SweepCell *c = &p->cells[i];
        char r[256], k[128];
        sweep_cell_label(p, c, use_cols ? SF_STRATEGY : -1, 1, r, sizeof r);
        snprintf(k, sizeof k, "%s", use_cols ? c->v[SF_STRATEGY] : "PPL");
        int a = 0, b = 0;
        while (a < nr && strcmp(rows[a], r)) a++;
        if (a == nr) snprintf(rows[nr++], sizeof *rows, "%s", r);
        while (b < nc && strcmp(cols[b], k)) b++;
        if (b == nc) snprintf(cols[nc++], sizeof *cols, "%s", k);
        ri[i] = a; ci[i] = b;
        int64_t rid;
        StoreStatus s;
        if (store_sweep_cell(&st, c->key, &rid, &s, err, errlen)) { rc = -1; goto out; }
        if (rid > 0 && s == STORE_DONE) {
            StoreRun run;
            if (store_run_get(&st, rid, &run, err, errlen)) { rc = -1; goto out; }
            snprintf(val[i], sizeof *val, "%.3f", run.ppl);
            store_run_free(&run);
        } else if (rid > 0 && s == STORE_OOM) {
            int64_t at;
            if (store_oom_pos(&st, rid, &at, err, errlen)) { rc = -1; goto out; }
            snprintf(val[i], sizeof *val, "oom@%lld", (long long)at);
        } else snprintf(val[i], sizeof *val, "%s", rid > 0 ? store_status_name(s) : "-");
    }
    printf("sweep %s: PPL (oom@P: out of memory at position P)\n", p->id);
    int w0 = 5, w = 12;
    for (int a = 0; a < nr; a++) if ((int)strlen(rows[a]) > w0) w0 = (int)strlen(rows[a]);
    for (int b = 0; b < nc; b++) if ((int)strlen(cols[b]) > w) w = (int)strlen(cols[b]);
    printf("| %-*s |", w0, "");
    for (int b = 0; b < nc; b++) printf(" %*s |", w, cols[b]);
    printf("\n|");
    for (int i = 0; i < w0 + 2; i++) putchar('-');
    printf("|");
    for (int b = 0; b < nc; b++) { for (int i = 0; i < w + 1; i++) putchar('-'); printf(":|"); }
    printf("\n");
    for (int a = 0; a < nr; a++) {
        printf("| %-*s |", w0, rows[a]);
        for (int b = 0; b < nc; b++) {
            const char *v = "";
            for (int i = 0; i < n; i++) if (ri[i] == a && ci[i] == b) v = val[i];
            printf(" %*s |", w, v);
        }
        printf("\n");
    }
    fflush(stdout);
out:
    free(rows); free(cols); free(val); free(ri); free(ci);
    store_close(&st);
    return rc;
}
