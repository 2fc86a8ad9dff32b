/* unwind.c — stack capture: the return addresses from the caller of malloc
 * (mmap, ...) outwards; the library's own frames are stepped, not recorded.
 *
 * A walk steps each frame by a rule cached per return address (one table for
 * all threads, no lock):
 * - code that keeps frame pointers, the modules whose CFI mostly defines the
 *   CFA from rbp (node) and code outside any module (V8's and wasmtime's JIT
 *   code): the rbp chain;
 * - other modules (libc, libstdc++, Rust programs, this library, which keeps
 *   no frame pointer so that malloc stays a leaf): their .eh_frame CFI,
 *   interpreted by cfi.c for the forms compilers emit at call sites.  Modules
 *   are found with _dl_find_object: lock-free, no allocation, no signals
 *   masked.
 * Every step is checked: the stack pointer grows and stays on the thread's
 * stack, saved slots are aligned.  A walk that fails (a signal frame, a CFI
 * expression, a stack that is not the thread's own: wasmtime's fibers) is
 * done again by libunwind with a per-thread cache, and libgcc for JIT code;
 * both are dlopen'ed RTLD_LOCAL (libunwind when recording starts): linked,
 * libunwind.so would be loaded into every host and its _Unwind_* would take
 * over exception unwinding. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <unwind.h>

#include "cfi.h"
#include "recorder_private.h"
#ifdef TP_REC_UNWIND_COMPARE
#include <stdio.h>
#endif

#define TP_REC_BOGUS_PC 0x10000u      /* below: not a return address */
#define TP_REC_UNWIND_CACHE 8192      /* libunwind cache entries per thread */
#define TP_UW_MODULES 256             /* modules whose kind is remembered */
#define TP_UW_THREAD_STACK_MAX ((uintptr_t)64 << 20)
#define TP_UW_MAIN_STACK_MAX ((uintptr_t)128 << 20) /* mmap leaves at least this below the stack */
#define TP_UW_SELF_FRAMES_MAX 32

static uintptr_t tp_rec_self_lo, tp_rec_self_hi; /* libtierpool.so's code */

/* ---- libunwind and libgcc: the fallback ------------------------------------ */

typedef int (*tp_unw_backtrace_fn)(void **frames, int size);
static _Atomic(tp_unw_backtrace_fn) tp_rec_unw_backtrace; /* NULL until the writer thread loaded it */

typedef _Unwind_Reason_Code (*tp_gcc_backtrace_fn)(_Unwind_Trace_Fn, void *);
typedef uintptr_t (*tp_gcc_get_ip_fn)(struct _Unwind_Context *);
static _Atomic(tp_gcc_backtrace_fn) tp_rec_gcc_backtrace;
static tp_gcc_get_ip_fn tp_rec_gcc_get_ip;

/* The executable segment holding `probe`. */
typedef struct tp_rec_code_range {
  uintptr_t probe, lo, hi;
} tp_rec_code_range;

static int tp_rec_find_code(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  tp_rec_code_range *range = data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (range->probe >= lo && range->probe < hi) {
      range->lo = lo, range->hi = hi;
      return 1;
    }
  }
  return 0;
}

/* libgcc_s's code: an allocation made inside its unwinder (which mallocs
 * holding its own lock) must not be walked by that unwinder again. */
static uintptr_t tp_rec_gcc_lo, tp_rec_gcc_hi;

/* Called by jit.c with the libgcc_s that received __register_frame. */
void tp_rec_stacks_use_libgcc(void *libgcc) {
  tp_rec_gcc_get_ip = (tp_gcc_get_ip_fn)dlsym(libgcc, "_Unwind_GetIP");
  void *backtrace = dlsym(libgcc, "_Unwind_Backtrace");
  tp_rec_code_range range = {(uintptr_t)backtrace, 0, 0};
  if (!tp_rec_gcc_get_ip || !backtrace || !dl_iterate_phdr(tp_rec_find_code, &range)) return;
  tp_rec_gcc_lo = range.lo, tp_rec_gcc_hi = range.hi;
  atomic_store(&tp_rec_gcc_backtrace, (tp_gcc_backtrace_fn)backtrace);
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

/* The allocation was made by libgcc's unwinder itself (a panic's backtrace),
 * maybe holding the lock its walk would take again. */
static bool tp_rec_walk_in_libgcc(void **raw, int n) {
  for (int i = 0; i < n; i++)
    if ((uintptr_t)raw[i] >= tp_rec_gcc_lo && (uintptr_t)raw[i] < tp_rec_gcc_hi) return true;
  return false;
}

/* The capture before the walk: libunwind, and libgcc again through JIT code. */
static TP_NOINLINE uint32_t tp_rec_capture_libunwind(uintptr_t *frames, uint32_t max, bool *truncated) {
  enum { CAP = TP_REC_MAX_DEPTH + 8 };
  void *raw[CAP], *again[CAP];
  int want = (int)max + 8 < CAP ? (int)max + 8 : CAP;
  tp_unw_backtrace_fn unw_backtrace = atomic_load_explicit(&tp_rec_unw_backtrace, memory_order_acquire);
  int n = unw_backtrace ? unw_backtrace(raw, want) : 0;
  tp_gcc_backtrace_fn gcc = atomic_load_explicit(&tp_rec_gcc_backtrace, memory_order_acquire);
  if (gcc && tp_rec_walk_suspect(raw, n) && !tp_rec_walk_in_libgcc(raw, n)) {
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

/* The rule cache: sets of eight slots (a rule and its hash's top 34 bits), a
 * cache line each, chosen by the hash's top bits.  It starts at 4 KiB and
 * doubles, up to 256 KiB, when rules keep pushing each other out: dense, the
 * lines a walk reads stay in cache between samples (one rule per line missed
 * at every frame).  No lock: a lost update costs a recomputation; a replaced
 * table stays mapped for the walks still in it. */
#define TP_UW_SET_SLOTS 8
#define TP_UW_SETS_MIN_LOG2 6
#define TP_UW_SETS_MAX_LOG2 12

typedef struct tp_uw_table {
  uint32_t sets_log2;
  _Atomic uint32_t displaced; /* rules pushed out of full sets */
  uint8_t pad[56];            /* the sets start on a cache line */
  _Atomic uint64_t slot[];
} tp_uw_table;

static _Atomic(tp_uw_table *) tp_uw_rules;
static _Atomic bool tp_uw_growing;

static inline uint64_t tp_uw_hash(uintptr_t pc) { return (uint64_t)pc * 0x9e3779b97f4a7c15ull; }

static tp_uw_table *tp_uw_table_new(uint32_t sets_log2) {
  tp_uw_table *t = tp_rec_map_table(sizeof *t + (sizeof(uint64_t) * TP_UW_SET_SLOTS << sets_log2));
  if (t) t->sets_log2 = sets_log2;
  return t;
}

static inline _Atomic uint64_t *tp_uw_set_of(tp_uw_table *t, uint64_t hash) {
  return &t->slot[(hash >> (64 - t->sets_log2)) * TP_UW_SET_SLOTS];
}

/* The cached rule of hash, TP_UW_NONE when there is none.  Sets fill from
 * their first slot: an empty one ends the search. */
static inline uint64_t tp_uw_rule_cached(tp_uw_table *t, uint64_t hash) {
  _Atomic uint64_t *set = tp_uw_set_of(t, hash);
  for (int i = 0; i < TP_UW_SET_SLOTS; i++) {
    uint64_t entry = atomic_load_explicit(&set[i], memory_order_relaxed);
    if (entry >> 30 == hash >> 30) return entry & ((1u << 30) - 1);
    if (!entry) break;
  }
  return TP_UW_NONE;
}

static void tp_uw_grow(tp_uw_table *old);

/* Stores entry (a rule | the hash's top bits): over the hash's own slot, in
 * the set's first free one, or over another when the set is full. */
static void tp_uw_store(tp_uw_table *t, uint64_t entry) {
  _Atomic uint64_t *set = tp_uw_set_of(t, entry >> 30 << 30);
  int i = 0;
  for (uint64_t e; i < TP_UW_SET_SLOTS && (e = atomic_load_explicit(&set[i], memory_order_relaxed)) != 0; i++)
    if (e >> 30 == entry >> 30) break;
  if (i == TP_UW_SET_SLOTS) {
    uint32_t displaced = atomic_fetch_add_explicit(&t->displaced, 1, memory_order_relaxed);
    i = (int)(displaced % TP_UW_SET_SLOTS);
    if (displaced == 1u << t->sets_log2) tp_uw_grow(t); /* as many as there are sets: twice as many */
  }
  atomic_store_explicit(&set[i], entry, memory_order_relaxed);
}

static TP_NOINLINE void tp_uw_grow(tp_uw_table *old) {
  if (old->sets_log2 >= TP_UW_SETS_MAX_LOG2 || atomic_exchange(&tp_uw_growing, true)) return;
  tp_uw_table *t = old == atomic_load(&tp_uw_rules) ? tp_uw_table_new(old->sets_log2 + 1) : NULL;
  if (t) {
    for (size_t i = 0; i < (size_t)TP_UW_SET_SLOTS << old->sets_log2; i++) {
      uint64_t entry = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
      if (entry) tp_uw_store(t, entry);
    }
    atomic_store_explicit(&tp_uw_rules, t, memory_order_release);
  }
  atomic_store(&tp_uw_growing, false);
}

/* ---- modules ------------------------------------------------------------------ */

/* glibc >= 2.35; looked up at start so that older ones still load the library. */
typedef int (*tp_uw_find_object_fn)(void *pc, struct dl_find_object *result);
static tp_uw_find_object_fn tp_uw_find_object;

/* Append-only without a lock (a fork may come at any time): a slot is
 * claimed, filled, then published by its start address. */
typedef struct tp_uw_module {
  _Atomic uintptr_t start;
  const void *eh_frame_hdr;
  bool keeps_frame_pointers;
} tp_uw_module;

static tp_uw_module tp_uw_modules[TP_UW_MODULES];
static _Atomic uint32_t tp_uw_module_count;

static bool tp_uw_module_keeps_frame_pointers(const struct dl_find_object *object) {
  uintptr_t start = (uintptr_t)object->dlfo_map_start;
  uint32_t count = atomic_load_explicit(&tp_uw_module_count, memory_order_relaxed);
  for (uint32_t i = 0; i < count && i < TP_UW_MODULES; i++) {
    tp_uw_module *m = &tp_uw_modules[i];
    if (atomic_load_explicit(&m->start, memory_order_acquire) == start && m->eh_frame_hdr == object->dlfo_eh_frame)
      return m->keeps_frame_pointers;
  }
  bool keeps = tp_uw_sample_frame_pointers(object->dlfo_eh_frame);
  uint32_t slot = atomic_fetch_add_explicit(&tp_uw_module_count, 1, memory_order_relaxed);
  if (slot < TP_UW_MODULES) { /* else: sampled again at each new return address of the module */
    tp_uw_modules[slot].keeps_frame_pointers = keeps;
    tp_uw_modules[slot].eh_frame_hdr = object->dlfo_eh_frame;
    atomic_store_explicit(&tp_uw_modules[slot].start, start, memory_order_release);
  }
  return keeps;
}

/* The rule of a return address from its CFI alone (TP_UW_FAIL: none). */
static uint64_t tp_uw_cfi_rule(uintptr_t pc) {
  struct dl_find_object object;
  if (tp_uw_find_object((void *)(pc - 1), &object) != 0 || !object.dlfo_eh_frame) return TP_UW_FAIL;
  uint64_t rule = tp_uw_rule_from_cfi(object.dlfo_eh_frame, pc);
  return rule == TP_UW_NONE ? TP_UW_FAIL : rule;
}

static TP_NOINLINE uint64_t tp_uw_rule_slow(tp_uw_table *table, uintptr_t pc, uint64_t hash) {
  struct dl_find_object object;
  uint64_t rule;
  if (tp_uw_find_object((void *)(pc - 1), &object) != 0 || !object.dlfo_eh_frame ||
      tp_uw_module_keeps_frame_pointers(&object)) {
    rule = TP_UW_CHAIN; /* also JIT code (V8's, wasmtime's): in no module */
  } else {
    rule = tp_uw_rule_from_cfi(object.dlfo_eh_frame, pc);
    if (rule == TP_UW_NONE) rule = TP_UW_CHAIN; /* code without CFI: V8's builtins in node, assembly */
  }
  tp_uw_store(table, rule | (hash >> 30) << 30);
  return rule;
}

static inline uint64_t tp_uw_rule(tp_uw_table *table, uintptr_t pc) {
  uint64_t hash = tp_uw_hash(pc), rule = tp_uw_rule_cached(table, hash);
  return rule != TP_UW_NONE ? rule : tp_uw_rule_slow(table, pc, hash);
}

/* ---- the walk --------------------------------------------------------------- */

static uintptr_t tp_uw_stack_end;     /* __libc_stack_end: the main thread's frames are below */
static uintptr_t tp_uw_main_stack_max; /* how far below it the main thread's stack may reach */
static __thread int8_t tp_uw_main_thread; /* 0: not known yet, 1: on the initial stack, -1: a pthread */

/* The thread's signal stack, [lo, hi); 0, 0 if none (sigaltstack). */
static __thread uintptr_t tp_uw_signal_stack_lo, tp_uw_signal_stack_hi;

void tp_rec_note_signal_stack(uintptr_t base, size_t size, bool disabled) {
  tp_uw_signal_stack_lo = disabled ? 0 : base;
  tp_uw_signal_stack_hi = disabled ? 0 : base + size;
}

/* The end of the stack sp is on, 0 when it is not known (a fiber).  A walk
 * on the thread's signal stack keeps to it: the frames the signal
 * interrupted are the fallback's (libunwind steps signal frames), and a
 * signal stack mapped just below the thread's own would otherwise pass for
 * part of it, up to the guard page between.  A pthread's stack ends at its
 * thread control block (glibc puts it, and the static TLS below it, at the
 * top of the stack block); all of [sp, end) is readable.  (A fiber within
 * reach below the thread's stack can still pass for part of it:
 * pthread_getattr_np would tell the block's start, but cannot be asked from
 * here: glibc holds the thread's lock while it allocates, Rust's std calls it
 * as every thread starts, and a sample taken there deadlocked on that lock.) */
static uintptr_t tp_uw_stack_top(uintptr_t sp) {
  if (sp - tp_uw_signal_stack_lo < tp_uw_signal_stack_hi - tp_uw_signal_stack_lo) return tp_uw_signal_stack_hi;
  if (!tp_uw_main_thread) tp_uw_main_thread = tp_os_gettid() == getpid() ? 1 : -1;
  if (tp_uw_main_thread > 0)
    return sp < tp_uw_stack_end && tp_uw_stack_end - sp <= tp_uw_main_stack_max ? tp_uw_stack_end : 0;
  uintptr_t tcb;
  __asm__("mov %%fs:0, %0" : "=r"(tcb));
  return sp < tcb && tcb - sp <= TP_UW_THREAD_STACK_MAX ? tcb : 0;
}

typedef struct tp_uw_frame {
  uintptr_t pc, sp, fp;
} tp_uw_frame;

static inline bool tp_uw_load(uintptr_t address, uintptr_t lo, uintptr_t hi, uintptr_t *out) {
  if (address < lo || address > hi - 8 || (address & 7)) return false;
  *out = *(const uintptr_t *)address;
  return true;
}

/* One step to the caller; false when the rule does not check out. */
static inline bool tp_uw_step(tp_uw_frame *f, uint64_t rule, uintptr_t hi) {
  uintptr_t cfa, base = (rule & 7) == TP_UW_CFA_RSP ? f->sp : f->fp;
  uint64_t slot = rule >> 23 & TP_UW_SLOT_MAX;
  if ((rule & 7) == TP_UW_CHAIN) cfa = f->fp + 16, slot = 2;
  else cfa = base + (rule >> 3 & TP_UW_OFFSET_MAX);
  uintptr_t pc, fp = f->fp;
  if (cfa <= f->sp || cfa < base || !tp_uw_load(cfa - 8, f->sp, hi, &pc) ||
      (slot && !tp_uw_load(cfa - 8 * slot, f->sp, hi, &fp)))
    return false;
  *f = (tp_uw_frame){pc, cfa, fp};
  return true;
}

typedef enum { TP_UW_WALK_DONE, TP_UW_WALK_FAILED } tp_uw_walk_result;
#ifdef TP_REC_UNWIND_COMPARE /* why the last walk of the thread failed, and where */
static __thread const char *tp_uw_failed_why;
static __thread uintptr_t tp_uw_failed_pc;
#define TP_UW_FAILED(why, pc) (tp_uw_failed_why = (why), tp_uw_failed_pc = (pc), TP_UW_WALK_FAILED)
#else
#define TP_UW_FAILED(why, pc) TP_UW_WALK_FAILED
#endif

/* The thread's last complete walk, each frame with its stack address (the
 * caller's sp; the frame's return address is stored just below it).  Samples
 * come mostly from the same deep call paths: a walk that reaches one of these
 * frames (same pc at the same sp) is inside that same activation, and the
 * frames above are the remembered ones as long as the return addresses at
 * their stack slots are still there, one load each instead of a rule lookup
 * and a step. */
typedef struct tp_uw_last_walk {
  uint32_t depth; /* 0: none (the last walk hit the depth cap) */
  uintptr_t pc[TP_REC_MAX_DEPTH], sp[TP_REC_MAX_DEPTH];
} tp_uw_last_walk;
static __thread tp_uw_last_walk tp_uw_last;

/* The remembered frames above frame `from` still stand: stack slots within
 * [lo, hi) holding the same return addresses. */
static bool tp_uw_last_holds(uint32_t from, uintptr_t lo, uintptr_t hi) {
  for (uint32_t i = from + 1; i < tp_uw_last.depth; i++) {
    uintptr_t slot = tp_uw_last.sp[i] - 8;
    if (slot < lo || slot > hi - 8 || *(const uintptr_t *)slot != tp_uw_last.pc[i]) return false;
  }
  return true;
}

/* Walks from the caller of this function; the frames before the first one
 * outside the library are not recorded. */
static TP_NOINLINE tp_uw_walk_result tp_uw_walk(uintptr_t *frames, uint32_t max, uint32_t *depth, bool *truncated) {
  const uintptr_t *own = __builtin_frame_address(0); /* this function keeps rbp: saved rbp, return address */
  tp_uw_frame f = {own[1], (uintptr_t)(own + 2), own[0]};
  uintptr_t hi = tp_uw_stack_top(f.sp), lo = f.sp;
  if (!hi) return TP_UW_FAILED("not on the thread's stack", f.pc);
  tp_uw_table *table = atomic_load_explicit(&tp_uw_rules, memory_order_acquire);
  uintptr_t sps[TP_REC_MAX_DEPTH];
  uint32_t n = 0, skipped = 0, last = 0;
  if (max > TP_REC_MAX_DEPTH) max = TP_REC_MAX_DEPTH;
  *truncated = false;
  for (;;) {
    if (f.pc < TP_REC_BOGUS_PC) break; /* the end, as libunwind's walks end */
    if (f.pc >= f.sp && f.pc < hi) return TP_UW_FAILED("a return address on the stack", f.pc); /* a stack address: the chain is lost */
    if (n == 0 && f.pc - tp_rec_self_lo < tp_rec_self_hi - tp_rec_self_lo) {
      if (++skipped > TP_UW_SELF_FRAMES_MAX) return TP_UW_FAILED("too many own frames", f.pc);
    } else {
      if (n == max) {
        *truncated = true;
        break;
      }
      sps[n] = f.sp;
      frames[n++] = f.pc;
      while (last < tp_uw_last.depth && tp_uw_last.sp[last] < f.sp) last++;
      if (last < tp_uw_last.depth && tp_uw_last.sp[last] == f.sp && tp_uw_last.pc[last] == f.pc &&
          tp_uw_last_holds(last, lo, hi)) {
        uint32_t above = tp_uw_last.depth - last - 1;
        if (above > max - n) above = max - n, *truncated = true;
        memcpy(frames + n, tp_uw_last.pc + last + 1, above * sizeof *frames);
        memcpy(sps + n, tp_uw_last.sp + last + 1, above * sizeof *sps);
        n += above;
        break;
      }
    }
    uint64_t rule = tp_uw_rule(table, f.pc);
    unsigned kind = rule & 7;
    if (kind == TP_UW_END) break;
    if (kind == TP_UW_FAIL) return TP_UW_FAILED("no rule", f.pc);
    if (tp_uw_step(&f, rule, hi)) continue;
    if (kind != TP_UW_CHAIN) return TP_UW_FAILED("CFI step out of bounds", f.pc);
    /* A guessed frame pointer that does not check out: this function does
     * not keep one; its CFI says how to step it, from now on. */
    rule = tp_uw_cfi_rule(f.pc);
    kind = rule & 7;
    if (kind == TP_UW_FAIL) return TP_UW_FAILED("frame pointer out of bounds, no CFI", f.pc); /* the chain stays its rule */
    tp_uw_store(table, rule | (tp_uw_hash(f.pc) >> 30) << 30);
    if (kind == TP_UW_END) break;
    if (!tp_uw_step(&f, rule, hi)) return TP_UW_FAILED("frame pointer and CFI step out of bounds", f.pc);
  }
  tp_uw_last.depth = *truncated ? 0 : n;
  memcpy(tp_uw_last.pc, frames, tp_uw_last.depth * sizeof *frames);
  memcpy(tp_uw_last.sp, sps, tp_uw_last.depth * sizeof *sps);
  *depth = n;
  return TP_UW_WALK_DONE;
}

/* ---- the entry points -------------------------------------------------------- */

/* The walk needs _dl_find_object, the bounds of the main thread's stack and
 * the rule table; without them every capture goes to libunwind. */
static void tp_uw_init(void) {
  void **stack_end = dlsym(RTLD_DEFAULT, "__libc_stack_end");
  struct rlimit limit;
  tp_uw_main_stack_max = TP_UW_MAIN_STACK_MAX;
  if (getrlimit(RLIMIT_STACK, &limit) == 0 && limit.rlim_cur < tp_uw_main_stack_max)
    tp_uw_main_stack_max = limit.rlim_cur;
  tp_uw_stack_end = stack_end ? (uintptr_t)*stack_end : 0;
  if (!tp_uw_rules) tp_uw_rules = tp_uw_table_new(TP_UW_SETS_MIN_LOG2);
#ifndef TP_REC_UNWIND_LIBUNWIND_ONLY /* a build for measurements: every capture as before the walk */
  if (tp_uw_rules && tp_uw_stack_end)
    tp_uw_find_object = (tp_uw_find_object_fn)dlsym(RTLD_DEFAULT, "_dl_find_object");
#endif
}

bool tp_rec_stacks_init(void) {
  tp_rec_code_range self = {(uintptr_t)tp_rec_stacks_init, 0, 0};
  dl_iterate_phdr(tp_rec_find_code, &self);
  tp_rec_self_lo = self.lo, tp_rec_self_hi = self.hi;
  tp_uw_init();
#ifdef TP_REC_UNWIND_COMPARE /* every capture is compared with libunwind's: it must be there from the start */
  tp_rec_stacks_load_libunwind();
#endif
  return true;
}

/* libunwind, for the stacks the frame walk cannot follow: loaded in the
 * library's constructor (0.25 ms: two libraries to map and relocate), before
 * any helper thread exists.  Loaded by the writer instead, it held the
 * loader's lock for that time while the program ran: a child made then
 * without fork's handlers (_Fork, a raw clone) inherited the lock taken and
 * hung in exit (_dl_fini waits for it). */
void tp_rec_stacks_load_libunwind(void) {
  static bool tried;
  if (tried) return; /* TP_REC_UNWIND_COMPARE: loaded by tp_rec_stacks_init already */
  tried = true;
  void *unwind = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!unwind) {
    tp_message("profiler: cannot load libunwind.so.8 (%s); stacks the frame walk cannot follow stay empty",
               dlerror());
    return;
  }
  tp_unw_backtrace_fn unw_backtrace = (tp_unw_backtrace_fn)dlsym(unwind, "unw_backtrace");
  int (*set_caching)(unw_addr_space_t, unw_caching_policy_t) =
      (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(unwind, "_ULx86_64_set_caching_policy");
  unw_addr_space_t *local = dlsym(unwind, "_ULx86_64_local_addr_space");
  if (!unw_backtrace) {
    tp_message("profiler: libunwind.so.8 has no unw_backtrace; stacks the frame walk cannot follow stay empty");
    return;
  }
  if (set_caching && local) set_caching(*local, UNW_CACHE_PER_THREAD);
  /* The default cache holds 128 procedures: a compiler's stacks (cranelift,
   * V8) touch thousands, and every miss re-parses DWARF CFI. */
  int (*set_cache_size)(unw_addr_space_t, size_t, int) =
      (int (*)(unw_addr_space_t, size_t, int))dlsym(unwind, "_ULx86_64_set_cache_size");
  if (set_cache_size && local) set_cache_size(*local, TP_REC_UNWIND_CACHE, 0);
  atomic_store_explicit(&tp_rec_unw_backtrace, unw_backtrace, memory_order_release);
}

/* libunwind's capture takes several KiB of stack (its cursor and context,
 * two frame arrays, the DWARF step): on a signal stack with less than this
 * left below sp — an 8 KiB SIGSTKSZ one, say, where a handler's mprotect
 * is recorded — it would run off the end.  Such a capture stays empty. */
#define TP_UW_LIBUNWIND_ROOM (24u << 10)

static bool tp_uw_signal_stack_short(uintptr_t sp, size_t room) {
  return sp - tp_uw_signal_stack_lo < tp_uw_signal_stack_hi - tp_uw_signal_stack_lo &&
         sp - tp_uw_signal_stack_lo < room;
}

static bool tp_uw_signal_stack_tight(uintptr_t sp) { return tp_uw_signal_stack_short(sp, TP_UW_LIBUNWIND_ROOM); }

bool tp_rec_signal_stack_short(size_t room) {
  return tp_uw_signal_stack_short((uintptr_t)__builtin_frame_address(0), room);
}

#ifndef TP_REC_UNWIND_COMPARE
uint32_t tp_rec_capture(uintptr_t *frames, uint32_t max, bool *truncated) {
  uint32_t depth;
  if (tp_uw_find_object && tp_uw_walk(frames, max, &depth, truncated) == TP_UW_WALK_DONE) return depth;
  if (tp_uw_signal_stack_tight((uintptr_t)__builtin_frame_address(0))) {
    *truncated = true;
    return 0;
  }
  return tp_rec_capture_libunwind(frames, max, truncated);
}
#else
/* A debug build's check (-Dc_args=-DTP_REC_UNWIND_COMPARE): every capture
 * is done both ways and the stacks compared; counts, and the first stacks
 * that differ, go to stderr (at exit: the counts). */
static _Atomic uint64_t tp_uw_count[7];
static const char *const tp_uw_count_names[7] = {
    "captures", "walk failed (libunwind used)", "same stack", "walk longer, libunwind's a prefix",
    "walk shorter, a prefix of libunwind's", "different", "same frames, truncated differs"};
static _Atomic uint32_t tp_uw_printed;

uint32_t tp_rec_capture(uintptr_t *frames, uint32_t max, bool *truncated) {
  if (tp_uw_signal_stack_tight((uintptr_t)__builtin_frame_address(0))) { /* as below */
    *truncated = true;
    return 0;
  }
  uintptr_t old[TP_REC_MAX_DEPTH];
  bool old_truncated;
  uint32_t depth, old_depth = tp_rec_capture_libunwind(old, max, &old_truncated);
  atomic_fetch_add(&tp_uw_count[0], 1);
  if (!tp_uw_find_object || tp_uw_walk(frames, max, &depth, truncated) != TP_UW_WALK_DONE) {
    atomic_fetch_add(&tp_uw_count[1], 1);
    if (atomic_fetch_add(&tp_uw_printed, 1) < 40) {
      char line[160];
      int n = snprintf(line, sizeof line, "tierpool unwind: walk failed at %#lx: %s; libunwind (%u):\n",
                       (unsigned long)tp_uw_failed_pc, tp_uw_failed_why, old_depth);
      tp_os_write(2, line, (size_t)n);
      tp_rec_print_stack(2, old, old_depth);
    }
    memcpy(frames, old, old_depth * sizeof *old);
    *truncated = old_truncated;
    return old_depth;
  }
  uint32_t common = 0;
  while (common < depth && common < old_depth && frames[common] == old[common]) common++;
  int verdict = common == depth && common == old_depth ? (*truncated == old_truncated ? 2 : 6)
                : common == old_depth ? 3 : common == depth ? 4 : 5;
  atomic_fetch_add(&tp_uw_count[verdict], 1);
  if (verdict != 2 && atomic_fetch_add(&tp_uw_printed, 1) < 40) {
    char line[160];
    int n = snprintf(line, sizeof line, "tierpool unwind: %s at frame %u; walk (%u%s):\n", tp_uw_count_names[verdict],
                     common, depth, *truncated ? ", truncated" : "");
    tp_os_write(2, line, (size_t)n);
    tp_rec_print_stack(2, frames, depth);
    n = snprintf(line, sizeof line, "tierpool unwind: libunwind (%u%s):\n", old_depth, old_truncated ? ", truncated" : "");
    tp_os_write(2, line, (size_t)n);
    tp_rec_print_stack(2, old, old_depth);
  }
  return depth;
}

__attribute__((destructor)) static void tp_uw_report(void) {
  if (!atomic_load(&tp_uw_count[0])) return;
  char line[512];
  int n = snprintf(line, sizeof line, "tierpool unwind [%d]:", (int)getpid());
  for (int i = 0; i < 7; i++)
    n += snprintf(line + n, sizeof line - (size_t)n, " %s %llu;", tp_uw_count_names[i],
                  (unsigned long long)atomic_load(&tp_uw_count[i]));
  line[n++] = '\n';
  tp_os_write(2, line, (size_t)n);
}
#endif
