/*
 * The stream under a procpar Queue or SimpleQueue, safe against the death of any reader or writer.
 *
 * Messages use the connection framing (_frames.h), so a reader that is not ours (concurrent.futures reads a
 * SimpleQueue's pipe with Connection.recv) still understands them. Every consumer reads through one *stash*
 * in shared memory, behind a control block:
 *
 *     [control block: 128 bytes][stash data: the rest of the buffer]
 *
 * The control block holds two copies of the read state (stash window, an exact read in flight, how much of
 * a message too large for the stash is still to be taken) and the index of the valid one: a state is changed
 * by writing the other copy and then flipping the index, so a reader that dies at any instruction leaves a
 * consistent state behind, for the next reader to continue from.
 *
 * A reader holds the queue's read lock and reads with exact sizes: FIONREAD says how many bytes are there,
 * the reader writes a random *canary* into the last bytes of where they will land, records the read in the
 * state, reads, and records the result. If it dies between the read and the record, the next reader sees
 * whether the canary was overwritten, and so whether the bytes arrived (a false "no" needs the data to match
 * 64 random bits, or 8*n bits for a read of n < 8 bytes). A reader that dies inside a message larger than the
 * stash leaves `big_left` behind: the next reader skips the rest of that message, which is the one lost.
 *
 * A writer holds the write lock (a mutex that records its owner) while it writes whole messages. If it dies
 * in the middle of one, the stream ends with half a message; whoever takes the lock over from it marks the
 * tail SUSPECT and writes nothing until a reader has settled it: once the pipe is empty (everything the dead
 * writer wrote has been read), a reader in the middle of a message knows it is truncated, drops it (the one
 * lost) and marks the tail CLEAN. A reader waiting in the middle of a message looks, each slice, for a dead
 * writer itself, so it never waits forever on half a message.
 *
 * Every wait is a poll() of at most one slice, after which the GIL is taken back for Python's signal handlers:
 * Ctrl-C is seen whenever it comes, and leaves the stream as consistent as a death does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "_common.h"
#include "_frames.h"

static pp_psem_api *psem;

enum { TAIL_CLEAN = 0, TAIL_SUSPECT = 1 };

typedef struct {
    uint32_t start, end; /* the stash window: data[start..end) is stream content nobody has taken */
    uint32_t pend;       /* an exact read of `pend` bytes into data[end..] is under way */
    uint32_t drop;       /* ... and it is a discard: once it lands, `skip` shrinks instead of the window growing */
    uint64_t canary;     /* what the last min(8, pend) bytes of that read's destination hold until it lands */
    uint64_t big_left;   /* data[start..] lies inside a message whose body still has big_left bytes to take */
    uint64_t skip;       /* after the window, this many bytes in the pipe are the rest of a message cut short by
                            its writer's death: they are read and thrown away */
} rstate;

typedef struct {
    uint32_t current; /* which of st[] is valid */
    uint32_t tail;    /* TAIL_SUSPECT: a writer died; the stream may end with half a message */
    uint64_t lost;    /* messages lost to a death (counted, for tests and for the curious) */
    uint64_t reserved[2];
    rstate st[2];
} qctl;

#define CTL_SIZE 128
_Static_assert(sizeof(qctl) <= CTL_SIZE, "the control block outgrew its place");

typedef struct {
    int fd;
    qctl *q;
    unsigned char *data;
    size_t cap;
    rstate s; /* our working copy of the state */
} reader;

static uint64_t rng_state;

static uint64_t
next_canary(void)
{
    if (rng_state == 0)
        rng_state = ((uint64_t)getpid() << 32) ^ (uint64_t)pp_now_ns() ^ (uint64_t)(uintptr_t)&rng_state;
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void
commit(reader *r)
{
    qctl *q = r->q;
    uint32_t next = 1 - (__atomic_load_n(&q->current, __ATOMIC_SEQ_CST) & 1);
    q->st[next] = r->s;
    __atomic_store_n(&q->current, next, __ATOMIC_SEQ_CST);
}

static void
normalize(rstate *s)
{
    if (s->start == s->end && s->pend == 0)
        s->start = s->end = 0;
}

/* Load the state and finish what a dead reader left: 0, or -1 with an exception. */
static int
load(reader *r)
{
    r->s = r->q->st[__atomic_load_n(&r->q->current, __ATOMIC_SEQ_CST) & 1];
    rstate *s = &r->s;
    if (s->start > s->end || s->end > r->cap || (size_t)s->end + s->pend > r->cap) {
        PyErr_SetString(PyExc_OSError, "the queue's shared read state is corrupt");
        return -1;
    }
    if (s->pend) {
        size_t k = s->pend < 8 ? s->pend : 8;
        /* The canary still there: the read never happened. Overwritten: it did, and its bytes are ours. */
        if (memcmp(r->data + s->end + s->pend - k, &s->canary, k) != 0) {
            if (s->drop)
                s->skip -= s->pend < s->skip ? s->pend : s->skip;
            else
                s->end += s->pend;
        }
        s->pend = 0;
        s->drop = 0;
        normalize(s);
        commit(r);
    }
    return 0;
}

static long
pipe_has(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0)
        return -1;
    return n;
}

/* Read exactly n bytes (the pipe holds at least that many) into data[end..]; with `drop`, to throw them away
   (the `skip` after the window). 0, or -1 with an exception. */
static int
exact_read_into(reader *r, size_t n, int drop)
{
    rstate *s = &r->s;
    uint64_t canary = next_canary();
    size_t k = n < 8 ? n : 8;
    memcpy(r->data + s->end + n - k, &canary, k);
    s->pend = (uint32_t)n;
    s->drop = (uint32_t)drop;
    s->canary = canary;
    commit(r);
    ssize_t got;
    int err;
    do {
        Py_BEGIN_ALLOW_THREADS
        got = read(r->fd, r->data + s->end, n);
        err = errno;
        Py_END_ALLOW_THREADS
    } while (got < 0 && err == EINTR);
    s->pend = 0;
    s->drop = 0;
    if (got > 0) {
        if (drop)
            s->skip -= (uint64_t)got < s->skip ? (uint64_t)got : s->skip;
        else
            s->end += (uint32_t)got;
    }
    commit(r);
    if (got < 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Make room at the end of the stash by moving its content to the front, if the two do not overlap (an
   overlapping move could leave a dead mover's state pointing at overwritten bytes). */
static int
exact_read(reader *r, size_t n)
{
    return exact_read_into(r, n, 0);
}

static void
compact(reader *r)
{
    rstate *s = &r->s;
    size_t have = s->end - s->start;
    if (s->start == 0 || have > s->start)
        return;
    memcpy(r->data, r->data + s->start, have);
    s->start = 0;
    s->end = (uint32_t)have;
    commit(r);
}

static int
count_lost(reader *r, PyObject *on_lost)
{
    __atomic_add_fetch(&r->q->lost, 1, __ATOMIC_SEQ_CST);
    if (on_lost == NULL || on_lost == Py_None)
        return 0;
    PyObject *res = PyObject_CallNoArgs(on_lost);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static void
mark_clean(qctl *q)
{
    if (__atomic_exchange_n(&q->tail, TAIL_CLEAN, __ATOMIC_SEQ_CST) != TAIL_CLEAN)
        pp_futex_wake(&q->tail, INT32_MAX);
}

/* What a reader in the middle of a message is: taking a message too big for the stash into `big`, skipping
   what a dead reader left of one (`skipping`), or neither (a partial message sits in the stash). */
typedef struct {
    PyObject *big;
    size_t big_pos;
    int skipping;
} progress;

/* The writer of the half message we are in died (the pipe is empty and nothing more can come): drop it. */
static int
drop_partial(reader *r, progress *p, PyObject *on_lost)
{
    rstate *s = &r->s;
    Py_CLEAR(p->big);
    p->skipping = 0;
    s->big_left = 0;
    s->start = s->end;
    normalize(s);
    commit(r);
    return count_lost(r, on_lost);
}

/* Called by a reader waiting in the middle of a message after a slice without data: is its writer dead?
   0, or -1 with an exception. */
static int
resolve_dead_writer(reader *r, PyObject *wsem, progress *p, PyObject *on_lost)
{
    if (wsem == NULL || wsem == Py_None)
        return 0;
    int suspect = __atomic_load_n(&r->q->tail, __ATOMIC_SEQ_CST) == TAIL_SUSPECT;
    if (!suspect && psem->holder_alive(wsem))
        return 0;
    int held = 0;
    if (!suspect) {
        /* Take the write lock over from the dead writer, so that nobody appends while we decide. */
        held = psem->try_acquire(wsem);
        if (held < 0)
            return -1;
        if (!held)
            return 0; /* someone else took it over: they mark the tail suspect */
    }
    /* Now nobody writes: we hold the lock, or its live holder waits for the tail to be settled. */
    long n = pipe_has(r->fd);
    int rc = 0;
    if (n == 0) {
        rc = drop_partial(r, p, on_lost);
        mark_clean(r->q);
        if (held)
            psem->clear_abandoned(wsem);
    }
    if (held && psem->release(wsem) < 0)
        rc = -1;
    return rc;
}

/* One message. deadline: monotonic ns, -1 for none. Returns the bytes, Py_None (new ref) on timeout, NULL
   with an exception. The caller holds the read lock. */
static PyObject *
get_message(reader *r, PyObject *wsem, int64_t deadline, PyObject *on_lost)
{
    if (load(r) < 0)
        return NULL;
    rstate *s = &r->s;
    progress p = {NULL, 0, s->big_left != 0};
    for (;;) {
        size_t have = s->end - s->start;
        if (p.big != NULL || p.skipping) {
            size_t take = have < s->big_left ? have : (size_t)s->big_left;
            if (take) {
                if (p.big != NULL) {
                    memcpy(PyBytes_AS_STRING(p.big) + p.big_pos, r->data + s->start, take);
                    p.big_pos += take;
                }
                s->start += (uint32_t)take;
                s->big_left -= take;
                normalize(s);
                commit(r);
            }
            if (s->big_left == 0) {
                if (p.big != NULL)
                    return p.big;
                /* the rest of a message a dead (or interrupted) reader had begun: that one is lost */
                p.skipping = 0;
                if (count_lost(r, on_lost) < 0)
                    return NULL;
                continue;
            }
        }
        else if (have) {
            size_t hlen = 0;
            int64_t size = pp_parse_frame(r->data + s->start, have, &hlen);
            if (size == -2)
                return NULL;
            if (size >= 0) {
                if (hlen + (uint64_t)size <= have) {
                    PyObject *msg = PyBytes_FromStringAndSize((char *)r->data + s->start + hlen, (Py_ssize_t)size);
                    if (msg == NULL)
                        return NULL;
                    s->start += (uint32_t)(hlen + size);
                    normalize(s);
                    commit(r);
                    return msg;
                }
                int stuck = s->end == r->cap && (s->start == 0 || have > s->start);
                if (hlen + (uint64_t)size > r->cap || stuck) {
                    /* Too big for the stash (or stuck at its end): copy it out as it comes. */
                    p.big = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
                    if (p.big == NULL)
                        return NULL;
                    p.big_pos = 0;
                    s->start += (uint32_t)hlen;
                    s->big_left = (uint64_t)size;
                    normalize(s);
                    commit(r);
                    continue;
                }
            }
        }
        /* More bytes are needed. */
        if (s->skip) {
            /* The rest of a message cut short by its writer's death lies in the pipe: throw it away. */
            if (s->end > s->start) {
                Py_XDECREF(p.big);
                PyErr_SetString(PyExc_OSError, "the queue's shared read state is corrupt (half a message before "
                                "bytes to skip)");
                return NULL;
            }
            long n = pipe_has(r->fd);
            if (n < 0)
                return PyErr_SetFromErrno(PyExc_OSError);
            size_t k = r->cap - s->end;
            if ((uint64_t)k > s->skip)
                k = (size_t)s->skip;
            if (n > 0 && (size_t)n < k)
                k = (size_t)n;
            if (n > 0) {
                if (exact_read_into(r, k, 1) < 0)
                    return NULL;
                if (s->skip == 0 && count_lost(r, on_lost) < 0)
                    return NULL;
                continue;
            }
        }
        if (s->end == r->cap)
            compact(r);
        long n = pipe_has(r->fd);
        if (n < 0) {
            Py_XDECREF(p.big);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (n > 0) {
            size_t room = r->cap - s->end;
            if (room == 0) {
                Py_XDECREF(p.big);
                PyErr_SetString(PyExc_OSError, "the queue's shared read buffer is full of an unfinished message");
                return NULL;
            }
            if (exact_read(r, (size_t)n < room ? (size_t)n : room) < 0) {
                Py_XDECREF(p.big);
                return NULL;
            }
            continue;
        }
        /* Nothing to read: wait a slice. Only a message we are copying out ignores the deadline (a partial
           one in the stash waits there for whoever reads next). */
        int mid = p.big != NULL || p.skipping || s->end > s->start;
        int64_t now = pp_now_ns();
        int honour = deadline >= 0 && p.big == NULL;
        if (honour && now >= deadline) {
            Py_RETURN_NONE;
        }
        int64_t until = now + PP_SLICE_NS;
        if (honour && deadline < until)
            until = deadline;
        struct pollfd pfd = {r->fd, POLLIN, 0};
        int pr, err;
        Py_BEGIN_ALLOW_THREADS
        pr = poll(&pfd, 1, (int)((until - now + 999999) / 1000000));
        err = errno;
        Py_END_ALLOW_THREADS
        if (pr < 0 && err != EINTR) {
            Py_XDECREF(p.big);
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            /* Our copy of a big message goes; its rest is skipped by the next reader (it counts the loss). */
            Py_XDECREF(p.big);
            return NULL;
        }
        if (pr > 0) {
            if (pfd.revents & POLLIN)
                continue;
            long left = pipe_has(r->fd);
            if (left > 0)
                continue;
            /* every writer has closed its end */
            Py_XDECREF(p.big);
            if (mid)
                PyErr_SetString(PyExc_OSError, "got end of file during message");
            else
                PyErr_SetNone(PyExc_EOFError);
            return NULL;
        }
        if (mid) {
            if (resolve_dead_writer(r, wsem, &p, on_lost) < 0) {
                Py_XDECREF(p.big);
                return NULL;
            }
        }
        else if (__atomic_load_n(&r->q->tail, __ATOMIC_SEQ_CST) == TAIL_SUSPECT) {
            /* At a message boundary with the pipe empty: whatever a dead writer wrote ended whole. */
            mark_clean(r->q);
        }
    }
}

/* With the read lock, for a writer that took the write lock over from a dead one (so nobody writes): find
   where the dead writer's half message begins and cut the stream there (what of it is still in the pipe is
   skipped later). 1 if settled, 0 if readers must make room in the stash first, -1 with an exception. */
static int
settle_tail(reader *r, PyObject *on_lost)
{
    if (load(r) < 0)
        return -1;
    rstate *s = &r->s;
    for (;;) {
        long n = pipe_has(r->fd);
        if (n < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (s->skip) {
            /* cut already (an earlier settler died after recording it): whatever follows is whole */
            mark_clean(r->q);
            return 1;
        }
        size_t have = s->end - s->start;
        if (s->big_left) {
            /* A dead reader was inside a message: it is cut short too if it runs past everything there is. */
            if (s->big_left > have + (uint64_t)n) {
                s->start = s->end;
                s->big_left = 0;
                s->skip = (uint64_t)n;
                normalize(s);
                commit(r);
                if (n == 0 && count_lost(r, on_lost) < 0)
                    return -1;
                mark_clean(r->q);
                return 1;
            }
            return 0; /* it ends before: readers take it, and then we look again */
        }
        size_t pos = s->start, total = 0;
        int incomplete = 0;
        while (pos < s->end) {
            size_t hlen = 0;
            total = 0;
            int64_t size = pp_parse_frame(r->data + pos, s->end - pos, &hlen);
            if (size == -2)
                return -1;
            if (size < 0) {
                incomplete = 1; /* not even its header: its length is unknown */
                break;
            }
            total = hlen + (size_t)size;
            if (total > s->end - pos) {
                incomplete = 1;
                break;
            }
            pos += total;
        }
        size_t tail = s->end - pos; /* bytes of the first unfinished message held in the stash */
        int cut;
        if (!incomplete)
            cut = 0;
        else if (total == 0 && tail < 12)
            cut = tail + (uint64_t)n < 4 || (tail >= 4 && tail + (uint64_t)n < 12 && r->data[pos] == 0xff);
        else
            cut = tail + (uint64_t)n < total; /* it ends beyond all there is: the dead writer's, cut short */
        if (cut) {
            s->end = (uint32_t)pos;
            s->skip = (uint64_t)n;
            normalize(s);
            commit(r);
            if (n == 0 && count_lost(r, on_lost) < 0)
                return -1;
            mark_clean(r->q);
            return 1;
        }
        if (n == 0) {
            /* everything is whole */
            mark_clean(r->q);
            return 1;
        }
        /* Whole messages, or one whose end may be in the pipe: read on, if there is room. */
        if (s->end == r->cap)
            compact(r);
        size_t room = r->cap - s->end;
        if (room == 0)
            return 0;
        if (exact_read(r, (size_t)n < room ? (size_t)n : room) < 0)
            return -1;
    }
}

/* -- Python interface --------------------------------------------------------------------------------------- */

static int
parse_fd(PyObject *obj, int *fd)
{
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "file descriptor out of range");
        return -1;
    }
    *fd = (int)v;
    return 0;
}

static int
check_sem(PyObject *obj, const char *what)
{
    if (obj == Py_None || psem->is_semaphore(obj))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s must be a procpar_sync._psem.Semaphore or None", what);
    return -1;
}

static int
open_reader(reader *r, int fd, Py_buffer *view)
{
    if (view->len < CTL_SIZE + 64 || ((uintptr_t)view->buf % 8) != 0) {
        PyErr_SetString(PyExc_ValueError, "a queue control buffer is 8-aligned and holds at least 192 bytes");
        return -1;
    }
    r->fd = fd;
    r->q = (qctl *)view->buf;
    r->data = (unsigned char *)view->buf + CTL_SIZE;
    r->cap = (size_t)view->len - CTL_SIZE;
    if (r->cap > UINT32_MAX)
        r->cap = UINT32_MAX;
    return 0;
}

static PyObject *
q_init(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (view.len >= CTL_SIZE)
        memset(view.buf, 0, CTL_SIZE);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
q_get(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* get(fd, control, wlock, timeout, on_lost) */
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "get(fd, control, wlock, timeout, on_lost) takes 5 arguments");
        return NULL;
    }
    int fd;
    if (parse_fd(args[0], &fd) < 0 || check_sem(args[2], "wlock") < 0)
        return NULL;
    int64_t deadline = -1;
    if (args[3] != Py_None) {
        double t = PyFloat_AsDouble(args[3]);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (t != t)
            t = 0;
        if (t < 0)
            t = 0;
        if (t > 1e9)
            t = 1e9;
        deadline = pp_now_ns() + (int64_t)(t * 1e9);
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    reader r;
    PyObject *result = NULL;
    if (open_reader(&r, fd, &view) == 0)
        result = get_message(&r, args[2], deadline, args[4]);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
q_put(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* put(wfd, rfd, control, wlock, rlock, messages, block, on_lost) -> bool; the caller holds wlock */
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "put(wfd, rfd, control, wlock, rlock, messages, block, on_lost) takes 8 "
                        "arguments");
        return NULL;
    }
    int fd, rfd = -1;
    if (parse_fd(args[0], &fd) < 0)
        return NULL;
    if (args[1] != Py_None && parse_fd(args[1], &rfd) < 0)
        return NULL;
    args++; /* the rest as before: control, wlock, rlock, messages, block, on_lost */
    if (check_sem(args[2], "wlock") < 0 || check_sem(args[3], "rlock") < 0)
        return NULL;
    int block = PyObject_IsTrue(args[5]);
    if (block < 0)
        return NULL;
    PyObject *wsem = args[2], *rsem = args[3];
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    reader r; /* over the read end: settling the tail reads what the dead writer left */
    PyObject *result = NULL;
    if (open_reader(&r, rfd, &view) < 0)
        goto done;
    if (wsem != Py_None && psem->abandoned(wsem)) {
        /* We took the lock over from a writer that died: its last message may be half written. */
        __atomic_store_n(&r.q->tail, TAIL_SUSPECT, __ATOMIC_SEQ_CST);
        psem->clear_abandoned(wsem);
    }
    while (__atomic_load_n(&r.q->tail, __ATOMIC_SEQ_CST) == TAIL_SUSPECT) {
        if (!block) {
            result = Py_False;
            Py_INCREF(result);
            goto done;
        }
        /* Settle it ourselves if no reader is at work; else a reader does, and wakes us. */
        int got = rsem == Py_None || rfd < 0 ? 0 : psem->try_acquire(rsem);
        if (got < 0)
            goto done;
        if (got) {
            int settled = settle_tail(&r, args[6]);
            int released = psem->release(rsem);
            if (settled < 0 || released < 0)
                goto done;
            if (settled)
                break;
        }
        int woke;
        Py_BEGIN_ALLOW_THREADS
        woke = pp_futex_sleep(&r.q->tail, TAIL_SUSPECT, PP_SLICE_NS);
        Py_END_ALLOW_THREADS
        (void)woke;
        if (PyErr_CheckSignals() < 0)
            goto done;
    }
    if (pp_write_frames(fd, args[4], 0) < 0)
        goto done;
    result = Py_True;
    Py_INCREF(result);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
q_stashed(PyObject *module, PyObject *arg)
{
    /* Bytes waiting in the stash (read without the lock: a hint). */
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    long n = 0;
    if (view.len >= CTL_SIZE) {
        qctl *q = (qctl *)view.buf;
        rstate s = q->st[__atomic_load_n(&q->current, __ATOMIC_SEQ_CST) & 1];
        n = s.end > s.start ? (long)(s.end - s.start) : 0;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(n);
}

static PyObject *
q_lost(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned long long n = 0;
    if (view.len >= CTL_SIZE)
        n = __atomic_load_n(&((qctl *)view.buf)->lost, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(n);
}

static PyMethodDef q_methods[] = {
    {"init", (PyCFunction)q_init, METH_O, "init(control)\n\nReset a queue's control block (a new queue)."},
    {"get", (PyCFunction)(void (*)(void))q_get, METH_FASTCALL,
     "get(fd, control, wlock, timeout, on_lost) -> bytes | None\n\nOne message, waiting at most `timeout` "
     "seconds (None: forever) for it to begin; None if none began in time. Hold the read lock. `wlock` (the "
     "write lock, or None) is watched for a writer dying in the middle of a message; `on_lost()` is called for "
     "each message lost to a death."},
    {"put", (PyCFunction)(void (*)(void))q_put, METH_FASTCALL,
     "put(wfd, rfd, control, wlock, rlock, messages, block, on_lost) -> bool\n\nWrite the messages to wfd (rfd: "
     "the read end). Hold the write "
     "lock. If the writer before us died mid-message, the tail is settled first (waiting, or False at once "
     "without `block`)."},
    {"stashed", (PyCFunction)q_stashed, METH_O, "stashed(control) -> int\n\nBytes read ahead (a hint)."},
    {"lost", (PyCFunction)q_lost, METH_O, "lost(control) -> int\n\nMessages lost to a death so far."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef q_module = {
    PyModuleDef_HEAD_INIT, "procpar_sync._queue",
    "The death-safe stream under procpar's queues (see the source's opening comment).", -1, q_methods,
};

PyMODINIT_FUNC
PyInit__queue(void)
{
    /* Imported by its full name, not through the package (which may still be initialising). */
    PyObject *psem_module = PyImport_ImportModule("procpar_sync._psem");
    if (psem_module == NULL)
        return NULL;
    PyObject *capsule = PyObject_GetAttrString(psem_module, "_C_API");
    Py_DECREF(psem_module);
    if (capsule == NULL)
        return NULL;
    psem = (pp_psem_api *)PyCapsule_GetPointer(capsule, PP_PSEM_CAPSULE);
    Py_DECREF(capsule);
    if (psem == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&q_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "CONTROL_SIZE", CTL_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
