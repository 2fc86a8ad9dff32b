/* simulate_replay.c — a trace's samples and frees turned into allocations and
 * frees of the simulated pool (simulate_pool.c), with the live peak and the
 * resident peak measured as they go.
 *
 * Each sample stands for `weight` allocations of its size: it becomes that
 * many blocks (rounded, the fraction carried to the next sample), chained
 * through their first word, and the chain is freed at the sample's free.  So
 * the replay's own memory is one table entry per live sample; the blocks are
 * the simulated heap's.  Events come in time order (simulate_trace.c puts a
 * trace's back in it); the pool's clock follows them and never goes back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"

enum { SIM_EMPTY = 0, SIM_LIVE = 1, SIM_FREED_FIRST = 2 };

/* A live sample (its blocks), or a free that came before its sample. */
struct sim_entry {
  uint64_t id;
  void *head;       /* first block; each block's word 0 links the next */
  uint64_t count;   /* blocks in the chain */
  uint64_t size;    /* requested bytes of each */
  uint64_t usable;  /* usable bytes of the whole chain */
  uint8_t state;
};

struct sim_replay {
  struct sim_entry *table; /* open addressing, linear probing, at most half full */
  size_t capacity, used;
  double carry;            /* weight not yet turned into blocks */
  uint64_t live, live_usable;
  uint64_t section_start_us, now_us; /* the replay's clock: sections one after another */
  uint64_t events;
  bool allocating;         /* the last event allocated: a run of allocations is open */
  bool peak_unmeasured;    /* live bytes reached a new high since the last live-peak measure */
  uint64_t measured_event, measured_bound; /* at the last measure */
  uint64_t grid_next_us;                   /* the next tick of the measures' grid */
  uint64_t held, held_since_us;            /* the last measure, held until the next */
  double area;                             /* ∫ resident dt, byte·µs */
  struct sim_numbers n;
};

/* ---- the table ------------------------------------------------------------- */

static size_t sim_slot(const struct sim_replay *r, uint64_t id) {
  return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 17) & (r->capacity - 1);
}

static struct sim_entry *sim_find(struct sim_replay *r, uint64_t id) {
  for (size_t i = sim_slot(r, id);; i = (i + 1) & (r->capacity - 1)) {
    if (r->table[i].state == SIM_EMPTY) return NULL;
    if (r->table[i].id == id) return &r->table[i];
  }
}

static bool sim_grow(struct sim_replay *r) {
  size_t old_capacity = r->capacity;
  struct sim_entry *old = r->table, *fresh = calloc(old_capacity * 2, sizeof *fresh);
  if (!fresh) return false;
  r->table = fresh;
  r->capacity = old_capacity * 2;
  for (size_t i = 0; i < old_capacity; i++) {
    if (old[i].state == SIM_EMPTY) continue;
    size_t j = sim_slot(r, old[i].id);
    while (fresh[j].state != SIM_EMPTY) j = (j + 1) & (r->capacity - 1);
    fresh[j] = old[i];
  }
  free(old);
  return true;
}

/* A new entry for id (not in the table); NULL when out of memory. */
static struct sim_entry *sim_insert(struct sim_replay *r, uint64_t id) {
  if ((r->used + 1) * 2 > r->capacity && !sim_grow(r)) return NULL;
  size_t i = sim_slot(r, id);
  while (r->table[i].state != SIM_EMPTY) i = (i + 1) & (r->capacity - 1);
  r->used++;
  r->table[i] = (struct sim_entry){.id = id};
  return &r->table[i];
}

/* Deletes by shifting back the entries that probed past it: no tombstones. */
static void sim_remove(struct sim_replay *r, struct sim_entry *e) {
  size_t hole = (size_t)(e - r->table), mask = r->capacity - 1;
  for (size_t i = (hole + 1) & mask; r->table[i].state != SIM_EMPTY; i = (i + 1) & mask) {
    size_t home = sim_slot(r, r->table[i].id);
    /* The entry at i may fill the hole when its home is not in (hole, i]. */
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      r->table[hole] = r->table[i];
      hole = i;
    }
  }
  r->table[hole].state = SIM_EMPTY;
  r->used--;
}

/* ---- measures ------------------------------------------------------------------ */
/* Resident memory is measured as the pool's statistics measure it (mincore),
 * which walks the heap: not at every event, but
 *  - for the live peak: when live bytes first fall after a new high at least
 *    1/256 above the last one measured — the heap is still as it was then;
 *  - for the resident peak: when a run of allocations ends while the pool's
 *    own accounting, an upper bound, is above the highest measure: at most
 *    every SIM_MEASURE_EVENTS events, unless the bound grew by 1/16;
 *  - on a grid of SIM_GRID_US of the traces' time, skipping ticks that come
 *    less than 16 events and 8 ticks after the last measure (sparse traces
 *    stay cheap).
 * The mean holds each measure until the next. */
#define SIM_MEASURE_EVENTS 1024
#define SIM_GRID_US 10000

static uint64_t sim_measure(struct sim_replay *r) {
  uint64_t resident = sim_pool_resident();
  r->n.measures++;
  r->measured_event = r->events;
  r->measured_bound = sim_pool_accounted();
  if (resident > r->n.peak_resident) r->n.peak_resident = resident;
  r->area += (double)r->held * (double)(r->now_us - r->held_since_us);
  r->held = resident;
  r->held_since_us = r->now_us;
  return resident;
}

/* Before live bytes fall (a free, the end of a process, the numbers). */
static void sim_run_ends(struct sim_replay *r) {
  if (!r->allocating) return;
  r->allocating = false;
  if (r->peak_unmeasured && r->live - r->n.measured_live >= r->n.measured_live / 256) {
    r->n.measured_resident = sim_measure(r);
    r->n.measured_live = r->live;
    r->n.measured_usable = r->live_usable;
  }
  r->peak_unmeasured = false;
  uint64_t bound = sim_pool_accounted();
  if (r->measured_event != r->events && bound > r->n.peak_resident &&
      (r->events - r->measured_event >= SIM_MEASURE_EVENTS || bound > r->measured_bound + r->measured_bound / 16))
    sim_measure(r);
}

/* Moves the clock to an event's time, and takes the mean's measure when a
 * tick of its grid has passed. */
static void sim_clock(struct sim_replay *r, uint64_t time_us) {
  uint64_t now = r->section_start_us + time_us;
  r->events++;
  if (now < r->now_us) r->n.late_events++;
  if (now > r->now_us) {
    r->now_us = now;
    sim_pool_set_clock(now / 1000);
  }
  if (r->now_us >= r->grid_next_us &&
      (r->events - r->measured_event >= 16 || r->now_us >= r->held_since_us + 8 * SIM_GRID_US)) {
    sim_measure(r);
    r->grid_next_us = r->now_us + SIM_GRID_US;
  }
}

static void sim_free_chain(struct sim_replay *r, struct sim_entry *e) {
  for (void *p = e->head, *next; p; p = next) {
    next = *(void **)p;
    sim_pool_free(p);
  }
  r->n.frees += e->count;
  r->live -= e->count * e->size;
  r->live_usable -= e->usable;
  e->head = NULL;
}

struct sim_replay *sim_replay_new(void) {
  struct sim_replay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->capacity = 1024;
  r->table = calloc(r->capacity, sizeof *r->table);
  if (!r->table) {
    free(r);
    return NULL;
  }
  return r;
}

void sim_replay_delete(struct sim_replay *r) {
  if (!r) return;
  free(r->table);
  free(r);
}

bool sim_replay_sample(struct sim_replay *r, uint64_t id, uint64_t time_us, uint64_t size,
                       uint32_t align_log2, double weight) {
  sim_clock(r, time_us);
  r->n.samples++;
  if (!(weight > 0) || !isfinite(weight)) weight = 1; /* a sample without a weight counts once */
  r->carry += weight;
  double whole = floor(r->carry + 0.5);
  r->carry -= whole;
  uint64_t count = (uint64_t)whole, align = align_log2 < 63 ? (uint64_t)1 << align_log2 : 0;
  struct sim_entry *e = sim_find(r, id);
  if (e && e->state == SIM_LIVE) sim_free_chain(r, e); /* the same id again: the old one is gone */
  bool freed_first = e && e->state == SIM_FREED_FIRST;
  if (!e && !(e = sim_insert(r, id))) return false;
  e->state = SIM_LIVE;
  e->head = NULL;
  e->count = 0;
  e->size = size;
  e->usable = 0;
  for (uint64_t i = 0; i < count; i++) {
    void **p = sim_pool_alloc(size, align);
    if (!p) {
      r->n.failed++;
      continue;
    }
    sim_pool_touch(p, size); /* the program writes what it asked for */
    *p = e->head;
    e->head = p;
    e->count++;
    e->usable += sim_pool_usable(p);
  }
  r->n.allocations += e->count;
  r->live += e->count * size;
  r->live_usable += e->usable;
  r->allocating = true;
  if (r->live > r->n.peak_live) {
    r->n.peak_live = r->live;
    r->n.peak_usable = r->live_usable;
    r->peak_unmeasured = true;
  }
  uint64_t bound = sim_pool_accounted();
  if (bound > r->n.peak_accounted) r->n.peak_accounted = bound;
  if (freed_first) { /* its free was seen already: it ends now */
    sim_run_ends(r);
    sim_free_chain(r, e);
    sim_remove(r, e);
  }
  return true;
}

bool sim_replay_free(struct sim_replay *r, uint64_t id, uint64_t time_us) {
  sim_run_ends(r); /* before the clock moves: the pool may act on time */
  sim_clock(r, time_us);
  struct sim_entry *e = sim_find(r, id);
  if (e && e->state == SIM_LIVE) {
    sim_free_chain(r, e);
    sim_remove(r, e);
  } else if (!e) {
    if (!(e = sim_insert(r, id))) return false;
    e->state = SIM_FREED_FIRST;
  }
  return true;
}

void sim_replay_section(struct sim_replay *r, bool exact) {
  sim_run_ends(r);
  for (size_t i = 0; i < r->capacity; i++) {
    struct sim_entry *e = &r->table[i];
    if (e->state == SIM_LIVE) sim_free_chain(r, e);
    else if (e->state == SIM_FREED_FIRST) r->n.unmatched_frees++;
    e->state = SIM_EMPTY;
  }
  r->used = 0;
  r->n.sections++;
  if (r->n.samples) sim_clock(r, r->now_us - r->section_start_us + 1000); /* the next process starts 1 ms later */
  r->section_start_us = r->now_us;
  if (exact) r->n.exact_sections++;
}

void sim_replay_numbers(struct sim_replay *r, struct sim_numbers *out) {
  sim_run_ends(r);
  uint64_t resident = sim_measure(r);
  *out = r->n;
  for (size_t i = 0; i < r->capacity; i++)
    if (r->table[i].state == SIM_FREED_FIRST) out->unmatched_frees++;
  out->duration_ms = r->now_us / 1000;
  double area = r->area + (double)r->held * (double)(r->now_us - r->held_since_us);
  out->mean_resident = r->now_us ? (uint64_t)(area / (double)r->now_us) : resident;
  out->final_live_usable = r->live_usable;
  sim_pool_totals(&out->pool);
}
