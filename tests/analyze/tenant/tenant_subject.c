/* tenant_subject.c — a tiny embedder of the tenant API, for recorded traces:
 * `tenant_subject set` allocates a known pattern as tenant "a" and another
 * as tenant "b" (tierpool_tenant_set, found with dlsym as a runtime would);
 * `tenant_subject env` allocates both patterns as whatever tenant the
 * process is (TIERPOOL_TENANT).  Each pattern stays live across a snapshot
 * (the recorder takes one at its first flush, 250 ms in, and once a second
 * after: two chances, for a writer thread that a busy machine runs late),
 * then is freed.  Exit status 1 when the API is missing (not preloaded), a
 * tenant cannot be made, or the process's tenant is not the one asked for.
 *
 *   pattern A: 1000 x 777 B     pattern B: 2000 x 3333 B
 *   set only, pattern C: 300 x 1555 B allocated as "b" by a thread that then
 *   exits (its counts outlive it), freed by the main thread (as "default") */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define A_COUNT 1000
#define A_SIZE 777
#define B_COUNT 2000
#define B_SIZE 3333
#define C_COUNT 300
#define C_SIZE 1555

typedef int tenant_set_fn(const char *name);
typedef const char *tenant_get_fn(void);

static void *blocks_a[A_COUNT], *blocks_b[B_COUNT], *blocks_c[C_COUNT];
static tenant_set_fn *set;

/* Allocations the compiler may not fold away (built with -fno-builtin too). */
static void __attribute__((noinline)) allocate_a(void) {
  for (int i = 0; i < A_COUNT; i++) memset(blocks_a[i] = malloc(A_SIZE), 'a', A_SIZE);
}

static void __attribute__((noinline)) allocate_b(void) {
  for (int i = 0; i < B_COUNT; i++) memset(blocks_b[i] = malloc(B_SIZE), 'b', B_SIZE);
}

static void *thread_c(void *arg) {
  (void)arg;
  if (set("b") != 0) return NULL;
  for (int i = 0; i < C_COUNT; i++) memset(blocks_c[i] = malloc(C_SIZE), 'c', C_SIZE);
  return blocks_c;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv) {
  set = (tenant_set_fn *)dlsym(RTLD_DEFAULT, "tierpool_tenant_set");
  tenant_get_fn *get = (tenant_get_fn *)dlsym(RTLD_DEFAULT, "tierpool_tenant_get");
  if (argc != 2 || (strcmp(argv[1], "set") != 0 && strcmp(argv[1], "env") != 0)) {
    fprintf(stderr, "usage: tenant_subject set|env\n");
    return 2;
  }
  if (!set || !get) {
    fprintf(stderr, "tenant_subject: no tierpool_tenant_set: libtierpool.so is not preloaded\n");
    return 1;
  }
  if (strcmp(argv[1], "set") == 0) {
    if (set("a") != 0) {
      int e = errno;
      fprintf(stderr, "tenant_subject: tierpool_tenant_set(\"a\"): %s\n", strerror(e));
      return 1;
    }
    allocate_a();
    if (set("b") != 0) {
      fprintf(stderr, "tenant_subject: tierpool_tenant_set(\"b\"): %s\n", strerror(errno));
      return 1;
    }
    allocate_b();
    set(NULL); /* back to the rules: frees still go to the owners */
    pthread_t thread;
    void *done = NULL;
    if (pthread_create(&thread, NULL, thread_c, NULL) != 0 || pthread_join(thread, &done) != 0 || !done) {
      fprintf(stderr, "tenant_subject: the thread of pattern C failed\n");
      return 1;
    }
  } else {
    const char *want = getenv("TIERPOOL_TENANT"), *got = get();
    if (!want || !got || strcmp(want, got) != 0) {
      fprintf(stderr, "tenant_subject: the process's tenant is '%s', not '%s'\n", got ? got : "?",
              want ? want : "?");
      return 1;
    }
    allocate_a();
    allocate_b();
  }
  sleep_ms(1400); /* both patterns live at a snapshot: the one 250 ms in or 1250 ms */
  for (int i = 0; i < A_COUNT; i++) free(blocks_a[i]);
  for (int i = 0; i < B_COUNT; i++) free(blocks_b[i]);
  for (int i = 0; i < C_COUNT; i++) free(blocks_c[i]); /* NULL in env mode */
  return 0;
}
