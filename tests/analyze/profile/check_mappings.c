/* check_mappings.c — analyze/mappings.c against a model that keeps one flag
 * per page: random mprotect and munmap calls (overlapping, partial, past the
 * edges, holes) on a few mappings, and after each the accessible bytes and
 * the edges of every mapping must be the model's.  ASan and UBSan watch the
 * range arithmetic.  Exit status 0, or 1 with the first difference. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mappings.h"

#define PAGE 4096u
#define PAGES 512u /* each mapping's pages at the start */
#define MAPPINGS 3u

static const uint64_t base[MAPPINGS] = {0x100000000ull, 0x200000000ull, 0x300000000ull};

struct model {
  bool mapped[PAGES], open[PAGES];
  bool gone;
};
static struct model model[MAPPINGS];
static unsigned changes, gones, reopened;

static void on_change(void *ctx, const struct tp_mapping *m, bool gone) {
  (void)ctx, (void)m;
  changes++;
  gones += gone;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
  rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
  return (uint32_t)(rnd_state % n);
}

/* What the model says of mapping k: its edges (the first and last mapped
 * page; the tracker only trims edges, so holes stay inside) and open bytes. */
static bool model_state(unsigned k, uint64_t *lo, uint64_t *hi, uint64_t *open) {
  int first = -1, last = -1;
  *open = 0;
  for (unsigned i = 0; i < PAGES; i++) {
    if (model[k].mapped[i]) {
      if (first < 0) first = (int)i;
      last = (int)i;
    }
    if (model[k].open[i]) *open += PAGE;
  }
  *lo = base[k] + (uint64_t)(first < 0 ? 0 : first) * PAGE;
  *hi = base[k] + (uint64_t)(last + 1) * PAGE;
  return first >= 0;
}

int main(void) {
  struct tp_mappings s = {0};
  for (unsigned k = 0; k < MAPPINGS; k++) {
    bool open = k == 2;
    if (!tp_mappings_open(&s, base[k], (uint64_t)PAGES * PAGE, open, k)) return 1;
    for (unsigned i = 0; i < PAGES; i++) model[k].mapped[i] = true, model[k].open[i] = open;
  }
  for (unsigned step = 0; step < 20000; step++) {
    unsigned k = rnd(MAPPINGS);
    if (model[k].gone) { /* mapped again, as a runtime maps its next memory */
      bool open = rnd(2);
      if (!tp_mappings_open(&s, base[k], (uint64_t)PAGES * PAGE, open, k)) return 1;
      for (unsigned i = 0; i < PAGES; i++) model[k].mapped[i] = true, model[k].open[i] = open;
      model[k].gone = false;
      reopened++;
      continue;
    }
    /* A range around mapping k: may start before it and end past it. */
    int64_t first = (int64_t)rnd(PAGES + 64) - 32, count = 1 + rnd(step % 50 == 0 ? PAGES + 64 : 48);
    uint64_t addr = (uint64_t)((int64_t)base[k] + first * (int64_t)PAGE), len = (uint64_t)count * PAGE;
    unsigned what = rnd(40);
    uint64_t lo, hi, open;
    model_state(k, &lo, &hi, &open);
    if (what < 38) { /* mprotect: pages that are mapped */
      bool accessible = what < 22;
      if (tp_mappings_protect(&s, addr, len, accessible, on_change, NULL) < 0) return 1;
      for (int64_t i = first; i < first + count; i++)
        if (i >= 0 && i < (int64_t)PAGES && model[k].mapped[i]) model[k].open[i] = accessible;
    } else { /* munmap: only at an edge (or all of it), as runtimes trim */
      int64_t lo_page = (int64_t)((lo - base[k]) / PAGE), hi_page = (int64_t)((hi - base[k]) / PAGE);
      if (step % 2) first = lo_page - rnd(4);          /* the head */
      else first = hi_page - count + rnd(4);           /* the tail */
      addr = (uint64_t)((int64_t)base[k] + first * (int64_t)PAGE);
      if (tp_mappings_unmap(&s, addr, len, on_change, NULL) < 0) return 1;
      for (int64_t i = first; i < first + count; i++)
        if (i >= 0 && i < (int64_t)PAGES) model[k].mapped[i] = model[k].open[i] = false;
      bool any = false;
      for (unsigned i = 0; i < PAGES; i++) any |= model[k].mapped[i];
      model[k].gone = !any || (first <= lo_page && first + count >= hi_page);
      if (model[k].gone)
        for (unsigned i = 0; i < PAGES; i++) model[k].mapped[i] = model[k].open[i] = false;
    }
    for (unsigned j = 0; j < MAPPINGS; j++) {
      struct tp_mapping *m = tp_mappings_find(&s, base[j], base[j] + (uint64_t)PAGES * PAGE);
      if (model[j].gone != (m == NULL)) {
        printf("FAIL: step %u: mapping %u %s\n", step, j, m ? "still there" : "gone too early");
        return 1;
      }
      if (!m) continue;
      model_state(j, &lo, &hi, &open);
      if (m->lo != lo || m->hi != hi || m->accessible != open || m->tag != j) {
        printf("FAIL: step %u: mapping %u is [%#" PRIx64 ", %#" PRIx64 ") with %" PRIu64
               " accessible, the model [%#" PRIx64 ", %#" PRIx64 ") with %" PRIu64 "\n",
               step, j, m->lo, m->hi, m->accessible, lo, hi, open);
        return 1;
      }
    }
  }
  printf("ok: 20000 calls on %u mappings agree with the page model (%u changes reported, %u unmapped whole and "
         "mapped again)\n", MAPPINGS, changes, gones);
  if (gones < 10 || reopened < 10 || changes < 10000) {
    printf("FAIL: too few calls of each kind to mean much\n");
    return 1;
  }
  /* A mapping said to run past the end of the address space ends there. */
  const uint64_t top = 0xfffffffff0000000ull;
  struct tp_mapping *m = tp_mappings_open(&s, top, 0x20000000, true, 9);
  if (!m || m->lo != top || m->hi != UINT64_MAX || m->accessible != UINT64_MAX - top) {
    printf("FAIL: a mapping of 512 MiB at %#" PRIx64 " is [%#" PRIx64 ", %#" PRIx64 ") with %" PRIu64
           " accessible, not cut at the end of the address space\n", top, m ? m->lo : 0, m ? m->hi : 0,
           m ? m->accessible : 0);
    return 1;
  }
  printf("ok: a mapping past the end of the address space is cut there\n");
  tp_mappings_clear(&s);
  return 0;
}
