/* test_node_budget.c — the node-wide budget across real processes.
 *
 * Includes preload/node_budget.c itself so that the checks can read the
 * segment's slots and lock independently of the code under test, and can
 * forge slots (a reused pid, a full table) or die holding the lock.
 * Usage: test_node_budget CASE   (share, kill, stale, mode, bad) */
#include "../../preload/node_budget.c"

#include <stdlib.h>
#include <sys/wait.h>

#define MiB ((uint64_t)1 << 20)

static int failures;
#define CHECK(cond, ...)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      failures++;                                                                \
      fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
      fprintf(stdout, __VA_ARGS__);                                              \
      fputc('\n', stdout);                                                       \
      fflush(stdout);                                                            \
    }                                                                            \
  } while (0)

/* ---- helpers -------------------------------------------------------------- */

static char names[16][64];
static int name_count;

/* A name no other run uses; every one is unlinked at exit. */
static const char *unique_name(const char *what) {
  snprintf(names[name_count], sizeof names[0], "nbtest-%d-%s", (int)getpid(), what);
  return names[name_count++];
}

static void segment_path(const char *name, char *out, size_t cap) {
  snprintf(out, cap, "/dev/shm/tierpool-%s", name);
}

static void unlink_all(void) {
  char path[128];
  for (int i = 0; i < name_count; i++) {
    segment_path(names[i], path, sizeof path);
    unlink(path);
  }
}

/* What a new process would start from: no mapping, no slot. */
static void fresh_process(void) {
  if (tp_nb.seg) nb_unmap(tp_nb.seg, sizeof *tp_nb.seg);
  tp_nb.seg = NULL;
  tp_node_budget_after_fork_child();
}

/* Sum of the slots, read under the segment's lock: independent of seg->used. */
static uint64_t slot_sum(tp_nb_segment *seg) {
  int r = pthread_mutex_lock(&seg->lock);
  if (r == EOWNERDEAD) pthread_mutex_consistent(&seg->lock);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < TP_NB_SLOTS; i++)
    if (seg->slots[i].pid) sum += seg->slots[i].bytes;
  pthread_mutex_unlock(&seg->lock);
  return sum;
}

/* stderr goes to a memory file between capture_begin and capture_end. */
static int saved_stderr = -1;
static void capture_begin(void) {
  fflush(stderr);
  int fd = memfd_create("stderr", 0);
  saved_stderr = dup(2);
  dup2(fd, 2);
  close(fd);
}
static int capture_end(char *buf, size_t cap) { /* returns the number of lines */
  fflush(stderr);
  ssize_t n = pread(2, buf, cap - 1, 0);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  buf[n > 0 ? n : 0] = '\0';
  int lines = 0;
  for (char *p = buf; *p; p++) lines += *p == '\n';
  return lines;
}

static pid_t spawn(void (*body)(void *), void *arg) {
  pid_t pid = fork();
  if (pid == 0) {
    failures = 0; /* the child's status reports its own checks */
    tp_node_budget_after_fork_child();
    body(arg);
    _exit(failures ? 1 : 0);
  }
  return pid;
}

static int reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return status;
}

static void wait_byte(int fd) {
  char c;
  while (read(fd, &c, 1) < 0 && errno == EINTR) {}
}

/* ---- 1. three processes share one budget ---------------------------------- */

typedef struct { _Atomic uint64_t refused, taken; int index; uint64_t total; const char *name; } worker_result;

static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static void share_worker(void *arg) {
  worker_result *r = arg;
  if (r->index > 0) { /* the others open by name, as separate programs would */
    fresh_process();
    CHECK(tp_node_budget_open(r->name, r->total, 0600), "worker %d open", r->index);
  }
  uint64_t rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid(), mine = 0;
  for (int i = 0; i < 20000; i++) {
    uint64_t step = (next_random(&rng) % (8 * MiB / 4096) + 1) * 4096;
    if (next_random(&rng) % 10 < 6) {
      if (tp_node_budget_take(step)) mine += step, r->taken++;
      else r->refused++;
    } else if (mine) {
      step = step > mine ? mine : step;
      tp_node_budget_give(step);
      mine -= step;
    }
    CHECK(tp_node_budget_held() == mine, "held %llu, expected %llu",
          (unsigned long long)tp_node_budget_held(), (unsigned long long)mine);
    CHECK(mine <= r->total, "held more than the total");
  }
  tp_node_budget_give(mine);
  CHECK(tp_node_budget_held() == 0, "held after giving all back");
}

static void test_share(void) {
  const char *name = unique_name("share");
  uint64_t total = 64 * MiB;
  CHECK(tp_node_budget_open(name, total, 0600), "open");
  worker_result *res = mmap(NULL, 3 * sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pid_t pids[3];
  for (int i = 0; i < 3; i++) {
    res[i] = (worker_result){.index = i, .total = total, .name = name};
    pids[i] = spawn(share_worker, &res[i]);
  }
  uint64_t peak = 0, samples = 0;
  int running = 3;
  while (running) {
    uint64_t used = tp_node_budget_used(), sum = slot_sum(tp_nb.seg);
    CHECK(used <= total, "used %llu > total", (unsigned long long)used);
    CHECK(sum <= total, "slots sum %llu > total", (unsigned long long)sum);
    peak = sum > peak ? sum : peak;
    samples++;
    for (int i = 0; i < 3; i++) {
      int status;
      if (pids[i] && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d status %#x", i, status);
        pids[i] = 0;
        running--;
      }
    }
  }
  uint64_t refused = 0, taken = 0;
  for (int i = 0; i < 3; i++) refused += res[i].refused, taken += res[i].taken;
  printf("share: %llu samples, peak %llu MiB of %llu, %llu takes, %llu refused\n",
         (unsigned long long)samples, (unsigned long long)(peak / MiB), (unsigned long long)(total / MiB),
         (unsigned long long)taken, (unsigned long long)refused);
  CHECK(refused > 0, "the budget was never spent: the test did not reach the limit");
  CHECK(peak > total - 8 * MiB, "peak %llu never came near the total", (unsigned long long)peak);
  CHECK(tp_node_budget_used() == 0, "used %llu after all gave back", (unsigned long long)tp_node_budget_used());
  CHECK(slot_sum(tp_nb.seg) == 0, "slots after all gave back");
  munmap(res, 3 * sizeof *res);
}

/* ---- 2. SIGKILL gives the share back, even with the lock held -------------- */

typedef struct { int ready_fd; uint64_t bytes; int mode; } holder_arg;
enum { HOLD_SHARE, HOLD_LOCK, HOLD_LOCK_MID_UPDATE };

static void holder(void *arg) {
  holder_arg *h = arg;
  CHECK(tp_node_budget_take(h->bytes), "holder take");
  if (h->mode != HOLD_SHARE) {
    pthread_mutex_lock(&tp_nb.seg->lock);
    if (h->mode == HOLD_LOCK_MID_UPDATE) tp_nb.seg->slots[tp_nb.slot].bytes += 3 * MiB; /* used not yet */
  }
  CHECK(write(h->ready_fd, "r", 1) == 1, "ready");
  for (;;) pause(); /* until SIGKILL */
}

/* Starts fn (holder or sleeper) in a process of its own; returns once it
 * holds its share (and the lock, as mode says). */
static pid_t start_holder(void (*fn)(void *), uint64_t bytes, int mode) {
  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  holder_arg h = {p[1], bytes, mode};
  pid_t pid = spawn(fn, &h);
  wait_byte(p[0]);
  close(p[0]), close(p[1]);
  return pid;
}

static void kill_holder(uint64_t bytes, int mode) {
  pid_t pid = start_holder(holder, bytes, mode);
  if (mode == HOLD_SHARE) {
    CHECK(!tp_node_budget_take(64 * MiB - bytes + 4096), "took past a live holder's share");
    CHECK(tp_node_budget_used() == bytes, "used %llu while holder lives", (unsigned long long)tp_node_budget_used());
  }
  kill(pid, SIGKILL);
  int status = reap(pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "holder status %#x", status);
}

static void taker(void *arg) {
  uint64_t bytes = *(uint64_t *)arg;
  CHECK(tp_node_budget_take(bytes), "taker take %llu", (unsigned long long)bytes);
  CHECK(tp_node_budget_used() == bytes, "taker used");
  tp_node_budget_give(bytes);
}

static void test_kill(void) {
  const char *name = unique_name("kill");
  uint64_t total = 64 * MiB;
  CHECK(tp_node_budget_open(name, total, 0600), "open");

  kill_holder(40 * MiB, HOLD_SHARE);
  CHECK(tp_node_budget_take(total), "the whole budget after SIGKILL");
  CHECK(tp_node_budget_used() == total, "used");
  tp_node_budget_give(total);

  /* A holder that keeps the lock (stopped, say) costs a request, not a hang:
   * refused after about a second. */
  pid_t stuck = start_holder(holder, 10 * MiB, HOLD_LOCK);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(!tp_node_budget_take(MiB), "took while another process holds the lock");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  CHECK(waited >= 0.5 && waited < 10, "waited %.2f s for a held lock", waited);
  kill(stuck, SIGKILL);
  reap(stuck);
  CHECK(tp_node_budget_take(total), "the whole budget once the holder is gone");
  tp_node_budget_give(total);

  kill_holder(10 * MiB, HOLD_LOCK); /* dies holding the lock: EOWNERDEAD next */
  CHECK(tp_node_budget_take(total), "the whole budget after SIGKILL with the lock held");
  tp_node_budget_give(total);

  kill_holder(10 * MiB, HOLD_LOCK_MID_UPDATE); /* slot and used disagree */
  CHECK(tp_node_budget_take(5 * MiB), "take after a death mid-update");
  CHECK(tp_nb.seg->used == slot_sum(tp_nb.seg), "used %llu, slots %llu", (unsigned long long)tp_nb.seg->used,
        (unsigned long long)slot_sum(tp_nb.seg));
  CHECK(tp_node_budget_take(total - 5 * MiB), "rest of the budget");
  CHECK(!tp_node_budget_take(4096), "past the total");
  tp_node_budget_give(total);
  CHECK(tp_node_budget_used() == 0 && tp_node_budget_held() == 0, "all back");

  uint64_t all = total; /* the lock still works across processes */
  pid_t pid = spawn(taker, &all);
  int status = reap(pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "taker status %#x", status);
}

/* ---- 3. stale slots: a reused pid, a dead pid, a live one, our own before exec -- */

static void sleeper(void *arg) {
  holder_arg *h = arg;
  CHECK(tp_node_budget_take(h->bytes), "sleeper take");
  CHECK(write(h->ready_fd, "r", 1) == 1, "ready");
  for (;;) pause();
}

static void forge_slot(int32_t pid, uint64_t start, uint64_t bytes) {
  tp_nb_segment *seg = tp_nb.seg;
  pthread_mutex_lock(&seg->lock);
  for (uint32_t i = 0; i < TP_NB_SLOTS; i++)
    if (!seg->slots[i].pid) {
      seg->slots[i] = (tp_nb_slot){.pid = pid, .start = start, .bytes = bytes};
      seg->used += bytes;
      break;
    }
  pthread_mutex_unlock(&seg->lock);
}

static void test_stale(void) {
  const char *name = unique_name("stale");
  uint64_t total = 64 * MiB;
  CHECK(tp_node_budget_open(name, total, 0600), "open");
  int32_t me = (int32_t)getpid();
  uint64_t my_start = nb_start_time(me, NULL);
  CHECK(my_start > 0, "start time of this process from /proc");

  forge_slot(me, my_start + 7, 50 * MiB); /* our pid, another process's start time */
  CHECK(tp_nb.seg->used == 50 * MiB, "forged");
  CHECK(tp_node_budget_take(40 * MiB), "the reused pid's share came back");
  CHECK(slot_sum(tp_nb.seg) == 40 * MiB, "only ours left");
  tp_node_budget_give(40 * MiB);

  pid_t dead = fork();
  if (dead == 0) _exit(0);
  reap(dead);
  forge_slot((int32_t)dead, 0, 60 * MiB); /* a dead pid, start unknown */
  CHECK(tp_node_budget_take(30 * MiB), "the dead pid's share came back");
  tp_node_budget_give(30 * MiB);

  pid_t live = start_holder(sleeper, 50 * MiB, HOLD_SHARE);
  CHECK(!tp_node_budget_take(30 * MiB), "a live process's share was taken");
  CHECK(tp_node_budget_used() == 50 * MiB, "live share kept: %llu", (unsigned long long)tp_node_budget_used());
  kill(live, SIGKILL);
  reap(live);

  /* Our slot freed by another process (as from another pid namespace): the
   * share is gone; give() must not touch the slot, take() claims a new one. */
  CHECK(tp_node_budget_used() == 0, "the killed sleeper's share back");
  CHECK(tp_node_budget_take(8 * MiB), "take before losing the slot");
  tp_nb_segment *seg = tp_nb.seg;
  pthread_mutex_lock(&seg->lock);
  seg->used -= seg->slots[tp_nb.slot].bytes;
  seg->slots[tp_nb.slot] = (tp_nb_slot){0};
  pthread_mutex_unlock(&seg->lock);
  forge_slot(me + 0, my_start + 1, 0); /* someone else now sits in it */
  char buf[1024];
  capture_begin();
  tp_node_budget_give(8 * MiB);
  int lines = capture_end(buf, sizeof buf);
  CHECK(lines == 1 && strstr(buf, "reclaimed this process's share"), "%d lines: %s", lines, buf);
  CHECK(tp_node_budget_held() == 0, "held after losing the slot");
  CHECK(tp_nb.seg->used == 0 && slot_sum(tp_nb.seg) == 0, "the other slot untouched");
  CHECK(tp_node_budget_take(total), "a new slot");
  tp_node_budget_give(total);

  /* After an exec, the same pid and start time open again: the old share is void. */
  forge_slot(me, my_start, 20 * MiB);
  fresh_process();
  CHECK(tp_node_budget_open(name, total, 0600), "reopen");
  CHECK(tp_node_budget_used() == 0, "the pre-exec share is released: %llu", (unsigned long long)tp_node_budget_used());

  /* A full table of live processes: take fails with one line, once. */
  CHECK(tp_node_budget_used() == 0, "dead slots reclaimed");
  for (uint32_t i = 0; i < TP_NB_SLOTS; i++) forge_slot(me, my_start, 0);
  pid_t child = fork();
  if (child == 0) {
    failures = 0;
    tp_node_budget_after_fork_child();
    capture_begin();
    bool first = tp_node_budget_take(4096), second = tp_node_budget_take(4096);
    lines = capture_end(buf, sizeof buf);
    CHECK(!first && !second, "take with a full table");
    CHECK(lines == 1 && strstr(buf, "slots"), "one line, got %d: %s", lines, buf);
    _exit(failures ? 1 : 0);
  }
  int status = reap(child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "full-table child %#x", status);
}

/* ---- 4. permissions ---------------------------------------------------------- */

static void check_mode(unsigned mode) {
  char what[16], path[128];
  snprintf(what, sizeof what, "mode%o", mode);
  const char *name = unique_name(what);
  fresh_process();
  CHECK(tp_node_budget_open(name, 16 * MiB, mode), "open with mode %o", mode);
  segment_path(name, path, sizeof path);
  struct stat st;
  CHECK(stat(path, &st) == 0, "stat %s", path);
  CHECK((st.st_mode & 07777) == mode, "%s: mode %o, expected %o", path, st.st_mode & 07777, mode);
  CHECK(st.st_size == (off_t)sizeof(tp_nb_segment), "size");
}

static void test_mode(void) {
  umask(077); /* the configured mode wins over the umask */
  check_mode(0600);
  check_mode(0640);
  check_mode(0660);
  char buf[1024];
  fresh_process();
  capture_begin();
  bool ok = tp_node_budget_open(unique_name("mode400"), 16 * MiB, 0400);
  int lines = capture_end(buf, sizeof buf);
  CHECK(!ok && lines == 1 && strstr(buf, "node_budget_mode 0400"), "mode 0400: %d lines: %s", lines, buf);
  char leftover[128];
  snprintf(leftover, sizeof leftover, "/dev/shm/.tierpool-nbtest-%d-mode600.%d", (int)getpid(), (int)getpid());
  CHECK(access(leftover, F_OK) != 0, "temporary file left behind");
}

/* ---- 5. bad names, foreign segments, another total -------------------------- */

static void expect_refused(const char *name, const char *needle) {
  char buf[1024];
  fresh_process();
  capture_begin();
  bool ok = tp_node_budget_open(name, 16 * MiB, 0600);
  int lines = capture_end(buf, sizeof buf);
  CHECK(!ok, "open \"%s\" succeeded", name ? name : "(null)");
  CHECK(lines == 1 && strstr(buf, needle), "\"%s\": %d lines, want \"%s\": %s", name ? name : "(null)",
        lines, needle, buf);
  CHECK(tp_node_budget_take(MiB), "take without a budget is unlimited");
}

static void write_file(const char *name, const void *data, size_t size) {
  char path[128];
  segment_path(name, path, sizeof path);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size, "write %s", path);
  close(fd);
}

static void test_bad(void) {
  char needle[128], long_name[64];
  const char *bad[] = {"", "a/b", "../x", "sp ace", ".", "..", "tab\tname", "ünï"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(needle, sizeof needle, "node_budget_name \"%s\"", bad[i]);
    expect_refused(bad[i], needle);
  }
  expect_refused(NULL, "node_budget_name \"\"");
  memset(long_name, 'x', 49);
  long_name[49] = '\0';
  snprintf(needle, sizeof needle, "node_budget_name \"%s\"", long_name);
  expect_refused(long_name, needle);
  long_name[48] = '\0'; /* 48 is allowed */
  fresh_process();
  CHECK(tp_node_budget_open(long_name, 16 * MiB, 0600), "48-character name");
  snprintf(names[name_count++], sizeof names[0], "%s", long_name);

  static tp_nb_segment image; /* a future version of the layout */
  image = (tp_nb_segment){.magic = TP_NB_MAGIC, .version = TP_NB_VERSION + 1, .slot_count = TP_NB_SLOTS,
                          .slot_size = sizeof(tp_nb_slot), .lock_size = sizeof(pthread_mutex_t),
                          .segment_size = sizeof image, .total = 16 * MiB};
  const char *name = unique_name("v2");
  write_file(name, &image, sizeof image);
  expect_refused(name, "layout version 2");
  image.version = TP_NB_VERSION; /* right version, wrong size */
  name = unique_name("short");
  write_file(name, &image, sizeof image / 2);
  expect_refused(name, "layout version 1");
  name = unique_name("foreign");
  write_file(name, "hello, I am somebody else's file", 32);
  expect_refused(name, "not a tierpool node budget");
  /* A sound segment of another user, open to all (0666): not one a process
   * configured 0600 meant to join (its maker holds the lock). */
  if (geteuid() == 0) {
    char path[128];
    name = unique_name("other-user");
    write_file(name, &image, sizeof image); /* the right version and size */
    segment_path(name, path, sizeof path);
    CHECK(chown(path, 65534, 65534) == 0 && chmod(path, 0666) == 0, "chown %s", path);
    expect_refused(name, "owned by uid 65534, not this process's 0");
  }
  name = unique_name("tiny");
  write_file(name, "x", 1);
  expect_refused(name, "not a tierpool node budget");

  /* Made in another pid namespace: its pids mean other processes here. */
  name = unique_name("pidns");
  fresh_process();
  CHECK(tp_node_budget_open(name, 16 * MiB, 0600), "create for pidns");
  CHECK(tp_nb.seg->pid_namespace == nb_pid_namespace() && tp_nb.seg->pid_namespace > 0, "namespace recorded");
  tp_nb.seg->pid_namespace += 1;
  expect_refused(name, "another pid namespace");

  /* A second opener with another total: one line; the segment's total wins. */
  name = unique_name("total");
  fresh_process();
  CHECK(tp_node_budget_open(name, 64 * MiB, 0600), "creator");
  fresh_process();
  char buf[1024];
  capture_begin();
  bool ok = tp_node_budget_open(name, 128 * MiB, 0600);
  int lines = capture_end(buf, sizeof buf);
  CHECK(ok && lines == 1 && strstr(buf, "node_budget 128M differs from the segment's 64M"), "%d lines: %s",
        lines, buf);
  CHECK(!tp_node_budget_take(64 * MiB + 4096), "the segment's total holds");
  CHECK(tp_node_budget_take(64 * MiB), "the whole segment total");
  errno = EILSEQ; /* the program's errno survives the budget's system calls */
  tp_node_budget_take(MiB);
  tp_node_budget_give(2 * MiB);
  tp_node_budget_used();
  CHECK(errno == EILSEQ, "errno changed to %d", errno);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_node_budget share|kill|stale|mode|bad\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  atexit(unlink_all); /* also when a check fails early */
  if (!strcmp(argv[1], "share")) test_share();
  else if (!strcmp(argv[1], "kill")) test_kill();
  else if (!strcmp(argv[1], "stale")) test_stale();
  else if (!strcmp(argv[1], "mode")) test_mode();
  else if (!strcmp(argv[1], "bad")) test_bad();
  else return fprintf(stderr, "unknown case %s\n", argv[1]), 2;
  printf("%s: %s\n", argv[1], failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
