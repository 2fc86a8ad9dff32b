/* recorder_fast.h — the recorder's per-event work, inlined into the pool's
 * API (preload/alloc.c) when the recorder is on: count the event in the
 * thread's histogram, step the sampling counter.  Everything else — a thread's first event, a tenant change, a
 * sample, the free of a sampled block, byte-mode sampling — is a call (best
 * a tail call: tp_rec_alloc_counted, tp_rec_free_slab_counted). */
#ifndef TP_RECORDER_FAST_H
#define TP_RECORDER_FAST_H

#include "buckets.h"
#include "internal.h"
#include "recorder.h"

/* Exact counts of one thread, bumped without atomics; summed by the writer.
 * A bucket's three counters share a cache line. */
typedef struct tp_rec_bucket {
  uint64_t allocs, bytes, frees;
} tp_rec_bucket;

/* Allocations in one of the 16-byte buckets up to 4 KiB.  16 bytes each, so
 * a size's counters sit at byte offset (size + 15) & ~15: the sizes a program
 * uses share a few lines, where a counter per size spread them over 32 KiB. */
typedef struct tp_rec_fine {
  uint64_t allocs, bytes;
} tp_rec_fine;

/* One thread's counts for one tenant: a thread that switches tenants has one
 * of these per tenant it allocated for (made on first use, never freed while
 * the thread lives). */
typedef struct tp_rec_hist {
  tp_rec_fine fine[TP_BUCKET_FINE_COUNT]; /* folded into bucket[] when summed */
  tp_rec_bucket bucket[TP_BUCKET_COUNT];
  /* Slab frees by class, folded into bucket[].frees when summed: the free
   * fast path bumps one of 64 hot counters instead of a bucket line. */
  uint64_t class_frees[TP_MAX_CLASSES];
  struct tp_rec_hist *next;        /* all live threads' (tp_rec.hists), or spares */
  struct tp_rec_hist *thread_next; /* the same thread's other tenants           */
  uint32_t tenant;
} tp_rec_hist;

typedef struct tp_rec_ring tp_rec_ring; /* rings.c */

typedef struct tp_rec_thread {
  int64_t skip;       /* allocations (or bytes) until the next sample */
  uint64_t rng;       /* xorshift state for the geometric skips; 0 until seeded */
  tp_rec_hist *hist;  /* the current tenant's; NULL until the first event */
  tp_rec_hist *hists; /* one per tenant seen, linked by thread_next */
  const void *hist_of;   /* the heap (tenant) hist counts for */
  const void *hist_heap; /* the same, the inlined paths' key (one compare per event); NULL in byte mode and while busy */
  tp_rec_ring *ring;  /* its samples and sampled frees, on their way to the writer; NULL until the first */
  uint32_t id;        /* Thread.id in the trace, 0 until registered    */
  bool busy;          /* inside the recorder: its own allocations are not recorded */
  bool exited;        /* past thread exit: counts go to the shared hist */
} tp_rec_thread;

extern __thread tp_rec_thread tp_rec_self;

extern bool tp_rec_by_bytes; /* sample_bytes mode: the counter steps by bytes, in the calls only */

/* Into and out of the recorder's own work (busy: what the thread allocates
 * meanwhile is not the program's).  hist_heap is NULL while busy, so that the
 * inlined paths' one compare of the cache's heap covers busy too. */
static inline void tp_rec_enter(tp_rec_thread *t) {
  t->busy = true;
  t->hist_heap = NULL;
}
static inline void tp_rec_leave(tp_rec_thread *t) {
  t->busy = false;
  t->hist_heap = tp_rec_by_bytes ? NULL : t->hist_of;
}

/* Both return the block to hand out (p). */
void *tp_rec_alloc_then(void *p, size_t size, size_t align);  /* tp_rec_alloc */
void *tp_rec_sample_then(void *p, size_t size, size_t align); /* the counter ran out */

/* An allocation of `size` bytes, counted in h. */
static inline void tp_rec_count_alloc(tp_rec_hist *h, size_t size) {
  if (tp_likely(size <= TP_BUCKET_FINE_MAX)) {
    tp_rec_fine *fine = (tp_rec_fine *)((char *)h->fine + ((size + 15) & ~(size_t)15));
    fine->allocs++;
    fine->bytes += size;
  } else {
    tp_rec_bucket *bucket = &h->bucket[tp_bucket_of_size(size)];
    bucket->allocs++;
    bucket->bytes += size;
  }
}

/* malloc's tail: counts p (NULL on failure, `size` bytes) and returns the
 * block to hand out (p, unless a sample moved it); the rare cases are tail calls, so a caller that returns its result keeps
 * no register across them (no stack frame). */
static inline void *tp_rec_alloc_counted(void *p, size_t size, size_t align) {
  tp_rec_thread *t = &tp_rec_self;
  const tp_tcache *tc = tp_tcache_current;
  if (tp_unlikely(tc == NULL || tc->heap != t->hist_heap || p == NULL)) return tp_rec_alloc_then(p, size, align);
  tp_rec_count_alloc(t->hist, size);
  if (tp_unlikely(--t->skip <= 0)) return tp_rec_sample_then(p, size, align);
  return p;
}

/* The pool's fast free of a block of class cls from a slab of tc's heap,
 * never a sample: the frees of a slab that holds one take the slow path.
 * True when counted; false: the caller calls tp_rec_free_slab (a thread's
 * first event, another tenant's counts) before the block goes back, best as
 * a tail call. */
static inline bool tp_rec_free_slab_counted(const tp_tcache *tc, uint32_t cls) {
  tp_rec_thread *t = &tp_rec_self;
  if (tp_unlikely(tc->heap != t->hist_heap)) return false; /* also while busy */
  t->hist->class_frees[cls]++;
  return true;
}

#endif /* TP_RECORDER_FAST_H */
