/* exec_shim.c — preloaded ahead of libtierpool.so by the test exec-flush.
 * From the program's execv to the new image, every call of malloc, calloc,
 * realloc or free is the library's own (the program is inside execv), and the
 * library must make none: its exec flush may run in a signal handler that
 * stopped the thread inside the pool.  Each one is told on stderr; the calls
 * go on to the library (__libc_malloc and the others are the pool's). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static volatile int in_exec;
static int (*next_execv)(const char *, char *const[]);

__attribute__((constructor)) static void resolve(void) {
  next_execv = (int (*)(const char *, char *const[]))dlsym(RTLD_NEXT, "execv");
}

static void tell(const char *call, size_t size) {
  char line[128];
  int n = snprintf(line, sizeof line, "exec_shim: %s(%zu) between execv and the new image\n", call, size);
  if (n > 0) write(2, line, (size_t)n);
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

int execv(const char *path, char *const argv[]) {
  in_exec = 1;
  int r = next_execv(path, argv);
  in_exec = 0;
  return r;
}
