/* cardfs: the SD card's controller and its volatile write cache, as a FUSE filesystem.
 *
 *   cardfs BACKING MOUNTPOINT [fuse options]
 *
 * MOUNTPOINT shows two files:
 *   disk.img  the card: BACKING's blocks, with every write held in memory until an fsync of
 *             disk.img (what the loop driver does when ext4 sends a FLUSH) writes them back.
 *   ctl       write a command to it, read it for the card's counters (one `key=value` a line).
 *
 * Commands (one per write):
 *   cut                         power cut: drop the cache, then answer every request with EIO
 *   flush                       write the cache back now
 *   latency MS                  sleep MS milliseconds before every read, write and flush
 *   bandwidth BYTES_PER_SECOND  cap the card's throughput (0: none)
 *   errors read|write after N   the N+1st request of that kind from now on, and every later one, fails
 *   errors read|write range START END   requests touching bytes [START, END) of the card fail
 *   readonly                    the card refuses writes (a worn card turning read-only)
 *   heal                        clear latency, bandwidth, errors and read-only
 *
 * Write-back: once more than CARDFS_WRITEBACK_MB (default 32) is dirty, a background thread writes
 * dirty runs back to BACKING (in card order) while writes go on, down to half of it, as a card's
 * controller drains its cache; a flush then only waits for the remainder. What stays below the
 * mark (a few files nobody fsynced) is still lost at a power cut; written back early is only
 * what a real cache may also have written by then. Durable is only what a flush reached.
 *
 * Why a FUSE file under the loop device: this kernel has no device-mapper (no dm-flakey), and
 * the host's page cache would otherwise keep every write of the card across a power cut. The
 * file is opened with direct I/O so the kernel keeps no second copy of the card's pages; what
 * has not been flushed lives only in this process. A write-back is a pwrite to BACKING: BACKING's
 * own page cache belongs to the host, which does not lose power in these tests.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096u
#define DISK "/disk.img"
#define CTL "/ctl"

struct errspec {
  int on;
  int64_t after;      /* requests still allowed to succeed; -1: a range rule */
  int64_t start, end; /* byte range, for a range rule */
};

static struct {
  int fd;
  uint64_t size, nblocks;
  unsigned char *overlay; /* the cache: anonymous memory shaped like the card */
  uint64_t *dirty;        /* one bit per block: the cache's copy is newer than BACKING's */
  uint64_t *busy;         /* one bit per block: being written back now (the cache's copy is current) */
  uint64_t ndirty, cap_blocks, resident; /* resident: blocks touched since memory was last given back */
  uint64_t inflight;      /* blocks the background write-back is writing outside the lock */
  uint64_t wb_high, wb_low, cursor; /* background write-back: start above high, stop at low; where next */
  int flushing;           /* a flush (or power cut) waits for the background write-back to stand still */
  pthread_mutex_t lock;
  pthread_cond_t kick, idle; /* kick: dirty data above the mark; idle: a background write finished */
  /* faults */
  int off, readonly;
  int64_t latency_us, bandwidth;
  double next_free; /* bandwidth: when the card is free again (monotonic seconds) */
  struct errspec rerr, werr;
  /* counters */
  uint64_t reads, writes, fsyncs, writebacks, errors, lost_bytes, flushed_bytes;
} C = {.lock = PTHREAD_MUTEX_INITIALIZER, .kick = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_for(double s) {
  if (s <= 0)
    return;
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* A slow card: latency per request, and requests queue behind each other under a bandwidth cap. */
static void throttle(size_t bytes) {
  double wait = 0;
  pthread_mutex_lock(&C.lock);
  if (C.bandwidth > 0) {
    double t = now(), start = C.next_free > t ? C.next_free : t;
    C.next_free = start + (double)bytes / (double)C.bandwidth;
    wait = C.next_free - t;
  }
  wait += C.latency_us / 1e6;
  pthread_mutex_unlock(&C.lock);
  sleep_for(wait);
}

/* Whether a request fails by an injected error (called with the lock held). */
static int injected(struct errspec *e, uint64_t off, size_t size) {
  if (!e->on)
    return 0;
  if (e->after >= 0) {
    if (e->after == 0)
      return 1;
    e->after--;
    return 0;
  }
  return (int64_t)off < e->end && (int64_t)(off + size) > e->start;
}

static int isdirty(uint64_t b) { return (C.dirty[b / 64] >> (b % 64)) & 1; }
/* Whether the cache holds the block's current content (lock held). */
static int cached(uint64_t b) { return ((C.dirty[b / 64] | C.busy[b / 64]) >> (b % 64)) & 1; }

static int pwrite_all(const unsigned char *buf, uint64_t len, uint64_t off) {
  for (uint64_t done = 0; done < len;) {
    ssize_t n = pwrite(C.fd, buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    done += (uint64_t)n;
  }
  return 0;
}

/* Waits until the background write-back has nothing outside the lock (lock held). */
static void quiesce(void) {
  C.flushing++;
  while (C.inflight)
    pthread_cond_wait(&C.idle, &C.lock);
}

/* Write every dirty block back to BACKING (lock held; nothing in flight: see quiesce). */
static int writeback_all(void) {
  uint64_t b = 0;
  while (b < C.nblocks) {
    if (!C.dirty[b / 64]) {
      b = (b / 64 + 1) * 64;
      continue;
    }
    if (!isdirty(b)) {
      b++;
      continue;
    }
    uint64_t e = b;
    while (e < C.nblocks && isdirty(e))
      e++;
    uint64_t off = b * BLK, len = (e - b) * BLK;
    if (off + len > C.size)
      len = C.size - off;
    int rc = pwrite_all(C.overlay + off, len, off);
    if (rc < 0)
      return rc;
    for (uint64_t i = b; i < e; i++)
      C.dirty[i / 64] &= ~(1ull << (i % 64));
    C.ndirty -= e - b;
    C.flushed_bytes += len;
    b = e;
  }
  C.writebacks++;
  /* Clean cache memory is kept for the next writes (no page faults, no zeroing) until more than
     the cache's size has been touched since it was last given back. */
  if (C.resident > C.cap_blocks) {
    madvise(C.overlay, C.nblocks * BLK, MADV_DONTNEED);
    C.resident = 0;
  }
  return 0;
}

static int writeback(void) {
  quiesce();
  int rc = writeback_all();
  C.flushing--;
  return rc;
}

/* The next run of dirty blocks from the cursor on, at most `max` long; 0 if none (lock held). */
static int next_run(uint64_t *b0, uint64_t *e0, uint64_t max) {
  for (uint64_t scanned = 0, b = C.cursor; scanned < C.nblocks;) {
    if (b >= C.nblocks)
      b = 0;
    if (!C.dirty[b / 64]) {
      uint64_t next = (b / 64 + 1) * 64;
      scanned += next - b;
      b = next;
      continue;
    }
    if (!isdirty(b)) {
      b++, scanned++;
      continue;
    }
    uint64_t e = b;
    while (e < C.nblocks && e - b < max && isdirty(e))
      e++;
    *b0 = b, *e0 = e;
    return 1;
  }
  return 0;
}

/* The background write-back: drains the cache while writes go on. Its pwrite runs outside the
   lock; its blocks are marked busy, so reads and partial writes take them from the cache, and a
   write landing on one meanwhile dirties it again (it goes out once more, later). */
static void *writer(void *arg) {
  (void)arg;
  int failed = 0; /* BACKING refused a write: no retry before the next kick */
  pthread_mutex_lock(&C.lock);
  for (;;) {
    while (failed || C.off || C.readonly || C.flushing || C.ndirty <= C.wb_high) {
      pthread_cond_wait(&C.kick, &C.lock);
      failed = 0;
    }
    while (!C.off && !C.readonly && !C.flushing && C.ndirty > C.wb_low) {
      uint64_t b, e;
      if (!next_run(&b, &e, 1024)) /* 4 MiB at most, so the lock is never held for long */
        break;
      for (uint64_t i = b; i < e; i++) {
        C.dirty[i / 64] &= ~(1ull << (i % 64));
        C.busy[i / 64] |= 1ull << (i % 64);
      }
      C.ndirty -= e - b;
      C.inflight += e - b;
      uint64_t off = b * BLK, len = (e - b) * BLK;
      if (off + len > C.size)
        len = C.size - off;
      pthread_mutex_unlock(&C.lock);
      int rc = pwrite_all(C.overlay + off, len, off);
      pthread_mutex_lock(&C.lock);
      for (uint64_t i = b; i < e; i++) {
        C.busy[i / 64] &= ~(1ull << (i % 64));
        if (rc < 0 && !isdirty(i)) { /* not on the card: dirty again, the next flush retries and reports it */
          C.dirty[i / 64] |= 1ull << (i % 64);
          C.ndirty++;
        }
      }
      C.inflight -= e - b;
      if (rc == 0)
        C.flushed_bytes += len;
      /* Memory is given back run by run once more than the cache's size was touched (a long
         stream without a flush); a run written to again meanwhile keeps it (it is dirty). */
      if (rc == 0 && C.resident > C.cap_blocks) {
        uint64_t again = 0;
        for (uint64_t i = b; i < e; i++)
          again += (uint64_t)isdirty(i);
        if (!again) {
          madvise(C.overlay + off, (e - b) * BLK, MADV_DONTNEED);
          C.resident -= C.resident < e - b ? C.resident : e - b;
        }
      }
      C.cursor = e;
      pthread_cond_broadcast(&C.idle);
      if (rc < 0) {
        failed = 1; /* no retry loop on a failing BACKING: the next write or flush decides */
        break;
      }
    }
  }
  return NULL;
}

static void drop(void) {
  C.lost_bytes += C.ndirty * BLK;
  memset(C.dirty, 0, (C.nblocks + 63) / 64 * 8);
  madvise(C.overlay, C.nblocks * BLK, MADV_DONTNEED);
  C.ndirty = 0;
  C.resident = 0;
}

static int read_backing(char *buf, size_t size, uint64_t off) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(C.fd, buf + done, size - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0) { /* a sparse tail reads as zeros */
      memset(buf + done, 0, size - done);
      break;
    }
    done += (size_t)n;
  }
  return 0;
}

/* ---- the card ---------------------------------------------------------------------------- */

static int card_read(char *buf, size_t size, off_t offset) {
  uint64_t off = (uint64_t)offset;
  if (off >= C.size)
    return 0;
  if (off + size > C.size)
    size = C.size - off;
  throttle(size);
  pthread_mutex_lock(&C.lock);
  int rc = 0;
  C.reads++;
  if (C.off || injected(&C.rerr, off, size)) {
    C.errors++;
    rc = -EIO;
    goto out;
  }
  /* Runs of clean blocks come from BACKING, dirty ones from the cache. */
  for (uint64_t pos = off; pos < off + size;) {
    uint64_t b = pos / BLK, end = pos;
    int d = cached(b);
    while (end < off + size && cached(end / BLK) == d)
      end = (end / BLK + 1) * BLK;
    if (end > off + size)
      end = off + size;
    if (d)
      memcpy(buf + (pos - off), C.overlay + pos, end - pos);
    else if ((rc = read_backing(buf + (pos - off), end - pos, pos)) < 0)
      goto out;
    pos = end;
  }
  rc = (int)size;
out:
  pthread_mutex_unlock(&C.lock);
  return rc;
}

static int card_write(const char *buf, size_t size, off_t offset) {
  uint64_t off = (uint64_t)offset;
  if (off + size > C.size)
    return -ENOSPC;
  throttle(size);
  pthread_mutex_lock(&C.lock);
  int rc = 0;
  C.writes++;
  if (C.off || C.readonly || injected(&C.werr, off, size)) {
    C.errors++;
    rc = -EIO;
    goto out;
  }
  for (uint64_t b = off / BLK; b * BLK < off + size; b++) {
    if (isdirty(b))
      continue;
    uint64_t bs = b * BLK, be = bs + BLK;
    /* partly overwritten: the rest of the block first (from BACKING, unless being written back) */
    if ((bs < off || be > off + size) && !cached(b)) {
      uint64_t n = be > C.size ? C.size - bs : BLK;
      if ((rc = read_backing((char *)C.overlay + bs, n, bs)) < 0)
        goto out;
    }
    C.dirty[b / 64] |= 1ull << (b % 64);
    C.ndirty++;
    C.resident++;
  }
  memcpy(C.overlay + off, buf, size);
  /* A full cache writes itself back, as a disk's does: un-flushed data may then survive. Above the
     mark, the background write-back starts; the cap only bites when it cannot keep up. */
  if (C.ndirty > C.cap_blocks && (rc = writeback()) < 0)
    goto out;
  if (C.ndirty > C.wb_high)
    pthread_cond_signal(&C.kick);
  rc = (int)size;
out:
  pthread_mutex_unlock(&C.lock);
  return rc;
}

static int card_fsync(void) {
  throttle(0);
  pthread_mutex_lock(&C.lock);
  int rc = 0;
  C.fsyncs++;
  if (C.off || ((C.ndirty || C.inflight) && (C.readonly || injected(&C.werr, 0, C.size)))) {
    C.errors++;
    rc = -EIO;
  } else {
    rc = writeback();
  }
  pthread_mutex_unlock(&C.lock);
  return rc;
}

/* ---- the control file ------------------------------------------------------------------- */

static int status(char *buf, size_t len) {
  pthread_mutex_lock(&C.lock);
  int n = snprintf(buf, len,
                   "power=%s\nreadonly=%d\nlatency_ms=%.3f\nbandwidth=%" PRId64 "\n"
                   "read_errors=%s\nwrite_errors=%s\n"
                   "size=%" PRIu64 "\ndirty_bytes=%" PRIu64 "\nlost_bytes=%" PRIu64 "\nflushed_bytes=%" PRIu64 "\n"
                   "reads=%" PRIu64 "\nwrites=%" PRIu64 "\nfsyncs=%" PRIu64 "\nwritebacks=%" PRIu64 "\n"
                   "errors=%" PRIu64 "\n",
                   C.off ? "off" : "on", C.readonly, C.latency_us / 1000.0, C.bandwidth,
                   C.rerr.on ? (C.rerr.after >= 0 ? "after" : "range") : "none",
                   C.werr.on ? (C.werr.after >= 0 ? "after" : "range") : "none", C.size,
                   (C.ndirty + C.inflight) * BLK, C.lost_bytes, C.flushed_bytes, C.reads, C.writes, C.fsyncs, C.writebacks,
                   C.errors);
  pthread_mutex_unlock(&C.lock);
  return n;
}

static int command(const char *text, size_t size) {
  char line[256], kind[16], how[16];
  double ms;
  long long a, b;
  int got;
  if (size >= sizeof line)
    return -EINVAL;
  memcpy(line, text, size);
  line[size] = 0;
  line[strcspn(line, "\n")] = 0;
  int rc = 0;
  pthread_mutex_lock(&C.lock);
  if (!strcmp(line, "cut")) {
    C.off = 1;    /* first: nothing new is taken, nor written back */
    quiesce();    /* what is already on its way to BACKING gets there (a write the card had begun) */
    drop();
    C.flushing--;
  } else if (!strcmp(line, "flush")) {
    rc = writeback();
  } else if (!strcmp(line, "readonly")) {
    C.readonly = 1;
  } else if (!strcmp(line, "heal")) {
    C.readonly = 0;
    C.latency_us = C.bandwidth = 0;
    C.rerr.on = C.werr.on = 0;
    pthread_cond_signal(&C.kick);
  } else if (sscanf(line, "latency %lf", &ms) == 1 && ms >= 0) {
    C.latency_us = (int64_t)(ms * 1000);
  } else if (sscanf(line, "bandwidth %lld", &a) == 1 && a >= 0) {
    C.bandwidth = a;
    C.next_free = 0;
  } else if ((got = sscanf(line, "errors %15s %15s %lld %lld", kind, how, &a, &b)) >= 3 &&
             (!strcmp(kind, "read") || !strcmp(kind, "write"))) {
    struct errspec *e = kind[0] == 'r' ? &C.rerr : &C.werr;
    if (!strcmp(how, "after") && got == 3 && a >= 0)
      *e = (struct errspec){1, a, 0, 0};
    else if (!strcmp(how, "range") && got == 4 && 0 <= a && a < b)
      *e = (struct errspec){1, -1, a, b};
    else
      rc = -EINVAL;
  } else {
    rc = -EINVAL;
  }
  pthread_mutex_unlock(&C.lock);
  return rc;
}

/* ---- FUSE glue -------------------------------------------------------------------------- */

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  (void)fi;
  memset(st, 0, sizeof *st);
  if (!strcmp(path, "/")) {
    st->st_mode = S_IFDIR | 0700;
    st->st_nlink = 2;
  } else if (!strcmp(path, DISK)) {
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = (off_t)C.size;
    st->st_blocks = (blkcnt_t)(C.size / 512);
  } else if (!strcmp(path, CTL)) {
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
  } else {
    return -ENOENT;
  }
  return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
  (void)off, (void)fi, (void)flags;
  if (strcmp(path, "/"))
    return -ENOENT;
  fill(buf, ".", NULL, 0, 0);
  fill(buf, "..", NULL, 0, 0);
  fill(buf, DISK + 1, NULL, 0, 0);
  fill(buf, CTL + 1, NULL, 0, 0);
  return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
  if (strcmp(path, DISK) && strcmp(path, CTL))
    return -ENOENT;
  fi->direct_io = 1; /* no copy of the card in the kernel's page cache */
  fi->keep_cache = 0;
  return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  if (!strcmp(path, DISK))
    return card_read(buf, size, off);
  char text[1024];
  int n = status(text, sizeof text);
  if (off >= n)
    return 0;
  if ((size_t)(n - off) < size)
    size = (size_t)(n - off);
  memcpy(buf, text + off, size);
  return (int)size;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  if (!strcmp(path, DISK))
    return card_write(buf, size, off);
  int rc = command(buf, size);
  return rc < 0 ? rc : (int)size;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)datasync, (void)fi;
  return strcmp(path, DISK) ? 0 : card_fsync();
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  (void)fi;
  if (!strcmp(path, CTL))
    return 0; /* `echo cmd > ctl` truncates first */
  return (uint64_t)size == C.size ? 0 : -EPERM;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  (void)conn;
  cfg->direct_io = 1;
  cfg->attr_timeout = 0;
  /* Here, not in main: fuse_main forks into the background first, and threads do not survive it. */
  pthread_t tid;
  if (pthread_create(&tid, NULL, writer, NULL)) {
    fprintf(stderr, "cardfs: no background write-back thread: %s\n", strerror(errno));
    exit(1);
  }
  pthread_detach(tid);
  return NULL;
}

/* An orderly unmount (the device shut down) writes the cache back, as a card does on clean power-off. */
static void fs_destroy(void *data) {
  (void)data;
  pthread_mutex_lock(&C.lock);
  if (!C.off)
    writeback();
  pthread_mutex_unlock(&C.lock);
}

static const struct fuse_operations ops = {
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .fsync = fs_fsync,
    .truncate = fs_truncate,
    .init = fs_init,
    .destroy = fs_destroy,
};

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: cardfs BACKING MOUNTPOINT [fuse options]\n");
    return 2;
  }
  C.fd = open(argv[1], O_RDWR | O_CLOEXEC);
  struct stat st;
  if (C.fd < 0 || fstat(C.fd, &st) < 0) {
    fprintf(stderr, "cardfs: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  C.size = (uint64_t)st.st_size;
  C.nblocks = (C.size + BLK - 1) / BLK;
  const char *cap = getenv("CARDFS_CACHE_MB");
  C.cap_blocks = (uint64_t)(cap ? atoll(cap) : 512) * (1 << 20) / BLK;
  C.overlay = mmap(NULL, C.nblocks * BLK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  C.dirty = calloc((C.nblocks + 63) / 64, 8);
  C.busy = calloc((C.nblocks + 63) / 64, 8);
  const char *mark = getenv("CARDFS_WRITEBACK_MB");
  C.wb_high = (uint64_t)(mark ? atoll(mark) : 32) * (1 << 20) / BLK;
  C.wb_low = C.wb_high / 2;
  if (C.overlay == MAP_FAILED || !C.dirty || !C.busy) {
    fprintf(stderr, "cardfs: no memory for the cache of a %" PRIu64 "-byte card\n", C.size);
    return 1;
  }
  argv[1] = argv[0]; /* fuse_main sees: cardfs MOUNTPOINT [options] */
  return fuse_main(argc - 1, argv + 1, &ops, NULL);
}
