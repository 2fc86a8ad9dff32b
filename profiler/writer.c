/* writer.c — from events to trace frames, off the allocating threads.
 *
 * Allocating threads append their samples, sampled frees and mmap calls to
 * rings of their own (rings.c), JIT ranges to the active batch under the
 * recorder's lock.  Every 250 ms (sooner when 2048 events wait) the writer
 * thread swaps the batches, merges the rings' events older than the flush
 * into samples, frees and mmap calls, turns them into records (new threads and
 * stacks first, the stacks as a prefix tree, then columnar Samples / Frees /
 * MmapCalls), adds once a second (and at the first flush) the histogram
 * deltas (one per tenant), a snapshot, new modules and new perf-map lines,
 * and writes the lot as one independent zstd frame (trace_file.c): a trace
 * cut short keeps every complete frame.  Tenant records come first, once
 * each, when a second tenant exists.  The writer's own allocations are not
 * recorded (tp_rec_self.busy). */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "recorder_private.h"
#include "trace_codec.h"

static tp_lock tp_rec_writer_lock = TP_LOCK_INITIALIZER; /* one flush at a time */
static uint32_t tp_rec_threads_emitted, tp_rec_stacks_emitted, tp_rec_tenants_emitted;
static uint32_t tp_rec_sample_stack_max; /* highest stack id of the samples written (Samples.stack_back) */
static uint64_t tp_rec_sample_id_max;    /* highest sample id of the frames written (Frees.id_age) */
/* Per tenant, the sums at this flush and those already written: mapped when
 * the tenant first has a histogram (16 KiB each). */
static tp_rec_hist *tp_rec_hist_now[TP_MAX_TENANTS], *tp_rec_hist_emitted[TP_MAX_TENANTS];
/* The first flush is periodic: a process killed early still leaves its
 * histogram. */
static uint64_t tp_rec_last_periodic_ns = UINT64_MAX;
static bool tp_rec_finished;
static bool tp_rec_open_pending; /* a forked child opens its trace at its first flush */
static uint64_t tp_rec_allocs_before; /* a forked child's: the parent's, not in its End */
/* Execs whose Exec record is written and whose call has not returned: the
 * writer's beats wait, so that the record stays the image's last (a frame
 * after it says the exec failed).  Raised and read under tp_rec_writer_lock. */
static _Atomic uint32_t tp_rec_execs_in_flight;

/* The recorder's big tables (stack arenas: 320 MiB reserved, touched as
 * used) are remembered so that snapshots do not take them for reservations
 * of the program. */
#define TP_REC_OWN_MAPS 32
static struct { _Atomic uintptr_t start, end; } tp_rec_own_maps[TP_REC_OWN_MAPS];
static _Atomic uint32_t tp_rec_own_map_count;

void *tp_rec_map(size_t size) {
  size = tp_align_up(size, TP_PAGE_SIZE);
  void *p = tp_os_map(size);
  if (p && size >= ((size_t)1 << 20)) {
    uint32_t i = atomic_fetch_add(&tp_rec_own_map_count, 1);
    if (i < TP_REC_OWN_MAPS) {
      atomic_store(&tp_rec_own_maps[i].start, (uintptr_t)p);
      atomic_store(&tp_rec_own_maps[i].end, (uintptr_t)p + size);
    }
  }
  return p;
}

/* A hash table: probed at random before it is written, so made resident up
 * front (tp_os_populate says why). */
void *tp_rec_map_table(size_t size) {
  void *p = tp_rec_map(size);
  if (p) tp_os_populate(p, tp_align_up(size, TP_PAGE_SIZE));
  return p;
}

bool tp_rec_is_own_map(uintptr_t address) {
  uint32_t n = atomic_load(&tp_rec_own_map_count);
  for (uint32_t i = 0; i < n && i < TP_REC_OWN_MAPS; i++)
    if (address >= atomic_load(&tp_rec_own_maps[i].start) && address < atomic_load(&tp_rec_own_maps[i].end))
      return true;
  return false;
}

/* ---- batches to records ---------------------------------------------------- */

static void tp_rec_emit_threads(tp_rec_out *out, uint32_t thread_count) {
  for (; tp_rec_threads_emitted < thread_count; tp_rec_threads_emitted++) {
    Tierpool__Trace__Thread thread = TIERPOOL__TRACE__THREAD__INIT;
    tp_rec_thread_info *info = tp_rec_thread_at(tp_rec_threads_emitted);
    thread.id = tp_rec_threads_emitted + 1;
    thread.tid = info->tid;
    thread.name = info->name;
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_THREAD;
    record.thread = &thread;
    tp_rec_out_record(out, &record);
  }
}

/* New stacks as Stacks records, in batches that keep each record small.  A
 * stack's new frames follow the previous stack's in the recorder's tree of
 * stacks (stacks.c), numbered as the reader numbers them: a record's frames
 * are one stretch of it. */
#define TP_REC_STACKS_PER_RECORD 4096u

static void tp_rec_emit_stacks(tp_rec_out *out, uint32_t stack_count) {
  if (tp_rec_stacks_emitted >= stack_count) return;
  uint32_t most = stack_count - tp_rec_stacks_emitted;
  if (most > TP_REC_STACKS_PER_RECORD) most = TP_REC_STACKS_PER_RECORD;
  uint32_t *from = tp_rec_scratch_alloc(most * sizeof *from), *count = tp_rec_scratch_alloc(most * sizeof *count),
           *truncated = tp_rec_scratch_alloc(most * sizeof *truncated);
  while (tp_rec_stacks_emitted < stack_count && !out->failed) {
    uint32_t n = stack_count - tp_rec_stacks_emitted;
    if (n > most) n = most;
    if (from && count && truncated) {
      Tierpool__Trace__Stacks stacks = TIERPOOL__TRACE__STACKS__INIT;
      stacks.first_id = tp_rec_stacks_emitted + 1;
      stacks.n_from = stacks.n_count = n;
      stacks.from = from, stacks.count = count, stacks.truncated = truncated;
      for (uint32_t i = 0; i < n; i++) {
        const uint64_t *frames;
        uint32_t id = ++tp_rec_stacks_emitted;
        count[i] = tp_rec_stack_added(id, &from[i], &frames);
        if (i == 0) stacks.frames = (uint64_t *)frames; /* only read */
        stacks.n_frames += count[i];
        if (tp_rec_stack_truncated(id)) truncated[stacks.n_truncated++] = i;
      }
      Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
      record.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACKS;
      record.stacks = &stacks;
      tp_rec_out_record(out, &record);
    } else {
      out->failed = true; /* the frame is lost: the trace stops (tp_rec_writer_flush) */
    }
  }
}

/* Times in the trace are µs; deltas are taken between the rounded values so
 * that the reader's running sums give them back exactly. */
#define TP_US(ns) ((ns) / 1000)

/* µs since the previous event of the column (never negative). */
static uint64_t tp_rec_time_delta(uint64_t *prev_us, uint64_t time_ns) {
  uint64_t us = TP_US(time_ns);
  if (us < *prev_us) return 0;
  uint64_t delta = us - *prev_us;
  *prev_us = us;
  return delta;
}

/* Leaves in marks (if not NULL) each sample's time and id as the reader sees
 * them (Frees.id_age); returns how many: 0 if no record was written.  Raises
 * *id_max to the highest id written. */
static uint32_t tp_rec_emit_samples(tp_rec_out *out, const tp_rec_drained *b, tp_trace_sample_mark *marks,
                                    uint64_t *id_max) {
  uint32_t n = b->sample_count, written = 0;
  if (!n) return 0;
  uint64_t *ids = tp_rec_scratch_alloc(n * sizeof *ids), *times = tp_rec_scratch_alloc(n * sizeof *times),
           *sizes = tp_rec_scratch_alloc(n * sizeof *sizes), *usable = tp_rec_scratch_alloc(n * sizeof *usable);
  int32_t *stacks = tp_rec_scratch_alloc(n * sizeof *stacks);
  uint32_t *threads = tp_rec_scratch_alloc(n * sizeof *threads), *tiers = tp_rec_scratch_alloc(n * sizeof *tiers),
           *aligns = tp_rec_scratch_alloc(n * sizeof *aligns), *tenants = tp_rec_scratch_alloc(n * sizeof *tenants);
  double *weights = tp_rec_scratch_alloc(n * sizeof *weights);
  if (ids && times && sizes && usable && stacks && threads && tiers && aligns && tenants && weights) {
    uint64_t prev_id = 0, prev_us = 0;
    bool tenanted = false;
    for (uint32_t i = 0; i < n; i++) {
      const tp_rec_sample *s = &b->samples[i];
      ids[i] = s->id - prev_id, prev_id = s->id;
      times[i] = tp_rec_time_delta(&prev_us, s->time_ns);
      if (marks) marks[i] = (tp_trace_sample_mark){prev_us, s->id};
      stacks[i] = (int32_t)(tp_rec_sample_stack_max + 1 - s->stack); /* 0: the next new stack */
      if (s->stack > tp_rec_sample_stack_max) tp_rec_sample_stack_max = s->stack;
      sizes[i] = s->size, usable[i] = s->usable, threads[i] = s->thread;
      tiers[i] = s->tier, aligns[i] = s->align_log2, weights[i] = s->weight, tenants[i] = s->tenant;
      tenanted |= s->tenant != 0;
    }
    Tierpool__Trace__Samples samples = TIERPOOL__TRACE__SAMPLES__INIT;
    samples.n_id_delta = samples.n_time_delta_us = samples.n_size = samples.n_stack_back = n;
    samples.n_thread = samples.n_tier = samples.n_align_log2 = n;
    samples.id_delta = ids, samples.time_delta_us = times, samples.size = sizes, samples.stack_back = stacks;
    samples.thread = threads, samples.tier = tiers, samples.align_log2 = aligns;
    /* usable follows from size, alignment, tier and the classes in Process:
     * written only in validation mode, where size is not the point. */
    if (tp_opt.validate) samples.n_usable = n, samples.usable = usable;
    if (tp_rec.sample_bytes) samples.n_weight = n, samples.weight = weights; /* count mode: implied */
    if (tenanted) samples.n_tenant = n, samples.tenant = tenants; /* empty: all the default tenant's */
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
    record.samples = &samples;
    tp_rec_out_record(out, &record);
    written = n;
    for (uint32_t i = 0; i < n; i++)
      if (b->samples[i].id > *id_max) *id_max = b->samples[i].id;
  }
  return written;
}

/* Bytes of a sint64 column. */
static size_t tp_rec_sint_size(const int64_t *values, uint32_t n) {
  size_t size = 0;
  for (uint32_t i = 0; i < n; i++)
    size += tp_trace_varint_size(((uint64_t)values[i] << 1) ^ (uint64_t)(values[i] >> 63)); /* zigzag */
  return size;
}

/* The freed ids as deltas, or as ages from each free's reference (marks: this
 * frame's samples, prepared; NULL if out of memory), whichever is smaller:
 * frees of long-lived blocks come in no order of ids, and their ages are the
 * smaller. */
static void tp_rec_emit_frees(tp_rec_out *out, const tp_rec_drained *b, tp_trace_sample_mark *marks,
                              uint32_t mark_count) {
  uint32_t n = b->free_count;
  if (!n) return;
  int64_t *ids = tp_rec_scratch_alloc(n * sizeof *ids), *ages = tp_rec_scratch_alloc(n * sizeof *ages);
  uint64_t *times = tp_rec_scratch_alloc(n * sizeof *times);
  uint32_t *stacks = tp_rec_scratch_alloc(n * sizeof *stacks);
  if (ids && ages && times && stacks) {
    uint64_t prev_id = 0, prev_us = 0;
    for (uint32_t i = 0; i < n; i++) {
      const tp_rec_free_event *f = &b->frees[i];
      ids[i] = (int64_t)(f->id - prev_id), prev_id = f->id;
      times[i] = tp_rec_time_delta(&prev_us, f->time_ns);
      ages[i] = marks ? (int64_t)(tp_trace_free_ref(marks, mark_count, tp_rec_sample_id_max, prev_us) - f->id) : 0;
      stacks[i] = f->stack;
    }
    Tierpool__Trace__Frees frees = TIERPOOL__TRACE__FREES__INIT;
    frees.n_time_delta_us = n;
    frees.time_delta_us = times;
    if (marks && tp_rec_sint_size(ages, n) < tp_rec_sint_size(ids, n))
      frees.n_id_age = n, frees.id_age = ages;
    else
      frees.n_id_delta = n, frees.id_delta = ids;
    if (tp_opt.validate) frees.n_stack = n, frees.stack = stacks;
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_FREES;
    record.frees = &frees;
    tp_rec_out_record(out, &record);
  }
}

static void tp_rec_emit_mmaps(tp_rec_out *out, const tp_rec_drained *b) {
  uint32_t n = b->mmap_count;
  if (!n) return;
  uint64_t *times = tp_rec_scratch_alloc(n * sizeof *times), *lengths = tp_rec_scratch_alloc(n * sizeof *lengths),
           *olds = tp_rec_scratch_alloc(n * sizeof *olds);
  int64_t *addrs = tp_rec_scratch_alloc(n * sizeof *addrs);
  int32_t *stacks = tp_rec_scratch_alloc(n * sizeof *stacks);
  uint32_t *kinds = tp_rec_scratch_alloc(n * sizeof *kinds), *prots = tp_rec_scratch_alloc(n * sizeof *prots),
           *flags = tp_rec_scratch_alloc(n * sizeof *flags), *threads = tp_rec_scratch_alloc(n * sizeof *threads);
  if (times && addrs && lengths && olds && kinds && prots && flags && stacks && threads) {
    uint64_t prev_us = 0, prev_addr = 0;
    uint32_t prev_stack = 0;
    for (uint32_t i = 0; i < n; i++) {
      const tp_rec_mmap_event *m = &b->mmaps[i];
      times[i] = tp_rec_time_delta(&prev_us, m->time_ns);
      addrs[i] = (int64_t)(m->addr - prev_addr), prev_addr = m->addr; /* mod 2^64 */
      stacks[i] = (int32_t)(m->stack - prev_stack), prev_stack = m->stack;
      lengths[i] = m->length, olds[i] = m->old_addr, kinds[i] = m->kind;
      prots[i] = m->prot, flags[i] = m->flags, threads[i] = m->thread;
    }
    Tierpool__Trace__MmapCalls calls = TIERPOOL__TRACE__MMAP_CALLS__INIT;
    calls.n_kind = calls.n_time_delta_us = calls.n_addr_delta = calls.n_length = calls.n_prot = n;
    calls.n_flags = calls.n_stack_delta = calls.n_thread = calls.n_old_addr = n;
    calls.kind = kinds, calls.time_delta_us = times, calls.addr_delta = addrs, calls.length = lengths;
    calls.prot = prots, calls.flags = flags, calls.stack_delta = stacks, calls.thread = threads;
    calls.old_addr = olds;
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS;
    record.mmap_calls = &calls;
    tp_rec_out_record(out, &record);
  }
}

static void tp_rec_emit_jits(tp_rec_out *out, const tp_rec_batch *b) {
  for (uint32_t i = 0; i < b->jit_count; i++) {
    Tierpool__Trace__JitRange range = TIERPOOL__TRACE__JIT_RANGE__INIT;
    range.start = b->jits[i].start;
    range.size = b->jits[i].size;
    range.removed = b->jits[i].removed;
    range.time_us = TP_US(b->jits[i].time_ns);
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_JIT_RANGE;
    record.jit_range = &range;
    tp_rec_out_record(out, &record);
  }
}

/* Tenant records, once each, before anything that names them: tenants are
 * only ever added, so the count read after the batch swap covers every
 * sample in it.  A process with one tenant writes none ("default" is
 * implied). */
static void tp_rec_emit_tenants(tp_rec_out *out, uint32_t count) {
  if (count <= 1 || tp_rec_tenants_emitted >= count) return;
  for (; tp_rec_tenants_emitted < count && tp_rec_tenants_emitted < TP_MAX_TENANTS; tp_rec_tenants_emitted++) {
    Tierpool__Trace__Tenant tenant = TIERPOOL__TRACE__TENANT__INIT;
    tenant.id = tp_rec_tenants_emitted;
    tenant.name = (char *)tp_tenant_name(tp_rec_tenants_emitted); /* no lock: at an exec, the pool's may be held */
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_TENANT;
    record.tenant = &tenant;
    tp_rec_out_record(out, &record);
  }
}

/* The tenants that have histograms, each with its two sums mapped (the
 * default tenant always); lock held. */
static uint64_t tp_rec_hist_tenants(void) {
  uint64_t used = tp_rec.tenants_used | 1;
  for (uint32_t k = 0; k < TP_MAX_TENANTS; k++) {
    if (!(used >> k & 1) || (tp_rec_hist_now[k] && tp_rec_hist_emitted[k])) continue;
    if (!tp_rec_hist_now[k]) tp_rec_hist_now[k] = tp_rec_map(sizeof(tp_rec_hist));
    if (!tp_rec_hist_emitted[k]) tp_rec_hist_emitted[k] = tp_rec_map(sizeof(tp_rec_hist));
    if (!tp_rec_hist_now[k] || !tp_rec_hist_emitted[k]) used &= ~(1ull << k); /* out of memory: not counted */
  }
  return used;
}

/* Every used tenant's sum into tp_rec_hist_now; lock held. */
static uint64_t tp_rec_hist_sum_all(void) {
  uint64_t used = tp_rec_hist_tenants();
  for (uint32_t k = 0; k < TP_MAX_TENANTS; k++)
    if (used >> k & 1) tp_rec_hist_sum(tp_rec_hist_now[k], k);
  return used;
}

/* Exact counts of one tenant since its last histogram record: only buckets
 * that moved.  The default tenant's is written every time; the others' when
 * something moved. */
static void tp_rec_emit_histogram(tp_rec_out *out, uint32_t tenant, uint64_t time_us) {
  static uint32_t steps[TP_BUCKET_COUNT];
  static uint64_t allocs[TP_BUCKET_COUNT], over[TP_BUCKET_COUNT], frees[TP_BUCKET_COUNT];
  const tp_rec_hist *now = tp_rec_hist_now[tenant];
  tp_rec_hist *emitted = tp_rec_hist_emitted[tenant];
  size_t n = 0;
  uint32_t prev = 0;
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
    const tp_rec_bucket *cur = &now->bucket[b], *old = &emitted->bucket[b];
    uint64_t da = cur->allocs - old->allocs, dbytes = cur->bytes - old->bytes, df = cur->frees - old->frees;
    if (!da && !df) continue;
    /* Wraps if a torn read of the counters left bytes behind: exact all the same. */
    steps[n] = b - prev, allocs[n] = da, over[n] = dbytes - da * tp_bucket_lower(b), frees[n] = df;
    prev = b;
    n++;
  }
  memcpy(emitted, now, sizeof *now);
  if (!n && tenant != 0) return;
  Tierpool__Trace__Histogram histogram = TIERPOOL__TRACE__HISTOGRAM__INIT;
  histogram.time_us = time_us;
  histogram.n_bucket_step = histogram.n_allocs = histogram.n_bytes_over = histogram.n_frees = n;
  histogram.bucket_step = steps, histogram.allocs = allocs, histogram.bytes_over = over, histogram.frees = frees;
  histogram.tenant = tenant;
  Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
  record.kind_case = TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM;
  record.histogram = &histogram;
  tp_rec_out_record(out, &record);
}

/* Allocations in the sums of every used tenant (now, or already emitted). */
static uint64_t tp_rec_total_allocs(tp_rec_hist *const *sums, uint64_t used) {
  uint64_t total = 0;
  for (uint32_t k = 0; k < TP_MAX_TENANTS; k++)
    for (uint32_t b = 0; (used >> k & 1) && b < TP_BUCKET_COUNT; b++) total += sums[k]->bucket[b].allocs;
  return total;
}

/* The recorder's lock for a flush.  Holding a pool lock (a handler's exec
 * or exit), it is waited for a second at most: a fork in another thread
 * takes it before the pool's locks, and would wait for this thread's.
 * False: not taken. */
static bool tp_rec_lock_for_flush(bool locks_free) {
  if (!locks_free) return tp_lock_timed(&tp_rec.lock, 1);
  tp_lock_acquire(&tp_rec.lock);
  return true;
}

/* A child that execs before its first flush, having allocated nothing of
 * its own, leaves no trace: fork + exec would otherwise leave an empty one.
 * False too when the recorder's lock could not be had: the trace is not
 * opened, and the exec goes on unrecorded. */
static bool tp_rec_child_has_events(bool locks_free) {
  if (!tp_rec_lock_for_flush(locks_free)) {
    tp_message("profiler: a fork in another thread kept the recorder for a second; pid %d's exec goes unrecorded",
               (int)getpid());
    return false;
  }
  uint64_t used = tp_rec_hist_sum_all();
  const tp_rec_batch *b = &tp_rec.batches[tp_rec.active];
  bool events = b->jit_count || tp_rec_rings_pending() || tp_rec.drained.sample_count ||
                tp_rec.drained.free_count || tp_rec.drained.mmap_count;
  tp_lock_release(&tp_rec.lock);
  for (uint32_t k = 0; k < TP_MAX_TENANTS && !events; k++)
    for (uint32_t i = 0; (used >> k & 1) && i < TP_BUCKET_COUNT && !events; i++)
      events = tp_rec_hist_now[k]->bucket[i].allocs != tp_rec_hist_emitted[k]->bucket[i].allocs ||
               tp_rec_hist_now[k]->bucket[i].frees != tp_rec_hist_emitted[k]->bucket[i].frees;
  return events;
}

/* A child made without fork's handlers (_Fork, a raw clone; vfork's child
 * before its exec) holds the parent's trace and batches: written from there,
 * the parent's events would be in its trace twice (or, when the parent's
 * trace is not open yet or has stopped, in a trace of its own), and the
 * writer's lock may be held by a thread the child does not have.  Such a
 * child writes nothing (an image it execs records on its own).  tp_rec.pid is
 * the process the trace is for, set at the start and in fork's child handler,
 * before the trace is opened.  Read before any lock. */
bool tp_rec_in_unforked_child(void) { return tp_rec.pid != getpid(); }

/* error 0: an exec is called; else the call came back with that errno. */
static void tp_rec_emit_exec(tp_rec_out *out, uint64_t time_us, const char *path, int error) {
  Tierpool__Trace__Exec exec = TIERPOOL__TRACE__EXEC__INIT;
  exec.time_us = time_us;
  exec.path = (char *)(path ? path : "");
  exec.error = (uint32_t)error;
  Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
  record.kind_case = TIERPOOL__TRACE__RECORD__KIND_EXEC;
  record.exec = &exec;
  tp_rec_out_record(out, &record);
}

/* An exec's flush (and an exit's from a handler inside the pool) may run in
 * a signal handler that stopped its thread inside the pool: it waits a second
 * at most for the writer thread, which may be waiting for one of the pool's
 * locks in its own snapshot, and the exec goes on either way.  Holding one of
 * them, it takes none (no snapshot: the pool's statistics are read under
 * its locks); holding none, the image's last snapshot is written as at exit. */
bool tp_rec_writer_flush(tp_rec_flush_mode mode, const char *exec_path) {
  if (tp_rec_in_unforked_child()) return false;
  bool final = mode == TP_REC_FLUSH_FINAL || mode == TP_REC_FLUSH_FINAL_HELD;
  bool locks_free = mode == TP_REC_FLUSH_EXEC ? !tp_locks_held_here() : mode != TP_REC_FLUSH_FINAL_HELD;
  if (mode == TP_REC_FLUSH_PERIODIC || mode == TP_REC_FLUSH_FINAL) tp_lock_acquire(&tp_rec_writer_lock);
  else if (!tp_lock_timed(&tp_rec_writer_lock, 1)) {
    tp_message("profiler: the writer kept the trace for a second; pid %d's trace ends at its last frame",
               (int)getpid());
    return false;
  }
  if (mode == TP_REC_FLUSH_PERIODIC && __atomic_load_n(&tp_rec_execs_in_flight, __ATOMIC_RELAXED)) {
    tp_lock_release(&tp_rec_writer_lock);
    return false;
  }
  if (tp_rec_open_pending && !tp_rec_finished && (mode != TP_REC_FLUSH_EXEC || tp_rec_child_has_events(locks_free))) {
    tp_rec_open_pending = false;
    tp_rec_writer_open();
  }
  if (tp_rec_finished || tp_rec.fd < 0) {
    tp_lock_release(&tp_rec_writer_lock);
    return false;
  }
  uint64_t now_ns = tp_rec_now_ns();
  bool periodic = mode != TP_REC_FLUSH_PERIODIC || tp_rec_last_periodic_ns == UINT64_MAX ||
                  now_ns - tp_rec_last_periodic_ns >= TP_REC_SNAPSHOT_MS * 1000000ull;
  if (!tp_rec_lock_for_flush(locks_free)) {
    tp_lock_release(&tp_rec_writer_lock);
    return false;
  }
  tp_rec_batch *full = &tp_rec.batches[tp_rec.active];
  tp_rec_drained *events = &tp_rec.drained;
  tp_rec.active ^= 1;
  uint64_t used = periodic ? tp_rec_hist_sum_all() : 0;
  tp_lock_release(&tp_rec.lock);

  tp_rec_scratch_mark scratch = tp_rec_scratch_save();
  tp_rec_rings_drain(events, now_ns, locks_free); /* interns their stacks: before the count */
  tp_lock_acquire(&tp_rec.lock); /* threads the events name are registered */
  uint32_t thread_count = tp_rec.thread_count, stack_count = tp_rec_stack_count();
  uint64_t samples = tp_rec.samples, dropped = tp_rec.dropped + tp_rec_rings_dropped();
  tp_lock_release(&tp_rec.lock);
  uint32_t tenant_count = tp_tenant_count(); /* after the drain: covers its samples */
  tp_rec_out out = {0};
  tp_rec_emit_tenants(&out, tenant_count);
  tp_rec_emit_threads(&out, thread_count);
  tp_rec_emit_stacks(&out, stack_count);
  tp_trace_sample_mark *marks = tp_rec_scratch_alloc((events->sample_count + 1) * sizeof *marks);
  uint64_t id_max = tp_rec_sample_id_max;
  uint32_t mark_count = tp_rec_emit_samples(&out, events, marks, &id_max);
  if (marks) tp_trace_marks_prepare(marks, mark_count);
  tp_rec_emit_frees(&out, events, marks, mark_count);
  tp_rec_sample_id_max = id_max; /* the next frames' prior */
  tp_rec_emit_mmaps(&out, events);
  tp_rec_emit_jits(&out, full);
  events->sample_count = events->free_count = events->mmap_count = full->jit_count = 0;
  if (periodic) {
    tp_rec_last_periodic_ns = now_ns;
    tp_rec_emit_new_modules(&out);
    for (uint32_t k = 0; k < TP_MAX_TENANTS; k++)
      if (used >> k & 1) tp_rec_emit_histogram(&out, k, TP_US(now_ns));
    if (locks_free) tp_rec_emit_snapshot(&out, TP_US(now_ns), tenant_count);
    tp_rec_emit_perf_map(&out);
  }
  if (mode == TP_REC_FLUSH_EXEC) /* last: the new image's trace takes over from here */
    tp_rec_emit_exec(&out, TP_US(now_ns), exec_path, 0);
  if (final) {
    Tierpool__Trace__End end = TIERPOOL__TRACE__END__INIT;
    end.time_us = TP_US(now_ns);
    end.samples = samples;
    end.dropped = dropped;
    end.allocations = tp_rec_total_allocs(tp_rec_hist_emitted, used) - tp_rec_allocs_before;
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_END;
    record.end = &end;
    tp_rec_out_record(&out, &record);
    tp_rec_finished = true;
  }
  /* Later records count on this frame's (nodes of the stack tree, the highest
   * stack of the samples): without it they would read wrong. */
  if (!tp_rec_write_frame(&out) && tp_rec.fd >= 0) {
    tp_message("profiler: out of memory writing %s; trace stops here", tp_rec.path);
    tp_rec_fd_give_up();
  }
  bool exec_written = mode == TP_REC_FLUSH_EXEC && tp_rec.fd >= 0;
  if (exec_written) __atomic_add_fetch(&tp_rec_execs_in_flight, 1, __ATOMIC_RELAXED);
  tp_rec_scratch_restore(scratch);
  tp_lock_release(&tp_rec_writer_lock);
  return exec_written;
}

/* Stack a flush from a signal handler needs (an exec or exit() there):
 * a handler's exec went through on an 11 KiB signal stack, not on 10; on
 * 20 KiB, not 19, when a fork child's trace is opened first.  About twice
 * that is asked for, below the caller's frame. */
#define TP_REC_FLUSH_STACK (16u << 10)
#define TP_REC_FLUSH_STACK_OPENING (32u << 10)

/* Short of it (an 8 KiB SIGSTKSZ stack), the flush is left out and the trace
 * ends at its last frame; said without formatting, on what stack is left. */
bool tp_rec_writer_flush_fits_stack(void) {
  if (!tp_rec_signal_stack_short(tp_rec_open_pending ? TP_REC_FLUSH_STACK_OPENING : TP_REC_FLUSH_STACK)) return true;
  static const char line[] = "tierpool: profiler: exec or exit on a small signal stack; the trace ends at its last frame\n";
  tp_os_write(2, line, sizeof line - 1);
  return false;
}

/* The exec whose record tp_rec_writer_flush wrote came back with error: the
 * beats go on, and the trace says so at once (a program killed right after
 * still reads as one whose exec failed).  The call may have come from a
 * signal handler: the writer is waited for a second at most, as before it. */
void tp_rec_writer_exec_failed(int error) {
  __atomic_sub_fetch(&tp_rec_execs_in_flight, 1, __ATOMIC_RELAXED); /* raised by this exec's flush */
  if (!tp_lock_timed(&tp_rec_writer_lock, 1)) {
    tp_message("profiler: the writer kept the trace for a second; pid %d's failed exec goes unrecorded",
               (int)getpid());
    return;
  }
  if (!tp_rec_finished && tp_rec.fd >= 0) {
    tp_rec_scratch_mark scratch = tp_rec_scratch_save();
    tp_rec_out out = {0};
    tp_rec_emit_exec(&out, TP_US(tp_rec_now_ns()), NULL, error > 0 ? error : EINVAL);
    if (!tp_rec_write_frame(&out) && tp_rec.fd >= 0) {
      tp_message("profiler: out of memory writing %s; trace stops here", tp_rec.path);
      tp_rec_fd_give_up();
    }
    tp_rec_scratch_restore(scratch);
  }
  tp_lock_release(&tp_rec_writer_lock);
}

/* ---- the writer thread ----------------------------------------------------- */

/* The rings' events so far into samples and frees (tp_rec.drained): at every
 * wake, so that a ring holds 25 ms of its thread's events at most. */
static void tp_rec_writer_drain(void) {
  tp_lock_acquire(&tp_rec_writer_lock);
  if (!tp_rec_finished) {
    tp_rec_scratch_mark scratch = tp_rec_scratch_save();
    tp_rec_rings_drain(&tp_rec.drained, tp_rec_now_ns(), false); /* never stuck holding the writer's lock */
    tp_rec_scratch_restore(scratch);
  }
  tp_lock_release(&tp_rec_writer_lock);
}

/* Events waiting for a frame (read without the lock: a hint). */
static uint64_t tp_rec_pending_events(void) {
  return (uint64_t)tp_rec.drained.sample_count + tp_rec.drained.free_count + tp_rec.drained.mmap_count;
}

/* Drains every TP_REC_FLUSH_MS, or sooner when a batch is big enough for a
 * well-compressed frame: the work is done here, beside the program, instead
 * of at its exit (a short busy run would otherwise pay it all there). */
static void *tp_rec_writer_main(void *name) {
  tp_helper_started(name);
  tp_rec_enter(&tp_rec_self); /* nothing this thread allocates is the program's */
  for (uint32_t waited_ms = 0;;) {
    if (!tp_helper_sleep(TP_REC_WAKE_MS)) break; /* paused: tp_rec_writer_restart */
    waited_ms += TP_REC_WAKE_MS;
    if (tp_rec_finished) break;
    bool beat = waited_ms >= TP_REC_FLUSH_MS;
    tp_rec_writer_drain();
    if (!beat && tp_rec_pending_events() < TP_REC_FLUSH_EVENTS) continue;
    tp_rec_writer_flush(TP_REC_FLUSH_PERIODIC, NULL);
    waited_ms = 0;
    if (beat) { /* the program's last thread may have gone: then its exit, here, and its exit handlers' frees are the program's */
      tp_rec_leave(&tp_rec_self);
      tp_helper_check();
      tp_rec_enter(&tp_rec_self);
    }
  }
  __atomic_store_n(&tp_rec.writer_running, false, __ATOMIC_RELEASE); /* before it uncounts itself */
  tp_helper_stopping();
  return NULL;
}

static void tp_rec_writer_spawn(void) {
  if (!tp_helper_spawn(tp_rec_writer_main, "tierpool-write"))
    __atomic_store_n(&tp_rec.writer_running, false, __ATOMIC_RELEASE);
}

void tp_rec_writer_start(void) {
  __atomic_store_n(&tp_rec.writer_running, true, __ATOMIC_RELEASE); /* before: a writer may end at once */
  tp_rec_writer_spawn();
}

/* After tp_helpers_pause: a writer again, unless the trace is finished; one
 * only when two threads resume at once (the flag is claimed, as the
 * background thread's). */
void tp_rec_writer_restart(void) {
  bool expected = false;
  if (!tp_rec_active || tp_rec_finished ||
      !__atomic_compare_exchange_n(&tp_rec.writer_running, &expected, true, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return;
  tp_rec_writer_spawn();
}

/* In a forked child: the parent's file and thread are not ours.  A new trace
 * starts from here, with everything (threads, stacks, modules) said again. */
void tp_rec_writer_after_fork_child(void) {
  tp_rec.pid = getpid(); /* the child's trace, opened at its first flush */
  tp_lock_init(&tp_rec_writer_lock);
  tp_rec_file_after_fork_child();
  tp_rec_threads_emitted = tp_rec_stacks_emitted = tp_rec_tenants_emitted = tp_rec_sample_stack_max = 0;
  tp_rec_sample_id_max = 0;
  tp_rec.drained.sample_count = tp_rec.drained.free_count = tp_rec.drained.mmap_count = 0; /* the parent's */
  uint64_t used = tp_rec_hist_tenants(); /* the child's histograms start at zero */
  for (uint32_t k = 0; k < TP_MAX_TENANTS; k++)
    if (used >> k & 1) tp_rec_hist_sum(tp_rec_hist_emitted[k], k);
  tp_rec_allocs_before = tp_rec_total_allocs(tp_rec_hist_emitted, used);
  tp_rec_last_periodic_ns = UINT64_MAX;
  __atomic_store_n(&tp_rec_execs_in_flight, 0, __ATOMIC_RELAXED); /* the parent's other threads' */
  tp_rec_finished = false;
  tp_rec_procinfo_reset();
  tp_rec_scratch_reset(); /* a flush the fork cut in the middle held some */
  tp_rec_open_pending = true;
  tp_rec_writer_start();
}
