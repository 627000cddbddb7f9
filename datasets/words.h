/*
 * words.h — the word count behind word perplexity (exp(total NLL / words), lm-eval's
 * word_perplexity): the runs of characters that are not white space, counted over UTF-8 text fed
 * in pieces of any size (a character may be split between two pieces; its bytes are carried).
 *
 * White space is what lm-eval splits words on, Python's `re.split(r"\s+", doc)`, i.e. the
 * characters for which Python's str.isspace() is true: U+0009-U+000D, U+001C-U+001F, U+0020,
 * U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 (Unicode's
 * White_Space property plus the four ASCII separators U+001C-U+001F).  Everything else is part of
 * a word, bytes that are not valid UTF-8 included (each such byte is one non-space character).
 * re.split also yields an empty string before leading and after trailing white space; those are
 * not words here.
 */
#ifndef LCB_WORDS_H
#define LCB_WORDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t words;           /* runs of non-white-space characters started so far */
    int in_word;             /* the last complete character was not white space */
    uint32_t cp;             /* the character being assembled */
    int need;                /* continuation bytes it still needs (0: none pending) */
    int have;                /* continuation bytes it has */
} Words;

void words_init(Words *w);
/* Count the words of the next n bytes of the text. */
void words_feed(Words *w, const char *s, size_t n);
/* The text ended: a character still incomplete counts as one non-space character. */
void words_end(Words *w);
/* 1 when code point c is white space as above. */
int words_is_space(uint32_t c);

#endif
