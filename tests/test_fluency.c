/*
 * test_fluency.c — the fluency detector on each class (fluent prose, newline floods, garbage,
 * repetition loops), the word list, the exact strategy copy behind the probes and generation,
 * the sampler, LongLoRA's passkey prompt and numpy's random numbers, and the promise that a
 * run with probes scores bit-identical NLLs to one without; the results store's side tables
 * (fluency and sweep rows): migration of released files, row writes, statuses and readers.
 */
#include "testutil.h"

#include "engine/common.h"
#include "engine/tokenizer.h"
#include "harness/fluency/fluency.h"
#include "harness/fluency/generate.h"
#include "harness/fluency/passkey.h"

#include <math.h>
#include <sqlite3.h>
#include <unistd.h>

#define TOK "models/lcb-0.8m"
#define G 128

static FluencyDict *dict;
static Tokenizer *tok;

/* Moby Dick, chapter 1 (public domain): the fluent class when the corpora are not fetched. */
static const char *const MOBY =
    "Call me Ishmael. Some years ago\xe2\x80\x94never mind how long precisely\xe2\x80\x94having little or no money in my "
    "purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery "
    "part of the world. It is a way I have of driving off the spleen and regulating the circulation. Whenever I find "
    "myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul; whenever I find myself "
    "involuntarily pausing before coffin warehouses, and bringing up the rear of every funeral I meet; and especially "
    "whenever my hypos get such an upper hand of me, that it requires a strong moral principle to prevent me from "
    "deliberately stepping into the street, and methodically knocking people's hats off\xe2\x80\x94then, I account it "
    "high time to get to sea as soon as I can. This is my substitute for pistol and ball.\n\nWith a philosophical "
    "flourish Cato throws himself upon his sword; I quietly take to the ship. There is nothing surprising in this. If "
    "they but knew it, almost all men in their degree, some time or other, cherish very nearly the same feelings "
    "towards the ocean with me.";

static FluencyVerdict classify_ids(const int32_t *ids, size_t n, FluencyMetrics *m) {
    char *t = NULL, err[LCB_ERRLEN];
    size_t len = 0;
    if (tokenizer_decode(tok, ids, n, 0, &t, &len, err, sizeof err)) fail_msg("%s", err);
    fluency_measure(t, len, ids, n, dict, m);
    free(t);
    return fluency_verdict(m);
}

static FluencyVerdict classify_text(const char *text, FluencyMetrics *m) {
    int32_t *ids = NULL;
    size_t n = 0;
    char err[LCB_ERRLEN];
    if (tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, err, sizeof err)) fail_msg("%s", err);
    fluency_measure(text, strlen(text), ids, n, dict, m);
    free(ids);
    return fluency_verdict(m);
}

static int32_t *encode(const char *text, size_t *n) {
    int32_t *ids = NULL;
    char err[LCB_ERRLEN];
    if (tokenizer_encode(tok, text, strlen(text), 0, &ids, n, err, sizeof err)) fail_msg("%s", err);
    return ids;
}

/* ---------------------------------------------------------------- the classes */

static void test_fluent(void **state) {
    FluencyMetrics m;
    assert_int_equal(classify_text(MOBY, &m), FLU_FLUENT);
    assert_true(m.dict_ratio > 0.9);
    /* every 128-token window of the first chapters of the corpus, when fetched */
    char *book = NULL;
    size_t len = 0;
    FILE *f = fopen(".cache/corpora/moby-dick/00004_chapter_1.txt", "rb");
    if (!f) { print_message("moby-dick corpus not fetched (make corpora): embedded paragraph only\n"); return; }
    fclose(f);
    book = tu_read_file(".cache/corpora/moby-dick/00004_chapter_1.txt", &len);
    size_t n;
    int32_t *ids = encode(book, &n);
    int windows = 0;
    for (size_t p = 0; p + G <= n; p += G, windows++)
        if (classify_ids(ids + p, G, &m) != FLU_FLUENT) fail_msg("moby dick window at %zu: %s", p, fluency_verdict_name(fluency_verdict(&m)));
    assert_true(windows >= 10);
    free(ids);
    free(book);
}

static void test_newline_flood(void **state) {
    FluencyMetrics m;
    char buf[4096];
    /* a sentence, then a flood */
    snprintf(buf, sizeof buf, "The whale rose.%s", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
    assert_int_equal(classify_text(buf, &m), FLU_NEWLINE_FLOOD);
    assert_int_equal(m.newline_run, 20);
    /* blank lines with spaces still count as one run */
    snprintf(buf, sizeof buf, "A line.\n \n \n\t\n \n \n \n \n \n \nB");
    assert_int_equal(classify_text(buf, &m), FLU_NEWLINE_FLOOD);
    /* short lines, many newlines */
    snprintf(buf, sizeof buf, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\n");
    assert_int_equal(classify_text(buf, &m), FLU_NEWLINE_FLOOD);
    assert_true(m.newline_frac >= 0.25);
    /* paragraphs are not a flood */
    assert_int_equal(classify_text("One.\n\nTwo, and more words here to read.\n\nThree and the rest of it.", &m), FLU_FLUENT);
}

static uint64_t rng_state = 42;
static uint32_t rnd(void) { rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull; return (uint32_t)(rng_state >> 33); }

static void test_garbage(void **state) {
    FluencyMetrics m;
    char buf[1024];
    /* random bytes (invalid UTF-8, control characters) */
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < 400; i++) buf[i] = (char)(1 + rnd() % 255);
        fluency_measure(buf, 400, NULL, 0, dict, &m);
        if (fluency_verdict(&m) != FLU_GARBAGE) fail_msg("random bytes trial %d: %s", trial, fluency_verdict_name(fluency_verdict(&m)));
    }
    /* replacement characters inside otherwise normal text */
    assert_int_equal(classify_text("The ship \xef\xbf\xbd\xef\xbf\xbd sailed \xef\xbf\xbd on \xef\xbf\xbd the sea \xef\xbf\xbd", &m), FLU_GARBAGE);
    assert_true(m.bad_chars >= 5);
    /* symbol soup */
    assert_int_equal(classify_text("#$%& *@!~ ^^%$ ### {}|<> ;;:: *&^% $#@! ))(( ++== --__", &m), FLU_GARBAGE);
    /* uniformly random tokens of the vocabulary: word salad of fragments */
    int garbage = 0;
    const int trials = 50;
    for (int trial = 0; trial < trials; trial++) {
        int32_t ids[G];
        for (int i = 0; i < G; i++) ids[i] = 4 + (int32_t)(rnd() % 4092);
        garbage += classify_ids(ids, G, &m) == FLU_GARBAGE;
    }
    /* the dictionary ratio of random-token windows reaches 0.66 at its tail (threshold 0.62,
     * docs/fluency.md): most, not all, are caught */
    if (garbage < trials * 8 / 10) fail_msg("random tokens: %d/%d garbage", garbage, trials);
    /* non-words made of letters */
    assert_int_equal(classify_text("Xqz vrpt klomn ashdf qwpoe zzkt brrlm fnord plix wuvq jjet smorp vlad gribb", &m), FLU_GARBAGE);
}

static void test_repetition_loop(void **state) {
    size_t n;
    int32_t *src = encode(MOBY, &n);
    assert_true(n > 60);
    int periods[] = {1, 2, 3, 5, 8, 13, 21, 34, 50};
    for (size_t k = 0; k < sizeof periods / sizeof *periods; k++) {
        int p = periods[k];
        int32_t ids[G];
        for (int i = 0; i < G; i++) ids[i] = src[5 + i % p];
        FluencyMetrics m;
        FluencyVerdict v = classify_ids(ids, G, &m);
        /* period 1 of a newline-free token is a loop; a newline token would be a flood */
        if (v != FLU_REPETITION_LOOP) fail_msg("period %d: %s (rep_frac %.3f, distinct3 %.3f)", p, fluency_verdict_name(v), m.rep_frac, m.distinct3);
    }
    /* a loop that starts mid-window after fluent text: half the window repeats */
    int32_t ids[G];
    for (int i = 0; i < G; i++) ids[i] = i < 64 ? src[i] : src[10 + (i - 64) % 7];
    FluencyMetrics m;
    assert_int_equal(classify_ids(ids, G, &m), FLU_REPETITION_LOOP);
    /* bytes as units when no ids are given */
    const char *s = "the world peace the world peace the world peace the world peace the world peace the world peace";
    fluency_measure(s, strlen(s), NULL, 0, dict, &m);
    assert_int_equal(fluency_verdict(&m), FLU_REPETITION_LOOP);
    free(src);
}

/* ---------------------------------------------------------------- linear repetition measure (issue 13) */

/* The pairwise DP that fluency_measure used before (O(n^2)): the reference for the same results. */
static int64_t repeat_reference(const int32_t *u, int64_t n) {
    if (n < 2) return 0;
    int64_t *row = calloc((size_t)n + 1, sizeof *row), best = 0;
    for (int64_t i = 1; i <= n; i++)
        for (int64_t j = n; j > i; j--) {
            row[j] = u[i - 1] == u[j - 1] ? row[j - 1] + 1 : 0;
            if (row[j] > best) best = row[j];
        }
    free(row);
    return best;
}

static uint64_t lcg_state = 88172645463325252ull;
static uint32_t lcg(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

/* Sequences of n units of each kind the measure meets: random over an alphabet, one unit
 * repeated, a loop of period p after some text, the Fibonacci word (repeats at every scale). */
static void fill_kind(int32_t *u, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: u[i] = (int32_t)(lcg() % 2); break;
        case 1: u[i] = (int32_t)(lcg() % 30); break;
        case 2: u[i] = (int32_t)(lcg() % 50000) - 100; break; /* negative ids are units too */
        case 3: u[i] = 7; break;
        case 4: u[i] = i < n / 3 ? (int32_t)(lcg() % 1000) : (int32_t)((i % 13) + 5000); break;
        default: { /* Fibonacci word: position i is 1 when floor((i+2)/phi) - floor((i+1)/phi) == 1 */
            const double phi = 1.6180339887498949;
            u[i] = (int32_t)(floor((double)(i + 2) / phi) - floor((double)(i + 1) / phi));
        }
        }
    }
}

/* Same longest repeat as the quadratic reference, on every kind and many lengths, on Moby Dick's
 * bytes and tokens, and the same fluency_measure result on the sample text. */
static void test_repeat_same_results(void **state) {
    int32_t u[700];
    for (int kind = 0; kind < 6; kind++)
        for (int64_t n = 0; n <= 700; n += n < 40 ? 1 : 37) {
            fill_kind(u, n, kind);
            int64_t want = repeat_reference(u, n), got = fluency_longest_repeat(u, n, NULL);
            if (got != want) fail_msg("kind %d, n %lld: %lld, the reference says %lld", kind, (long long)n, (long long)got, (long long)want);
        }
    size_t len = strlen(MOBY), nt;
    int32_t *b = malloc(len * sizeof *b);
    for (size_t i = 0; i < len; i++) b[i] = (unsigned char)MOBY[i];
    assert_int_equal(fluency_longest_repeat(b, (int64_t)len, NULL), repeat_reference(b, (int64_t)len));
    int32_t *t = encode(MOBY, &nt);
    assert_int_equal(fluency_longest_repeat(t, (int64_t)nt, NULL), repeat_reference(t, (int64_t)nt));
    FluencyMetrics m;
    fluency_measure(MOBY, len, NULL, 0, dict, &m);
    assert_int_equal(m.rep_len, repeat_reference(b, (int64_t)len));
    free(b);
    free(t);
}

/* The work grows linearly: 16 times the units cost at most 32 times the steps (the O(n^2) DP
 * takes 256 times), and at most 40 steps per unit (measured: 5 to 15).  Counted operations,
 * not time, so that a loaded machine cannot fail it. */
static void test_repeat_linear(void **state) {
    const int64_t n0 = 4096, n1 = 16 * n0;
    int32_t *u = malloc((size_t)n1 * sizeof *u);
    for (int kind = 0; kind < 6; kind++) {
        uint64_t ops0, ops1;
        fill_kind(u, n0, kind);
        fluency_longest_repeat(u, n0, &ops0);
        fill_kind(u, n1, kind);
        fluency_longest_repeat(u, n1, &ops1);
        assert_true(ops0 > 0);
        double ratio = (double)ops1 / (double)ops0;
        if (getenv("LCB_VERBOSE")) printf("kind %d: %.2f steps per unit at %lld units, %.2f at %lld\n", kind,
                                          (double)ops0 / (double)n0, (long long)n0, (double)ops1 / (double)n1, (long long)n1);
        if (ratio > 32.0) fail_msg("kind %d: %llu steps for %lld units, %llu for %lld: x%.1f, not linear", kind,
                                   (unsigned long long)ops0, (long long)n0, (unsigned long long)ops1, (long long)n1, ratio);
        if ((double)ops1 / (double)n1 > 40.0) fail_msg("kind %d: %.1f steps per unit", kind, (double)ops1 / (double)n1);
    }
    free(u);
}

static void test_dict(void **state) {
    assert_true(fluency_dict_has(dict, "whale", 5));
    assert_true(fluency_dict_has(dict, "Ishmael", 7));
    assert_true(fluency_dict_has(dict, "WHALE", 5));
    assert_false(fluency_dict_has(dict, "xqzvrpt", 7));
    char err[LCB_ERRLEN];
    assert_null(fluency_dict_load("/nonexistent/words", err, sizeof err));
    assert_non_null(strstr(err, "wamerican"));
    assert_non_null(strstr(err, "/nonexistent/words"));
}

/* ---------------------------------------------------------------- strategy copy */

static void test_clone_exact(void **state) {
    const char *specs[] = {"dense", "window:16", "sink:4:16", "recompute:16", "longlora:4"};
    Model m;
    char err[LCB_ERRLEN];
    if (model_open(&m, "random:llama-tiny:3", NULL, err, sizeof err)) fail_msg("%s", err);
    const int V = m.cfg.vocab, T0 = 50, T1 = 12;
    int32_t ids[T0 + T1];
    for (int i = 0; i < T0 + T1; i++) ids[i] = (int32_t)(rnd() % (uint32_t)V);
    float *a = malloc((size_t)T0 * V * sizeof *a), *b = malloc((size_t)T1 * V * sizeof *b), *c = malloc((size_t)T1 * V * sizeof *c);
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        Strategy s, cl, ref;
        assert_int_equal(strategy_parse(&s, specs[k], err, sizeof err), 0);
        assert_int_equal(strategy_begin(&s, &m, err, sizeof err), 0);
        assert_int_equal(strategy_feed(&s, ids, T0, a, err, sizeof err), 0);
        if (strategy_clone(&cl, &s, ids, T0, err, sizeof err)) fail_msg("%s: %s", specs[k], err);
        /* disturb the copy: generate on it */
        Sampler sm;
        sampler_init(&sm, 0.9, 0, 1, 7);
        int32_t junk[20];
        assert_int_equal(gen_tokens(&cl, ids + T0, 1, &sm, junk, 20, NULL, NULL, err, sizeof err), 0);
        strategy_end(&cl);
        /* the original continues exactly as an undisturbed one does */
        assert_int_equal(strategy_feed(&s, ids + T0, T1, b, err, sizeof err), 0);
        assert_int_equal(strategy_parse(&ref, specs[k], err, sizeof err), 0);
        assert_int_equal(strategy_begin(&ref, &m, err, sizeof err), 0);
        assert_int_equal(strategy_feed(&ref, ids, T0, a, err, sizeof err), 0);
        assert_int_equal(strategy_feed(&ref, ids + T0, T1, c, err, sizeof err), 0);
        if (memcmp(b, c, (size_t)T1 * V * sizeof *b)) fail_msg("%s: the stream changed after a probe on its copy", specs[k]);
        /* and a fresh copy continues as the original: same chunking, so bit-identical except
         * recompute, whose copy is rebuilt by one forward over its window (float rounding) */
        Strategy cl2;
        assert_int_equal(strategy_clone(&cl2, &ref, ids, T0 + T1, err, sizeof err), 0);
        int32_t x[3] = {1, 2, 3};
        float *o1 = malloc(3 * (size_t)V * sizeof *o1), *o2 = malloc(3 * (size_t)V * sizeof *o2);
        assert_int_equal(strategy_feed(&cl2, x, 3, o1, err, sizeof err), 0);
        assert_int_equal(strategy_feed(&ref, x, 3, o2, err, sizeof err), 0);
        double md = 0;
        for (int i = 0; i < 3 * V; i++) md = fmax(md, fabs(o1[i] - o2[i]));
        /* tolerance: 1e-4, the fixture tolerance for chunking differences (SPEC §4) */
        if (md > (strcmp(specs[k], "recompute:16") ? 0 : 1e-4)) fail_msg("%s: copy differs by %g", specs[k], md);
        free(o1); free(o2);
        strategy_end(&cl2);
        strategy_end(&ref);
        strategy_end(&s);
        sampler_free(&sm);
    }
    /* s2 cannot be continued token by token */
    Strategy s2, d;
    assert_int_equal(strategy_parse(&s2, "s2:16", err, sizeof err), 0);
    assert_false(strategy_can_generate(&s2));
    assert_int_not_equal(strategy_clone(&d, &s2, NULL, 0, err, sizeof err), 0);
    free(a); free(b); free(c);
    model_free(&m);
}

/* ---------------------------------------------------------------- sampler */

static void test_sampler(void **state) {
    float lg[8] = {0.1f, 2.0f, 1.9f, -1.0f, 2.0f, 0.5f, 0.0f, 1.0f};
    Sampler s;
    sampler_init(&s, 0, 0, 1, 0);
    assert_int_equal(sampler_pick(&s, lg, 8), 1);   /* ties: lowest id */
    sampler_init(&s, 1.0, 1, 1, 5);
    for (int i = 0; i < 20; i++) assert_int_equal(sampler_pick(&s, lg, 8), 1);   /* top-k 1 = greedy */
    sampler_free(&s);
    sampler_init(&s, 1.0, 0, 0.01, 5);
    for (int i = 0; i < 20; i++) assert_int_equal(sampler_pick(&s, lg, 8), 1);   /* tiny top-p = the best */
    sampler_free(&s);
    /* top-k 3 never leaves {1, 4, 2}; a seed reproduces the draws */
    int32_t d1[200], d2[200], hist[8] = {0};
    sampler_init(&s, 1.0, 3, 1, 99);
    for (int i = 0; i < 200; i++) { d1[i] = sampler_pick(&s, lg, 8); hist[d1[i]]++; }
    sampler_free(&s);
    sampler_init(&s, 1.0, 3, 1, 99);
    for (int i = 0; i < 200; i++) d2[i] = sampler_pick(&s, lg, 8);
    sampler_free(&s);
    assert_memory_equal(d1, d2, sizeof d1);
    assert_int_equal(hist[1] + hist[2] + hist[4], 200);
    assert_true(hist[1] > 30 && hist[2] > 30 && hist[4] > 30);
}

/* ---------------------------------------------------------------- passkey */

static void test_numpy_random(void **state) {
    /* np.random.seed(0); np.random.randint(10, size=5) -> [5, 0, 3, 3, 7] */
    NpRandom r;
    np_random_seed(&r, 0);
    int64_t want[5] = {5, 0, 3, 3, 7};
    for (int i = 0; i < 5; i++) assert_int_equal(np_random_randint(&r, 0, 10), want[i]);
    /* MT19937 reference: init_genrand(5489) first output 3499211612 */
    np_random_seed(&r, 5489);
    assert_int_equal(np_random_uint32(&r), 3499211612u);
    /* LongLoRA's lengths for --interval 1000: 3072, 7168, 10240 */
    assert_int_equal(passkey_n_garbage(0, 1000), 3072);
    assert_int_equal(passkey_n_garbage(1, 1000), 7168);
    assert_int_equal(passkey_n_garbage(2, 1000), 10240);   /* 11250 // 1024 = 10 */
    assert_int_equal(passkey_n_garbage(0, 256), 0);
}

static void test_passkey_prompt(void **state) {
    char *p, key[16];
    size_t len, off;
    assert_int_equal(passkey_prompt(1000, 3, &p, &len, key, &off), 0);
    assert_int_equal(strlen(p), len);
    /* five lines joined by "\n" */
    char *lines[6];
    int n = 0;
    char *q = strdup(p);
    for (char *s = q, *e; n < 6; s = e + 1) { lines[n++] = s; if (!(e = strchr(s, '\n'))) break; *e = 0; }
    assert_int_equal(n, 5);
    assert_string_equal(lines[0], PASSKEY_INTRO);
    char info[128];
    snprintf(info, sizeof info, "The pass key is %s. Remember it. %s is the pass key.", key, key);
    assert_string_equal(lines[2], info);
    assert_string_equal(lines[4], PASSKEY_QUESTION);
    assert_int_equal(strlen(lines[1]) + strlen(lines[3]), 1000);
    assert_int_equal(p + off, strstr(p, "The pass key is"));
    /* prefix and suffix are leading slices of the filler joined by spaces */
    char inf[2048] = "";
    while (strlen(inf) < 1000) { if (*inf) strcat(inf, " "); strcat(inf, PASSKEY_FILLER); }
    assert_int_equal(strncmp(lines[1], inf, strlen(lines[1])), 0);
    assert_int_equal(strncmp(lines[3], inf, strlen(lines[3])), 0);
    long k = strtol(key, NULL, 10);
    assert_true(k >= 1 && k < 50000);
    /* the same seed gives the same prompt */
    char *p2, key2[16];
    size_t len2, off2;
    assert_int_equal(passkey_prompt(1000, 3, &p2, &len2, key2, &off2), 0);
    assert_string_equal(p, p2);
    free(p); free(p2); free(q);
}

/* ---------------------------------------------------------------- run probes */

/* 900 random ids under 256 into the test folder's file `name` (a run's --dataset), its path in path */
static void write_stream_ids(char *path, size_t n, const char *name) {
    snprintf(path, n, "%s/%s", tu_tmpdir(), name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 900; i++) fprintf(f, "%u ", rnd() % 256);
    fclose(f);
}

static void test_run_probes_bit_identical(void **state) {
    char path[256], db[256], *out;
    write_stream_ids(path, sizeof path, "stream.ids");
    snprintf(db, sizeof db, "%s/probes.db", tu_tmpdir());
    const char *specs[] = {"sink:4:60", "dense", "recompute:32"};
    for (int k = 0; k < 3; k++) {
        int rc = tu_run(&out, "%s run --model random:llama-tiny:5 --dataset %s --strategy %s --chunk 50 --db %s",
                        tu_lcbench(), path, specs[k], db);
        if (rc) fail_msg("run without probes: %d %s", rc, out);
        free(out);
        rc = tu_run(&out, "%s run --model random:llama-tiny:5 --dataset %s --strategy %s --chunk 50 --db %s --probe-every 200 --probe-tokens 16",
                    tu_lcbench(), path, specs[k], db);
        if (rc) fail_msg("run with probes: %d %s", rc, out);
        free(out);
    }
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *st;
        char sql[1024];
        snprintf(sql, sizeof sql, "SELECT (SELECT group_concat(hex(data), '') FROM (SELECT data FROM nll WHERE run_id=%d ORDER BY seq)) ="
                 " (SELECT group_concat(hex(data), '') FROM (SELECT data FROM nll WHERE run_id=%d ORDER BY seq)),"
                 " (SELECT COUNT(*) FROM probes WHERE run_id=%d), (SELECT COUNT(*) FROM nll WHERE run_id=%d)",
                 2 * k + 1, 2 * k + 2, 2 * k + 2, 2 * k + 1);
        assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        if (sqlite3_column_int(st, 0) != 1) fail_msg("%s: per-step NLLs differ with probes", specs[k]);
        assert_int_equal(sqlite3_column_int(st, 1), 4);   /* positions 200, 400, 600, 800 */
        assert_true(sqlite3_column_int(st, 2) > 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    /* probes are a stream feature: usage error naming the flag */
    int rc = tu_run(&out, "%s run --model random:llama-tiny --dataset %s --protocol chunks --ctx 64 --probe-every 100 --db %s", tu_lcbench(), path, db);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--probe-every"));
    free(out);
}

/* Probes sit at the multiples of --probe-every whatever the chunk: the stream's feeds are cut there
 * (a GPU's default chunk of 4096 once swallowed every probe of a 3000-token run). */
static void test_run_probes_chunk_independent(void **state) {
    char path[256], db[256], *out;
    write_stream_ids(path, sizeof path, "stream_cut.ids");
    snprintf(db, sizeof db, "%s/probes_cut.db", tu_tmpdir());
    unlink(db);
    const char *chunks[] = {"64", "300", "0"};
    for (int k = 0; k < 3; k++) {
        int rc = tu_run(&out, "%s run --model random:llama-tiny:5 --dataset %s --strategy sink:4:60 --chunk %s --db %s --probe-every 200 --probe-tokens 8",
                        tu_lcbench(), path, chunks[k], db);
        if (rc) fail_msg("--chunk %s: %d %s", chunks[k], rc, out);
        free(out);
    }
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *st;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT group_concat(pos, ' ') FROM (SELECT pos FROM probes WHERE run_id=%d ORDER BY pos)", k + 1);
        assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        const char *pos = (const char *)sqlite3_column_text(st, 0);
        if (!pos || strcmp(pos, "201 401 601 801")) fail_msg("--chunk %s: probes at \"%s\", expected 201 401 601 801", chunks[k], pos ? pos : "");
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
}

static void test_cli_usage(void **state) {
    char *out;
    int rc = tu_run(&out, "%s generate --max-new 10", tu_lcbench());
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--prompt"));
    free(out);
    rc = tu_run(&out, "%s generate --prompt hi --top-p 2", tu_lcbench());
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--top-p"));
    free(out);
    rc = tu_run(&out, "%s generate --prompt hi --strategy s2:16", tu_lcbench());
    assert_int_equal(rc, 2);
    free(out);
    rc = tu_run(&out, "%s passkey --num-tests 0", tu_lcbench());
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--num-tests"));
    free(out);
}

/* ---------------------------------------------------------------- the results store's side tables */

/* The tables that fluency.c and sweep_store.c made on demand until 0.8 (CREATE TABLE IF NOT
 * EXISTS outside the migrations), as those versions wrote them into a results file. */
static const char *const OLD_SIDE_TABLES =
    "CREATE TABLE IF NOT EXISTS probes (run_id INTEGER NOT NULL REFERENCES runs(id), prompt_idx INTEGER,"
    " pos INTEGER NOT NULL, tokens INTEGER, text TEXT, verdict TEXT NOT NULL, chars INTEGER, newline_run INTEGER,"
    " newline_frac REAL, bad_chars INTEGER, bad_frac REAL, alpha_frac REAL, words INTEGER, dict_ratio REAL, rep_len INTEGER,"
    " rep_frac REAL, distinct3 REAL);"
    "CREATE INDEX IF NOT EXISTS probes_run ON probes(run_id, pos);"
    "CREATE TABLE IF NOT EXISTS generations (id INTEGER PRIMARY KEY, status TEXT, started TEXT, ended TEXT,"
    " lcbench_rev TEXT, argv TEXT, model TEXT, max_pos INTEGER, strategy TEXT, decoding TEXT, temperature REAL,"
    " top_k INTEGER, top_p REAL, seed INTEGER, n_prompts INTEGER, max_new INTEGER, window INTEGER,"
    " tokens_fed INTEGER, tokens_generated INTEGER, first_collapse_pos INTEGER, first_collapse_verdict TEXT,"
    " first_collapse_prompt INTEGER, wall_s REAL);"
    "CREATE TABLE IF NOT EXISTS passkey_runs (id INTEGER PRIMARY KEY, status TEXT, started TEXT, ended TEXT,"
    " lcbench_rev TEXT, argv TEXT, model TEXT, max_pos INTEGER, strategy TEXT, interval INTEGER, max_tokens INTEGER,"
    " num_tests INTEGER, tests INTEGER, correct INTEGER, wall_s REAL);"
    "CREATE TABLE IF NOT EXISTS sweeps (id TEXT PRIMARY KEY, plan_path TEXT, plan TEXT, n_cells INTEGER, created TEXT);"
    "CREATE TABLE IF NOT EXISTS sweep_cells (sweep_id TEXT NOT NULL, cell_idx INTEGER, cell_key TEXT NOT NULL, args TEXT,"
    " attempt INTEGER NOT NULL, run_id INTEGER REFERENCES runs(id), host TEXT, pid INTEGER, id_floor INTEGER,"
    " started TEXT, exit_status INTEGER);"
    "INSERT INTO probes (run_id, pos, verdict, text) VALUES (1, 200, 'fluent', 'kept across the migration');"
    "INSERT INTO generations (status, strategy) VALUES ('done', 'sink:4:1020');"
    "INSERT INTO sweeps (id, n_cells) VALUES ('old-sweep', 3);";

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *data = tu_read_file(from, &n);
    tu_write_file(to, data, n);
    free(data);
}

static int64_t count_of(Store *s, const char *sql) {
    sqlite3_stmt *q;
    int64_t n = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(s->db));
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

static const char *const SIDE_TABLES[] = {"probes", "generations", "generation_windows", "passkey_runs", "passkey", "sweeps", "sweep_cells"};

static void assert_side_tables(Store *s) {
    for (size_t i = 0; i < sizeof SIDE_TABLES / sizeof *SIDE_TABLES; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='%s'", SIDE_TABLES[i]);
        if (count_of(s, sql) != 1) fail_msg("table %s missing after store_open", SIDE_TABLES[i]);
    }
}

/* A file made by the released version (tests/baseline/lcb-0.8m.db, schema 2, no side tables) and
 * one that already holds the side tables from the old on-demand path both migrate forward. */
static void test_store_migrates_released(void **state) {
    char db[256], err[LCB_ERRLEN];
    Store s;
    snprintf(db, sizeof db, "%s/released.db", tu_tmpdir());
    copy_file("tests/baseline/lcb-0.8m.db", db);   /* never the tracked file itself */
    if (store_open(&s, db, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(store_schema_version(&s), STORE_SCHEMA_VERSION);
    assert_side_tables(&s);
    assert_true(count_of(&s, "SELECT COUNT(*) FROM runs") > 0);   /* its runs are kept */
    store_close(&s);

    snprintf(db, sizeof db, "%s/old_side_tables.db", tu_tmpdir());
    copy_file("tests/baseline/lcb-0.8m.db", db);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, OLD_SIDE_TABLES, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    if (store_open(&s, db, err, sizeof err)) fail_msg("a file with the old on-demand tables: %s", err);
    assert_int_equal(store_schema_version(&s), STORE_SCHEMA_VERSION);
    assert_side_tables(&s);
    assert_int_equal(count_of(&s, "SELECT COUNT(*) FROM probes WHERE text = 'kept across the migration'"), 1);
    assert_int_equal(count_of(&s, "SELECT COUNT(*) FROM generations"), 1);
    assert_int_equal(count_of(&s, "SELECT n_cells FROM sweeps WHERE id = 'old-sweep'"), 3);
    store_close(&s);
    /* and opening it again changes nothing */
    if (store_open(&s, db, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(count_of(&s, "SELECT COUNT(*) FROM probes"), 1);
    store_close(&s);
}

/* store_row_insert / store_row_update bind every value: quotes stay text, NAN and NULL text are
 * NULL, an explicit length keeps embedded bytes, a bad column fails with the table named. */
static void test_store_rows(void **state) {
    char db[256], err[LCB_ERRLEN];
    Store s;
    snprintf(db, sizeof db, "%s/rows.db", tu_tmpdir());
    copy_file("tests/baseline/lcb-0.8m.db", db);   /* probes reference a run */
    if (store_open(&s, db, err, sizeof err)) fail_msg("%s", err);
    int64_t id = 0;
    const char *evil = "x'); DROP TABLE passkey_runs; --";
    const StoreVal row[] = {SV_TEXT("status", store_status_name(STORE_RUNNING)), SV_TEXT("strategy", evil), SV_INT("interval", 7),
                            SV_REAL("wall_s", NAN), SV_TEXT("model", NULL)};
    assert_int_equal(store_row_insert(&s, "passkey_runs", row, 5, &id, err, sizeof err), 0);
    assert_true(id > 0);
    const StoreVal end[] = {SV_TEXT("status", store_status_name(STORE_DONE)), SV_INT("tests", 12), SV_REAL("wall_s", 1.25),
                            SV_TEXTN("ended", "2024-01-01T00:00:00Zjunk", 20)};
    assert_int_equal(store_row_update(&s, "passkey_runs", "id", id, end, 4, err, sizeof err), 0);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(s.db, "SELECT status, strategy, interval, tests, wall_s, model IS NULL, ended FROM passkey_runs WHERE id=?",
                                        -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_int64(q, 1, id);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "done");
    assert_string_equal((const char *)sqlite3_column_text(q, 1), evil);
    assert_int_equal(sqlite3_column_int64(q, 2), 7);
    assert_int_equal(sqlite3_column_int64(q, 3), 12);
    assert_true(sqlite3_column_double(q, 4) == 1.25);
    assert_int_equal(sqlite3_column_int(q, 5), 1);
    assert_string_equal((const char *)sqlite3_column_text(q, 6), "2024-01-01T00:00:00Z");
    sqlite3_finalize(q);
    /* NAN stored as NULL, never as a number */
    const StoreVal nan_row[] = {SV_TEXT("status", "running")};
    assert_int_equal(store_row_insert(&s, "passkey_runs", nan_row, 1, &id, err, sizeof err), 0);
    assert_int_equal(count_of(&s, "SELECT COUNT(*) FROM passkey_runs WHERE wall_s IS NULL"), 1);
    /* a probe row through fluency_store_window: dict_ratio NAN reads back NULL */
    FluencyMetrics m;
    fluency_measure(MOBY, strlen(MOBY), NULL, 0, NULL, &m);
    assert_true(isnan(m.dict_ratio));
    assert_int_equal(fluency_store_window(&s, "probes", count_of(&s, "SELECT MIN(id) FROM runs"), -1, 64, MOBY, 9, &m, fluency_verdict(&m), err, sizeof err), 0);
    assert_int_equal(count_of(&s, "SELECT COUNT(*) FROM probes WHERE text = 'Call me I' AND dict_ratio IS NULL AND prompt_idx IS NULL"), 1);
    /* failures name the table */
    const StoreVal bad[] = {SV_INT("no_such_column", 1)};
    assert_int_equal(store_row_insert(&s, "passkey_runs", bad, 1, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "passkey_runs"));
    assert_int_equal(store_row_update(&s, "passkey_runs", "id", 1, bad, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "passkey_runs"));
    assert_int_equal(store_row_insert(&s, "passkey_runs", bad, 0, NULL, err, sizeof err), -1);
    store_close(&s);
}

/* Statuses: names and words round-trip, unknown words stay themselves when shown, a running row
 * of this host whose process is gone reads stale, one of this process reads running. */
static void test_store_status(void **state) {
    for (int st = STORE_RUNNING; st <= STORE_STALE; st++) {
        assert_int_equal(store_status_parse(store_status_name((StoreStatus)st)), st);
    }
    assert_string_equal(store_status_name(STORE_DONE), "done");
    assert_string_equal(store_status_name(STORE_INTERRUPTED), "interrupted");
    assert_int_equal(store_status_parse(NULL), STORE_STATUS_UNKNOWN);
    assert_int_equal(store_status_parse("Done"), STORE_STATUS_UNKNOWN);
    assert_string_equal(store_status_display(NULL, NULL, 0), "?");
    assert_string_equal(store_status_display("weird", NULL, 0), "weird");
    assert_string_equal(store_status_display("oom", NULL, 0), "oom");
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    assert_int_equal(store_status_shown("running", me, (int64_t)getpid()), STORE_RUNNING);
    assert_int_equal(store_status_shown("running", me, 0), STORE_STALE);
    assert_int_equal(store_status_shown("running", "another-host.invalid", 0), STORE_RUNNING);
    assert_true(store_status_final(STORE_DONE) && store_status_final(STORE_OOM));
    assert_false(store_status_final(STORE_FAILED) || store_status_final(STORE_STALE) || store_status_final(STORE_RUNNING));
}

/* The readers of a run's rows (show): sample peaks, events in order, stored bins of one kind. */
static int collect_event(void *ctx, int64_t pos, const char *time, const char *kind, const char *detail) {
    char *buf = ctx;
    size_t l = strlen(buf);
    snprintf(buf + l, 256 - l, "%lld:%s:%s;", (long long)pos, kind, detail);
    return 0;
}

static void test_store_readers(void **state) {
    char db[256], err[LCB_ERRLEN];
    Store s;
    snprintf(db, sizeof db, "%s/readers.db", tu_tmpdir());
    copy_file("tests/baseline/lcb-0.8m.db", db);
    if (store_open(&s, db, err, sizeof err)) fail_msg("%s", err);
    int64_t run = count_of(&s, "SELECT MIN(id) FROM runs");
    StoreSamplePeaks p;
    assert_int_equal(store_samples_peaks(&s, run, &p, err, sizeof err), 0);
    assert_int_equal(p.n, count_of(&s, "SELECT COUNT(*) FROM samples WHERE run_id = (SELECT MIN(id) FROM runs)"));
    assert_true(p.n > 0 && p.weights > 0);
    assert_int_equal(store_samples_peaks(&s, 999999, &p, err, sizeof err), 0);
    assert_int_equal(p.n, 0);
    char ev[256] = "";
    assert_int_equal(store_event(&s, run, 5, "first", NULL, err, sizeof err), 0);
    assert_int_equal(store_event(&s, run, 3, "second", "d", err, sizeof err), 0);
    assert_int_equal(store_events_foreach(&s, 999999, collect_event, ev, err, sizeof err), 0);
    assert_string_equal(ev, "");
    assert_int_equal(store_events_foreach(&s, run, collect_event, ev, err, sizeof err), 0);
    assert_non_null(strstr(ev, "5:first:;3:second:d;"));   /* written order, NULL detail as "" */
    StoreBin *b;
    size_t n;
    assert_int_equal(store_bins_read(&s, run, "log2", &b, &n, err, sizeof err), 0);
    assert_int_equal((int64_t)n, count_of(&s, "SELECT COUNT(*) FROM bins WHERE kind='log2' AND run_id = (SELECT MIN(id) FROM runs)"));
    assert_true(n > 1);
    for (size_t i = 1; i < n; i++) assert_true(b[i].lo > b[i - 1].lo);
    assert_string_equal(b[0].kind, "log2");
    free(b);
    assert_int_equal(store_bins_read(&s, run, "cubic", &b, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "cubic"));
    store_close(&s);
}

int main(void) {
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    char err[LCB_ERRLEN];
    if (!(dict = fluency_dict_load(NULL, err, sizeof err))) { fprintf(stderr, "test_fluency: %s\n", err); return 1; }
    if (!(tok = tokenizer_load(TOK, err, sizeof err))) { fprintf(stderr, "test_fluency: %s\n", err); return 1; }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fluent),
        cmocka_unit_test(test_newline_flood),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_repetition_loop),
        cmocka_unit_test(test_dict),
        cmocka_unit_test(test_clone_exact),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_numpy_random),
        cmocka_unit_test(test_passkey_prompt),
        cmocka_unit_test(test_run_probes_bit_identical),
        cmocka_unit_test(test_run_probes_chunk_independent),
        cmocka_unit_test(test_cli_usage),
        cmocka_unit_test(test_repeat_same_results),
        cmocka_unit_test(test_repeat_linear),
        cmocka_unit_test(test_store_migrates_released),
        cmocka_unit_test(test_store_rows),
        cmocka_unit_test(test_store_status),
        cmocka_unit_test(test_store_readers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fluency_dict_free(dict);
    tokenizer_free(tok);
    return rc;
}
