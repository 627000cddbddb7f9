/*
 * version.h — what this binary is and where its data lives, fixed at build time: the source
 * revision (`git describe --always --dirty` when the Makefile ran, "unknown" outside git), the
 * compiler and flags, and the installed data folder (make install's $(PREFIX)/share/lcbench).
 * Provenance (the lcbench_rev of every results row) comes from here, never from the working tree
 * at run time, so a binary copied elsewhere still says what it was built from.
 */
#ifndef LCB_VERSION_H
#define LCB_VERSION_H

#include <stddef.h>

const char *lcb_version(void);      /* "3542aca-dirty" */
const char *lcb_build_flags(void);  /* "cc -std=c11 ... -O3 -march=native ..." */
const char *lcb_datadir(void);      /* compiled-in LCB_DATADIR, e.g. "/usr/local/share/lcbench" */
/* The path of a data file or folder that lcbench ships (models/lcb-0.8m, ...), first found of:
 * $LCBENCH_DATADIR/REL, EXE/../share/lcbench/REL (a relocated or DESTDIR install),
 * LCB_DATADIR/REL, CHECKOUT/REL.  Writes the last candidate when none exists (for the message). */
int lcb_data_path(const char *rel, char *out, size_t n);
/* Where named corpora live: $LCBENCH_CORPORA, else the checkout's .cache/corpora when it exists,
 * else DATADIR/corpora of an install (make install copies the fetched ones), else the former. */
const char *lcb_corpus_dir(void);
/* `lcbench version` / `lcbench --version` */
int cmd_version(int argc, char **argv);

#endif
