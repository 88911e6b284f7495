/* Wall-clock jumps for a stack's containers on a test device (put there by the armstack harness).
 *
 * Preloaded into every program of a container (the device engine's runc wrapper binds this
 * library and an /etc/ld.so.preload naming it). It adds the offset in seconds written in
 * OFFSET_FILE (decimal, may be negative or fractional) to the realtime clocks, as a jump of
 * the board's clock would; the monotonic and CPU clocks are left alone, as a jump leaves them.
 * The file is read at most every 0.2 s of the monotonic clock; an absent or unreadable file
 * means no offset.
 *
 * It must never break a program: the real clocks are read with the raw system call (no dlsym,
 * so no libdl and no symbol version newer than the oldest glibc of the arch), nothing is
 * allocated, nothing is printed, errno is kept, and the shared state is two 64-bit atomics
 * (a thread that reads the file while another does only repeats the work).
 *
 * Not covered: absolute realtime deadlines handed to the kernel (clock_nanosleep with
 * TIMER_ABSTIME, pthread_cond_timedwait on a realtime condition, sem_timedwait) are still
 * against the real clock, and statically linked programs (Go) keep the real clock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef OFFSET_FILE   /* the device's clock directory, bound there by runc-clock.sh */
#define OFFSET_FILE "/dev/.armstack-clock/offset"
#endif
#define NS 1000000000LL
#define REFRESH_NS (NS / 5)

/* The kernel's 64-bit timespec; on little-endian 32-bit ARM it is also glibc's __timespec64
 * (tv_nsec and its padding read as one 64-bit field, the padding written as zero). */
struct ts64 {
    int64_t sec;
    int64_t nsec;
};

struct tv64 {
    int64_t sec;
    int64_t usec;
};

static int64_t offset_ns;    /* atomic: the offset last read */
static int64_t refresh_at;   /* atomic: monotonic ns of the next read; 0: never read */

static int real_clock(clockid_t id, struct ts64 *out)
{
#ifdef SYS_clock_gettime64
    /* 32-bit ARM: the 64-bit-time call first (no 2038 limit), the old one on kernels without it. */
    int saved = errno;
    if (syscall(SYS_clock_gettime64, id, out) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
    errno = saved;
#endif
    struct timespec t;
    if (syscall(SYS_clock_gettime, id, &t) != 0)
        return -1;
    out->sec = t.tv_sec;
    out->nsec = t.tv_nsec;
    return 0;
}

/* "[-]digits[.digits]" in seconds to nanoseconds; anything unparsable is 0. */
static int64_t parse_offset(const char *s, long n)
{
    long i = 0;
    int negative = 0, digits = 0;
    int64_t whole = 0, frac = 0, scale = NS;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        negative = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (whole > 1000000000000LL)   /* over 30,000 years: not an offset */
            return 0;
        whole = whole * 10 + (s[i] - '0');
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (scale > 1) {
                scale /= 10;
                frac += (s[i] - '0') * scale;
            }
    if (!digits)
        return 0;
    int64_t total = whole * NS + frac;
    return negative ? -total : total;
}

static int64_t read_offset(void)
{
    char buf[64];
    long fd = syscall(SYS_openat, AT_FDCWD, OFFSET_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long n = syscall(SYS_read, (int)fd, buf, sizeof buf);
    syscall(SYS_close, (int)fd);
    return n > 0 ? parse_offset(buf, n) : 0;
}

static int64_t offset(void)
{
    int saved = errno;
    struct ts64 now;
    if (real_clock(CLOCK_MONOTONIC_COARSE, &now) == 0 || real_clock(CLOCK_MONOTONIC, &now) == 0) {
        int64_t t = now.sec * NS + now.nsec;
        int64_t due = __atomic_load_n(&refresh_at, __ATOMIC_ACQUIRE);
        if (due == 0 || t >= due) {
            /* The offset before the time of the next read: no thread sees the deadline moved
             * and the offset not yet read. */
            __atomic_store_n(&offset_ns, read_offset(), __ATOMIC_RELAXED);
            __atomic_store_n(&refresh_at, t + REFRESH_NS, __ATOMIC_RELEASE);
        }
    }
    errno = saved;
    return __atomic_load_n(&offset_ns, __ATOMIC_RELAXED);
}

static int shifted(clockid_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI || id == CLOCK_REALTIME_ALARM;
}

/* The clock ``id`` as a program sees it: the realtime ones moved by the offset. */
static int now(clockid_t id, struct ts64 *out)
{
    if (real_clock(id, out) != 0)
        return -1;
    if (shifted(id)) {
        int64_t off = offset();
        int64_t nsec = out->nsec + off % NS;
        out->sec += off / NS + (nsec >= NS) - (nsec < 0);
        out->nsec = nsec >= NS ? nsec - NS : nsec < 0 ? nsec + NS : nsec;
    }
    return 0;
}

int clock_gettime(clockid_t id, struct timespec *tp)
{
    struct ts64 t;
    if (now(id, &t) != 0)
        return -1;
    tp->tv_sec = (time_t)t.sec;
    tp->tv_nsec = (long)t.nsec;
    return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct ts64 t;
    if (tz != NULL) {   /* as glibc: the obsolete timezone is all zero */
        ((int *)tz)[0] = 0;
        ((int *)tz)[1] = 0;
    }
    if (now(CLOCK_REALTIME, &t) != 0)   /* tv is never NULL: glibc's declaration says so */
        return -1;
    tv->tv_sec = (time_t)t.sec;
    tv->tv_usec = (suseconds_t)(t.nsec / 1000);
    return 0;
}

time_t time(time_t *out)
{
    struct ts64 t;
    time_t s = now(CLOCK_REALTIME, &t) == 0 ? (time_t)t.sec : (time_t)-1;
    if (out != NULL)
        *out = s;
    return s;
}

int timespec_get(struct timespec *ts, int base)
{
    struct ts64 t;
    if (base != TIME_UTC || now(CLOCK_REALTIME, &t) != 0)
        return 0;
    ts->tv_sec = (time_t)t.sec;
    ts->tv_nsec = (long)t.nsec;
    return base;
}

#ifdef SYS_clock_gettime64
/* 32-bit ARM: the 64-bit-time entry points glibc 2.34+ exports (programs built with
 * _TIME_BITS=64 call these instead of the ones above). */
int __clock_gettime64(clockid_t id, struct ts64 *tp)
{
    struct ts64 t;
    if (now(id, &t) != 0)
        return -1;
    *tp = t;
    return 0;
}

int __gettimeofday64(struct tv64 *restrict tv, void *restrict tz)
{
    struct ts64 t;
    if (tz != NULL) {
        ((int *)tz)[0] = 0;
        ((int *)tz)[1] = 0;
    }
    if (now(CLOCK_REALTIME, &t) != 0)
        return -1;
    tv->sec = t.sec;
    tv->usec = t.nsec / 1000;
    return 0;
}

int64_t __time64(int64_t *out)
{
    struct ts64 t;
    int64_t s = now(CLOCK_REALTIME, &t) == 0 ? t.sec : -1;
    if (out != NULL)
        *out = s;
    return s;
}

int __timespec_get64(struct ts64 *ts, int base)
{
    struct ts64 t;
    if (base != TIME_UTC || now(CLOCK_REALTIME, &t) != 0)
        return 0;
    *ts = t;
    return base;
}
#endif
