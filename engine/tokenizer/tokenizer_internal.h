/*
 * tokenizer_internal.h — what the files of engine/tokenizer/ share and nothing outside uses:
 * the growable buffer, the arena and the two hash maps (util.c), the loaded pipeline (struct
 * Tokenizer: one array of steps per section of tokenizer.json), the loader's error context, the
 * piece list and the per-call scratch space of encoding, and the functions one section's file
 * calls in another's.  The public interface is engine/tokenizer.h.
 */
#ifndef LCB_TOKENIZER_INTERNAL_H
#define LCB_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer.h"
#include "engine/common.h"

#include <cJSON.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>


/* Why an encode or decode failed when it was not memory: a regex that failed while matching,
 * a normalizer or decoder that grew the text past the cap below. */
#define TOK_WHY 256


/* How long a normalizer or decoder chain may make a text of n bytes.  Real chains at most
 * triple it (" " -> U+2581 is 1 -> 3 bytes, a lowercase letter 2 -> 3); a chain of Replace
 * steps that each double the text grows it exponentially (a 144 KB tokenizer.json took 12 KB
 * of text to 3.9 GB), so past this the text is refused, before memory runs out. */
#define TOK_GROWTH_MAX 64
#define TOK_GROWTH_SLACK 4096

/* Growable byte buffer; p is always NUL-terminated when non-NULL. */
typedef struct {
    char *p;
    size_t n, cap;
} Buf;

/* Block arena: strings copied here never move until the arena is freed. */
typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t used, cap;
    char data[];
} ArenaBlock;

typedef struct {
    ArenaBlock *head;
} Arena;

/* string -> int32 map, open addressing, keys point to arena strings (not owned). */
typedef struct {
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
    uint32_t *hashes;
    size_t cap, n; /* cap: power of two */
} StrMap;

/* (left id, right id) -> (rank, merged id); key UINT64_MAX marks an empty slot.  One slot is
 * 16 bytes so that a probe touches one cache line. */
typedef struct {
    uint64_t key; /* left << 32 | right */
    uint32_t rank;
    int32_t new_id;
} PairSlot;

typedef struct {
    PairSlot *slots;
    size_t cap; /* power of two */
} PairMap;

enum { NORM_PREPEND, NORM_REPLACE_STR, NORM_REPLACE_RE, NORM_LOWERCASE, NORM_STRIP, NORM_NFC };

enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };

enum { SCHEME_ALWAYS, SCHEME_FIRST, SCHEME_NEVER };

enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_BYTELEVEL, DEC_BPE };

typedef struct {
    int kind;
    char *a, *b; /* arena strings: prepend text / pattern / replacement */
    size_t alen, blen;
    pcre2_code *re;
    int left, right; /* Strip */
} NormStep;

typedef struct {
    int kind;
    pcre2_code *re;     /* PRE_SPLIT; PRE_METASPACE: literal replacement char */
    int behavior, invert;
    int add_prefix_space, use_regex; /* PRE_BYTELEVEL */
    char *repl;                      /* PRE_METASPACE replacement (UTF-8) */
    size_t repl_len;
    int scheme, split;
} PreStep;

typedef struct {
    int kind;
    char *a, *b;
    size_t alen, blen;
    uint32_t content; /* DEC_STRIP: code point */
    int start, stop;
    char *repl; /* DEC_METASPACE */
    size_t repl_len;
    int prepend; /* DEC_METASPACE: prepend_scheme != never */
} DecStep;

typedef struct {
    int32_t id;
    char *content; /* raw content */
    size_t content_len;
    char *match; /* what is matched: content, or its normalized form */
    size_t match_len;
    int special, lstrip, rstrip, single_word, normalized;
} AddedToken;

/* Added tokens of one kind (normalized or not), bucketed by first byte, longest first. */
typedef struct {
    int32_t *order; /* indexes into Tokenizer.added, grouped by first byte, longest first */
    size_t start[257];
} AddedSet;

struct Tokenizer {
    char *path;
    Arena arena;
    /* model */
    StrMap vocab;
    PairMap merges;
    char **id_tok;  /* [n_ids] token string of each id (decode form), NULL where no token */
    char **id_raw;  /* [n_ids] token string as in the file (added tokens: their content) */
    uint32_t *id_tok_len;
    uint8_t *id_skip; /* [n_ids] 1: dropped by decode(skip_special) */
    size_t n_ids;
    int32_t unk_id;       /* -1: no unk token */
    int unk_missing;      /* unk_token named but absent from the vocab */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL if none) */
    size_t prefix_len, suffix_len;
    int32_t byte_ids[256]; /* id of "<0xNN>", -1 if absent */
    /* added tokens */
    AddedToken *added;
    size_t n_added;
    AddedSet added_raw, added_norm;
    pcre2_code *re_word; /* "\w" for single_word checks */
    /* pipeline */
    NormStep *norm;
    size_t n_norm;
    PreStep *pre;
    size_t n_pre;
    DecStep *dec;
    size_t n_dec;
    int has_decoder;
    int32_t *post_prefix, *post_suffix;
    size_t n_post_prefix, n_post_suffix;
    int32_t bos_id, eos_id;
    pcre2_code *re_gpt2; /* ByteLevel use_regex split */
    /* byte-level maps */
    char byte_char[256][2]; /* UTF-8 (always 2 bytes... or 1) of the GPT-2 char of each byte */
    uint8_t byte_char_len[256];
    int16_t char_byte[324]; /* code point (< 324) -> byte, -1 if not a mapped char */
};

typedef struct {
    Tokenizer *t;
    const char *path;
    char *err;
    size_t errlen;
} Loader;

/* A piece of the text being encoded: bytes [off, off+len) of the list's text buffer, or (id
 * >= 0) an added token already matched.  origin: the piece starts at original offset 0. */
typedef struct {
    size_t off, len;
    int32_t id;
    int origin;
} Piece;

typedef struct {
    Piece *v;
    size_t n, cap;
    Buf text;
} PieceList;

typedef struct {
    int32_t id, prev, next;
    uint32_t len; /* bytes covered; 0 marks a symbol merged away */
} Sym;

typedef struct {
    uint64_t key; /* rank << 32 | position of the left symbol */
    int32_t new_id;
} HeapItem;

typedef struct {
    size_t start, end;
    int is_match;
} Seg;

/* Scratch space of one encode call. */
typedef struct {
    PieceList a, b, tmp;
    Buf norm, norm_tmp, word;
    Sym *syms;
    size_t syms_cap;
    HeapItem *heap;
    size_t heap_n, heap_cap;
    Seg *segs;
    size_t segs_n, segs_cap;
    int32_t *ids;
    size_t n_ids, ids_cap;
    pcre2_match_data *md;
    char why[TOK_WHY]; /* what failed, when it was not memory (a regex, the growth cap) */
} EncodeCtx;

/* A list of strings: data holds them back to back, off/len index it. */
typedef struct {
    Buf data;
    size_t *off, *len;
    size_t n, cap;
} TokList;

/* util.c */
void tokenizer_set_error(char *err, size_t errlen, const char *fmt, ...);
int tokenizer_regex_why(char *why, int rc, const char *where);
size_t tokenizer_growth_cap(size_t n);
int tokenizer_too_long(char *why, const char *chain, size_t step, const char *kind, size_t cap, size_t n);
int tok_buf_reserve(Buf *b, size_t extra);
int tok_buf_put(Buf *b, const void *s, size_t n);
void tok_buf_clear(Buf *b);
void tok_buf_free(Buf *b);
char *tok_arena_strdup(Arena *a, const char *s, size_t n);
void tok_arena_free(Arena *a);
int tok_utf8_step(const unsigned char *s, size_t n, size_t i, uint32_t *cp);
size_t tok_utf8_check(const char *s, size_t n);
size_t tok_utf8_len(unsigned char c);
size_t tok_utf8_encode(uint32_t cp, char out[4]);
int tok_utf8_put_lossy(Buf *out, const char *s, size_t n);
int tok_unicode_is_space(uint32_t c);
uint32_t tok_unicode_lower(uint32_t c, uint32_t *extra);
int tok_strmap_init(StrMap *m, size_t expected);
void tok_strmap_free(StrMap *m);
int tok_strmap_put(StrMap *m, const char *k, size_t len, int32_t v);
int32_t tok_strmap_get(const StrMap *m, const char *k, size_t len);
int tok_pairmap_init(PairMap *m, size_t expected);
void tok_pairmap_free(PairMap *m);
void tok_pairmap_put(PairMap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
int tok_pairmap_get(const PairMap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id);

/* tokenizer.c */
/* A section's "type" (normalizer, pre-tokenizer, post-processor, decoder): *type; NULL for an
 * absent (missing or null) section, and for a Sequence once each element of its array `items`
 * was loaded with load.  0, or -1 with the loader's error. */
typedef int (*TokLoadFn)(Loader *L, const cJSON *o, const char *field);
int tokenizer_load_type(Loader *L, const cJSON *o, const char *field, const char *items, TokLoadFn load, const char **type);
int tokenizer_load_fail(Loader *L, const char *field, const char *fmt, ...);
int tokenizer_check_utf8(Loader *L, const char *field, const char *what, const char *s, size_t n);
const char *tok_json_str(const cJSON *o, const char *key);
int tok_json_bool(const cJSON *o, const char *key, int dflt);
int tok_json_is_id(const cJSON *v);
char *tokenizer_dup(Loader *L, const char *s, size_t n);
pcre2_code *tokenizer_compile_regex(Loader *L, const char *field, const char *pat,
                                    size_t len, uint32_t flags);
pcre2_code *tokenizer_load_pattern(Loader *L, const cJSON *pat, const char *field,
                                   const char **lit, int *is_regex);
void tok_plist_reset(PieceList *l);
int tok_plist_grow(PieceList *l);
int tok_plist_add_text(PieceList *l, const char *s, size_t n, int origin);
int tok_plist_add_token(PieceList *l, int32_t id);
int tok_ctx_push_id(EncodeCtx *c, int32_t id);

/* added_tokens.c */
int tokenizer_build_added_set(Tokenizer *t, AddedSet *set, int norm);
int tokenizer_load_added(Loader *L, const cJSON *arr);
int tokenizer_split_added(const Tokenizer *t, EncodeCtx *c, const AddedSet *set,
                          const char *s, size_t n, int origin, PieceList *out);

/* normalizers.c */
int tokenizer_load_normalizer(Loader *L, const cJSON *n, const char *field);
int tokenizer_normalize(const Tokenizer *t, const char *s, size_t n, Buf *out, Buf *tmp,
                        pcre2_match_data *md, char *why);

/* pre_tokenizers.c */
int tokenizer_load_pre(Loader *L, const cJSON *p, const char *field);
void tokenizer_init_bytemap(Tokenizer *t);
int tokenizer_pre_step(const Tokenizer *t, EncodeCtx *c, const PreStep *st, const PieceList *in,
                       PieceList *out);

/* models.c */
int tokenizer_load_model(Loader *L, const cJSON *model);
int tokenizer_bpe_word(const Tokenizer *t, EncodeCtx *c, const char *w, size_t n);

/* post_processor.c */
int tokenizer_load_post(Loader *L, const cJSON *p, const char *field);

/* decoders.c */
int tokenizer_load_decoder(Loader *L, const cJSON *d, const char *field);

#endif
