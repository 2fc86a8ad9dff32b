/* subject.c — the program the profiler tests record: each mode allocates in a
 * known pattern that a checker (trace_check) or a script then finds in the
 * trace or on stderr.  Run with libtierpool.so preloaded, so no ASan here.
 *
 *   histogram          777 B x1000 (malloc), 4000 B x2000 (calloc), 12345 B x3000
 *                      (posix_memalign 64), 500 of the 777s realloc'd to 30000 B; all freed
 *   small N            small sizes N times each (malloc, calloc, 0, memalign, realloc in
 *                      place and moved, frees by another thread); prints the usable sizes
 *   lifetimes          blocks of 1111, 2223, 3335 B freed after 0, 20, 200 ms, and one of
 *                      4447 B freed by another thread after 50 ms
 *   stacks             200 x 5555 B from alloc_here(), called by call_alloc_here()
 *   busy PIDFILE       writes its pid, then allocates and frees for 20 s (to be killed)
 *   fork               100 x 5001 B, then a child allocates 200 x 6007 B and exits
 *   exec               100 x 7003 B, then execs itself as `after-exec`: 100 x 8009 B
 *   exec-busy          100 x 7039 B, then execs itself as `after-exec` while another
 *                      thread allocates and frees 6007 B without pause (run under a
 *                      tracer that holds the exec at its entry: the writer's beats
 *                      come in between)
 *   exec-fails         100 x 4500 B, an exec of a missing file, then 100 x 7027 B
 *   exec-fails-killed  100 x 4500 B, an exec of a missing file, then SIGKILL (by itself)
 *   exec-from-handler [fork|in-lock|small-stack|fork-small-stack|fork-in-lock-forking]
 *                      100 x 7013 B, then a signal handler execs (execv) itself as
 *                      `after-exec`; fork: all that in a forked child (its trace not
 *                      open yet), the parent waits for it; in-lock: the signal comes
 *                      inside a 300 KiB malloc, with the pool's lock held (through
 *                      exec_shim, which must be preloaded); small-stack: the handler
 *                      runs on an 8 KiB signal stack (SIGSTKSZ) with a guard page below;
 *                      fork-in-lock-forking: in a forked child, in-lock, and the
 *                      handler wakes a thread that forks, then execs 50 ms later (before
 *                      the child's writer first writes, 250 ms after the fork)
 *   execveat           100 x 7003 B, then execs itself through execveat as `after-exec`
 *   exec-cancelled     a thread with a cancel pending (deferred) allocates 100 x 7057 B
 *                      and calls an exec that fails, whose flush writes (a cancellation
 *                      point); main joins it, then 100 x 9067 B
 *   spawn              a child (fork, then an exec of itself as `after-exec`) while the
 *                      parent allocates 5009 B for 600 ms; the parent waits for it
 *   exit-on-small-stack 100 x 7019 B, then a handler on an 8 KiB signal stack calls exit(0)
 *   main-thread-exit   100 x 9011 B, then main ends with pthread_exit: the process
 *                      must end, status 0, when its last thread does (no helper of
 *                      the library may keep it alive)
 *   fork-thread-exit   a thread forks; in the child, that thread (the child's only
 *                      one) allocates 100 x 9013 B and returns: the child must end,
 *                      status 0 (Python's test_threading does this)
 *   close-fds FILE     100 x 9049 B, then closes every descriptor above 2 and changes
 *                      directory to / (as daemons do), opens FILE (the trace's old
 *                      number, likely), writes "mine\n" to it, 100 x 10500 B, and
 *                      waits 400 ms for the writer's beat
 *   unshare-user       100 x 9029 B before and 100 x 10250 B after entering a new user
 *                      namespace (which wants a single-threaded caller); 77 if the
 *                      system allows none
 *   first-fd           prints the number open() gives (the lowest free); recorded, 1
 *                      unless libunwind (which makes a pipe) is loaded
 *   reopen-stdin       for 1.5 s, closes 0 and opens /dev/null, which must give 0 (as
 *                      daemons count on), allocating meanwhile; prints how often not
 *   unforked-child exit|exec|in-fork-child
 *                      100 x 9059 B, then a child by _Fork (no fork handlers, as a raw
 *                      clone) that ends with exit(0) or execs /bin/true; the parent
 *                      waits for it: the parent's trace must count its 100 once
 *                      (in-fork-child: all that in a forked child, the exit way)
 *   leak               10 x 4321 B from leak_here(), never freed
 *   double_free        frees a 100-byte block twice, from free_twice()
 *   vm-size            100 x 64 B, then prints its VmSize in KiB (the address space
 *                      a test may limit it to, plus what it wants to see fail)
 *   exit-from-handler  100 x 7019 B, then a signal handler calls exit(0), the signal
 *                      coming inside a 300 KiB malloc with the pool's lock held (through
 *                      exec_shim, which must be preloaded): the process must end
 *   small-altstack     a handler on an 8 KiB signal stack (SIGSTKSZ) with a guard page
 *                      below calls mprotect 10 times and allocates, 20 times; prints ok
 *   altstack           a thread whose signal stack lies just below its own stack, a
 *                      guard page between; a handler on the signal stack allocates
 *                      7777 B from machine code outside any module (walked by frame
 *                      pointer) whose frame pointer points into the guard page
 *                      (x86-64; 77 elsewhere)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* noclone: a copy specialised for one size would have another symbol name. */
#ifdef __clang__
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif
/* Keeps the compiler from turning `return malloc(n)` into a tail call. */
#define BARRIER() __asm__ volatile("" ::: "memory")

static void *must(void *p, size_t size) {
  if (!p) {
    fprintf(stderr, "subject: allocating %zu bytes failed\n", size);
    exit(1);
  }
  return p;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* n blocks of size from malloc, written to so that they are really used. */
static void **alloc_many(size_t n, size_t size) {
  void **blocks = must(malloc(n * sizeof *blocks), n * sizeof *blocks);
  for (size_t i = 0; i < n; i++) memset(blocks[i] = must(malloc(size), size), (int)i, size);
  return blocks;
}

static void free_many(void **blocks, size_t n) {
  for (size_t i = 0; i < n; i++) free(blocks[i]);
  free(blocks);
}

static int run_histogram(void) {
  void **a = alloc_many(1000, 777);
  void **b = must(malloc(2000 * sizeof *b), 2000 * sizeof *b);
  for (int i = 0; i < 2000; i++) b[i] = must(calloc(1, 4000), 4000);
  void **c = must(malloc(3000 * sizeof *c), 3000 * sizeof *c);
  for (int i = 0; i < 3000; i++)
    if (posix_memalign(&c[i], 64, 12345) != 0) must(NULL, 12345);
  for (int i = 0; i < 500; i++) a[i] = must(realloc(a[i], 30000), 30000);
  free_many(a, 1000);
  free_many(b, 2000);
  free_many(c, 3000);
  return 0;
}

/* `small N`: the small sizes, where start-up code allocates too, so the
 * check compares a run of N with one of 2N: N x malloc(24), N x calloc(1, 200)
 * freed by another thread, N x malloc(0), N x posix_memalign(64, 40), then
 * half of the 24s realloc'd to 20 (in place) and half to 300 (moved); all
 * freed.  Prints the usable sizes it got, which the frees are counted by. */
static void *free_all(void *arg) {
  void **blocks = arg;
  for (size_t i = 0; blocks[i]; i++) free(blocks[i]);
  return NULL;
}

static int has_libunwind(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size, (void)data;
  return strstr(info->dlpi_name, "libunwind") != NULL;
}

static int run_small(long n) {
  /* The recorder's writer thread loads libunwind (which has TLS) soon after
   * start; a thread created before that gets a smaller TLS vector (a calloc
   * of 288 bytes, not 304).  Both runs must make the same allocations. */
  for (int waited = 0; getenv("TIERPOOL_PROFILE") && waited < 2000 && !dl_iterate_phdr(has_libunwind, NULL); waited++)
    sleep_ms(1);
  void **a = must(malloc((size_t)n * sizeof *a), 1), **b = must(calloc((size_t)n + 1, sizeof *b), 1);
  void **z = must(malloc((size_t)n * sizeof *z), 1), **m = must(malloc((size_t)n * sizeof *m), 1);
  for (long i = 0; i < n; i++) a[i] = must(malloc(24), 24);
  for (long i = 0; i < n; i++) b[i] = must(calloc(1, 200), 200);
  for (long i = 0; i < n; i++) z[i] = must(malloc(0), 1);
  for (long i = 0; i < n; i++)
    if (posix_memalign(&m[i], 64, 40) != 0) must(NULL, 40);
  size_t usable_24 = malloc_usable_size(a[0]), usable_0 = malloc_usable_size(z[0]);
  size_t usable_200 = malloc_usable_size(b[0]), usable_40 = malloc_usable_size(m[0]);
  for (long i = 0; i < n / 2; i++) a[i] = must(realloc(a[i], 20), 20);
  for (long i = n / 2; i < n; i++) a[i] = must(realloc(a[i], 300), 300);
  size_t usable_20 = malloc_usable_size(a[0]), usable_300 = malloc_usable_size(a[n - 1]);
  pthread_t thread;
  pthread_create(&thread, NULL, free_all, b);
  pthread_join(thread, NULL);
  free_many(a, (size_t)n);
  free_many(z, (size_t)n);
  free_many(m, (size_t)n);
  free(b);
  printf("usable 24=%zu 0=%zu 200=%zu 40=%zu 20=%zu 300=%zu\n", usable_24, usable_0, usable_200, usable_40, usable_20,
         usable_300);
  return 0;
}

static void *free_later(void *p) {
  sleep_ms(50);
  free(p);
  return NULL;
}

static int run_lifetimes(void) {
  static const size_t sizes[] = {1111, 2223, 3335};
  static const long delays_ms[] = {0, 20, 200};
  void *other = must(malloc(4447), 4447);
  pthread_t thread;
  if (pthread_create(&thread, NULL, free_later, other) != 0) return 1;
  for (int i = 0; i < 3; i++) {
    void *p = must(malloc(sizes[i]), sizes[i]);
    memset(p, 1, sizes[i]);
    if (delays_ms[i]) sleep_ms(delays_ms[i]);
    free(p);
  }
  pthread_join(thread, NULL);
  return 0;
}

NOINLINE void *alloc_here(size_t size) {
  void *p = must(malloc(size), size);
  BARRIER();
  return p;
}

NOINLINE void *call_alloc_here(size_t size) {
  void *p = alloc_here(size);
  BARRIER();
  return p;
}

static int run_stacks(void) {
  void *blocks[200];
  for (int i = 0; i < 200; i++) blocks[i] = call_alloc_here(5555);
  for (int i = 0; i < 200; i++) free(blocks[i]);
  return 0;
}

static int run_busy(const char *pidfile) {
  FILE *f = fopen(pidfile, "w");
  if (!f) return 1;
  fprintf(f, "%d\n", (int)getpid());
  fclose(f);
  void *live[4096] = {0};
  uint64_t x = 88172645463325252ull;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    for (int i = 0; i < 10000; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t slot = x % 4096, size = 1 + (x >> 20) % 20000;
      free(live[slot]);
      live[slot] = must(malloc(size), size);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 20);
  return 0;
}

static int run_fork(void) {
  void **mine = alloc_many(100, 5001);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    free_many(alloc_many(200, 6007), 200);
    exit(0); /* exit, not _exit: the child's trace ends at its exit handlers */
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  free_many(mine, 100);
  return 0;
}

static int run_main_thread_exit(void) {
  free_many(alloc_many(100, 9011), 100);
  pthread_exit(NULL);
}

static void *fork_then_return(void *arg) {
  (void)arg;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    free_many(alloc_many(100, 9013), 100);
    return NULL; /* the child's last thread ends here: so must the child */
  }
  int status;
  alarm(30); /* a child that lives on fails the test instead of hanging it */
  bool ended = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return ended ? (void *)1 : NULL;
}

static int run_fork_thread_exit(void) {
  pthread_t thread;
  void *ended = NULL;
  if (pthread_create(&thread, NULL, fork_then_return, NULL) != 0 || pthread_join(thread, &ended) != 0) return 1;
  return ended ? 0 : 1;
}

static int run_close_fds(const char *file) {
  free_many(alloc_many(100, 9049), 100);
  for (int fd = 3; fd < 1024; fd++) close(fd);
  if (chdir("/") != 0) return 1;
  FILE *mine = fopen(file, "w");
  if (!mine) return 1;
  fputs("mine\n", mine);
  fflush(mine);
  free_many(alloc_many(100, 10500), 100);
  sleep_ms(400);
  return fclose(mine) == 0 ? 0 : 1;
}

static int find_libunwind(struct dl_phdr_info *info, size_t size, void *found) {
  (void)size;
  if (strstr(info->dlpi_name, "libunwind")) *(bool *)found = true;
  return 0;
}

static int run_reopen_stdin(void) {
  struct timespec start, now;
  long rounds = 0, missed = 0;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    close(0);
    int fd = open("/dev/null", O_RDONLY);
    if (fd != 0) {
      missed++;
      if (fd > 0) dup2(fd, 0), close(fd);
    }
    free(must(malloc(64 + (size_t)(rounds & 1023)), 64));
    rounds++;
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 1500);
  printf("%ld of %ld opens did not give 0\n", missed, rounds);
  return missed != 0;
}

static int run_first_fd(void) {
  bool loaded = !getenv("TIERPOOL_PROFILE"); /* recorded: loaded at the start, with its pipe */
  if (!loaded) dl_iterate_phdr(find_libunwind, &loaded);
  if (!loaded) fprintf(stderr, "subject: libunwind is not loaded\n");
  printf("%d\n", open("/dev/null", O_RDONLY));
  return loaded ? 0 : 1;
}

static int run_unforked_child(const char *how) {
  if (strcmp(how, "in-fork-child") == 0) { /* the same from a forked child, whose trace is not open yet */
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) exit(run_unforked_child("exit"));
    int status;
    return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  }
  void **blocks = alloc_many(100, 9059);
  pid_t pid = _Fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    if (strcmp(how, "exec") == 0) execl("/bin/true", "true", (char *)NULL);
    exit(0);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  free_many(blocks, 100);
  return 0;
}

static int run_unshare_user(void) {
  free_many(alloc_many(100, 9029), 100);
  if (unshare(CLONE_NEWUSER) != 0) {
    if (errno == EPERM || errno == ENOSPC || errno == ENOSYS) return 77; /* none allowed here */
    perror("subject: unshare(CLONE_NEWUSER)");
    return 1;
  }
  free_many(alloc_many(100, 10250), 100);
  return 0;
}

static int run_exec(const char *self) {
  void **mine = alloc_many(100, 7003);
  (void)mine; /* still live at exec: the new image starts afresh */
  execl("/proc/self/exe", self, "after-exec", (char *)NULL);
  perror("subject: exec");
  return 1;
}

/* Allocates until the exec replaces the image. */
static void *allocate_until_exec(void *arg) {
  (void)arg;
  for (;;) {
    free(must(malloc(6007), 6007));
    BARRIER();
  }
  return NULL;
}

static int run_exec_busy(const char *self) {
  alloc_many(100, 7039);
  pthread_t thread;
  if (pthread_create(&thread, NULL, allocate_until_exec, NULL) != 0) return 1;
  usleep(50 * 1000);
  execl("/proc/self/exe", self, "after-exec", (char *)NULL);
  perror("subject: exec");
  return 1;
}

/* An exec that fails: the program goes on (100 x 4500 B before, 100 x 7027 B after). */
static int run_exec_fails(void) {
  alloc_many(100, 4500);
  execl("/nonexistent/tierpool-no-such-program", "none", (char *)NULL);
  alloc_many(100, 7027);
  return 0;
}

/* An exec that fails, and the program killed at once (by itself). */
static int run_exec_fails_killed(void) {
  alloc_many(100, 4500);
  execl("/nonexistent/tierpool-no-such-program", "none", (char *)NULL);
  raise(SIGKILL);
  return 1;
}

/* An exec of a name at an address nobody can read: EFAULT, as without the library. */
static int run_exec_bad_path(void) {
  alloc_many(100, 4500);
  char *argv[] = {"none", NULL};
  execv((const char *)(uintptr_t)8, argv);
  if (errno != EFAULT) {
    fprintf(stderr, "subject: exec of an unreadable name: %s, not EFAULT\n", strerror(errno));
    return 1;
  }
  return 0;
}

/* Runs the next handler of sig on an 8 KiB signal stack (SIGSTKSZ) with
 * a guard page below it. */
static bool handle_on_small_stack(int sig, void (*handler)(int)) {
  size_t size = 8192;
  char *m = mmap(NULL, 4096 + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect(m, 4096, PROT_NONE) != 0) return false;
  stack_t ss = {.ss_sp = m + 4096, .ss_size = size};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_ONSTACK;
  return sigaltstack(&ss, NULL) == 0 && sigaction(sig, &sa, NULL) == 0;
}

static int run_execveat(const char *self) {
  void **mine = alloc_many(100, 7003);
  (void)mine;
  char *argv[] = {(char *)self, "after-exec", NULL};
  execveat(AT_FDCWD, "/proc/self/exe", argv, environ, 0);
  perror("subject: execveat");
  return 1;
}

static atomic_int cancel_sent;

static void *exec_with_cancel_pending(void *arg) {
  (void)arg;
  free_many(alloc_many(100, 7057), 100);
  while (!atomic_load(&cancel_sent)) BARRIER();
  execl("/nonexistent/tierpool-no-such-program", "none", (char *)NULL);
  return NULL; /* glibc acts on the cancel at none of this thread's calls */
}

static int run_exec_cancelled(void) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, exec_with_cancel_pending, NULL) != 0) return 1;
  pthread_cancel(thread);
  atomic_store(&cancel_sent, 1);
  if (pthread_join(thread, NULL) != 0) return 1;
  free_many(alloc_many(100, 9067), 100);
  return 0;
}

static int run_spawn(const char *self) {
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    execl("/proc/self/exe", self, "after-exec", (char *)NULL);
    _exit(1);
  }
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    free(must(malloc(5009), 5009));
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 600);
  int status;
  return waitpid(child, &status, 0) == child && WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static void exit_on_small_stack(int sig) {
  (void)sig;
  exit(0);
}

static int run_exit_on_small_stack(void) {
  free_many(alloc_many(100, 7019), 100);
  if (!handle_on_small_stack(SIGUSR1, exit_on_small_stack)) return 1;
  raise(SIGUSR1);
  fprintf(stderr, "subject: the handler's exit returned\n");
  return 1;
}

static const char *exec_self;

static void exec_on_signal(int sig) {
  (void)sig;
  char *argv[] = {(char *)exec_self, "after-exec", NULL};
  execv("/proc/self/exe", argv);
  _exit(1);
}

/* Raises sig while a 300 KiB malloc holds the pool's lock (through
 * exec_shim); false if the shim is not preloaded. */
static bool raise_inside_pool(int sig) {
  void (*raise_in_lock)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "exec_shim_raise_in_lock");
  if (!raise_in_lock) {
    fprintf(stderr, "subject: exec_shim is not preloaded\n");
    return false;
  }
  raise_in_lock(sig);
  free(must(malloc(300 << 10), 300 << 10));
  return true;
}

/* forking: a thread that forks when the handler wakes it; its fork's prepare
 * handlers take the recorder's lock, then wait for the pool's lock, which
 * the interrupted main thread holds (in-lock). */
static int forker_pipe[2] = {-1, -1};

static void *forker(void *arg) {
  (void)arg;
  char c;
  if (read(forker_pipe[0], &c, 1) == 1 && fork() == 0) _exit(0);
  return NULL;
}

static void exec_after_fork_on_signal(int sig) {
  if (write(forker_pipe[1], "x", 1) != 1) _exit(1);
  struct timespec pause = {0, 50 * 1000000L}; /* the fork is in its prepare handlers by then, the writer not yet awake */
  nanosleep(&pause, NULL);
  exec_on_signal(sig);
}

static int run_exec_from_handler(const char *self, const char *how) {
  if (strncmp(how, "fork", 4) == 0) {
    pid_t child = fork();
    if (child < 0) return 1;
    if (child > 0) {
      int status;
      return waitpid(child, &status, 0) == child && WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
  }
  void **mine = alloc_many(100, 7013);
  (void)mine;
  exec_self = self;
  if (strstr(how, "small-stack")) {
    if (!handle_on_small_stack(SIGUSR2, exec_on_signal)) return 1;
  } else if (strstr(how, "forking")) {
    pthread_t thread;
    if (pipe(forker_pipe) != 0 || pthread_create(&thread, NULL, forker, NULL) != 0) return 1;
    signal(SIGUSR2, exec_after_fork_on_signal);
  } else {
    signal(SIGUSR2, exec_on_signal);
  }
  if (strstr(how, "in-lock")) {
    if (!raise_inside_pool(SIGUSR2)) return 2;
  } else {
    raise(SIGUSR2);
  }
  fprintf(stderr, "subject: the handler's exec returned\n");
  return 1;
}

/* A line of /proc/self/status in KiB ("VmRSS:"), -1 if there is none. */
static long status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, key, strlen(key)) == 0) kib = atol(line + strlen(key));
  if (f) fclose(f);
  return kib;
}

static int run_vm_size(void) {
  free_many(alloc_many(100, 64), 100);
  long kib = status_kib("VmSize:");
  printf("%ld\n", kib);
  return kib > 0 ? 0 : 1;
}

static void exit_on_signal(int sig) {
  (void)sig;
  exit(0); /* not async-signal-safe, and common: SIGINT and SIGTERM handlers do it */
}

static int run_exit_from_handler(void) {
  void **mine = alloc_many(100, 7019);
  (void)mine;
  signal(SIGUSR2, exit_on_signal);
  if (!raise_inside_pool(SIGUSR2)) return 2;
  fprintf(stderr, "subject: the handler's exit returned\n");
  return 1;
}

static char *small_altstack_page;

static void small_altstack_handler(int sig) {
  (void)sig;
  for (int i = 0; i < 10; i++) mprotect(small_altstack_page, 4096, i & 1 ? PROT_NONE : PROT_READ | PROT_WRITE);
  free(must(malloc(100), 100));
}

static int run_small_altstack(void) {
  small_altstack_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (small_altstack_page == MAP_FAILED || !handle_on_small_stack(SIGUSR1, small_altstack_handler)) return 1;
  for (int i = 0; i < 20; i++) raise(SIGUSR1);
  puts("ok");
  return 0;
}

static int run_after_exec(void) {
  free_many(alloc_many(100, 8009), 100);
  return 0;
}

NOINLINE void *leak_here(size_t size) {
  void *p = must(malloc(size), size);
  memset(p, 7, size);
  BARRIER();
  return p;
}

/* Threads that allocate only big blocks (no thread cache of their own until
 * the recorder makes one): the recorder's per-thread counts must be retired at
 * their exit, not kept — 1000 threads once held ~8 MiB more at the end. */
static void *big_only(void *arg) {
  (void)arg;
  char *p = must(malloc(1 << 20), 1 << 20);
  memset(p, 1, 4096);
  free(p);
  return NULL;
}

static int run_big_threads(void) {
  for (int round = 0; round < 2; round++) {
    long before = status_kib("VmRSS:");
    for (int i = 0; i < 500; i++) {
      pthread_t t;
      if (pthread_create(&t, NULL, big_only, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
    }
    long after = status_kib("VmRSS:");
    printf("round %d: RSS %ld -> %ld KiB\n", round, before, after);
    if (round == 1 && after - before > 1024) {
      fprintf(stderr, "subject: 500 threads of big blocks left %ld KiB behind\n", after - before);
      return 1;
    }
  }
  return 0;
}

/* One call of each of the mmap family, from a known function: the trace
 * holds each with its arguments (and mremap's old address) and a stack.
 * Prints the two addresses. */
NOINLINE int map_calls_here(void) {
  char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  p[0] = 1;
  if (mprotect(p, 65536, PROT_READ) != 0 || madvise(p, 65536, MADV_DONTNEED) != 0) return 1;
  char *q = mremap(p, 65536, 131072, MREMAP_MAYMOVE);
  if (q == MAP_FAILED) return 1;
  printf("%p %p\n", (void *)p, (void *)q);
  BARRIER();
  return munmap(q, 131072);
}

/* Threads alive together, each sampling a little every millisecond (at
 * rate 1, a thousand events a second): what the recorder keeps for them
 * while they live.  Prints the growth of resident memory in KiB. */
#define SLOW_SAMPLERS_MAX 64
#define SLOW_SAMPLER_EVENTS 2500

static pthread_barrier_t slow_samplers_done;

static void *slow_sampler(void *arg) {
  for (int i = 0; i < SLOW_SAMPLER_EVENTS; i++) {
    free(must(malloc(48), 48));
    usleep(1000);
  }
  pthread_barrier_wait(&slow_samplers_done); /* all counted while all live */
  pthread_barrier_wait(&slow_samplers_done);
  return arg;
}

static int run_slow_samplers(long n) {
  pthread_t threads[SLOW_SAMPLERS_MAX];
  if (n < 1 || n > SLOW_SAMPLERS_MAX) return 2;
  long before = status_kib("VmRSS:");
  pthread_barrier_init(&slow_samplers_done, NULL, (unsigned)n + 1);
  for (int i = 0; i < n; i++)
    if (pthread_create(&threads[i], NULL, slow_sampler, NULL) != 0) return 1;
  pthread_barrier_wait(&slow_samplers_done);
  long after = status_kib("VmRSS:");
  pthread_barrier_wait(&slow_samplers_done);
  for (int i = 0; i < n; i++)
    if (pthread_join(threads[i], NULL) != 0) return 1;
  printf("%ld\n", after - before);
  return 0;
}

static void *one_block(void *arg) {
  free(must(malloc(48), 48));
  return arg;
}

/* Threads one after another, each allocating once: past 65535 of them. */
static int run_many_threads(long n) {
  for (long i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, one_block, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
  }
  return 0;
}

/* ---- handoff -----------------------------------------------------------------
 * Producers allocate blocks of every tier, consumers free them: every free
 * is another thread's, and the producers exit (their rings go to the next
 * threads) while consumers still free their blocks. */
#define HANDOFF_BLOCKS 40000
#define HANDOFF_THREADS 4

static struct {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  void *blocks[HANDOFF_BLOCKS];
  size_t head, tail;
} handoff = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

/* Slab and buddy sizes in turn, and now and then a large block. */
static size_t handoff_size(size_t i) {
  static const size_t sizes[] = {16, 40, 100, 700, 3000, 20000, 70000, 300000};
  return i % 500 == 499 ? (size_t)5 << 20 : sizes[i % 8];
}

static void *handoff_produce(void *arg) {
  for (size_t i = (size_t)arg; i < HANDOFF_BLOCKS; i += HANDOFF_THREADS) {
    size_t size = handoff_size(i);
    char *p = must(malloc(size), size);
    p[0] = p[size - 1] = 1;
    pthread_mutex_lock(&handoff.lock);
    handoff.blocks[handoff.head++] = p;
    pthread_cond_signal(&handoff.ready);
    pthread_mutex_unlock(&handoff.lock);
  }
  return NULL;
}

static void *handoff_consume(void *arg) {
  for (size_t n = 0; n < HANDOFF_BLOCKS / HANDOFF_THREADS; n++) {
    pthread_mutex_lock(&handoff.lock);
    while (handoff.tail == handoff.head) pthread_cond_wait(&handoff.ready, &handoff.lock);
    void *p = handoff.blocks[handoff.tail++];
    pthread_mutex_unlock(&handoff.lock);
    free(p);
  }
  return arg;
}

static int run_handoff(void) {
  pthread_t producers[HANDOFF_THREADS], consumers[HANDOFF_THREADS];
  for (size_t i = 0; i < HANDOFF_THREADS; i++)
    if (pthread_create(&consumers[i], NULL, handoff_consume, NULL) != 0) return 1;
  for (size_t i = 0; i < HANDOFF_THREADS; i++)
    if (pthread_create(&producers[i], NULL, handoff_produce, (void *)i) != 0) return 1;
  for (size_t i = 0; i < HANDOFF_THREADS; i++)
    if (pthread_join(producers[i], NULL) != 0) return 1;
  for (size_t i = 0; i < HANDOFF_THREADS; i++)
    if (pthread_join(consumers[i], NULL) != 0) return 1;
  return 0;
}

static int run_leak(void) {
  for (int i = 0; i < 10; i++) leak_here(4321);
  return 0;
}

NOINLINE void free_twice(void *p) {
  free(p);
  BARRIER();
  free(p);
  BARRIER();
}

static int run_double_free(void) {
  void *p = must(malloc(100), 100);
  free_twice(p);
  fprintf(stderr, "subject: the second free returned\n");
  return 0;
}

/* ---- altstack ---------------------------------------------------------------
 * One mapping: [signal stack][guard page][the thread's stack, its TCB on top].
 * A walk that bounds the handler's frames by the thread's TCB alone takes the
 * guard page for stack and reads it. */
#define ALT_SIGNAL_STACK (64 << 10)
#define ALT_GUARD 4096
#define ALT_THREAD_STACK (256 << 10)

typedef void *(*alt_call_fn)(void *frame_pointer, size_t size, void *(*allocate)(size_t));
static alt_call_fn alt_call;   /* in a mapping of its own: code outside any module */
static void *alt_guard, *alt_block;

static void alt_on_signal(int sig) {
  (void)sig;
  alt_block = alt_call(alt_guard, 7777, malloc);
}

static void *alt_thread(void *arg) {
  char *base = arg;
  stack_t ss = {.ss_sp = base, .ss_size = ALT_SIGNAL_STACK};
  struct sigaction sa = {.sa_handler = alt_on_signal, .sa_flags = SA_ONSTACK};
  if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0) return NULL;
  raise(SIGUSR1);
  return alt_block;
}

static int run_altstack(void) {
#if defined(__x86_64__)
  /* push rbp; mov rbp, rdi; mov rdi, rsi; call rdx; pop rbp; ret */
  static const unsigned char code[] = {0x55, 0x48, 0x89, 0xfd, 0x48, 0x89, 0xf7, 0xff, 0xd2, 0x5d, 0xc3};
  void *text = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *base = mmap(NULL, ALT_SIGNAL_STACK + ALT_GUARD + ALT_THREAD_STACK, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (text == MAP_FAILED || base == MAP_FAILED) return 1;
  memcpy(text, code, sizeof code);
  if (mprotect(text, 4096, PROT_READ | PROT_EXEC) != 0) return 1;
  alt_call = (alt_call_fn)text;
  alt_guard = base + ALT_SIGNAL_STACK + 256; /* a "frame" whose saved words are in the guard page */
  if (mprotect(base + ALT_SIGNAL_STACK, ALT_GUARD, PROT_NONE) != 0) return 1;
  pthread_attr_t attr;
  pthread_t thread;
  void *block = NULL;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, base + ALT_SIGNAL_STACK + ALT_GUARD, ALT_THREAD_STACK);
  if (pthread_create(&thread, &attr, alt_thread, base) != 0 || pthread_join(thread, &block) != 0 || !block) {
    fprintf(stderr, "subject: the handler on the signal stack allocated nothing\n");
    return 1;
  }
  free(block);
  return 0;
#else
  return 77;
#endif
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "histogram") == 0) return run_histogram();
  if (strcmp(mode, "small") == 0 && argc > 2) return run_small(atol(argv[2]));
  if (strcmp(mode, "lifetimes") == 0) return run_lifetimes();
  if (strcmp(mode, "stacks") == 0) return run_stacks();
  if (strcmp(mode, "busy") == 0 && argc > 2) return run_busy(argv[2]);
  if (strcmp(mode, "fork") == 0) return run_fork();
  if (strcmp(mode, "exec") == 0) return run_exec(argv[0]);
  if (strcmp(mode, "exec-busy") == 0) return run_exec_busy(argv[0]);
  if (strcmp(mode, "execveat") == 0) return run_execveat(argv[0]);
  if (strcmp(mode, "exec-cancelled") == 0) return run_exec_cancelled();
  if (strcmp(mode, "spawn") == 0) return run_spawn(argv[0]);
  if (strcmp(mode, "exit-on-small-stack") == 0) return run_exit_on_small_stack();
  if (strcmp(mode, "exec-fails") == 0) return run_exec_fails();
  if (strcmp(mode, "exec-fails-killed") == 0) return run_exec_fails_killed();
  if (strcmp(mode, "exec-bad-path") == 0) return run_exec_bad_path();
  if (strcmp(mode, "exec-from-handler") == 0) return run_exec_from_handler(argv[0], argc > 2 ? argv[2] : "");
  if (strcmp(mode, "main-thread-exit") == 0) return run_main_thread_exit();
  if (strcmp(mode, "fork-thread-exit") == 0) return run_fork_thread_exit();
  if (strcmp(mode, "unshare-user") == 0) return run_unshare_user();
  if (strcmp(mode, "close-fds") == 0 && argc > 2) return run_close_fds(argv[2]);
  if (strcmp(mode, "after-exec") == 0) return run_after_exec();
  if (strcmp(mode, "unforked-child") == 0 && argc > 2) return run_unforked_child(argv[2]);
  if (strcmp(mode, "first-fd") == 0) return run_first_fd();
  if (strcmp(mode, "reopen-stdin") == 0) return run_reopen_stdin();
  if (strcmp(mode, "leak") == 0) return run_leak();
  if (strcmp(mode, "handoff") == 0) return run_handoff();
  if (strcmp(mode, "map-calls") == 0) return map_calls_here();
  if (strcmp(mode, "slow-samplers") == 0 && argc > 2) return run_slow_samplers(atol(argv[2]));
  if (strcmp(mode, "big-threads") == 0) return run_big_threads();
  if (strcmp(mode, "many-threads") == 0 && argc > 2) return run_many_threads(atol(argv[2]));
  if (strcmp(mode, "double_free") == 0) return run_double_free();
  if (strcmp(mode, "altstack") == 0) return run_altstack();
  if (strcmp(mode, "vm-size") == 0) return run_vm_size();
  if (strcmp(mode, "small-altstack") == 0) return run_small_altstack();
  if (strcmp(mode, "exit-from-handler") == 0) return run_exit_from_handler();
  fprintf(stderr, "usage: subject histogram|small N|lifetimes|stacks|busy PIDFILE|fork|exec|leak|double_free\n");
  return 2;
}
