/*
 * version.c — the build's identity (see version.h).  The values come from $(BUILD)/lcb_build.h,
 * written by the Makefile and replaced only when they change, so that a new commit recompiles
 * this file alone.
 */
#include "harness/run/version.h"
#include "datasets/dataset.h"
#include "lcb_build.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *lcb_version(void) { return LCB_BUILD_REV; }
const char *lcb_build_flags(void) { return LCB_BUILD_FLAGS; }
const char *lcb_datadir(void) { return LCB_DATADIR; }

static int exists(const char *p) { struct stat sb; return stat(p, &sb) == 0; }

int lcb_data_path(const char *rel, char *out, size_t n) {
    char cand[4][PATH_MAX];
    int k = 0;
    const char *env = getenv("LCBENCH_DATADIR");
    if (env && *env) snprintf(cand[k++], PATH_MAX, "%s/%s", env, rel);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) { *slash = 0; snprintf(cand[k++], PATH_MAX, "%.3000s/../share/lcbench/%s", exe, rel); }
    }
    snprintf(cand[k++], PATH_MAX, "%s/%s", LCB_DATADIR, rel);
    snprintf(cand[k++], PATH_MAX, "%s/%s", lcb_repo_root(), rel);
    for (int i = 0; i < k; i++)
        if (exists(cand[i])) { snprintf(out, n, "%s", cand[i]); return 0; }
    snprintf(out, n, "%s", cand[k - 1]);
    return -1;
}

const char *lcb_corpus_dir(void) {
    static char dir[PATH_MAX];
    const char *env = getenv("LCBENCH_CORPORA");
    if (!(env && *env) && !exists(dataset_corpus_dir()) && lcb_data_path("corpora", dir, sizeof dir) == 0) return dir;
    return dataset_corpus_dir();
}

int cmd_version(int argc, char **argv) {
    if (argc > 1) { fprintf(stderr, "lcbench version: unknown argument \"%s\"\n", argv[1]); return 2; }
    char model[PATH_MAX];
    lcb_data_path("models/lcb-0.8m", model, sizeof model);
    printf("lcbench %s\n", LCB_BUILD_REV);
    printf("build:   %s\n", LCB_BUILD_FLAGS);
    printf("cuda:    %s\n", LCB_BUILD_CUDA);
    printf("datadir: %s\n", LCB_DATADIR);
    printf("model:   %s (default)\n", model);
    return 0;
}
