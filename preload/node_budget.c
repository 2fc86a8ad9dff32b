/* node_budget.c — the node-wide overflow budget in POSIX shared memory.
 *
 * Every process that opens the same name maps one segment, /dev/shm/tierpool-NAME
 * (shm_open name "/tierpool-NAME"): a versioned header, the total, a robust
 * process-shared mutex, and a table of slots {pid, start time, bytes}, one per
 * process that took bytes.  The sum of the slots never passes the total.  A
 * slot whose process is gone — kill(pid, 0) says ESRCH, or /proc/PID/stat's
 * start time differs (the pid was reused) — is reclaimed whenever a process
 * runs short or reads the total, so a process killed by SIGKILL gives its share
 * back the next time any process touches the segment; one killed while holding
 * the lock is handled by the robust mutex (EOWNERDEAD: the sum is recomputed).
 *
 * The creator builds the segment under a temporary name and links it into
 * place, so no process ever sees a half-initialised one; its total and mode
 * win (the mode is applied with fchmod: the umask does not narrow it). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define TP_NB_MAGIC 0x7470626e6f646531ULL /* "tpbnode1" */
#define TP_NB_VERSION 1u
#define TP_NB_SLOTS 1024u
#define TP_NB_NAME_MAX 48
#define TP_NB_DIR "/dev/shm/"
#define TP_NB_PREFIX "tierpool-"

/* One process's share.  pid 0: free.  start is written before pid, so a
 * process killed while claiming leaves a slot that reads as dead. */
typedef struct tp_nb_slot {
  int32_t pid;
  uint32_t reserved;
  uint64_t start; /* /proc/PID/stat field 22, clock ticks since boot; 0: unknown */
  uint64_t bytes;
} tp_nb_slot;

/* The segment.  Invariant (under lock): used == sum of slots[].bytes <= total. */
typedef struct tp_nb_segment {
  uint64_t magic;
  uint32_t version;
  uint32_t slot_count;
  uint32_t slot_size;    /* sizeof(tp_nb_slot) */
  uint32_t lock_size;    /* sizeof(pthread_mutex_t): the same C library on both sides */
  uint64_t segment_size; /* sizeof(tp_nb_segment) */
  uint64_t pid_namespace; /* inode of /proc/self/ns/pid: pids mean the same to every sharer */
  uint64_t total;
  uint64_t used;
  pthread_mutex_t lock; /* process-shared, robust */
  tp_nb_slot slots[TP_NB_SLOTS];
} tp_nb_segment;

/* This process's view.  slot and pid are reset in a forked child. */
static struct {
  tp_nb_segment *seg;
  char name[TP_NB_NAME_MAX + 1];
  int slot;             /* index in seg->slots, -1: none yet (under lock) */
  int32_t pid;          /* owner of `slot`; 0: not known yet */
  uint64_t start;
  _Atomic uint64_t held; /* mirror of slots[slot].bytes, for held() without the lock */
  bool full_reported;
} tp_nb = {.slot = -1};

/* ---- system helpers -------------------------------------------------------- */

static const char *nb_error_text(int err) {
  if (err == EACCES || err == EPERM) return "permission denied";
  const char *name = strerrorname_np(err); /* a constant: strerror may load a locale */
  return name ? name : "error";
}

/* "256M" when exact, else bytes: messages name sizes the way options are written. */
static const char *nb_size_text(uint64_t bytes, char buf[32]) {
  static const char units[] = "KMGTP";
  int u = -1;
  while (u < 4 && bytes >= 1024 && bytes % 1024 == 0) bytes /= 1024, u++;
  if (u < 0) snprintf(buf, 32, "%llu", (unsigned long long)bytes);
  else snprintf(buf, 32, "%llu%c", (unsigned long long)bytes, units[u]);
  return buf;
}

/* The inode number in "pid:[4026531836]"; 0 when /proc is not there. */
static uint64_t nb_pid_namespace(void) {
  char link[64];
  ssize_t n = readlink("/proc/self/ns/pid", link, sizeof link - 1);
  uint64_t v = 0;
  for (ssize_t i = 0; i < n; i++)
    if (link[i] >= '0' && link[i] <= '9') v = v * 10 + (uint64_t)(link[i] - '0');
  return v;
}

static void *nb_map(int fd, size_t size) {
  long r = syscall(SYS_mmap, NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return r == -1 ? NULL : (void *)r;
}

static void nb_unmap(void *p, size_t size) { syscall(SYS_munmap, p, size); }

/* Field 22 of /proc/PID/stat, counted after the last ')' since the command
 * name may hold spaces.  0 when unreadable; *gone set when the entry is missing. */
static uint64_t nb_start_time(int32_t pid, bool *gone) {
  char path[40], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (gone) *gone = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (gone) *gone = errno == ENOENT || errno == ESRCH;
    return 0;
  }
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
  if (!p) return 0;
  uint64_t v = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
  return v;
}

static bool nb_slot_alive(const tp_nb_slot *s) {
  bool denied = false; /* the pid exists, another user's */
  if (kill(s->pid, 0) != 0) {
    if (errno == ESRCH) return false;
    denied = errno == EPERM;
  }
  if (!s->start) return true; /* no /proc when it was claimed: kill alone decides */
  bool gone;
  uint64_t now = nb_start_time(s->pid, &gone);
  /* /proc mounted hidepid=2 hides other users' processes: a missing entry of
   * a pid that exists is hidden, not gone (its reuse cannot be told then). */
  if (gone) return denied;
  return now == 0 || now == s->start;
}

/* ---- the lock ---------------------------------------------------------------- */

static void nb_recount(tp_nb_segment *seg) {
  uint64_t used = 0;
  for (uint32_t i = 0; i < TP_NB_SLOTS; i++)
    if (seg->slots[i].pid) used += seg->slots[i].bytes;
  seg->used = used;
}

/* The segment's lock is held for a few instructions; a holder that keeps it
 * longer is stopped (a debugger, SIGSTOP, a frozen cgroup), and every
 * allocation of this process past its reserve would wait with it. */
#define TP_NB_LOCK_WAIT_S 1

static bool nb_lock(tp_nb_segment *seg) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += TP_NB_LOCK_WAIT_S;
  int r = pthread_mutex_clocklock(&seg->lock, CLOCK_MONOTONIC, &deadline);
  if (r == EOWNERDEAD) { /* the holder died mid-update: slots are the truth */
    nb_recount(seg);
    pthread_mutex_consistent(&seg->lock);
    return true;
  }
  if (r == ETIMEDOUT) { /* this request is refused; the next one tries again */
    static _Atomic bool reported;
    if (!atomic_exchange(&reported, true))
      tp_message("node budget \"%s\": another process has held its lock for over %d s (stopped?); "
                 "counted as spent meanwhile", tp_nb.name, TP_NB_LOCK_WAIT_S);
    return false;
  }
  if (r != 0) {
    static _Atomic bool reported;
    if (!atomic_exchange(&reported, true))
      tp_message("node budget \"%s\": lock unusable (%s); node budget spent", tp_nb.name,
                 nb_error_text(r));
    return false;
  }
  return true;
}

static void nb_unlock(tp_nb_segment *seg) { pthread_mutex_unlock(&seg->lock); }

static void nb_free_slot(tp_nb_segment *seg, tp_nb_slot *s) { /* lock held */
  seg->used -= s->bytes;
  s->bytes = 0;
  s->pid = 0;
}

/* Frees the slots of dead processes (lock held). */
static void nb_reclaim_dead(tp_nb_segment *seg) {
  for (uint32_t i = 0; i < TP_NB_SLOTS; i++) {
    tp_nb_slot *s = &seg->slots[i];
    if (s->pid && (int)i != tp_nb.slot && !nb_slot_alive(s)) nb_free_slot(seg, s);
  }
}

/* Whether `bytes` more stay within the total (lock held). */
static bool nb_fits(const tp_nb_segment *seg, uint64_t bytes) {
  return seg->used <= seg->total && bytes <= seg->total - seg->used;
}

static void nb_know_self(void) {
  if (tp_nb.pid) return;
  tp_nb.pid = (int32_t)getpid();
  tp_nb.start = nb_start_time(tp_nb.pid, NULL);
}

atomic_bool tp_node_budget_share_lost;

/* Whether tp_nb.slot is still ours (lock held); if another process freed it,
 * our share is gone with it. */
static bool nb_slot_mine(tp_nb_segment *seg) {
  if (tp_nb.slot < 0) return false;
  tp_nb_slot *s = &seg->slots[tp_nb.slot];
  if (s->pid == tp_nb.pid && s->start == tp_nb.start) return true;
  tp_message("node budget \"%s\": another process reclaimed this process's share", tp_nb.name);
  atomic_store_explicit(&tp_node_budget_share_lost, true, memory_order_relaxed);
  tp_nb.slot = -1;
  atomic_store_explicit(&tp_nb.held, 0, memory_order_relaxed);
  return false;
}

/* This process's slot, claimed on first use (lock held).  -1: the table is full. */
static int nb_own_slot(tp_nb_segment *seg) {
  if (nb_slot_mine(seg)) return tp_nb.slot;
  nb_know_self();
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < TP_NB_SLOTS; i++) {
      tp_nb_slot *s = &seg->slots[i];
      if (s->pid) continue;
      s->start = tp_nb.start;
      s->bytes = 0;
      s->pid = tp_nb.pid;
      return tp_nb.slot = (int)i;
    }
    nb_reclaim_dead(seg);
  }
  return -1;
}

/* ---- opening ----------------------------------------------------------------- */

static bool nb_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > TP_NB_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

/* Maps an existing segment and checks its owner and layout.  NULL (after
 * one line) when foreign.  A segment of another user is used only when this
 * process's node_budget_mode shares across users too: with 0600, another
 * user's segment (mode 0666, say) is not one this process meant to join, and
 * whoever made it holds its lock. */
static tp_nb_segment *nb_attach(int fd, const char *path, unsigned mode) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    tp_message("node budget: %s: %s (node budget off)", path, nb_error_text(errno));
    return NULL;
  }
  if (st.st_uid != geteuid() && !(mode & 0066u)) {
    tp_message("node budget: %s: owned by uid %u, not this process's %u, and node_budget_mode %04o "
               "shares with no one else (node budget off)", path, (unsigned)st.st_uid, (unsigned)geteuid(), mode);
    return NULL;
  }
  if ((uint64_t)st.st_size < sizeof(uint64_t) + sizeof(uint32_t)) {
    tp_message("node budget: %s: not a tierpool node budget (%lld bytes); remove it or choose "
               "another node_budget_name", path, (long long)st.st_size);
    return NULL;
  }
  size_t size = (size_t)st.st_size;
  tp_nb_segment *seg = nb_map(fd, size);
  if (!seg) {
    tp_message("node budget: %s: cannot map (%s) (node budget off)", path, nb_error_text(errno));
    return NULL;
  }
  if (seg->magic != TP_NB_MAGIC) {
    tp_message("node budget: %s: not a tierpool node budget; remove it or choose another "
               "node_budget_name", path);
  } else if (seg->version != TP_NB_VERSION || size != sizeof *seg ||
             seg->segment_size != sizeof *seg || seg->slot_count != TP_NB_SLOTS ||
             seg->slot_size != sizeof(tp_nb_slot) || seg->lock_size != sizeof(pthread_mutex_t)) {
    tp_message("node budget: %s: layout version %u (%llu bytes), this library uses version %u "
               "(%zu bytes); processes of both versions cannot share it",
               path, seg->version, (unsigned long long)size, TP_NB_VERSION, sizeof *seg);
  } else if (seg->pid_namespace && nb_pid_namespace() && seg->pid_namespace != nb_pid_namespace()) {
    tp_message("node budget: %s: made in another pid namespace (pid:[%llu]); its pids cannot be "
               "checked from here: share a pid namespace or use another node_budget_name",
               path, (unsigned long long)seg->pid_namespace);
  } else {
    return seg;
  }
  nb_unmap(seg, size);
  return NULL;
}

/* Builds a fresh segment under a temporary name and links it to `path`.
 * Returns the mapping, NULL with *lost when another process linked first. */
static tp_nb_segment *nb_create(const char *path, uint64_t total, unsigned mode, bool *lost) {
  char tmp[128]; /* hidden: no budget's name can be it */
  snprintf(tmp, sizeof tmp, TP_NB_DIR ".%s.%d", path + sizeof TP_NB_DIR - 1, (int)getpid());
  *lost = false;
  unlink(tmp); /* a leftover of an earlier process with this pid */
  int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    tp_message("node budget: %s: cannot create (%s) (node budget off)", tmp, nb_error_text(errno));
    return NULL;
  }
  tp_nb_segment *seg = NULL;
  /* fallocate, not ftruncate: a full tmpfs fails here, not with SIGBUS later */
  if (fchmod(fd, mode) != 0 || (fallocate(fd, 0, 0, sizeof *seg) != 0 &&
                                (errno != EOPNOTSUPP || ftruncate(fd, sizeof *seg) != 0)) ||
      !(seg = nb_map(fd, sizeof *seg))) {
    tp_message("node budget: %s: cannot create (%s) (node budget off)", tmp, nb_error_text(errno));
    goto out;
  }
  seg->version = TP_NB_VERSION;
  seg->slot_count = TP_NB_SLOTS;
  seg->slot_size = sizeof(tp_nb_slot);
  seg->lock_size = sizeof(pthread_mutex_t);
  seg->segment_size = sizeof *seg;
  seg->total = total;
  seg->pid_namespace = nb_pid_namespace();
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&seg->lock, &attr);
  pthread_mutexattr_destroy(&attr);
  seg->magic = TP_NB_MAGIC;
  if (link(tmp, path) != 0) {
    *lost = errno == EEXIST;
    if (!*lost)
      tp_message("node budget: %s: cannot create (%s) (node budget off)", path, nb_error_text(errno));
    nb_unmap(seg, sizeof *seg);
    seg = NULL;
  }
out:
  unlink(tmp);
  close(fd);
  return seg;
}

bool tp_node_budget_open(const char *name, uint64_t total_bytes, unsigned mode) {
  if (tp_nb.seg) return true;
  if (!name || !nb_name_valid(name)) {
    tp_message("node_budget_name \"%s\": use 1 to %d of A-Z a-z 0-9 _ . - (node budget off)",
               name ? name : "", TP_NB_NAME_MAX);
    return false;
  }
  if ((mode & ~0777u) || (mode & 0600u) != 0600u) {
    tp_message("node_budget_mode %04o: want permission bits with owner read and write, e.g. 0600 "
               "(node budget off)", mode);
    return false;
  }
  if (total_bytes == 0) return false;
  int saved = errno;
  char path[sizeof TP_NB_DIR + sizeof TP_NB_PREFIX + TP_NB_NAME_MAX];
  snprintf(path, sizeof path, TP_NB_DIR TP_NB_PREFIX "%s", name);
  snprintf(tp_nb.name, sizeof tp_nb.name, "%s", name);
  tp_nb_segment *seg = NULL;
  for (int attempt = 0; attempt < 3 && !seg; attempt++) {
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      seg = nb_attach(fd, path, mode);
      close(fd);
      if (!seg) break;
    } else if (errno != ENOENT) {
      tp_message("node budget: %s: %s (node budget off)", path, nb_error_text(errno));
      break;
    } else {
      bool lost;
      seg = nb_create(path, total_bytes, mode, &lost);
      if (!seg && !lost) break;
    }
  }
  if (seg && seg->total != total_bytes) {
    char want[32], have[32];
    tp_message("node budget \"%s\": node_budget %s differs from the segment's %s; using %s",
               name, nb_size_text(total_bytes, want), nb_size_text(seg->total, have), have);
  }
  /* A slot with our pid and start time is this process before an exec: the
   * memory it paid for is gone with the old image. */
  if (seg && nb_lock(seg)) {
    nb_know_self();
    for (uint32_t i = 0; i < TP_NB_SLOTS; i++)
      if (seg->slots[i].pid == tp_nb.pid && seg->slots[i].start == tp_nb.start)
        nb_free_slot(seg, &seg->slots[i]);
    nb_unlock(seg);
  }
  tp_nb.seg = seg;
  errno = saved;
  return seg != NULL;
}

/* ---- taking and giving --------------------------------------------------------- */

bool tp_node_budget_take(uint64_t bytes) {
  tp_nb_segment *seg = tp_nb.seg;
  if (!seg || bytes == 0) return true; /* no node budget: nothing to share */
  int saved = errno;
  bool ok = false;
  if (!nb_lock(seg)) goto out;
  int slot = nb_own_slot(seg);
  if (slot < 0) {
    if (!tp_nb.full_reported) {
      tp_nb.full_reported = true;
      tp_message("node budget \"%s\": all %u process slots are taken by live processes; "
                 "this process gets no share", tp_nb.name, TP_NB_SLOTS);
    }
  } else {
    if (!nb_fits(seg, bytes)) nb_reclaim_dead(seg); /* short: are the missing bytes a dead process's? */
    if (nb_fits(seg, bytes)) {
      seg->slots[slot].bytes += bytes;
      seg->used += bytes;
      atomic_store_explicit(&tp_nb.held, seg->slots[slot].bytes, memory_order_relaxed);
      ok = true;
    }
  }
  nb_unlock(seg);
out:
  errno = saved;
  return ok;
}

void tp_node_budget_give(uint64_t bytes) {
  tp_nb_segment *seg = tp_nb.seg;
  if (!seg || bytes == 0) return;
  int saved = errno;
  if (nb_lock(seg)) {
    if (nb_slot_mine(seg)) {
      tp_nb_slot *s = &seg->slots[tp_nb.slot];
      uint64_t back = bytes < s->bytes ? bytes : s->bytes; /* never below zero */
      s->bytes -= back;
      seg->used -= back;
      atomic_store_explicit(&tp_nb.held, s->bytes, memory_order_relaxed);
    }
    nb_unlock(seg);
  }
  errno = saved;
}

uint64_t tp_node_budget_held(void) {
  return atomic_load_explicit(&tp_nb.held, memory_order_relaxed);
}

/* The segment's total (the first opener's), 0 when none is open. */
uint64_t tp_node_budget_total(void) { return tp_nb.seg ? tp_nb.seg->total : 0; }

uint64_t tp_node_budget_used(void) {
  tp_nb_segment *seg = tp_nb.seg;
  if (!seg) return 0;
  int saved = errno;
  uint64_t used = 0;
  if (nb_lock(seg)) {
    nb_reclaim_dead(seg);
    used = seg->used;
    nb_unlock(seg);
  }
  errno = saved;
  return used;
}

void tp_node_budget_after_fork_child(void) {
  tp_nb.slot = -1;
  tp_nb.pid = 0;
  tp_nb.start = 0;
  atomic_store_explicit(&tp_nb.held, 0, memory_order_relaxed);
  tp_nb.full_reported = false;
}
