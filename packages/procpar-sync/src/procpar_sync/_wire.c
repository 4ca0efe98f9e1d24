/*
 * Framed messages on a file descriptor, in C because a queue moves one small message per item and the
 * interpreter's overhead around two read() calls costs more than the calls themselves.
 *
 * The framing is procpar-core's connection framing (and the stdlib's): a big-endian int32 length, or -1
 * followed by a big-endian uint64 length for bodies over 2 GiB, then the body.
 *
 * Interruption: a signal before the first byte of a message is read lets the handler raise (Ctrl-C on an
 * idle get()); once a message has started it is read to its end, so a handler cannot leave the stream in the
 * middle of a frame. Writes retry on EINTR for the same reason. The GIL is released around each syscall.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "_frames.h"

/* Read exactly n bytes. Returns 0 on success, 1 on EOF before any byte (if eof_ok), -1 with an exception. */
static int
read_exact(int fd, char *buf, size_t n, int interruptible, int eof_ok)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r;
        Py_BEGIN_ALLOW_THREADS
        r = read(fd, buf + got, n - got);
        Py_END_ALLOW_THREADS
        if (r > 0) {
            got += (size_t)r;
            interruptible = 0;
            continue;
        }
        if (r == 0) {
            if (got == 0 && eof_ok) {
                PyErr_SetNone(PyExc_EOFError);
                return 1;
            }
            PyErr_SetString(PyExc_OSError, "got end of file during message");
            return -1;
        }
        if (errno == EINTR) {
            if (interruptible && PyErr_CheckSignals() < 0)
                return -1;
            continue;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static int
fd_from(PyObject *obj)
{
    long fd = PyLong_AsLong(obj);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "file descriptor out of range");
        return -1;
    }
    return (int)fd;
}

static PyObject *
wire_read_message(PyObject *module, PyObject *arg)
{
    int fd = fd_from(arg);
    if (fd < 0)
        return NULL;
    unsigned char header[8];
    int rc = read_exact(fd, (char *)header, 4, 1, 1);
    if (rc != 0)
        return NULL;
    int32_t short_size = (int32_t)(((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) |
                                   ((uint32_t)header[2] << 8) | (uint32_t)header[3]);
    uint64_t size;
    if (short_size >= 0) {
        size = (uint64_t)short_size;
    }
    else if (short_size == -1) {
        if (read_exact(fd, (char *)header, 8, 0, 0) != 0)
            return NULL;
        size = 0;
        for (int i = 0; i < 8; i++)
            size = (size << 8) | header[i];
        if (size > (uint64_t)PY_SSIZE_T_MAX)
            return PyErr_Format(PyExc_OSError, "invalid message length %llu received", (unsigned long long)size);
    }
    else {
        return PyErr_Format(PyExc_OSError,
                            "invalid message length %d received: the peer is not speaking this protocol",
                            (int)short_size);
    }
    PyObject *body = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (body == NULL)
        return NULL;
    if (size && read_exact(fd, PyBytes_AS_STRING(body), (size_t)size, 0, 0) != 0) {
        Py_DECREF(body);
        return NULL;
    }
    return body;
}

/*
 * The stash: bytes a consumer pulled out of the pipe beyond the message it wanted, kept in memory shared by
 * every consumer of the queue (the caller holds the queue's read lock). Reading up to a stash-full at a time
 * turns two read() calls per message into one per many. Layout: uint32 start, uint32 end, then the data.
 */
typedef struct {
    uint32_t start;
    uint32_t end;
} stash_header;

/* The next message if the stash holds all of it (no I/O): a new reference, or NULL with *failed set when
 * the stash is corrupt or the frame bad (exception set), or NULL with *failed clear when it is incomplete. */
static PyObject *
stash_take(stash_header *hdr, unsigned char *data, size_t cap, int *failed)
{
    *failed = 0;
    size_t start = hdr->start, end = hdr->end, hlen = 0;
    if (start > end || end > cap) {
        PyErr_SetString(PyExc_OSError, "the queue's shared read buffer is corrupt");
        *failed = 1;
        return NULL;
    }
    int64_t size = pp_parse_frame(data + start, end - start, &hlen);
    if (size == -2) {
        *failed = 1;
        return NULL;
    }
    if (size < 0 || end - start - hlen < (uint64_t)size)
        return NULL;
    PyObject *result = PyBytes_FromStringAndSize((const char *)data + start + hlen, (Py_ssize_t)size);
    if (result == NULL) {
        *failed = 1;
        return NULL;
    }
    start += hlen + (size_t)size;
    if (start == end)
        start = end = 0;
    hdr->start = (uint32_t)start;
    hdr->end = (uint32_t)end;
    return result;
}

/* One message: from the stash, refilled from fd (blocking) until it holds a whole one. */
static PyObject *
stash_read(int fd, stash_header *hdr, unsigned char *data, size_t cap, int socket_first)
{
    for (;;) {
        int failed;
        PyObject *result = stash_take(hdr, data, cap, &failed);
        if (result != NULL || failed)
            return result;
        size_t start = hdr->start, end = hdr->end;
        size_t avail = end - start, hlen = 0;
        int64_t size = pp_parse_frame(data + start, avail, &hlen);
        if (size >= 0 && hlen + (uint64_t)size > cap) {
            /* Larger than the stash: take the part already stashed, read the rest straight into the result. */
            size_t have = avail - hlen;
            result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
            if (result == NULL)
                return NULL;
            memcpy(PyBytes_AS_STRING(result), data + start + hlen, have);
            hdr->start = hdr->end = 0;
            if (read_exact(fd, PyBytes_AS_STRING(result) + have, (size_t)size - have, 0, 0) != 0)
                Py_CLEAR(result);
            return result;
        }
        if (start > 0) {
            memmove(data, data + start, avail);
            hdr->start = 0;
            hdr->end = (uint32_t)avail;
            end = avail;
        }
        /* socket_first: what is already there is taken without releasing the GIL (handing it to another
         * thread and waiting to get it back costs more than the read); only an empty socket is waited on. */
        ssize_t r = -1;
        errno = EAGAIN;
        if (socket_first)
            r = recv(fd, data + end, cap - end, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTSOCK)) {
            Py_BEGIN_ALLOW_THREADS
            r = read(fd, data + end, cap - end);
            Py_END_ALLOW_THREADS
        }
        if (r > 0) {
            hdr->end = (uint32_t)(end + (size_t)r);
            continue;
        }
        if (r == 0) {
            if (avail == 0)
                PyErr_SetNone(PyExc_EOFError);
            else
                PyErr_SetString(PyExc_OSError, "got end of file during message");
            return NULL;
        }
        if (errno == EINTR) {
            /* Only between messages may a signal handler raise: mid-message we keep reading. */
            if (avail == 0 && PyErr_CheckSignals() < 0)
                return NULL;
            continue;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
}

/* The arguments (fd, x[, socket_first]) of the readers and of write_messages: 0, or -1 with an exception. */
static int
fd_and_flag(const char *usage, PyObject *const *args, Py_ssize_t nargs, int *fd, int *socket_first)
{
    if (nargs != 2 && nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s takes 2 or 3 arguments", usage);
        return -1;
    }
    *fd = fd_from(args[0]);
    if (*fd < 0)
        return -1;
    *socket_first = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    return *socket_first < 0 ? -1 : 0;
}

/* Parse (fd, stash[, socket_first]) and run `body` over the stash. */
static PyObject *
with_stash(const char *name, PyObject *const *args, Py_ssize_t nargs,
           PyObject *(*body)(int, stash_header *, unsigned char *, size_t, int))
{
    int fd, socket_first;
    if (fd_and_flag(name, args, nargs, &fd, &socket_first) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    PyObject *result = NULL;
    if (view.len < (Py_ssize_t)sizeof(stash_header) + 16 || ((uintptr_t)view.buf % 4) != 0)
        PyErr_SetString(PyExc_ValueError, "the stash must be a 4-aligned writable buffer of at least 24 bytes");
    else
        result = body(fd, (stash_header *)view.buf, (unsigned char *)view.buf + sizeof(stash_header),
                      (size_t)view.len - sizeof(stash_header), socket_first);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
wire_read_message_stashed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return with_stash("read_message_stashed(fd, stash[, socket_first])", args, nargs, stash_read);
}

/* One message as stash_read, then every other whole message the stash holds, without more I/O. */
static PyObject *
stash_read_all(int fd, stash_header *hdr, unsigned char *data, size_t cap, int socket_first)
{
    PyObject *first = stash_read(fd, hdr, data, cap, socket_first);
    if (first == NULL)
        return NULL;
    PyObject *messages = PyList_New(1);
    if (messages == NULL) {
        Py_DECREF(first);
        return NULL;
    }
    PyList_SET_ITEM(messages, 0, first);
    for (;;) {
        int failed;
        PyObject *next = stash_take(hdr, data, cap, &failed);
        if (next == NULL) {
            if (!failed)
                return messages;
            /* A bad frame after good ones: hand over the good ones; the next read raises about it. */
            PyErr_Clear();
            return messages;
        }
        int appended = PyList_Append(messages, next);
        Py_DECREF(next);
        if (appended < 0) {
            Py_DECREF(messages);
            return NULL;
        }
    }
}

static PyObject *
wire_read_messages_stashed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return with_stash("read_messages_stashed(fd, stash[, socket_first])", args, nargs, stash_read_all);
}

static PyObject *
wire_has_message(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int whole = 0;
    if (view.len >= (Py_ssize_t)sizeof(stash_header)) {
        stash_header *hdr = (stash_header *)view.buf;
        size_t start = hdr->start, end = hdr->end, hlen = 0;
        size_t cap = (size_t)view.len - sizeof(stash_header);
        if (start <= end && end <= cap) {
            int64_t size = pp_parse_frame((unsigned char *)view.buf + sizeof(stash_header) + start, end - start, &hlen);
            if (size == -2)
                whole = 1; /* a bad frame: let the reader raise about it */
            else if (size >= 0 && end - start - hlen >= (uint64_t)size)
                whole = 1;
        }
    }
    PyErr_Clear();
    PyBuffer_Release(&view);
    return PyBool_FromLong(whole);
}

static PyObject *
wire_stashed(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    long n = 0;
    if (view.len >= (Py_ssize_t)sizeof(stash_header)) {
        stash_header *hdr = (stash_header *)view.buf;
        uint32_t start = __atomic_load_n(&hdr->start, __ATOMIC_RELAXED);
        uint32_t end = __atomic_load_n(&hdr->end, __ATOMIC_RELAXED);
        n = end > start ? (long)(end - start) : 0;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(n);
}

static PyObject *
wire_write_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, socket_first;
    if (fd_and_flag("write_messages(fd, messages[, socket_first])", args, nargs, &fd, &socket_first) < 0)
        return NULL;
    if (pp_write_frames(fd, args[1], socket_first) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
wire_unread(PyObject *module, PyObject *arg)
{
    int fd = fd_from(arg);
    if (fd < 0)
        return NULL;
    int pending = 0;
    if (ioctl(fd, FIONREAD, &pending) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(pending);
}

static long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Waiting in poll() costs a sleep and a wake-up on each side of a round trip (tens of microseconds on a
 * virtual machine); a peer that answers within a few microseconds is caught sooner by looking again and
 * again. The GIL is released throughout, and the CPU is offered to any other runnable thread between looks,
 * so a spinning waiter slows nobody down on a busy machine more than the budget it was given.
 */
static PyObject *
wire_spin_readable(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "spin_readable(fd, seconds) takes exactly 2 arguments");
        return NULL;
    }
    int fd = fd_from(args[0]);
    if (fd < 0)
        return NULL;
    double budget = PyFloat_AsDouble(args[1]);
    if (budget == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(budget >= 0.0) || budget > 1.0) {
        PyErr_SetString(PyExc_ValueError, "spin_readable: seconds must be between 0 and 1");
        return NULL;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = 0;
    Py_BEGIN_ALLOW_THREADS
    long long deadline = now_ns() + (long long)(budget * 1e9);
    for (;;) {
        /* An error or a hang-up counts as readable: the caller's read reports it. */
        if (poll(&p, 1, 0) != 0) {
            ready = 1;
            break;
        }
        if (now_ns() >= deadline)
            break;
        sched_yield();
    }
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ready);
}

/*
 * Lists of numbers, the most common result of a map, cost far less as raw 8-byte values than as a pickle
 * (no opcode per item on either side). Native byte order: both ends run on this machine.
 */
static PyObject *
wire_pack_numbers(PyObject *module, PyObject *arg)
{
    if (!PyList_CheckExact(arg) || PyList_GET_SIZE(arg) == 0)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(arg);
    PyObject *first = PyList_GET_ITEM(arg, 0);
    char tag;
    if (PyLong_CheckExact(first))
        tag = 'q';
    else if (PyFloat_CheckExact(first))
        tag = 'd';
    else
        Py_RETURN_NONE;
    if (n > (PY_SSIZE_T_MAX - 1) / 8)
        Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, 1 + 8 * n);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    p[0] = tag;
    p++;
    for (Py_ssize_t i = 0; i < n; i++, p += 8) {
        PyObject *item = PyList_GET_ITEM(arg, i);
        if (tag == 'q') {
            /* Exact ints only: a bool or an IntEnum must come back as itself. */
            if (!PyLong_CheckExact(item))
                goto not_numbers;
            int overflow = 0;
            long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (overflow || (v == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                goto not_numbers;
            }
            memcpy(p, &v, 8);
        }
        else {
            if (!PyFloat_CheckExact(item))
                goto not_numbers;
            double d = PyFloat_AS_DOUBLE(item);
            memcpy(p, &d, 8);
        }
    }
    return out;
not_numbers:
    Py_DECREF(out);
    Py_RETURN_NONE;
}

static PyObject *
wire_unpack_numbers(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *list = NULL;
    const char *p = (const char *)view.buf;
    if (view.len < 1 || (view.len - 1) % 8 != 0 || (p[0] != 'q' && p[0] != 'd')) {
        PyErr_SetString(PyExc_ValueError, "not a packed list of numbers");
        goto done;
    }
    char tag = p[0];
    Py_ssize_t n = (view.len - 1) / 8;
    p++;
    list = PyList_New(n);
    if (list == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++, p += 8) {
        PyObject *item;
        if (tag == 'q') {
            long long v;
            memcpy(&v, p, 8);
            item = PyLong_FromLongLong(v);
        }
        else {
            double d;
            memcpy(&d, p, 8);
            item = PyFloat_FromDouble(d);
        }
        if (item == NULL) {
            Py_CLEAR(list);
            goto done;
        }
        PyList_SET_ITEM(list, i, item);
    }
done:
    PyBuffer_Release(&view);
    return list;
}

static PyMethodDef wire_methods[] = {
    {"read_message_stashed", (PyCFunction)(void (*)(void))wire_read_message_stashed, METH_FASTCALL,
     "read_message_stashed(fd, stash, socket_first=False) -> bytes\n\nRead one framed message, first from the "
     "shared stash, refilling it from fd with one read() when it holds no whole message. Hold the queue's read "
     "lock. socket_first: fd is a socket; take what it holds without releasing the GIL."},
    {"read_messages_stashed", (PyCFunction)(void (*)(void))wire_read_messages_stashed, METH_FASTCALL,
     "read_messages_stashed(fd, stash, socket_first=False) -> list[bytes]\n\nOne message as read_message_stashed, "
     "then every other whole message the stash holds after that read."},
    {"has_message", (PyCFunction)wire_has_message, METH_O,
     "has_message(stash) -> bool\n\nWhether the stash holds a whole message (read it without touching the fd)."},
    {"stashed", (PyCFunction)wire_stashed, METH_O,
     "stashed(stash) -> int\n\nHow many bytes the stash holds (without the lock: a hint)."},
    {"unread", (PyCFunction)wire_unread, METH_O,
     "unread(fd) -> int\n\nHow many bytes wait to be read on the pipe or socket fd (FIONREAD)."},
    {"read_message", (PyCFunction)wire_read_message, METH_O,
     "read_message(fd) -> bytes\n\nRead one framed message; EOFError at end of file before a message."},
    {"write_messages", (PyCFunction)(void (*)(void))wire_write_messages, METH_FASTCALL,
     "write_messages(fd, messages, socket_first=False)\n\nWrite each bytes object as one framed message, batched "
     "into writev calls. socket_first: fd is a socket; write what fits without releasing the GIL."},
    {"spin_readable", (PyCFunction)(void (*)(void))wire_spin_readable, METH_FASTCALL,
     "spin_readable(fd, seconds) -> bool\n\nWhether fd became readable within seconds, looking without sleeping "
     "(the GIL released, the CPU offered to other threads between looks)."},
    {"pack_numbers", (PyCFunction)wire_pack_numbers, METH_O,
     "pack_numbers(list) -> bytes | None\n\nA non-empty list of exact ints (each fitting in 64 bits) or of exact "
     "floats as a tag byte and native 8-byte values; None for any other list or object."},
    {"unpack_numbers", (PyCFunction)wire_unpack_numbers, METH_O,
     "unpack_numbers(buffer) -> list\n\nThe list pack_numbers() packed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "procpar_sync._wire",
    "Framed messages on file descriptors (procpar-core's connection framing).", -1, wire_methods,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    return PyModule_Create(&wire_module);
}
