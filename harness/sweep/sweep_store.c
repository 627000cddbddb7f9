/*
 * sweep_store.c — what a sweep keeps in the results file (see sweep.h): rows of the `sweeps` and
 * `sweep_cells` side tables (made by store.c's migrations), the lookup that decides whether a cell is already recorded, and
 * `lcbench merge`, which copies the runs of DB shards (with every row that hangs off them)
 * into one file, skipping the runs it already holds.
 *
 * Merge identity: a run is the same run when its start time, command line, model hash,
 * dataset hash and lcbench revision agree (a resumed run keeps all five; its pid and host
 * may change).  Of two copies, the one with more steps done wins, so merging a shard again
 * after its task went further updates the run in place, and merging twice changes nothing.
 * Child tables are copied by their common columns, so shards of an older schema still merge.
 */
#include "harness/sweep/sweep.h"
#include "engine/common.h"
#include "harness/run/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sweep_store_plan(Store *s, const SweepPlan *p, char *err, size_t errlen) {
    sqlite3_stmt *st;
    char now[32];
    store_now(now);
    if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO sweeps (id, plan_path, plan, n_cells, created) VALUES (?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return lcb_fail(err, errlen, "%s: recording the sweep: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->text, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, p->n_cells);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return lcb_fail(err, errlen, "%s: recording the sweep: %s", s->path, sqlite3_errmsg(s->db));
    return 0;
}

int sweep_store_resolve(Store *s, char *err, size_t errlen) {
    /* the run a child created: this host, this pid, an id above the floor seen at launch */
    return store_exec(s,
        "UPDATE sweep_cells SET run_id = (SELECT MIN(r.id) FROM runs r WHERE r.host = sweep_cells.host"
        " AND r.pid = sweep_cells.pid AND r.id > sweep_cells.id_floor) WHERE run_id IS NULL AND pid IS NOT NULL",
        err, errlen);
}

int sweep_store_cell(Store *s, const char *key, int64_t *run_id, char *status, size_t n, char *err, size_t errlen) {
    sqlite3_stmt *st;
    *run_id = 0;
    snprintf(status, n, "none");
    /* a cell's latest run; a done (or oom) run anywhere outranks a later failed attempt */
    if (sqlite3_prepare_v2(s->db, "SELECT r.id, r.status, r.host, r.pid FROM sweep_cells c JOIN runs r ON r.id = c.run_id"
                                  " WHERE c.cell_key = ? ORDER BY r.status IN ('done','oom') DESC, r.id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return lcb_fail(err, errlen, "%s: reading sweep cells: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(st, 0);
        snprintf(status, n, "%s", store_status_display((const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                                                     sqlite3_column_int64(st, 3)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return lcb_fail(err, errlen, "%s: reading sweep cells: %s", s->path, sqlite3_errmsg(s->db));
    return 0;
}

/* ---------------------------------------------------------------- merge */

/* "a,b,c" = the columns table t has in both main and s, minus `skip`. */
static int common_cols(Store *o, const char *t, const char *skip, char *out, size_t n, int *exists_in_shard) {
    char sql[256];
    sqlite3_stmt *st;
    out[0] = 0;
    *exists_in_shard = 0;
    snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s', 'main') WHERE name IN (SELECT name FROM pragma_table_info('%s', 's'))", t, t);
    if (sqlite3_prepare_v2(o->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    size_t l = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(st, 0);
        *exists_in_shard = 1;
        if (skip && !strcmp(c, skip)) continue;
        l += (size_t)snprintf(out + l, n - l, "%s\"%s\"", l ? "," : "", c);
        if (l >= n) { sqlite3_finalize(st); return -1; }
    }
    sqlite3_finalize(st);
    return 0;
}

static const char *const child_tables[] = {"nll", "bins", "samples", "events", "docs", "sweep_cells"};
#define N_CHILD (sizeof child_tables / sizeof *child_tables)

typedef struct { char cols[N_CHILD][2048]; int has[N_CHILD]; char run_cols[4096]; } MergeCols;

static int copy_children(Store *o, const MergeCols *mc, int64_t from, int64_t to, char *err, size_t errlen) {
    for (size_t t = 0; t < N_CHILD; t++) {
        if (!mc->has[t]) continue;
        char sql[4800];
        snprintf(sql, sizeof sql, "INSERT INTO main.%s (run_id%s%s) SELECT %lld%s%s FROM s.%s WHERE run_id = %lld", child_tables[t],
                 mc->cols[t][0] ? "," : "", mc->cols[t], (long long)to, mc->cols[t][0] ? "," : "", mc->cols[t], child_tables[t], (long long)from);
        if (store_exec(o, sql, err, errlen)) return -1;
    }
    return 0;
}

static int delete_children(Store *o, int64_t id, char *err, size_t errlen) {
    for (size_t t = 0; t < N_CHILD; t++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM main.%s WHERE run_id = %lld", child_tables[t], (long long)id);
        if (store_exec(o, sql, err, errlen)) return -1;
    }
    return 0;
}

static int merge_runs(Store *o, const char *shard, const MergeCols *mc, MergeStats *ms, char *err, size_t errlen) {
    sqlite3_stmt *src = NULL, *find = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(o->db, "SELECT id, steps_done, status FROM s.runs ORDER BY id", -1, &src, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(o->db, "SELECT m.id, m.steps_done, m.status FROM main.runs m, s.runs x WHERE x.id = ?1 AND m.started IS x.started"
                                  " AND m.argv IS x.argv AND m.model_hash IS x.model_hash AND m.dataset_hash IS x.dataset_hash"
                                  " AND m.lcbench_rev IS x.lcbench_rev ORDER BY m.id LIMIT 1", -1, &find, NULL) != SQLITE_OK) {
        lcb_fail(err, errlen, "%s: reading runs: %s", shard, sqlite3_errmsg(o->db));
        goto out;
    }
    int r;
    while ((r = sqlite3_step(src)) == SQLITE_ROW) {
        int64_t sid = sqlite3_column_int64(src, 0), ssteps = sqlite3_column_int64(src, 1);
        const char *sstat = (const char *)sqlite3_column_text(src, 2);
        int sdone = sstat && (!strcmp(sstat, "done") || !strcmp(sstat, "oom"));
        sqlite3_reset(find);
        sqlite3_bind_int64(find, 1, sid);
        int64_t to = 0;
        char sql[8400];
        if (sqlite3_step(find) == SQLITE_ROW) {
            int64_t mid = sqlite3_column_int64(find, 0), msteps = sqlite3_column_int64(find, 1);
            const char *mstat = (const char *)sqlite3_column_text(find, 2);
            int mdone = mstat && (!strcmp(mstat, "done") || !strcmp(mstat, "oom"));
            sqlite3_reset(find);
            if (mdone || (ssteps <= msteps && !sdone)) { ms->skipped++; continue; }
            /* the shard's copy went further: it replaces ours, under our id */
            if (delete_children(o, mid, err, errlen)) goto out;
            snprintf(sql, sizeof sql, "UPDATE main.runs SET (%s) = (SELECT %s FROM s.runs WHERE id = %lld) WHERE id = %lld", mc->run_cols, mc->run_cols,
                     (long long)sid, (long long)mid);
            if (store_exec(o, sql, err, errlen)) goto out;
            to = mid;
            ms->replaced++;
        } else {
            sqlite3_reset(find);
            snprintf(sql, sizeof sql, "INSERT INTO main.runs (%s) SELECT %s FROM s.runs WHERE id = %lld", mc->run_cols, mc->run_cols, (long long)sid);
            if (store_exec(o, sql, err, errlen)) goto out;
            to = sqlite3_last_insert_rowid(o->db);
            ms->added++;
        }
        if (copy_children(o, mc, sid, to, err, errlen)) goto out;
        char detail[4200];
        snprintf(detail, sizeof detail, "from %s run %lld", shard, (long long)sid);
        if (store_event(o, to, -1, "merged", detail, err, errlen)) goto out;
    }
    if (r != SQLITE_DONE) { lcb_fail(err, errlen, "%s: reading runs: %s", shard, sqlite3_errmsg(o->db)); goto out; }
    rc = 0;
out:
    sqlite3_finalize(src);
    sqlite3_finalize(find);
    return rc;
}

int sweep_merge(const char *out, const char *shard, MergeStats *ms, char *err, size_t errlen) {
    Store o;
    memset(ms, 0, sizeof *ms);
    if (access(shard, R_OK)) return lcb_fail(err, errlen, "%s: cannot read the shard", shard);
    if (store_open(&o, out, err, errlen)) return -1;
    int rc = -1, attached = 0, began = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(o.db, "ATTACH DATABASE ? AS s", -1, &st, NULL) != SQLITE_OK) { lcb_fail(err, errlen, "%s: %s", out, sqlite3_errmsg(o.db)); goto out; }
    sqlite3_bind_text(st, 1, shard, -1, SQLITE_STATIC);
    int a = sqlite3_step(st);
    sqlite3_finalize(st);
    if (a != SQLITE_DONE) { lcb_fail(err, errlen, "%s: cannot attach the shard: %s", shard, sqlite3_errmsg(o.db)); goto out; }
    attached = 1;
    /* a file this lcbench can read: it has runs, and no newer schema */
    int has_runs = 0, ver = -1;
    if (sqlite3_prepare_v2(o.db, "SELECT (SELECT COUNT(*) FROM s.sqlite_master WHERE type='table' AND name='runs'), (SELECT user_version FROM s.pragma_user_version)", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        has_runs = sqlite3_column_int(st, 0);
        ver = sqlite3_column_int(st, 1);
    } else { lcb_fail(err, errlen, "%s: not an SQLite results file: %s", shard, sqlite3_errmsg(o.db)); sqlite3_finalize(st); goto out; }
    sqlite3_finalize(st);
    if (!has_runs) { lcb_fail(err, errlen, "%s: not an lcbench results file (no runs table)", shard); goto out; }
    if (ver > store_schema_version(&o)) {
        lcb_fail(err, errlen, "%s: schema version %d is newer than this lcbench knows (%d): upgrade lcbench", shard, ver, store_schema_version(&o));
        goto out;
    }
    MergeCols *mc = calloc(1, sizeof *mc);
    if (!mc) { lcb_fail(err, errlen, "out of memory"); goto out; }
    int dummy;
    int bad = common_cols(&o, "runs", "id", mc->run_cols, sizeof mc->run_cols, &dummy);
    for (size_t t = 0; t < N_CHILD && !bad; t++) bad = common_cols(&o, child_tables[t], "run_id", mc->cols[t], sizeof mc->cols[t], &mc->has[t]);
    if (bad) { free(mc); lcb_fail(err, errlen, "%s: reading the shard's schema: %s", shard, sqlite3_errmsg(o.db)); goto out; }
    if (store_begin(&o, err, errlen)) { free(mc); goto out; }
    began = 1;
    int r = merge_runs(&o, shard, mc, ms, err, errlen);
    free(mc);
    if (r) goto out;
    /* the plans of the sweeps, and the checkpoint hash cache (not provenance, saves re-hashing) */
    int has;
    char cols[1024];
    if (common_cols(&o, "sweeps", NULL, cols, sizeof cols, &has) == 0 && has) {
        char sql[2400];
        snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO main.sweeps (%s) SELECT %s FROM s.sweeps", cols, cols);
        if (store_exec(&o, sql, err, errlen)) goto out;
    }
    if (common_cols(&o, "model_hashes", NULL, cols, sizeof cols, &has) == 0 && has) {
        char sql[2400];
        snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO main.model_hashes (%s) SELECT %s FROM s.model_hashes", cols, cols);
        if (store_exec(&o, sql, err, errlen)) goto out;
    }
    if (store_commit(&o, err, errlen)) goto out;
    began = 0;
    rc = 0;
out:
    if (began) store_rollback(&o);
    if (attached) sqlite3_exec(o.db, "DETACH DATABASE s", NULL, NULL, NULL);
    store_close(&o);
    return rc;
}
