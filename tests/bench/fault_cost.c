/* fault_cost.c — what a page fault and a page release cost on this machine,
 * for scripts/bench's header: the allocators differ in how many pages they
 * fault in and give back, and in a virtual machine each fault can cost ten
 * times what it does on bare metal.
 *
 *   fault_cost   prints: fault_us=F release_us=R   (medians of 5 rounds)
 *
 * fault_us: one first write to a fresh anonymous page (the fault, zeroing,
 * mapping); release_us: madvise(MADV_DONTNEED) of 64 MiB, per page. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define ROUNDS 5
#define SIZE ((size_t)64 << 20)
#define PAGE 4096u

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void touch(volatile char *p) {
  for (size_t offset = 0; offset < SIZE; offset += PAGE) p[offset] = 1;
}

int main(void) {
  double fault[ROUNDS], release[ROUNDS];
  const double pages = (double)(SIZE / PAGE);
  for (int r = 0; r < ROUNDS; r++) {
    char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return perror("fault_cost: mmap"), 1;
    double t0 = now_us();
    touch(p);
    double t1 = now_us();
    if (madvise(p, SIZE, MADV_DONTNEED) != 0) return perror("fault_cost: madvise"), 1;
    double t2 = now_us();
    fault[r] = (t1 - t0) / pages;
    release[r] = (t2 - t1) / pages;
    munmap(p, SIZE);
  }
  qsort(fault, ROUNDS, sizeof *fault, by_value);
  qsort(release, ROUNDS, sizeof *release, by_value);
  printf("fault_us=%.2f release_us=%.3f\n", fault[ROUNDS / 2], release[ROUNDS / 2]);
  return 0;
}
