/*
 * cmd_tokenize.c — `lcbench tokenize`, SPEC §5: text on stdin, token ids on stdout,
 * space-separated on one line.  --bos prepends the tokenizer's BOS (and no other special
 * token); --special applies the tokenizer's full post-processor instead.  --decode turns ids
 * on stdin back into text.
 */
#include "engine/common.h"
#include "engine/tokenizer.h"
#include "datasets/dataset.h"
#include "harness/cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t k;
    while ((k = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
    }
    if (ferror(stdin)) { free(buf); return NULL; }
    *len = n;
    return buf;
}

int cmd_tokenize(int argc, char **argv) {
    Cli c;
    cli_init(&c, "tokenize", argc, argv);
    const char *path = NULL;
    int bos = 0, special = 0, decode = 0;
    for (const char *f; (f = cli_next(&c));) {
        if (!strcmp(f, "--tokenizer")) { if (!(path = cli_value(&c))) return EXIT_USAGE; }
        else if (!strcmp(f, "--bos")) bos = 1;
        else if (!strcmp(f, "--special")) special = 1;
        else if (!strcmp(f, "--decode")) decode = 1;
        else return cli_usage_error(&c, "unknown argument \"%s\"", f);
    }
    if (!path) return cli_usage_error(&c, "--tokenizer is required");
    char err[LCB_ERRLEN];
    Tokenizer *tok = tokenizer_load(path, err, sizeof err);
    if (!tok) { cli_error("tokenize", "%s", err); return 1; }
    int rc = 1;
    if (decode) {
        int32_t *ids; size_t n;
        if (dataset_read_ids("-", &ids, &n, err, sizeof err)) { cli_error("tokenize", "%s", err); goto out; }
        char *text; size_t len;
        if (tokenizer_decode(tok, ids, n, 0, &text, &len, err, sizeof err)) { cli_error("tokenize", "%s", err); free(ids); goto out; }
        fwrite(text, 1, len, stdout);
        free(text); free(ids);
        rc = 0;
        goto out;
    }
    size_t len;
    char *text = read_stdin(&len);
    if (!text) { cli_error("tokenize", "reading standard input failed"); goto out; }
    int32_t *ids; size_t n;
    if (tokenizer_encode(tok, text, len, special, &ids, &n, err, sizeof err)) { cli_error("tokenize", "%s", err); free(text); goto out; }
    free(text);
    int32_t b = tokenizer_bos_id(tok);
    if (bos && b < 0) { cli_error("tokenize", "--bos: %s has no BOS token", path); free(ids); goto out; }
    int first = 1;
    if (bos && !(special && n && ids[0] == b)) { printf("%d", b); first = 0; }
    for (size_t i = 0; i < n; i++) { printf(first ? "%d" : " %d", ids[i]); first = 0; }
    putchar('\n');
    free(ids);
    rc = fflush(stdout) == 0 ? 0 : 1;
    if (rc) cli_error("tokenize", "writing standard output failed");
out:
    tokenizer_free(tok);
    return rc;
}
