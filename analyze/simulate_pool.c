/* simulate_pool.c — the pool instance `tierpool simulate` replays into: the
 * pool's core (preload/, linked as libtierpool.so links it) and its API
 * (simulate_alloc.c), with what a preloaded process would add replaced:
 *  - initialisation (init.c): options from the config file, no fork
 *    handlers, no thread-exit key, no constructor — nothing runs until a
 *    child process of `tierpool simulate` configures it;
 *  - the recorder: never on;
 *  - the clock: the pool's tp_os_now_ms is wrapped at link time
 *    (-Wl,--wrap=tp_os_now_ms) and follows the trace's times, so coalescing,
 *    release and cache delays act as they would have during the recorded run.
 * Single-threaded: the replay runs in one thread, with one thread cache. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "recorder_fast.h"
#include "simulate.h"

/* The pool's API as simulate_alloc.c names it. */
void *tp_sim_malloc(size_t size);
void tp_sim_free(void *p);
int tp_sim_posix_memalign(void **out, size_t align, size_t size);
size_t tp_sim_malloc_usable_size(void *p);

/* ---- the clock ----------------------------------------------------------- */

/* The simulated run starts as if the machine had been up a while, as the
 * real clock would be: time-based rules see no artificial "just booted". */
#define SIM_CLOCK_BASE_MS 1000000u
#define SIM_BACKGROUND_PERIOD_MS 100 /* init.c's background thread sleeps this long */

static uint64_t sim_clock_ms = SIM_CLOCK_BASE_MS;
static uint64_t sim_next_background_ms = SIM_CLOCK_BASE_MS + SIM_BACKGROUND_PERIOD_MS;

uint64_t __wrap_tp_os_now_ms(void);
uint64_t __wrap_tp_os_now_ms(void) { return sim_clock_ms; }

void sim_pool_set_clock(uint64_t ms) {
  ms += SIM_CLOCK_BASE_MS;
  if (ms <= sim_clock_ms) return;
  sim_clock_ms = ms;
  if (!tp_opt.background_thread || ms < sim_next_background_ms) return;
  /* What the background thread does on each wake-up (init.c). */
  tp_lock_acquire(&tp_main_heap.buddy_lock);
  tp_heap_maintain(&tp_main_heap, ms);
  tp_lock_release(&tp_main_heap.buddy_lock);
  tp_large_maintain(ms);
  sim_next_background_ms = ms - ms % SIM_BACKGROUND_PERIOD_MS + SIM_BACKGROUND_PERIOD_MS;
}

/* ---- what init.c and the recorder provide in libtierpool.so -------------- */

bool tp_rec_active; /* false: the simulated pool records nothing */
void tp_rec_free(void *p, size_t usable) { (void)p, (void)usable; }
void tp_rec_free_slab(uint32_t cls) { (void)cls; }
/* The inlined fast paths' state (recorder_fast.h), never used: tp_rec_active is false. */
__thread tp_rec_thread tp_rec_self;
bool tp_rec_by_bytes;
void *tp_rec_alloc_then(void *p, size_t size, size_t align) { return (void)size, (void)align, p; }
void *tp_rec_sample_then(void *p, size_t size, size_t align) { return (void)size, (void)align, p; }
void tp_rec_bad_free(const char *call, void *p, const char *what) { (void)call, (void)p, (void)what; }
void tp_rec_thread_exit(void) {}

_Atomic int tp_init_state;

/* init.c's first phase: options, classes, free key, the main heap.  The free
 * key is fixed rather than random, so that replays repeat exactly. */
void tp_init_slow(void) {
  if (atomic_load(&tp_init_state) == 2) return;
  tp_options_init();
  tp_classes_finish(&tp_classes);
  tp_free_key = (uintptr_t)0x5a17e5a17e5a17e5ULL | 1;
  tp_heap_init(&tp_main_heap, "simulated");
  atomic_store_explicit(&tp_init_state, 2, memory_order_release);
}

TP_API size_t tierpool_release(void) {
  tp_ensure_init();
  if (tp_tcache_current) tp_tcache_flush_all(tp_tcache_current);
  return tp_heap_release_all(&tp_main_heap) + tp_large_cache_flush();
}

/* ---- configuration ------------------------------------------------------- */

/* Only the config file speaks: TIERPOOL_* variables of the environment
 * (which would override it in a preloaded process) are dropped. */
static void sim_drop_pool_environment(void) {
  extern char **environ;
  for (bool again = true; again;) {
    again = false;
    for (char **e = environ; e && *e; e++) {
      if (strncmp(*e, "TIERPOOL_", 9) != 0) continue;
      char name[128];
      snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
      unsetenv(name);
      again = true; /* environ changed under us */
      break;
    }
  }
}

/* The parser's first diagnostic as "PATH:LINE: what", without the pool's
 * "tierpool: " prefix and its "; using the default" outcome (here a bad
 * config is an error, not a fallback). */
static void sim_diagnostic(const char *text, const char *path, char *err, size_t errlen) {
  size_t len = strcspn(text, "\n");
  if (strncmp(text, "tierpool: ", 10) == 0) text += 10, len -= 10;
  if (strncmp(text, "TIERPOOL_CONFIG=", 16) == 0) text += 16, len -= 16;
  static const char *const outcomes[] = {"; using ", " (ignored)"};
  for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
    const char *cut = strstr(text, outcomes[i]);
    if (cut && (size_t)(cut - text) < len) len = (size_t)(cut - text);
  }
  bool named = strncmp(text, path, strlen(path)) == 0;
  snprintf(err, errlen, "%s%s%.*s", named ? "" : path, named ? "" : ": ", (int)len, text);
}

/* An empty file (/dev/null) is the defaults, where the pool's loader would
 * call it unreadable. */
static bool sim_file_is_empty(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false; /* the loader reports it */
  char c;
  ssize_t n = read(fd, &c, 1);
  close(fd);
  return n == 0;
}

bool sim_pool_configure(const char *config_path, char *err, size_t errlen) {
  sim_drop_pool_environment();
  if (!sim_file_is_empty(config_path) && setenv("TIERPOOL_CONFIG", config_path, 1) != 0) {
    snprintf(err, errlen, "%s: %s", config_path, strerror(errno));
    return false;
  }
  /* The parser writes its diagnostics to fd 2: catch them in a memory file. */
  int log = memfd_create("tierpool-simulate-config", MFD_CLOEXEC);
  int saved = log >= 0 ? dup(2) : -1;
  if (saved < 0 || dup2(log, 2) < 0) {
    snprintf(err, errlen, "%s: cannot capture the parser's messages: %s", config_path, strerror(errno));
    return false;
  }
  tp_init_slow();
  dup2(saved, 2);
  close(saved);
  char text[1024];
  ssize_t n = pread(log, text, sizeof text - 1, 0);
  close(log);
  text[n > 0 ? n : 0] = '\0';
  if (text[0]) {
    sim_diagnostic(text, config_path, err, errlen);
    return false;
  }
  return true;
}

/* ---- the API and the measurements ---------------------------------------- */

void *sim_pool_alloc(uint64_t size, uint64_t align) {
  if (size > SIZE_MAX) return NULL;
  if (align <= TP_MIN_ALIGN) return tp_sim_malloc((size_t)size);
  void *p = NULL;
  return tp_sim_posix_memalign(&p, (size_t)align, (size_t)size) == 0 ? p : NULL;
}

void sim_pool_free(void *p) { tp_sim_free(p); }

uint64_t sim_pool_usable(void *p) { return tp_sim_malloc_usable_size(p); }

void sim_pool_touch(void *p, uint64_t bytes) {
  volatile char *c = p;
  c[0] = 0;
  for (uint64_t at = TP_PAGE_SIZE - ((uintptr_t)p & (TP_PAGE_SIZE - 1)); at < bytes; at += TP_PAGE_SIZE) c[at] = 0;
}

uint64_t sim_pool_resident(void) {
  uint64_t heap[4] = {0}; /* headers, slabs, buddy blocks, free blocks */
  tp_heap_residency(&tp_main_heap, heap);
  tierpool_tier_stats_t large;
  tp_large_stats(&large);
  return heap[1] + heap[2] + heap[3] + large.resident_bytes;
}

uint64_t sim_pool_accounted(void) {
  tp_heap *h = &tp_main_heap; /* frontier_pages leaves the segment headers out */
  uint64_t heap = (h->frontier_pages - h->released_pages) << TP_PAGE_SHIFT;
  tierpool_tier_stats_t large;
  tp_large_stats(&large);
  return heap + large.resident_bytes;
}

void sim_pool_totals(struct sim_pool_totals *out) {
  tierpool_stats_t s;
  tierpool_stats_get(&s);
  memset(out, 0, sizeof *out);
  for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) {
    out->allocs += s.tier[t].allocs;
    out->frees += s.tier[t].frees;
    out->bytes_requested += s.tier[t].bytes_requested;
    out->bytes_allocated += s.tier[t].bytes_allocated;
    out->live_bytes += s.tier[t].live_bytes;
  }
}
