/* stacks.c — call stacks: capture, interning, printing.
 *
 * Capture uses libunwind's local unwinder with a per-thread cache (its global
 * cache masks signals on every step), loaded with dlopen(RTLD_LOCAL) when
 * recording starts: linked normally, libunwind.so would be loaded into every
 * host process and its _Unwind_* exports would take over exception unwinding.
 * libunwind walks JIT code by frame pointers but stops at wasmtime's trap
 * handler (setjmp-based, no usable CFI for it); stacks that touch JIT code
 * are walked again with libgcc's unwinder, which knows the unwind info
 * wasmtime registers (jit.c), when the process has it.  Frames inside
 * libtierpool.so itself are dropped: a stack starts at the caller of malloc.
 *
 * Interned stacks live in two append-only arenas reserved once (only the
 * pages used become resident): the writer reads entries below the count it
 * saw under the lock without locking, because entries never move. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unwind.h>

#include "recorder_private.h"

#define TP_REC_STACKS_MAX (1u << 22)              /* distinct stacks per process  */
#define TP_REC_FRAMES_MAX ((uint32_t)1 << 25)     /* frames of all stacks         */
#define TP_REC_BOGUS_PC 0x10000u                  /* below: not a return address */
#define TP_REC_UNWIND_CACHE 8192                  /* libunwind cache entries per thread */

typedef struct tp_rec_stack {
  uint64_t hash;
  uint32_t first; /* index into the frame arena */
  uint16_t depth;
  uint8_t truncated;
} tp_rec_stack;

static tp_rec_stack *tp_rec_stacks;    /* [1 .. count]; 0 means "no stack" */
static uintptr_t *tp_rec_frames;
static _Atomic uint32_t tp_rec_stacks_count;
static uint32_t tp_rec_frames_used;
static uint32_t *tp_rec_stack_index; /* open addressing over stack ids */
static uint32_t tp_rec_index_capacity;

static uintptr_t tp_rec_self_lo, tp_rec_self_hi; /* libtierpool.so's code */
static int (*tp_rec_unw_backtrace)(void **frames, int size);

typedef _Unwind_Reason_Code (*tp_gcc_backtrace_fn)(_Unwind_Trace_Fn, void *);
typedef uintptr_t (*tp_gcc_get_ip_fn)(struct _Unwind_Context *);
static _Atomic(tp_gcc_backtrace_fn) tp_rec_gcc_backtrace;
static tp_gcc_get_ip_fn tp_rec_gcc_get_ip;

static int tp_rec_find_self(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  uintptr_t probe = (uintptr_t)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (probe >= lo && probe < hi) {
      tp_rec_self_lo = lo;
      tp_rec_self_hi = hi;
      return 1;
    }
  }
  return 0;
}

bool tp_rec_stacks_init(void) {
  dl_iterate_phdr(tp_rec_find_self, (void *)(uintptr_t)tp_rec_stacks_init);
  void *unwind = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!unwind) {
    tp_message("profiler: cannot load libunwind.so.8 (%s); not recording", dlerror());
    return false;
  }
  tp_rec_unw_backtrace = (int (*)(void **, int))dlsym(unwind, "unw_backtrace");
  int (*set_caching)(unw_addr_space_t, unw_caching_policy_t) =
      (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(unwind, "_ULx86_64_set_caching_policy");
  unw_addr_space_t *local = dlsym(unwind, "_ULx86_64_local_addr_space");
  if (!tp_rec_unw_backtrace) {
    tp_message("profiler: libunwind.so.8 has no unw_backtrace; not recording");
    return false;
  }
  if (set_caching && local) set_caching(*local, UNW_CACHE_PER_THREAD);
  /* The default cache holds 128 procedures: a compiler's stacks (cranelift,
   * V8) touch thousands, and every miss re-parses DWARF CFI. */
  int (*set_cache_size)(unw_addr_space_t, size_t, int) =
      (int (*)(unw_addr_space_t, size_t, int))dlsym(unwind, "_ULx86_64_set_cache_size");
  if (set_cache_size && local) set_cache_size(*local, TP_REC_UNWIND_CACHE, 0);
  return true;
}

/* Called by jit.c with the libgcc_s that received __register_frame. */
void tp_rec_stacks_use_libgcc(void *libgcc) {
  tp_rec_gcc_get_ip = (tp_gcc_get_ip_fn)dlsym(libgcc, "_Unwind_GetIP");
  if (tp_rec_gcc_get_ip) atomic_store(&tp_rec_gcc_backtrace, (tp_gcc_backtrace_fn)dlsym(libgcc, "_Unwind_Backtrace"));
}

typedef struct tp_rec_walk {
  void **frames;
  int count, cap;
} tp_rec_walk;

static _Unwind_Reason_Code tp_rec_gcc_frame(struct _Unwind_Context *context, void *arg) {
  tp_rec_walk *walk = arg;
  uintptr_t ip = tp_rec_gcc_get_ip(context);
  if (!ip || walk->count == walk->cap) return _URC_END_OF_STACK;
  walk->frames[walk->count++] = (void *)ip;
  return _URC_NO_REASON;
}

/* True when libunwind's walk may have stopped short: it went through JIT
 * code, or it ended on something that is not a return address. */
static bool tp_rec_walk_suspect(void **raw, int n) {
  if (n > 0 && (uintptr_t)raw[n - 1] < TP_REC_BOGUS_PC) return true;
  for (int i = 0; i < n; i++)
    if (tp_rec_in_jit((uintptr_t)raw[i])) return true;
  return false;
}

uint32_t tp_rec_capture(uintptr_t *frames, uint32_t max, bool *truncated) {
  enum { CAP = TP_REC_MAX_DEPTH + 8 };
  void *raw[CAP], *again[CAP];
  int want = (int)max + 8 < CAP ? (int)max + 8 : CAP;
  int n = tp_rec_unw_backtrace ? tp_rec_unw_backtrace(raw, want) : 0;
  tp_gcc_backtrace_fn gcc = atomic_load_explicit(&tp_rec_gcc_backtrace, memory_order_acquire);
  if (gcc && tp_rec_walk_suspect(raw, n)) {
    tp_rec_walk walk = {again, 0, want};
    gcc(tp_rec_gcc_frame, &walk);
    if (walk.count > n || (n && (uintptr_t)raw[n - 1] < TP_REC_BOGUS_PC && walk.count >= n - 1)) {
      memcpy(raw, again, (size_t)walk.count * sizeof *raw);
      n = walk.count;
    }
  }
  while (n > 0 && (uintptr_t)raw[n - 1] < TP_REC_BOGUS_PC) n--;
  int first = 0;
  while (first < n && (uintptr_t)raw[first] >= tp_rec_self_lo && (uintptr_t)raw[first] < tp_rec_self_hi) first++;
  uint32_t depth = 0;
  for (int i = first; i < n && depth < max; i++) frames[depth++] = (uintptr_t)raw[i];
  *truncated = n - first > (int)max || n == want;
  return depth;
}

static uint64_t tp_rec_stack_hash(const uintptr_t *frames, uint32_t depth) {
  uint64_t h = 0xcbf29ce484222325ull ^ depth;
  for (uint32_t i = 0; i < depth; i++) h = (h ^ frames[i]) * 0x100000001b3ull, h ^= h >> 29;
  return h | 1;
}

static bool tp_rec_index_grow(void) {
  uint32_t capacity = tp_rec_index_capacity ? tp_rec_index_capacity * 2 : 4096;
  uint32_t *index = tp_rec_map((size_t)capacity * sizeof *index);
  if (!index) return false;
  uint32_t count = atomic_load_explicit(&tp_rec_stacks_count, memory_order_relaxed);
  for (uint32_t id = 1; id <= count; id++) {
    uint32_t slot = (uint32_t)tp_rec_stacks[id].hash & (capacity - 1);
    while (index[slot]) slot = (slot + 1) & (capacity - 1);
    index[slot] = id;
  }
  if (tp_rec_stack_index) tp_os_unmap(tp_rec_stack_index, (size_t)tp_rec_index_capacity * sizeof *index);
  tp_rec_stack_index = index;
  tp_rec_index_capacity = capacity;
  return true;
}

static tp_lock tp_rec_stack_lock = TP_LOCK_INITIALIZER; /* its own: samples of different threads overlap less */

static uint32_t tp_rec_stack_intern_locked(const uintptr_t *frames, uint32_t depth, bool truncated, uint64_t hash) {
  if (!tp_rec_stacks) {
    tp_rec_stacks = tp_rec_map((size_t)TP_REC_STACKS_MAX * sizeof *tp_rec_stacks);
    tp_rec_frames = tp_rec_map((size_t)TP_REC_FRAMES_MAX * sizeof *tp_rec_frames);
    if (!tp_rec_stacks || !tp_rec_frames) return 0;
  }
  uint32_t count = atomic_load_explicit(&tp_rec_stacks_count, memory_order_relaxed);
  if ((count + 1) * 2 > tp_rec_index_capacity && !tp_rec_index_grow()) return 0;
  uint32_t mask = tp_rec_index_capacity - 1, slot = (uint32_t)hash & mask;
  for (uint32_t id; (id = tp_rec_stack_index[slot]) != 0; slot = (slot + 1) & mask) {
    tp_rec_stack *s = &tp_rec_stacks[id];
    if (s->hash == hash && s->depth == depth && s->truncated == truncated &&
        memcmp(&tp_rec_frames[s->first], frames, depth * sizeof *frames) == 0)
      return id;
  }
  if (count + 1 >= TP_REC_STACKS_MAX || tp_rec_frames_used + depth > TP_REC_FRAMES_MAX) return 0;
  uint32_t id = count + 1;
  memcpy(&tp_rec_frames[tp_rec_frames_used], frames, depth * sizeof *frames);
  tp_rec_stacks[id] = (tp_rec_stack){hash, tp_rec_frames_used, (uint16_t)depth, truncated};
  tp_rec_frames_used += depth;
  tp_rec_stack_index[slot] = id;
  atomic_store_explicit(&tp_rec_stacks_count, id, memory_order_release);
  return id;
}

uint32_t tp_rec_stack_intern(const uintptr_t *frames, uint32_t depth, bool truncated) {
  uint64_t hash = tp_rec_stack_hash(frames, depth);
  tp_lock_acquire(&tp_rec_stack_lock);
  uint32_t id = tp_rec_stack_intern_locked(frames, depth, truncated, hash);
  tp_lock_release(&tp_rec_stack_lock);
  return id;
}

void tp_rec_stacks_lock(void) { tp_lock_acquire(&tp_rec_stack_lock); }
void tp_rec_stacks_unlock(void) { tp_lock_release(&tp_rec_stack_lock); }
void tp_rec_stacks_reinit_lock(void) { tp_lock_init(&tp_rec_stack_lock); }

uint32_t tp_rec_stack_count(void) { return atomic_load_explicit(&tp_rec_stacks_count, memory_order_acquire); }

const uintptr_t *tp_rec_stack_frames(uint32_t id, uint32_t *depth, bool *truncated) {
  tp_rec_stack *s = &tp_rec_stacks[id];
  *depth = s->depth;
  *truncated = s->truncated;
  return &tp_rec_frames[s->first];
}

/* "    #3 0x7f...  function+0x1c (/usr/lib/libfoo.so)", through dladdr. */
void tp_rec_print_stack(int fd, const uintptr_t *frames, uint32_t depth) {
  for (uint32_t i = 0; i < depth; i++) {
    char line[512];
    Dl_info info;
    int n;
    /* A return address points after the call: look up the call itself. */
    if (dladdr((void *)(frames[i] - 1), &info) && info.dli_fname) {
      if (info.dli_sname)
        n = snprintf(line, sizeof line, "    #%u 0x%lx %s+0x%lx (%s)\n", i, (unsigned long)frames[i], info.dli_sname,
                     (unsigned long)(frames[i] - (uintptr_t)info.dli_saddr), info.dli_fname);
      else
        n = snprintf(line, sizeof line, "    #%u 0x%lx (%s+0x%lx)\n", i, (unsigned long)frames[i], info.dli_fname,
                     (unsigned long)(frames[i] - (uintptr_t)info.dli_fbase));
    } else {
      n = snprintf(line, sizeof line, "    #%u 0x%lx\n", i, (unsigned long)frames[i]);
    }
    if (n > 0) tp_os_write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  }
}
