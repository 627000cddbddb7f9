/*
 * store.c — the SQLite results file (see store.h): schema migrations, the run row (written
 * through one column table so that insert, update and read stay in step), the batch rows, and
 * the per-bin aggregates recomputed from the stored per-step NLLs.
 */
#include "reports/store/store.h"
#include "engine/common.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- schema */

/* Migration i takes a file from user_version i to i + 1.  Never edit a released one: append. */
static const char *const migrations[] = {
    /* 0 -> 1: the base schema */
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY, status TEXT NOT NULL, lcbench_rev TEXT, argv TEXT,"
    " model TEXT, model_config TEXT, model_hash TEXT, arch TEXT, dtype TEXT, n_params INTEGER, max_pos INTEGER,"
    " tokenizer TEXT, tokenizer_hash TEXT, strategy TEXT, protocol TEXT, bos TEXT,"
    " ctx INTEGER, stride INTEGER, chunk INTEGER,"
    " dataset TEXT, dataset_field TEXT, token_format TEXT, dataset_hash TEXT, source_hash TEXT,"
    " n_docs INTEGER, passes INTEGER, repeat INTEGER, tokens_requested INTEGER, tokens INTEGER,"
    " steps_total INTEGER, steps_done INTEGER, cursor INTEGER, next_seq INTEGER,"
    " mem_limit INTEGER, batch_tokens INTEGER, bin_width INTEGER, threads INTEGER,"
    " device TEXT, host TEXT, pid INTEGER, started TEXT, ended TEXT,"
    " wall_s REAL, mean_nll REAL, ppl REAL);"
    "CREATE TABLE nll (run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,"
    " win_start INTEGER NOT NULL, pos0 INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (run_id, seq));"   /* a rowid table: its rows are large BLOBs */
    "CREATE TABLE bins (run_id INTEGER NOT NULL REFERENCES runs(id), kind TEXT NOT NULL,"
    " lo INTEGER NOT NULL, hi INTEGER NOT NULL, count INTEGER NOT NULL, mean_nll REAL, ppl REAL, stderr REAL,"
    " PRIMARY KEY (run_id, kind, lo)) WITHOUT ROWID;"
    "CREATE TABLE samples (run_id INTEGER NOT NULL REFERENCES runs(id), pos INTEGER, elapsed_s REAL,"
    " tokens_per_s REAL, weights_bytes INTEGER, kv_bytes INTEGER, kv_formula_bytes INTEGER,"
    " work_bytes INTEGER, rss_bytes INTEGER, device_bytes INTEGER);"
    "CREATE INDEX samples_run ON samples(run_id, pos);"
    "CREATE TABLE events (run_id INTEGER NOT NULL REFERENCES runs(id), pos INTEGER, time TEXT,"
    " kind TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX events_run ON events(run_id, pos);"
    "CREATE TABLE docs (run_id INTEGER NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL,"
    " pos INTEGER NOT NULL, name TEXT, PRIMARY KEY (run_id, idx)) WITHOUT ROWID;",
    /* 1 -> 2: remember checkpoint hashes so that a 13 GB model is hashed once */
    "CREATE TABLE model_hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT);",
    /* 2 -> 3: the fluency (probes, generate, passkey) and sweep tables, created until version
     * 0.8 on demand by fluency.c and sweep_store.c: IF NOT EXISTS, so that a file which already
     * holds them (same shapes: they never changed) migrates too */
    "CREATE TABLE IF NOT EXISTS probes (run_id INTEGER NOT NULL REFERENCES runs(id), prompt_idx INTEGER,"
    " pos INTEGER NOT NULL, tokens INTEGER, text TEXT, verdict TEXT NOT NULL,"
    " chars INTEGER, newline_run INTEGER, newline_frac REAL, bad_chars INTEGER, bad_frac REAL, alpha_frac REAL,"
    " words INTEGER, dict_ratio REAL, rep_len INTEGER, rep_frac REAL, distinct3 REAL);"
    "CREATE INDEX IF NOT EXISTS probes_run ON probes(run_id, pos);"
    "CREATE TABLE IF NOT EXISTS generations (id INTEGER PRIMARY KEY, status TEXT, started TEXT, ended TEXT,"
    " lcbench_rev TEXT, argv TEXT, model TEXT, max_pos INTEGER, strategy TEXT, decoding TEXT, temperature REAL,"
    " top_k INTEGER, top_p REAL, seed INTEGER, n_prompts INTEGER, max_new INTEGER, window INTEGER,"
    " tokens_fed INTEGER, tokens_generated INTEGER, first_collapse_pos INTEGER, first_collapse_verdict TEXT,"
    " first_collapse_prompt INTEGER, wall_s REAL);"
    "CREATE TABLE IF NOT EXISTS generation_windows (gen_id INTEGER NOT NULL REFERENCES generations(id),"
    " prompt_idx INTEGER, pos INTEGER NOT NULL, tokens INTEGER, text TEXT, verdict TEXT NOT NULL,"
    " chars INTEGER, newline_run INTEGER, newline_frac REAL, bad_chars INTEGER, bad_frac REAL, alpha_frac REAL,"
    " words INTEGER, dict_ratio REAL, rep_len INTEGER, rep_frac REAL, distinct3 REAL);"
    "CREATE INDEX IF NOT EXISTS generation_windows_gen ON generation_windows(gen_id, pos);"
    "CREATE TABLE IF NOT EXISTS passkey_runs (id INTEGER PRIMARY KEY, status TEXT, started TEXT, ended TEXT,"
    " lcbench_rev TEXT, argv TEXT, model TEXT, max_pos INTEGER, strategy TEXT, interval INTEGER, max_tokens INTEGER,"
    " num_tests INTEGER, tests INTEGER, correct INTEGER, wall_s REAL);"
    "CREATE TABLE IF NOT EXISTS passkey (pk_run_id INTEGER NOT NULL REFERENCES passkey_runs(id), strategy TEXT,"
    " length_idx INTEGER, n_garbage INTEGER, seed INTEGER, tokens INTEGER, key TEXT, key_pos INTEGER,"
    " answer_ids TEXT, output_ids TEXT, output TEXT, correct INTEGER);"
    "CREATE INDEX IF NOT EXISTS passkey_run ON passkey(pk_run_id, length_idx);"
    "CREATE TABLE IF NOT EXISTS sweeps (id TEXT PRIMARY KEY, plan_path TEXT, plan TEXT, n_cells INTEGER, created TEXT);"
    "CREATE TABLE IF NOT EXISTS sweep_cells (sweep_id TEXT NOT NULL, cell_idx INTEGER, cell_key TEXT NOT NULL, args TEXT,"
    " attempt INTEGER NOT NULL, run_id INTEGER REFERENCES runs(id), host TEXT, pid INTEGER, id_floor INTEGER,"
    " started TEXT, exit_status INTEGER);"
    "CREATE INDEX IF NOT EXISTS sweep_cells_key ON sweep_cells(cell_key, run_id);"
    "CREATE INDEX IF NOT EXISTS sweep_cells_run ON sweep_cells(run_id);",
    /* 3 -> 4: the run's headline (issue 16): PPL inside / past the pre-training context, and the
     * metrics that compare across tokenizers (lm-eval's bits_per_byte and word_perplexity);
     * NULL when not measured (a dataset of token ids has no text: no bytes, no words) */
    "ALTER TABLE runs ADD COLUMN ctx_steps INTEGER; ALTER TABLE runs ADD COLUMN ctx_mean_nll REAL;"
    " ALTER TABLE runs ADD COLUMN ctx_stderr REAL; ALTER TABLE runs ADD COLUMN past_steps INTEGER;"
    " ALTER TABLE runs ADD COLUMN past_mean_nll REAL; ALTER TABLE runs ADD COLUMN past_stderr REAL;"
    " ALTER TABLE runs ADD COLUMN scored_bytes INTEGER; ALTER TABLE runs ADD COLUMN scored_words INTEGER;"
    " ALTER TABLE runs ADD COLUMN bits_per_byte REAL; ALTER TABLE runs ADD COLUMN word_ppl REAL;",
};
_Static_assert(sizeof migrations / sizeof *migrations == STORE_SCHEMA_VERSION, "STORE_SCHEMA_VERSION (store.h) counts the migrations");

int store_exec(Store *s, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        char head[64];
        snprintf(head, sizeof head, "%.60s", sql);
        lcb_fail(err, errlen, "%s: SQL \"%s...\": %s", s->path, head, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int store_begin(Store *s, char *err, size_t errlen) { return store_exec(s, "BEGIN IMMEDIATE", err, errlen); }
int store_commit(Store *s, char *err, size_t errlen) { return store_exec(s, "COMMIT", err, errlen); }
void store_rollback(Store *s) { sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); }

int store_schema_version(Store *s) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Why a results file cannot be opened for writing, for the error message (SQLite only says
 * "unable to open database file"): a read-only filesystem, a file or folder without write
 * permission (WAL needs PATH-wal and PATH-shm created beside PATH), or "" if neither. */
static const char *store_write_hint(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    const char *d = dirname(dir);
    struct statvfs vfs;
    if (statvfs(d, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
        return " (the folder is on a read-only filesystem; lcbench writes its results file and the -wal/-shm files beside it)";
    if (access(d, W_OK) != 0 || (access(path, F_OK) == 0 && access(path, W_OK) != 0))
        return " (no write permission on the file or its folder; lcbench writes its results file and the -wal/-shm files beside it)";
    return "";
}

int store_open(Store *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        lcb_fail(err, errlen, "%s: cannot open the results database: %s%s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory",
                 store_write_hint(path));
        store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* A file SQLite could only open read-only (permissions: as root they do not apply, but a
     * read-only mount does) fails later, at the first write, with a less clear message. */
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        lcb_fail(err, errlen, "%s: the results database is read-only%s", path, store_write_hint(path));
        store_close(s);
        return -1;
    }
    /* WAL: readers (lcbench runs/show, tests polling) never block the writer; NORMAL sync is
     * durable across process crashes (kill -9), which is what the batch contract needs. */
    /* Switching a new file into WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
     * once (its busy handler would deadlock) while another process opening the same new file
     * holds a shared lock: retry for up to ~5 s (several runs started together on one file). */
    int tries = 0;
    while (store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err, errlen)) {
        int ec = sqlite3_errcode(s->db) & 0xff;
        if ((ec == SQLITE_BUSY || ec == SQLITE_LOCKED) && ++tries < 250) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        size_t k = strlen(err ? err : "");
        if (err && k < errlen) snprintf(err + k, errlen - k, "%s", store_write_hint(path));
        store_close(s);
        return -1;
    }
    int v = store_schema_version(s);
    const int n_mig = (int)(sizeof migrations / sizeof *migrations);
    if (v < 0) { lcb_fail(err, errlen, "%s: cannot read the schema version (not an SQLite file?)", path); store_close(s); return -1; }
    if (v > n_mig) {
        lcb_fail(err, errlen, "%s: schema version %d is newer than this lcbench knows (%d): upgrade lcbench", path, v, n_mig);
        store_close(s);
        return -1;
    }
    for (; v < n_mig; v++) {
        char sql[64];
        if (store_begin(s, err, errlen)) { store_close(s); return -1; }
        /* read the version again under the write lock: another process opening a new file at
         * the same time (two runs started together) may have migrated it since the read above,
         * and migration v run twice fails with "table runs already exists" */
        int now = store_schema_version(s);
        if (now != v) {
            if (store_commit(s, err, errlen)) { store_close(s); return -1; }
            if (now < v || now > n_mig) {
                lcb_fail(err, errlen, "%s: schema version changed to %d while opening (this lcbench knows %d)", path, now, n_mig);
                store_close(s);
                return -1;
            }
            v = now - 1;
            continue;
        }
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
        if (store_exec(s, migrations[v], err, errlen) || store_exec(s, sql, err, errlen) || store_commit(s, err, errlen)) {
            lcb_prefix(err, errlen, "%s: migrating the schema from version %d", path, v);
            store_rollback(s);
            store_close(s);
            return -1;
        }
    }
    return 0;
}

/* "file:" URI of a path, for the immutable fallback of store_open_readonly. */
static void uri_of(const char *path, char *out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && k + 4 < n; p++) {
        if (*p == '%' || *p == '?' || *p == '#' || *p < 0x21 || *p >= 0x7f) k += (size_t)snprintf(out + k, n - k, "%%%02X", *p);
        else out[k++] = (char)*p;
    }
    out[k < n ? k : n - 1] = 0;
    if (k + 16 < n) snprintf(out + k, n - k, "?immutable=1");
}

/* A read that every results file answers: the schema version, and whether it has a runs table;
 * the SQLite result code of the first failure, or SQLITE_OK. */
static int probe_schema(sqlite3 *db, int *version, int *has_runs) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                    " (SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='runs')", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) { *version = sqlite3_column_int(st, 0); *has_runs = sqlite3_column_int(st, 1); rc = SQLITE_OK; }
        else rc = sqlite3_errcode(db);
    } else rc = sqlite3_errcode(db);
    sqlite3_finalize(st);
    return rc;
}

/* Whether the file holds no schema objects at all (a file being created, or an empty one). */
static int empty_schema(sqlite3 *db) {
    sqlite3_stmt *st;
    int empty = 0;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sqlite_master", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) empty = sqlite3_column_int(st, 0) == 0;
        sqlite3_finalize(st);
    }
    return empty;
}

int store_open_readonly(Store *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    struct stat sb;
    if (stat(path, &sb)) {
        lcb_fail(err, errlen, "%s: no such results file (%s)", path, strerror(errno));
        return -2;
    }
    if (!S_ISREG(sb.st_mode)) { lcb_fail(err, errlen, "%s: not a results file (not a regular file)", path); return -2; }
    /* SQLITE_OPEN_READONLY: no file created, no journal-mode switch, no migration */
    int version = -1, has_runs = 0, rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s->db, 10000);
        rc = probe_schema(s->db, &version, &has_runs);
    }
    /* A WAL file whose folder we cannot write and whose -shm is gone (a clean close removed it)
     * cannot be read through the WAL index.  With no -wal file either, the main file holds every
     * committed transaction, and immutable=1 reads it as it is.  With a -wal file present its
     * transactions would be missed: refuse instead. */
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat wb;
    int no_wal = stat(wal, &wb) != 0 || wb.st_size == 0;
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_NOTADB && no_wal) {
        sqlite3_close(s->db);
        s->db = NULL;
        char uri[8600];
        uri_of(path, uri, sizeof uri);
        rc = sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
        if (rc == SQLITE_OK) rc = probe_schema(s->db, &version, &has_runs);
    }
    if (rc != SQLITE_OK) {
        int notadb = (rc & 0xff) == SQLITE_NOTADB;
        lcb_fail(err, errlen, "%s: %s: %s%s", path, notadb ? "not an SQLite results file" : "cannot read the results file",
                 s->db ? sqlite3_errmsg(s->db) : "out of memory",
                 !notadb && !no_wal ? " (its -wal file cannot be read through a -shm index: give lcbench write access to the folder)" : "");
        store_close(s);
        return notadb ? -2 : -1;
    }
    const int n_mig = (int)(sizeof migrations / sizeof *migrations);
    /* A file with no tables at all and schema version 0 is one that another lcbench has just
     * created and is migrating (a reader sees the snapshot before its first commit): wait for
     * the schema for a while rather than call it foreign. */
    for (int tries = 0; !has_runs && version == 0 && tries < 100 && empty_schema(s->db); tries++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (probe_schema(s->db, &version, &has_runs) != SQLITE_OK) break;
    }
    if (!has_runs) { lcb_fail(err, errlen, "%s: not an lcbench results file (no runs table)", path); store_close(s); return -2; }
    if (version > n_mig) {
        lcb_fail(err, errlen, "%s: schema version %d is newer than this lcbench knows (%d): upgrade lcbench", path, version, n_mig);
        store_close(s);
        return -1;
    }
    return 0;
}

void store_close(Store *s) {
    if (s->db) sqlite3_close(s->db);
    s->db = NULL;
}

void store_now(char buf[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void store_set(char **field, const char *value) {
    free(*field);
    *field = value ? strdup(value) : NULL;
}

/* ---------------------------------------------------------------- the run row */

typedef enum { COL_TEXT, COL_INT, COL_REAL } ColType;
typedef struct { const char *name; ColType type; size_t off; } Col;
#define T(f) {#f, COL_TEXT, offsetof(StoreRun, f)}
#define I(f) {#f, COL_INT, offsetof(StoreRun, f)}
#define R(f) {#f, COL_REAL, offsetof(StoreRun, f)}
static const Col cols[] = {
    T(status), T(lcbench_rev), T(argv), T(model), T(model_config), T(model_hash), T(arch), T(dtype), I(n_params), I(max_pos),
    T(tokenizer), T(tokenizer_hash), T(strategy), T(protocol), T(bos), I(ctx), I(stride), I(chunk),
    T(dataset), T(dataset_field), T(token_format), T(dataset_hash), T(source_hash), I(n_docs), I(passes), I(repeat),
    I(tokens_requested), I(tokens), I(steps_total), I(steps_done), I(cursor), I(next_seq),
    I(mem_limit), I(batch_tokens), I(bin_width), I(threads), T(device), T(host), I(pid), T(started), T(ended),
    R(wall_s), R(mean_nll), R(ppl),
};
#undef T
#undef I
#undef R
#define N_COLS (sizeof cols / sizeof *cols)

static void bind_cols(sqlite3_stmt *st, const StoreRun *r) {
    for (size_t i = 0; i < N_COLS; i++) {
        const char *p = (const char *)r + cols[i].off;
        int k = (int)i + 1;
        if (cols[i].type == COL_TEXT) {
            const char *v = *(char *const *)p;
            if (v) sqlite3_bind_text(st, k, v, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(st, k);
        } else if (cols[i].type == COL_INT) sqlite3_bind_int64(st, k, *(const int64_t *)p);
        else if (isnan(*(const double *)p)) sqlite3_bind_null(st, k);   /* not measured (SQLite would store NaN as NULL anyway) */
        else sqlite3_bind_double(st, k, *(const double *)p);
    }
}

static int prep(Store *s, sqlite3_stmt **st, const char *sql, char *err, size_t errlen) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return lcb_fail(err, errlen, "%s: preparing \"%.60s...\": %s", s->path, sql, sqlite3_errmsg(s->db));
    return 0;
}

static int step_done(Store *s, sqlite3_stmt *st, const char *what, char *err, size_t errlen) {
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return lcb_fail(err, errlen, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
    return 0;
}

int store_run_insert(Store *s, StoreRun *r, char *err, size_t errlen) {
    char sql[4096] = "INSERT INTO runs (";
    for (size_t i = 0; i < N_COLS; i++) { strcat(sql, cols[i].name); strcat(sql, i + 1 < N_COLS ? "," : ") VALUES ("); }
    for (size_t i = 0; i < N_COLS; i++) strcat(sql, i + 1 < N_COLS ? "?," : "?)");
    sqlite3_stmt *st;
    if (prep(s, &st, sql, err, errlen)) return -1;
    bind_cols(st, r);
    if (step_done(s, st, "inserting the run", err, errlen)) return -1;
    r->id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_run_update(Store *s, const StoreRun *r, char *err, size_t errlen) {
    char sql[4096] = "UPDATE runs SET ";
    for (size_t i = 0; i < N_COLS; i++) { strcat(sql, cols[i].name); strcat(sql, i + 1 < N_COLS ? "=?," : "=? WHERE id=?"); }
    sqlite3_stmt *st;
    if (prep(s, &st, sql, err, errlen)) return -1;
    bind_cols(st, r);
    sqlite3_bind_int64(st, (int)N_COLS + 1, r->id);
    return step_done(s, st, "updating the run", err, errlen);
}

int store_run_get(Store *s, int64_t id, StoreRun *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    char sql[4096] = "SELECT ";
    for (size_t i = 0; i < N_COLS; i++) { strcat(sql, cols[i].name); strcat(sql, i + 1 < N_COLS ? "," : " FROM runs WHERE id=?"); }
    sqlite3_stmt *st;
    if (prep(s, &st, sql, err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return lcb_fail(err, errlen, "%s: no run %lld", s->path, (long long)id);
    }
    r->id = id;
    for (size_t i = 0; i < N_COLS; i++) {
        char *p = (char *)r + cols[i].off;
        int k = (int)i;
        if (cols[i].type == COL_TEXT) {
            const unsigned char *v = sqlite3_column_text(st, k);
            *(char **)p = v ? strdup((const char *)v) : NULL;
        } else if (cols[i].type == COL_INT) *(int64_t *)p = sqlite3_column_int64(st, k);
        else *(double *)p = sqlite3_column_type(st, k) == SQLITE_NULL ? NAN : sqlite3_column_double(st, k); /* NULL: not measured */
    }
    sqlite3_finalize(st);
    return 0;
}

void store_run_free(StoreRun *r) {
    for (size_t i = 0; i < N_COLS; i++)
        if (cols[i].type == COL_TEXT) { char **p = (char **)((char *)r + cols[i].off); free(*p); *p = NULL; }
}

/* ---------------------------------------------------------------- batch rows */

int store_nll_insert(Store *s, int64_t run, int64_t seq, int64_t win_start, int64_t pos0, const float *nll, int64_t n,
                     char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (prep(s, &st, "INSERT INTO nll (run_id, seq, win_start, pos0, n, data) VALUES (?,?,?,?,?,?)", err, errlen)) return -1;
    /* float32 little-endian: this engine only builds on little-endian hosts (x86-64, aarch64) */
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, win_start);
    sqlite3_bind_int64(st, 4, pos0);
    sqlite3_bind_int64(st, 5, n);
    sqlite3_bind_blob64(st, 6, nll, (sqlite3_uint64)n * sizeof(float), SQLITE_STATIC);
    return step_done(s, st, "storing per-step NLLs", err, errlen);
}

int store_event(Store *s, int64_t run, int64_t pos, const char *kind, const char *detail, char *err, size_t errlen) {
    sqlite3_stmt *st;
    char now[32];
    store_now(now);
    if (prep(s, &st, "INSERT INTO events (run_id, pos, time, kind, detail) VALUES (?,?,?,?,?)", err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, pos);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    if (detail) sqlite3_bind_text(st, 5, detail, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 5);
    return step_done(s, st, "storing an event", err, errlen);
}

int store_sample(Store *s, int64_t run, const StoreSample *x, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (prep(s, &st, "INSERT INTO samples (run_id, pos, elapsed_s, tokens_per_s, weights_bytes, kv_bytes, kv_formula_bytes,"
                     " work_bytes, rss_bytes, device_bytes) VALUES (?,?,?,?,?,?,?,?,?,?)", err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, x->pos);
    sqlite3_bind_double(st, 3, x->elapsed_s);
    sqlite3_bind_double(st, 4, x->tokens_per_s);
    sqlite3_bind_int64(st, 5, x->weights);
    sqlite3_bind_int64(st, 6, x->kv);
    sqlite3_bind_int64(st, 7, x->kv_formula);
    sqlite3_bind_int64(st, 8, x->work);
    sqlite3_bind_int64(st, 9, x->rss);
    if (x->device >= 0) sqlite3_bind_int64(st, 10, x->device); else sqlite3_bind_null(st, 10);
    return step_done(s, st, "storing a sample", err, errlen);
}

int store_docs(Store *s, int64_t run, const uint64_t *pos, char *const *names, size_t n, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (prep(s, &st, "INSERT OR REPLACE INTO docs (run_id, idx, pos, name) VALUES (?,?,?,?)", err, errlen)) return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        sqlite3_bind_int64(st, 3, (int64_t)pos[i]);
        sqlite3_bind_text(st, 4, names[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            lcb_fail(err, errlen, "%s: storing document boundaries: %s", s->path, sqlite3_errmsg(s->db));
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    return 0;
}

int store_nll_foreach(Store *s, int64_t run, StoreNllFn fn, void *ctx, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (prep(s, &st, "SELECT win_start, pos0, n, data FROM nll WHERE run_id=? ORDER BY seq", err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, run);
    int rc;
    float *buf = NULL;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 2);
        const void *blob = sqlite3_column_blob(st, 3);
        if ((int64_t)sqlite3_column_bytes(st, 3) != n * (int64_t)sizeof(float)) {
            sqlite3_finalize(st); free(buf);
            return lcb_fail(err, errlen, "%s: run %lld: an nll row holds %d bytes for %lld steps", s->path, (long long)run,
                            sqlite3_column_bytes(st, 3), (long long)n);
        }
        if ((size_t)n > cap) {  /* copy out: the blob pointer is not float-aligned in general */
            float *nb = realloc(buf, (size_t)n * sizeof *nb);
            if (!nb) { sqlite3_finalize(st); free(buf); return lcb_fail(err, errlen, "out of memory reading NLLs"); }
            buf = nb; cap = (size_t)n;
        }
        if (n) memcpy(buf, blob, (size_t)n * sizeof *buf);
        if (fn(ctx, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), buf, n)) break;
    }
    free(buf);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return lcb_fail(err, errlen, "%s: reading NLLs: %s", s->path, sqlite3_errmsg(s->db));
    return 0;
}

/* ---------------------------------------------------------------- bins */

typedef struct { int64_t n; double sum, sumsq; } Acc;
typedef struct {
    Acc log2[64];
    Acc *lin;
    size_t n_lin;
    int64_t width;
    Acc all;
    int oom;
    int64_t bad_pos, bad_win;   /* first non-finite NLL (bad_pos -1: none) */
    double bad_val;
} BinCtx;

static void acc_add(Acc *a, double x) { a->n++; a->sum += x; a->sumsq += x * x; }

static int bins_row(void *vctx, int64_t win_start, int64_t pos0, const float *nll, int64_t n) {
    BinCtx *b = vctx;
    for (int64_t j = 0; j < n; j++) {
        int64_t p = pos0 + j;
        double x = nll[j];
        /* a non-finite NLL is never a number (SPEC §1): no aggregate is made of it */
        if (!isfinite(x)) { b->bad_pos = p; b->bad_win = win_start; b->bad_val = x; return 1; }
        /* log2 bin k holds positions [2^(k-1), 2^k) and bin 0 position 0 */
        int k = p == 0 ? 0 : 64 - __builtin_clzll((unsigned long long)p);
        acc_add(&b->log2[k], x);
        size_t li = (size_t)(p / b->width);
        if (li >= b->n_lin) {
            size_t nn = b->n_lin ? b->n_lin : 64;
            while (nn <= li) nn *= 2;
            Acc *v = realloc(b->lin, nn * sizeof *v);
            if (!v) { b->oom = 1; return 1; }
            memset(v + b->n_lin, 0, (nn - b->n_lin) * sizeof *v);
            b->lin = v; b->n_lin = nn;
        }
        acc_add(&b->lin[li], x);
        acc_add(&b->all, x);
    }
    return 0;
}

static StoreBin bin_of(const char *kind, int64_t lo, int64_t hi, const Acc *a) {
    double mean = a->sum / a->n;
    double var = a->n > 1 ? (a->sumsq - a->n * mean * mean) / (a->n - 1) : 0;
    return (StoreBin){.kind = kind, .lo = lo, .hi = hi, .count = a->n, .mean_nll = mean, .ppl = exp(mean),
                      .se = a->n > 1 ? sqrt(var > 0 ? var : 0) / sqrt((double)a->n) : NAN};
}

int store_bins_compute(Store *s, int64_t run, int64_t bin_width, StoreBin **bins, size_t *n_bins, double *mean_nll, int64_t *steps,
                       char *err, size_t errlen) {
    BinCtx b = {.width = bin_width > 0 ? bin_width : 1024, .bad_pos = -1};
    *bins = NULL;
    *n_bins = 0;
    *steps = 0;
    *mean_nll = NAN;
    if (store_nll_foreach(s, run, bins_row, &b, err, errlen)) { free(b.lin); return -1; }
    if (b.oom) { free(b.lin); return lcb_fail(err, errlen, "out of memory aggregating bins"); }
    if (b.bad_pos >= 0) {
        free(b.lin);
        return lcb_fail(err, errlen, "%s: run %lld: the stored NLL at position %lld (window at %lld) is %g, not a number: no aggregate is computed from it",
                        s->path, (long long)run, (long long)b.bad_pos, (long long)b.bad_win, b.bad_val);
    }
    size_t cap = 65, k = 0;
    for (size_t i = 0; i < b.n_lin; i++) cap += b.lin[i].n > 0;
    StoreBin *v = malloc(cap * sizeof *v);
    if (!v) { free(b.lin); return lcb_fail(err, errlen, "out of memory aggregating bins"); }
    for (int i = 0; i < 64; i++)
        if (b.log2[i].n) v[k++] = bin_of("log2", i ? (int64_t)1 << (i - 1) : 0, i ? (int64_t)1 << i : 1, &b.log2[i]);
    for (size_t i = 0; i < b.n_lin; i++)
        if (b.lin[i].n) v[k++] = bin_of("linear", (int64_t)i * b.width, (int64_t)(i + 1) * b.width, &b.lin[i]);
    if (b.all.n) v[k++] = bin_of("all", 0, -1, &b.all);
    free(b.lin);
    *bins = v;
    *n_bins = k;
    *steps = b.all.n;
    *mean_nll = b.all.n ? b.all.sum / b.all.n : NAN;
    return 0;
}

int store_bins_recompute(Store *s, int64_t run, int64_t bin_width, double *mean_nll, int64_t *steps, char *err, size_t errlen) {
    StoreBin *v;
    size_t n;
    if (store_bins_compute(s, run, bin_width, &v, &n, mean_nll, steps, err, errlen)) return -1;
    char del[96];
    snprintf(del, sizeof del, "DELETE FROM bins WHERE run_id=%lld", (long long)run);
    sqlite3_stmt *st = NULL;
    int rc = store_exec(s, del, err, errlen);
    if (rc == 0) rc = prep(s, &st, "INSERT INTO bins (run_id, kind, lo, hi, count, mean_nll, ppl, stderr) VALUES (?,?,?,?,?,?,?,?)", err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_text(st, 2, v[i].kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, v[i].lo);
        sqlite3_bind_int64(st, 4, v[i].hi);
        sqlite3_bind_int64(st, 5, v[i].count);
        sqlite3_bind_double(st, 6, v[i].mean_nll);
        sqlite3_bind_double(st, 7, v[i].ppl);
        if (!isnan(v[i].se)) sqlite3_bind_double(st, 8, v[i].se); else sqlite3_bind_null(st, 8);
        if (sqlite3_step(st) != SQLITE_DONE) rc = lcb_fail(err, errlen, "%s: storing bins: %s", s->path, sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(st);
    free(v);
    return rc;
}

/* ---------------------------------------------------------------- model hash cache */

int store_hash_lookup(Store *s, const char *path, int64_t size, int64_t mtime_ns, char hex[65]) {
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT sha256 FROM model_hashes WHERE path=? AND size=? AND mtime_ns=?", -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(hex, 65, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

void store_hash_remember(Store *s, const char *path, int64_t size, int64_t mtime_ns, const char *hex) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO model_hashes (path, size, mtime_ns, sha256) VALUES (?,?,?,?)", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    sqlite3_bind_text(st, 4, hex, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

/* ---------------------------------------------------------------- statuses */

static const char *const status_names[] = {"?", "running", "done", "oom", "interrupted", "failed", "stale"};

const char *store_status_name(StoreStatus st) {
    return (unsigned)st < sizeof status_names / sizeof *status_names ? status_names[st] : "?";
}

StoreStatus store_status_parse(const char *name) {
    for (size_t i = 1; name && i < sizeof status_names / sizeof *status_names; i++)
        if (!strcmp(name, status_names[i])) return (StoreStatus)i;
    return STORE_STATUS_UNKNOWN;
}

static int pid_alive(int64_t pid) { return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM); }

StoreStatus store_status_shown(const char *status, const char *host, int64_t pid) {
    StoreStatus st = store_status_parse(status);
    if (st != STORE_RUNNING) return st;
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    return host && !strcmp(host, me) && !pid_alive(pid) ? STORE_STALE : STORE_RUNNING;
}

const char *store_status_display(const char *status, const char *host, int64_t pid) {
    StoreStatus st = store_status_shown(status, host, pid);
    return st == STORE_STATUS_UNKNOWN ? (status ? status : "?") : store_status_name(st);
}

int store_status_final(StoreStatus st) { return st == STORE_DONE || st == STORE_OOM; }

/* ---------------------------------------------------------------- side-table rows */

static void bind_val(sqlite3_stmt *st, int k, const StoreVal *v) {
    if (v->type == STORE_VAL_INT) sqlite3_bind_int64(st, k, v->i);
    else if (v->type == STORE_VAL_REAL && !isnan(v->d)) sqlite3_bind_double(st, k, v->d);
    else if (v->type == STORE_VAL_TEXT && v->s) sqlite3_bind_text64(st, k, v->s, v->len < 0 ? strlen(v->s) : (sqlite3_uint64)v->len, SQLITE_TRANSIENT, SQLITE_UTF8);
    else sqlite3_bind_null(st, k);
}

/* "INSERT INTO t (a,b) VALUES (?,?)" or "UPDATE t SET a=?,b=? WHERE key=?" into sql. */
static int row_sql(char *sql, size_t cap, const char *table, const char *key_col, int or_ignore, const StoreVal *v, size_t n) {
    size_t l = (size_t)snprintf(sql, cap, key_col ? "UPDATE %s SET " : or_ignore ? "INSERT OR IGNORE INTO %s (" : "INSERT INTO %s (", table);
    for (size_t i = 0; i < n && l < cap; i++)
        l += (size_t)snprintf(sql + l, cap - l, "%s%s%s", i ? "," : "", v[i].col, key_col ? "=?" : "");
    if (l < cap && key_col) l += (size_t)snprintf(sql + l, cap - l, " WHERE %s=?", key_col);
    for (size_t i = 0; !key_col && i < n && l < cap; i++) l += (size_t)snprintf(sql + l, cap - l, "%s", i ? ",?" : ") VALUES (?");
    if (l < cap && !key_col) l += (size_t)snprintf(sql + l, cap - l, ")");
    return l < cap ? 0 : -1;
}

static int row_write(Store *s, const char *table, const char *key_col, int64_t key, int or_ignore, const StoreVal *v, size_t n,
                     char *err, size_t errlen) {
    char sql[2048];
    sqlite3_stmt *st;
    if (!n || row_sql(sql, sizeof sql, table, key_col, or_ignore, v, n))
        return lcb_fail(err, errlen, "%s: writing %s: %zu columns do not make a statement", s->path, table, n);
    if (prep(s, &st, sql, err, errlen)) return -1;
    for (size_t i = 0; i < n; i++) bind_val(st, (int)i + 1, &v[i]);
    if (key_col) sqlite3_bind_int64(st, (int)n + 1, key);
    char what[96];
    snprintf(what, sizeof what, "%s %s", key_col ? "updating" : "inserting into", table);
    return step_done(s, st, what, err, errlen);
}

int store_row_insert(Store *s, const char *table, const StoreVal *v, size_t n, int64_t *rowid, char *err, size_t errlen) {
    if (row_write(s, table, NULL, 0, 0, v, n, err, errlen)) return -1;
    if (rowid) *rowid = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_row_insert_or_ignore(Store *s, const char *table, const StoreVal *v, size_t n, char *err, size_t errlen) {
    return row_write(s, table, NULL, 0, 1, v, n, err, errlen);
}

int store_row_update(Store *s, const char *table, const char *key_col, int64_t key, const StoreVal *v, size_t n, char *err,
                     size_t errlen) {
    return row_write(s, table, key_col, key, 0, v, n, err, errlen);
}

/* ---------------------------------------------------------------- reading a run's rows */

static double col_real(sqlite3_stmt *st, int k) { return sqlite3_column_type(st, k) == SQLITE_NULL ? NAN : sqlite3_column_double(st, k); }
static const char *col_text(sqlite3_stmt *st, int k) {
    const unsigned char *t = sqlite3_column_text(st, k);
    return t ? (const char *)t : "";
}

int store_samples_peaks(Store *s, int64_t run, StoreSamplePeaks *p, char *err, size_t errlen) {
    sqlite3_stmt *st;
    memset(p, 0, sizeof *p);
    if (prep(s, &st, "SELECT COUNT(*), MAX(weights_bytes), MAX(kv_bytes), MAX(kv_formula_bytes), MAX(work_bytes), MAX(rss_bytes),"
                     " MAX(device_bytes), AVG(tokens_per_s),"
                     " (SELECT tokens_per_s FROM samples WHERE run_id=?1 ORDER BY rowid DESC LIMIT 1) FROM samples WHERE run_id=?1",
             err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, run);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        double *f[] = {&p->weights, &p->kv, &p->kv_formula, &p->work, &p->rss, &p->device, &p->tokens_per_s, &p->last_tokens_per_s};
        p->n = sqlite3_column_int64(st, 0);
        for (int k = 0; k < 8; k++) *f[k] = col_real(st, k + 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return lcb_fail(err, errlen, "%s: reading samples: %s", s->path, sqlite3_errmsg(s->db));
    return 0;
}

int store_runs_ids(Store *s, int64_t last, int64_t **ids, size_t *n, char *err, size_t errlen) {
    sqlite3_stmt *st;
    *ids = NULL;
    *n = 0;
    if (prep(s, &st, "SELECT id FROM runs WHERE ?1 = 0 OR id > (SELECT COALESCE(MAX(id), 0) FROM runs) - ?1 ORDER BY id", err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, last);
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t *ni = lcb_grow(*ids, *n, &cap, sizeof *ni, 64);
        if (!ni) { rc = SQLITE_NOMEM; break; }
        *ids = ni;
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*ids); *ids = NULL; *n = 0;
        return lcb_fail(err, errlen, "%s: reading runs: %s", s->path, rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->db));
    }
    return 0;
}

int store_run_columns(Store *s, int64_t id, StoreColumnFn fn, void *ctx, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (prep(s, &st, "SELECT * FROM runs WHERE id=?", err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), frc = 0;
    for (int i = 0; rc == SQLITE_ROW && !frc && i < sqlite3_column_count(st); i++) {
        StoreVal v = SV_NULL(sqlite3_column_name(st, i));
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: v = SV_INT(v.col, sqlite3_column_int64(st, i)); break;
        case SQLITE_FLOAT: v = SV_REAL(v.col, sqlite3_column_double(st, i)); break;
        case SQLITE_TEXT: v = SV_TEXT(v.col, (const char *)sqlite3_column_text(st, i)); break;
        default: break;   /* NULL; no column of runs is a BLOB */
        }
        frc = fn(ctx, &v);
    }
    sqlite3_finalize(st);
    if (frc) return frc;
    if (rc == SQLITE_DONE) return lcb_fail(err, errlen, "%s: no run %lld", s->path, (long long)id);
    if (rc != SQLITE_ROW) return lcb_fail(err, errlen, "%s: reading run %lld: %s", s->path, (long long)id, sqlite3_errmsg(s->db));
    return 0;
}

int store_events_foreach(Store *s, int64_t run, StoreEventFn fn, void *ctx, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (prep(s, &st, "SELECT pos, time, kind, detail FROM events WHERE run_id=? ORDER BY rowid", err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, run);
    int rc, frc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((frc = fn(ctx, sqlite3_column_int64(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3)))) break;
    sqlite3_finalize(st);
    if (frc) return frc;
    if (rc != SQLITE_DONE) return lcb_fail(err, errlen, "%s: reading events: %s", s->path, sqlite3_errmsg(s->db));
    return 0;
}

int store_bins_read(Store *s, int64_t run, const char *kind, StoreBin **bins, size_t *n, char *err, size_t errlen) {
    static const char *const kinds[] = {"log2", "linear", "all"};
    const char *k = NULL;
    for (size_t i = 0; i < 3; i++)
        if (kind && !strcmp(kind, kinds[i])) k = kinds[i];
    *bins = NULL;
    *n = 0;
    if (!k) return lcb_fail(err, errlen, "bins of kind '%s': log2, linear or all", kind ? kind : "(null)");
    sqlite3_stmt *st;
    if (prep(s, &st, "SELECT lo, hi, count, mean_nll, ppl, stderr FROM bins WHERE run_id=? AND kind=? ORDER BY lo", err, errlen)) return -1;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        StoreBin *nb = lcb_grow(*bins, *n, &cap, sizeof *nb, 64);
        if (!nb) { rc = SQLITE_NOMEM; break; }
        *bins = nb;
        (*bins)[(*n)++] = (StoreBin){.kind = k, .lo = sqlite3_column_int64(st, 0), .hi = sqlite3_column_int64(st, 1),
                                     .count = sqlite3_column_int64(st, 2), .mean_nll = col_real(st, 3), .ppl = col_real(st, 4),
                                     .se = col_real(st, 5)};
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*bins); *bins = NULL; *n = 0;
        return lcb_fail(err, errlen, "%s: reading bins: %s", s->path, rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->db));
    }
    return 0;
}

/* ---------------------------------------------------------------- the run's headline metrics */

void store_metrics_init(StoreMetrics *m) {
    *m = (StoreMetrics){.ctx_steps = -1, .past_steps = -1, .ctx_mean_nll = NAN, .ctx_se = NAN, .past_mean_nll = NAN,
                        .past_se = NAN, .bytes = -1, .words = -1, .bits_per_byte = NAN, .word_ppl = NAN};
}

/* a count (-1: unknown) and a real (non-finite: unknown) as stored values: NULL when unknown */
static StoreVal sv_count(const char *col, int64_t v) { return v >= 0 ? SV_INT(col, v) : SV_NULL(col); }
static StoreVal sv_finite(const char *col, double v) { return isfinite(v) ? SV_REAL(col, v) : SV_NULL(col); }

int store_metrics_write(Store *s, int64_t run, const StoreMetrics *m, char *err, size_t errlen) {
    const StoreVal v[] = {sv_count("ctx_steps", m->ctx_steps), sv_finite("ctx_mean_nll", m->ctx_mean_nll), sv_finite("ctx_stderr", m->ctx_se),
                          sv_count("past_steps", m->past_steps), sv_finite("past_mean_nll", m->past_mean_nll),
                          sv_finite("past_stderr", m->past_se), sv_count("scored_bytes", m->bytes), sv_count("scored_words", m->words),
                          sv_finite("bits_per_byte", m->bits_per_byte), sv_finite("word_ppl", m->word_ppl)};
    if (store_row_update(s, "runs", "id", run, v, sizeof v / sizeof *v, err, errlen)) {
        lcb_prefix(err, errlen, "storing the run's headline");
        return -1;
    }
    return 0;
}

int store_metrics_read(Store *s, int64_t run, StoreMetrics *m, char *err, size_t errlen) {
    store_metrics_init(m);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT ctx_steps, ctx_mean_nll, ctx_stderr, past_steps, past_mean_nll, past_stderr,"
                                  " scored_bytes, scored_words, bits_per_byte, word_ppl FROM runs WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
        if (strstr(sqlite3_errmsg(s->db), "no such column")) return 0;   /* a file older than schema 4: unknown */
        return lcb_fail(err, errlen, "%s: reading the run's headline: %s", s->path, sqlite3_errmsg(s->db));
    }
    sqlite3_bind_int64(st, 1, run);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
#define CNT(k) (sqlite3_column_type(st, k) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, k))
        m->ctx_steps = CNT(0); m->ctx_mean_nll = col_real(st, 1); m->ctx_se = col_real(st, 2);
        m->past_steps = CNT(3); m->past_mean_nll = col_real(st, 4); m->past_se = col_real(st, 5);
        m->bytes = CNT(6); m->words = CNT(7); m->bits_per_byte = col_real(st, 8); m->word_ppl = col_real(st, 9);
#undef CNT
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return lcb_fail(err, errlen, "%s: reading the run's headline: %s", s->path, sqlite3_errmsg(s->db));
    return 0;
}
