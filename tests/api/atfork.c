/* atfork.c — fork handlers that a program (or a library's constructor) registers before its
 * first malloc may allocate.  glibc runs prepare handlers newest first and child handlers
 * oldest first; the pool's handlers, registered at the pool's first allocation, came after the
 * program's, so the program's prepare and child handlers ran while the pool's locks were held
 * (in the child: before they were made anew) — the fork hung. */
#include "check.h"

#include <pthread.h>
#include <sys/wait.h>

static void prepare_allocates(void) { free(opaque_ptr(malloc(opaque(3000)))); }
static void child_allocates(void) { free(opaque_ptr(malloc(opaque(5000)))); }

/* The executable's constructors run after the preloaded library's, before main and before
 * anything here allocates. */
__attribute__((constructor)) static void register_before_first_malloc(void) {
  pthread_atfork(prepare_allocates, NULL, child_allocates);
}

static void t_handlers_allocate(void) {
  alarm(20); /* a hung fork ends the test (SIGALRM) rather than the suite's timeout */
  for (int i = 0; i < 20; i++) {
    pid_t child = fork();
    REQUIRE(child >= 0, "fork: %s", strerror(errno));
    if (child == 0) {
      free(opaque_ptr(malloc(opaque(7000))));
      _exit(0);
    }
    int status;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child status 0x%x", i, status);
  }
  alarm(0);
}

static const struct test tests[] = {
    {"handlers_allocate", t_handlers_allocate},
};

int main(int argc, char **argv) { return RUN_TESTS(tests, argc, argv); }
