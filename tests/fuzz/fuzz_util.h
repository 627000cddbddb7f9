/*
 * fuzz_util.h — what the libFuzzer harnesses of tests/fuzz/ share: the fuzz input as a file.
 *
 * The readers under test (st_open, tokenizer_load, dataset_load ...) take paths, as lcbench
 * does with files from strangers.  Rather than refactor them, each input is written to an
 * anonymous memory file (memfd) and handed over as /proc/self/fd/N: no disk traffic, no temp
 * files left behind by a crashing run, and the path behaves as a regular file to stat/mmap.
 *
 * Each harness defines `int fuzz_<target>_one(const uint8_t *data, size_t size)`; unless
 * LCB_FUZZ_NO_MAIN is defined it also defines LLVMFuzzerTestOneInput calling it.  The
 * regression test tests/test_reliability_fuzz.c includes the harnesses with LCB_FUZZ_NO_MAIN
 * and replays every seed and every saved crash through the same entry points under `make test`.
 */
#ifndef LCB_FUZZ_UTIL_H
#define LCB_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A memfd holding data[0..size); path receives "/proc/self/fd/N".  Returns the fd or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t pathlen) {
    int fd = memfd_create("lcbfuzz", MFD_CLOEXEC);
    if (fd < 0) { perror("memfd_create"); abort(); }
    size_t off = 0;
    while (off < size) {
        ssize_t k = write(fd, data + off, size - off);
        if (k <= 0) { perror("write memfd"); abort(); }
        off += (size_t)k;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

/* Invariant that the code after the reader relies on: a violation is a bug, reported as a
 * crash so that libFuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

#endif
