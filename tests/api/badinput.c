/* badinput.c — free/realloc of a pointer the allocator did not hand out, and double frees,
 * abort with a one-line diagnostic naming the call and the address (DESIGN.md "Bad input").
 *
 * Each bad call runs in a forked child whose stderr is captured.  The child must die of
 * SIGABRT under any allocator that detects it (glibc does, for every case but the large
 * double free); the text, `tierpool: free(): invalid pointer 0x...` and so on, is asserted only
 * when tierpool is loaded.
 */
#include "check.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define INVALID_FREE "tierpool: free(): invalid pointer 0x"
#define DOUBLE_FREE "tierpool: free(): double free"
#define INVALID_REALLOC "tierpool: realloc(): invalid pointer 0x"

static void act_free(void *p) { free(p); }
static void act_free_twice(void *p) {
  free(p);
  free(opaque_ptr(p));
}
static void act_realloc(void *p) {
  void *q = realloc(p, opaque(200));
  fprintf(stderr, "realloc returned %p\n", q);
}

/* The address that follows the phrase in line (the first 0x... from the phrase on). */
static int line_names(const char *line, const char *phrase, const void *addr) {
  const char *at = strstr(line, phrase);
  if (!at) return 0;
  const char *hex = strstr(at, "0x");
  return hex && strtoull(hex, NULL, 16) == (unsigned long long)(uintptr_t)addr;
}

static const char *describe_status(int status, char *buf, size_t size) {
  if (WIFSIGNALED(status))
    snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
  return buf;
}

/* Runs act(addr) in a child: it must abort, and under tierpool print exactly one stderr line
 * containing phrase and then addr. */
static void expect_abort(const char *what, void (*act)(void *), void *addr, const char *phrase) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork");
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    alarm(10);
    close(fds[0]);
    dup2(fds[1], 2);
    act(addr);
    _exit(0);
  }
  close(fds[1]);
  static char out[16384];
  size_t len = 0;
  ssize_t r;
  while ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0 ||
         (r < 0 && errno == EINTR))
    len += r > 0 ? (size_t)r : 0;
  close(fds[0]);
  out[len] = 0;
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);

  char how[64];
  printf("  %s: %s; stderr: %s", what, describe_status(status, how, sizeof how),
         len ? out : "(empty)\n");
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: child %s, expected SIGABRT",
        what, how);
  if (!tierpool_loaded()) return;
  int lines = 0, named = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    lines += strstr(line, phrase) != NULL;
    named += line_names(line, phrase, addr);
  }
  CHECK(lines == 1, "%s: %d stderr lines contain \"%s\", expected one", what, lines, phrase);
  CHECK(named == 1, "%s: no \"%s\" line names the address %p", what, phrase, addr);
}

/* call(a pointer offset bytes into a zero-filled block of n bytes). */
static void interior(const char *call, void (*act)(void *), size_t n, size_t offset,
                     const char *phrase) {
  char *p = calloc(1, opaque(n));
  REQUIRE(p);
  char what[64];
  snprintf(what, sizeof what, "%s(block of %zu B + %zu)", call, n, offset);
  expect_abort(what, act, p + offset, phrase);
  free(p);
}

static void t_free_stack(void) {
  char local[64];
  expect_abort("free(stack variable)", act_free, opaque_ptr(local), INVALID_FREE);
}

static void t_free_interior_small(void) {
  interior("free", act_free, 100, 16, INVALID_FREE);
  interior("free", act_free, 100, 40, INVALID_FREE);
}

static void t_free_interior_buddy(void) { interior("free", act_free, 100 * KiB, 4096, INVALID_FREE); }

static void t_free_interior_large(void) { interior("free", act_free, 8 * MiB, MiB, INVALID_FREE); }

/* A pointer into a mapping of the program's own (readable, zero-filled before it). */
static void t_free_mmap(void) {
  size_t page = page_size();
  char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(m != MAP_FAILED);
  expect_abort("free(raw mmap + page)", act_free, m + page, INVALID_FREE);
  munmap(m, 2 * page);
}

static void double_free(size_t n, const char *phrase) {
  void *p = malloc(opaque(n));
  REQUIRE(p);
  memset(p, 1, n);
  char what[48];
  snprintf(what, sizeof what, "double free of %zu B", n);
  expect_abort(what, act_free_twice, p, phrase);
  free(p);
}

static void t_double_free_small(void) {
  double_free(16, DOUBLE_FREE);
  double_free(100, DOUBLE_FREE);
  double_free(SLAB_MAX, DOUBLE_FREE);
}

static void t_double_free_buddy(void) { double_free(100 * KiB, DOUBLE_FREE); }

/* glibc has unmapped the block by the second free and gets SIGSEGV: tierpool only.  The pool
 * may have unmapped it too, so "invalid pointer" is as good an answer as "double free". */
static void t_double_free_large(void) {
  if (!tierpool_loaded()) {
    skip("not tierpool (glibc faults on it)");
    return;
  }
  double_free(8 * MiB, "tierpool: free(): ");
}

static void t_realloc_invalid(void) {
  char local[64];
  expect_abort("realloc(stack variable)", act_realloc, opaque_ptr(local), INVALID_REALLOC);
  interior("realloc", act_realloc, 100, 16, INVALID_REALLOC);
}

/* The program unmapping or mapping over the pool's memory (a block taken for a mapping of
 * its own): refused with EINVAL and one line naming the call, the block lives on.  glibc
 * lets it through (and faults later): tierpool only. */
static int refused_with_line(const char *call, int failed, FILE *err, long *seen) {
  fflush(stderr);
  static char text[4096];
  long end = ftell(err);
  size_t got = 0;
  if (end > *seen && fseek(err, *seen, SEEK_SET) == 0) got = fread(text, 1, sizeof text - 1, err);
  text[got] = 0;
  *seen = end;
  char want[64];
  snprintf(want, sizeof want, "tierpool: %s(0x", call);
  int lines = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
    lines += strstr(line, want) && strstr(line, "the pool's memory") && strstr(line, "refused");
  CHECK(failed && errno == EINVAL, "%s over the pool's memory: not refused with EINVAL (errno %d)", call, errno);
  CHECK(lines == 1, "%s: %d diagnostic lines, expected one: %s", call, lines, text);
  return failed && lines == 1;
}

static void t_host_unmap(void) {
  if (!tierpool_loaded()) {
    skip("not tierpool (glibc lets the call through)");
    return;
  }
  FILE *err = tmpfile();
  REQUIRE(err);
  fflush(stderr);
  int saved = dup(2);
  REQUIRE(saved >= 0 && dup2(fileno(err), 2) == 2);
  long seen = 0;
  size_t sizes[] = {100, 100 * KiB, 8 * MiB};
  for (size_t i = 0; i < 3; i++) {
    size_t n = sizes[i];
    unsigned char *p = malloc(opaque(n));
    REQUIRE(p);
    memset(p, 0x5a, n);
    unsigned char *page = (unsigned char *)((uintptr_t)p & ~(uintptr_t)(page_size() - 1));
    refused_with_line("munmap", munmap(page, page_size()) != 0, err, &seen);
    refused_with_line("mmap", mmap(page, page_size(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED,
                      err, &seen);
    refused_with_line("mremap", mremap(page, page_size(), 2 * page_size(), MREMAP_MAYMOVE) == MAP_FAILED, err, &seen);
    size_t intact = 0;
    while (intact < n && p[intact] == 0x5a) intact++;
    CHECK(intact == n, "block of %zu B: byte %zu changed after the refused calls", n, intact);
    free(p);
  }
  /* The program's own mappings are its own: unmapped and replaced as asked, silently. */
  char *own = mmap(NULL, 4 * page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(own != MAP_FAILED);
  CHECK(mmap(own, page_size(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == own, "MAP_FIXED over own mapping");
  CHECK(munmap(own, 4 * page_size()) == 0, "munmap of own mapping");
  fflush(stderr);
  CHECK(ftell(err) == seen, "a diagnostic for the program's own mappings");
  dup2(saved, 2);
  close(saved);
  fclose(err);
}

static const struct test tests[] = {
    {"free_stack", t_free_stack},
    {"free_interior_small", t_free_interior_small},
    {"free_interior_buddy", t_free_interior_buddy},
    {"free_interior_large", t_free_interior_large},
    {"free_mmap", t_free_mmap},
    {"double_free_small", t_double_free_small},
    {"double_free_buddy", t_double_free_buddy},
    {"double_free_large", t_double_free_large},
    {"realloc_invalid", t_realloc_invalid},
    {"host_unmap", t_host_unmap},
};

int main(int argc, char **argv) { return RUN_TESTS(tests, argc, argv); }
