/* os.c — the whole OS contract of the pool.  Everything goes through raw
 * system calls so that the pool never enters its own mmap interposers and
 * never depends on another library's state. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

__thread uint32_t tp_locks_held; /* internal.h: tp_lock_acquire */

tierpool_os_stats_t tp_os_stats;

/* A system call that leaves errno alone and returns -errno on failure: the
 * pool's own failures (an mmap hint already taken, a file that is not there)
 * are not the program's. */
static long tp_sys(long number, long a, long b, long c, long d, long e, long f) {
  int saved = errno;
  long r = syscall(number, a, b, c, d, e, f);
  if (r == -1) r = -errno;
  errno = saved;
  return r;
}
#define TP_SYS(number, ...) tp_sys_args(number, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define tp_sys_args(number, a, b, c, d, e, f, ...) \
  tp_sys(number, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static long tp_sys_mmap(void *addr, size_t size, int prot, int flags) {
  tp_stat_inc(tp_os_stats.pool_mmap);
  return TP_SYS(SYS_mmap, addr, size, prot, flags, -1, 0);
}

void *tp_os_map(size_t size) {
  long r = tp_sys_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  return r < 0 ? NULL : (void *)r;
}

/* Over-maps by `align` and trims both ends: the kernel has no aligned mmap. */
void *tp_os_map_aligned(size_t size, size_t align) {
  if (align <= TP_PAGE_SIZE) return tp_os_map(size);
  size_t over = size + align;
  if (over < size) return NULL;
  char *raw = tp_os_map(over);
  if (!raw) return NULL;
  char *start = (char *)tp_align_up((uintptr_t)raw, align);
  size_t head = (size_t)(start - raw), tail = over - head - size;
  if (head) tp_os_unmap(raw, head);
  if (tail) tp_os_unmap(start + size, tail);
  return start;
}

/* Aligned mappings in one system call where possible: the kernel takes an
 * address hint when that range is free, and the next hint follows the last
 * mapping, so aligned hints keep succeeding.  Otherwise: over-map and trim. */
#define TP_OS_HINT_TOP ((uintptr_t)0x3f0000000000ULL) /* below the usual mmap base and PIE programs */
#define TP_OS_HINT_SLOTS ((uintptr_t)1 << 19)           /* 32 MiB apart: up to 16 TiB lower */

/* Where the first segment goes: a random 32 MiB slot below TP_OS_HINT_TOP,
 * as ASLR places glibc's heap (a fixed address would be the same in every
 * process). */
static uintptr_t tp_os_first_hint(void) {
  uint64_t random = 0;
  if (TP_SYS(SYS_getrandom, &random, sizeof random, GRND_NONBLOCK) != (long)sizeof random)
    random = (uint64_t)(uintptr_t)&random ^ tp_os_now_ms();
  return TP_OS_HINT_TOP - (uintptr_t)(random % TP_OS_HINT_SLOTS) * TP_SEGMENT_SIZE;
}

void *tp_os_map_at_hint(size_t size, size_t align) {
  static _Atomic uintptr_t hint;
  uintptr_t want = atomic_load_explicit(&hint, memory_order_relaxed);
  if (!want) want = tp_os_first_hint();
  tp_stat_inc(tp_os_stats.pool_mmap);
  long r = TP_SYS(SYS_mmap, (void *)want, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (r >= 0 && (uintptr_t)r == want) {
    atomic_store_explicit(&hint, want + size, memory_order_relaxed);
    return (void *)r;
  }
  if (r >= 0) tp_os_unmap((void *)r, size); /* an old kernel ignored the flag */
  void *p = tp_os_map_aligned(size, align);
  if (p) atomic_store_explicit(&hint, (uintptr_t)p + size, memory_order_relaxed);
  return p;
}

void tp_os_unmap(void *p, size_t size) {
  tp_stat_inc(tp_os_stats.pool_munmap);
  TP_SYS(SYS_munmap, p, size);
}

void *tp_os_remap(void *p, size_t old_size, size_t new_size) {
  tp_stat_inc(tp_os_stats.pool_mremap);
  long r = TP_SYS(SYS_mremap, p, old_size, new_size, MREMAP_MAYMOVE);
  return r < 0 ? NULL : (void *)r;
}

atomic_bool tp_os_memory_locked;

/* Moves the pages of [p, p+size) to a new address; the old range stays
 * mapped and reads as zero (MREMAP_DONTUNMAP, Linux 5.7).  NULL on failure,
 * and after mlockall: the kernel clears the lock of the whole mapping the
 * pages leave (the segment), and a program that locked its memory keeps it
 * locked — the caller copies instead. */
void *tp_os_move_pages(void *p, size_t size) {
  if (atomic_load_explicit(&tp_os_memory_locked, memory_order_relaxed)) return NULL;
  tp_stat_inc(tp_os_stats.pool_mremap);
  long r = TP_SYS(SYS_mremap, p, size, size, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
  return r < 0 ? NULL : (void *)r;
}

/* Moves the pages of [from, from+size) back over [to, to+size). */
bool tp_os_move_pages_to(void *from, size_t size, void *to) {
  tp_stat_inc(tp_os_stats.pool_mremap);
  return TP_SYS(SYS_mremap, from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) >= 0;
}

/* Set for good once the kernel refused to drop pages (tp_os_release). */
atomic_bool tp_os_release_refused;

static bool tp_os_drop_pages(void *p, size_t size) {
  tp_stat_inc(tp_os_stats.pool_madvise);
  return TP_SYS(SYS_madvise, p, size, MADV_DONTNEED) == 0;
}

/* Beyond this many locked pages in one range the memory counts as locked
 * (mlockall(MCL_FUTURE) made behind the library's back, say). */
#define TP_OS_LOCKED_PAGES_MAX 64

static size_t tp_os_pages(size_t size) { return (size + TP_PAGE_SIZE - 1) >> TP_PAGE_SHIFT; }

/* A range refused whole holds locked pages: a block the program mlock'ed
 * and freed without munlock (a key, a password buffer).  Halves (whole pages:
 * a range may end inside its last one) are tried down to single pages, which
 * are zeroed by hand; the rest goes back.  Once more than
 * TP_OS_LOCKED_PAGES_MAX pages (with those zeroed before, `zeroed`) are
 * locked, what is left is zeroed whole: a range locked throughout would cost
 * two madvise calls a page.  Returns the pages zeroed by hand. */
static size_t tp_os_release_around_locked(char *p, size_t size, size_t zeroed) {
  if (zeroed <= TP_OS_LOCKED_PAGES_MAX && tp_os_drop_pages(p, size)) return 0;
  if (size <= TP_PAGE_SIZE || zeroed > TP_OS_LOCKED_PAGES_MAX) {
    memset(p, 0, size);
    return tp_os_pages(size);
  }
  size_t half = tp_os_pages(size) / 2 << TP_PAGE_SHIFT; /* at least a page: size > one */
  size_t first = tp_os_release_around_locked(p, half, zeroed);
  return first + tp_os_release_around_locked(p + half, size - half, zeroed + first);
}

/* Gives the pages of [p, p+size) back: they read as zero afterwards, which
 * callers count on (calloc takes released blocks as zeroed; no data crosses
 * tenants).  Locked memory (mlockall: real-time and security-minded programs,
 * databases) refuses MADV_DONTNEED; such a process keeps its pages, so the
 * range is zeroed by hand, and the pool stops giving memory back (its
 * statistics then count these pages as released: they stay resident, and
 * locked).  MADV_DONTNEED_LOCKED would drop them, at the price of page
 * faults a program locks its memory to avoid.  A few locked pages of freed
 * blocks are zeroed where they are and the rest of the range goes back. */
void tp_os_release(void *p, size_t size) {
  if (!atomic_load_explicit(&tp_os_release_refused, memory_order_relaxed)) {
    if (tp_os_drop_pages(p, size)) return;
    if (!atomic_load_explicit(&tp_os_memory_locked, memory_order_relaxed)) {
      if (tp_os_release_around_locked(p, size, 0) > TP_OS_LOCKED_PAGES_MAX)
        atomic_store_explicit(&tp_os_release_refused, true, memory_order_relaxed);
      return; /* zero either way: dropped or zeroed page by page */
    }
    atomic_store_explicit(&tp_os_release_refused, true, memory_order_relaxed);
  }
  memset(p, 0, size);
}

/* Faults the range in for writing now.  A table probed before it is written
 * would map the zero page first and replace it at the first store: a
 * write-protect fault whose TLB flush interrupts every CPU the process runs
 * on.  Kernels before 5.14 lack MADV_POPULATE_WRITE: each page is written. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
void tp_os_populate(void *p, size_t size) {
  tp_stat_inc(tp_os_stats.pool_madvise);
  if (TP_SYS(SYS_madvise, p, size, MADV_POPULATE_WRITE) == 0) return;
  for (size_t offset = 0; offset < size; offset += TP_PAGE_SIZE) ((volatile char *)p)[offset] = 0;
}

/* A cached mapping goes to a new block as a fresh one would come: the program
 * may have changed the old block's pages (mprotect'ed a guard page, madvise'd
 * them DONTFORK, WIPEONFORK or DONTDUMP), and a cached mapping is what glibc
 * would have unmapped at free: nothing of it may reach the next owner.  Each call is a no-op
 * walk of one mapping when nothing was changed.  False when the range is no
 * longer all mapped (the program unmapped part of it). */
#ifndef MADV_KEEPONFORK
#define MADV_KEEPONFORK 19
#endif
bool tp_os_make_plain(void *p, size_t size) {
  tp_stat_inc(tp_os_stats.pool_mprotect);
  if (TP_SYS(SYS_mprotect, p, size, PROT_READ | PROT_WRITE) != 0) return false;
  static const int plain[] = {MADV_DOFORK, MADV_KEEPONFORK, MADV_DODUMP};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
    tp_stat_inc(tp_os_stats.pool_madvise);
    TP_SYS(SYS_madvise, p, size, plain[i]); /* KEEPONFORK: EINVAL before Linux 4.14, where nothing set it */
  }
  return true;
}

void tp_os_advise_huge(void *p, size_t size, bool huge) {
  tp_stat_inc(tp_os_stats.pool_madvise);
  TP_SYS(SYS_madvise, p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

bool tp_os_mincore(void *p, size_t size, unsigned char *vec) {
  return TP_SYS(SYS_mincore, p, size, vec) == 0;
}

bool tp_os_name_readable(const char *path) {
  long r = TP_SYS(SYS_faccessat, AT_FDCWD, path, F_OK);
  return r != -EFAULT && r != -ENAMETOOLONG;
}

uint64_t tp_os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO: no system call */
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tp_os_write(int fd, const char *s, size_t n) {
  while (n > 0) {
    long w = TP_SYS(SYS_write, fd, s, n);
    if (w == -EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

pid_t tp_os_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/* Reads fd into buf, NUL-terminated, to its end or cap - 1 bytes: the length
 * read; *error is -errno of a failed read, else 0. */
static size_t tp_os_read_fd(int fd, char *buf, size_t cap, long *error) {
  size_t len = 0;
  *error = 0;
  while (len + 1 < cap) {
    long r = TP_SYS(SYS_read, fd, buf + len, cap - 1 - len);
    if (r == -EINTR) continue;
    if (r < 0) *error = r;
    if (r <= 0) break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  return len;
}

size_t tp_os_read_file(const char *path, char *buf, size_t cap) {
  int fd = (int)TP_SYS(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  long error;
  size_t len = tp_os_read_fd(fd, buf, cap, &error);
  TP_SYS(SYS_close, fd);
  return len;
}

/* Reads the regular file at path into buf, NUL-terminated: its length, or
 * -errno; -EINVAL when it is not a regular file (a FIFO or a terminal would
 * block the read, and with it the program's first malloc) nor /dev/null,
 * which reads empty.  *whole is false when the file did not fit. */
long tp_os_read_regular_file(const char *path, char *buf, size_t cap, bool *whole) {
  int fd = (int)TP_SYS(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fd;
  struct stat st;
  long r = TP_SYS(SYS_fstat, fd, &st);
  if (r == 0 && !S_ISREG(st.st_mode) && !(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))) r = -EINVAL;
  size_t len = 0;
  if (r == 0) len = tp_os_read_fd(fd, buf, cap, &r);
  char more;
  *whole = r < 0 || len + 1 < cap || TP_SYS(SYS_read, fd, &more, 1) <= 0;
  TP_SYS(SYS_close, fd);
  if (r < 0) buf[0] = '\0';
  return r < 0 ? r : (long)len;
}

/* The /proc files read again and again (the helpers' beat, the recorder's
 * snapshots), kept open high and read with pread.  Opened for each read, each
 * took the lowest free descriptor for a moment: the one a program between
 * close(0) and open("/dev/null") counts on getting, or one the program closed
 * and took again meanwhile (whose file was then closed under it).  A slot
 * holds the descriptor and the pid that opened it; a reader takes it out
 * while it reads (its descriptor noted, for a fork meanwhile), and one that
 * finds it taken reads nothing.  Under a soft RLIMIT_NOFILE below 1000 a
 * descriptor stays where open put it, and is closed after each read rather
 * than held low. */
#define TP_OS_PROC_TAKEN UINT64_MAX
static const char *const tp_os_proc_paths[TP_OS_PROC_COUNT] = {"/proc/self/stat", "/proc/self/statm",
                                                                "/proc/self/maps"};
static struct {
  _Atomic uint64_t slot; /* 0: none; else pid << 32 | descriptor */
  int taken_fd;          /* the taker's descriptor, -1 if none */
  dev_t dev;             /* of the slot's descriptor, written by its taker */
  ino_t ino;
} tp_os_proc[TP_OS_PROC_COUNT];

/* The file's descriptor, taken out of its slot (opened if need be), or
 * -EBUSY when another thread has it, or -errno. */
static int tp_os_proc_take(tp_os_proc_file which) {
  uint64_t slot = atomic_exchange(&tp_os_proc[which].slot, TP_OS_PROC_TAKEN);
  if (slot == TP_OS_PROC_TAKEN) return -EBUSY;
  int fd = slot ? (int)(uint32_t)slot : -1;
  /* Another process's (a child made without fork's handlers), or one the
   * program closed, whose number may be its own now: not ours to use or close. */
  if (fd >= 0 && ((pid_t)(slot >> 32) != getpid() || !tp_os_fd_is(fd, tp_os_proc[which].dev, tp_os_proc[which].ino)))
    fd = -1;
  struct stat st;
  if (fd < 0) {
    fd = tp_os_fd_out_of_the_way((int)TP_SYS(SYS_openat, AT_FDCWD, tp_os_proc_paths[which], O_RDONLY | O_CLOEXEC));
    if (fd >= 0 && TP_SYS(SYS_fstat, fd, &st) == 0) tp_os_proc[which].dev = st.st_dev, tp_os_proc[which].ino = st.st_ino;
  }
  tp_os_proc[which].taken_fd = fd;
  return fd;
}

static void tp_os_proc_give(tp_os_proc_file which, int fd) {
  tp_os_proc[which].taken_fd = -1;
  if (fd >= 0 && fd < TP_OS_FD_FLOOR) TP_SYS(SYS_close, fd), fd = -1;
  atomic_store(&tp_os_proc[which].slot, fd < 0 ? 0 : (uint64_t)getpid() << 32 | (uint32_t)fd);
}

long tp_os_proc_read(tp_os_proc_file which, char *buf, size_t cap, uint64_t offset) {
  int fd = tp_os_proc_take(which);
  if (fd == -EBUSY) {
    buf[0] = '\0';
    return -EBUSY;
  }
  long r = fd < 0 ? fd : -EINTR;
  while (r == -EINTR) r = TP_SYS(SYS_pread64, fd, buf, cap - 1, offset);
  buf[r > 0 ? r : 0] = '\0';
  tp_os_proc_give(which, fd);
  return r;
}

/* Opens them all now, as a helper thread starts: at the start, in a fork
 * child, after unshare, the program has one thread, mostly, and the moment
 * each open takes a low number cannot meet the program's own opens. */
void tp_os_proc_prepare(void) {
  for (int i = 0; i < TP_OS_PROC_COUNT; i++) {
    int fd = tp_os_proc_take((tp_os_proc_file)i);
    if (fd != -EBUSY) tp_os_proc_give((tp_os_proc_file)i, fd);
  }
}

/* The parent's descriptors (they read the parent's files), taken or not,
 * are closed while the child runs only the fork handlers. */
void tp_os_after_fork_child(void) {
  atomic_store_explicit(&tp_os_memory_locked, false, memory_order_relaxed); /* a child inherits no locks */
  for (int i = 0; i < TP_OS_PROC_COUNT; i++) {
    uint64_t slot = atomic_exchange(&tp_os_proc[i].slot, 0);
    int fd = slot == TP_OS_PROC_TAKEN ? tp_os_proc[i].taken_fd : slot ? (int)(uint32_t)slot : -1;
    if (fd >= 0) TP_SYS(SYS_close, fd);
    tp_os_proc[i].taken_fd = -1;
  }
}

/* From /proc/self/stat: its thread count (field 20) less the group leader
 * when that has exited, which stays a zombie, and counted, while other
 * threads live. */
int tp_os_running_threads(void) {
  char buf[1024];
  long r;
  for (int tries = 0; (r = tp_os_proc_read(TP_OS_PROC_STAT, buf, sizeof buf, 0)) == -EBUSY && tries < 1000; tries++)
    sched_yield(); /* another thread is reading it: a few microseconds */
  if (r <= 0) return -1;
  const char *field = strrchr(buf, ')'); /* the name in parentheses may hold anything */
  if (!field || field[1] != ' ') return -1;
  field += 2; /* field 3: the state */
  char state = *field;
  for (int n = 3; n < 20; n++) {
    field = strchr(field, ' ');
    if (!field) return -1;
    field++;
  }
  int threads = atoi(field);
  if (threads <= 0) return -1;
  return state == 'Z' ? threads - 1 : threads;
}

/* Formats into a stack buffer: vsnprintf with integer and string conversions
 * does not allocate, so this is safe inside the allocator. */
static void tp_vmessage(const char *fmt, va_list ap) {
  char line[512];
  int n = snprintf(line, sizeof line, "tierpool: ");
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  if (m < 0) m = 0;
  size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
  line[len++] = '\n';
  int saved = errno;
  tp_os_write(2, line, len);
  errno = saved;
}

void tp_message(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tp_vmessage(fmt, ap);
  va_end(ap);
}

void tp_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tp_vmessage(fmt, ap);
  va_end(ap);
  abort();
}

/* Programs close descriptors they did not open (daemons at start, a child
 * before exec) and may open a file of their own under the same number: the
 * library writes to one of its descriptors only while it still names the
 * file it was. */
bool tp_os_fd_is(int fd, dev_t dev, ino_t ino) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

const char *tp_os_error_text(int err) {
  const char *text = strerrordesc_np(err);
  return text ? text : "unknown error";
}

/* The library's own descriptors (the trace, the copy of stderr for the exit
 * report, libunwind's pipe, the kept /proc files and perf map) sit high:
 * open(2) hands out the lowest free number and programs count on it (a
 * daemon opening its files after closing what it did not open, a test
 * listing what a child inherited), and a number the program closes and takes
 * again should not be one the library still uses.  From TP_OS_FD_FLOOR
 * (internal.h), when the soft limit allows; under a lower limit they stay
 * where open(2) put them (a program that lowered its limit may hold numbers
 * above it and count every number below as its own). */
int tp_os_fd_out_of_the_way(int fd) {
  if (fd < 0 || fd >= TP_OS_FD_FLOOR) return fd;
  long high = TP_SYS(SYS_fcntl, fd, F_DUPFD_CLOEXEC, TP_OS_FD_FLOOR);
  if (high < 0) return fd; /* none free up there: where it is */
  TP_SYS(SYS_close, fd);
  return (int)high;
}
