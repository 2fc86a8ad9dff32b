/* mappings.c — large anonymous mappings through mmap calls (mappings.h). */
#include "mappings.h"

#include <stdlib.h>
#include <string.h>

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static int reserve_ranges(struct tp_mapping *m, size_t need) {
  if (need <= m->open_cap) return 0;
  size_t cap = m->open_cap ? m->open_cap * 2 : 4;
  while (cap < need) cap *= 2;
  struct tp_range *open = realloc(m->open, cap * sizeof *open);
  if (!open) return -1;
  m->open = open, m->open_cap = cap;
  return 0;
}

/* [lo, hi) joins the accessible ranges (merged with those it touches). */
static int ranges_add(struct tp_mapping *m, uint64_t lo, uint64_t hi) {
  size_t i = 0, j;
  while (i < m->n_open && m->open[i].hi < lo) i++;
  for (j = i; j < m->n_open && m->open[j].lo <= hi; j++) lo = min_u64(lo, m->open[j].lo), hi = max_u64(hi, m->open[j].hi);
  if (j == i && reserve_ranges(m, m->n_open + 1) < 0) return -1;
  /* open[i..j) become the one range [lo, hi). */
  memmove(&m->open[i + 1], &m->open[j], (m->n_open - j) * sizeof *m->open);
  m->n_open = m->n_open + 1 - (j - i);
  m->open[i] = (struct tp_range){lo, hi};
  return 0;
}

/* [lo, hi) leaves the accessible ranges (a range around it splits in two). */
static int ranges_remove(struct tp_mapping *m, uint64_t lo, uint64_t hi) {
  struct tp_range *out = malloc((m->n_open + 1) * sizeof *out);
  if (!out) return -1;
  size_t n = 0;
  for (size_t i = 0; i < m->n_open; i++) {
    struct tp_range r = m->open[i];
    if (r.hi <= lo || r.lo >= hi) {
      out[n++] = r;
      continue;
    }
    if (r.lo < lo) out[n++] = (struct tp_range){r.lo, lo};
    if (r.hi > hi) out[n++] = (struct tp_range){hi, r.hi};
  }
  free(m->open);
  m->open_cap = m->n_open + 1;
  m->open = out, m->n_open = n;
  return 0;
}

static void recount(struct tp_mapping *m) {
  m->accessible = 0;
  for (size_t i = 0; i < m->n_open; i++) m->accessible += m->open[i].hi - m->open[i].lo;
}

struct tp_mapping *tp_mappings_open(struct tp_mappings *s, uint64_t lo, uint64_t len, bool accessible, uint32_t tag) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    struct tp_mapping *v = realloc(s->v, cap * sizeof *v);
    if (!v) return NULL;
    s->v = v, s->cap = cap;
  }
  struct tp_mapping *m = &s->v[s->n++];
  uint64_t hi = lo + len < lo ? UINT64_MAX : lo + len; /* as the calls below: up to the end of the address space */
  *m = (struct tp_mapping){.lo = lo, .hi = hi, .tag = tag};
  if (accessible && ranges_add(m, lo, hi) < 0) {
    s->n--;
    return NULL;
  }
  recount(m);
  return m;
}

struct tp_mapping *tp_mappings_find(struct tp_mappings *s, uint64_t lo, uint64_t hi) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i].lo < hi && lo < s->v[i].hi) return &s->v[i];
  return NULL;
}

int tp_mappings_protect(struct tp_mappings *s, uint64_t addr, uint64_t len, bool accessible, tp_mapping_changed_fn fn,
                        void *ctx) {
  uint64_t end = addr + len < addr ? UINT64_MAX : addr + len;
  for (size_t i = 0; i < s->n; i++) {
    struct tp_mapping *m = &s->v[i];
    if (m->hi <= addr || m->lo >= end) continue;
    uint64_t lo = max_u64(addr, m->lo), hi = min_u64(end, m->hi);
    if ((accessible ? ranges_add(m, lo, hi) : ranges_remove(m, lo, hi)) < 0) return -1;
    recount(m);
    fn(ctx, m, false);
  }
  return 0;
}

int tp_mappings_unmap(struct tp_mappings *s, uint64_t addr, uint64_t len, tp_mapping_changed_fn fn, void *ctx) {
  uint64_t end = addr + len < addr ? UINT64_MAX : addr + len;
  for (size_t i = 0; i < s->n;) {
    struct tp_mapping *m = &s->v[i];
    if (m->hi <= addr || m->lo >= end) {
      i++;
      continue;
    }
    if (addr <= m->lo && end >= m->hi) { /* all of it: reported as it was, then dropped */
      fn(ctx, m, true);
      free(m->open);
      s->v[i] = s->v[--s->n];
      continue;
    }
    if (ranges_remove(m, max_u64(addr, m->lo), min_u64(end, m->hi)) < 0) return -1;
    if (addr <= m->lo) m->lo = end; /* its head trimmed */
    else if (end >= m->hi) m->hi = addr; /* its tail */
    recount(m);
    fn(ctx, m, false);
    i++;
  }
  return 0;
}

void tp_mappings_clear(struct tp_mappings *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i].open);
  free(s->v);
  *s = (struct tp_mappings){0};
}
