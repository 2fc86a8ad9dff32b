/* internal.h — cross-file prototypes, the option table, and the hot inline
 * helpers (pointer → segment → page, size → class, thread cache). */
#ifndef TP_INTERNAL_H
#define TP_INTERNAL_H

#include <errno.h>
#include <sys/types.h>
#include <time.h>

#include "types.h"

#define TP_API __attribute__((visibility("default")))
#define TP_NOINLINE __attribute__((noinline))
#define TP_COLD __attribute__((cold, noinline))

/* ---- options (options.c) ------------------------------------------------- */
/* One row per option: kind, key, default, minimum, maximum, help.  The
 * environment name is TIERPOOL_<KEY in upper case>; config files use the key. */
/* 16-byte steps to 128, then 8 classes per doubling to 8K (each step 1/8 of
 * its power of two: internal waste at most 11%; 4-7% measured on wasmtime,
 * node and python), then 4 per doubling to 32K: 64 classes. */
#define TP_DEFAULT_CLASSES                                                        \
  "16,32,48,64,80,96,112,128,144,160,176,192,208,224,240,256,288,320,352,384,"    \
  "416,448,480,512,576,640,704,768,832,896,960,1024,1152,1280,1408,1536,1664,"    \
  "1792,1920,2048,2304,2560,2816,3072,3328,3584,3840,4096,4608,5120,5632,6144,"   \
  "6656,7168,7680,8192,10240,12288,14336,16384,20480,24576,28672,32768"

#define TP_OPTION_LIST(X)                                                                   \
  X(CLASSES, size_classes, TP_DEFAULT_CLASSES, 0, 0,                                         \
    "slab size classes in bytes: ascending multiples of 16, at most 64, up to 64K")          \
  X(SIZE, buddy_max, "4M", 64 << 10, TP_BUDDY_MAX_LIMIT,                                     \
    "largest request served by the buddy tier; larger ones are mapped directly")            \
  X(MS, coalesce_delay_ms, "50", 0, 3600000,                                                 \
    "free buddy blocks wait this long before they are merged (unless space is needed)")     \
  X(MS, large_cache_ms, "1000", 0, 3600000,                                                  \
    "how long a freed large mapping is kept for reuse before munmap")                       \
  X(SIZE, large_cache_max, "64M", 0, (uint64_t)1 << 40,                                      \
    "bytes of freed large mappings kept at most")                                           \
  X(BOOL, thp, "off", 0, 1, "advise transparent huge pages for large blocks >= thp_min")    \
  X(SIZE, thp_min, "1M", TP_PAGE_SIZE, (uint64_t)1 << 40,                                    \
    "smallest large block given MADV_HUGEPAGE when thp = on")                               \
  X(RATIO, release_threshold, "0.70", 0, 1,                                                  \
    "return free pages when live/resident stays below this (0.50 for bursty work)")         \
  X(MS, release_delay_ms, "10", 0, 3600000,                                                  \
    "how long utilisation must stay low before pages are returned")                         \
  X(TEXT, release, "eager", 0, 0,                                                            \
    "how free pages go back to the OS: eager, idle (only after release_delay_ms) or off")     \
  X(SIZE, grow_chunk, "1M", TP_PAGE_SIZE, TP_SEGMENT_SIZE / 2,                               \
    "step by which a heap's buddy area grows")                                              \
  X(SIZE, tcache_bytes, "16K", 0, 16 << 20,                                                  \
    "bytes of blocks a thread may cache per size class (larger classes: none)")              \
  X(BOOL, background_thread, "off", 0, 1,                                                    \
    "run maintenance (coalescing, release, cache expiry) in a thread every 100 ms")         \
  X(BOOL, stats, "off", 0, 1, "print statistics to stderr at exit")                         \
  X(BOOL, profile, "off", 0, 1, "record an allocation profile (tierpool record sets this)")  \
  X(RATIO, sample_rate, "0.01", 0, 1, "probability that an allocation is sampled with its stack") \
  X(SIZE, sample_bytes, "0", 0, (uint64_t)1 << 40,                                           \
    "sample by bytes instead: mean bytes between samples (0: sample by count)")             \
  X(PATH, trace, "./tierpool-%e-%p.tpt", 0, 0, "trace file; %p: pid, %e: executable name") \
  X(COUNT, stack_depth, "64", 1, 64, "deepest call stack recorded, in frames")              \
  X(COUNT, sample_seed, "0", 0, UINT64_MAX, "seed of the sampling (0: random per process)") \
  X(BOOL, validate, "off", 0, 1, "track every allocation: leak report and bad frees with stacks") \
  X(TEXT, tenant, "default", 0, 0, "tenant of every thread that no other rule names")            \
  X(TEXT, tenant_threads, "", 0, 0,                                                           \
    "thread-name rules: pattern=tenant, ... (glob patterns, first match wins)")              \
  X(SIZE, limit, "0", 0, (uint64_t)1 << 50, "bytes the whole process may hold (0: no limit)")  \
  X(SIZE, overflow_limit, "0", 0, (uint64_t)1 << 50,                                          \
    "shared bytes tenants may draw beyond their reserves (0: up to limit)")                   \
  X(TEXT, on_limit, "fail", 0, 0, "over a budget: fail (NULL, ENOMEM) or abort")              \
  X(SIZE, node_budget, "0", 0, (uint64_t)1 << 50,                                             \
    "overflow bytes shared by every process with the same node_budget_name (0: off)")         \
  X(TEXT, node_budget_name, "", 0, 0, "name of the node-wide budget (a POSIX shm segment)")    \
  X(TEXT, node_budget_mode, "0600", 0, 0, "permissions of the node budget's segment, octal")  \
  X(TEXT, prom_file, "", 0, 0, "Prometheus text file kept current (textfile collector); %p: pid")      \
  X(MS, prom_interval_ms, "10000", 100, 3600000, "how often prom_file is rewritten")

enum tp_option_kind { TP_OPT_CLASSES, TP_OPT_SIZE, TP_OPT_MS, TP_OPT_COUNT, TP_OPT_BOOL, TP_OPT_RATIO, TP_OPT_PATH, TP_OPT_TEXT };
#define TP_OPTION_PATH_MAX 256

typedef struct tp_options {
#define TP_OPTION_FIELD(kind, key, def, lo, hi, help) TP_OPTION_CTYPE_##kind key TP_OPTION_DIM_##kind;
#define TP_OPTION_DIM_CLASSES
#define TP_OPTION_DIM_SIZE
#define TP_OPTION_DIM_MS
#define TP_OPTION_DIM_COUNT
#define TP_OPTION_DIM_BOOL
#define TP_OPTION_DIM_RATIO
#define TP_OPTION_DIM_PATH [TP_OPTION_PATH_MAX]
#define TP_OPTION_DIM_TEXT [TP_OPTION_PATH_MAX]
#define TP_OPTION_CTYPE_PATH char
#define TP_OPTION_CTYPE_TEXT char
#define TP_OPTION_CTYPE_CLASSES uint32_t /* class count; the table is tp_classes */
#define TP_OPTION_CTYPE_SIZE uint64_t
#define TP_OPTION_CTYPE_MS uint64_t
#define TP_OPTION_CTYPE_COUNT uint64_t
#define TP_OPTION_CTYPE_BOOL bool
#define TP_OPTION_CTYPE_RATIO double
  TP_OPTION_LIST(TP_OPTION_FIELD)
#undef TP_OPTION_FIELD
} tp_options;

extern tp_options tp_opt;
extern tp_class_table tp_classes;

/* The `release` option: eager — dips, collapses, idle purges, and purges
 * before the pool or the program maps memory; idle — dips (a collapse is
 * one) and idle purges, each after the release delay; off — free pages stay
 * (budget sheds aside). */
enum tp_release_policy { TP_RELEASE_EAGER, TP_RELEASE_IDLE, TP_RELEASE_OFF };
extern enum tp_release_policy tp_release_policy;

void tp_options_init(void);
/* Parses one value into the option named key; source names it in diagnostics.
 * Returns false (after one line on stderr) when key or value is bad. */
bool tp_option_set(const char *key, size_t key_len, const char *value, size_t value_len,
                   const char *source);
bool tp_classes_parse(tp_class_table *table, const char *text, size_t len, const char **why);
bool tp_parse_size(const char *s, size_t len, uint64_t *out); /* "4M", "512K", "1048576" */
bool tp_parse_bool(const char *s, size_t len, bool *out);     /* on/off, true/false, 1/0 */
size_t tp_options_format(char *buf, size_t cap); /* "key = value" lines */

/* ---- OS (os.c): raw system calls, never through our own interposers ----- */
void *tp_os_map(size_t size);                  /* NULL on failure */
void *tp_os_map_aligned(size_t size, size_t align);
void *tp_os_map_at_hint(size_t size, size_t align); /* aligned; hint must be aligned too */
void tp_os_unmap(void *p, size_t size);
void tp_os_populate(void *p, size_t size);     /* resident and writable now (fresh zero pages) */
void *tp_os_remap(void *p, size_t old_size, size_t new_size); /* NULL on failure */
void *tp_os_move_pages(void *p, size_t size);  /* old range stays, zeroed */
bool tp_os_move_pages_to(void *from, size_t size, void *to);
void tp_os_release(void *p, size_t size);      /* MADV_DONTNEED; zeroed by hand if refused */
extern atomic_bool tp_os_memory_locked;          /* the program called mlockall (mmap.c) */
extern atomic_bool tp_os_release_refused;       /* memory locked: nothing goes back to the OS */
static inline bool tp_os_can_release(void) { return !atomic_load_explicit(&tp_os_release_refused, memory_order_relaxed); }
void tp_os_advise_huge(void *p, size_t size, bool huge);
bool tp_os_make_plain(void *p, size_t size); /* read-write, forked, dumped, as mmap made it */
bool tp_os_mincore(void *p, size_t size, unsigned char *vec);
/* The kernel could read path as a file name (a C string in readable memory,
 * under PATH_MAX), whether or not the file exists.  errno is left alone. */
bool tp_os_name_readable(const char *path);
uint64_t tp_os_now_ms(void);
void tp_os_write(int fd, const char *s, size_t n);
pid_t tp_os_gettid(void);
size_t tp_os_read_file(const char *path, char *buf, size_t cap); /* 0 on error */
long tp_os_read_regular_file(const char *path, char *buf, size_t cap, bool *whole); /* -EINVAL: not regular */
#define TP_OS_FD_FLOOR 1000 /* the library's own descriptors sit at or above, where the limit allows */
int tp_os_running_threads(void); /* the process's threads not yet exited; -1 if unknown */
/* /proc/self files kept open (high) and read with pread: the bytes read at
 * offset (cap - 1 at most, NUL-terminated), 0 at the end, or -errno (-EBUSY:
 * another thread is reading it). */
typedef enum { TP_OS_PROC_STAT, TP_OS_PROC_STATM, TP_OS_PROC_MAPS, TP_OS_PROC_COUNT } tp_os_proc_file;
long tp_os_proc_read(tp_os_proc_file which, char *buf, size_t cap, uint64_t offset);
void tp_os_proc_prepare(void); /* all of them open, before a helper starts */
void tp_os_after_fork_child(void);
int tp_os_fd_out_of_the_way(int fd); /* a close-on-exec copy from 1000 up; fd itself under a lower limit or none free */
bool tp_os_fd_is(int fd, dev_t dev, ino_t ino); /* fd still names that file (not one the program opened since) */
const char *tp_os_error_text(int err); /* strerror's English text: strerror may load a locale, and allocate */
extern tierpool_os_stats_t tp_os_stats; /* updated with relaxed atomics */
#define tp_stat_inc(field) __atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED)

/* Helper threads (helpers.c): the background thread and the recorder's writer.
 * Started by tp_helper_spawn (detached, every signal blocked, named), each
 * calls tp_helper_started first and tp_helper_stopping last, sleeps with
 * tp_helper_sleep (false: end now, the helpers are being paused), and calls
 * tp_helper_check on its beat: that ends the process (exit(0), as glibc does
 * when the last thread exits) once only helpers are left running.
 * tp_helpers_pause ends them all and waits until the kernel counts none
 * (false if there were none); tp_helpers_resume starts them again. */
bool tp_helper_spawn(void *(*main)(void *), const char *name); /* name: 15 bytes at most */
void tp_helper_started(void *name); /* main's argument: the name given to tp_helper_spawn */
void tp_helper_stopping(void);
bool tp_helper_sleep(uint32_t ms);
void tp_helpers_wake(void); /* cuts the helpers' sleeps short (a recorder's ring is filling) */
void tp_helper_check(void);
bool tp_helpers_pause(void);
void tp_helpers_resume(void);
void tp_helpers_after_fork_child(void);
void tp_background_start(void); /* if background_thread = on */

/* Diagnostics: one line "tierpool: ..." on stderr; tp_fatal also aborts. */
void tp_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
TP_COLD __attribute__((noreturn, format(printf, 1, 2))) void tp_fatal(const char *fmt, ...);

/* ---- locks --------------------------------------------------------------- */
/* Adaptive mutexes spin briefly before sleeping: the pool's critical sections
 * are short, so most contention ends without a futex system call. */
#define TP_LOCK_INITIALIZER PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
/* How many of the library's locks this thread holds, or is taking or
 * dropping (counted before the lock and after the unlock, so that a signal
 * handler never sees fewer than are held): an exit() from a handler that
 * stopped the thread inside the pool must not take them again
 * (tp_locks_held_here).  Reset in a fork child, whose locks are new. */
extern __thread uint32_t tp_locks_held;
static inline void tp_lock_init(tp_lock *l) { *l = (tp_lock)TP_LOCK_INITIALIZER; }
static inline void tp_lock_acquire(tp_lock *l) {
  tp_locks_held++;
  pthread_mutex_lock(l);
}
static inline bool tp_lock_try(tp_lock *l) {
  tp_locks_held++;
  if (pthread_mutex_trylock(l) == 0) return true;
  tp_locks_held--;
  return false;
}
/* Waits for l at most `seconds`: a caller that may be inside the pool
 * itself (a signal handler) must not wait for ever. */
static inline bool tp_lock_timed(tp_lock *l, time_t seconds) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += seconds;
  tp_locks_held++;
  int r;
  while ((r = pthread_mutex_timedlock(l, &until)) == EINTR) continue;
  if (r == 0) return true;
  tp_locks_held--;
  return false;
}
static inline void tp_lock_release(tp_lock *l) {
  pthread_mutex_unlock(l);
  tp_locks_held--;
}
static inline bool tp_locks_held_here(void) { return tp_locks_held != 0; }

/* What a pointer is, found through the segment bitmap, the page map and the
 * large table.  Anything else is not ours. */
typedef enum { TP_PTR_INVALID, TP_PTR_DOUBLE_FREE, TP_PTR_SLAB, TP_PTR_BUDDY, TP_PTR_LARGE } tp_ptr_kind;

typedef struct tp_ptr_info {
  tp_ptr_kind kind;
  tp_segment *seg;
  tp_span *slab;
  uint32_t page;
  size_t usable;
  bool sampled; /* a slab block the recorder marked sampled */
} tp_ptr_info;

tp_ptr_info tp_classify(void *p); /* segment.c */

/* ---- segments (segment.c) ------------------------------------------------ */
extern _Atomic uint64_t tp_segment_bitmap[TP_SEGMENT_MAP_BITS / 64];
tp_segment *tp_segment_create(tp_heap *heap);
uintptr_t tp_segment_in_range(uintptr_t lo, uintptr_t hi); /* a segment's address, or 0 */

static inline tp_segment *tp_segment_of(const void *p) {
  return (tp_segment *)((uintptr_t)p & ~(TP_SEGMENT_SIZE - 1));
}
static inline bool tp_segment_is_ours(const void *p) {
  uintptr_t index = (uintptr_t)p >> TP_SEGMENT_SHIFT;
  if (tp_unlikely(index >= TP_SEGMENT_MAP_BITS)) return false;
  uint64_t word = atomic_load_explicit(&tp_segment_bitmap[index >> 6], memory_order_relaxed);
  return (word >> (index & 63)) & 1;
}
static inline uint32_t tp_page_index(const tp_segment *seg, const void *p) {
  return (uint32_t)(((uintptr_t)p - (uintptr_t)seg) >> TP_PAGE_SHIFT);
}
static inline void *tp_page_address(tp_segment *seg, uint32_t page) {
  return (char *)seg + ((size_t)page << TP_PAGE_SHIFT);
}

/* Span slots (heap->buddy_lock held): the last freed first, else a new one.
 * Never exhausted: live descriptors cover disjoint pages of the segment. */
static inline tp_span *tp_span_alloc(tp_segment *seg, uint32_t first) {
  tp_span *span = seg->span_free;
  if (span) seg->span_free = span->next;
  else span = &seg->spans[seg->span_top++];
  span->first = first;
  return span;
}
static inline void tp_span_free(tp_segment *seg, tp_span *span) {
  span->next = seg->span_free;
  seg->span_free = span;
}
static inline uint32_t tp_span_slot(tp_segment *seg, tp_span *span) { return (uint32_t)(span - seg->spans); }

/* ---- buddy (buddy.c); callers hold heap->buddy_lock ---------------------- */
/* Takes `pages` contiguous pages aligned to 2^align_order pages.  *zeroed is
 * set when every page is fresh from the OS.  NULL when the heap cannot grow. */
void *tp_buddy_take(tp_heap *h, uint32_t pages, uint32_t align_order, bool *zeroed);
void tp_buddy_give(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t pages);
void tp_buddy_give_fresh(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t pages);
void tp_buddy_coalesce(tp_heap *h);
size_t tp_buddy_release_free(tp_heap *h, uint64_t target_resident_pages);
size_t tp_buddy_purge(tp_heap *h, uint64_t now, uint64_t idle_ms, uint32_t min_order, bool host, size_t most);
bool tp_buddy_extend(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t pages, uint32_t new_pages);
uint32_t tp_order_for_pages(uint32_t pages);

/* ---- heap (heap.c) ------------------------------------------------------- */
extern tp_heap tp_main_heap;
void tp_heap_init(tp_heap *h, const char *name);
void *tp_heap_alloc_pages(tp_heap *h, size_t size, size_t align, size_t requested, bool want_zero,
                          bool *zeroed);
void tp_heap_free_pages(tp_heap *h, tp_segment *seg, uint32_t first, void *p, const char *call);
bool tp_heap_shrink_pages(tp_heap *h, tp_segment *seg, uint32_t first, size_t new_size);
bool tp_heap_grow_pages(tp_heap *h, tp_segment *seg, uint32_t first, size_t new_size);
void *tp_heap_move_out(tp_heap *h, tp_segment *seg, uint32_t first, size_t new_size);
void tp_heap_maintain(tp_heap *h, uint64_t now_ms); /* buddy_lock held */
void tp_heap_tick(tp_heap *h);                      /* buddy_lock held */
void tp_heap_tick_try(tp_heap *h);                  /* buddy_lock not held */
void tp_heap_purge_before_growth(tp_heap *h, size_t growth);
void tp_heap_host_grows(size_t growth);             /* the host maps or unprotects memory */
size_t tp_heap_release_all(tp_heap *h);
uint64_t tp_heap_resident_bytes(tp_heap *h);
bool tp_heap_charge(tp_heap *h, uint64_t bytes, bool buddy_locked); /* fresh pages; frees room first */
void tp_heap_residency(tp_heap *h, uint64_t out[4]);
void tp_heap_lock_all(tp_heap *h);
void tp_heap_unlock_all(tp_heap *h);
void tp_heap_reinit_locks(tp_heap *h);

/* ---- slabs (slab.c) ------------------------------------------------------ */
void tp_classes_finish(tp_class_table *t);
uint32_t tp_central_fill(tp_heap *h, uint32_t cls, void **head, uint32_t want);
void tp_central_return(tp_heap *h, uint32_t cls, void *head, uint32_t count);
size_t tp_central_release_spares(tp_heap *h);
void tp_central_retire_spares(tp_heap *h, uint64_t now_ms, uint64_t idle_ms); /* buddy_lock held */
size_t tp_central_purge_blocks(tp_heap *h, uint64_t now_ms, uint64_t idle_ms);   /* buddy_lock held */
/* Sampled slab blocks stay where they are, marked in their segment's bitmap
 * and counted in their slab's `samples`: the recorded free fast path leaves
 * only the blocks of slabs with a count to the slow path, which asks the bit.
 * A buddy or large block's free asks the recorder anyway (segment.c). */
bool tp_slab_mark_sampled(void *p);                    /* the recorder samples p; false: not a slab block */
bool tp_slab_unmark_sampled(tp_segment *seg, tp_span *slab, void *p); /* p is freed: was it marked? */
void tp_slab_clear_sampled(tp_segment *seg, tp_span *slab); /* a slab goes back: marks left by unrecorded frees */

static inline bool tp_slab_has_samples(const tp_span *slab) {
  return __atomic_load_n(&slab->samples, __ATOMIC_RELAXED) != 0;
}
/* Block p's word in its segment's bitmap, and its bit there. */
static inline uint64_t *tp_slab_sampled_word(tp_segment *seg, const void *p, uint64_t *bit) {
  uintptr_t granule = ((uintptr_t)p & (TP_SEGMENT_SIZE - 1)) / TP_MIN_ALIGN;
  *bit = (uint64_t)1 << (granule % 64);
  return &seg->sampled[granule / 64];
}
static inline bool tp_slab_sampled_bit(tp_segment *seg, const void *p) {
  uint64_t bit, *word = tp_slab_sampled_word(seg, p, &bit);
  return (__atomic_load_n(word, __ATOMIC_RELAXED) & bit) != 0;
}
/* Block p of this slab is marked: the bit is read only when the slab counts
 * samples, so that the bitmap's pages stay untouched elsewhere. */
static inline bool tp_slab_block_marked(tp_segment *seg, const tp_span *slab, const void *p) {
  return tp_slab_has_samples(slab) && tp_slab_sampled_bit(seg, p);
}

/* Random key behind the mark in word 1 of every free slab block: a block that
 * carries its mark when freed is a double free. */
extern uintptr_t tp_free_key;

/* A free block's mark is the key mixed with the block's own address, so that
 * a mark left in freed memory and copied elsewhere by a program (bytes it never
 * wrote, from pages the buddy handed out again) never matches at the block it
 * lands in: only a block freed twice carries its own. */
static inline void *tp_free_mark(const void *block) { return (void *)(tp_free_key ^ (uintptr_t)block); }

static inline uint32_t tp_class_of_size(size_t size) {
  return tp_classes.class_of[(size + 15) >> 4];
}

/* ---- thread caches (tcache.c) -------------------------------------------- */
extern __thread tp_tcache *tp_tcache_current;
tp_tcache *tp_tcache_create(void); /* NULL while the thread is exiting */
void tp_tcache_flush_bin(tp_tcache *tc, uint32_t cls, uint32_t keep);
void tp_tcache_overflow(tp_tcache *tc, uint32_t cls); /* the bin is over its max */
void tp_tcache_scavenge(tp_tcache *tc);             /* on a slow path: idle bins go back */
void tp_tcache_flush_all(tp_tcache *tc);
void tp_tcache_stats_add(uint64_t *class_allocs, uint64_t *class_frees, uint64_t *requested);
uint64_t tp_tcache_cached_bytes(uint32_t *caches);
void tp_tcache_registry_lock(void);
void tp_tcache_registry_unlock(void);
void tp_tcache_after_fork_child(void);
void tp_tcache_init_key(void);
void tp_tcache_count_uncached(tp_heap *h, uint32_t cls, size_t requested);
void tp_tcache_switch_heap(tp_tcache *tc, tp_heap *h);
void tp_tcache_count_remote_free(tp_heap *h, uint32_t cls);
void tp_tcache_stats_add_heap(tp_heap *h, uint64_t *class_allocs, uint64_t *class_frees, uint64_t *requested);

/* ---- large blocks (large.c) ---------------------------------------------- */
void *tp_large_alloc(tp_heap *h, size_t size, size_t align, size_t requested, bool want_zero, bool *zeroed);
bool tp_large_reserve(void);                          /* a table slot kept for tp_large_adopt */
void tp_large_unreserve(void);                        /* ... given back: nothing was adopted */
void tp_large_adopt(tp_heap *h, void *base, size_t size, size_t requested);
bool tp_large_free(void *p); /* false: not a large block */
size_t tp_large_usable_size(const void *p); /* 0: not a large block */
void *tp_large_realloc(void *p, size_t size, bool *found);
void tp_large_maintain(uint64_t now_ms);
size_t tp_large_cache_flush(void);
void tp_large_stats(tierpool_tier_stats_t *out);
uint32_t tp_large_owner(const void *p); /* tenant index of a live large block (0: unknown) */
uintptr_t tp_large_in_range(uintptr_t lo, uintptr_t hi); /* a large mapping's address, or 0 */
void tp_large_lock(void);
void tp_large_unlock(void);
void tp_large_reinit_lock(void);

/* ---- tenants (tenant.c) -------------------------------------------------- */
#define TP_MAX_TENANTS 64
bool tp_tenant_option_set(const char *key, size_t key_len, const char *value, size_t value_len,
                          const char *source);       /* tenant.NAME.{reserve,limit,isolated} */
void tp_tenant_options_check(void);                 /* after every option source */
void tp_tenant_init_default(void);                  /* tp_main_heap is tenant 0 */
tp_heap *tp_tenant_thread_heap(void);               /* the heap a new cache serves */
tp_heap *tp_current_heap(void);                     /* the calling thread's tenant heap */
/* Budgets: charging fails (false, after counting a limit hit) when a limit or
 * the overflow would be passed; with on_limit = abort it does not return. */
bool tp_budget_charge(tp_heap *h, uint64_t bytes);
bool tp_budget_charge_optional(tp_heap *h, uint64_t bytes); /* refused quietly, never aborts */
void tp_budget_uncharge(tp_heap *h, uint64_t bytes);
void tp_budget_settle_pool(tp_heap *h);             /* buddy lock held: charge = resident pages */
bool tp_budget_busy_here(void);                     /* this thread is amid a budget update */
extern __thread size_t tp_request_bytes;            /* the request being served (diagnostics) */
void tp_tenant_fork_lock(bool budget);              /* false: the registry's; true: the budget's */
void tp_tenant_fork_unlock(void);
void tp_tenant_fork_child(void);
uint32_t tp_tenant_count(void);
tp_heap *tp_tenant_heap(uint32_t index);                 /* NULL beyond the count */
void tp_tenant_stats(uint32_t index, tierpool_tenant_stats_t *out); /* index < count */
const char *tp_tenant_name(uint32_t index); /* no lock: a tenant's name is set once, as it is made */
uint32_t tp_tenant_index_of(const void *p);              /* owner of a live block */
uint32_t tp_tenant_current_index(void);                  /* the calling thread's */

/* ---- node-wide budget (node_budget.c) ------------------------------------ *
 * Overflow bytes shared by all processes that open the same name, kept in a
 * POSIX shared-memory segment; a process that dies (even by SIGKILL) gives its
 * share back, found by pid liveness when another process touches the segment.
 * None of these allocate. */
bool tp_node_budget_open(const char *name, uint64_t total_bytes, unsigned mode);
bool tp_node_budget_take(uint64_t bytes);  /* false: the node budget is spent */
void tp_node_budget_give(uint64_t bytes);
uint64_t tp_node_budget_held(void);        /* this process's share */
extern atomic_bool tp_node_budget_share_lost; /* another process reclaimed it: the heaps' node_held is void */
uint64_t tp_node_budget_used(void);        /* every live process's shares */
uint64_t tp_node_budget_total(void);       /* the segment's (its creator's) total */
void tp_node_budget_after_fork_child(void); /* the child starts with no share */

/* ---- Prometheus text file (prom.c) ---------------------------------------- */
bool tp_prom_write(const char *path);      /* whole file, atomically (rename) */
void tp_prom_init(void);                   /* a relative prom_file made absolute */
void tp_prom_tick(uint64_t now_ms);        /* rewrites prom_file every prom_interval_ms */

/* ---- statistics (stats.c) ------------------------------------------------ */
void tp_stats_collect(tierpool_stats_t *out);
void tp_heap_tenant_stats(tp_heap *h, tierpool_tenant_stats_t *out); /* tiers and live of one heap */

/* ---- initialisation (init.c) --------------------------------------------- */
extern _Atomic int tp_init_state; /* 0 none, 1 running, 2 done */
void tp_init_slow(void);
static inline void tp_ensure_init(void) {
  if (tp_unlikely(atomic_load_explicit(&tp_init_state, memory_order_acquire) != 2))
    tp_init_slow();
}

/* ---- small helpers ------------------------------------------------------- */
static inline size_t tp_align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline bool tp_is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline uint64_t tp_max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

#endif /* TP_INTERNAL_H */
