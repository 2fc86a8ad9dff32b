/* exec_shim.c — preloaded ahead of libtierpool.so by the test exec-flush.
 *
 * From a thread's execv to the new image, every call of malloc, calloc,
 * realloc, free or the aligned allocators on that thread is the library's own
 * (the program is inside execv), and the library must make none: its exec
 * flush may run in a signal handler that stopped the thread inside the pool.
 * Each one is told on stderr; the calls go on to the library (__libc_malloc
 * and the others are the pool's).  "exec_shim: loaded" says the shim is in.
 *
 * exec_shim_raise_in_lock(sig): the next pthread_mutex_lock (the library's
 * locks are pthread mutexes, called through its PLT) raises sig once it holds
 * the mutex: a handler that execs then runs inside the pool, a lock held. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);
/* glibc's, under its other name (a compatibility version: bound by hand) */
extern int glibc_mutex_lock(pthread_mutex_t *mutex);
__asm__(".symver glibc_mutex_lock, __pthread_mutex_lock@GLIBC_2.2.5");

static __thread int in_exec;
static volatile int raise_in_lock; /* the signal to raise, 0: none */
static int (*next_execv)(const char *, char *const[]);

static void say(const char *line) {
  ssize_t ignored = write(2, line, strlen(line));
  (void)ignored;
}

__attribute__((constructor)) static void resolve(void) {
  next_execv = (int (*)(const char *, char *const[]))dlsym(RTLD_NEXT, "execv");
  say("exec_shim: loaded\n");
}

static void tell(const char *call, size_t size) {
  char line[128];
  int n = snprintf(line, sizeof line, "exec_shim: %s(%zu) between execv and the new image\n", call, size);
  if (n > 0) say(line);
}

void *malloc(size_t size) {
  if (in_exec) tell("malloc", size);
  return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
  if (in_exec) tell("calloc", count * size);
  return __libc_calloc(count, size);
}

void *realloc(void *p, size_t size) {
  if (in_exec) tell("realloc", size);
  return __libc_realloc(p, size);
}

void free(void *p) {
  if (in_exec && p) tell("free", 0);
  __libc_free(p);
}

void *memalign(size_t align, size_t size) {
  if (in_exec) tell("memalign", size);
  return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size) {
  if (in_exec) tell("aligned_alloc", size);
  return __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size) {
  if (in_exec) tell("posix_memalign", size);
  if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
  void *p = __libc_memalign(align, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void exec_shim_raise_in_lock(int sig) { raise_in_lock = sig; }

int pthread_mutex_lock(pthread_mutex_t *mutex) {
  int r = glibc_mutex_lock(mutex);
  int sig = raise_in_lock;
  if (sig && !in_exec) {
    raise_in_lock = 0;
    raise(sig);
  }
  return r;
}

int execv(const char *path, char *const argv[]) {
  in_exec = 1;
  int r = next_execv(path, argv);
  in_exec = 0;
  return r;
}
