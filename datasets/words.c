/*
 * words.c — word counting over UTF-8 text for word perplexity (words.h): a small UTF-8 decoder
 * that carries a split character from one piece to the next, and Python's white-space set.
 */
#include "datasets/words.h"

int words_is_space(uint32_t c) {
    if (c <= 0x20) return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x20;
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

void words_init(Words *w) { *w = (Words){0}; }

static void character(Words *w, int space) {
    if (!space && !w->in_word) w->words++;
    w->in_word = !space;
}

void words_feed(Words *w, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (w->need) {
            if ((b & 0xc0) == 0x80) {
                w->cp = (w->cp << 6) | (b & 0x3f);
                if (++w->have == w->need) {
                    /* overlong forms and surrogates are not characters: one non-space each */
                    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
                    int ok = w->cp >= min[w->need] && !(w->cp >= 0xd800 && w->cp <= 0xdfff) && w->cp <= 0x10ffff;
                    character(w, ok && words_is_space(w->cp));
                    w->need = 0;
                }
                continue;
            }
            character(w, 0);   /* a sequence cut short: one non-space character, then this byte afresh */
            w->need = 0;
        }
        if (b < 0x80) character(w, words_is_space(b));
        else if (b >= 0xc2 && b <= 0xdf) { w->cp = b & 0x1f; w->need = 1; w->have = 0; }
        else if (b >= 0xe0 && b <= 0xef) { w->cp = b & 0x0f; w->need = 2; w->have = 0; }
        else if (b >= 0xf0 && b <= 0xf4) { w->cp = b & 0x07; w->need = 3; w->have = 0; }
        else character(w, 0);   /* a stray continuation byte or an invalid lead byte */
    }
}

void words_end(Words *w) {
    if (w->need) character(w, 0);
    w->need = 0;
}
