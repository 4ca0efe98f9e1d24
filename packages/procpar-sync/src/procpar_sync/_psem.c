/*
 * procpar-sync's compiled core: process-shared semaphores, locks that know their owner, and the wait list of
 * a condition variable, all on memory the caller provides (MAP_SHARED mappings of memfds).
 *
 * Three shared layouts (docs/reliability.md has the reasons):
 *
 *   counting semaphore   uint32 value; uint32 waiters;                       8 bytes
 *     + holder table     uint32 nholders; uint32 pad; {uint64 owner; uint32 units; uint32 pad}[nholders]
 *   mutex (Lock, RLock)  uint64 owner; uint32 waiters; uint32 died;           16 bytes
 *   wait list            uint64 next_ticket; uint32 capacity; uint32 pad; {uint64 owner; uint64 ticket;
 *                        uint32 state; uint32 pad}[capacity]
 *
 * An "owner" is a process identity: the pid in the low 32 bits, the low 32 bits of the process's start time
 * (clock ticks since boot, /proc/<pid>/stat) in the high ones, so that a pid reused by a new process is not
 * taken for the old one. A mutex's owner word is the lock itself: 0 is free, a compare-and-swap from 0 to our
 * identity takes it, so the lock and the record of its holder can never disagree. Waiters sleep with
 * FUTEX_WAIT on the word's low half (the pid changes whenever the holder does).
 *
 * Nobody is woken when a process dies, so every sleep lasts at most SLICE: after each slice the waiter takes
 * the GIL back to run Python's signal handlers (a Ctrl-C that arrived just before the sleep began is seen
 * within a slice, not never), then asks whether the holder is still alive. A dead holder's mutex is taken
 * over with one compare-and-swap (only one waiter can win it) and marked `died`; a dead holder's semaphore
 * units (those it took in a `with` block) are given back. What the caller is told depends on the object's
 * policy: wait forever as the stdlib does, recover silently (procpar's own locks, whose users repair what
 * the lock protected), or recover with an AbandonedLockWarning naming the dead process (user locks).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "_common.h"

#define SLICE_NS PP_SLICE_NS
#define now_ns pp_now_ns
#define futex_sleep pp_futex_sleep
#define futex_wake pp_futex_wake
#ifndef SPIN_LIMIT
#define SPIN_LIMIT 200
#endif

enum { POLICY_WAIT = 0, POLICY_RECOVER = 1, POLICY_WARN = 2 };

static PyObject *AbandonedLockWarning;

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* -- process identity and liveness ------------------------------------------------------------------------ */

/* Field 22 of /proc/<pid>/stat (start time in clock ticks) and whether the process is a zombie. Returns 1
   if read, 0 if the process does not exist, -1 if /proc could not tell. */
static int
read_proc_stat(pid_t pid, uint32_t *start, int *zombie)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? 0 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return n == 0 ? 0 : (errno == ESRCH ? 0 : -1);
    buf[n] = '\0';
    /* The command name is in parentheses and may hold anything: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    *zombie = (*p == 'Z' || *p == 'X' || *p == 'x');
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    *start = (uint32_t)strtoull(p, NULL, 10);
    return 1;
}

static uint64_t cached_tag;

static void
forget_tag(void)
{
    cached_tag = 0;
}

static uint64_t
my_tag(void)
{
    uint64_t tag = cached_tag;
    if (tag == 0) {
        pid_t pid = getpid();
        uint32_t start = 0;
        int zombie = 0;
        if (read_proc_stat(pid, &start, &zombie) != 1)
            start = 0;
        tag = (uint64_t)(uint32_t)pid | ((uint64_t)start << 32);
        cached_tag = tag;
    }
    return tag;
}

static inline pid_t
tag_pid(uint64_t tag)
{
    return (pid_t)(uint32_t)(tag & 0xffffffffu);
}

/* 1 if the process named by `tag` is alive (or we cannot tell), 0 if it is gone, a zombie, or its pid now
   belongs to another process. Needs no GIL. */
static int
tag_alive(uint64_t tag)
{
    pid_t pid = tag_pid(tag);
    if (pid <= 0)
        return 1;
    if (pid == tag_pid(my_tag()))
        return 1;
    uint32_t start = 0;
    int zombie = 0;
    int r = read_proc_stat(pid, &start, &zombie);
    if (r == 0)
        return 0;
    if (r < 0) /* no /proc here: the pid alone */
        return !(kill(pid, 0) == -1 && errno == ESRCH);
    if (zombie)
        return 0;
    uint32_t expected = (uint32_t)(tag >> 32);
    return expected == 0 || expected == start;
}

/* -- shared layouts --------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t value;
    uint32_t waiters;
} count_shared;

typedef struct {
    uint64_t owner;
    uint32_t units;
    uint32_t pad;
} holder;

typedef struct {
    uint32_t nholders;
    uint32_t pad;
    holder h[];
} holder_table;

typedef struct {
    uint64_t owner;
    uint32_t waiters;
    uint32_t died;
} mutex_shared;

static inline uint32_t *
owner_futex(mutex_shared *m)
{
    /* The low half of the owner word: the pid, which changes whenever the holder does. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t *)&m->owner;
#else
    return (uint32_t *)&m->owner + 1;
#endif
}

/* -- the semaphore / lock object -------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;       /* keeps the mapping alive and exported */
    int has_view;
    char *slot;
    int mutex;            /* Lock/RLock: the owner word is the lock */
    int policy;
    uint32_t maxvalue;    /* counting: UINT32_MAX means unbounded */
    int recursive;        /* RLock: the owning thread may re-acquire; only it may release */
    holder_table *holders; /* counting semaphores that track `with` holders, else NULL */
    /* Which thread of this process holds it and how often: local bookkeeping, reset in a forked child. */
    unsigned long owner;
    long count;
    uint64_t last_dead;   /* identity of the last dead holder this object recovered from */
    int64_t last_check;   /* when a non-blocking acquire last looked at a holder's health */
} PsemObject;

static inline count_shared *
C(PsemObject *self)
{
    return (count_shared *)self->slot;
}

static inline mutex_shared *
M(PsemObject *self)
{
    return (mutex_shared *)self->slot;
}

static Py_ssize_t
slot_size(int mutex, Py_ssize_t nholders)
{
    if (mutex)
        return (Py_ssize_t)sizeof(mutex_shared);
    if (nholders <= 0)
        return (Py_ssize_t)sizeof(count_shared);
    return (Py_ssize_t)(sizeof(count_shared) + sizeof(holder_table) + (size_t)nholders * sizeof(holder));
}

static int
Psem_init(PsemObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", "value", "maxvalue", "initialize", "recursive", "mutex",
                             "holders", "policy", NULL};
    PyObject *buffer;
    Py_ssize_t offset, nholders = 0;
    unsigned long long value = 0, maxvalue = UINT32_MAX;
    int initialize = 0, recursive = 0, mutex = 0, policy = POLICY_WAIT;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnKK|pp$pni", kwlist, &buffer, &offset, &value, &maxvalue,
                                     &initialize, &recursive, &mutex, &nholders, &policy))
        return -1;
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "semaphore already initialized");
        return -1;
    }
    if (maxvalue == 0 || maxvalue > UINT32_MAX || value > maxvalue) {
        PyErr_Format(PyExc_ValueError, "semaphore value %llu and maxvalue %llu must satisfy 0 <= value <= "
                     "maxvalue, 0 < maxvalue <= %u", value, maxvalue, (unsigned)UINT32_MAX);
        return -1;
    }
    if (mutex && (maxvalue != 1 || nholders)) {
        PyErr_SetString(PyExc_ValueError, "a mutex has maxvalue 1 and no holder table");
        return -1;
    }
    if (nholders < 0 || nholders > 4096 || policy < POLICY_WAIT || policy > POLICY_WARN) {
        PyErr_SetString(PyExc_ValueError, "holders must be in 0..4096 and policy one of WAIT, RECOVER, WARN");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    Py_ssize_t size = slot_size(mutex, nholders);
    if (offset < 0 || offset % 8 != 0 || offset + size > self->view.len) {
        PyErr_Format(PyExc_ValueError, "offset %zd is not an 8-aligned slot of %zd bytes inside the %zd-byte "
                     "buffer", offset, size, self->view.len);
        return -1;
    }
    self->slot = (char *)self->view.buf + offset;
    self->mutex = mutex;
    self->policy = policy;
    self->maxvalue = (uint32_t)maxvalue;
    self->recursive = recursive;
    self->holders = nholders ? (holder_table *)(self->slot + sizeof(count_shared)) : NULL;
    self->owner = 0;
    self->count = 0;
    self->last_dead = 0;
    self->last_check = 0;
    if (initialize) {
        if (mutex) {
            mutex_shared *m = M(self);
            m->waiters = 0;
            m->died = 0;
            /* value 0 for a mutex: held by nobody who could die (the creator gives it away) */
            __atomic_store_n(&m->owner, value ? 0 : (uint64_t)1, __ATOMIC_SEQ_CST);
        }
        else {
            if (self->holders != NULL) {
                memset(self->holders, 0, sizeof(holder_table) + (size_t)nholders * sizeof(holder));
                self->holders->nholders = (uint32_t)nholders;
            }
            C(self)->waiters = 0;
            __atomic_store_n(&C(self)->value, (uint32_t)value, __ATOMIC_SEQ_CST);
        }
    }
    else if (self->holders != NULL && self->holders->nholders != (uint32_t)nholders) {
        PyErr_SetString(PyExc_ValueError, "the holder table in shared memory has another size");
        return -1;
    }
    return 0;
}

static void
Psem_dealloc(PsemObject *self)
{
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
check_ready(PsemObject *self)
{
    if (!self->has_view) {
        PyErr_SetString(PyExc_ValueError, "semaphore is not initialized");
        return -1;
    }
    return 0;
}

static inline int
count_try(count_shared *s)
{
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_SEQ_CST);
    while (v > 0) {
        if (__atomic_compare_exchange_n(&s->value, &v, v - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    }
    return 0;
}

static inline int
mutex_try(mutex_shared *m, uint64_t me)
{
    uint64_t expected = 0;
    return __atomic_compare_exchange_n(&m->owner, &expected, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static inline int
try_take(PsemObject *self, uint64_t me)
{
    return self->mutex ? mutex_try(M(self), me) : count_try(C(self));
}

/* Give `n` units back to a counting semaphore (capped at maxvalue) and wake that many sleepers. */
static void
count_give(count_shared *s, uint32_t n, uint32_t maxvalue)
{
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_SEQ_CST);
    for (;;) {
        uint32_t nv = (uint64_t)v + n > maxvalue ? maxvalue : v + n;
        if (__atomic_compare_exchange_n(&s->value, &v, nv, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;
    }
    if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) > 0)
        futex_wake(&s->value, n > INT32_MAX ? INT32_MAX : (int)n);
}

/* Sleep one slice (or until the deadline) waiting to take it. Runs without the GIL. Returns 1 if taken,
   0 if the slice ended (timeout, signal, or time to look at the holder's health); *timed_out and *interrupted
   say which. */
static int
take_slice(PsemObject *self, uint64_t me, int64_t deadline, int *timed_out, int *interrupted)
{
    /* A holder on another CPU usually releases within a few microseconds: watch for that briefly before
       paying for a sleep and a wake-up in the kernel. */
    for (int spin = 0; spin < SPIN_LIMIT; spin++) {
        if (try_take(self, me))
            return 1;
        cpu_relax();
    }
    int64_t slice_end = now_ns() + SLICE_NS;
    for (;;) {
        int64_t now = now_ns();
        int64_t until = deadline >= 0 && deadline < slice_end ? deadline : slice_end;
        if (now >= until) {
            *timed_out = deadline >= 0 && now >= deadline;
            return 0;
        }
        uint32_t *waiters, *word, expected;
        if (self->mutex) {
            mutex_shared *m = M(self);
            waiters = &m->waiters;
            word = owner_futex(m);
        }
        else {
            count_shared *s = C(self);
            waiters = &s->waiters;
            word = &s->value;
        }
        __atomic_add_fetch(waiters, 1, __ATOMIC_SEQ_CST);
        expected = __atomic_load_n(word, __ATOMIC_SEQ_CST);
        int r = 0;
        /* Sleep only while it is visibly taken: the mutex's pid half non-zero, the semaphore's value zero. */
        if (self->mutex ? expected != 0 : expected == 0)
            r = futex_sleep(word, expected, until - now);
        __atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
        if (try_take(self, me))
            return 1;
        if (r == EINTR) {
            *interrupted = 1;
            return 0;
        }
    }
}

/* Take over what dead holders left. Runs without the GIL. Returns 1 if it took the mutex over (its dead owner
   in *dead), 0 otherwise (semaphore units given back are taken by the caller's next attempt). */
static int
recover_dead(PsemObject *self, uint64_t me, uint64_t *dead)
{
    if (self->mutex) {
        mutex_shared *m = M(self);
        uint64_t w = __atomic_load_n(&m->owner, __ATOMIC_SEQ_CST);
        if (w == 0 || w == 1 || tag_pid(w) == tag_pid(me) || tag_alive(w))
            return 0;
        /* Only one waiter can win this: the others see a new owner. */
        if (!__atomic_compare_exchange_n(&m->owner, &w, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 0;
        __atomic_store_n(&m->died, 1, __ATOMIC_SEQ_CST);
        *dead = w;
        return 1;
    }
    holder_table *t = self->holders;
    if (t == NULL)
        return 0;
    for (uint32_t i = 0; i < t->nholders; i++) {
        holder *h = &t->h[i];
        uint64_t w = __atomic_load_n(&h->owner, __ATOMIC_SEQ_CST);
        if (w == 0 || tag_pid(w) == tag_pid(me) || tag_alive(w))
            continue;
        /* Claim the dead holder's entry as ours, then give its units back: dying in between only leaves the
           entry to the next waiter, never gives the units twice. */
        if (!__atomic_compare_exchange_n(&h->owner, &w, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            continue;
        uint32_t units = __atomic_exchange_n(&h->units, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&h->owner, 0, __ATOMIC_SEQ_CST);
        if (units) {
            count_give(C(self), units, self->maxvalue);
            *dead = w;
        }
    }
    return 0;
}

static void
give_back(PsemObject *self)
{
    /* Undo a take (used when a warning about a recovered lock is raised as an error). */
    if (self->mutex) {
        mutex_shared *m = M(self);
        __atomic_store_n(&m->owner, 0, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&m->waiters, __ATOMIC_SEQ_CST) > 0)
            futex_wake(owner_futex(m), 1);
    }
    else {
        count_give(C(self), 1, self->maxvalue);
    }
}

/* Say that a dead holder's lock (or units) was recovered, as the policy wants. 0, or -1 with an exception. */
static int
warn_recovered(PsemObject *self, uint64_t dead)
{
    self->last_dead = dead;
    if (self->policy != POLICY_WARN)
        return 0;
    const char *what = self->mutex ? (self->recursive ? "RLock" : "Lock") : "semaphore";
    if (self->mutex)
        return PyErr_WarnFormat(AbandonedLockWarning, 1,
                                "this %s was held by process %d, which died without releasing it: the lock was "
                                "taken over, but what it protected may have been left half-changed",
                                what, (int)tag_pid(dead));
    return PyErr_WarnFormat(AbandonedLockWarning, 1,
                            "process %d died holding units of this %s in a 'with' block: they were given back",
                            (int)tag_pid(dead), what);
}

/* Taken (got) or not, after a look at dead holders (dead: whom we recovered from). 1 taken, 0 not, -1 if the
   warning was raised as an error (then nothing is held). */
static int
settle(PsemObject *self, int got, uint64_t dead, unsigned long me_thread)
{
    if (got) {
        self->owner = me_thread;
        self->count++;
    }
    if (dead && warn_recovered(self, dead) < 0) {
        if (got) {
            /* Not left holding a lock that a `with` statement would never release. */
            if (--self->count == 0)
                self->owner = 0;
            give_back(self);
        }
        return -1;
    }
    return got;
}

/* The blocking part of acquire(). Returns 1 (taken), 0 (timed out) or -1 (exception). */
static int
acquire_blocking(PsemObject *self, uint64_t me, unsigned long me_thread, int64_t deadline)
{
    for (;;) {
        int got, timed_out = 0, interrupted = 0;
        uint64_t dead = 0;
        Py_BEGIN_ALLOW_THREADS
        got = take_slice(self, me, deadline, &timed_out, &interrupted);
        if (!got && !timed_out && !interrupted && self->policy != POLICY_WAIT)
            got = recover_dead(self, me, &dead) || try_take(self, me);
        Py_END_ALLOW_THREADS
        int r = settle(self, got, dead, me_thread);
        if (r != 0)
            return r;
        if (timed_out)
            return 0;
        /* Each slice ends here with the GIL: Python's signal handlers run (Ctrl-C raises). */
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

PyDoc_STRVAR(acquire_doc,
"acquire(block=True, timeout=None) -> bool\n\n"
"Take one unit (the lock), waiting while there is none. Without `block`, or when `timeout` seconds pass\n"
"(a negative timeout means zero, None means forever), return False instead of waiting.");

static PyObject *
Psem_acquire(PsemObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* Vectorcall with hand parsing: acquire() with no arguments is the hot path of every Lock. */
    int block = 1;
    PyObject *timeout_obj = Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs > 2 || nargs + nkw > 2) {
        PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments (block, timeout)");
        return NULL;
    }
    if (nargs >= 1 && (block = PyObject_IsTrue(args[0])) < 0)
        return NULL;
    if (nargs == 2)
        timeout_obj = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject *val = args[nargs + i];
        if ((PyUnicode_CompareWithASCIIString(key, "block") == 0 ||
             PyUnicode_CompareWithASCIIString(key, "blocking") == 0) && nargs < 1) {
            if ((block = PyObject_IsTrue(val)) < 0)
                return NULL;
        }
        else if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0 && nargs < 2)
            timeout_obj = val;
        else {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument %R", key);
            return NULL;
        }
    }
    if (check_ready(self) < 0)
        return NULL;
    double timeout = 0;
    int has_timeout = timeout_obj != Py_None;
    if (has_timeout) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (timeout != timeout) {
            PyErr_SetString(PyExc_ValueError, "timeout must be a number, not NaN");
            return NULL;
        }
    }
    unsigned long me_thread = PyThread_get_thread_ident();
    if (self->recursive && self->count > 0 && self->owner == me_thread) {
        self->count++;
        Py_RETURN_TRUE;
    }
    uint64_t me = my_tag();
    if (try_take(self, me)) {
        self->owner = me_thread;
        self->count++;
        Py_RETURN_TRUE;
    }
    if (block && has_timeout && timeout <= 0)
        block = 0;
    if (!block) {
        /* A try that fails against a holder in another process looks at its health now and then (a holder that
           died must not make every later try fail). */
        if (self->policy != POLICY_WAIT) {
            int64_t t = now_ns();
            if (t - self->last_check >= SLICE_NS) {
                self->last_check = t;
                uint64_t dead = 0;
                int got;
                Py_BEGIN_ALLOW_THREADS
                got = recover_dead(self, me, &dead) || try_take(self, me);
                Py_END_ALLOW_THREADS
                int r = settle(self, got, dead, me_thread);
                if (r < 0)
                    return NULL;
                if (r)
                    Py_RETURN_TRUE;
            }
        }
        Py_RETURN_FALSE;
    }
    int64_t deadline = -1;
    if (has_timeout) {
        if (timeout > 1e9)
            timeout = 1e9;
        deadline = now_ns() + (int64_t)(timeout * 1e9);
    }
    int r = acquire_blocking(self, me, me_thread, deadline);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

/* Holder-table bookkeeping of `with` blocks (counting semaphores that track holders). The GIL serialises the
   threads of this process; other processes only touch our entry once we are dead. */
static holder *
find_holder(PsemObject *self, uint64_t me, int claim)
{
    holder_table *t = self->holders;
    for (uint32_t i = 0; i < t->nholders; i++) {
        if (__atomic_load_n(&t->h[i].owner, __ATOMIC_SEQ_CST) == me)
            return &t->h[i];
    }
    if (!claim)
        return NULL;
    for (uint32_t i = 0; i < t->nholders; i++) {
        uint64_t expected = 0;
        if (__atomic_compare_exchange_n(&t->h[i].owner, &expected, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            __atomic_store_n(&t->h[i].units, 0, __ATOMIC_SEQ_CST);
            return &t->h[i];
        }
    }
    return NULL; /* full: this holder is not tracked */
}

static int
do_release(PsemObject *self)
{
    if (self->recursive) {
        if (self->count <= 0 || self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_AssertionError, "attempt to release recursive lock not owned by thread");
            return -1;
        }
        if (self->count > 1) {
            self->count--;
            return 0;
        }
    }
    if (self->mutex) {
        mutex_shared *m = M(self);
        uint64_t w = __atomic_load_n(&m->owner, __ATOMIC_SEQ_CST);
        if (w == 0) {
            PyErr_SetString(PyExc_ValueError, "semaphore or lock released too many times");
            return -1;
        }
        __atomic_store_n(&m->owner, 0, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&m->waiters, __ATOMIC_SEQ_CST) > 0)
            futex_wake(owner_futex(m), 1);
    }
    else {
        count_shared *s = C(self);
        uint32_t v = __atomic_load_n(&s->value, __ATOMIC_SEQ_CST);
        for (;;) {
            if (v >= self->maxvalue) {
                PyErr_SetString(PyExc_ValueError, "semaphore or lock released too many times");
                return -1;
            }
            if (__atomic_compare_exchange_n(&s->value, &v, v + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                break;
        }
        if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) > 0)
            futex_wake(&s->value, 1);
    }
    if (self->count > 0)
        self->count--;
    if (self->count == 0)
        self->owner = 0;
    return 0;
}

PyDoc_STRVAR(release_doc,
"release() -> None\n\nGive one unit back (unlock) and wake one waiter. ValueError past maxvalue.");

static PyObject *
Psem_release(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    if (do_release(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Psem_enter(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *r = Psem_acquire(self, NULL, 0, NULL);
    if (r != NULL && self->holders != NULL) {
        /* Units taken in a `with` block are this process's until the block ends: given back if it dies. */
        holder *h = find_holder(self, my_tag(), 1);
        if (h != NULL)
            __atomic_add_fetch(&h->units, 1, __ATOMIC_SEQ_CST);
    }
    return r;
}

static PyObject *
Psem_exit(PsemObject *self, PyObject *Py_UNUSED(args))
{
    if (check_ready(self) < 0)
        return NULL;
    holder *h = self->holders != NULL ? find_holder(self, my_tag(), 0) : NULL;
    /* Uncounted first, then released: dying in between loses the unit rather than giving it twice. */
    if (h != NULL && __atomic_load_n(&h->units, __ATOMIC_SEQ_CST) > 0 &&
        __atomic_sub_fetch(&h->units, 1, __ATOMIC_SEQ_CST) == 0)
        __atomic_store_n(&h->owner, 0, __ATOMIC_SEQ_CST);
    if (do_release(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Psem_is_mine(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->count > 0 && self->owner == PyThread_get_thread_ident());
}

static PyObject *
Psem_count(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->count);
}

static PyObject *
Psem_after_fork(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    self->count = 0;
    self->owner = 0;
    self->last_check = 0;
    Py_RETURN_NONE;
}

static uint32_t
value_of(PsemObject *self)
{
    if (self->mutex)
        return __atomic_load_n(&M(self)->owner, __ATOMIC_SEQ_CST) == 0;
    return __atomic_load_n(&C(self)->value, __ATOMIC_SEQ_CST);
}

static PyObject *
Psem_get_value(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(value_of(self));
}

static PyObject *
Psem_is_zero(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    return PyBool_FromLong(value_of(self) == 0);
}

static PyObject *
Psem_holder(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    /* The pid of the process holding a mutex, 0 if free, None for a semaphore. */
    if (check_ready(self) < 0)
        return NULL;
    if (!self->mutex)
        Py_RETURN_NONE;
    uint64_t w = __atomic_load_n(&M(self)->owner, __ATOMIC_SEQ_CST);
    return PyLong_FromLong(w == 1 ? 0 : (long)tag_pid(w));
}

static PyObject *
Psem_holder_alive(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    /* For a mutex: True if free or held by a live process; False if its holder died. */
    if (check_ready(self) < 0)
        return NULL;
    if (!self->mutex)
        Py_RETURN_TRUE;
    uint64_t w = __atomic_load_n(&M(self)->owner, __ATOMIC_SEQ_CST);
    int alive;
    Py_BEGIN_ALLOW_THREADS
    alive = w == 0 || w == 1 || tag_alive(w);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(alive);
}

static PyObject *
Psem_abandoned(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    return PyBool_FromLong(self->mutex && __atomic_load_n(&M(self)->died, __ATOMIC_SEQ_CST));
}

static PyObject *
Psem_clear_abandoned(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    if (self->mutex)
        __atomic_store_n(&M(self)->died, 0, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *
Psem_last_dead(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->last_dead ? (long)tag_pid(self->last_dead) : 0);
}

static PyObject *
Psem_get_maxvalue(PsemObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(self->maxvalue);
}

static PyObject *
Psem_get_policy(PsemObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->policy);
}

static int
Psem_set_policy(PsemObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    long p = value == NULL ? -1 : PyLong_AsLong(value);
    if (p == -1 && PyErr_Occurred())
        return -1;
    if (p < POLICY_WAIT || p > POLICY_WARN) {
        PyErr_SetString(PyExc_ValueError, "policy must be WAIT, RECOVER or WARN");
        return -1;
    }
    self->policy = (int)p;
    return 0;
}

static PyObject *
Psem_get_mutex(PsemObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->mutex);
}

static PyMethodDef Psem_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Psem_acquire, METH_FASTCALL | METH_KEYWORDS, acquire_doc},
    {"release", (PyCFunction)Psem_release, METH_NOARGS, release_doc},
    {"get_value", (PyCFunction)Psem_get_value, METH_NOARGS, "The current value (a mutex: 1 free, 0 held)."},
    {"is_zero", (PyCFunction)Psem_is_zero, METH_NOARGS, "True if the value is zero (a mutex: held)."},
    {"is_mine", (PyCFunction)Psem_is_mine, METH_NOARGS, "True if the calling thread holds it."},
    {"count", (PyCFunction)Psem_count, METH_NOARGS, "How many times this process holds it."},
    {"after_fork", (PyCFunction)Psem_after_fork, METH_NOARGS, "Forget ownership (in a forked child)."},
    {"holder", (PyCFunction)Psem_holder, METH_NOARGS, "A mutex's holder's pid (0: free); None for a semaphore."},
    {"holder_alive", (PyCFunction)Psem_holder_alive, METH_NOARGS,
     "False if a mutex is held by a process that died."},
    {"abandoned", (PyCFunction)Psem_abandoned, METH_NOARGS,
     "True once a mutex was taken over from a dead holder (until clear_abandoned())."},
    {"clear_abandoned", (PyCFunction)Psem_clear_abandoned, METH_NOARGS, "Forget that a holder died."},
    {"last_dead", (PyCFunction)Psem_last_dead, METH_NOARGS,
     "The pid of the last dead holder this object recovered from (0: none)."},
    /* The stdlib's SemLock spells these with an underscore; code built on multiprocessing.queues (such as
       concurrent.futures' queues given a procpar context) calls them by those names. */
    {"_is_zero", (PyCFunction)Psem_is_zero, METH_NOARGS, "is_zero()"},
    {"_is_mine", (PyCFunction)Psem_is_mine, METH_NOARGS, "is_mine()"},
    {"_count", (PyCFunction)Psem_count, METH_NOARGS, "count()"},
    {"_get_value", (PyCFunction)Psem_get_value, METH_NOARGS, "get_value()"},
    {"_after_fork", (PyCFunction)Psem_after_fork, METH_NOARGS, "after_fork()"},
    {"__enter__", (PyCFunction)Psem_enter, METH_NOARGS, "acquire() (a tracked semaphore records the holder)"},
    {"__exit__", (PyCFunction)Psem_exit, METH_VARARGS, "release()"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Psem_getset[] = {
    {"maxvalue", (getter)Psem_get_maxvalue, NULL, "The largest value release() may reach.", NULL},
    {"policy", (getter)Psem_get_policy, (setter)Psem_set_policy, "What a dead holder leads to.", NULL},
    {"mutex", (getter)Psem_get_mutex, NULL, "True for a lock whose owner word is the lock.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PsemType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procpar_sync._psem.Semaphore",
    .tp_basicsize = sizeof(PsemObject),
    .tp_dealloc = (destructor)Psem_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Semaphore(buffer, offset, value, maxvalue, initialize=False, recursive=False, *, mutex=False, "
              "holders=0, policy=WAIT): a process-shared semaphore (or, with mutex=True, a lock that records its "
              "holder) in `buffer` at `offset` (slot_size() bytes, 8-aligned).",
    .tp_methods = Psem_methods,
    .tp_getset = Psem_getset,
    .tp_init = (initproc)Psem_init,
    .tp_new = PyType_GenericNew,
};

/* -- the wait list of a condition variable ----------------------------------------------------------------- */

/*
 * Each waiter has a slot of its own whose `state` word it sleeps on. notify(n) moves up to n sleeping slots,
 * oldest first, from SLEEPING to WOKEN with a compare-and-swap; a waiter that times out moves its own slot
 * from SLEEPING to FREE the same way, so a wake-up goes to exactly one waiter and is never lost to one that
 * gave up. Nobody waits for acknowledgements, so a waiter that dies can hold nobody up: notify() skips (and
 * frees) the slots of dead processes instead of spending wake-ups on them. Slots are claimed and given out
 * only by holders of the condition's lock.
 */
enum { SLOT_FREE = 0, SLOT_SLEEPING = 1, SLOT_WOKEN = 2 };

typedef struct {
    uint64_t owner;
    uint64_t ticket;
    uint32_t state;
    uint32_t pad;
} wslot;

typedef struct {
    uint64_t next_ticket;
    uint32_t capacity;
    uint32_t pad;
    wslot s[];
} wlist_shared;

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    wlist_shared *w;
} WaitListObject;

static int
WaitList_init(WaitListObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", "capacity", "initialize", NULL};
    PyObject *buffer;
    Py_ssize_t offset, capacity;
    int initialize = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onn|p", kwlist, &buffer, &offset, &capacity, &initialize))
        return -1;
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "wait list already initialized");
        return -1;
    }
    if (capacity < 1 || capacity > 65536) {
        PyErr_SetString(PyExc_ValueError, "capacity must be in 1..65536");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    Py_ssize_t size = (Py_ssize_t)(sizeof(wlist_shared) + (size_t)capacity * sizeof(wslot));
    if (offset < 0 || offset % 8 != 0 || offset + size > self->view.len) {
        PyErr_Format(PyExc_ValueError, "offset %zd is not an 8-aligned slot of %zd bytes inside the buffer",
                     offset, size);
        return -1;
    }
    self->w = (wlist_shared *)((char *)self->view.buf + offset);
    if (initialize) {
        memset(self->w, 0, (size_t)size);
        self->w->capacity = (uint32_t)capacity;
    }
    else if (self->w->capacity != (uint32_t)capacity) {
        PyErr_SetString(PyExc_ValueError, "the wait list in shared memory has another capacity");
        return -1;
    }
    return 0;
}

static void
WaitList_dealloc(WaitListObject *self)
{
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
wl_ready(WaitListObject *self)
{
    if (!self->has_view) {
        PyErr_SetString(PyExc_ValueError, "wait list is not initialized");
        return -1;
    }
    return 0;
}

static PyObject *
WaitList_enroll(WaitListObject *self, PyObject *Py_UNUSED(ignored))
{
    /* The caller holds the condition's lock: no other enrol or notify runs meanwhile. */
    if (wl_ready(self) < 0)
        return NULL;
    wlist_shared *w = self->w;
    uint64_t me = my_tag();
    int64_t found = -1;
    for (uint32_t i = 0; i < w->capacity && found < 0; i++) {
        if (__atomic_load_n(&w->s[i].state, __ATOMIC_SEQ_CST) == SLOT_FREE)
            found = i;
    }
    if (found < 0) {
        /* Full: slots of waiters that died (asleep, or woken and never back) are free for the taking. */
        for (uint32_t i = 0; i < w->capacity && found < 0; i++) {
            uint64_t owner = __atomic_load_n(&w->s[i].owner, __ATOMIC_SEQ_CST);
            int alive;
            Py_BEGIN_ALLOW_THREADS
            alive = tag_alive(owner);
            Py_END_ALLOW_THREADS
            if (!alive)
                found = i;
        }
    }
    if (found < 0) {
        PyErr_Format(PyExc_RuntimeError, "more than %u processes and threads are waiting on this condition "
                     "at once", (unsigned)w->capacity);
        return NULL;
    }
    wslot *s = &w->s[found];
    __atomic_store_n(&s->owner, me, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->ticket, w->next_ticket++, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->state, SLOT_SLEEPING, __ATOMIC_SEQ_CST);
    return PyLong_FromLongLong(found);
}

/* Wake the oldest sleeping slot other than `skip` (-1: any) whose process is alive; free dead ones met on the
   way. Returns how many were woken (0 or 1 per call up to `n`). No GIL needed. */
static long
wl_wake(wlist_shared *w, long n, int64_t skip)
{
    long woken = 0;
    uint64_t me_pid = (uint64_t)tag_pid(my_tag());
    while (woken < n) {
        int64_t best = -1;
        uint64_t best_ticket = UINT64_MAX;
        for (uint32_t i = 0; i < w->capacity; i++) {
            if ((int64_t)i == skip || __atomic_load_n(&w->s[i].state, __ATOMIC_SEQ_CST) != SLOT_SLEEPING)
                continue;
            uint64_t t = __atomic_load_n(&w->s[i].ticket, __ATOMIC_SEQ_CST);
            if (t < best_ticket) {
                best_ticket = t;
                best = i;
            }
        }
        if (best < 0)
            break;
        wslot *s = &w->s[best];
        uint64_t owner = __atomic_load_n(&s->owner, __ATOMIC_SEQ_CST);
        uint32_t expected = SLOT_SLEEPING;
        if ((uint64_t)tag_pid(owner) != me_pid && !tag_alive(owner)) {
            /* A dead sleeper gets no wake-up: free its slot and look again. */
            __atomic_compare_exchange_n(&s->state, &expected, SLOT_FREE, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            continue;
        }
        if (__atomic_compare_exchange_n(&s->state, &expected, SLOT_WOKEN, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            futex_wake(&s->state, 1);
            woken++;
        }
        /* else it timed out just now: look again */
    }
    return woken;
}

static PyObject *
WaitList_notify(WaitListObject *self, PyObject *arg)
{
    /* The caller holds the condition's lock. Returns how many were woken. */
    if (wl_ready(self) < 0)
        return NULL;
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    long woken = 0;
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        woken = wl_wake(self->w, (long)(n > LONG_MAX ? LONG_MAX : n), -1);
        Py_END_ALLOW_THREADS
    }
    return PyLong_FromLong(woken);
}

static PyObject *
WaitList_sleep(WaitListObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* sleep(slot, timeout) -> bool: True if woken by notify(), False on timeout. The caller has released the
       condition's lock. A signal handler that raises here passes a wake-up we already got on to another. */
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sleep(slot, timeout) takes exactly 2 arguments");
        return NULL;
    }
    if (wl_ready(self) < 0)
        return NULL;
    Py_ssize_t index = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (index < 0 || (uint64_t)index >= self->w->capacity) {
        PyErr_SetString(PyExc_IndexError, "no such wait list slot");
        return NULL;
    }
    int64_t deadline = -1;
    if (args[1] != Py_None) {
        double timeout = PyFloat_AsDouble(args[1]);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (timeout != timeout) {
            PyErr_SetString(PyExc_ValueError, "timeout must be a number, not NaN");
            return NULL;
        }
        if (timeout < 0)
            timeout = 0;
        if (timeout > 1e9)
            timeout = 1e9;
        deadline = now_ns() + (int64_t)(timeout * 1e9);
    }
    wslot *s = &self->w->s[index];
    for (;;) {
        int woken = 0, timed_out = 0;
        Py_BEGIN_ALLOW_THREADS
        int64_t slice_end = now_ns() + SLICE_NS;
        for (;;) {
            if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) == SLOT_WOKEN) {
                woken = 1;
                break;
            }
            int64_t now = now_ns();
            int64_t until = deadline >= 0 && deadline < slice_end ? deadline : slice_end;
            if (now >= until) {
                timed_out = deadline >= 0 && now >= deadline;
                break;
            }
            if (futex_sleep(&s->state, SLOT_SLEEPING, until - now) == EINTR)
                break;
        }
        if (timed_out) {
            uint32_t expected = SLOT_SLEEPING;
            /* Give up only if no wake-up came meanwhile: the swap decides. */
            if (!__atomic_compare_exchange_n(&s->state, &expected, SLOT_FREE, 0, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST))
                woken = 1;
        }
        if (woken)
            __atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_SEQ_CST);
        Py_END_ALLOW_THREADS
        if (woken)
            Py_RETURN_TRUE;
        if (timed_out)
            Py_RETURN_FALSE;
        if (PyErr_CheckSignals() < 0) {
            uint32_t expected = SLOT_SLEEPING;
            if (!__atomic_compare_exchange_n(&s->state, &expected, SLOT_FREE, 0, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST)) {
                /* woken just as we were interrupted: hand the wake-up to the next waiter */
                __atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_SEQ_CST);
                wl_wake(self->w, 1, index);
            }
            return NULL;
        }
    }
}

static PyObject *
WaitList_sleepers(WaitListObject *self, PyObject *Py_UNUSED(ignored))
{
    if (wl_ready(self) < 0)
        return NULL;
    long n = 0;
    for (uint32_t i = 0; i < self->w->capacity; i++)
        n += __atomic_load_n(&self->w->s[i].state, __ATOMIC_SEQ_CST) == SLOT_SLEEPING;
    return PyLong_FromLong(n);
}

static PyMethodDef WaitList_methods[] = {
    {"enroll", (PyCFunction)WaitList_enroll, METH_NOARGS,
     "enroll() -> int\n\nA slot for the calling waiter, which then releases the condition's lock and sleep()s on "
     "it. Hold the condition's lock."},
    {"sleep", (PyCFunction)(void (*)(void))WaitList_sleep, METH_FASTCALL,
     "sleep(slot, timeout) -> bool\n\nWait on an enrolled slot: True if notified, False on timeout."},
    {"notify", (PyCFunction)WaitList_notify, METH_O,
     "notify(n) -> int\n\nWake up to n live sleepers, oldest first; returns how many. Hold the condition's lock."},
    {"sleepers", (PyCFunction)WaitList_sleepers, METH_NOARGS, "How many slots are asleep."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WaitListType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procpar_sync._psem.WaitList",
    .tp_basicsize = sizeof(WaitListObject),
    .tp_dealloc = (destructor)WaitList_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "WaitList(buffer, offset, capacity, initialize=False): the waiters of a process-shared condition.",
    .tp_methods = WaitList_methods,
    .tp_init = (initproc)WaitList_init,
    .tp_new = PyType_GenericNew,
};

/* -- the C API other modules use (see _common.h) ------------------------------------------------------ */

static int
api_is_semaphore(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &PsemType);
}

static int
api_try_acquire(PyObject *obj)
{
    PyObject *r = Psem_acquire((PsemObject *)obj, (PyObject *const[]){Py_False}, 1, NULL);
    if (r == NULL)
        return -1;
    int got = r == Py_True;
    Py_DECREF(r);
    return got;
}

static int
api_release(PyObject *obj)
{
    return do_release((PsemObject *)obj);
}

static int
api_holder_alive(PyObject *obj)
{
    PsemObject *self = (PsemObject *)obj;
    if (!self->mutex)
        return 1;
    uint64_t w = __atomic_load_n(&M(self)->owner, __ATOMIC_SEQ_CST);
    int alive;
    Py_BEGIN_ALLOW_THREADS
    alive = w == 0 || w == 1 || tag_alive(w);
    Py_END_ALLOW_THREADS
    return alive;
}

static int
api_abandoned(PyObject *obj)
{
    PsemObject *self = (PsemObject *)obj;
    return self->mutex && __atomic_load_n(&M(self)->died, __ATOMIC_SEQ_CST);
}

static void
api_clear_abandoned(PyObject *obj)
{
    PsemObject *self = (PsemObject *)obj;
    if (self->mutex)
        __atomic_store_n(&M(self)->died, 0, __ATOMIC_SEQ_CST);
}

static pp_psem_api the_api = {
    api_is_semaphore, api_try_acquire, api_release, api_holder_alive, api_abandoned, api_clear_abandoned,
};

/* -- module ------------------------------------------------------------------------------------------------ */

static PyObject *
mod_slot_size(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"mutex", "holders", NULL};
    int mutex = 0;
    Py_ssize_t holders = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pn", kwlist, &mutex, &holders))
        return NULL;
    return PyLong_FromSsize_t(slot_size(mutex, holders));
}

static PyObject *
mod_wait_list_size(PyObject *module, PyObject *arg)
{
    Py_ssize_t capacity = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (capacity == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t((Py_ssize_t)(sizeof(wlist_shared) + (size_t)capacity * sizeof(wslot)));
}

static PyObject *
mod_process_tag(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(my_tag());
}

static PyObject *
mod_tag_alive(PyObject *module, PyObject *arg)
{
    unsigned long long tag = PyLong_AsUnsignedLongLong(arg);
    if (tag == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    int alive;
    Py_BEGIN_ALLOW_THREADS
    alive = tag_alive((uint64_t)tag);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(alive);
}

static PyMethodDef module_methods[] = {
    {"slot_size", (PyCFunction)(void (*)(void))mod_slot_size, METH_VARARGS | METH_KEYWORDS,
     "slot_size(*, mutex=False, holders=0) -> int\n\nBytes of shared memory a Semaphore of that kind needs."},
    {"wait_list_size", (PyCFunction)mod_wait_list_size, METH_O,
     "wait_list_size(capacity) -> int\n\nBytes of shared memory a WaitList of that capacity needs."},
    {"process_tag", (PyCFunction)mod_process_tag, METH_NOARGS,
     "process_tag() -> int\n\nThis process's identity: pid | (start time << 32)."},
    {"tag_alive", (PyCFunction)mod_tag_alive, METH_O,
     "tag_alive(tag) -> bool\n\nFalse if the process of that identity is gone, a zombie, or its pid was reused."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef psem_module = {
    PyModuleDef_HEAD_INIT, "procpar_sync._psem",
    "procpar-sync's compiled core: process-shared semaphores, owner-aware locks, condition wait lists.", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__psem(void)
{
    if (PyType_Ready(&PsemType) < 0 || PyType_Ready(&WaitListType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&psem_module);
    if (m == NULL)
        return NULL;
    /* The identity cache belongs to the process: a forked child has a pid (and start time) of its own. */
    pthread_atfork(NULL, NULL, forget_tag);
    AbandonedLockWarning = PyErr_NewExceptionWithDoc(
        "procpar_sync.AbandonedLockWarning",
        "A lock (or semaphore units) was taken over from a process that died holding it.", PyExc_RuntimeWarning,
        NULL);
    if (AbandonedLockWarning == NULL)
        goto fail;
    Py_INCREF(&PsemType);
    if (PyModule_AddObject(m, "Semaphore", (PyObject *)&PsemType) < 0) {
        Py_DECREF(&PsemType);
        goto fail;
    }
    Py_INCREF(&WaitListType);
    if (PyModule_AddObject(m, "WaitList", (PyObject *)&WaitListType) < 0) {
        Py_DECREF(&WaitListType);
        goto fail;
    }
    PyObject *capsule = PyCapsule_New(&the_api, PP_PSEM_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        goto fail;
    }
    Py_INCREF(AbandonedLockWarning);
    if (PyModule_AddObject(m, "AbandonedLockWarning", AbandonedLockWarning) < 0) {
        Py_DECREF(AbandonedLockWarning);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "SLOT_SIZE", (long)sizeof(count_shared)) < 0 ||
        PyModule_AddIntConstant(m, "WAIT", POLICY_WAIT) < 0 ||
        PyModule_AddIntConstant(m, "RECOVER", POLICY_RECOVER) < 0 ||
        PyModule_AddIntConstant(m, "WARN", POLICY_WARN) < 0 ||
        PyModule_AddIntConstant(m, "SLICE_MS", (long)(SLICE_NS / 1000000)) < 0 ||
        PyModule_AddIntConstant(m, "HAVE_FUTEX",
#ifdef __linux__
                                1
#else
                                0
#endif
                                ) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
