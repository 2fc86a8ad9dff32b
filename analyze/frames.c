/* frames.c — a process section's code and stacks resolved into a profile's
 * frames and stacks (frames.h). */
#include "frames.h"

#include <stdlib.h>
#include <string.h>

#include "profile_private.h"

struct code_range { /* an address range of the process: a module segment, or JIT code */
  uint64_t lo, hi, bias;
  uint32_t module;
  uint32_t order; /* 1 + its index when added: of two at the same address, the later wins */
};

struct perf_symbol { /* a perf-map line */
  uint64_t start, size;
  char *name;
  uint32_t order; /* later lines win over earlier ones at the same address */
};

struct section_stack {
  uint32_t id, depth;
  bool truncated;
  uint64_t *pcs;  /* innermost first */
  uint32_t stack; /* in the profile, after tp_frames_resolve */
};

struct tp_frames {
  struct code_range *modules, *jits;
  size_t n_modules, modules_cap, n_jits, jits_cap;
  struct perf_symbol *symbols;
  size_t n_symbols, symbols_cap;
  struct section_stack *stacks;
  size_t n_stacks, stacks_cap;
  struct tp_hash_set stack_set; /* stacks by id */
};

#define PUSH(F, name) ((F)->name = tp_profile_grow((F)->name, &(F)->name##_cap, (F)->n_##name, sizeof *(F)->name), \
                       &(F)->name[(F)->n_##name++])

struct tp_frames *tp_frames_new(void) { return tp_hash_alloc(1, sizeof(struct tp_frames)); }

void tp_frames_clear(struct tp_frames *f) {
  for (size_t i = 0; i < f->n_symbols; i++) free(f->symbols[i].name);
  for (size_t i = 0; i < f->n_stacks; i++) free(f->stacks[i].pcs);
  f->n_modules = f->n_jits = f->n_symbols = f->n_stacks = 0;
  tp_hash_free(&f->stack_set);
}

void tp_frames_free(struct tp_frames *f) {
  if (!f) return;
  tp_frames_clear(f);
  free(f->modules), free(f->jits), free(f->symbols), free(f->stacks);
  free(f);
}

/* ---- the section's records ------------------------------------------------- */

static void add_range(struct code_range **ranges, size_t *n, size_t *cap, uint64_t lo, uint64_t hi, uint64_t bias,
                      uint32_t module) {
  *ranges = tp_profile_grow(*ranges, cap, *n, sizeof **ranges);
  (*ranges)[*n] = (struct code_range){lo, hi, bias, module, (uint32_t)*n + 1};
  ++*n;
}

void tp_frames_add_module(struct tp_frames *f, struct tp_profile *p, const Tierpool__Trace__Module *r) {
  uint32_t module = tp_profile_module(p, r->path, r->build_id.data, r->build_id.len);
  struct tp_prof_segment code[16];
  size_t n_code = 0;
  for (size_t i = 0; i < r->n_segments; i++) {
    const Tierpool__Trace__Module__Segment *s = r->segments[i];
    uint64_t lo = r->load_bias + s->vaddr, hi = lo + s->memsz;
    if (hi > lo) add_range(&f->modules, &f->n_modules, &f->modules_cap, lo, hi, r->load_bias, module);
    if (s->executable && s->memsz && n_code < sizeof code / sizeof code[0])
      code[n_code++] = (struct tp_prof_segment){s->vaddr, s->memsz, s->file_offset};
  }
  tp_profile_module_code(p, module, code, n_code); /* out of memory: pprof's mapping as a whole file */
}

void tp_frames_add_jit_range(struct tp_frames *f, const Tierpool__Trace__JitRange *r) {
  /* A removed range is kept: stacks recorded while it was there still point into it. */
  if (!r->removed && r->start + r->size > r->start)
    add_range(&f->jits, &f->n_jits, &f->jits_cap, r->start, r->start + r->size, 0, TP_PROFILE_NONE);
}

void tp_frames_add_perf_map(struct tp_frames *f, const Tierpool__Trace__PerfMap *r) {
  const char *text = (const char *)r->text.data, *end = text + r->text.len;
  while (text < end) {
    const char *nl = memchr(text, '\n', (size_t)(end - text)), *line_end = nl ? nl : end;
    char line[1024];
    size_t len = (size_t)(line_end - text) < sizeof line - 1 ? (size_t)(line_end - text) : sizeof line - 1;
    memcpy(line, text, len);
    line[len] = '\0';
    text = nl ? nl + 1 : end;
    char *p = line, *q;
    uint64_t start = strtoull(p, &q, 16);
    if (q == p || (*q != ' ' && *q != '\t')) continue;
    uint64_t size = strtoull(p = q, &q, 16);
    if (q == p || (*q != ' ' && *q != '\t')) continue;
    q += strspn(q, " \t");
    size_t name_len = strcspn(q, "\r");
    if (!name_len || !size) continue;
    struct perf_symbol *s = PUSH(f, symbols);
    s->start = start, s->size = size, s->order = (uint32_t)f->n_symbols;
    s->name = tp_hash_alloc(name_len + 1, 1);
    memcpy(s->name, q, name_len);
  }
}

static bool stack_id_eq(const void *ctx, uint32_t i, const void *key) {
  return ((const struct tp_frames *)ctx)->stacks[i].id == *(const uint32_t *)key;
}

static uint32_t find_stack(const struct tp_frames *f, uint32_t id) {
  return tp_hash_find(&f->stack_set, tp_hash_u64(0, id), stack_id_eq, f, &id);
}

bool tp_frames_add_stack(struct tp_frames *f, const Tierpool__Trace__Stack *r) {
  if (find_stack(f, r->id) != TP_HASH_NONE) return true; /* the first one counts */
  if (r->n_frames > UINT32_MAX) return false;
  uint64_t *pcs = tp_hash_alloc(r->n_frames, sizeof *pcs);
  if (r->n_frames) memcpy(pcs, r->frames, r->n_frames * sizeof *pcs);
  *PUSH(f, stacks) = (struct section_stack){r->id, (uint32_t)r->n_frames, r->truncated, pcs, TP_PROFILE_NONE};
  tp_hash_add(&f->stack_set, tp_hash_u64(0, r->id), (uint32_t)f->n_stacks - 1);
  return true;
}

/* ---- resolving ------------------------------------------------------------- */

/* By address, then in the order they were added. */
static int by_lo(const void *a, const void *b) {
  const struct code_range *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static int by_start(const void *a, const void *b) {
  const struct perf_symbol *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* qsort, which must not be given NULL even for nothing. */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(base, n, size, cmp);
}

/* The one of the sorted, disjoint ranges that holds pc, or NULL. */
static const struct code_range *range_at(const struct code_range *r, size_t n, uint64_t pc) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r[mid].lo <= pc) lo = mid + 1;
    else hi = mid;
  }
  return lo && pc < r[lo - 1].hi ? &r[lo - 1] : NULL;
}

/* Module segments may overlap (a library unloaded, another loaded over part of
 * its range): the sorted ranges made disjoint, each address given to the range
 * that starts last among those holding it (the innermost of nested ones; at
 * one start, the latest added): the most specific, and for a reload the
 * latest.  A sweep: the ranges open at an address are a stack, the last
 * started on top; an address past the end of the top one falls to the next. */
static void disjoint_modules(struct tp_frames *f) {
  if (f->n_modules < 2) return;
  size_t n = f->n_modules, n_out = 0, depth = 0;
  struct code_range *in = f->modules, *out = tp_hash_alloc(2 * n, sizeof *out);
  const struct code_range **open = tp_hash_alloc(n, sizeof *open);
  uint64_t at = in[0].lo;
  for (size_t i = 0; i <= n; i++) {
    bool last = i == n;
    uint64_t next = last ? UINT64_MAX : in[i].lo; /* past every range: its hi is exclusive */
    while (at < next) { /* [at, next) goes to the open ranges, top first */
      while (depth && open[depth - 1]->hi <= at) depth--;
      if (!depth) break;
      const struct code_range *top = open[depth - 1];
      uint64_t end = top->hi < next ? top->hi : next;
      out[n_out] = *top, out[n_out].lo = at, out[n_out++].hi = end; /* a range starting, or resuming */
      at = end;
    }
    if (last) break;
    at = next;
    open[depth++] = &in[i];
  }
  free(open);
  free(f->modules);
  f->modules = out;
  f->n_modules = n_out;
  f->modules_cap = 2 * n;
}

/* JIT ranges may overlap (code registered twice): their union, sorted. */
static void union_jits(struct tp_frames *f) {
  sort(f->jits, f->n_jits, sizeof *f->jits, by_lo);
  size_t n = 0;
  for (size_t i = 0; i < f->n_jits; i++) {
    if (n && f->jits[i].lo <= f->jits[n - 1].hi) {
      if (f->jits[i].hi > f->jits[n - 1].hi) f->jits[n - 1].hi = f->jits[i].hi;
    } else {
      f->jits[n++] = f->jits[i];
    }
  }
  f->n_jits = n;
}

/* The perf-map name of pc: the latest line at the greatest start <= pc that covers it. */
static const char *symbol_at(const struct tp_frames *f, uint64_t pc) {
  size_t lo = 0, hi = f->n_symbols;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->symbols[mid].start <= pc) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = lo, tries = 0; i > 0 && tries < 64; i--, tries++) { /* a few overlapping lines at most */
    const struct perf_symbol *s = &f->symbols[i - 1];
    if (pc - s->start < s->size) return s->name;
  }
  return NULL;
}

static uint32_t resolve_frame(const struct tp_frames *f, struct tp_profile *p, uint64_t pc) {
  bool jit = range_at(f->jits, f->n_jits, pc) != NULL;
  if (!jit) {
    const struct code_range *m = range_at(f->modules, f->n_modules, pc);
    if (m) return tp_profile_frame(p, m->module, pc - m->bias, NULL, false);
  }
  const char *name = symbol_at(f, pc);
  return tp_profile_frame(p, TP_PROFILE_NONE, pc, name, jit || name);
}

void tp_frames_resolve(struct tp_frames *f, struct tp_profile *p) {
  sort(f->modules, f->n_modules, sizeof *f->modules, by_lo);
  disjoint_modules(f);
  union_jits(f);
  sort(f->symbols, f->n_symbols, sizeof *f->symbols, by_start);
  uint32_t *path = NULL;
  size_t path_cap = 0;
  for (size_t i = 0; i < f->n_stacks; i++) {
    struct section_stack *s = &f->stacks[i];
    path = tp_profile_grow(path, &path_cap, s->depth, sizeof *path);
    for (uint32_t d = 0; d < s->depth; d++) path[d] = resolve_frame(f, p, s->pcs[d]);
    s->stack = tp_profile_stack(p, path, s->depth, s->truncated);
  }
  free(path);
}

uint32_t tp_frames_stack(const struct tp_frames *f, struct tp_profile *p, uint32_t id) {
  uint32_t i = find_stack(f, id);
  return i != TP_HASH_NONE ? f->stacks[i].stack : tp_profile_stack(p, NULL, 0, false);
}

size_t tp_frames_count(const struct tp_frames *f) { return f->n_stacks; }

uint32_t tp_frames_stack_id(const struct tp_frames *f, size_t i) { return f->stacks[i].id; }
