/*
 * What procpar-sync's C modules share: the monotonic clock, shared futexes, the length of a wait slice, and
 * the C API that _psem exports to the other modules (a capsule, looked up once at import).
 */
#ifndef PROCPAR_SYNC_COMMON_H
#define PROCPAR_SYNC_COMMON_H

#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* How long a waiter sleeps before it takes the GIL back to run signal handlers and looks at the health of
   whoever it waits for: ten cheap wake-ups a second, and Ctrl-C is never missed for longer than this. */
#define PP_SLICE_NS 100000000LL

static inline int64_t
pp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep while *addr == expected, at most `ns` nanoseconds (a shared futex). 0: woken or changed, ETIMEDOUT,
   or EINTR. */
static inline int
pp_futex_sleep(uint32_t *addr, uint32_t expected, int64_t ns)
{
    if (ns <= 0)
        return ETIMEDOUT;
#ifdef __linux__
    struct timespec rel = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    long r = syscall(SYS_futex, addr, FUTEX_WAIT, expected, &rel, NULL, 0);
    if (r == -1) {
        if (errno == ETIMEDOUT)
            return ETIMEDOUT;
        if (errno == EINTR)
            return EINTR;
    }
    return 0;
#else
    /* No futex: nap briefly and let the caller look again. */
    int64_t nap = ns < 200000 ? ns : 200000;
    struct timespec ts = {0, (long)nap};
    if (__atomic_load_n(addr, __ATOMIC_SEQ_CST) != expected)
        return 0;
    if (nanosleep(&ts, NULL) == -1 && errno == EINTR)
        return EINTR;
    return nap < ns ? 0 : ETIMEDOUT;
#endif
}

static inline void
pp_futex_wake(uint32_t *addr, int n)
{
#ifdef __linux__
    syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
#else
    (void)addr;
    (void)n;
#endif
}

/* The part of _psem other C modules call (procpar_sync._psem._C_API). Each takes a _psem.Semaphore and is
   called with the GIL held. */
typedef struct {
    int (*is_semaphore)(PyObject *obj);
    /* Take it without waiting (a dead holder's mutex is taken over): 1 taken, 0 not, -1 exception. */
    int (*try_acquire)(PyObject *sem);
    int (*release)(PyObject *sem);
    /* A mutex: 0 if held by a process that died, else 1 (free or alive). */
    int (*holder_alive)(PyObject *sem);
    /* A mutex: whether it was taken over from a dead holder since the flag was last cleared. */
    int (*abandoned)(PyObject *sem);
    void (*clear_abandoned)(PyObject *sem);
} pp_psem_api;

#define PP_PSEM_CAPSULE "procpar_sync._psem._C_API"

#endif
