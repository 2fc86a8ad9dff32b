/* profile_load.c — folding one trace file into a profile (tp_profile_load).
 *
 * The file is scanned as events (trace_events.h) into a fresh profile, which
 * is merged into the caller's only when the file was readable: a corrupt file
 * leaves the caller's profile as it was, and loading is merging by
 * construction.
 *
 * Within a process section, stacks are kept as recorded (absolute return
 * addresses, frames.h) and samples are summed per (section stack, tier,
 * tenant); the addresses are resolved to modules and JIT code when the
 * section ends.  Memory: the distinct stacks and sites of one section, and
 * its live sampled blocks. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "frames.h"
#include "live_table.h"
#include "mappings.h"
#include "profile_private.h"
#include "trace_events.h"

struct sec_site {
  uint32_t stack, tier, tenant; /* section ids */
  uint64_t samples;
  double allocs, bytes, live_allocs, live_bytes;
};

struct sec_tenant {
  uint32_t id;
  char *name;
};

/* What a section says per tenant id: its histograms and its live bytes. */
struct sec_tenant_counts {
  uint32_t id;
  struct tp_prof_tenant_hist *hist; /* NULL until a Histogram names it */
  struct tp_series *series;         /* NULL until a snapshot does */
  uint64_t live, resident;          /* summed over the tiers of the snapshot at hand */
  bool in_snapshot;
};
#define SEC_TENANTS_MAX 1024 /* the recorder has at most 64 */

struct sec_reservation {
  uint64_t start;
  uint32_t index; /* in the profile's reservations */
};

struct sec_live { /* a sampled block not freed yet */
  uint64_t id, size, time_us;
  double weight;
  uint32_t site, tier;
};

struct loader {
  struct tp_profile *p;
  const char *path;
  char error[512];
  bool in_section;
  uint32_t process;
  uint64_t last_us;
  bool exec_seen;           /* the section has an Exec record... */
  bool after_exec;          /* ...and records after it: the exec failed, the program went on */

  struct tp_frames *frames; /* the section's code and stacks */
  struct sec_site *sites;
  size_t n_sites, sites_cap;
  struct sec_tenant *tenants;
  size_t n_tenants, tenants_cap;
  struct sec_reservation *reservations;
  size_t n_reservations, reservations_cap;
  struct sec_tenant_counts *counts;
  size_t n_counts, counts_cap;
  bool snapshot_tenants; /* a snapshot named a tenant other than the default */
  struct tp_hash_set site_set, tenant_set, reservation_set;
  struct tp_mappings mappings; /* large anonymous mappings of the section's mmap calls */
  struct tp_live_table live; /* of struct sec_live */
};

#define PUSH(L, name) ((L)->name = tp_profile_grow((L)->name, &(L)->name##_cap, (L)->n_##name, sizeof *(L)->name), \
                       &(L)->name[(L)->n_##name++])

/* A visitor's value that stops the scan: L->error says why. */
#define STOP_CORRUPT 2

__attribute__((format(printf, 2, 3))) static int corrupt(struct loader *L, const char *fmt, ...) {
  int n = snprintf(L->error, sizeof L->error, "%s: corrupt trace: ", L->path);
  if (n < 0 || (size_t)n >= sizeof L->error) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(L->error + n, sizeof L->error - (size_t)n, fmt, ap);
  va_end(ap);
  return STOP_CORRUPT;
}

static void saw_time(struct loader *L, uint64_t us) {
  if (us > L->last_us) L->last_us = us;
}

/* ---- section tables -------------------------------------------------------- */

static bool tenant_id_eq(const void *ctx, uint32_t i, const void *key) {
  return ((const struct loader *)ctx)->tenants[i].id == *(const uint32_t *)key;
}

static bool reservation_eq(const void *ctx, uint32_t i, const void *key) {
  return ((const struct loader *)ctx)->reservations[i].start == *(const uint64_t *)key;
}

static bool site_key_eq(const void *ctx, uint32_t i, const void *key) {
  const struct sec_site *s = &((const struct loader *)ctx)->sites[i], *k = key;
  return s->stack == k->stack && s->tier == k->tier && s->tenant == k->tenant;
}

/* The counts of tenant id (NULL past SEC_TENANTS_MAX tenants: corrupt). */
static struct sec_tenant_counts *tenant_counts(struct loader *L, uint32_t id) {
  for (size_t i = 0; i < L->n_counts; i++)
    if (L->counts[i].id == id) return &L->counts[i];
  if (L->n_counts == SEC_TENANTS_MAX) return NULL;
  struct sec_tenant_counts *c = PUSH(L, counts);
  *c = (struct sec_tenant_counts){.id = id};
  return c;
}

static uint32_t local_site(struct loader *L, uint32_t stack, uint32_t tier, uint32_t tenant) {
  struct sec_site key = {.stack = stack, .tier = tier, .tenant = tenant};
  uint64_t h = tp_hash_u64(tp_hash_u64(stack, tier), tenant);
  uint32_t i = tp_hash_find(&L->site_set, h, site_key_eq, L, &key);
  if (i != TP_HASH_NONE) return i;
  *PUSH(L, sites) = key;
  tp_hash_add(&L->site_set, h, (uint32_t)L->n_sites - 1);
  return (uint32_t)L->n_sites - 1;
}

/* ---- the end of a section ------------------------------------------------- */

static uint32_t resolve_tenant(struct loader *L, uint32_t id) {
  uint32_t i = tp_hash_find(&L->tenant_set, tp_hash_u64(0, id), tenant_id_eq, L, &id);
  if (i != TP_HASH_NONE) return tp_profile_tenant(L->p, L->tenants[i].name);
  if (id == 0) return tp_profile_tenant(L->p, "default");
  char name[32];
  snprintf(name, sizeof name, "tenant-%" PRIu32, id); /* a tenant the trace never named */
  return tp_profile_tenant(L->p, name);
}

static void clear_section(struct loader *L) {
  tp_frames_clear(L->frames);
  for (size_t i = 0; i < L->n_tenants; i++) free(L->tenants[i].name);
  for (size_t i = 0; i < L->n_counts; i++) free(L->counts[i].hist), free(L->counts[i].series);
  L->n_sites = L->n_tenants = L->n_reservations = L->n_counts = 0;
  L->snapshot_tenants = false;
  tp_hash_free(&L->site_set), tp_hash_free(&L->tenant_set);
  tp_hash_free(&L->reservation_set);
  tp_mappings_clear(&L->mappings);
  tp_live_clear(&L->live);
  L->in_section = false;
  L->last_us = 0;
  L->exec_seen = L->after_exec = false;
}

static int by_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int by_live_id(const void *a, const void *b) {
  uint64_t x = ((const struct sec_live *)a)->id, y = ((const struct sec_live *)b)->id;
  return x < y ? -1 : x > y;
}

/* The section's tenants that counted something join the profile in id
 * order (the default first), so that a trace lists them as it numbered them. */
static void resolve_tenants_in_order(struct loader *L) {
  size_t n = 0, cap = L->n_sites + L->n_counts;
  uint32_t *ids = malloc((cap ? cap : 1) * sizeof *ids);
  if (!ids) return;
  for (size_t i = 0; i < L->n_sites; i++) ids[n++] = L->sites[i].tenant;
  for (size_t i = 0; i < L->n_counts; i++)
    if (L->counts[i].hist || (L->counts[i].series && L->snapshot_tenants)) ids[n++] = L->counts[i].id;
  qsort(ids, n, sizeof *ids, by_u32);
  for (size_t i = 0; i < n; i++)
    if (i == 0 || ids[i] != ids[i - 1]) resolve_tenant(L, ids[i]);
  free(ids);
}

/* Per-tenant histograms and, when the section had tenants of its own in its
 * snapshots, per-tenant live-bytes series. */
static void end_section_tenants(struct loader *L) {
  struct tp_profile *p = L->p;
  for (size_t i = 0; i < L->n_counts; i++) {
    const struct sec_tenant_counts *c = &L->counts[i];
    uint32_t tenant = resolve_tenant(L, c->id);
    if (c->hist) {
      struct tp_prof_tenant_hist *d = tp_profile_tenant_hist(p, tenant);
      for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++)
        d->allocs[b] += c->hist->allocs[b], d->bytes[b] += c->hist->bytes[b], d->frees[b] += c->hist->frees[b];
    }
    if (c->series && L->snapshot_tenants) tp_profile_add_tenant_series(p, L->process, tenant)->series = *c->series;
  }
}

static void end_section(struct loader *L) {
  if (!L->in_section) return;
  struct tp_profile *p = L->p;
  resolve_tenants_in_order(L);
  end_section_tenants(L);
  /* Blocks still live when the trace ended, summed by id: the table's order
   * follows its random hash key, and sums of doubles their order. */
  struct sec_live *live = tp_hash_alloc(L->live.count, sizeof *live);
  size_t n_live = 0;
  for (size_t i = 0; i < L->live.cap; i++)
    if (L->live.used[i]) live[n_live++] = *(const struct sec_live *)tp_live_slot(&L->live, i);
  if (n_live > 1) qsort(live, n_live, sizeof *live, by_live_id);
  for (size_t i = 0; i < n_live; i++) {
    const struct sec_live *e = &live[i];
    L->sites[e->site].live_allocs += e->weight;
    L->sites[e->site].live_bytes += e->weight * (double)e->size;
    p->never_freed[e->tier] += e->weight;
  }
  free(live);
  /* Each section stack once, then its sites. */
  tp_frames_resolve(L->frames, p);
  for (size_t i = 0; i < L->n_sites; i++) {
    const struct sec_site *s = &L->sites[i];
    uint32_t stack = tp_frames_stack(L->frames, p, s->stack);
    struct tp_prof_site *d = tp_profile_site(p, stack, s->tier, resolve_tenant(L, s->tenant));
    d->samples += s->samples;
    d->allocs += s->allocs, d->bytes += s->bytes, d->live_allocs += s->live_allocs, d->live_bytes += s->live_bytes;
  }
  struct tp_prof_process *proc = &p->processes[L->process];
  proc->duration_us = L->last_us;
  if (proc->exec_path && L->after_exec) { /* the exec failed: the program went on */
    free(proc->exec_path);
    proc->exec_path = NULL;
  }
  clear_section(L);
}

/* Events before any Process record (not written by the recorder) get a process of their own. */
static void need_section(struct loader *L) {
  if (L->in_section) return;
  L->process = tp_profile_add_process(L->p);
  struct tp_prof_process *proc = &L->p->processes[L->process];
  proc->executable = tp_profile_strdup(""), proc->hostname = tp_profile_strdup(""), proc->argv = tp_profile_strdup("");
  proc->source = L->path;
  L->in_section = true;
}

/* ---- the events ------------------------------------------------------------ */

static int on_process(void *ctx, const Tierpool__Trace__Process *r) {
  struct loader *L = ctx;
  end_section(L);
  need_section(L);
  struct tp_prof_process *proc = &L->p->processes[L->process];
  free(proc->executable), free(proc->hostname), free(proc->argv), free(proc->exec_path);
  proc->exec_path = NULL;
  proc->pid = r->pid, proc->ppid = r->ppid;
  proc->executable = tp_profile_strdup(r->executable);
  proc->hostname = tp_profile_strdup(r->hostname);
  size_t len = 0;
  for (size_t i = 0; i < r->n_argv; i++) len += strlen(r->argv[i]) + 1;
  proc->argv = tp_hash_alloc(len + 1, 1);
  for (size_t i = 0, at = 0; i < r->n_argv; i++) at += (size_t)sprintf(proc->argv + at, i ? " %s" : "%s", r->argv[i]);
  proc->start_unix_ns = r->start_unix_ns;
  proc->sample_rate = r->sample_rate, proc->sample_bytes = r->sample_bytes, proc->validate = r->validate;
  proc->size_classes = tp_hash_alloc(r->n_size_classes, sizeof *proc->size_classes);
  if (r->n_size_classes) memcpy(proc->size_classes, r->size_classes, r->n_size_classes * sizeof *r->size_classes);
  proc->n_size_classes = r->n_size_classes;
  proc->buddy_max = r->buddy_max;
  return 0;
}

static int on_module(void *ctx, const Tierpool__Trace__Module *r) {
  struct loader *L = ctx;
  need_section(L);
  tp_frames_add_module(L->frames, L->p, r);
  return 0;
}

static int on_tenant(void *ctx, const Tierpool__Trace__Tenant *r) {
  struct loader *L = ctx;
  need_section(L);
  uint64_t h = tp_hash_u64(0, r->id);
  if (tp_hash_find(&L->tenant_set, h, tenant_id_eq, L, &r->id) != TP_HASH_NONE) return 0;
  *PUSH(L, tenants) = (struct sec_tenant){r->id, tp_profile_strdup(r->name)};
  tp_hash_add(&L->tenant_set, h, (uint32_t)L->n_tenants - 1);
  return 0;
}

static int on_stack(void *ctx, const Tierpool__Trace__Stack *r) {
  struct loader *L = ctx;
  need_section(L);
  if (!tp_frames_add_stack(L->frames, r)) return corrupt(L, "stack %" PRIu32 " of %zu frames", r->id, r->n_frames);
  return 0;
}

static int on_sample(void *ctx, const struct tp_sample_event *e) {
  struct loader *L = ctx;
  need_section(L);
  if (e->tier >= TP_TIERS) return corrupt(L, "sample %" PRIu64 " has tier %" PRIu32, e->id, e->tier);
  saw_time(L, e->time_us);
  struct tp_profile *p = L->p;
  p->samples++;
  p->processes[L->process].samples++;
  p->sampled_by_bucket[tp_bucket_of_size(e->size)] += e->weight;
  uint32_t site = local_site(L, e->stack, e->tier, e->tenant);
  struct sec_site *s = &L->sites[site];
  s->samples++;
  s->allocs += e->weight;
  s->bytes += e->weight * (double)e->size;
  struct sec_live live = {e->id, e->size, e->time_us, e->weight, site, e->tier};
  tp_live_put(&L->live, &live);
  return 0;
}

static int on_free(void *ctx, const struct tp_free_event *e) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, e->time_us);
  struct sec_live live;
  if (!tp_live_take(&L->live, e->id, &live)) {
    L->p->frees_unmatched++;
    return 0;
  }
  L->p->frees_matched++;
  uint64_t lifetime = e->time_us > live.time_us ? e->time_us - live.time_us : 0;
  L->p->lifetime[live.tier][tp_lifetime_bucket(lifetime)] += live.weight;
  return 0;
}

/* A mapping followed through the mmap calls, as the reservation it stands for. */
static void mapping_changed(void *ctx, const struct tp_mapping *m, bool gone) {
  struct loader *L = ctx;
  struct tp_prof_reservation *res = &L->p->reservations[m->tag];
  (void)gone; /* its last state stays */
  res->start = m->lo, res->size = m->hi - m->lo;
  res->last_accessible = m->accessible;
  if (m->accessible > res->max_accessible) res->max_accessible = m->accessible;
  res->last_us = L->last_us;
}

/* A large anonymous mmap starts a reservation, unless a snapshot saw it
 * first (its calls then update that one). */
static int mapping_open(struct loader *L, const struct tp_mmap_event *e) {
  bool accessible = (e->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) != 0;
  uint32_t k = UINT32_MAX;
  for (size_t i = 0; i < L->n_reservations && k == UINT32_MAX; i++) {
    const struct tp_prof_reservation *r = &L->p->reservations[L->reservations[i].index];
    if (r->start < e->addr + e->length && e->addr < r->start + r->size) k = L->reservations[i].index;
  }
  bool is_new = k == UINT32_MAX;
  if (is_new) {
    k = tp_profile_add_reservation(L->p);
    struct tp_prof_reservation *res = &L->p->reservations[k];
    res->process = L->process;
    res->first_accessible = accessible ? e->length : 0, res->first_us = e->time_us;
  }
  struct tp_mapping *m = tp_mappings_open(&L->mappings, e->addr, e->length, accessible, k);
  if (!m) return corrupt(L, "out of memory");
  if (is_new) mapping_changed(L, m, false);
  return 0;
}

static int on_mmap(void *ctx, const struct tp_mmap_event *e) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, e->time_us);
  if (e->kind < 5) L->p->mmap_calls[e->kind]++, L->p->mmap_bytes[e->kind] += e->length;
  int rc = 0;
  switch (e->kind) {
  case TIERPOOL__TRACE__MMAP_KIND__MMAP: /* the recorder writes only the mmaps that succeeded */
    if (e->addr + e->length < e->addr)
      return corrupt(L, "mmap of %" PRIu64 " bytes at %#" PRIx64 " wraps past the end of the address space", e->length,
                     e->addr);
    if (e->length >= TP_MAPPING_MIN && (e->flags & MAP_ANONYMOUS)) rc = mapping_open(L, e);
    break;
  case TIERPOOL__TRACE__MMAP_KIND__MPROTECT:
    rc = tp_mappings_protect(&L->mappings, e->addr, e->length, (e->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) != 0,
                             mapping_changed, L);
    break;
  case TIERPOOL__TRACE__MMAP_KIND__MUNMAP:
    rc = tp_mappings_unmap(&L->mappings, e->addr, e->length, mapping_changed, L);
    break;
  default: break;
  }
  return rc < 0 ? corrupt(L, "out of memory") : rc;
}

static int on_histogram(void *ctx, const Tierpool__Trace__Histogram *r) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, r->time_us);
  struct tp_profile *p = L->p;
  struct sec_tenant_counts *c = tenant_counts(L, r->tenant);
  if (!c) return corrupt(L, "more than %d tenants in a process", SEC_TENANTS_MAX);
  if (!c->hist && !(c->hist = calloc(1, sizeof *c->hist))) return corrupt(L, "out of memory");
  for (size_t i = 0; i < r->n_bucket; i++) {
    uint32_t b = r->bucket[i];
    if (b >= TP_BUCKET_COUNT) return corrupt(L, "histogram bucket %" PRIu32 " (there are %u)", b, TP_BUCKET_COUNT);
    c->hist->allocs[b] += i < r->n_allocs ? r->allocs[i] : 0;
    c->hist->bytes[b] += i < r->n_bytes ? r->bytes[i] : 0;
    c->hist->frees[b] += i < r->n_frees ? r->frees[i] : 0;
    p->allocs[b] += i < r->n_allocs ? r->allocs[i] : 0;
    p->processes[L->process].allocations += i < r->n_allocs ? r->allocs[i] : 0;
    p->bytes[b] += i < r->n_bytes ? r->bytes[i] : 0;
    p->frees[b] += i < r->n_frees ? r->frees[i] : 0;
  }
  return 0;
}

static struct tp_prof_reservation *reservation_of(struct loader *L, uint64_t start, bool *is_new) {
  uint64_t h = tp_hash_u64(0, start);
  uint32_t i = tp_hash_find(&L->reservation_set, h, reservation_eq, L, &start);
  *is_new = i == TP_HASH_NONE;
  if (*is_new) {
    uint32_t k = tp_profile_add_reservation(L->p);
    L->p->reservations[k].process = L->process;
    L->p->reservations[k].start = start;
    *PUSH(L, reservations) = (struct sec_reservation){start, k};
    i = (uint32_t)L->n_reservations - 1;
    tp_hash_add(&L->reservation_set, h, i);
  }
  return &L->p->reservations[L->reservations[i].index];
}

/* Each tenant's live bytes (its tiers summed) into its series. */
static int series_by_tenant(struct loader *L, const Tierpool__Trace__Snapshot *r) {
  for (size_t i = 0; i < L->n_counts; i++) L->counts[i].live = L->counts[i].resident = 0, L->counts[i].in_snapshot = false;
  for (size_t i = 0; i < r->n_tiers; i++) {
    struct sec_tenant_counts *c = tenant_counts(L, r->tiers[i]->tenant);
    if (!c) return corrupt(L, "more than %d tenants in a process", SEC_TENANTS_MAX);
    c->live += r->tiers[i]->live, c->resident += r->tiers[i]->resident;
    c->in_snapshot = true;
    if (c->id != 0) L->snapshot_tenants = true;
  }
  for (size_t i = 0; i < L->n_counts; i++) {
    struct sec_tenant_counts *c = &L->counts[i];
    if (!c->in_snapshot) continue;
    if (!c->series && !(c->series = calloc(1, sizeof *c->series))) return corrupt(L, "out of memory");
    tp_series_add(c->series, r->time_us, c->live, c->resident);
  }
  return 0;
}

static int on_snapshot(void *ctx, const Tierpool__Trace__Snapshot *r) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, r->time_us);
  struct tp_profile *p = L->p;
  struct tp_prof_process *proc = &p->processes[L->process];
  p->snapshots++;
  proc->snapshots++;
  uint64_t live = 0, resident = 0, tier_peak = 0;
  for (size_t i = 0; i < r->n_tiers; i++) {
    live += r->tiers[i]->live, resident += r->tiers[i]->resident;
    if (r->tiers[i]->peak > tier_peak) tier_peak = r->tiers[i]->peak;
  }
  int rc = series_by_tenant(L, r);
  if (rc) return rc;
  /* Snapshots come once a second and miss peaks between them; a tier's own
   * high-water mark does not, so the peak is at least the largest of those. */
  if (live > proc->peak_live) proc->peak_live = live;
  if (tier_peak > proc->peak_live) proc->peak_live = tier_peak;
  if (resident > proc->peak_resident) proc->peak_resident = resident;
  if (r->process_rss > proc->peak_rss) proc->peak_rss = r->process_rss;
  tp_series_add(&p->series[L->process], r->time_us, live, resident);
  for (size_t i = 0; i < r->n_reservations; i++) {
    const Tierpool__Trace__Snapshot__Reservation *s = r->reservations[i];
    if (s->start + s->size < s->start) /* /proc/self/maps never says so */
      return corrupt(L, "reservation of %" PRIu64 " bytes at %#" PRIx64 " wraps past the end of the address space",
                     s->size, s->start);
    struct tp_mapping *m = tp_mappings_find(&L->mappings, s->start, s->start + s->size);
    if (m) { /* followed through its calls already: the snapshot says how much is accessible */
      struct tp_prof_reservation *res = &p->reservations[m->tag];
      res->last_accessible = s->accessible, res->last_us = r->time_us;
      if (s->accessible > res->max_accessible) res->max_accessible = s->accessible;
      continue;
    }
    bool is_new;
    struct tp_prof_reservation *res = reservation_of(L, s->start, &is_new);
    if (is_new) res->first_accessible = s->accessible, res->first_us = r->time_us;
    if (s->size > res->size) res->size = s->size;
    if (s->accessible > res->max_accessible) res->max_accessible = s->accessible;
    res->last_accessible = s->accessible, res->last_us = r->time_us;
  }
  return 0;
}

static int on_jit_range(void *ctx, const Tierpool__Trace__JitRange *r) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, r->time_us);
  tp_frames_add_jit_range(L->frames, r);
  return 0;
}

static int on_perf_map(void *ctx, const Tierpool__Trace__PerfMap *r) {
  struct loader *L = ctx;
  need_section(L);
  tp_frames_add_perf_map(L->frames, r);
  return 0;
}

static int on_end(void *ctx, const Tierpool__Trace__End *r) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, r->time_us);
  struct tp_prof_process *proc = &L->p->processes[L->process];
  if (r->cut_short) proc->truncated = true; /* a merged copy of a truncated trace */
  else proc->ended = true;
  /* Samples and allocations are counted from the events: a process killed
   * or exec'd away has no End, and its counts are no less real. */
  proc->dropped += r->dropped;
  return 0;
}

static int on_exec(void *ctx, const Tierpool__Trace__Exec *r) {
  struct loader *L = ctx;
  need_section(L);
  saw_time(L, r->time_us);
  struct tp_prof_process *proc = &L->p->processes[L->process];
  free(proc->exec_path);
  proc->exec_path = r->error ? NULL : tp_profile_strdup(r->path); /* error: the exec came back */
  L->exec_seen = !r->error;
  L->after_exec = false;
  return 0;
}

/* The recorder writes nothing after an image's Exec record unless the exec
 * came back (its beats wait for the call); traces of older libraries have no
 * Exec record for the failure, only the program's records after it.  A new
 * section's records are the next process's. */
static int on_record(void *ctx, const Tierpool__Trace__Record *r) {
  struct loader *L = ctx;
  if (L->exec_seen && r->kind_case != TIERPOOL__TRACE__RECORD__KIND_EXEC &&
      r->kind_case != TIERPOOL__TRACE__RECORD__KIND_HEADER && r->kind_case != TIERPOOL__TRACE__RECORD__KIND_PROCESS)
    L->after_exec = true;
  return 0;
}

static void free_loader(struct loader *L) {
  clear_section(L);
  tp_frames_free(L->frames);
  free(L->sites), free(L->tenants);
  free(L->reservations), free(L->counts);
  tp_live_free(&L->live);
}

int tp_profile_load(struct tp_profile *p, const char *path, char *err, size_t errlen) {
  static const struct tp_trace_visitor visitor = {
      .process = on_process, .module = on_module, .tenant = on_tenant, .stack = on_stack,
      .sample = on_sample, .free = on_free, .mmap = on_mmap, .histogram = on_histogram,
      .snapshot = on_snapshot, .jit_range = on_jit_range, .perf_map = on_perf_map, .end = on_end,
      .exec = on_exec, .record = on_record};
  struct tp_profile one;
  tp_profile_init(&one);
  struct loader L = {.p = &one, .path = path, .frames = tp_frames_new()};
  tp_live_init(&L.live, sizeof(struct sec_live));
  struct tp_scan_result res;
  char scan_err[512];
  int rc = tp_trace_scan(path, &visitor, &L, &res, scan_err, sizeof scan_err);
  bool truncated = rc == -1 && res.truncated;
  if (rc == 0 || truncated) {
    bool had_section = L.in_section;
    end_section(&L);
    if (truncated && had_section) one.processes[one.n_processes - 1].truncated = true;
    if (!one.n_processes) {
      snprintf(L.error, sizeof L.error, "%s: %s", path,
               truncated ? "truncated before its first process record" : "empty trace (no process in it)");
      rc = -1, truncated = false;
    }
  } else if (rc == -1) {
    snprintf(L.error, sizeof L.error, "%s", scan_err);
  }
  if (rc == 0 || truncated) {
    tp_profile_merge(p, &one);
    if (truncated) snprintf(err, errlen, "%s", scan_err);
    else if (errlen) err[0] = '\0';
  } else {
    snprintf(err, errlen, "%s", L.error);
  }
  free_loader(&L);
  tp_profile_free(&one);
  return rc == 0 ? 0 : truncated ? 1 : -1;
}
