/*
 * A process-shared counting semaphore on memory the caller provides (a MAP_SHARED mapping of a memfd).
 *
 * Layout (8 bytes, the caller aligns it): uint32 value; uint32 waiters.
 * Linux: acquire decrements `value` with a CAS; a waiter announces itself in `waiters` and sleeps in
 * FUTEX_WAIT on `value` (a shared futex: the memory is shared between processes). release increments
 * `value` and wakes one sleeper if any announced itself. A sleeping acquire releases the GIL and wakes up for
 * signals (EINTR), so Ctrl-C raises KeyboardInterrupt; timeouts use an absolute CLOCK_MONOTONIC deadline.
 * Other POSIX systems: the same protocol, sleeping with exponential backoff up to 1 ms (no futex there).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

typedef struct {
    uint32_t value;
    uint32_t waiters;
} psem_shared;

typedef struct {
    PyObject_HEAD
    Py_buffer view;       /* keeps the mapping alive and exported */
    int has_view;
    psem_shared *sem;
    uint32_t maxvalue;    /* UINT32_MAX: unbounded */
    int recursive;        /* RLock semantics: the owning thread may re-acquire; only it may release */
    /* Which thread of this process holds it and how often: local bookkeeping, reset in a forked child. */
    unsigned long owner;
    long count;
} PsemObject;

#ifndef SPIN_LIMIT
#define SPIN_LIMIT 200
#endif

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int
try_decrement(psem_shared *s)
{
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_SEQ_CST);
    while (v > 0) {
        if (__atomic_compare_exchange_n(&s->value, &v, v - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    }
    return 0;
}

static void
monotonic_now(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

/* remaining = deadline - now; returns 0 if the deadline has passed */
static int
remaining_time(const struct timespec *deadline, struct timespec *remaining)
{
    struct timespec now;
    monotonic_now(&now);
    remaining->tv_sec = deadline->tv_sec - now.tv_sec;
    remaining->tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (remaining->tv_nsec < 0) {
        remaining->tv_sec -= 1;
        remaining->tv_nsec += 1000000000L;
    }
    return remaining->tv_sec > 0 || (remaining->tv_sec == 0 && remaining->tv_nsec > 0);
}

/* Sleep until `value` may have changed, the timeout passes or a signal arrives.
   Returns 0 (woken or spurious), ETIMEDOUT or EINTR. */
static int
wait_for_change(psem_shared *s, const struct timespec *deadline)
{
    struct timespec rel, *relp = NULL;
    if (deadline != NULL) {
        if (!remaining_time(deadline, &rel))
            return ETIMEDOUT;
        relp = &rel;
    }
#ifdef __linux__
    long r = syscall(SYS_futex, &s->value, FUTEX_WAIT, 0, relp, NULL, 0);
    if (r == -1) {
        if (errno == ETIMEDOUT)
            return ETIMEDOUT;
        if (errno == EINTR)
            return EINTR;
    }
    return 0;
#else
    static const long max_sleep_ns = 1000000L;
    struct timespec nap = {0, 20000L};
    if (relp != NULL && (relp->tv_sec == 0 && relp->tv_nsec < nap.tv_nsec))
        nap = *relp;
    if (nanosleep(&nap, NULL) == -1 && errno == EINTR)
        return EINTR;
    (void)max_sleep_ns;
    return 0;
#endif
}

static void
wake_one(psem_shared *s)
{
#ifdef __linux__
    syscall(SYS_futex, &s->value, FUTEX_WAKE, 1, NULL, NULL, 0);
#else
    (void)s;
#endif
}

static int
Psem_init(PsemObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", "value", "maxvalue", "initialize", "recursive", NULL};
    PyObject *buffer;
    Py_ssize_t offset;
    unsigned long long value = 0, maxvalue = UINT32_MAX;
    int initialize = 0, recursive = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnKK|pp", kwlist, &buffer, &offset, &value, &maxvalue,
                                     &initialize, &recursive))
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
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    if (offset < 0 || offset % 8 != 0 || offset + (Py_ssize_t)sizeof(psem_shared) > self->view.len) {
        PyErr_Format(PyExc_ValueError, "offset %zd is not an 8-aligned slot inside the %zd-byte buffer", offset,
                     self->view.len);
        return -1;
    }
    self->sem = (psem_shared *)((char *)self->view.buf + offset);
    self->maxvalue = (uint32_t)maxvalue;
    self->recursive = recursive;
    self->owner = 0;
    self->count = 0;
    if (initialize) {
        __atomic_store_n(&self->sem->waiters, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&self->sem->value, (uint32_t)value, __ATOMIC_SEQ_CST);
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

PyDoc_STRVAR(acquire_doc,
"acquire(block=True, timeout=None) -> bool\n\n"
"Decrement the semaphore, waiting while it is zero. Without `block`, or when `timeout` seconds pass\n"
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
        if (PyUnicode_CompareWithASCIIString(key, "block") == 0 && nargs < 1) {
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
    unsigned long me = PyThread_get_thread_ident();
    if (self->recursive && self->count > 0 && self->owner == me) {
        self->count++;
        Py_RETURN_TRUE;
    }
    if (try_decrement(self->sem)) {
        self->owner = me;
        self->count++;
        Py_RETURN_TRUE;
    }
    struct timespec deadline, *deadlinep = NULL;
    if (block && has_timeout) {
        if (timeout <= 0)
            block = 0;
        else {
            if (timeout > 1e9)
                timeout = 1e9;
            monotonic_now(&deadline);
            double whole = (double)(long long)timeout;
            deadline.tv_sec += (time_t)whole;
            deadline.tv_nsec += (long)((timeout - whole) * 1e9);
            if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec += 1;
                deadline.tv_nsec -= 1000000000L;
            }
            deadlinep = &deadline;
        }
    }
    if (!block)
        Py_RETURN_FALSE;
    psem_shared *s = self->sem;
    for (;;) {
        int result = 0, got = 0;
        Py_BEGIN_ALLOW_THREADS
        /* A holder on another CPU usually releases within a few microseconds: watch for that briefly before
           paying for a sleep and a wake-up in the kernel. */
        for (int spin = 0; spin < SPIN_LIMIT && !got; spin++) {
            if (__atomic_load_n(&s->value, __ATOMIC_RELAXED) > 0 && try_decrement(s))
                got = 1;
            else
                cpu_relax();
        }
        for (; !got;) {
            __atomic_add_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&s->value, __ATOMIC_SEQ_CST) == 0)
                result = wait_for_change(s, deadlinep);
            __atomic_sub_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
            if (try_decrement(s)) {
                got = 1;
                break;
            }
            if (result == ETIMEDOUT || result == EINTR)
                break;
        }
        Py_END_ALLOW_THREADS
        if (got) {
            self->owner = me;
            self->count++;
            Py_RETURN_TRUE;
        }
        if (result == ETIMEDOUT)
            Py_RETURN_FALSE;
        /* EINTR: run the Python signal handlers (KeyboardInterrupt), then wait again */
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
}

PyDoc_STRVAR(release_doc,
"release() -> None\n\nIncrement the semaphore and wake one waiter. ValueError past maxvalue.");

static PyObject *
Psem_release(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    if (self->recursive) {
        if (self->count <= 0 || self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_AssertionError, "attempt to release recursive lock not owned by thread");
            return NULL;
        }
        if (self->count > 1) {
            self->count--;
            Py_RETURN_NONE;
        }
    }
    psem_shared *s = self->sem;
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_SEQ_CST);
    for (;;) {
        if (v >= self->maxvalue) {
            PyErr_SetString(PyExc_ValueError, "semaphore or lock released too many times");
            return NULL;
        }
        if (__atomic_compare_exchange_n(&s->value, &v, v + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;
    }
    if (self->count > 0)
        self->count--;
    if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) > 0)
        wake_one(s);
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
    Py_RETURN_NONE;
}

static PyObject *
Psem_enter(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL)
        return NULL;
    PyObject *r = Psem_acquire(self, NULL, 0, NULL);
    Py_DECREF(empty);
    return r;
}

static PyObject *
Psem_exit(PsemObject *self, PyObject *Py_UNUSED(args))
{
    return Psem_release(self, NULL);
}

static PyObject *
Psem_get_value(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(__atomic_load_n(&self->sem->value, __ATOMIC_SEQ_CST));
}

static PyObject *
Psem_is_zero(PsemObject *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    return PyBool_FromLong(__atomic_load_n(&self->sem->value, __ATOMIC_SEQ_CST) == 0);
}

static PyObject *
Psem_get_maxvalue(PsemObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(self->maxvalue);
}

static PyMethodDef Psem_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Psem_acquire, METH_FASTCALL | METH_KEYWORDS, acquire_doc},
    {"release", (PyCFunction)Psem_release, METH_NOARGS, release_doc},
    {"get_value", (PyCFunction)Psem_get_value, METH_NOARGS, "The current value."},
    {"is_zero", (PyCFunction)Psem_is_zero, METH_NOARGS, "True if the value is zero."},
    {"is_mine", (PyCFunction)Psem_is_mine, METH_NOARGS, "True if the calling thread holds it."},
    {"count", (PyCFunction)Psem_count, METH_NOARGS, "How many times this process holds it."},
    {"after_fork", (PyCFunction)Psem_after_fork, METH_NOARGS, "Forget ownership (in a forked child)."},
    /* The stdlib's SemLock spells these with an underscore; code built on multiprocessing.queues (such as
       concurrent.futures' queues given a procpar context) calls them by those names. */
    {"_is_zero", (PyCFunction)Psem_is_zero, METH_NOARGS, "is_zero()"},
    {"_is_mine", (PyCFunction)Psem_is_mine, METH_NOARGS, "is_mine()"},
    {"_count", (PyCFunction)Psem_count, METH_NOARGS, "count()"},
    {"_get_value", (PyCFunction)Psem_get_value, METH_NOARGS, "get_value()"},
    {"_after_fork", (PyCFunction)Psem_after_fork, METH_NOARGS, "after_fork()"},
    {"__enter__", (PyCFunction)Psem_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)Psem_exit, METH_VARARGS, "release()"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Psem_getset[] = {
    {"maxvalue", (getter)Psem_get_maxvalue, NULL, "The largest value release() may reach.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PsemType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procpar_sync._psem.Semaphore",
    .tp_basicsize = sizeof(PsemObject),
    .tp_dealloc = (destructor)Psem_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Semaphore(buffer, offset, value, maxvalue, initialize=False): a process-shared semaphore in "
              "`buffer` at `offset` (8 bytes, 8-aligned).",
    .tp_methods = Psem_methods,
    .tp_getset = Psem_getset,
    .tp_init = (initproc)Psem_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef psem_module = {
    PyModuleDef_HEAD_INIT, "procpar_sync._psem",
    "procpar-sync's compiled core: a process-shared semaphore.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__psem(void)
{
    if (PyType_Ready(&PsemType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&psem_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PsemType);
    if (PyModule_AddObject(m, "Semaphore", (PyObject *)&PsemType) < 0) {
        Py_DECREF(&PsemType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "SLOT_SIZE", (long)sizeof(psem_shared)) < 0 ||
        PyModule_AddIntConstant(m, "HAVE_FUTEX",
#ifdef __linux__
                                1
#else
                                0
#endif
                                ) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
