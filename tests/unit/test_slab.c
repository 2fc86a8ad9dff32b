/* test_slab.c — size classes and the central slab lists. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"


static void test_class_table(void **state) {
  (void)state;
  for (uint32_t c = 0; c < tp_classes.count; c++) {
    const tp_size_class *sc = &tp_classes.classes[c];
    size_t slab_bytes = (size_t)sc->slab_pages << TP_PAGE_SHIFT;
    assert_int_equal(sc->size % 16, 0);
    assert_true(slab_bytes / sc->size >= 8);         /* at least 8 blocks a slab */
    assert_true(slab_bytes % sc->size <= slab_bytes / 8); /* tail waste under 1/8 */
    /* A thread caches tcache_bytes of each class (none of a bigger one). */
    uint64_t want = tp_opt.tcache_bytes / sc->size;
    assert_int_equal(sc->cache_max, want > 256 ? 256 : want);
    assert_int_equal(tp_class_of_size(sc->size), c);
    if (c > 0) assert_int_equal(tp_class_of_size(tp_classes.classes[c - 1].size + 1), c);
    /* The exact-division magic agrees with division for every block offset. */
    for (uint64_t off = 0; off < slab_bytes; off += 16)
      assert_true(((off * sc->div_magic) >> 40) == off / sc->size);
  }
}

/* tcache_bytes = 0 (its documented minimum) turns the thread caches off: it
 * once read as "unset" and gave every class the 16K default. */
static void test_no_thread_cache(void **state) {
  (void)state;
  uint64_t saved = tp_opt.tcache_bytes;
  tp_class_table t = tp_classes;
  tp_opt.tcache_bytes = 0;
  tp_classes_finish(&t);
  for (uint32_t c = 0; c < t.count; c++) assert_int_equal(t.classes[c].cache_max, 0);
  tp_opt.tcache_bytes = saved;
}

static void test_fill_and_return(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(48);
  void *head;
  uint32_t n = tp_central_fill(&unit_heap, cls, &head, 10);
  assert_int_equal(n, 10);
  assert_int_equal(atomic_load(&unit_heap.slab_out_bytes), 10 * 48);
  void **b = head;
  char *prev = NULL;
  for (uint32_t i = 0; i < n; i++, b = b[0]) {
    assert_non_null(b);
    assert_int_equal((uintptr_t)b % 16, 0);
    assert_ptr_equal(b[1], tp_free_mark(b)); /* blocks in caches are marked free */
    tp_segment *seg = tp_segment_of(b);
    assert_int_equal(TP_PAGE_KIND(seg->page_map[tp_page_index(seg, b)]), TP_PAGE_SLAB);
    if (prev) assert_true(labs((long)((char *)b - prev)) >= 48);
    prev = (char *)b;
  }
  tp_central_return(&unit_heap, cls, head, n);
  assert_int_equal(atomic_load(&unit_heap.slab_out_bytes), 0);
  /* The slab is empty: it is the spare now, not in the partial list. */
  assert_null(unit_heap.central[cls].partial[0]);
  assert_null(unit_heap.central[cls].partial[1]);
  assert_non_null(unit_heap.central[cls].spare);
}

static void test_many_slabs_one_spare(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(1024);
  const tp_size_class *sc = &tp_classes.classes[cls];
  uint32_t per_slab = (uint32_t)(((size_t)sc->slab_pages << TP_PAGE_SHIFT) / sc->size);
  uint32_t want = per_slab * 5 + 3;
  void *head;
  assert_int_equal(tp_central_fill(&unit_heap, cls, &head, want), want);
  assert_int_equal(unit_heap.central[cls].slabs, 6);
  /* Every block is distinct and writable without touching its neighbours. */
  uint32_t i = 0;
  for (void **b = head; b; b = b[0], i++) memset((char *)b + 16, (int)(i & 0xff), sc->size - 16);
  i = 0;
  for (void **b = head; b; b = b[0], i++)
    for (uint32_t k = 16; k < sc->size; k += 97) assert_int_equal(((unsigned char *)b)[k], i & 0xff);
  uint64_t slab_pages = unit_heap.slab_pages;
  tp_central_return(&unit_heap, cls, head, want);
  assert_int_equal(unit_heap.central[cls].slabs, 1);                /* one spare stays */
  assert_int_equal(unit_heap.slab_pages, slab_pages / 6);           /* the rest went back */
  assert_int_equal(tp_central_release_spares(&unit_heap), slab_pages / 6 * TP_PAGE_SIZE);
  assert_int_equal(unit_heap.slab_pages, 0);
}

static void test_partial_reuse(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(256);
  void *head;
  uint32_t n = tp_central_fill(&unit_heap, cls, &head, 64);
  /* Return every other block, then refill: the freed blocks come back first. */
  void *keep = NULL, *give = NULL;
  uint32_t given = 0;
  for (void **b = head, **next; b; b = next) {
    next = b[0];
    if (given * 2 < n && ((uintptr_t)b / 256) % 2) {
      b[0] = give, give = b, given++;
    } else {
      b[0] = keep, keep = b;
    }
  }
  tp_central_return(&unit_heap, cls, give, given);
  void *again;
  assert_int_equal(tp_central_fill(&unit_heap, cls, &again, given), given);
  uint64_t pages = unit_heap.slab_pages;
  assert_int_equal(pages, tp_classes.classes[cls].slab_pages); /* no new slab */
}

/* Every page of a slab names the slab's first page and its descriptor's slot;
 * slabs created and destroyed over and over reuse the same slots, and 48
 * slabs of 64 pages (one descriptor per 256 KiB of pages) touch one or two
 * header pages of descriptors, not 48. */
static void test_slab_descriptors_dense(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(32768);
  const tp_size_class *sc = &tp_classes.classes[cls];
  uint32_t per_slab = (uint32_t)(((size_t)sc->slab_pages << TP_PAGE_SHIFT) / sc->size);
  uint32_t want = per_slab * 48;
  void *head;
  assert_int_equal(tp_central_fill(&unit_heap, cls, &head, want), want);
  tp_segment *seg = unit_heap.segments;
  assert_null(seg->next);
  for (void **b = head; b; b = b[0]) {
    uint32_t page = tp_page_index(seg, b), entry = seg->page_map[page];
    assert_int_equal(TP_PAGE_KIND(entry), TP_PAGE_SLAB);
    tp_span *slab = &seg->spans[TP_SLAB_SLOT(entry)];
    assert_int_equal(slab->first, TP_SLAB_FIRST(entry));
    assert_true(page >= slab->first && page < slab->first + slab->pages);
    assert_int_equal(slab->class_idx, cls);
    assert_int_equal(seg->page_map[slab->first], entry); /* the same entry on every page */
  }
  uint64_t residency[4] = {0};
  tp_heap_residency(&unit_heap, residency);
  /* Page map up to the frontier (~13 KiB) and ~60 descriptors (~4 KiB). */
  assert_true(residency[0] <= 8 * TP_PAGE_SIZE);
  uint32_t top = seg->span_top;
  for (int round = 0; round < 10; round++) {
    tp_central_return(&unit_heap, cls, head, want);
    tp_central_release_spares(&unit_heap);
    assert_int_equal(unit_heap.slab_pages, 0);
    assert_int_equal(tp_central_fill(&unit_heap, cls, &head, want), want);
  }
  assert_true(seg->span_top <= top + 8); /* slots freed are taken again */
  assert_ptr_equal(unit_heap.segments, seg);
}

/* A spare slab nobody takes goes back to the buddy after the idle time, by
 * maintenance too: an idle class keeps no slab resident. */
static void test_idle_spare_retired(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(512);
  uint32_t pages = tp_classes.classes[cls].slab_pages;
  void *head;
  uint32_t n = tp_central_fill(&unit_heap, cls, &head, 8);
  tp_central_return(&unit_heap, cls, head, n);
  tp_span *spare = unit_heap.central[cls].spare;
  assert_non_null(spare);
  uint64_t slab_pages = unit_heap.slab_pages, now = tp_os_now_ms();
  tp_central_retire_spares(&unit_heap, now, 1000); /* not idle long enough */
  assert_ptr_equal(unit_heap.central[cls].spare, spare);
  tp_central_retire_spares(&unit_heap, now + 1000, 1000);
  assert_null(unit_heap.central[cls].spare);
  assert_int_equal(unit_heap.central[cls].slabs, 0);
  assert_int_equal(unit_heap.slab_pages, slab_pages - pages);

  n = tp_central_fill(&unit_heap, cls, &head, 8);
  tp_central_return(&unit_heap, cls, head, n);
  assert_non_null(unit_heap.central[cls].spare);
  tp_heap_maintain(&unit_heap, tp_os_now_ms() + 60000);
  assert_null(unit_heap.central[cls].spare);
  assert_int_equal(unit_heap.slab_pages, slab_pages - pages);
}

/* A sampled block stays where it is: its bit in the segment's bitmap is set
 * and its slab counts it (whose frees then take the slow path, which asks the
 * bit); marked twice it counts once; its free clears both.  Marks an
 * unrecorded free leaves are cleared when the slab's pages go back. */
static void test_sampled_blocks_marked_in_place(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(1024);
  uint64_t slab_pages = unit_heap.slab_pages;
  void *head;
  assert_int_equal(tp_central_fill(&unit_heap, cls, &head, 2), 2);
  void **a = head, **b = a[0];
  tp_segment *seg = tp_segment_of(a);
  tp_span *slab = &seg->spans[TP_SLAB_SLOT(seg->page_map[tp_page_index(seg, a)])];
  assert_ptr_equal(slab, &seg->spans[TP_SLAB_SLOT(seg->page_map[tp_page_index(seg, b)])]);
  assert_int_equal(slab->samples, 0); /* the span slot's union held a buddy order before */

  tp_slab_mark_sampled(a);
  tp_slab_mark_sampled(a);
  assert_int_equal(slab->samples, 1);
  assert_true(tp_slab_sampled_bit(seg, a));
  assert_false(tp_slab_sampled_bit(seg, b));
  assert_false(tp_slab_sampled_bit(seg, (char *)a + 16)); /* one bit per 16 bytes: only its first */
  a[1] = NULL, b[1] = NULL; /* live blocks: no free mark */
  assert_true(tp_classify(a).sampled);
  assert_false(tp_classify(b).sampled);

  assert_true(tp_slab_unmark_sampled(seg, slab, a));
  assert_false(tp_slab_unmark_sampled(seg, slab, a));
  assert_int_equal(slab->samples, 0);
  assert_false(tp_slab_sampled_bit(seg, a));

  tp_slab_mark_sampled(b); /* freed with the recorder off: the mark stays */
  a[0] = b, b[0] = NULL;
  a[1] = tp_free_mark(a), b[1] = tp_free_mark(b);
  tp_central_return(&unit_heap, cls, a, 2);
  assert_true(tp_slab_sampled_bit(seg, b));
  tp_central_release_spares(&unit_heap);
  assert_int_equal(unit_heap.slab_pages, slab_pages);
  assert_false(tp_slab_sampled_bit(seg, b));
  assert_int_not_equal(TP_PAGE_KIND(seg->page_map[tp_page_index(seg, b)]), TP_PAGE_SLAB);
}

/* Free blocks of two pages or more give back their pages past the first
 * while their slab is still in use, once they have been free for the idle
 * time; the first page keeps the free list and the double-free mark.  A
 * refill takes them back into the heap's resident count, and so does the
 * slab emptying (it bumps afresh). */
static void test_free_block_pages_purged(void **state) {
  (void)state;
  uint32_t cls = tp_class_of_size(16384);
  const tp_size_class *sc = &tp_classes.classes[cls];
  uint32_t per_slab = (uint32_t)(((size_t)sc->slab_pages << TP_PAGE_SHIFT) / sc->size);
  uint64_t inner = sc->size / TP_PAGE_SIZE - 1; /* page-aligned blocks: all but the first page */
  void *head;
  assert_int_equal(tp_central_fill(&unit_heap, cls, &head, per_slab), per_slab);
  for (void **b = head; b; b = b[0]) memset((char *)b + 16, 0x5a, sc->size - 16); /* resident */
  void **kept = head, *give = kept[0];
  kept[0] = NULL;
  uint64_t resident = tp_heap_resident_bytes(&unit_heap), now = tp_os_now_ms();
  tp_central_return(&unit_heap, cls, give, per_slab - 1);

  assert_int_equal(tp_central_purge_blocks(&unit_heap, now, 1000), 0); /* not idle long enough */
  size_t released = tp_central_purge_blocks(&unit_heap, now + 1000, 1000);
  assert_int_equal(released, (per_slab - 1) * inner * TP_PAGE_SIZE);
  assert_int_equal(tp_heap_resident_bytes(&unit_heap), resident - released);
  assert_int_equal(tp_central_purge_blocks(&unit_heap, now + 2000, 1000), 0); /* once */
  tp_span *slab = unit_heap.central[cls].partial[1];
  assert_non_null(slab);
  unsigned char vec[64];
  for (void **b = slab->free_blocks; b; b = b[0]) {
    assert_ptr_equal(b[1], tp_free_mark(b)); /* a double free is still seen */
    assert_int_equal(tp_os_mincore(b, sc->size, vec), true);
    assert_int_equal(vec[0] & 1, 1);
    for (uint64_t i = 1; i <= inner; i++) assert_int_equal(vec[i] & 1, 0);
  }

  /* Two blocks taken again: their pages count as resident again. */
  void *again;
  assert_int_equal(tp_central_fill(&unit_heap, cls, &again, 2), 2);
  assert_int_equal(tp_heap_resident_bytes(&unit_heap), resident - released + 2 * inner * TP_PAGE_SIZE);
  tp_central_return(&unit_heap, cls, again, 2);
  tp_central_return(&unit_heap, cls, kept, 1); /* the last block: the slab empties */
  assert_int_equal(atomic_load(&unit_heap.slab_released_pages), 0);
  assert_int_equal(tp_heap_resident_bytes(&unit_heap), resident);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_idle_spare_retired, unit_setup_heap),
      cmocka_unit_test_setup(test_class_table, unit_setup_heap),
      cmocka_unit_test_setup(test_no_thread_cache, unit_setup_heap),
      cmocka_unit_test_setup(test_fill_and_return, unit_setup_heap),
      cmocka_unit_test_setup(test_many_slabs_one_spare, unit_setup_heap),
      cmocka_unit_test_setup(test_partial_reuse, unit_setup_heap),
      cmocka_unit_test_setup(test_slab_descriptors_dense, unit_setup_heap),
      cmocka_unit_test_setup(test_sampled_blocks_marked_in_place, unit_setup_heap),
      cmocka_unit_test_setup(test_free_block_pages_purged, unit_setup_heap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
