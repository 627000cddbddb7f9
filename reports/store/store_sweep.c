/*
 * store_sweep.c — what a sweep keeps in the results file (harness/sweep/ calls these): rows of
 * the `sweeps` and `sweep_cells` tables (made by store.c's migrations), every one written with
 * bound parameters; the lookup that decides whether a cell is already recorded; and
 * `lcbench merge`, which copies the runs of DB shards (with every row that hangs off them)
 * into one file, skipping the runs it already holds.
 *
 * Merge identity: a run is the same run when its start time, command line, model hash,
 * dataset hash and lcbench revision agree (a resumed run keeps all five; its pid and host
 * may change).  Of two copies, the one with more steps done wins, so merging a shard again
 * after its task went further updates the run in place, and merging twice changes nothing.
 * Child tables are copied by their common columns, so shards of an older schema still merge.
 * The merge's SQL names tables and columns read from the two schemas (never user input) and
 * run ids, which are integers.
 */
#include "reports/store/store.h"
#include "engine/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One integer from a query with one bound integer (k >= 0) or none: *out, dflt when no row. */
static int query_int(Store *s, const char *sql, int64_t k, int64_t dflt, int64_t *out, const char *what, char *err, size_t errlen) {
    sqlite3_stmt *st;
    *out = dflt;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return lcb_fail(err, errlen, "%s: reading %s: %s", s->path, what, sqlite3_errmsg(s->db));
    if (k >= 0) sqlite3_bind_int64(st, 1, k);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return lcb_fail(err, errlen, "%s: reading %s: %s", s->path, what, sqlite3_errmsg(s->db));
    return 0;
}

int store_runs_max_id(Store *s, int64_t *id, char *err, size_t errlen) {
    return query_int(s, "SELECT MAX(id) FROM runs", -1, 0, id, "runs", err, errlen);
}

int store_oom_pos(Store *s, int64_t run, int64_t *pos, char *err, size_t errlen) {
    return query_int(s, "SELECT pos FROM events WHERE run_id = ? AND kind = 'oom' ORDER BY rowid DESC LIMIT 1", run, -1, pos,
                     "events", err, errlen);
}

int store_sweep_record(Store *s, const char *id, const char *plan_path, const char *plan_text, int n_cells, char *err, size_t errlen) {
    char now[32];
    store_now(now);
    const StoreVal row[] = {SV_TEXT("id", id), SV_TEXT("plan_path", plan_path), SV_TEXT("plan", plan_text), SV_INT("n_cells", n_cells),
                            SV_TEXT("created", now)};
    if (store_row_insert_or_ignore(s, "sweeps", row, sizeof row / sizeof *row, err, errlen)) {
        lcb_prefix(err, errlen, "recording the sweep");
        return -1;
    }
    return 0;
}

int store_sweep_attempt(Store *s, const StoreSweepAttempt *a, int64_t *row, char *err, size_t errlen) {
    char now[32];
    store_now(now);
    const StoreVal v[] = {SV_TEXT("sweep_id", a->sweep_id), SV_INT("cell_idx", a->cell_idx), SV_TEXT("cell_key", a->cell_key),
                          SV_TEXT("args", a->args), SV_INT("attempt", a->attempt),
                          a->run_id > 0 ? SV_INT("run_id", a->run_id) : SV_NULL("run_id"), SV_TEXT("host", a->host),
                          SV_INT("pid", a->pid), SV_INT("id_floor", a->id_floor), SV_TEXT("started", now)};
    *row = 0;
    if (store_row_insert(s, "sweep_cells", v, sizeof v / sizeof *v, row, err, errlen)) {
        lcb_prefix(err, errlen, "recording the attempt");
        return -1;
    }
    return 0;
}

int store_sweep_attempt_end(Store *s, int64_t row, int exit_status, int64_t *run_id, char *err, size_t errlen) {
    *run_id = 0;
    const StoreVal v[] = {SV_INT("exit_status", exit_status)};
    if (store_row_update(s, "sweep_cells", "rowid", row, v, 1, err, errlen) || store_sweep_resolve(s, err, errlen)) return -1;
    return query_int(s, "SELECT run_id FROM sweep_cells WHERE rowid = ?", row, 0, run_id, "sweep cells", err, errlen);
}

int store_sweep_resolve(Store *s, char *err, size_t errlen) {
    /* the run a child created: this host, this pid, an id above the floor seen at launch */
    return store_exec(s,
        "UPDATE sweep_cells SET run_id = (SELECT MIN(r.id) FROM runs r WHERE r.host = sweep_cells.host"
        " AND r.pid = sweep_cells.pid AND r.id > sweep_cells.id_floor) WHERE run_id IS NULL AND pid IS NOT NULL",
        err, errlen);
}

int store_sweep_cell(Store *s, const char *key, int64_t *run_id, StoreStatus *status, char *err, size_t errlen) {
    sqlite3_stmt *st;
    *run_id = 0;
    *status = STORE_STATUS_UNKNOWN;
    /* a cell's latest run; a done (or oom) run anywhere outranks a later failed attempt */
    if (sqlite3_prepare_v2(s->db, "SELECT r.id, r.status, r.host, r.pid FROM sweep_cells c JOIN runs r ON r.id = c.run_id"
                                  " WHERE c.cell_key = ? ORDER BY r.status IN ('done','oom') DESC, r.id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return lcb_fail(err, errlen, "%s: reading sweep cells: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(st, 0);
        *status = store_status_shown((const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                                     sqlite3_column_int64(st, 3));
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

static int merge_runs(Store *o, const char *shard, const MergeCols *mc, StoreMergeStats *ms, char *err, size_t errlen) {
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
        int sdone = store_status_final(store_status_parse((const char *)sqlite3_column_text(src, 2)));
        sqlite3_reset(find);
        sqlite3_bind_int64(find, 1, sid);
        int64_t to = 0;
        char sql[8400];
        if (sqlite3_step(find) == SQLITE_ROW) {
            int64_t mid = sqlite3_column_int64(find, 0), msteps = sqlite3_column_int64(find, 1);
            int mdone = store_status_final(store_status_parse((const char *)sqlite3_column_text(find, 2)));
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

int store_merge(const char *out, const char *shard, StoreMergeStats *ms, char *err, size_t errlen) {
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
