/* rings.c — each thread's samples, sampled frees and mmap-family calls, on
 * their way to the writer.
 *
 * A thread appends its events to a ring of its own: one producer (the
 * thread), one consumer (whoever holds the writer's lock), so that a sample
 * (or a host's mprotect: node makes thousands) takes no lock and writes no
 * line another thread writes.  The writer gives
 * the ids: it merges the rings by time, numbers the samples in that order and
 * finds each free's sample by address in a table only it touches.  A free's
 * sample is always merged before it: the writer takes events older than the
 * moment its flush began, and a block is freed only after its malloc (and
 * the sample's append) returned, so a free older than that moment has its
 * sample in a ring already.
 *
 * Rings start small (16 KiB: a server with hundreds of threads that sample
 * now and then keeps that much each, resident as the ring cycles) and grow
 * fourfold, up to 256 KiB (1 MiB in validation mode, where every allocation
 * is an event), when one passes half full between two of the writer's
 * drains (25 ms apart): a compiler thread sampling 10 thousand times a
 * second fills 256 KiB in ten drains.  Growing is claiming a bigger ring and
 * retiring the old one, undrained: the merge goes by time, so a thread's
 * events may sit in two rings.  Rings outlive their threads: a retired ring
 * goes to the next thread that needs one (each event names its thread).  A
 * ring of the biggest size past half full wakes the writer (a program's start
 * fills one in a few ms); a thread whose ring is full waits for the writer,
 * 50 ms at most (not at all when it holds one of the library's locks, which
 * the writer may want, or when no writer runs), then drops the event (the End
 * record counts it).  Events of a thread past its exit (TLS destructors'
 * frees) go to one shared ring, appended under tp_rec.lock. */
#include <stdalign.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "recorder_private.h"

#define TP_REC_RING_FIRST_BYTES (16u << 10)
#define TP_REC_RING_MAX_BYTES (256u << 10)
#define TP_REC_RING_MAX_BYTES_VALIDATE (1u << 20)
#define TP_REC_RING_WAIT_NS 50000000 /* a full ring: the writer (every 25 ms) is waited for this long at most */

/* One mapping of `size` bytes: this header, then the events. */
struct tp_rec_ring {
  /* the producer's */
  _Atomic uint64_t head; /* bytes appended (release: the events before it are written) */
  uint64_t tail_seen;    /* its last reading of tail */
  uint64_t dropped;      /* events that did not fit */
  _Atomic bool retired;  /* its thread exited or outgrew it: free for another */
  bool released;         /* retired and drained, its pages given back (under tp_rec.lock) */
  bool woke;             /* the writer was woken since the ring passed half full */
  uint32_t size;         /* of the mapping */
  uint64_t bytes;        /* of events it holds: size less this header */
  struct tp_rec_ring *next; /* every ring (tp_rec_rings), pushed under tp_rec.lock */
  /* the consumer's */
  alignas(64) _Atomic uint64_t tail; /* bytes consumed (release: the writer is done with them) */
  alignas(64) uint8_t data[];
};

static _Atomic(tp_rec_ring *) tp_rec_rings;
static tp_rec_ring *tp_rec_orphans; /* threads past their exit: appended under tp_rec.lock */

static uint32_t tp_rec_ring_max_size(void) {
  return tp_opt.validate ? TP_REC_RING_MAX_BYTES_VALIDATE : TP_REC_RING_MAX_BYTES;
}

static size_t tp_rec_event_size(const tp_rec_event *e) {
  if (e->kind == TP_REC_EVENT_FREE && !e->depth) return offsetof(tp_rec_event, size);
  return sizeof *e + (size_t)e->depth * sizeof e->frames[0];
}

/* A ring of at least `size` bytes for the calling thread (lock held): a
 * retired one, or a new mapping. */
static tp_rec_ring *tp_rec_ring_claim(uint32_t size) {
  for (tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_relaxed); r; r = r->next) {
    bool expected = true;
    if (r->size >= size && atomic_compare_exchange_strong(&r->retired, &expected, false)) {
      r->released = false;
      r->woke = false;
      return r;
    }
  }
  tp_rec_ring *r = tp_rec_map(size);
  if (!r) return NULL;
  r->size = size;
  r->bytes = size - offsetof(tp_rec_ring, data);
  r->next = atomic_load_explicit(&tp_rec_rings, memory_order_relaxed);
  atomic_store_explicit(&tp_rec_rings, r, memory_order_release);
  return r;
}

/* A ring past half full between two drains: its thread goes on in one four
 * times bigger (false: at the biggest size already, or none to be had). */
static bool tp_rec_ring_grow(tp_rec_ring **slot, bool locked) {
  tp_rec_ring *r = *slot;
  uint32_t max = tp_rec_ring_max_size();
  if (r->size >= max || (!locked && !tp_lock_try(&tp_rec.lock))) return false;
  tp_rec_ring *bigger = tp_rec_ring_claim(r->size * 4 < max ? r->size * 4 : max);
  if (bigger) {
    *slot = bigger;
    atomic_store_explicit(&r->retired, true, memory_order_release); /* its events stay for the writer */
  }
  if (!locked) tp_lock_release(&tp_rec.lock);
  return bigger != NULL;
}

/* Until the writer has taken the ring's bytes up to tail (false: it did not
 * come in time, or cannot). */
static bool tp_rec_ring_wait(tp_rec_ring *r, uint64_t tail) {
  r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (r->tail_seen >= tail) return true;
  if (!__atomic_load_n(&tp_rec.writer_running, __ATOMIC_ACQUIRE) || tp_locks_held_here()) return false;
  for (long waited = 0; waited < TP_REC_RING_WAIT_NS; waited += 200000) {
    syscall(SYS_nanosleep, &(struct timespec){0, 200000}, NULL); /* not libc's: no cancellation point in malloc */
    if ((r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire)) >= tail) return true;
  }
  return false;
}

/* Appends e and its frames to the ring in *slot, which may grow (into a
 * new *slot); false: no room, dropped.  locked: tp_rec.lock is held. */
static bool tp_rec_ring_append(tp_rec_ring **slot, const tp_rec_event *e, const uintptr_t *frames, bool locked) {
  tp_rec_ring *r = *slot;
  size_t size = tp_rec_event_size(e), frames_size = e->depth * sizeof *frames;
  uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (head - r->tail_seen > r->bytes / 2) { /* growing, or else waking the writer, beats waiting for it */
    r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    bool half = head - r->tail_seen > r->bytes / 2;
    if (half && tp_rec_ring_grow(slot, locked)) return tp_rec_ring_append(slot, e, frames, locked);
    if (half && !r->woke) tp_helpers_wake();
    r->woke = half;
  }
  uint64_t at = head % r->bytes;
  bool wrap = at + size > r->bytes;
  uint64_t need = size + (wrap ? r->bytes - at : 0);
  if (head + need - r->tail_seen > r->bytes && !tp_rec_ring_wait(r, head + need - r->bytes)) {
    __atomic_store_n(&r->dropped, r->dropped + 1, __ATOMIC_RELAXED); /* the writer reads it */
    return false;
  }
  if (wrap) { /* the rest of the ring is skipped: a marker, then the front */
    ((tp_rec_event *)(r->data + at))->kind = TP_REC_EVENT_WRAP;
    head += r->bytes - at;
    at = 0;
  }
  tp_rec_event *out = (tp_rec_event *)(r->data + at);
  memcpy(out, e, size - frames_size);
  if (frames_size) memcpy(out->frames, frames, frames_size);
  atomic_store_explicit(&r->head, head + size, memory_order_release);
  return true;
}

void tp_rec_event_push(tp_rec_thread *t, tp_rec_event *e, const uintptr_t *frames) {
  e->thread = t->id;
  if (tp_likely(t->ring != NULL)) {
    tp_rec_ring_append(&t->ring, e, frames, false);
    return;
  }
  tp_lock_acquire(&tp_rec.lock);
  e->thread = tp_rec_thread_id(t);
  if (t->exited) { /* timed again under the lock: the shared ring stays in time order */
    e->time_ns = tp_rec_now_ns();
    if (!tp_rec_orphans) tp_rec_orphans = tp_rec_ring_claim(TP_REC_RING_FIRST_BYTES);
    if (tp_rec_orphans) tp_rec_ring_append(&tp_rec_orphans, e, frames, true); /* a full one counts its drops */
    else tp_rec.dropped++;
  } else if ((t->ring = tp_rec_ring_claim(TP_REC_RING_FIRST_BYTES)) != NULL) {
    tp_rec_ring_append(&t->ring, e, frames, true);
  } else {
    tp_rec.dropped++;
  }
  tp_lock_release(&tp_rec.lock);
}

/* Exit: the ring goes to the next thread that samples; this one's late
 * events go to the shared ring. */
void tp_rec_rings_thread_exit(tp_rec_thread *t) {
  tp_rec_ring *r = t->ring;
  if (!r) return;
  t->ring = NULL; /* first: a handler's event now takes the locked way */
  atomic_store_explicit(&r->retired, true, memory_order_release);
}

/* The next event of r to merge, or NULL: none older than cut_ns. */
static const tp_rec_event *tp_rec_ring_next(tp_rec_ring *r, uint64_t cut_ns) {
  uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  while (tail < head) {
    const tp_rec_event *e = (const tp_rec_event *)(r->data + tail % r->bytes);
    if (e->kind != TP_REC_EVENT_WRAP) return e->time_ns < cut_ns ? e : NULL;
    tail += r->bytes - tail % r->bytes;
    atomic_store_explicit(&r->tail, tail, memory_order_release);
  }
  return NULL;
}

uint64_t tp_rec_rings_pending(void) {
  uint64_t bytes = 0;
  for (tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_acquire); r; r = r->next)
    bytes += atomic_load_explicit(&r->head, memory_order_relaxed) - atomic_load_explicit(&r->tail, memory_order_relaxed);
  return bytes;
}

uint64_t tp_rec_rings_dropped(void) {
  uint64_t dropped = 0;
  for (tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_acquire); r; r = r->next)
    dropped += __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
  return dropped;
}

/* ---- the writer's side: merge, ids, lifetimes ------------------------------ */

/* A ring in the merge, keyed by the time of its next event. */
typedef struct tp_rec_cursor {
  uint64_t time_ns;
  tp_rec_ring *ring;
  const tp_rec_event *event;
} tp_rec_cursor;

static void tp_rec_heap_push(tp_rec_cursor *heap, uint32_t *n, tp_rec_cursor c) {
  uint32_t i = (*n)++;
  for (; i && heap[(i - 1) / 2].time_ns > c.time_ns; i = (i - 1) / 2) heap[i] = heap[(i - 1) / 2];
  heap[i] = c;
}

static tp_rec_cursor tp_rec_heap_pop(tp_rec_cursor *heap, uint32_t *n) {
  tp_rec_cursor top = heap[0], last = heap[--*n];
  uint32_t i = 0;
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= *n) break;
    if (child + 1 < *n && heap[child + 1].time_ns < heap[child].time_ns) child++;
    if (heap[child].time_ns >= last.time_ns) break;
    heap[i] = heap[child];
    i = child;
  }
  if (*n) heap[i] = last;
  return top;
}

/* The writer's table of live samples: address -> id, size, stack. */
static tp_rec_live_table tp_rec_samples_live;

/* One event into the batch (false: the batch is full, or its new stack had
 * to wait: the event waits). */
static bool tp_rec_event_take(tp_rec_drained *b, const tp_rec_event *e, bool wait) {
  uint32_t *count = e->kind == TP_REC_EVENT_SAMPLE ? &b->sample_count
                    : e->kind == TP_REC_EVENT_MMAP ? &b->mmap_count
                                                   : &b->free_count;
  bool stacked = e->kind != TP_REC_EVENT_FREE || e->depth; /* a free has a stack in validation mode only */
  uint32_t stack = 0;
  if (*count >= TP_REC_BATCH_MAX || (stacked && !tp_rec_stack_intern_if(e->frames, e->depth, e->truncated, wait, &stack)))
    return false;
  tp_rec_live entry;
  switch (e->kind) {
    case TP_REC_EVENT_SAMPLE:
      entry = (tp_rec_live){e->address, ++tp_rec.next_sample_id, e->size, stack, false};
      tp_rec_live_insert(&tp_rec_samples_live, &entry);
      tp_rec.samples++;
      b->samples[(*count)++] = (tp_rec_sample){entry.id, e->time_ns, e->size, e->usable, tp_rec_weight(e->size),
                                               stack, e->thread, e->tier, e->align_log2, e->tenant};
      return true;
    case TP_REC_EVENT_MMAP: {
      bool mremap = e->tier == TP_REC_MREMAP;
      b->mmaps[(*count)++] = (tp_rec_mmap_event){e->time_ns, e->address, e->size, mremap ? e->old_address : 0, e->tier,
                                                 mremap ? 0 : (uint32_t)e->prot, e->flags, stack, e->thread};
      return true;
    }
    default: /* a free */
      if (!tp_rec_live_remove(&tp_rec_samples_live, e->address, &entry)) return true; /* not a sample of this trace */
      b->frees[(*count)++] = (tp_rec_free_event){entry.id, e->time_ns, stack};
      return true;
  }
}

/* Rings whose threads exited, drained: their pages go back (a server that
 * starts a thread per connection would keep a ring's pages for each thread
 * it ever had sampling).  Not while a fork holds the lock. */
static void tp_rec_rings_release_retired(void) {
  if (!tp_lock_try(&tp_rec.lock)) return;
  for (tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_relaxed); r; r = r->next)
    if (!r->released && atomic_load_explicit(&r->retired, memory_order_acquire) &&
        atomic_load_explicit(&r->tail, memory_order_relaxed) == atomic_load_explicit(&r->head, memory_order_relaxed)) {
      tp_os_release((char *)r + TP_PAGE_SIZE, r->size - TP_PAGE_SIZE); /* the header's page stays */
      r->released = true;
    }
  tp_lock_release(&tp_rec.lock);
}

/* Every ring's events older than cut_ns into b, in time order. */
void tp_rec_rings_drain(tp_rec_drained *b, uint64_t cut_ns, bool wait) {
  uint32_t rings = 0, n = 0;
  for (tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_acquire); r; r = r->next) rings++;
  tp_rec_cursor *heap = rings ? tp_rec_scratch_alloc(rings * sizeof *heap) : NULL;
  if (!heap) return;
  /* Rings pushed after the count are left for the next drain. */
  tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_acquire);
  for (uint32_t i = 0; i < rings && r; i++, r = r->next) {
    const tp_rec_event *e = tp_rec_ring_next(r, cut_ns);
    if (e) tp_rec_heap_push(heap, &n, (tp_rec_cursor){e->time_ns, r, e});
  }
  while (n) {
    tp_rec_cursor c = tp_rec_heap_pop(heap, &n);
    if (!tp_rec_event_take(b, c.event, wait)) break;
    uint64_t tail = atomic_load_explicit(&c.ring->tail, memory_order_relaxed) + tp_rec_event_size(c.event);
    atomic_store_explicit(&c.ring->tail, tail, memory_order_release);
    const tp_rec_event *e = tp_rec_ring_next(c.ring, cut_ns);
    if (e) tp_rec_heap_push(heap, &n, (tp_rec_cursor){e->time_ns, c.ring, e});
  }
  tp_rec_rings_release_retired();
}

const tp_rec_live_table *tp_rec_rings_live(void) { return &tp_rec_samples_live; }

/* A forked child: the rings hold the parent's events, and their threads are
 * the parent's; the table its samples.  Dropped, not freed (the writer may
 * have been changing the table when the fork came). */
void tp_rec_rings_after_fork_child(tp_rec_thread *self) {
  for (tp_rec_ring *r = atomic_load_explicit(&tp_rec_rings, memory_order_relaxed); r; r = r->next) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->tail, head, memory_order_relaxed);
    r->tail_seen = head;
    r->dropped = 0;
    atomic_store_explicit(&r->retired, r != self->ring && r != tp_rec_orphans, memory_order_relaxed);
  }
  memset(&tp_rec_samples_live, 0, sizeof tp_rec_samples_live);
}
