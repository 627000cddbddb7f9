/*
 * dataset.h — the token stream a run scores, built from documents.
 *
 * A dataset spec is a comma-separated list of sources, read in order:
 *   moby-dick | sotu | spam-assassin   a corpus fetched by `make corpora` into the cache folder
 *                                      (.cache/corpora/NAME/, one .txt file per document)
 *   DIR                                every *.txt file of DIR, sorted by name, one document each
 *   FILE.jsonl                         one document per line, the string field --field (default text)
 *   FILE.bin                           LongLoRA's pre-tokenized stream, little-endian uint16 ids
 *   FILE.u32                           the same with uint32 ids
 *   FILE.ids                           token ids as text, separated by white space
 *   FILE (anything else)               one text document
 * --token-format forces how a FILE is read (text, jsonl, u16, u32, ids).
 *
 * Text documents are tokenized without special tokens; the BOS policy then decides where the
 * BOS id goes: `none`, `first` (once, at the start of the stream, as HF's add_special_tokens
 * does for one text), `each-doc` (before every document).  The default `auto` is `first` for
 * text and `none` for pre-tokenized files, which carry their own.  Documents are concatenated
 * until max_tokens is reached (the last one is cut); when every document has been used and the
 * stream is still short, the list starts over if `repeat` is set (recorded as passes > 1),
 * else the stream is what there is.  The stream's hash (SHA-256 of the ids as uint32 LE) and
 * the source hash (SHA-256 over each contributing document's bytes) identify exactly what a
 * run scored.
 */
#ifndef LCB_DATASET_H
#define LCB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

typedef enum { LCB_BOS_AUTO = -1, LCB_BOS_NONE = 0, LCB_BOS_FIRST, LCB_BOS_EACH_DOC } LcbBos;
typedef enum { LCB_FMT_AUTO = 0, LCB_FMT_TEXT, LCB_FMT_JSONL, LCB_FMT_U16, LCB_FMT_U32, LCB_FMT_IDS } LcbTokenFormat;

typedef struct {
    const char *spec;          /* comma-separated sources (see above) */
    const char *field;         /* JSONL field; NULL = "text" */
    LcbTokenFormat format;     /* how FILE sources are read; AUTO = by extension */
    LcbBos bos;                /* AUTO resolves as described above */
    uint64_t max_tokens;       /* 0 = every document once */
    int repeat;                /* start the document list over when short of max_tokens */
    const char *corpus_dir;    /* where named corpora live; NULL = dataset_corpus_dir() */
} DatasetOptions;

typedef struct {
    int32_t *ids;              /* (n) the stream */
    size_t n;
    size_t n_docs;             /* documents contributing (repeats counted) */
    uint64_t *doc_pos;         /* (n_docs) stream position where each document starts (its BOS if any) */
    char **doc_name;           /* (n_docs) "corpus/file.txt", "file.jsonl:LINE", ... */
    int passes;                /* times the document list was started (>1 = repeated) */
    uint64_t repeat_pos;       /* stream position where the second pass starts (0 = none) */
    int truncated;             /* the last document was cut at max_tokens */
    LcbBos bos;                /* the resolved policy */
    int pretokenized;          /* every source was a token file */
    int32_t max_id;
    char hash[65];             /* SHA-256 of the ids as uint32 little-endian */
    char source_hash[65];      /* SHA-256 over (8-byte length, bytes) of each contributing document */
} Dataset;

/* Build the stream.  tok: needed for text sources (else may be NULL); bos_id: the id the BOS
 * policy inserts (-1 = none available: a policy that needs it is an error). */
int dataset_load(Dataset *d, const DatasetOptions *o, const Tokenizer *tok, int32_t bos_id, char *err, size_t errlen);
void dataset_free(Dataset *d);

/* The cache folder of named corpora: $LCBENCH_CORPORA, else REPO/.cache/corpora where REPO is
 * the repository holding the running executable (build/lcbench -> ..), else .cache/corpora. */
const char *dataset_corpus_dir(void);
/* The repository root of the running executable (no trailing slash), or "." if unknown. */
const char *lcb_repo_root(void);

const char *dataset_bos_name(LcbBos b);
int dataset_bos_parse(const char *s, LcbBos *out);          /* 0 or -1 */
const char *dataset_format_name(LcbTokenFormat f);
int dataset_format_parse(const char *s, LcbTokenFormat *out); /* 0 or -1 */

/* Read a whole token file of the given format (U16, U32, IDS).  *ids malloc'ed. */
int dataset_read_tokens(const char *path, LcbTokenFormat f, int32_t **ids, size_t *n, char *err, size_t errlen);
/* Read whitespace-separated decimal token ids from a file ("-" = stdin): `lcbench score --ids`,
 * `tokenize --decode` and the IDS token format.  *ids malloc'ed. */
int dataset_read_ids(const char *path, int32_t **ids, size_t *n, char *err, size_t errlen);
/* Write ids as a U16 or U32 token file (for tests and for caching tokenized text). */
int dataset_write_tokens(const char *path, LcbTokenFormat f, const int32_t *ids, size_t n, char *err, size_t errlen);

#endif
