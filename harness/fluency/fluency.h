/*
 * fluency.h — the fluency detector: measures on a piece of generated text (and its token ids)
 * that separate fluent prose from the ways the seed models lose fluency, a verdict, and where
 * the results go in the SQLite store.
 *
 * Measures (all on one window of text, typically G generated tokens):
 *   newlines    longest run of '\n' with only blanks between them; fraction of code points
 *               that are '\n'
 *   garbage     code points that are U+FFFD, invalid UTF-8 bytes or control characters (other
 *               than \t \n \r), as a fraction; letters / non-blank code points; fraction of
 *               ASCII words found in Debian's `wamerican` list (/usr/share/dict/american-english)
 *   repetition  longest token n-gram occurring twice (possibly overlapping), as a fraction of
 *               the window; distinct-3 (distinct token trigrams / trigrams)
 * Verdict, first rule that fires: newline-flood; garbage by bad characters; repetition-loop;
 * garbage by letters or dictionary words; else fluent.  The
 * thresholds are the FLU_* constants of fluency.c, calibrated on Moby Dick, SOTU and
 * SpamAssassin windows against synthetic floods, garbage and loops (docs/fluency.md).
 *
 * Also here: the probe that `run` calls every N tokens (--probe-every N --probe-tokens G), which
 * generates from strategy_clone's exact copy of the stream's state (CPU or GPU), so that it
 * never disturbs the stream it starts from.
 */
#ifndef LCB_FLUENCY_H
#define LCB_FLUENCY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"
#include "reports/store/store.h"
#include "strategies/strategy.h"

#define FLUENCY_WORDLIST "/usr/share/dict/american-english"

typedef enum { FLU_FLUENT = 0, FLU_NEWLINE_FLOOD, FLU_GARBAGE, FLU_REPETITION_LOOP } FluencyVerdict;

typedef struct {
    int64_t chars;           /* code points (an invalid byte counts as one) */
    int64_t tokens;          /* repetition units: token ids, or bytes when no ids were given */
    int64_t newline_run;     /* longest run of '\n' with only blanks between */
    double newline_frac;     /* '\n' / chars */
    int64_t bad_chars;       /* U+FFFD + invalid UTF-8 bytes + control characters */
    double bad_frac;         /* bad_chars / chars */
    double alpha_frac;       /* letters / non-blank code points (1 when there are none) */
    int64_t words;           /* maximal runs of ASCII letters (with inner apostrophes) */
    double dict_ratio;       /* words in the list / words (NAN when words == 0 or no list) */
    int64_t rep_len;         /* longest repeated n-gram, in units */
    double rep_frac;         /* rep_len / units */
    double distinct3;        /* distinct trigrams / trigrams (1 when < 3 units) */
} FluencyMetrics;

typedef struct FluencyDict FluencyDict;

/* Load a word list (one word a line; path NULL = FLUENCY_WORDLIST).  NULL with err when it is
 * missing, naming the Debian package. */
FluencyDict *fluency_dict_load(const char *path, char *err, size_t errlen);
void fluency_dict_free(FluencyDict *d);
/* Whether a word (ASCII letters and apostrophes, any case) is in the list. */
int fluency_dict_has(const FluencyDict *d, const char *w, size_t n);

/* Measure a window: text (len bytes, UTF-8 or not) and optionally its token ids (NULL: bytes
 * are the repetition units).  dict may be NULL (dict_ratio NAN, that rule skipped). */
void fluency_measure(const char *text, size_t len, const int32_t *ids, size_t n_ids, const FluencyDict *dict,
                     FluencyMetrics *m);
FluencyVerdict fluency_verdict(const FluencyMetrics *m);
/* The longest run of units occurring twice in u (overlaps allowed), in expected O(n) time and
 * memory (a suffix automaton); *ops, if non-NULL, counts its steps (for the linearity test). */
int64_t fluency_longest_repeat(const int32_t *u, int64_t n, uint64_t *ops);
const char *fluency_verdict_name(FluencyVerdict v);

/* ---------------------------------------------------------------- store */

/* The fluency tables (made by store.c's migrations; see docs/fluency.md):
 *   probes             (run_id, pos, tokens, text, verdict, metrics...)   probes during `run`
 *   generations        one row per `lcbench generate`
 *   generation_windows (gen_id, prompt_idx, pos, tokens, text, verdict, metrics...)
 *   passkey_runs       one row per `lcbench passkey`
 *   passkey            (pk_run_id, strategy, length, seed, tokens, key, ..., correct)
 */
/* Insert a window's row: table "probes" (owner = run id) or "generation_windows" (owner =
 * generation id, prompt index in `prompt_idx`). */
int fluency_store_window(Store *st, const char *table, int64_t owner, int64_t prompt_idx, int64_t pos, const char *text,
                         size_t len, const FluencyMetrics *m, FluencyVerdict v, char *err, size_t errlen);

/* ---------------------------------------------------------------- strategy state */

/* The copy a probe or a generation branch starts from is strategy_clone (strategies/strategy.h:
 * each policy's own, on the CPU or the GPU). */
/* Whether a strategy can be continued token by token (not s2). */
int strategy_can_generate(const Strategy *s);

/* ---------------------------------------------------------------- probes during run */

typedef struct {
    int64_t every;           /* probe at each multiple of this stream position; 0 = off */
    int64_t tokens;          /* G: greedy tokens per probe */
    const Tokenizer *tok;    /* to decode (NULL: no text, bytes of ids) */
    const FluencyDict *dict;
    int64_t next;            /* next probe position */
} FluencyProbe;

/* Called after the stream has fed tokens 0 .. pos-1 into s (ids = the stream): for every
 * multiple of `every` passed, clones s, feeds the clone ids[pos] .. (the probe's context is
 * x_0 .. x_p with p the multiple... see fluency.c), greedily generates G tokens, classifies
 * them and stores a `probes` row.  s is not touched. */
int fluency_probe_step(FluencyProbe *p, Store *st, int64_t run_id, const Strategy *s, const int32_t *ids, int64_t n_ids,
                       int64_t pos, char *err, size_t errlen);

#endif
