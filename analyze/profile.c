/* profile.c — the merged aggregate of traces (profile.h): its interned tables
 * (modules, frames, stacks, tenants, sites), merging, and lifetime buckets.
 * Folding a trace file in is profile_load.c.
 *
 * Every table is keyed by content and found through an open-addressing hash
 * set (hash_set.h) over the array, so that interning is O(1) and merging two
 * profiles is linear in the smaller one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "profile_private.h"

/* ---- memory ---------------------------------------------------------------- */

void *tp_profile_grow(void *array, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return array;
  size_t c = *cap ? *cap * 2 : 16;
  while (c <= n) c *= 2;
  void *bigger = realloc(array, c * elem);
  if (!bigger) {
    fputs("tierpool: out of memory\n", stderr);
    exit(2);
  }
  memset((char *)bigger + *cap * elem, 0, (c - *cap) * elem);
  *cap = c;
  return bigger;
}

char *tp_profile_strdup(const char *s) {
  size_t len = strlen(s ? s : "");
  char *copy = tp_hash_alloc(len + 1, 1);
  memcpy(copy, s ? s : "", len);
  return copy;
}

/* ---- the index ------------------------------------------------------------- */

static uint64_t module_hash(const char *path, const uint8_t *build_id, size_t len) {
  return tp_hash_bytes(tp_hash_bytes(0, path, strlen(path)), build_id, len);
}

static uint64_t frame_hash(uint32_t module, uint64_t addr, const char *jit_name, bool jit) {
  uint64_t h = tp_hash_u64(tp_hash_u64((uint64_t)module << 1 | jit, addr), jit_name != NULL);
  return jit_name ? tp_hash_bytes(h, jit_name, strlen(jit_name)) : h;
}

static uint64_t stack_hash(const uint32_t *frames, uint32_t depth, bool truncated) {
  return tp_hash_bytes(truncated, frames, depth * sizeof *frames);
}

static uint64_t string_hash(const char *s) { return tp_hash_bytes(0, s, strlen(s)); }

static uint64_t site_hash(uint32_t stack, uint32_t tier, uint32_t tenant) {
  return tp_hash_u64(tp_hash_u64(stack, tier), tenant);
}

/* The index of a profile built by hand (or just initialised) is made here. */
static struct tp_profile_index *index_of(struct tp_profile *p) {
  if (p->index) return p->index;
  struct tp_profile_index *x = tp_hash_alloc(1, sizeof *x);
  p->index = x;
  x->modules_cap = p->n_modules, x->frames_cap = p->n_frames, x->stacks_cap = p->n_stacks;
  x->sites_cap = p->n_sites, x->tenants_cap = p->n_tenants, x->processes_cap = p->n_processes;
  x->reservations_cap = p->n_reservations;
  x->tenant_hists_cap = p->n_tenant_hists, x->tenant_series_cap = p->n_tenant_series;
  if (!p->series && p->n_processes) p->series = tp_hash_alloc(p->n_processes, sizeof *p->series);
  for (uint32_t i = 0; i < p->n_modules; i++) {
    const struct tp_prof_module *m = &p->modules[i];
    tp_hash_add(&x->modules, module_hash(m->path, m->build_id, m->build_id_len), i);
  }
  for (uint32_t i = 0; i < p->n_frames; i++) {
    const struct tp_prof_frame *f = &p->frames[i];
    tp_hash_add(&x->frames, frame_hash(f->module, f->addr, f->jit_name, f->jit), i);
  }
  for (uint32_t i = 0; i < p->n_stacks; i++)
    tp_hash_add(&x->stacks, stack_hash(p->stacks[i].frames, p->stacks[i].depth, p->stacks[i].truncated), i);
  for (uint32_t i = 0; i < p->n_tenants; i++) tp_hash_add(&x->tenants, string_hash(p->tenants[i]), i);
  for (uint32_t i = 0; i < p->n_sites; i++)
    tp_hash_add(&x->sites, site_hash(p->sites[i].stack, p->sites[i].tier, p->sites[i].tenant), i);
  return x;
}

void tp_profile_init(struct tp_profile *p) {
  memset(p, 0, sizeof *p);
  tp_profile_tenant(p, "default");
}

void tp_profile_free(struct tp_profile *p) {
  for (size_t i = 0; i < p->n_modules; i++) free(p->modules[i].path), free(p->modules[i].code);
  for (size_t i = 0; i < p->n_frames; i++) free(p->frames[i].jit_name);
  for (size_t i = 0; i < p->n_stacks; i++) free(p->stacks[i].frames);
  for (size_t i = 0; i < p->n_tenants; i++) free(p->tenants[i]);
  for (size_t i = 0; i < p->n_processes; i++) {
    struct tp_prof_process *proc = &p->processes[i];
    free(proc->executable), free(proc->hostname), free(proc->argv), free(proc->size_classes), free(proc->exec_path);
  }
  free(p->modules), free(p->frames), free(p->stacks), free(p->sites), free(p->tenants);
  free(p->processes), free(p->series), free(p->reservations);
  free(p->tenant_hists), free(p->tenant_series);
  struct tp_profile_index *x = p->index;
  if (x) {
    tp_hash_free(&x->modules), tp_hash_free(&x->frames), tp_hash_free(&x->stacks);
    tp_hash_free(&x->tenants), tp_hash_free(&x->sites);
    free(x);
  }
  memset(p, 0, sizeof *p);
}

/* ---- interning ------------------------------------------------------------- */

struct module_key {
  const char *path;
  const uint8_t *build_id;
  size_t len;
};

static bool module_eq(const void *ctx, uint32_t i, const void *key) {
  const struct tp_prof_module *m = &((const struct tp_profile *)ctx)->modules[i];
  const struct module_key *k = key;
  /* A module without a build-id has none to compare (and k->build_id may be NULL). */
  return m->build_id_len == k->len && (k->len == 0 || memcmp(m->build_id, k->build_id, k->len) == 0) &&
         strcmp(m->path, k->path) == 0;
}

uint32_t tp_profile_module(struct tp_profile *p, const char *path, const uint8_t *build_id, size_t build_id_len) {
  struct tp_profile_index *x = index_of(p);
  if (!path) path = "";
  if (build_id_len > sizeof p->modules[0].build_id) build_id_len = sizeof p->modules[0].build_id;
  struct module_key key = {path, build_id, build_id_len};
  uint64_t h = module_hash(path, build_id, build_id_len);
  uint32_t i = tp_hash_find(&x->modules, h, module_eq, p, &key);
  if (i != TP_HASH_NONE) return i;
  p->modules = tp_profile_grow(p->modules, &x->modules_cap, p->n_modules, sizeof *p->modules);
  i = (uint32_t)p->n_modules++;
  struct tp_prof_module *m = &p->modules[i];
  m->path = tp_profile_strdup(path);
  if (build_id_len) memcpy(m->build_id, build_id, build_id_len);
  m->build_id_len = build_id_len;
  tp_hash_add(&x->modules, h, i);
  return i;
}

int tp_profile_module_code(struct tp_profile *p, uint32_t module, const struct tp_prof_segment *code, size_t n) {
  struct tp_prof_module *m = &p->modules[module];
  if (m->n_code || !n) return 0;
  m->code = malloc(n * sizeof *m->code);
  if (!m->code) return -1;
  memcpy(m->code, code, n * sizeof *code);
  m->n_code = n;
  return 0;
}

static bool frame_eq(const void *ctx, uint32_t i, const void *key) {
  const struct tp_prof_frame *f = &((const struct tp_profile *)ctx)->frames[i], *k = key;
  return f->module == k->module && f->addr == k->addr && f->jit == k->jit &&
         (f->jit_name && k->jit_name ? strcmp(f->jit_name, k->jit_name) == 0 : f->jit_name == k->jit_name);
}

uint32_t tp_profile_frame(struct tp_profile *p, uint32_t module, uint64_t addr, const char *jit_name, bool jit) {
  struct tp_profile_index *x = index_of(p);
  struct tp_prof_frame key = {module, addr, (char *)jit_name, jit};
  uint64_t h = frame_hash(module, addr, jit_name, jit);
  uint32_t i = tp_hash_find(&x->frames, h, frame_eq, p, &key);
  if (i != TP_HASH_NONE) return i;
  p->frames = tp_profile_grow(p->frames, &x->frames_cap, p->n_frames, sizeof *p->frames);
  i = (uint32_t)p->n_frames++;
  p->frames[i] = key;
  p->frames[i].jit_name = jit_name ? tp_profile_strdup(jit_name) : NULL;
  tp_hash_add(&x->frames, h, i);
  return i;
}

static bool stack_eq(const void *ctx, uint32_t i, const void *key) {
  const struct tp_prof_stack *s = &((const struct tp_profile *)ctx)->stacks[i], *k = key;
  return s->depth == k->depth && s->truncated == k->truncated &&
         (k->depth == 0 || memcmp(s->frames, k->frames, k->depth * sizeof *k->frames) == 0);
}

uint32_t tp_profile_stack(struct tp_profile *p, const uint32_t *frames, uint32_t depth, bool truncated) {
  struct tp_profile_index *x = index_of(p);
  struct tp_prof_stack key = {(uint32_t *)frames, depth, truncated};
  uint64_t h = stack_hash(frames, depth, truncated);
  uint32_t i = tp_hash_find(&x->stacks, h, stack_eq, p, &key);
  if (i != TP_HASH_NONE) return i;
  p->stacks = tp_profile_grow(p->stacks, &x->stacks_cap, p->n_stacks, sizeof *p->stacks);
  i = (uint32_t)p->n_stacks++;
  struct tp_prof_stack *s = &p->stacks[i];
  s->frames = tp_hash_alloc(depth, sizeof *s->frames);
  if (depth) memcpy(s->frames, frames, depth * sizeof *frames);
  s->depth = depth;
  s->truncated = truncated;
  tp_hash_add(&x->stacks, h, i);
  return i;
}

static bool tenant_eq(const void *ctx, uint32_t i, const void *key) {
  return strcmp(((const struct tp_profile *)ctx)->tenants[i], key) == 0;
}

uint32_t tp_profile_tenant(struct tp_profile *p, const char *name) {
  struct tp_profile_index *x = index_of(p);
  if (!name) name = "";
  uint64_t h = string_hash(name);
  uint32_t i = tp_hash_find(&x->tenants, h, tenant_eq, p, name);
  if (i != TP_HASH_NONE) return i;
  p->tenants = tp_profile_grow(p->tenants, &x->tenants_cap, p->n_tenants, sizeof *p->tenants);
  i = (uint32_t)p->n_tenants++;
  p->tenants[i] = tp_profile_strdup(name);
  tp_hash_add(&x->tenants, h, i);
  return i;
}

static bool site_eq(const void *ctx, uint32_t i, const void *key) {
  const struct tp_prof_site *s = &((const struct tp_profile *)ctx)->sites[i], *k = key;
  return s->stack == k->stack && s->tier == k->tier && s->tenant == k->tenant;
}

struct tp_prof_site *tp_profile_site(struct tp_profile *p, uint32_t stack, uint32_t tier, uint32_t tenant) {
  struct tp_profile_index *x = index_of(p);
  struct tp_prof_site key = {.stack = stack, .tier = tier, .tenant = tenant};
  uint64_t h = site_hash(stack, tier, tenant);
  uint32_t i = tp_hash_find(&x->sites, h, site_eq, p, &key);
  if (i != TP_HASH_NONE) return &p->sites[i];
  p->sites = tp_profile_grow(p->sites, &x->sites_cap, p->n_sites, sizeof *p->sites);
  i = (uint32_t)p->n_sites++;
  p->sites[i] = key;
  tp_hash_add(&x->sites, h, i);
  return &p->sites[i];
}

struct tp_prof_tenant_hist *tp_profile_tenant_hist(struct tp_profile *p, uint32_t tenant) {
  struct tp_profile_index *x = index_of(p);
  if (tenant >= p->n_tenant_hists) {
    p->tenant_hists = tp_profile_grow(p->tenant_hists, &x->tenant_hists_cap, tenant, sizeof *p->tenant_hists);
    p->n_tenant_hists = tenant + 1;
  }
  return &p->tenant_hists[tenant];
}

/* ---- processes ------------------------------------------------------------- */

uint32_t tp_profile_add_process(struct tp_profile *p) {
  struct tp_profile_index *x = index_of(p);
  size_t cap = x->processes_cap;
  p->processes = tp_profile_grow(p->processes, &x->processes_cap, p->n_processes, sizeof *p->processes);
  p->series = tp_profile_grow(p->series, &cap, p->n_processes, sizeof *p->series);
  uint32_t i = (uint32_t)p->n_processes++;
  p->series[i].step_us = TP_SERIES_STEP_US;
  return i;
}

uint32_t tp_profile_add_reservation(struct tp_profile *p) {
  struct tp_profile_index *x = index_of(p);
  p->reservations = tp_profile_grow(p->reservations, &x->reservations_cap, p->n_reservations, sizeof *p->reservations);
  return (uint32_t)p->n_reservations++;
}

struct tp_tenant_series *tp_profile_add_tenant_series(struct tp_profile *p, uint32_t process, uint32_t tenant) {
  struct tp_profile_index *x = index_of(p);
  p->tenant_series = tp_profile_grow(p->tenant_series, &x->tenant_series_cap, p->n_tenant_series,
                                     sizeof *p->tenant_series);
  struct tp_tenant_series *s = &p->tenant_series[p->n_tenant_series++];
  s->process = process, s->tenant = tenant;
  s->series.step_us = TP_SERIES_STEP_US;
  return s;
}

void tp_series_add(struct tp_series *s, uint64_t time_us, uint64_t live, uint64_t resident) {
  if (!s->step_us) s->step_us = TP_SERIES_STEP_US;
  while (time_us / s->step_us >= TP_SERIES_MAX) { /* full: pairs of points become one */
    for (uint32_t i = 0; i < TP_SERIES_MAX / 2; i++) {
      s->live[i] = s->live[2 * i] > s->live[2 * i + 1] ? s->live[2 * i] : s->live[2 * i + 1];
      s->resident[i] = s->resident[2 * i] > s->resident[2 * i + 1] ? s->resident[2 * i] : s->resident[2 * i + 1];
    }
    memset(s->live + TP_SERIES_MAX / 2, 0, sizeof s->live / 2);
    memset(s->resident + TP_SERIES_MAX / 2, 0, sizeof s->resident / 2);
    s->n = (s->n + 1) / 2;
    s->step_us *= 2;
  }
  uint32_t i = (uint32_t)(time_us / s->step_us);
  if (live > s->live[i]) s->live[i] = live;
  if (resident > s->resident[i]) s->resident[i] = resident;
  if (i + 1 > s->n) s->n = i + 1;
}

/* ---- merging --------------------------------------------------------------- */

static void merge_process(struct tp_profile *into, const struct tp_profile *from, size_t i) {
  uint32_t k = tp_profile_add_process(into);
  const struct tp_prof_process *src = &from->processes[i];
  struct tp_prof_process *dst = &into->processes[k];
  *dst = *src;
  dst->executable = tp_profile_strdup(src->executable);
  dst->hostname = tp_profile_strdup(src->hostname);
  dst->argv = tp_profile_strdup(src->argv);
  dst->exec_path = src->exec_path ? tp_profile_strdup(src->exec_path) : NULL;
  dst->size_classes = tp_hash_alloc(src->n_size_classes, sizeof *dst->size_classes);
  if (src->n_size_classes) memcpy(dst->size_classes, src->size_classes, src->n_size_classes * sizeof *src->size_classes);
  if (from->series) into->series[k] = from->series[i];
}

void tp_profile_merge(struct tp_profile *into, const struct tp_profile *from) {
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
    into->allocs[b] += from->allocs[b], into->bytes[b] += from->bytes[b], into->frees[b] += from->frees[b];
    into->sampled_by_bucket[b] += from->sampled_by_bucket[b];
  }
  for (int t = 0; t < TP_TIERS; t++) {
    for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++) into->lifetime[t][b] += from->lifetime[t][b];
    into->never_freed[t] += from->never_freed[t];
  }
  for (int k = 0; k < 5; k++) into->mmap_calls[k] += from->mmap_calls[k], into->mmap_bytes[k] += from->mmap_bytes[k];
  into->samples += from->samples, into->frees_matched += from->frees_matched;
  into->frees_unmatched += from->frees_unmatched, into->snapshots += from->snapshots;

  /* Each of from's indices, in into's numbering. */
  uint32_t *modules = tp_hash_alloc(from->n_modules, sizeof *modules);
  uint32_t *frames = tp_hash_alloc(from->n_frames, sizeof *frames);
  uint32_t *stacks = tp_hash_alloc(from->n_stacks, sizeof *stacks);
  uint32_t *tenants = tp_hash_alloc(from->n_tenants, sizeof *tenants);
  for (size_t i = 0; i < from->n_modules; i++) {
    const struct tp_prof_module *m = &from->modules[i];
    modules[i] = tp_profile_module(into, m->path, m->build_id, m->build_id_len);
    tp_profile_module_code(into, modules[i], m->code, m->n_code); /* out of memory: pprof's mapping as a whole file */
  }
  for (size_t i = 0; i < from->n_frames; i++) {
    const struct tp_prof_frame *f = &from->frames[i];
    uint32_t module = f->module < from->n_modules ? modules[f->module] : TP_PROFILE_NONE;
    frames[i] = tp_profile_frame(into, module, f->addr, f->jit_name, f->jit);
  }
  uint32_t *path = NULL;
  size_t path_cap = 0;
  for (size_t i = 0; i < from->n_stacks; i++) {
    const struct tp_prof_stack *s = &from->stacks[i];
    path = tp_profile_grow(path, &path_cap, s->depth, sizeof *path);
    for (uint32_t d = 0; d < s->depth; d++) path[d] = frames[s->frames[d]];
    stacks[i] = tp_profile_stack(into, path, s->depth, s->truncated);
  }
  free(path);
  for (size_t i = 0; i < from->n_tenants; i++) tenants[i] = tp_profile_tenant(into, from->tenants[i]);
  for (size_t i = 0; i < from->n_tenant_hists && i < from->n_tenants; i++) {
    const struct tp_prof_tenant_hist *h = &from->tenant_hists[i];
    struct tp_prof_tenant_hist *d = tp_profile_tenant_hist(into, tenants[i]);
    for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++)
      d->allocs[b] += h->allocs[b], d->bytes[b] += h->bytes[b], d->frees[b] += h->frees[b];
  }
  for (size_t i = 0; i < from->n_sites; i++) {
    const struct tp_prof_site *s = &from->sites[i];
    struct tp_prof_site *d = tp_profile_site(into, stacks[s->stack], s->tier, tenants[s->tenant]);
    d->samples += s->samples;
    d->allocs += s->allocs, d->bytes += s->bytes, d->live_allocs += s->live_allocs, d->live_bytes += s->live_bytes;
  }

  size_t first_process = into->n_processes;
  for (size_t i = 0; i < from->n_processes; i++) merge_process(into, from, i);
  for (size_t i = 0; i < from->n_tenant_series; i++) {
    const struct tp_tenant_series *s = &from->tenant_series[i];
    if (s->tenant >= from->n_tenants) continue;
    tp_profile_add_tenant_series(into, s->process + (uint32_t)first_process, tenants[s->tenant])->series = s->series;
  }
  free(modules), free(frames), free(stacks), free(tenants);
  for (size_t i = 0; i < from->n_reservations; i++) {
    uint32_t k = tp_profile_add_reservation(into);
    into->reservations[k] = from->reservations[i];
    into->reservations[k].process += (uint32_t)first_process;
  }
}

/* ---- lifetimes ------------------------------------------------------------- */

/* Bucket 1 + 8p + s holds [2^p (8+s)/8, 2^p (9+s)/8): 8 steps per power of two. */
uint32_t tp_lifetime_bucket(uint64_t us) {
  if (us == 0) return 0;
  uint32_t power = 63u - (uint32_t)__builtin_clzll(us);
  if (power >= (TP_LIFETIME_BUCKETS - 1) / 8) return TP_LIFETIME_BUCKETS - 1;
  uint32_t sub = power >= 3 ? (uint32_t)(us >> (power - 3)) & 7u : (uint32_t)(us << (3 - power)) & 7u;
  return 1 + power * 8 + sub;
}

/* Smallest duration in bucket b (buckets below 8 µs may be empty: then lower == upper). */
uint64_t tp_lifetime_bucket_lower(uint32_t b) {
  if (b == 0) return 0;
  if (b >= TP_LIFETIME_BUCKETS) return UINT64_MAX;
  uint32_t power = (b - 1) / 8, sub = (b - 1) % 8;
  uint64_t scaled = (uint64_t)(8 + sub) << power; /* 8 times the bound */
  return (scaled + 7) / 8;
}

/* The first duration above bucket b: the bucket is [lower, upper). */
uint64_t tp_lifetime_bucket_upper(uint32_t b) {
  return b + 1 >= TP_LIFETIME_BUCKETS ? UINT64_MAX : tp_lifetime_bucket_lower(b + 1);
}

double tp_lifetime_quantile(const double *hist, double q) {
  double total = 0;
  for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++) total += hist[b];
  if (total <= 0) return 0;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  double target = q * total, seen = 0;
  uint32_t b = 0;
  for (; b < TP_LIFETIME_BUCKETS; b++) {
    seen += hist[b];
    if (hist[b] > 0 && seen >= target) break;
  }
  if (b >= TP_LIFETIME_BUCKETS) /* rounding left target above the sum: the last non-empty bucket */
    for (b = TP_LIFETIME_BUCKETS - 1; b > 0 && hist[b] <= 0; b--) {
    }
  uint64_t lower = tp_lifetime_bucket_lower(b), upper = tp_lifetime_bucket_upper(b);
  if (upper == UINT64_MAX) return (double)lower;
  return ((double)lower + (double)(upper - 1)) / 2; /* the middle of the whole µs in the bucket */
}

/* ---- totals ---------------------------------------------------------------- */

uint64_t tp_profile_total_allocs(const struct tp_profile *p) {
  uint64_t total = 0;
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) total += p->allocs[b];
  return total;
}

uint64_t tp_profile_total_bytes(const struct tp_profile *p) {
  uint64_t total = 0;
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) total += p->bytes[b];
  return total;
}
