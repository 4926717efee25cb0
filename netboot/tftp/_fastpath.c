/*
 * The data phase of one TFTP read transfer in C, with the GIL released.
 *
 * Why: a lock-step transfer (windowsize 1: PXE ROMs, pxelinux, grub) costs one ACK round
 * trip per block, and the server's share of that trip is its CPU per block. In CPython
 * that is ~16-22 us (receive, decode, session step, send); tftpd-hpa, dnsmasq and atftpd
 * spend 9-13 us, almost all of it in the kernel. This loop makes two system calls per
 * lock-step block: one blocking recvfrom (with a receive timeout, so no poll first) and
 * one sendmsg, reading ahead 64 KiB per pread.
 *
 * It implements exactly the protocol of netboot/tftp/session.py + engine.py (the
 * reference; tests/unit/test_tftp_fastpath.py runs both on the same packet sequences):
 * OACK then ACK 0 (RFC 2347), lock-step or RFC 7440 windows (an ACK inside the window
 * restarts it after that block; only timer expiry resends), 16-bit block numbers wrapping
 * from 65535 to 0, duplicate/stale ACKs ignored (Sorcerer's Apprentice), a zero-length
 * last block when the size is a multiple of blksize, error 5 to a foreign TID, error 4 for
 * a request/DATA/OACK from the client, retransmission on the session's backoff schedule,
 * the transfer lifetime cap. Windows go out as one UDP GSO sendmsg when the kernel can
 * (Linux 4.18+), else one sendmsg per block.
 *
 * Connected sockets: a UDP socket connected to the client skips a route lookup on every
 * send and every receive (early demux); that is worth ~3% of a lock-step round trip,
 * which tftpd-hpa has by connecting too. But the kernel then drops datagrams from other
 * ports (RFC 1350 section 4 asks for error 5 to them). So the caller may also pass a
 * "stranger" socket: unconnected, on the same address and port through SO_REUSEPORT,
 * which the kernel gives every datagram not from the client (connected sockets win the
 * lookup for their 4-tuple). The loop drains it at each receive tick and every
 * STRANGER_EVERY packets and answers each datagram with error 5 from that port.
 *
 * serve() blocks until the transfer ends or the caller sets its one-byte `stop` buffer to
 * non-zero (seen at the next packet or within one receive tick, TICK_MAX); it never
 * closes the descriptors it is given. The socket is switched to blocking mode with a
 * receive timeout; sends stay non-blocking (MSG_DONTWAIT), so a full socket buffer still
 * drops the rest of a window for the retransmit timer to recover, as on the wire.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MAX_TIMEOUTS 32
#define READ_AHEAD (64 * 1024)
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES (0xFFFF - 8 - 40)
#define RECV_SIZE 2048
#define TICK_MAX 0.1 /* s: the longest a receive waits before the timers are looked at */
#define TICK_MIN 0.005
#define STRANGER_EVERY 64 /* packets between looks at the stranger socket */

enum state { ST_OACK_SENT, ST_SENDING, ST_DONE, ST_FAILED, ST_ABORTED };

struct xfer {
    int sock, file;
    const volatile unsigned char *stop; /* set non-zero by another thread to end it */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint64_t blksize, windowsize;
    double timeouts[MAX_TIMEOUTS];
    int ntimeouts;
    double max_seconds;
    const unsigned char *oack;
    Py_ssize_t oack_len;
    int use_gso;
    int connected;   /* sock is connected to peer: send without an address */
    int stranger;    /* unconnected socket on the same port, or -1 */
    unsigned since_stranger;
    /* read-ahead buffer: [base, base + len) of the file */
    unsigned char *buf;
    size_t cap, len;
    uint64_t base;
    int at_eof;
    /* protocol: absolute block numbers, 0 = none */
    uint64_t acked, sent_end, last;
    size_t last_len;
    int tries;
    enum state state;
    char reason[512];
    /* counters */
    uint64_t bytes_sent, retransmits, syscalls, dropped, errors_sent, malformed;
    uint64_t send_failures, recv_failures;
    int last_errno;
};

static const int DROP_ERRNOS[] = {EAGAIN, EWOULDBLOCK, ENOBUFS};
static const int NO_GSO_ERRNOS[] = {EINVAL, EIO, ENOPROTOOPT, EMSGSIZE, EOPNOTSUPP};

static int errno_in(int err, const int *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == err) return 1;
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double current_wait(const struct xfer *x) {
    int i = x->tries < x->ntimeouts - 1 ? x->tries : x->ntimeouts - 1;
    return x->timeouts[i];
}

static int same_peer(const struct xfer *x, const struct sockaddr_storage *from) {
    if (from->ss_family != x->peer.ss_family) return 0;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)from, *b = (const void *)&x->peer;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)from, *b = (const void *)&x->peer;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return 0;
}

/* One packet that is not DATA (OACK, ERROR): sendto, as engine._send does. */
static int send_plain_from(struct xfer *x, int fd, const void *pkt, size_t n,
                           const struct sockaddr_storage *to, socklen_t to_len) {
    ssize_t r = (fd == x->sock && x->connected && to == &x->peer)
                    ? send(fd, pkt, n, MSG_DONTWAIT)
                    : sendto(fd, pkt, n, MSG_DONTWAIT, (const struct sockaddr *)to, to_len);
    if (r < 0) {
        if (errno != EAGAIN && errno != ENOBUFS) {
            x->send_failures++;
            x->last_errno = errno;
        }
        return -1;
    }
    return 0;
}

static void send_error_from(struct xfer *x, int fd, int code, const char *message,
                            const struct sockaddr_storage *to, socklen_t to_len) {
    unsigned char pkt[256];
    size_t mlen = strlen(message);
    if (mlen > sizeof pkt - 5) mlen = sizeof pkt - 5;
    pkt[0] = 0;
    pkt[1] = 5;
    pkt[2] = (unsigned char)(code >> 8);
    pkt[3] = (unsigned char)code;
    memcpy(pkt + 4, message, mlen);
    pkt[4 + mlen] = 0;
    if (send_plain_from(x, fd, pkt, 5 + mlen, to, to_len) == 0) x->errors_sent++;
}

static void send_error(struct xfer *x, int code, const char *message,
                       const struct sockaddr_storage *to, socklen_t to_len) {
    send_error_from(x, x->sock, code, message, to, to_len);
}

static void finish(struct xfer *x, enum state st, const char *reason) {
    x->state = st;
    snprintf(x->reason, sizeof x->reason, "%s", reason);
}

/* ReadAhead: `length` octets at `offset` (fewer only at end of file). */
static ssize_t read_at(struct xfer *x, uint64_t offset, size_t length, const unsigned char **out) {
    if (offset >= x->base) {
        uint64_t start = offset - x->base;
        if (start + length <= x->len || x->at_eof) {
            size_t have = start < x->len ? x->len - (size_t)start : 0;
            *out = x->buf + (start < x->len ? start : x->len);
            return (ssize_t)(length < have ? length : have);
        }
    }
    size_t want = length > READ_AHEAD ? length : READ_AHEAD;
    if (want > x->cap) want = x->cap;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(x->file, x->buf + got, want - got, (off_t)(offset + got));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    x->base = offset;
    x->len = got;
    x->at_eof = got < want;
    *out = x->buf;
    return (ssize_t)(length < got ? length : got);
}

static void header(unsigned char *h, uint64_t block) {
    h[0] = 0;
    h[1] = 3;
    h[2] = (unsigned char)((block >> 8) & 0xFF);
    h[3] = (unsigned char)(block & 0xFF);
}

/* 1: sent; 0: socket buffer full (rest of the window dropped); -1: other error. */
static int send_one(struct xfer *x, uint64_t block, const unsigned char *payload, size_t n) {
    unsigned char h[4];
    struct iovec iov[2] = {{h, 4}, {(void *)payload, n}};
    struct msghdr msg = {0};
    header(h, block);
    msg.msg_name = x->connected ? NULL : &x->peer;
    msg.msg_namelen = x->connected ? 0 : x->peer_len;
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    x->syscalls++;
    if (sendmsg(x->sock, &msg, MSG_DONTWAIT) < 0) {
        if (errno_in(errno, DROP_ERRNOS, 3)) {
            x->dropped++;
            return 0;
        }
        x->send_failures++;
        x->last_errno = errno;
        return -1;
    }
    return 1;
}

/* Up to one GSO batch of blocks [first, first + count): number sent, 0 if GSO is unusable,
 * -1 if the socket buffer is full, -2 on another error. */
static int send_gso(struct xfer *x, uint64_t first, const unsigned char *data, size_t total,
                    int count) {
    size_t segment = 4 + x->blksize;
    int limit = GSO_MAX_SEGMENTS;
    if ((size_t)limit > GSO_MAX_BYTES / segment) limit = (int)(GSO_MAX_BYTES / segment);
    if (count > limit) count = limit;
    if (count < 2) return 0;
    unsigned char headers[GSO_MAX_SEGMENTS][4];
    struct iovec iov[2 * GSO_MAX_SEGMENTS];
    for (int i = 0; i < count; i++) {
        size_t at = (size_t)i * x->blksize;
        size_t n = total - at < x->blksize ? total - at : x->blksize;
        header(headers[i], first + (uint64_t)i);
        iov[2 * i].iov_base = headers[i];
        iov[2 * i].iov_len = 4;
        iov[2 * i + 1].iov_base = (void *)(data + at);
        iov[2 * i + 1].iov_len = n;
    }
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {0};
    msg.msg_name = x->connected ? NULL : &x->peer;
    msg.msg_namelen = x->connected ? 0 : x->peer_len;
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)(2 * count);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)segment;
    memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    x->syscalls++;
    if (sendmsg(x->sock, &msg, MSG_DONTWAIT) < 0) {
        if (errno_in(errno, DROP_ERRNOS, 3)) {
            x->dropped++;
            return -1;
        }
        if (errno_in(errno, NO_GSO_ERRNOS, 5)) {
            x->use_gso = 0; /* this kernel or route cannot segment: per block from now */
            return 0;
        }
        x->send_failures++;
        x->last_errno = errno;
        return -2;
    }
    return count;
}

/* session._send_window + udp.DataSender.send */
static void send_window(struct xfer *x) {
    uint64_t count = x->windowsize;
    if (x->last && x->last - x->acked < count) count = x->last - x->acked;
    const unsigned char *data;
    ssize_t got = read_at(x, x->acked * x->blksize, (size_t)(count * x->blksize), &data);
    if (got < 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "read error at block %llu: [Errno %d] %s",
                 (unsigned long long)(x->acked + 1), errno, strerror(errno));
        send_error(x, 0, "read error", &x->peer, x->peer_len);
        finish(x, ST_FAILED, reason);
        return;
    }
    size_t total = (size_t)got;
    x->bytes_sent += total;
    /* Blocks in this window: full ones, then the short one if the data ends in it. */
    int blocks = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t block = x->acked + 1 + i;
        size_t at = (size_t)(i * x->blksize);
        size_t n = at < total ? total - at : 0;
        if (n > x->blksize) n = (size_t)x->blksize;
        x->sent_end = block;
        blocks++;
        if (n < x->blksize) {
            x->last = block;
            x->last_len = n;
            break;
        }
    }
    uint64_t first = x->acked + 1;
    int done = 0;
    while (done < blocks) {
        size_t at = (size_t)done * x->blksize;
        if (x->use_gso && blocks - done > 1) {
            int sent = send_gso(x, first + (uint64_t)done, data + at, total - at, blocks - done);
            if (sent > 0) {
                done += sent;
                continue;
            }
            if (sent < 0) return; /* buffer full or error: the retransmit timer recovers */
        }
        size_t n = total - at < x->blksize ? total - at : (size_t)x->blksize;
        if (send_one(x, first + (uint64_t)done, data + at, n) <= 0) return;
        done++;
    }
}

static void send_oack(struct xfer *x) {
    send_plain_from(x, x->sock, x->oack, (size_t)x->oack_len, &x->peer, x->peer_len);
}

/* session.receive for one datagram from the peer; returns 1 if it made progress (sent). */
static int on_packet(struct xfer *x, const unsigned char *p, size_t n) {
    if (n == 4 && p[0] == 0 && p[1] == 4) {
        uint64_t wire = ((uint64_t)p[2] << 8) | p[3];
        if (x->state == ST_OACK_SENT) {
            if (wire != 0) return 0; /* RFC 2347: only ACK 0 answers an OACK */
            x->state = ST_SENDING;
            x->tries = 0;
            send_window(x);
            return 1;
        }
        uint64_t block = x->acked + 1 + ((wire - x->acked - 1) & 0xFFFF);
        if (block > x->sent_end) return 0; /* duplicate or stale */
        x->acked = block;
        x->tries = 0;
        if (block == x->last) {
            finish(x, ST_DONE, "complete");
            return 1;
        }
        send_window(x);
        return 1;
    }
    if (n < 2) {
        x->malformed++;
        return 0;
    }
    int opcode = (p[0] << 8) | p[1];
    const char *kind = NULL;
    switch (opcode) {
    case 1:
        kind = "ReadRequest";
        break;
    case 2:
        kind = "WriteRequest";
        break;
    case 3:
        if (n < 4) {
            x->malformed++;
            return 0;
        }
        kind = "Data";
        break;
    case 5: {
        const unsigned char *nul = n > 4 ? memchr(p + 4, 0, n - 4) : NULL;
        if (nul == NULL || (size_t)(nul - p) != n - 1) {
            x->malformed++; /* short, unterminated, or trailing bytes */
            return 0;
        }
        /* The message is passed up raw; Python decodes it (surrogateescape, as codec). */
        x->state = ST_ABORTED;
        x->reason[0] = 0;
        return 0;
    }
    case 6:
        kind = "OptionAck";
        break;
    default:
        x->malformed++; /* ACK of the wrong length, unknown opcode */
        return 0;
    }
    char message[64], reason[96];
    snprintf(message, sizeof message, "unexpected %s", kind);
    snprintf(reason, sizeof reason, "unexpected %s from client", kind);
    send_error(x, 4, message, &x->peer, x->peer_len);
    finish(x, ST_FAILED, reason);
    return 1;
}

/* Error 5 to every datagram waiting on the stranger socket (see the top of the file). */
static void answer_strangers(struct xfer *x) {
    unsigned char junk[RECV_SIZE];
    x->since_stranger = 0;
    if (x->stranger < 0) return;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(x->stranger, junk, sizeof junk, MSG_DONTWAIT,
                             (struct sockaddr *)&from, &from_len);
        if (n < 0) return;
        send_error_from(x, x->stranger, 5, "unknown transfer ID", &from, from_len);
    }
}

/* Blocking receives that give up after `tick` s, so the timers and the stop flag are
 * looked at without a poll per packet. */
static int set_receive_tick(struct xfer *x) {
    double tick = x->timeouts[0] / 4;
    if (tick > TICK_MAX) tick = TICK_MAX;
    if (tick < TICK_MIN) tick = TICK_MIN;
    struct timeval tv = {(time_t)tick, (suseconds_t)((tick - (double)(time_t)tick) * 1e6)};
    int flags = fcntl(x->sock, F_GETFL);
    if (flags < 0 || fcntl(x->sock, F_SETFL, flags & ~O_NONBLOCK) < 0) return -1;
    return setsockopt(x->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void run(struct xfer *x, unsigned char *client_error, size_t *client_error_len) {
    double started = now(), deadline;
    unsigned char pkt[RECV_SIZE];
    if (set_receive_tick(x) < 0) {
        x->send_failures++;
        x->last_errno = errno;
        send_error(x, 0, "internal error", &x->peer, x->peer_len);
        finish(x, ST_FAILED, "cannot set the receive timeout");
        return;
    }
    if (x->oack_len > 0) {
        x->state = ST_OACK_SENT;
        send_oack(x);
    } else {
        x->state = ST_SENDING;
        send_window(x);
    }
    deadline = started + current_wait(x);
    while (x->state == ST_OACK_SENT || x->state == ST_SENDING) {
        double t = now();
        if (t - started >= x->max_seconds) {
            send_error(x, 0, "transfer took too long", &x->peer, x->peer_len);
            finish(x, ST_FAILED, "transfer lifetime exceeded");
            break;
        }
        if (t >= deadline) {
            x->tries++;
            x->retransmits++;
            if (x->tries >= x->ntimeouts) {
                char reason[64];
                snprintf(reason, sizeof reason, "no ACK after %d timeouts", x->tries);
                send_error(x, 0, "timed out", &x->peer, x->peer_len);
                finish(x, ST_FAILED, reason);
                break;
            }
            if (x->state == ST_OACK_SENT)
                send_oack(x);
            else
                send_window(x); /* RFC 7440 section 4: resend the whole window */
            deadline = t + current_wait(x);
            continue;
        }
        if (__atomic_load_n(x->stop, __ATOMIC_RELAXED)) {
            finish(x, ST_FAILED, "server stopped");
            break;
        }
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(x->sock, pkt, sizeof pkt, 0, (struct sockaddr *)&from, &from_len);
        if (++x->since_stranger >= STRANGER_EVERY) answer_strangers(x);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                answer_strangers(x);
                continue; /* the receive tick: look at the timers and the stop flag */
            }
            if (++x->recv_failures >= 100) { /* never spin on a broken socket */
                char reason[160];
                snprintf(reason, sizeof reason, "receive failed: %s", strerror(errno));
                x->last_errno = errno;
                finish(x, ST_FAILED, reason);
            }
            continue;
        }
        if (!same_peer(x, &from)) {
            /* RFC 1350 section 4: a foreign TID gets error 5; the transfer carries on. */
            send_error(x, 5, "unknown transfer ID", &from, from_len);
            continue;
        }
        if (on_packet(x, pkt, (size_t)n)) deadline = now() + current_wait(x);
        if (x->state == ST_ABORTED) {
            /* ERROR from the client: its code and message, for the caller's reason. */
            size_t m = (size_t)n - 2;
            memcpy(client_error, pkt + 2, m);
            *client_error_len = m;
        }
    }
}

static int parse_peer(PyObject *peer, int family, struct xfer *x) {
    const char *host;
    int port;
    memset(&x->peer, 0, sizeof x->peer);
    if (family == AF_INET) {
        struct sockaddr_in *a = (void *)&x->peer;
        if (!PyArg_ParseTuple(peer, "si", &host, &port)) return -1;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad;
        x->peer_len = sizeof *a;
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (void *)&x->peer;
        unsigned int flowinfo = 0, scope = 0;
        if (!PyArg_ParseTuple(peer, "si|II", &host, &port, &flowinfo, &scope)) return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_flowinfo = htonl(flowinfo);
        a->sin6_scope_id = scope;
        char bare[64];
        snprintf(bare, sizeof bare, "%s", host);
        char *pct = strchr(bare, '%'); /* link-local "fe80::1%eth0": the scope is separate */
        if (pct) *pct = 0;
        if (inet_pton(AF_INET6, bare, &a->sin6_addr) != 1) goto bad;
        x->peer_len = sizeof *a;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "unsupported address family %d", family);
    return -1;
bad:
    PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
    return -1;
}

PyDoc_STRVAR(serve_doc,
"serve(sock, file, family, peer, stop, blksize, windowsize, timeouts, max_seconds, oack,\n"
"      use_gso, connected, stranger) -> (state, reason, client_error, counters)\n\n"
"Run one transfer to its end with the GIL released. sock: the transfer socket's fd\n"
"(left in blocking mode with a receive timeout); file: a regular file's fd (read with\n"
"pread); peer: the client's (host, port[, flow, scope]); stop: a writable buffer whose\n"
"first byte, once non-zero, ends the transfer (\"server stopped\"); timeouts: seconds\n"
"before each retransmission, the last one before giving up; oack: the encoded OACK\n"
"or b'' to start with DATA; connected: sock is connected to peer; stranger: the fd of\n"
"an unconnected socket on the same port (SO_REUSEPORT) whose datagrams get error 5, or\n"
"-1. state: 'done', 'failed' or 'aborted'; client_error: the\n"
"client's ERROR after its opcode (code + message + NUL) when aborted, else None;\n"
"counters: dict of bytes_sent, bytes_acked, retransmits, syscalls, dropped,\n"
"errors_sent, malformed, send_failures, last_errno.");

static PyObject *serve(PyObject *self, PyObject *args) {
    struct xfer x;
    PyObject *peer, *timeouts;
    Py_buffer oack, stop;
    int family, use_gso, connected, stranger;
    unsigned long long blksize, windowsize;
    memset(&x, 0, sizeof x);
    if (!PyArg_ParseTuple(args, "iiiOw*KKOdy*ppi", &x.sock, &x.file, &family, &peer, &stop,
                          &blksize, &windowsize, &timeouts, &x.max_seconds, &oack, &use_gso,
                          &connected, &stranger))
        return NULL;
    PyObject *result = NULL;
    if (stop.len < 1) {
        PyErr_SetString(PyExc_ValueError, "stop must be a writable buffer of 1 byte or more");
        goto out;
    }
    x.stop = stop.buf;
    x.connected = connected;
    x.stranger = stranger;
    if (blksize < 8 || blksize > 65464 || windowsize < 1 || windowsize > 65535) {
        PyErr_SetString(PyExc_ValueError, "blksize or windowsize out of range");
        goto out;
    }
    x.blksize = blksize;
    x.windowsize = windowsize;
    x.use_gso = use_gso;
    x.oack = oack.buf;
    x.oack_len = oack.len;
    if (parse_peer(peer, family, &x) < 0) goto out;
    PyObject *seq = PySequence_Fast(timeouts, "timeouts must be a sequence");
    if (seq == NULL) goto out;
    Py_ssize_t nt = PySequence_Fast_GET_SIZE(seq);
    if (nt < 1 || nt > MAX_TIMEOUTS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "need 1..%d timeouts", MAX_TIMEOUTS);
        goto out;
    }
    for (Py_ssize_t i = 0; i < nt; i++) {
        x.timeouts[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (x.timeouts[i] < 0 || PyErr_Occurred()) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "negative timeout");
            goto out;
        }
    }
    Py_DECREF(seq);
    x.ntimeouts = (int)nt;
    x.cap = (size_t)(blksize * windowsize);
    if (x.cap < READ_AHEAD) x.cap = READ_AHEAD;
    x.buf = PyMem_RawMalloc(x.cap);
    if (x.buf == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    unsigned char client_error[RECV_SIZE];
    size_t client_error_len = 0;
    Py_BEGIN_ALLOW_THREADS
    run(&x, client_error, &client_error_len);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(x.buf);
    uint64_t bytes_acked = 0;
    if (x.acked) {
        bytes_acked = x.acked == x.last ? (x.acked - 1) * x.blksize + x.last_len
                                        : x.acked * x.blksize;
    }
    static const char *names[] = {"", "", "done", "failed", "aborted"};
    PyObject *error_obj;
    if (x.state == ST_ABORTED)
        error_obj = PyBytes_FromStringAndSize((const char *)client_error,
                                              (Py_ssize_t)client_error_len);
    else
        error_obj = Py_NewRef(Py_None);
    if (error_obj == NULL) goto out;
    result = Py_BuildValue(
        "(ssN{sKsKsKsKsKsKsKsKsi})", names[x.state], x.reason, error_obj,
        "bytes_sent", (unsigned long long)x.bytes_sent, "bytes_acked",
        (unsigned long long)bytes_acked, "retransmits", (unsigned long long)x.retransmits,
        "syscalls", (unsigned long long)x.syscalls, "dropped", (unsigned long long)x.dropped,
        "errors_sent", (unsigned long long)x.errors_sent, "malformed",
        (unsigned long long)x.malformed, "send_failures", (unsigned long long)x.send_failures,
        "last_errno", x.last_errno);
out:
    PyBuffer_Release(&oack);
    PyBuffer_Release(&stop);
    return result;
}

static PyMethodDef methods[] = {
    {"serve", serve, METH_VARARGS, serve_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath",
    "The TFTP data phase in C (see netboot/tftp/fastpath.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void) { return PyModule_Create(&module); }
