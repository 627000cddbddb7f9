/*
 * common.c — the error helpers, the counting allocator, the file reader and the process
 * spawner (gnuplot, git, sweep children) shared by every layer.
 * The allocator exists so that lcbench can report weights / KV / workspace bytes apart and
 * enforce --mem-limit; it is a thin wrapper over malloc with atomic counters.
 */
#include "engine/common.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int lcb_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void lcb_prefix(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    char old[LCB_ERRLEN], pre[LCB_ERRLEN];
    snprintf(old, sizeof old, "%s", err);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", pre, old);
}

static size_t mem_now[LCB_MEM_NCAT], mem_peak[LCB_MEM_NCAT], mem_limit;
static int limit_hit;

static int mem_reserve(LcbMemCat cat, size_t bytes) {
    size_t total;
    #pragma omp critical(lcb_mem)
    {
        total = lcb_mem_total();
        if (mem_limit && (bytes > mem_limit || total > mem_limit - bytes)) {
            limit_hit = 1;
            total = SIZE_MAX;
        } else {
            mem_now[cat] += bytes;
            if (mem_now[cat] > mem_peak[cat]) mem_peak[cat] = mem_now[cat];
        }
    }
    return total == SIZE_MAX ? -1 : 0;
}

static void mem_release(LcbMemCat cat, size_t bytes) {
    #pragma omp critical(lcb_mem)
    mem_now[cat] = mem_now[cat] >= bytes ? mem_now[cat] - bytes : 0;
}

void *lcb_alloc(LcbMemCat cat, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (mem_reserve(cat, bytes)) return NULL;
    limit_hit = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes)) p = NULL;
    if (!p) mem_release(cat, bytes);
    return p;
}

void *lcb_calloc(LcbMemCat cat, size_t n, size_t size) {
    size_t bytes;
    if (lcb_mul_size(n, size, &bytes)) return NULL;
    void *p = lcb_alloc(cat, bytes);
    if (p) memset(p, 0, bytes ? bytes : 1);
    return p;
}

void lcb_free(LcbMemCat cat, void *p, size_t bytes) {
    if (!p) return;
    free(p);
    mem_release(cat, bytes ? bytes : 1);
}

size_t lcb_mem_now(LcbMemCat cat) { return mem_now[cat]; }
size_t lcb_mem_peak(LcbMemCat cat) { return mem_peak[cat]; }
size_t lcb_mem_total(void) {
    size_t t = 0;
    for (int i = 0; i < LCB_MEM_NCAT; i++) t += mem_now[i];
    return t;
}
void lcb_mem_set_limit(size_t bytes) { mem_limit = bytes; }
int lcb_mem_limit_hit(void) { return limit_hit; }

/* What a non-regular file is, for messages. */
static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "a special file";
}

int lcb_open_regular(const char *path, size_t *size, char *err, size_t errlen) {
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat lb;
        if (e == ELOOP) return lcb_fail(err, errlen, "%s: cannot open: a symbolic link loop (too many levels of links)", path);
        if (e == ENOENT && lstat(path, &lb) == 0 && S_ISLNK(lb.st_mode))
            return lcb_fail(err, errlen, "%s: cannot open: a symbolic link to a file that does not exist", path);
        return lcb_fail(err, errlen, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lcb_fail(err, errlen, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lcb_fail(err, errlen, "%s: is %s, not a regular file", path, file_kind(sb.st_mode));
    }
    /* back to blocking reads (O_NONBLOCK means nothing for a regular file, but be plain) */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (size_t)sb.st_size;
    return fd;
}

int lcb_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen) {
    size_t n;
    int fd = lcb_open_regular(path, &n, err, errlen);
    if (fd < 0) return -1;
    /* the size is a hint: a file that shrinks or grows while read is read to its end */
    size_t cap = n + 1, got = 0;
    char *buf = malloc(cap);
    if (!buf) { close(fd); return lcb_fail(err, errlen, "%s: out of memory reading %zu bytes", path, n); }
    for (;;) {
        if (got + 1 == cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) { free(buf); close(fd); return lcb_fail(err, errlen, "%s: out of memory reading more than %zu bytes", path, got); }
            buf = nb;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + got, cap - 1 - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            free(buf); close(fd);
            return lcb_fail(err, errlen, "%s: read error: %s", path, strerror(e));
        }
        if (k == 0) break;
        got += (size_t)k;
    }
    close(fd);
    buf[got] = 0;
    *data = buf;
    if (len) *len = got;
    return 0;
}

double lcb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int lcb_spawn(char *const argv[], const char *cwd, const char *out_path, const char *err_path, char *capture, size_t capn,
               char *err, size_t errlen) {
    posix_spawn_file_actions_t fa;
    int pipefd[2] = {-1, -1}, piped = capture && capn && out_path && !out_path[0];
    if (capture && capn) capture[0] = 0;
    if (piped && pipe2(pipefd, O_CLOEXEC)) return lcb_fail(err, errlen, "%s: cannot create a pipe: %s", argv[0], strerror(errno));
    posix_spawn_file_actions_init(&fa);
    int rc = 0;
    if (cwd) rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    /* files are opened after the chdir, so relative paths are the child's; make them ours */
    char outp[8192] = "", errp[8192] = "", here[4096] = "";
    if ((out_path && out_path[0] && out_path[0] != '/') || (err_path && err_path[0] != '/'))
        if (!getcwd(here, sizeof here)) here[0] = 0;
    if (out_path && out_path[0]) snprintf(outp, sizeof outp, "%s%s%s", out_path[0] == '/' || !here[0] ? "" : here, out_path[0] == '/' || !here[0] ? "" : "/", out_path);
    if (err_path) snprintf(errp, sizeof errp, "%s%s%s", err_path[0] == '/' || !here[0] ? "" : here, err_path[0] == '/' || !here[0] ? "" : "/", err_path);
    if (!rc && piped) rc = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    else if (!rc && outp[0]) rc = posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (!rc && errp[0]) rc = posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    pid_t pid = -1;
    if (!rc) rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (piped) close(pipefd[1]);
    if (rc) {
        if (piped) close(pipefd[0]);
        return lcb_fail(err, errlen, "cannot start %s: %s", argv[0], strerror(rc));
    }
    if (piped) {
        size_t n = 0;
        char sink[4096];
        for (;;) {
            ssize_t k = n + 1 < capn ? read(pipefd[0], capture + n, capn - 1 - n) : read(pipefd[0], sink, sizeof sink);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            if (n + 1 < capn) n += (size_t)k;
        }
        capture[n] = 0;
        close(pipefd[0]);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return lcb_fail(err, errlen, "waiting for %s: %s", argv[0], strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void *lcb_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first) {
    if (n < *cap) return v;
    size_t c = *cap ? *cap * 2 : first;
    void *p = realloc(v, c * elem);
    if (p) *cap = c;
    return p;
}

int lcb_mkdir_p(const char *path) {
    char p[8192];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) { errno = ENAMETOOLONG; return -1; }
    for (char *s = p + 1; *s; s++)
        if (*s == '/') { *s = 0; if (mkdir(p, 0777) && errno != EEXIST) return -1; *s = '/'; }
    return mkdir(p, 0777) && errno != EEXIST ? -1 : 0;
}
