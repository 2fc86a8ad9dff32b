/* alloc.c — the interposed allocation API: malloc, free, calloc, realloc and
 * the aligned family, with glibc's semantics.
 *
 * Fast paths (inline, no lock, no atomic): malloc pops a block from the
 * thread's bin of the size's class; free finds the slab through the segment
 * bitmap and page map, checks the pointer is a block start that is not
 * already free, and pushes it on the bin.  Everything else is a slow path. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recorder_fast.h"

/* ---- slab tier ----------------------------------------------------------- */

static TP_NOINLINE void *tp_slab_alloc_slow(uint32_t cls, size_t requested) {
  tp_request_bytes = requested;
  if (tp_unlikely(tp_opt.prom_file[0])) tp_prom_tick(tp_os_now_ms());
  tp_tcache *tc = tp_tcache_current;
  if (!tc) tc = tp_tcache_create();
  void **block;
  if (tc) {
    tp_bin *bin = &tc->bins[cls];
    if (!bin->head) {
      tp_tcache_scavenge(tc); /* before the refill: this bin is empty, not idle */
      /* A bin starts small and doubles at each refill up to the class's
       * capacity: classes a thread rarely uses do not hoard (or touch) blocks. */
      bin->count = tp_central_fill(tc->heap, cls, &bin->head, bin->max / 2 ? bin->max / 2 : 1);
      if (!bin->count) goto out_of_memory;
      uint32_t cap = tp_classes.classes[cls].cache_max;
      bin->max = bin->max * 2 < cap ? bin->max * 2 : cap;
    }
    block = bin->head;
    bin->head = block[0];
    bin->count--;
    bin->allocs++;
    bin->requested += requested;
  } else { /* thread exiting: no cache */
    void *head;
    tp_heap *h = tp_current_heap();
    if (!tp_central_fill(h, cls, &head, 1)) goto out_of_memory;
    block = head;
    tp_tcache_count_uncached(h, cls, requested);
  }
  block[1] = NULL;
  return block;
out_of_memory:
  errno = ENOMEM;
  return NULL;
}

static inline void *tp_slab_alloc(uint32_t cls, size_t requested) {
  tp_tcache *tc = tp_tcache_current;
  if (tp_likely(tc != NULL)) {
    tp_bin *bin = &tc->bins[cls];
    void **block = bin->head;
    if (tp_likely(block != NULL)) {
      bin->head = block[0];
      __builtin_prefetch(bin->head); /* the next pop reads it: keep it out of the miss path */
      bin->count--;
      block[1] = NULL; /* clear the free mark */
      bin->allocs++;
      bin->requested += requested;
      return block;
    }
  }
  return tp_slab_alloc_slow(cls, requested);
}

/* ---- tier dispatch ------------------------------------------------------- */

/* Serves `size` bytes aligned to `align` (a power of two, > 16 only for the
 * aligned API).  With want_zero (calloc), page-tier memory comes back zeroed
 * by the OS rather than by memset, so untouched pages stay unfaulted;
 * *zeroed says whether the memory is known to be zero. */
static TP_NOINLINE void *tp_alloc_general(size_t size, size_t align, bool want_zero, bool *zeroed) {
  tp_ensure_init();
  *zeroed = false;
  void *p = NULL;
  if (size <= tp_classes.max_size && align <= TP_PAGE_SIZE) {
    /* A block of class c is aligned to `align` when c's size is a multiple of it. */
    for (uint32_t c = tp_class_of_size(size); c < tp_classes.count; c++) {
      if (tp_classes.classes[c].size % align == 0) {
        p = tp_slab_alloc(c, size);
        goto done;
      }
    }
  }
  if (size > PTRDIFF_MAX - TP_SEGMENT_SIZE || align > PTRDIFF_MAX / 2) goto done;
  size_t pages_size = tp_align_up(size ? size : 1, TP_PAGE_SIZE);
  tp_heap *h = tp_current_heap();
  tp_request_bytes = size;
  if (pages_size <= h->buddy_max && align <= TP_BUDDY_MAX_LIMIT)
    p = tp_heap_alloc_pages(h, pages_size, align, size, want_zero, zeroed);
  else
    p = tp_large_alloc(h, pages_size, align, size, want_zero, zeroed);
done:
  if (!p) errno = ENOMEM;
  return p;
}

static inline void *tp_malloc(size_t size) {
  if (tp_likely(size <= tp_classes.max_size)) return tp_slab_alloc(tp_class_of_size(size), size);
  bool zeroed;
  return tp_alloc_general(size, TP_MIN_ALIGN, false, &zeroed);
}

/* ---- free ---------------------------------------------------------------- */


static TP_COLD __attribute__((noreturn)) void tp_bad_pointer(const char *call, void *p, tp_ptr_kind kind) {
  const char *what = kind == TP_PTR_DOUBLE_FREE ? "double free" : "invalid pointer";
  if (tp_rec_active) tp_rec_bad_free(call, p, what);
  tp_fatal("%s(): %s %p", call, what, p);
}

static void tp_free_slab_block(tp_span *slab, void *p, bool sampled) {
  void **block = p;
  uint32_t cls = slab->class_idx;
  if (sampled) tp_slab_unmark_sampled(tp_segment_of(p), slab, p); /* the recorder has seen its free */
  tp_tcache *tc = tp_tcache_current;
  if (!tc) tc = tp_tcache_create();
  block[1] = tp_free_mark(block);
  if (tc && tc->heap == tp_segment_of(p)->heap) {
    tp_bin *bin = &tc->bins[cls];
    block[0] = bin->head;
    bin->head = block;
    bin->frees++;
    if (++bin->count > bin->max) tp_tcache_overflow(tc, cls);
  } else {
    tp_heap *owner = tp_segment_of(p)->heap; /* another tenant's block, or no cache */
    block[0] = NULL;
    tp_central_return(owner, cls, block, 1);
    tp_tcache_count_remote_free(owner, cls);
  }
}

static TP_NOINLINE void tp_free_recorded_rare(void *p, uint32_t cls);

/* A checked slab block of class cls, of tc's heap, into the thread's bin. */
static inline __attribute__((always_inline)) void tp_free_to_bin(tp_tcache *tc, void **block, uint32_t cls) {
  tp_bin *bin = &tc->bins[cls];
  block[0] = bin->head;
  block[1] = tp_free_mark(block);
  bin->head = block;
  bin->frees++;
  if (tp_unlikely(++bin->count > bin->max)) tp_tcache_overflow(tc, cls);
}

/* A classified block back to its tier (or the diagnostic), unrecorded. */
static void tp_free_classified(void *p, tp_ptr_info info, const char *call) {
  switch (info.kind) {
    case TP_PTR_SLAB: tp_free_slab_block(info.slab, p, info.sampled); return;
    case TP_PTR_BUDDY: tp_heap_free_pages(info.seg->heap, info.seg, info.page, p, call); return;
    case TP_PTR_LARGE:
      if (tp_large_free(p)) return;
      tp_bad_pointer(call, p, TP_PTR_DOUBLE_FREE); /* freed by another thread meanwhile */
      return;
    default: tp_bad_pointer(call, p, info.kind);
  }
}

/* The recorder, when on, sees every free that comes this way. */
static TP_NOINLINE void tp_free_slow(void *p, const char *call) {
  if (!p) return;
  tp_ptr_info info = tp_classify(p);
  /* Recorded before the block goes back, so that its address cannot be handed
   * out (and sampled) again before its free is on record. */
  if (tp_unlikely(tp_rec_active) && info.kind >= TP_PTR_SLAB) tp_rec_free(p, info.usable);
  tp_free_classified(p, info, call);
}

/* `record` is a constant at each call: free() without the recorder is a leaf
 * function (no stack frame) on its fast path. */
static inline __attribute__((always_inline)) void tp_free_impl(void *p, bool record) {
  if (tp_likely(tp_segment_is_ours(p))) {
    tp_segment *seg = tp_segment_of(p);
    uint32_t entry = seg->page_map[tp_page_index(seg, p)];
    tp_tcache *tc = tp_tcache_current;
    if (tp_likely(TP_PAGE_KIND(entry) == TP_PAGE_SLAB && tc != NULL && seg->heap == tc->heap)) {
      tp_span *slab = &seg->spans[TP_SLAB_SLOT(entry)];
      uintptr_t offset = (uintptr_t)p - (uintptr_t)tp_page_address(seg, TP_SLAB_FIRST(entry));
      uint64_t index = (offset * slab->div_magic) >> 40;
      void **block = p;
      /* Recorded, a sampled block's free takes the slow path, to the
       * recorder; its bit is read only in a slab that holds samples.
       * Unrecorded, no bit matters. */
      if (tp_likely(index * slab->block_size == offset && index < slab->capacity &&
                    block[1] != tp_free_mark(block) &&
                    !(record && tp_slab_block_marked(seg, slab, p)))) {
        uint32_t cls = slab->class_idx;
        if (record && tp_unlikely(!tp_rec_free_slab_counted(tc, cls))) {
          tp_free_recorded_rare(p, cls);
          return;
        }
        tp_free_to_bin(tc, block, cls);
        return;
      }
    }
  }
  tp_free_slow(p, "free");
}

static TP_NOINLINE void tp_free_recorded(void *p) { tp_free_impl(p, true); }

/* A slab free, checked by tp_free_impl, that the inlined count left to the
 * recorder (a thread's first event, another tenant's counts): counted before
 * the block goes back. */
static TP_NOINLINE void tp_free_recorded_rare(void *p, uint32_t cls) {
  tp_rec_free_slab(cls);
  tp_free_to_bin(tp_tcache_current, p, cls);
}

static inline void tp_free(void *p) {
  if (tp_unlikely(tp_rec_active)) tp_free_recorded(p);
  else tp_free_impl(p, false);
}

/* ---- recording (profiling and validation) -------------------------------- */
/* With the recorder off, each entry point pays one predictable branch on
 * tp_rec_active; these run only when it is on. */

/* Counts (and perhaps samples) an allocation whose block holds its first
 * `size` bytes already: returns the block to hand out, which a sample may have
 * moved. */
static inline void *tp_record_alloc(void *p, size_t size, size_t align) { return tp_rec_alloc_counted(p, size, align); }

/* ---- the API ------------------------------------------------------------- */

/* The pool's slow paths, then counted. */
static TP_NOINLINE void *tp_malloc_recorded_slow(size_t size) {
  return tp_rec_alloc_counted(tp_malloc(size), size, TP_MIN_ALIGN);
}

/* A block from the thread's cache, counted: no stack frame, every other way
 * is a tail call. */
static TP_NOINLINE void *tp_malloc_recorded(size_t size) {
  tp_tcache *tc = tp_tcache_current;
  if (tp_likely(size <= tp_classes.max_size && tc != NULL)) {
    uint32_t cls = tp_class_of_size(size);
    if (tp_likely(tc->bins[cls].head != NULL)) return tp_rec_alloc_counted(tp_slab_alloc(cls, size), size, TP_MIN_ALIGN);
  }
  return tp_malloc_recorded_slow(size);
}

/* Without the recorder, malloc's fast path is a leaf function. */
TP_API void *malloc(size_t size) {
  if (tp_unlikely(tp_rec_active)) return tp_malloc_recorded(size);
  return tp_malloc(size);
}

TP_API void free(void *p) { tp_free(p); } /* records in its paths when the recorder is on */

TP_API void *calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  bool zeroed = false;
  void *p;
  if (total <= tp_classes.max_size) {
    p = tp_malloc(total);
  } else {
    p = tp_alloc_general(total, TP_MIN_ALIGN, true, &zeroed);
  }
  if (p && !zeroed) memset(p, 0, total);
  if (tp_unlikely(tp_rec_active)) p = tp_record_alloc(p, total, TP_MIN_ALIGN);
  return p;
}

static size_t tp_usable_or_die(void *p, const char *call, tp_ptr_info *info) {
  *info = tp_classify(p);
  if (info->kind < TP_PTR_SLAB) tp_bad_pointer(call, p, info->kind);
  return info->usable;
}

/* From this size a buddy block that realloc cannot grow in place moves out
 * (glibc's default mmap threshold). */
#define TP_REALLOC_MOVE_MIN (128u << 10)

/* *freed_on_record: the old block went back through the free path, which
 * recorded it (the recorder is on); every other way, realloc records it, as a
 * block of *old_usable bytes (0: none to record). */
static void *tp_realloc(void *p, size_t size, bool *freed_on_record, size_t *old_usable) {
  *freed_on_record = tp_rec_active;
  *old_usable = 0;
  if (!p) return tp_malloc(size);
  if (size == 0) {
    tp_free_slow(p, "realloc");
    return NULL;
  }
  *freed_on_record = false;
  if (size > PTRDIFF_MAX - TP_SEGMENT_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  tp_ptr_info info;
  size_t usable = *old_usable = tp_usable_or_die(p, "realloc", &info);
  switch (info.kind) {
    case TP_PTR_SLAB: /* stay when the new size maps to the same class */
      if (size <= usable && tp_class_of_size(size) == info.slab->class_idx) return p;
      break;
    case TP_PTR_BUDDY: {
      tp_heap *h = info.seg->heap;
      size_t need = tp_align_up(size, TP_PAGE_SIZE);
      if (size > tp_classes.max_size && size <= h->buddy_max) {
        if (need <= usable) {
          if (need < usable) tp_heap_shrink_pages(h, info.seg, info.page, need);
          return p;
        }
        if (tp_heap_grow_pages(h, info.seg, info.page, need)) return p;
      }
      /* Past buddy_max, or big and stuck: the block's pages move into a
       * mapping of its own, grown by mremap from then on (glibc's mmapped
       * chunks): nothing is copied, and the process never holds both copies. */
      if (need > usable && (size > h->buddy_max || usable >= TP_REALLOC_MOVE_MIN) && tp_large_reserve()) {
        if (size > h->buddy_max) tp_large_cache_flush(); /* fresh pages come: dead cached ones go first */
        /* Recorded first, as a free is: the move gives p's pages back to the
         * buddy, where another thread may take (and sample) them at once. */
        if (tp_rec_active) tp_rec_free(p, usable), *freed_on_record = true;
        void *q = tp_heap_move_out(h, info.seg, info.page, need);
        if (q) {
          tp_large_adopt(h, q, need, size);
          return q;
        }
        tp_large_unreserve();
      }
      break;
    }
    case TP_PTR_LARGE:
      /* A mapping stays one while it is big (glibc's mmapped chunks do):
       * coming back into the buddy would copy it, and a block that grew out
       * of the buddy once (realloc_grow: 1 MiB -> 1.5 -> 2.3 MiB) would copy
       * at every step until it passed buddy_max. */
      if (size > tp_opt.buddy_max || size >= TP_REALLOC_MOVE_MIN) {
        bool found;
        void *q = tp_large_realloc(p, size, &found);
        if (q) return q;
        if (!found) { /* freed by another thread meanwhile: the program's race */
          errno = ENOMEM;
          return NULL;
        }
        /* mremap moves one mapping only: a block the program split (mlock,
         * mprotect or madvise on part of it) is copied, as glibc does. */
      }
      break;
    default: break;
  }
  void *q = tp_malloc(size);
  if (!q) return NULL; /* (a move-out that failed recorded p freed: the rare cost of recording it early) */
  memcpy(q, p, size < usable ? size : usable);
  if (*freed_on_record) {
    tp_free_classified(p, info, "realloc"); /* recorded before a move that failed */
    return q;
  }
  *freed_on_record = tp_rec_active;
  tp_free(p);
  return q;
}

/* Recorded as a free and an allocation, as heaptrack counts it: the old
 * block's lifetime ends, the new one's starts.  A failed realloc records
 * nothing: the old block lives on (but for a buddy block whose move out
 * failed and whose copy failed too).  (A large block moved by mremap is
 * recorded freed just after the move; its old address could in theory be
 * mapped and sampled by another thread in between, which would lose one
 * lifetime, never corrupt the pool.) */
static TP_NOINLINE void *tp_realloc_recorded(void *p, size_t size) {
  size_t old_usable;
  bool freed_on_record;
  void *q = tp_realloc(p, size, &freed_on_record, &old_usable);
  if (q && p && !freed_on_record && old_usable) tp_rec_free(p, old_usable);
  return tp_record_alloc(q, size, TP_MIN_ALIGN);
}

TP_API void *realloc(void *p, size_t size) {
  if (tp_unlikely(tp_rec_active)) return tp_realloc_recorded(p, size);
  bool freed_on_record;
  size_t old_usable;
  return tp_realloc(p, size, &freed_on_record, &old_usable);
}

TP_API void *reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(p, total);
}

static void *tp_aligned(size_t align, size_t size) {
  void *p;
  bool zeroed;
  if (align <= TP_MIN_ALIGN)
    p = tp_malloc(size);
  else
    p = tp_alloc_general(size, align, false, &zeroed);
  if (tp_unlikely(tp_rec_active)) p = tp_record_alloc(p, size, align < TP_MIN_ALIGN ? TP_MIN_ALIGN : align);
  return p;
}

TP_API int posix_memalign(void **out, size_t align, size_t size) {
  if (!tp_is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = tp_aligned(align, size);
  errno = saved;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

TP_API void *aligned_alloc(size_t align, size_t size) {
  if (!tp_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return tp_aligned(align, size);
}

/* glibc: a non-power-of-two alignment is rounded up; a huge one is EINVAL. */
TP_API void *memalign(size_t align, size_t size) {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (!tp_is_pow2(align)) align = align ? (size_t)1 << (64 - __builtin_clzl(align)) : 1;
  return tp_aligned(align, size);
}

TP_API void *valloc(size_t size) { return tp_aligned(TP_PAGE_SIZE, size); }

TP_API void *pvalloc(size_t size) {
  if (size > SIZE_MAX - TP_PAGE_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  return tp_aligned(TP_PAGE_SIZE, tp_align_up(size ? size : 1, TP_PAGE_SIZE));
}

TP_API size_t malloc_usable_size(void *p) {
  if (!p) return 0;
  tp_ptr_info info;
  return tp_usable_or_die(p, "malloc_usable_size", &info);
}

/* ---- glibc's other names for the same calls ------------------------------- */
/* A program or library that calls these directly (to reach "the real malloc",
 * or through an old binary's cfree) would mix glibc's heap with the pool's:
 * a block of one freed into the other aborts or corrupts.  They are the pool's
 * functions under those names, as in mimalloc — aliases, not calls: a program
 * that defines malloc and forwards to __libc_malloc would otherwise be called
 * back (malloc@plt is its malloc).  TP_NAME_OF: the name after
 * simulate_alloc.c's renames; copy: the target's attributes (malloc,
 * alloc_size...), which GCC wants an alias to have. */
#define TP_NAME_TEXT(f) #f
#define TP_NAME_OF(f) TP_NAME_TEXT(f)
#define TP_SAME_AS(f) __attribute__((alias(TP_NAME_OF(f)), copy(f)))
TP_API void *__libc_malloc(size_t size) TP_SAME_AS(malloc);
TP_API void __libc_free(void *p) TP_SAME_AS(free);
TP_API void *__libc_calloc(size_t count, size_t size) TP_SAME_AS(calloc);
TP_API void *__libc_realloc(void *p, size_t size) TP_SAME_AS(realloc);
TP_API void *__libc_memalign(size_t align, size_t size) TP_SAME_AS(memalign);
TP_API void *__libc_valloc(size_t size) TP_SAME_AS(valloc);
TP_API void *__libc_pvalloc(size_t size) TP_SAME_AS(pvalloc);
TP_API void cfree(void *p) TP_SAME_AS(free);

/* ---- glibc extras a program may call ------------------------------------- */

TP_API int malloc_trim(size_t pad) {
  (void)pad;
  return tierpool_release() > 0;
}

TP_API int mallopt(int param, int value) {
  (void)param, (void)value;
  return 1; /* accepted and ignored: the pool has its own options */
}

TP_API void malloc_stats(void) { tierpool_stats_print(2); }

TP_API struct mallinfo2 mallinfo2(void) {
  tierpool_stats_t s;
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof mi);
  tierpool_stats_get(&s);
  for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) {
    mi.arena += s.tier[t].resident_bytes;
    mi.uordblks += s.tier[t].live_bytes;
  }
  mi.hblkhd = s.tier[TIERPOOL_TIER_LARGE].live_bytes;
  mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
  return mi;
}

TP_API struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = (int)m2.arena;
  mi.uordblks = (int)m2.uordblks;
  mi.fordblks = (int)m2.fordblks;
  mi.hblkhd = (int)m2.hblkhd;
  return mi;
}
