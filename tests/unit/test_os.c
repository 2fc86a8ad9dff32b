/* test_os.c — giving pages back: tp_os_release around pages the program locked. */
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "unit.h"

/* mlock and munlock as system calls: ASan's are no-ops (it keeps its shadow
 * memory unlocked). */
static long lock_pages(void *p, size_t size, bool lock) { return syscall(lock ? SYS_mlock : SYS_munlock, p, size); }

/* n pages of fresh memory, every byte 0xa5, the first `locked` of them locked
 * (NULL when the kernel would not lock them: RLIMIT_MEMLOCK). */
static char *locked_range(size_t pages, size_t locked) {
  char *p = mmap(NULL, pages * TP_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  memset(p, 0xa5, pages * TP_PAGE_SIZE);
  if (locked && lock_pages(p, locked * TP_PAGE_SIZE, true) != 0) return NULL;
  /* The kernel refuses to drop them: else this machine tests nothing here. */
  if (locked) assert_int_equal(syscall(SYS_madvise, p, TP_PAGE_SIZE, MADV_DONTNEED), -1);
  return p;
}

static void assert_zero(const char *p, size_t size) {
  for (size_t i = 0; i < size; i++)
    if (p[i]) fail_msg("byte %zu of %zu not zero after release", i, size);
}

/* A range ending inside its second page (the stack index's 65,552 bytes, say)
 * with its first page locked: halving it once gave an empty half and the
 * whole range again, for ever (a stack overflow). */
static void test_locked_page_in_a_range_of_a_page_and_a_half(void **state) {
  (void)state;
  char *p = locked_range(2, 1);
  if (!p) skip();
  atomic_store(&tp_os_release_refused, false);
  tp_os_release(p, TP_PAGE_SIZE + TP_PAGE_SIZE / 2);
  assert_zero(p, TP_PAGE_SIZE + TP_PAGE_SIZE / 2);
  assert_false(atomic_load(&tp_os_release_refused)); /* one locked page: releases go on */
  lock_pages(p, TP_PAGE_SIZE, false);
  munmap(p, 2 * TP_PAGE_SIZE);
}

/* A few locked pages among many: zeroed where they are, the rest dropped. */
static void test_few_locked_pages(void **state) {
  (void)state;
  char *p = locked_range(64, 3);
  if (!p) skip();
  atomic_store(&tp_os_release_refused, false);
  tp_os_release(p, 64 * TP_PAGE_SIZE);
  assert_zero(p, 64 * TP_PAGE_SIZE);
  assert_false(atomic_load(&tp_os_release_refused));
  lock_pages(p, 3 * TP_PAGE_SIZE, false);
  munmap(p, 64 * TP_PAGE_SIZE);
}

/* A range locked throughout (mlockall behind the library's back): zeroed, the
 * pool stops releasing, and the halving stops soon after 64 locked pages
 * instead of asking the kernel twice for each of them. */
static void test_range_locked_throughout(void **state) {
  (void)state;
  enum { PAGES = 1024 };
  char *p = locked_range(PAGES, PAGES);
  if (!p) skip();
  atomic_store(&tp_os_release_refused, false);
  uint64_t before = tp_os_stats.pool_madvise;
  tp_os_release(p, PAGES * TP_PAGE_SIZE);
  uint64_t calls = tp_os_stats.pool_madvise - before;
  assert_zero(p, PAGES * TP_PAGE_SIZE);
  assert_true(atomic_load(&tp_os_release_refused));
  if (calls > 4 * 64) fail_msg("%llu madvise calls for a locked range of %d pages", (unsigned long long)calls, PAGES);
  atomic_store(&tp_os_release_refused, false);
  lock_pages(p, PAGES * TP_PAGE_SIZE, false);
  munmap(p, PAGES * TP_PAGE_SIZE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_locked_page_in_a_range_of_a_page_and_a_half),
      cmocka_unit_test(test_few_locked_pages),
      cmocka_unit_test(test_range_locked_throughout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
