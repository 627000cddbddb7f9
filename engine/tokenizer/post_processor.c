/*
 * post_processor.c — tokenizer.json's `post_processor`: TemplateProcessing, RobertaProcessing,
 * BertProcessing, ByteLevel and Sequence, reduced to the ids added before and after a single
 * sequence (what `add_special_tokens=True` adds), and the BOS/EOS they imply.
 */
#include "engine/tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends ids to *v (n, cap) with growth. */
static int tokenizer_push_ids(int32_t **v, size_t *n, const int32_t *ids, size_t k) {
    int32_t *p = realloc(*v, (*n + k + 1) * sizeof *p);
    if (!p) return -1;
    memcpy(p + *n, ids, k * sizeof *p);
    *v = p;
    *n += k;
    return 0;
}

int tokenizer_load_post(Loader *L, const cJSON *p, const char *field) {
    Tokenizer *t = L->t;
    const char *type;
    if (tokenizer_load_type(L, p, field, "processors", tokenizer_load_post, &type)) return -1;
    if (!type) return 0;   /* a Sequence, loaded */
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    if (!strcmp(type, "ByteLevel")) {
        return 0; /* only trims offsets */
    } else if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single)) return tokenizer_load_fail(L, field, "TemplateProcessing without \"single\" array");
        int seen_a = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
            if (sq) {
                if (seen_a) {
                    free(pre);
                    free(suf);
                    return tokenizer_load_fail(L, field, "template \"single\" holds the sequence twice");
                }
                seen_a = 1;
                continue;
            }
            const char *name = sp ? tok_json_str(sp, "id") : NULL;
            const cJSON *ent = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            const cJSON *ids = ent ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
            if (!cJSON_IsArray(ids)) {
                free(pre);
                free(suf);
                return tokenizer_load_fail(L, field, "special token \"%s\" of the template has no ids in \"special_tokens\"",
                                           name ? name : "?");
            }
            const cJSON *idv;
            cJSON_ArrayForEach(idv, ids) {
                int32_t id = tok_json_is_id(idv) ? (int32_t)idv->valuedouble : -1;
                if (id < 0 ||
                    tokenizer_push_ids(seen_a ? &suf : &pre, seen_a ? &nsuf : &npre, &id, 1)) {
                    free(pre);
                    free(suf);
                    return tokenizer_load_fail(L, field, "bad id of special token \"%s\" (or out of memory)", name);
                }
            }
        }
        if (!seen_a) {
            free(pre);
            free(suf);
            return tokenizer_load_fail(L, field, "template \"single\" has no Sequence A");
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!tok_json_is_id(ci) || !tok_json_is_id(si))
            return tokenizer_load_fail(L, field, "%s needs \"cls\" and \"sep\" as [token, id]", type);
        int32_t c = (int32_t)ci->valuedouble, s = (int32_t)si->valuedouble;
        if (tokenizer_push_ids(&pre, &npre, &c, 1) || tokenizer_push_ids(&suf, &nsuf, &s, 1)) {
            free(pre);
            free(suf);
            return tokenizer_load_fail(L, field, "out of memory");
        }
    } else {
        return tokenizer_load_fail(L, field, "unsupported post_processor type \"%s\"", type);
    }
    /* Compose with what earlier processors added: new prefix = pre + old, suffix = old + suf. */
    int32_t *np = NULL;
    size_t nnp = 0;
    int bad = tokenizer_push_ids(&np, &nnp, pre ? pre : (int32_t[]){0}, npre) ||
              tokenizer_push_ids(&np, &nnp, t->post_prefix ? t->post_prefix : (int32_t[]){0}, t->n_post_prefix) ||
              tokenizer_push_ids(&t->post_suffix, &t->n_post_suffix, suf ? suf : (int32_t[]){0}, nsuf);
    free(pre);
    free(suf);
    if (bad) {
        free(np);
        return tokenizer_load_fail(L, field, "out of memory");
    }
    free(t->post_prefix);
    t->post_prefix = np;
    t->n_post_prefix = nnp;
    return 0;
}
