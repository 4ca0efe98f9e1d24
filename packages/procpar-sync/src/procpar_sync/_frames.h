/*
 * The connection framing (procpar-core's and the stdlib's): a big-endian int32 length, or -1 followed by a
 * big-endian uint64 length for bodies of 2 GiB and more, then the body. Shared by _wire and _queue.
 */
#ifndef PROCPAR_SYNC_FRAMES_H
#define PROCPAR_SYNC_FRAMES_H

#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define PP_MAX_SHORT 0x7FFFFFFFLL
/* One writev carries at most this many messages (two iovecs each); IOV_MAX is 1024 on Linux. */
#define PP_BATCH 256

/* -1: need more bytes; -2: bad length (exception set); else the body size, *hlen its header's size */
static inline int64_t
pp_parse_frame(const unsigned char *p, size_t avail, size_t *hlen)
{
    if (avail < 4)
        return -1;
    int32_t s = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
    if (s >= 0) {
        *hlen = 4;
        return s;
    }
    if (s != -1) {
        PyErr_Format(PyExc_OSError, "invalid message length %d received: the peer is not speaking this protocol",
                     (int)s);
        return -2;
    }
    if (avail < 12)
        return -1;
    uint64_t size = 0;
    for (int i = 4; i < 12; i++)
        size = (size << 8) | p[i];
    if (size > (uint64_t)PY_SSIZE_T_MAX) {
        PyErr_Format(PyExc_OSError, "invalid message length %llu received", (unsigned long long)size);
        return -2;
    }
    *hlen = 12;
    return (int64_t)size;
}

static inline size_t
pp_put_header(unsigned char *out, Py_ssize_t size)
{
    uint64_t n = (uint64_t)size;
    if ((long long)size <= PP_MAX_SHORT) {
        for (int i = 3; i >= 0; i--, n >>= 8)
            out[i] = (unsigned char)(n & 0xff);
        return 4;
    }
    memset(out, 0xff, 4);
    for (int i = 11; i >= 4; i--, n >>= 8)
        out[i] = (unsigned char)(n & 0xff);
    return 12;
}

/* writev every iovec completely, advancing over partial writes. 0 on success, -1 with an exception.
   socket_first: a socket with room takes the bytes at once, without releasing the GIL. */
static inline int
pp_writev_all(int fd, struct iovec *iov, int count, int socket_first)
{
    int try_now = socket_first;
    while (count > 0) {
        ssize_t w = -1;
        if (try_now) {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)(count > IOV_MAX ? IOV_MAX : count)};
            w = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0 && errno != EINTR)
                try_now = 0;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTSOCK))
                continue;
        }
        else {
            Py_BEGIN_ALLOW_THREADS
            w = writev(fd, iov, count > IOV_MAX ? IOV_MAX : count);
            Py_END_ALLOW_THREADS
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        size_t left = (size_t)w;
        while (count > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Write each bytes object of the sequence `seq` as one framed message. 0, or -1 with an exception. */
static inline int
pp_write_frames(int fd, PyObject *messages, int socket_first)
{
    PyObject *seq = PySequence_Fast(messages, "write_messages() needs a sequence of bytes");
    if (seq == NULL)
        return -1;
    Py_ssize_t total = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    struct iovec iov[2 * PP_BATCH];
    unsigned char headers[PP_BATCH][12];
    for (Py_ssize_t start = 0; start < total; start += PP_BATCH) {
        Py_ssize_t end = start + PP_BATCH < total ? start + PP_BATCH : total;
        int count = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            PyObject *item = items[i];
            if (!PyBytes_Check(item)) {
                PyErr_Format(PyExc_TypeError, "write_messages() needs bytes, not %.100s", Py_TYPE(item)->tp_name);
                Py_DECREF(seq);
                return -1;
            }
            Py_ssize_t size = PyBytes_GET_SIZE(item);
            iov[count].iov_base = headers[i - start];
            iov[count].iov_len = pp_put_header(headers[i - start], size);
            count++;
            if (size) {
                iov[count].iov_base = PyBytes_AS_STRING(item);
                iov[count].iov_len = (size_t)size;
                count++;
            }
        }
        /* The bytes objects stay alive while the GIL is released: `seq` holds them. */
        if (pp_writev_all(fd, iov, count, socket_first) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

#endif
