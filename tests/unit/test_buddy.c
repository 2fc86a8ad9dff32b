/* test_buddy.c — buddy allocation: tail trimming, alignment, deferred
 * coalescing, release, the buddy tier of a heap, and the span slots. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "unit.h"


/* The pool's clock, set by a test (linked with --wrap=tp_os_now_ms); 0: the
 * real one. */
static uint64_t test_clock_ms;
uint64_t __real_tp_os_now_ms(void);
uint64_t __wrap_tp_os_now_ms(void);
uint64_t __wrap_tp_os_now_ms(void) { return test_clock_ms ? test_clock_ms : __real_tp_os_now_ms(); }

static uint64_t allocated_pages(const tp_heap *h) { return h->frontier_pages - h->free_pages; }

static uint32_t free_blocks(const tp_heap *h, uint32_t order) {
  uint32_t n = 0;
  for (tp_span *s = h->free_lists[order]; s; s = s->next) n++;
  return n;
}

static void test_take_trims_the_tail(void **state) {
  (void)state;
  bool zeroed = false;
  char *p = tp_buddy_take(&unit_heap, 5, 0, &zeroed);
  assert_non_null(p);
  assert_true(zeroed); /* fresh pages from the frontier */
  assert_int_equal((uintptr_t)p % TP_PAGE_SIZE, 0);
  assert_int_equal(allocated_pages(&unit_heap), 5); /* not 8: the tail went back */
  memset(p, 0xab, 5 * TP_PAGE_SIZE);
  char *q = tp_buddy_take(&unit_heap, 3, 0, NULL);
  assert_non_null(q);
  assert_true(q >= p + 5 * TP_PAGE_SIZE || q + 3 * TP_PAGE_SIZE <= p);
  assert_int_equal(allocated_pages(&unit_heap), 8);
}

static void test_alignment(void **state) {
  (void)state;
  for (uint32_t order = 0; order <= 10; order++) {
    void *p = tp_buddy_take(&unit_heap, 1, order, NULL);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % (TP_PAGE_SIZE << order), 0);
  }
}

static void test_deferred_coalescing(void **state) {
  (void)state;
  enum { N = 512 };
  static void *pages[N];
  for (int i = 0; i < N; i++) pages[i] = tp_buddy_take(&unit_heap, 1, 0, NULL);
  uint64_t frontier = unit_heap.frontier_pages;
  for (int i = 0; i < N; i++) {
    tp_segment *seg = tp_segment_of(pages[i]);
    tp_buddy_give(&unit_heap, seg, tp_page_index(seg, pages[i]), 1);
  }
  /* Nothing merged on free: every page sits in the order-0 list. */
  assert_true(free_blocks(&unit_heap, 0) >= N);
  assert_int_equal(allocated_pages(&unit_heap), 0);
  tp_buddy_coalesce(&unit_heap);
  assert_true(free_blocks(&unit_heap, 0) <= 2);
  /* A block as large as everything handed out exists again, without growing. */
  void *big = tp_buddy_take(&unit_heap, 256, 0, NULL);
  assert_non_null(big);
  assert_int_equal(unit_heap.frontier_pages, frontier);
}

static void test_coalesce_on_demand(void **state) {
  (void)state;
  void *a = tp_buddy_take(&unit_heap, 128, 0, NULL);
  void *b = tp_buddy_take(&unit_heap, 128, 0, NULL);
  tp_segment *seg = tp_segment_of(a);
  uint64_t frontier = unit_heap.frontier_pages;
  tp_buddy_give(&unit_heap, seg, tp_page_index(seg, a), 128);
  tp_buddy_give(&unit_heap, tp_segment_of(b), tp_page_index(tp_segment_of(b), b), 128);
  /* 256 pages are needed: the pool merges before it grows. */
  void *c = tp_buddy_take(&unit_heap, 200, 0, NULL);
  assert_non_null(c);
  assert_int_equal(unit_heap.frontier_pages, frontier);
}

static void test_release_and_zeroed_reuse(void **state) {
  (void)state;
  char *p = tp_buddy_take(&unit_heap, 64, 0, NULL);
  memset(p, 0x5a, 64 * TP_PAGE_SIZE);
  tp_segment *seg = tp_segment_of(p);
  tp_buddy_give(&unit_heap, seg, tp_page_index(seg, p), 64);
  tp_buddy_coalesce(&unit_heap);
  size_t released = tp_buddy_release_free(&unit_heap, 0);
  assert_true(released >= 64 * TP_PAGE_SIZE);
  assert_int_equal(unit_heap.released_pages, unit_heap.free_pages);
  bool zeroed = false;
  char *q = tp_buddy_take(&unit_heap, 64, 0, &zeroed);
  assert_true(zeroed);
  for (size_t i = 0; i < 64 * TP_PAGE_SIZE; i += 512) assert_int_equal(q[i], 0);
}

/* Free neighbours that are not buddies go back in one madvise call. */
static void test_release_merges_neighbours(void **state) {
  (void)state;
  char *p = tp_buddy_take(&unit_heap, 16, 4, NULL);
  memset(p, 1, 16 * TP_PAGE_SIZE);
  tp_segment *seg = tp_segment_of(p);
  uint32_t first = tp_page_index(seg, p);
  /* Pages 4..7 and 8..11 of the block: neighbours, but page 4's buddy is page
   * 0 and page 8's is page 12, both still allocated. */
  tp_buddy_give(&unit_heap, seg, first + 4, 4);
  tp_buddy_give(&unit_heap, seg, first + 8, 4);
  tp_buddy_coalesce(&unit_heap);
  assert_int_equal(TP_PAGE_KIND(seg->page_map[first + 4]), TP_PAGE_FREE);
  assert_int_equal(TP_PAGE_KIND(seg->page_map[first + 8]), TP_PAGE_FREE);
  uint64_t resident_free = unit_heap.free_pages - unit_heap.released_pages;
  assert_int_equal(resident_free, 8); /* the two blocks: the rest of the segment is fresh */
  uint64_t calls = tp_os_stats.pool_madvise;
  assert_int_equal(tp_buddy_release_free(&unit_heap, 0), 8 * TP_PAGE_SIZE);
  assert_int_equal(tp_os_stats.pool_madvise - calls, 1);
  for (size_t k = 4 * TP_PAGE_SIZE; k < 12 * TP_PAGE_SIZE; k += 1024) assert_int_equal(p[k], 0);
  assert_int_equal(p[0], 1);
  assert_int_equal(p[12 * TP_PAGE_SIZE], 1);
}

/* Frees the block p of `pages` pages and releases every free block: a
 * release of (at least) those pages. */
static void give_and_release(char *p, uint32_t pages) {
  tp_segment *seg = tp_segment_of(p);
  tp_buddy_give(&unit_heap, seg, tp_page_index(seg, p), pages);
  tp_buddy_coalesce(&unit_heap);
  tp_buddy_release_free(&unit_heap, 0);
}

/* Takes a block of `pages` pages, written. */
static char *take_written(uint32_t pages) {
  char *p = tp_buddy_take(&unit_heap, pages, 0, NULL);
  assert_non_null(p);
  memset(p, 1, (size_t)pages * TP_PAGE_SIZE);
  return p;
}

/* The release delay grows eightfold when most of what was released is taken
 * back before the next release, and drifts down when it is not. */
static void test_release_delay_adapts(void **state) {
  (void)state;
  uint64_t base = tp_opt.release_delay_ms, now = tp_os_now_ms() + 1000;
  assert_int_equal(unit_heap.release_delay_ms, base);
  char *p = take_written(128);
  give_and_release(p, 128);
  assert_ptr_equal(tp_buddy_take(&unit_heap, 128, 0, NULL), p); /* wanted back: a regret */
  assert_int_equal(unit_heap.retaken_pages, 128);
  tp_heap_maintain(&unit_heap, now);
  assert_int_equal(unit_heap.release_delay_ms, 8 * base);
  /* Released again and not taken back: the delay drifts down. */
  give_and_release(p, 128);
  tp_heap_maintain(&unit_heap, now + 8 * base);
  assert_int_equal(unit_heap.release_delay_ms, 8 * base - (8 * base - base) / 4);
  /* Regretted again and again: it stops at 10 s (a program rebuilding what it
   * freed every few hundred ms pays a refault per 10 s, not per second). */
  now += 8 * base;
  for (int cycle = 0; cycle < 8; cycle++) {
    give_and_release(p, 128);
    assert_ptr_equal(tp_buddy_take(&unit_heap, 128, 0, NULL), p);
    now += unit_heap.release_delay_ms;
    tp_heap_maintain(&unit_heap, now);
  }
  assert_int_equal(unit_heap.release_delay_ms, 10000);
}

/* Pages taken back after their release was judged belong to that release:
 * they must not make the next, small release look regretted (they once did,
 * and the delay jumped eightfold). */
static void test_release_judged_once(void **state) {
  (void)state;
  uint64_t base = tp_opt.release_delay_ms, now = tp_os_now_ms() + 1000;
  char *p = take_written(128);
  give_and_release(p, 128);
  tp_heap_maintain(&unit_heap, now); /* judged: nothing taken back yet */
  assert_int_equal(unit_heap.release_delay_ms, base);
  assert_ptr_equal(tp_buddy_take(&unit_heap, 128, 0, NULL), p); /* late: after the judgement */
  tp_heap_maintain(&unit_heap, now + base);
  give_and_release(take_written(16), 16);
  tp_heap_maintain(&unit_heap, now + 2 * base);
  assert_int_equal(unit_heap.release_delay_ms, base);
}

/* A release too small to judge (under 256 KiB) does not forgive a regret:
 * a batch job's idle purges between its big releases once wore the delay
 * back down to the base in a few rounds. */
static void test_small_releases_do_not_forgive(void **state) {
  (void)state;
  uint64_t base = tp_opt.release_delay_ms, now = tp_os_now_ms() + 1000;
  char *p = take_written(128);
  give_and_release(p, 128);
  assert_ptr_equal(tp_buddy_take(&unit_heap, 128, 0, NULL), p);
  tp_heap_maintain(&unit_heap, now);
  assert_int_equal(unit_heap.release_delay_ms, 8 * base);
  /* Windows of 63 pages released, none taken back: not judged. */
  for (int round = 1; round <= 4; round++) {
    unit_heap.released_window_pages = 63;
    unit_heap.retaken_pages = 0;
    tp_heap_maintain(&unit_heap, now + (uint64_t)round * 8 * base);
    assert_int_equal(unit_heap.release_delay_ms, 8 * base);
  }
  /* One of 64: judged, forgiven a quarter. */
  unit_heap.released_window_pages = 64;
  unit_heap.retaken_pages = 0;
  tp_heap_maintain(&unit_heap, now + 5 * 8 * base);
  assert_int_equal(unit_heap.release_delay_ms, 8 * base - (8 * base - base) / 4);
}

/* Frees every other one of `count` blocks of `pages` pages taken in a row,
 * written first: that many resident free blocks that cannot merge. */
static void free_every_other(tp_heap *h, uint32_t count, uint32_t pages) {
  char *blocks[32];
  assert_true(count <= 32);
  for (uint32_t i = 0; i < count; i++) {
    blocks[i] = tp_buddy_take(h, pages, 0, NULL);
    memset(blocks[i], 1, (size_t)pages * TP_PAGE_SIZE);
  }
  for (uint32_t i = 0; i < count; i += 2) {
    tp_segment *seg = tp_segment_of(blocks[i]);
    tp_buddy_give(h, seg, tp_page_index(seg, blocks[i]), pages);
  }
  tp_buddy_coalesce(h);
}

/* Before the pool maps a large block, as many bytes go back as the mapping
 * will fault in, not every free page the heap has. */
static void test_purge_before_growth_is_proportional(void **state) {
  (void)state;
  free_every_other(&unit_heap, 16, 64); /* 8 free blocks of 256 KiB */
  uint64_t released = unit_heap.buddy_released_bytes;
  tp_heap_purge_before_growth(&unit_heap, 300u << 10);
  assert_int_equal(unit_heap.buddy_released_bytes - released, 512u << 10); /* two blocks */
  tp_heap_purge_before_growth(&unit_heap, SIZE_MAX); /* all: the 8 blocks, and any other */
  assert_true(unit_heap.buddy_released_bytes - released >= 2048u << 10);
}

/* The program takes blocks of 32 pages until it has taken back `pages` of
 * what host growths purged (resident blocks go first), then frees them. */
static void retake_host_purged(tp_heap *h, uint64_t pages) {
  char *blocks[64];
  uint32_t count = 0;
  while (h->host_retaken_pages < pages) {
    assert_true(count < 64);
    assert_non_null(blocks[count++] = tp_buddy_take(h, 32, 0, NULL));
  }
  for (uint32_t i = 0; i < count; i++) {
    tp_segment *seg = tp_segment_of(blocks[i]);
    tp_buddy_give(h, seg, tp_page_index(seg, blocks[i]), 32);
  }
  tp_buddy_coalesce(h);
}

/* A growth of the host at test_clock_ms + `at`: the bytes it purged. */
static uint64_t host_grows_at(tp_heap *h, uint64_t start, uint64_t at) {
  uint64_t released = h->buddy_released_bytes;
  test_clock_ms = start + at;
  tp_heap_host_grows(256u << 10);
  return h->buddy_released_bytes - released;
}

/* Purges when the host grows: each gives back the growth's size.  A quarter
 * of a window's pages taken back is a regret at once: every other growth,
 * then 8 in 9, skip their purge.  A window is judged kept only when 200 ms
 * old (a pool takes released pages back last), which divides the skips by 8. */
static void test_host_purges_judged_together(void **state) {
  (void)state;
  const char *env[] = {"TIERPOOL_RELEASE_DELAY_MS=100000", NULL}; /* no idle purges meanwhile */
  assert_string_equal(unit_load_options(NULL, env), "");
  tp_heap *h = &tp_main_heap; /* tenant 0: the heap tp_heap_host_grows purges */
  tp_heap_init(h, "main");
  free_every_other(h, 24, 32); /* 12 free blocks of 128 KiB; 3 MiB resident: no collapse */
  uint64_t t0 = tp_os_now_ms() + 1000;
  assert_int_equal(host_grows_at(h, t0, 0), 256u << 10);
  assert_int_equal(host_grows_at(h, t0, 10), 256u << 10); /* nothing taken back yet */
  retake_host_purged(h, 128);
  assert_int_equal(host_grows_at(h, t0, 20), 0); /* a regret: every other growth purges */
  assert_int_equal(host_grows_at(h, t0, 30), 256u << 10);
  assert_int_equal(host_grows_at(h, t0, 40), 0);
  assert_int_equal(host_grows_at(h, t0, 50), 256u << 10);
  retake_host_purged(h, 32); /* a quarter of the new window's 128 pages */
  for (uint64_t at = 60; at < 60 + 8 * 10; at += 10) assert_int_equal(host_grows_at(h, t0, at), 0);
  assert_int_equal(host_grows_at(h, t0, 140), 256u << 10); /* the ninth */
  /* Not taken back: judged kept 200 ms on, every other growth purges, and
   * after another 200 ms every growth. */
  assert_int_equal(host_grows_at(h, t0, 340), 0);
  assert_int_equal(host_grows_at(h, t0, 350), 256u << 10);
  assert_int_equal(host_grows_at(h, t0, 560), 256u << 10);
  assert_int_equal(host_grows_at(h, t0, 570), 256u << 10);
  test_clock_ms = 0;
  unit_load_options(NULL, NULL);
}

/* A heap that its budget refused memory within the release delay keeps its
 * free pages (its next allocations would fault them in again); once the
 * refusals have stopped for a delay, it releases them. */
static void test_no_release_at_limit(void **state) {
  (void)state;
  uint64_t delay = unit_heap.release_delay_ms, now = tp_os_now_ms() + 1000;
  uint32_t pages = (6u << 20) >> TP_PAGE_SHIFT; /* resident enough to be worth a release */
  char *p = tp_buddy_take(&unit_heap, pages, 0, NULL);
  memset(p, 1, (size_t)pages * TP_PAGE_SIZE);
  tp_segment *seg = tp_segment_of(p);
  tp_buddy_give(&unit_heap, seg, tp_page_index(seg, p), pages); /* nothing live: a collapse */
  atomic_fetch_add(&unit_heap.budget.limit_hits, 1);
  uint64_t released = unit_heap.buddy_released_bytes;
  tp_heap_maintain(&unit_heap, now);
  assert_int_equal(unit_heap.buddy_released_bytes, released);
  tp_heap_maintain(&unit_heap, now + delay - 1);
  assert_int_equal(unit_heap.buddy_released_bytes, released);
  tp_heap_maintain(&unit_heap, now + delay);
  assert_true(unit_heap.buddy_released_bytes >= released + (uint64_t)pages * TP_PAGE_SIZE);
}

/* A collapse of 6 MiB (nothing live), freed at `now`: what each `release`
 * policy gives back at once, after the release delay, and before the pool
 * maps memory.  Returns the bytes released by each step in out[0..2]. */
static void collapse_under_policy(const char *policy, uint64_t out[3]) {
  const char *env[] = {NULL, NULL};
  char setting[64];
  snprintf(setting, sizeof setting, "TIERPOOL_RELEASE=%s", policy);
  env[0] = setting;
  assert_string_equal(unit_load_options(NULL, env), "");
  tp_heap_init(&unit_heap, "unit");
  uint64_t delay = unit_heap.release_delay_ms;
  uint32_t pages = (6u << 20) >> TP_PAGE_SHIFT;
  char *p = tp_buddy_take(&unit_heap, pages, 0, NULL);
  memset(p, 1, (size_t)pages * TP_PAGE_SIZE);
  tp_segment *seg = tp_segment_of(p);
  tp_buddy_give(&unit_heap, seg, tp_page_index(seg, p), pages);
  uint64_t now = tp_os_now_ms(); /* the clock of the free: not idle yet */
  uint64_t released = unit_heap.buddy_released_bytes;
  tp_heap_maintain(&unit_heap, now);
  out[0] = unit_heap.buddy_released_bytes - released;
  released = unit_heap.buddy_released_bytes;
  tp_heap_maintain(&unit_heap, now + delay + 1);
  out[1] = unit_heap.buddy_released_bytes - released;
  released = unit_heap.buddy_released_bytes;
  /* Taken and freed again, then the pool is about to map a large block. */
  p = take_written(pages);
  tp_buddy_give(&unit_heap, seg, tp_page_index(seg, p), pages);
  tp_heap_purge_before_growth(&unit_heap, SIZE_MAX);
  out[2] = unit_heap.buddy_released_bytes - released;
  unit_load_options(NULL, NULL);
}

/* `release`: eager gives a collapse back at once and purges before a
 * mapping; idle waits the release delay and never purges early; off keeps
 * every page (a Python job that rebuilds 100 MiB a round ran 2.2x glibc's
 * time eagerly on this VM, 1.0x with off). */
static void test_release_policies(void **state) {
  (void)state;
  const uint64_t six = 6u << 20;
  uint64_t r[3];
  collapse_under_policy("eager", r);
  assert_true(r[0] >= six);
  assert_true(r[2] >= six);
  collapse_under_policy("idle", r);
  assert_int_equal(r[0], 0);
  assert_true(r[1] >= six);
  assert_int_equal(r[2], 0);
  collapse_under_policy("off", r);
  assert_int_equal(r[0] + r[1] + r[2], 0);
}

static void test_heap_pages_and_page_map(void **state) {
  (void)state;
  bool zeroed;
  char *p = tp_heap_alloc_pages(&unit_heap, 20 * TP_PAGE_SIZE, 0, 20 * TP_PAGE_SIZE - 100, false, &zeroed);
  assert_non_null(p);
  tp_segment *seg = tp_segment_of(p);
  assert_true(tp_segment_is_ours(p));
  assert_true(tp_segment_is_ours(p + 20 * TP_PAGE_SIZE - 1));
  uint32_t first = tp_page_index(seg, p);
  assert_int_equal(TP_PAGE_KIND(seg->page_map[first]), TP_PAGE_BUDDY);
  assert_int_equal(TP_PAGE_DATA(seg->page_map[first]), 20);
  assert_int_equal(unit_heap.buddy_live_bytes, 20 * TP_PAGE_SIZE);
  assert_true(tp_heap_shrink_pages(&unit_heap, seg, first, 8 * TP_PAGE_SIZE));
  assert_int_equal(TP_PAGE_DATA(seg->page_map[first]), 8);
  assert_int_equal(unit_heap.buddy_live_bytes, 8 * TP_PAGE_SIZE);
  tp_heap_free_pages(&unit_heap, seg, first, p, "free");
  assert_int_equal(TP_PAGE_KIND(seg->page_map[first]), TP_PAGE_FREE);
  assert_int_equal(unit_heap.buddy_live_bytes, 0);
  assert_int_equal(unit_heap.buddy_allocs, 1);
  assert_int_equal(unit_heap.buddy_frees, 1);
  int local;
  assert_false(tp_segment_is_ours(&local));
}

static void test_grow_in_place(void **state) {
  (void)state;
  bool zeroed;
  char *p = tp_heap_alloc_pages(&unit_heap, 5 * TP_PAGE_SIZE, 0, 5 * TP_PAGE_SIZE, false, &zeroed);
  tp_segment *seg = tp_segment_of(p);
  uint32_t first = tp_page_index(seg, p);
  memset(p, 0x11, 5 * TP_PAGE_SIZE);
  /* The trimmed tail (3 pages) is free right behind the block. */
  assert_true(tp_heap_grow_pages(&unit_heap, seg, first, 8 * TP_PAGE_SIZE));
  assert_int_equal(TP_PAGE_DATA(seg->page_map[first]), 8);
  assert_int_equal(unit_heap.buddy_live_bytes, 8 * TP_PAGE_SIZE);
  assert_int_equal(allocated_pages(&unit_heap), 8);
  memset(p, 0x22, 8 * TP_PAGE_SIZE);
  /* Something allocated right behind it blocks growth. */
  char *q = tp_heap_alloc_pages(&unit_heap, 8 * TP_PAGE_SIZE, 0, 8 * TP_PAGE_SIZE, false, &zeroed);
  if (q == p + 8 * TP_PAGE_SIZE) assert_false(tp_heap_grow_pages(&unit_heap, seg, first, 9 * TP_PAGE_SIZE));
  tp_heap_free_pages(&unit_heap, seg, first, p, "free");
  assert_int_equal(allocated_pages(&unit_heap), 8);
}

static void test_move_out_keeps_pages(void **state) {
  (void)state;
  bool zeroed;
  size_t size = 3u << 20;
  char *p = tp_heap_alloc_pages(&unit_heap, size, 0, size, false, &zeroed);
  for (size_t i = 0; i < size; i += TP_PAGE_SIZE) p[i] = (char)(i >> 12);
  tp_segment *seg = tp_segment_of(p);
  uint32_t first = tp_page_index(seg, p);
  uint64_t released = unit_heap.released_pages;
  char *q = tp_heap_move_out(&unit_heap, seg, first, 6u << 20);
  assert_non_null(q);
  assert_false(tp_segment_is_ours(q)); /* a mapping of its own now */
  for (size_t i = 0; i < size; i += TP_PAGE_SIZE) assert_int_equal(q[i], (char)(i >> 12));
  q[(6u << 20) - 1] = 1; /* the grown part is there too */
  /* The old range went back to the buddy as fresh (not resident) pages, still mapped. */
  assert_int_equal(TP_PAGE_KIND(seg->page_map[first]), TP_PAGE_FREE);
  assert_int_equal(unit_heap.released_pages, released + (size >> TP_PAGE_SHIFT));
  assert_int_equal(unit_heap.buddy_live_bytes, 0);
  assert_int_equal(p[0], 0);
  tp_os_unmap(q, 6u << 20);
}

static void test_growth_across_segments(void **state) {
  (void)state;
  /* Three 12 MiB blocks cannot share one 32 MiB segment with its header. */
  for (int i = 0; i < 3; i++) assert_non_null(tp_buddy_take(&unit_heap, 3072, 0, NULL));
  assert_true(unit_heap.segment_count >= 2);
  /* Blocks above half a segment do not exist. */
  assert_null(tp_buddy_take(&unit_heap, TP_SEGMENT_PAGES, 0, NULL));
}

/* Whether the page holding p is mapped in (mincore). */
static bool page_resident(const void *p) {
  unsigned char in_core = 0;
  uintptr_t page = (uintptr_t)p & ~(uintptr_t)(TP_PAGE_SIZE - 1);
  assert_int_equal(mincore((void *)page, TP_PAGE_SIZE, &in_core), 0);
  return in_core & 1;
}

/* A host's munmap of a range far from the pool (node unmaps reservations
 * all over the address space) must not read the segment bitmap there: each
 * page read would be mapped in, and a page of RSS where the kernel has no
 * shared zero page. */
static void test_range_scan_stays_near_segments(void **state) {
  (void)state;
  void *p = tp_buddy_take(&unit_heap, 1, 0, NULL);
  assert_non_null(p);
  assert_ptr_equal(tp_segment_in_range((uintptr_t)p, (uintptr_t)p + 1), (uintptr_t)tp_segment_of(p));
  /* Each bitmap page covers 2^15 segments (1 TiB): find one not yet mapped
   * in, scan all the addresses it covers, and look again. */
  const uintptr_t per_page = (uintptr_t)TP_PAGE_SIZE * 8 << TP_SEGMENT_SHIFT;
  uintptr_t lo = 0;
  for (uintptr_t at = per_page; at < ((uintptr_t)1 << 47) && !lo; at += per_page)
    if (!page_resident(&tp_segment_bitmap[(at >> TP_SEGMENT_SHIFT) >> 6])) lo = at;
  assert_true(lo != 0);
  assert_int_equal(tp_segment_in_range(lo, lo + per_page), 0);
  assert_false(page_resident(&tp_segment_bitmap[(lo >> TP_SEGMENT_SHIFT) >> 6]));
  /* A range from far below to far above the pool still finds its segment. */
  assert_true(tp_segment_in_range(4096, (uintptr_t)1 << 47) != 0);
}

/* Header pages a segment's fields, page map (up to the frontier) and used
 * span slots can touch: what the header may hold resident. */
static uint64_t header_bound(const tp_segment *seg) {
  size_t map_end = offsetof(tp_segment, page_map) + (size_t)seg->frontier * sizeof(uint32_t);
  size_t spans_begin = offsetof(tp_segment, spans), spans_end = spans_begin + seg->span_top * sizeof(tp_span);
  uint64_t pages = (map_end + TP_PAGE_SIZE - 1) / TP_PAGE_SIZE;
  if (seg->span_top) pages += (spans_end + TP_PAGE_SIZE - 1) / TP_PAGE_SIZE - spans_begin / TP_PAGE_SIZE;
  return pages * TP_PAGE_SIZE;
}

/* Descriptors sit in slots taken densely, not at their block's page: ~128
 * free blocks of 16 pages spread over 4096 pages touch a few pages of
 * descriptors (indexed by page, they touched 64). */
static void test_descriptors_stay_dense(void **state) {
  (void)state;
  enum { N = 256 };
  static char *blocks[N];
  static bool taken[TP_SEGMENT_PAGES];
  for (int i = 0; i < N; i++) blocks[i] = tp_buddy_take(&unit_heap, 16, 4, NULL);
  tp_segment *seg = tp_segment_of(blocks[0]);
  for (int i = 0; i < N; i++) {
    assert_ptr_equal(tp_segment_of(blocks[i]), seg);
    taken[tp_page_index(seg, blocks[i])] = true;
  }
  /* Free the lower halves of pairs whose upper half stays allocated: none merges. */
  uint32_t given = 0;
  for (int i = 0; i < N; i++) {
    uint32_t first = tp_page_index(seg, blocks[i]);
    if ((first & 16) || !taken[first + 16]) continue;
    memset(blocks[i], 1, 16 * TP_PAGE_SIZE);
    tp_buddy_give(&unit_heap, seg, first, 16);
    given++;
  }
  assert_true(given >= N / 3); /* ~110: grow steps leave a few holes */
  tp_buddy_coalesce(&unit_heap);
  uint32_t live = 0;
  for (uint32_t order = 0; order < TP_BUDDY_ORDERS; order++) live += free_blocks(&unit_heap, order);
  assert_true(live >= given);
  /* Slots ever used: the peak of descriptors, here before the frontier's
   * unaligned pieces merged, far from one per page (~4000). */
  assert_true(seg->span_top <= 2 * live);
  for (int i = 0; i < N; i++) { /* each free block's head names its descriptor, which names it back */
    uint32_t first = tp_page_index(seg, blocks[i]), entry = seg->page_map[first];
    if ((first & 16) || !taken[first + 16]) continue;
    assert_int_equal(TP_PAGE_KIND(entry), TP_PAGE_FREE);
    assert_int_equal(TP_PAGE_DATA(entry) & TP_FREE_ORDER_MASK, 4);
    assert_true(TP_FREE_SLOT(entry) < seg->span_top);
    assert_int_equal(seg->spans[TP_FREE_SLOT(entry)].first, first);
  }
  uint64_t residency[4] = {0};
  tp_heap_residency(&unit_heap, residency);
  assert_true(residency[0] <= header_bound(seg));
  assert_true(residency[0] <= 12 * TP_PAGE_SIZE);
  assert_int_equal(residency[3], (uint64_t)given * 16 * TP_PAGE_SIZE); /* the free blocks written above */
}

/* The worst case: every page of a segment its own free block, each with a
 * descriptor.  The slots hold them all, and they merge back into one piece. */
static void test_every_page_its_own_block(void **state) {
  (void)state;
  tp_segment *seg = NULL;
  for (;;) { /* every page of the first segment, one at a time */
    char *p = tp_buddy_take(&unit_heap, 1, 0, NULL);
    assert_non_null(p);
    if (seg && tp_segment_of(p) != seg) break;
    seg = tp_segment_of(p);
  }
  assert_int_equal(seg->frontier, TP_SEGMENT_PAGES);
  uint32_t top = seg->span_top;
  for (uint32_t page = seg->header_pages; page < TP_SEGMENT_PAGES; page++) tp_buddy_give(&unit_heap, seg, page, 1);
  assert_true(seg->span_top <= TP_SEGMENT_PAGES);
  assert_true(seg->span_top >= TP_SEGMENT_PAGES - seg->header_pages);
  assert_true(free_blocks(&unit_heap, 0) >= TP_SEGMENT_PAGES - seg->header_pages);
  assert_true(top <= seg->span_top);
  tp_buddy_coalesce(&unit_heap);
  char *big = tp_buddy_take(&unit_heap, TP_SEGMENT_PAGES / 4, 0, NULL); /* merged back, resident */
  assert_non_null(big);
  assert_ptr_equal(tp_segment_of(big), seg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_take_trims_the_tail, unit_setup_heap),
      cmocka_unit_test_setup(test_alignment, unit_setup_heap),
      cmocka_unit_test_setup(test_deferred_coalescing, unit_setup_heap),
      cmocka_unit_test_setup(test_coalesce_on_demand, unit_setup_heap),
      cmocka_unit_test_setup(test_release_and_zeroed_reuse, unit_setup_heap),
      cmocka_unit_test_setup(test_release_merges_neighbours, unit_setup_heap),
      cmocka_unit_test_setup(test_release_delay_adapts, unit_setup_heap),
      cmocka_unit_test_setup(test_release_judged_once, unit_setup_heap),
      cmocka_unit_test_setup(test_small_releases_do_not_forgive, unit_setup_heap),
      cmocka_unit_test_setup(test_purge_before_growth_is_proportional, unit_setup_heap),
      cmocka_unit_test(test_host_purges_judged_together),
      cmocka_unit_test_setup(test_no_release_at_limit, unit_setup_heap),
      cmocka_unit_test(test_release_policies),
      cmocka_unit_test_setup(test_heap_pages_and_page_map, unit_setup_heap),
      cmocka_unit_test_setup(test_grow_in_place, unit_setup_heap),
      cmocka_unit_test_setup(test_move_out_keeps_pages, unit_setup_heap),
      cmocka_unit_test_setup(test_growth_across_segments, unit_setup_heap),
      cmocka_unit_test_setup(test_range_scan_stays_near_segments, unit_setup_heap),
      cmocka_unit_test_setup(test_descriptors_stay_dense, unit_setup_heap),
      cmocka_unit_test_setup(test_every_page_its_own_block, unit_setup_heap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
