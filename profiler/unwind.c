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
 *   interpreted here for the forms compilers emit at call sites.  Modules
 *   are found with _dl_find_object: lock-free, no allocation, no signals
 *   masked.
 * Every step is checked: the stack pointer grows and stays on the thread's
 * stack, saved slots are aligned.  A walk that fails (a signal frame, a CFI
 * expression, a stack that is not the thread's own: wasmtime's fibers) is
 * done again by libunwind with a per-thread cache, and libgcc for JIT code;
 * both are dlopen'ed RTLD_LOCAL when recording starts: linked, libunwind.so
 * would be loaded into every host and its _Unwind_* would take over
 * exception unwinding. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <unwind.h>

#include "recorder_private.h"
#include "trace_codec.h"
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

/* The capture before the walk: libunwind, and libgcc again through JIT code. */
static TP_NOINLINE uint32_t tp_rec_capture_libunwind(uintptr_t *frames, uint32_t max, bool *truncated) {
  enum { CAP = TP_REC_MAX_DEPTH + 8 };
  void *raw[CAP], *again[CAP];
  int want = (int)max + 8 < CAP ? (int)max + 8 : CAP;
  tp_unw_backtrace_fn unw_backtrace = atomic_load_explicit(&tp_rec_unw_backtrace, memory_order_acquire);
  int n = unw_backtrace ? unw_backtrace(raw, want) : 0;
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

/* ---- reading .eh_frame_hdr and .eh_frame ------------------------------------ */

/* ULEB128 is protobuf's varint: the trace codec's reader.  A bad one moves
 * *p to the end, where every further read stops. */
static uint64_t tp_uw_uleb(const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  int n = tp_trace_varint_get(*p, (size_t)(end - *p), &v);
  *p = n > 0 ? *p + n : end;
  return n > 0 ? v : 0;
}

static int64_t tp_uw_sleb(const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  unsigned shift = 0;
  uint8_t b = 0;
  while (*p < end) {
    b = *(*p)++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) break;
  }
  if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
  return (int64_t)v;
}

/* A DW_EH_PE-encoded pointer: pc-relative (0x10) or relative to data_base
 * (0x30, .eh_frame_hdr's tables); the indirect bit only matters to readers
 * of the value, which this file skips. */
static bool tp_uw_encoded(const uint8_t **p, const uint8_t *end, uint8_t encoding, uintptr_t data_base, uint64_t *out) {
  if (encoding == 0xff) return false; /* DW_EH_PE_omit */
  const uint8_t *field = *p;
  uint64_t v;
  switch (encoding & 0x0f) {
    case 0x00: case 0x04: case 0x0c: /* absptr, udata8, sdata8 */
      if (field + 8 > end) return false;
      memcpy(&v, field, 8), *p = field + 8;
      break;
    case 0x03: case 0x0b: { /* udata4, sdata4 */
      if (field + 4 > end) return false;
      uint32_t u;
      memcpy(&u, field, 4), *p = field + 4;
      v = (encoding & 0x08) ? (uint64_t)(int64_t)(int32_t)u : u;
      break;
    }
    case 0x02: case 0x0a: { /* udata2, sdata2 */
      if (field + 2 > end) return false;
      uint16_t u;
      memcpy(&u, field, 2), *p = field + 2;
      v = (encoding & 0x08) ? (uint64_t)(int64_t)(int16_t)u : u;
      break;
    }
    case 0x01: v = tp_uw_uleb(p, end); break;
    case 0x09: v = (uint64_t)tp_uw_sleb(p, end); break;
    default: return false;
  }
  switch (encoding & 0x70) {
    case 0x00: break;
    case 0x10: v += (uintptr_t)field; break;
    case 0x30: v += data_base; break;
    default: return false;
  }
  *out = v;
  return true;
}

/* No .eh_frame length or offset is trusted to reach past this (1 GiB). */
#define TP_UW_SPAN ((size_t)1 << 30)

typedef struct tp_uw_cie {
  const uint8_t *insns, *end; /* initial instructions */
  uint64_t code_align, ra_column;
  int64_t data_align;
  uint8_t fde_encoding;
  bool augmented, signal_frame;
} tp_uw_cie;

static bool tp_uw_parse_cie(const uint8_t *cie, tp_uw_cie *out) {
  uint32_t length, id;
  memcpy(&length, cie, 4);
  memcpy(&id, cie + 4, 4);
  if (length == 0 || length == 0xffffffffu || id != 0) return false;
  const uint8_t *p = cie + 8, *end = cie + 4 + length;
  uint8_t version = *p++;
  if (version != 1 && version != 3) return false;
  const char *augmentation = (const char *)p;
  while (p < end && *p) p++;
  if (p++ >= end) return false;
  if (augmentation[0] && augmentation[0] != 'z') return false; /* "eh" and other old forms */
  *out = (tp_uw_cie){.end = end, .fde_encoding = 0x00, .augmented = augmentation[0] == 'z'};
  out->code_align = tp_uw_uleb(&p, end);
  out->data_align = tp_uw_sleb(&p, end);
  out->ra_column = version == 1 ? *p++ : tp_uw_uleb(&p, end);
  if (out->augmented) {
    uint64_t data_length = tp_uw_uleb(&p, end);
    const uint8_t *data = p;
    if (data_length > (uint64_t)(end - p)) return false;
    for (const char *a = augmentation + 1; *a; a++) {
      if (*a == 'R') out->fde_encoding = *p++;
      else if (*a == 'L') p++;
      else if (*a == 'S') out->signal_frame = true;
      else if (*a == 'P') {
        uint8_t encoding = *p++;
        uint64_t ignored;
        if (!tp_uw_encoded(&p, end, encoding & 0x7f, 0, &ignored)) return false;
      } else {
        return false;
      }
    }
    p = data + data_length;
  }
  out->insns = p;
  return p <= end;
}

typedef struct tp_uw_fde {
  tp_uw_cie cie;
  uint64_t start, size;
  const uint8_t *insns, *end;
} tp_uw_fde;

static bool tp_uw_parse_fde(const uint8_t *fde, tp_uw_fde *out) {
  uint32_t length, cie_offset;
  memcpy(&length, fde, 4);
  memcpy(&cie_offset, fde + 4, 4);
  if (length == 0 || length >= TP_UW_SPAN || cie_offset == 0 || cie_offset >= TP_UW_SPAN) return false;
  if (!tp_uw_parse_cie(fde + 4 - cie_offset, &out->cie)) return false;
  const uint8_t *p = fde + 8, *end = fde + 4 + length;
  if (!tp_uw_encoded(&p, end, out->cie.fde_encoding, 0, &out->start) ||
      !tp_uw_encoded(&p, end, out->cie.fde_encoding & 0x0f, 0, &out->size))
    return false;
  if (out->cie.augmented) {
    uint64_t data_length = tp_uw_uleb(&p, end);
    if (data_length > (uint64_t)(end - p)) return false;
    p += data_length;
  }
  out->insns = p;
  out->end = end;
  return true;
}

/* The sorted table of .eh_frame_hdr, pairs (function start, FDE) as 4-byte
 * offsets from the header (the form every linker writes), or NULL. */
static const int32_t *tp_uw_fde_table(const uint8_t *hdr, uint64_t *count) {
  if (hdr[0] != 1 || hdr[3] != 0x3b) return NULL;
  const uint8_t *p = hdr + 4, *end = hdr + 4 + 16;
  uint64_t ignored;
  if (!tp_uw_encoded(&p, end, hdr[1], (uintptr_t)hdr, &ignored) ||
      !tp_uw_encoded(&p, end, hdr[2], (uintptr_t)hdr, count) || *count == 0 || *count >= TP_UW_SPAN / 8)
    return NULL;
  return (const int32_t *)p;
}

/* The FDE whose function may hold pc (its range is checked by the caller), or NULL. */
static const uint8_t *tp_uw_find_fde(const uint8_t *hdr, uintptr_t pc) {
  uint64_t count;
  const int32_t *table = tp_uw_fde_table(hdr, &count);
  intptr_t target = (intptr_t)(pc - (uintptr_t)hdr);
  if (!table || target < table[0]) return NULL;
  size_t lo = 0, hi = count; /* the last entry whose start <= target is in [lo, hi) */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (table[2 * mid] <= target) lo = mid;
    else hi = mid;
  }
  return hdr + table[2 * lo + 1];
}

/* ---- the CFA program -------------------------------------------------------- */

enum { TP_UW_RBP = 6, TP_UW_RSP = 7 };
enum { TP_UW_SAME, TP_UW_SAVED, TP_UW_UNDEFINED, TP_UW_OTHER }; /* a register's rule */

typedef struct tp_uw_row {
  int64_t cfa_offset, rbp_offset, ra_offset;
  uint64_t cfa_register; /* UINT64_MAX: an expression */
  uint8_t rbp, ra;
} tp_uw_row;

static void tp_uw_set(tp_uw_row *row, uint64_t column, uint64_t reg, uint8_t how, int64_t offset) {
  if (reg == TP_UW_RBP) row->rbp = how, row->rbp_offset = offset;
  else if (reg == column) row->ra = how, row->ra_offset = offset;
}

static void tp_uw_restore(tp_uw_row *row, const tp_uw_row *initial, uint64_t column, uint64_t reg) {
  if (reg == TP_UW_RBP) row->rbp = initial->rbp, row->rbp_offset = initial->rbp_offset;
  else if (reg == column) row->ra = initial->ra, row->ra_offset = initial->ra_offset;
}

/* Runs a CFA program up to the row of target (UINT64_MAX: to its end);
 * *rbp_based is set when some row defines the CFA from rbp.  False: an
 * instruction this file does not know. */
static bool tp_uw_run(const tp_uw_cie *cie, const uint8_t *p, const uint8_t *end, uint64_t loc, uint64_t target,
                      tp_uw_row *row, const tp_uw_row *initial, bool *rbp_based) {
  enum { STATES = 8 };
  tp_uw_row saved[STATES];
  int depth = 0;
  uint64_t column = cie->ra_column;
  while (p < end) {
    uint8_t op = *p++;
    uint64_t reg, delta = 0;
    switch (op & 0xc0) {
      case 0x40: delta = op & 0x3f; goto advance;
      case 0x80: tp_uw_set(row, column, op & 0x3f, TP_UW_SAVED, (int64_t)tp_uw_uleb(&p, end) * cie->data_align); continue;
      case 0xc0: tp_uw_restore(row, initial, column, op & 0x3f); continue;
      default: break;
    }
    switch (op) {
      case 0x00: continue; /* nop */
      case 0x01: { /* set_loc */
        uint64_t to;
        if (!tp_uw_encoded(&p, end, cie->fde_encoding, 0, &to)) return false;
        if (to > target) return true;
        loc = to;
        continue;
      }
      case 0x02: if (p + 1 > end) return false; delta = p[0], p += 1; goto advance;
      case 0x03: { uint16_t d; if (p + 2 > end) return false; memcpy(&d, p, 2), p += 2, delta = d; goto advance; }
      case 0x04: { uint32_t d; if (p + 4 > end) return false; memcpy(&d, p, 4), p += 4, delta = d; goto advance; }
      case 0x05: reg = tp_uw_uleb(&p, end); tp_uw_set(row, column, reg, TP_UW_SAVED, (int64_t)tp_uw_uleb(&p, end) * cie->data_align); continue;
      case 0x06: tp_uw_restore(row, initial, column, tp_uw_uleb(&p, end)); continue;
      case 0x07: tp_uw_set(row, column, tp_uw_uleb(&p, end), TP_UW_UNDEFINED, 0); continue;
      case 0x08: tp_uw_set(row, column, tp_uw_uleb(&p, end), TP_UW_SAME, 0); continue;
      case 0x09: reg = tp_uw_uleb(&p, end); tp_uw_uleb(&p, end); tp_uw_set(row, column, reg, TP_UW_OTHER, 0); continue;
      case 0x0a: if (depth == STATES) return false; saved[depth++] = *row; continue;
      case 0x0b: if (depth == 0) return false; *row = saved[--depth]; continue;
      case 0x0c: row->cfa_register = tp_uw_uleb(&p, end); row->cfa_offset = (int64_t)tp_uw_uleb(&p, end); break;
      case 0x0d: row->cfa_register = tp_uw_uleb(&p, end); break;
      case 0x0e: row->cfa_offset = (int64_t)tp_uw_uleb(&p, end); continue;
      case 0x0f: { /* def_cfa_expression */
        uint64_t length = tp_uw_uleb(&p, end);
        if (length > (uint64_t)(end - p)) return false;
        p += length;
        row->cfa_register = UINT64_MAX;
        continue;
      }
      case 0x10: case 0x16: { /* expression, val_expression */
        reg = tp_uw_uleb(&p, end);
        uint64_t length = tp_uw_uleb(&p, end);
        if (length > (uint64_t)(end - p)) return false;
        p += length;
        tp_uw_set(row, column, reg, TP_UW_OTHER, 0);
        continue;
      }
      case 0x11: reg = tp_uw_uleb(&p, end); tp_uw_set(row, column, reg, TP_UW_SAVED, tp_uw_sleb(&p, end) * cie->data_align); continue;
      case 0x12: row->cfa_register = tp_uw_uleb(&p, end); row->cfa_offset = tp_uw_sleb(&p, end) * cie->data_align; break;
      case 0x13: row->cfa_offset = tp_uw_sleb(&p, end) * cie->data_align; continue;
      case 0x14: reg = tp_uw_uleb(&p, end); tp_uw_uleb(&p, end); tp_uw_set(row, column, reg, TP_UW_OTHER, 0); continue;
      case 0x15: reg = tp_uw_uleb(&p, end); tp_uw_sleb(&p, end); tp_uw_set(row, column, reg, TP_UW_OTHER, 0); continue;
      case 0x2e: tp_uw_uleb(&p, end); continue; /* GNU_args_size */
      case 0x2f: reg = tp_uw_uleb(&p, end); tp_uw_set(row, column, reg, TP_UW_SAVED, -(int64_t)tp_uw_uleb(&p, end) * cie->data_align); continue;
      default: return false;
    }
    /* the CFA register changed */
    if (row->cfa_register == TP_UW_RBP) *rbp_based = true;
    continue;
  advance:
    loc += delta * cie->code_align;
    if (loc > target) return true;
  }
  return true;
}

/* ---- rules ------------------------------------------------------------------ *
 * A rule says how to find a frame's caller from its pc, sp and rbp.  The
 * table maps return addresses to rules, one 64-bit word each so that threads
 * read and write it without locks: bits 0-2 the kind, 3-22 the CFA offset,
 * 23-29 where rbp is saved (CFA - 8 × slot; 0: not saved), 30-63 a tag of
 * the address's hash (a false match is a wrong rule: the checks stop it). */

enum {
  TP_UW_NONE,    /* empty slot */
  TP_UW_CFA_RSP, /* CFA = sp + offset */
  TP_UW_CFA_RBP, /* CFA = rbp + offset */
  TP_UW_CHAIN,   /* the frame pointer chain, guessed: CFI is tried when it fails */
  TP_UW_END,     /* the outermost frame */
  TP_UW_FAIL,    /* no rule: the walk is left to libunwind */
};
#define TP_UW_OFFSET_MAX ((1u << 20) - 1)
#define TP_UW_SLOT_MAX 127u

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

static uint64_t tp_uw_make(unsigned kind, uint64_t offset, uint64_t slot) {
  return kind | offset << 3 | slot << 23;
}

/* The rule of return address pc from the CFI of its module: TP_UW_NONE when
 * no FDE covers it, TP_UW_FAIL when it is not one of the simple forms. */
static uint64_t tp_uw_rule_from_cfi(const uint8_t *hdr, uintptr_t pc) {
  const uint8_t *fde_bytes = tp_uw_find_fde(hdr, pc - 1);
  tp_uw_fde fde;
  if (!fde_bytes || !tp_uw_parse_fde(fde_bytes, &fde) || pc - 1 - fde.start >= fde.size) return TP_UW_NONE;
  if (fde.cie.signal_frame) return TP_UW_FAIL;
  tp_uw_row initial = {.cfa_register = UINT64_MAX, .rbp = TP_UW_SAME, .ra = TP_UW_SAME}, row;
  bool rbp_based = false;
  if (!tp_uw_run(&fde.cie, fde.cie.insns, fde.cie.end, fde.start, UINT64_MAX, &initial, &initial, &rbp_based))
    return TP_UW_FAIL;
  row = initial;
  if (!tp_uw_run(&fde.cie, fde.insns, fde.end, fde.start, pc - 1, &row, &initial, &rbp_based)) return TP_UW_FAIL;
  if (row.ra == TP_UW_UNDEFINED) return TP_UW_END;
  if (row.ra != TP_UW_SAVED || row.ra_offset != -8) return TP_UW_FAIL;
  if ((row.cfa_register != TP_UW_RSP && row.cfa_register != TP_UW_RBP) || row.cfa_offset < 8 ||
      row.cfa_offset > (int64_t)TP_UW_OFFSET_MAX)
    return TP_UW_FAIL;
  uint64_t slot = 0;
  if (row.rbp == TP_UW_SAVED) {
    if (row.rbp_offset >= 0 || row.rbp_offset % 8 || -row.rbp_offset / 8 > (int64_t)TP_UW_SLOT_MAX) return TP_UW_FAIL;
    slot = (uint64_t)(-row.rbp_offset / 8);
  } else if (row.rbp != TP_UW_SAME) {
    return TP_UW_FAIL;
  }
  return tp_uw_make(row.cfa_register == TP_UW_RSP ? TP_UW_CFA_RSP : TP_UW_CFA_RBP, (uint64_t)row.cfa_offset, slot);
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

/* Whether a module keeps frame pointers, from the CFI of 64 of its functions
 * (eight runs of neighbours: few pages touched): node defines the CFA from
 * rbp in 1/2 to 2/3 of its functions (the others are leaves), code compiled
 * without frame pointers in ~1/40 (those that realign the stack or alloca).
 * A function without one in such a module is found when its frame does not
 * check out, or not at all if it leaves rbp alone: its caller is skipped. */
static bool tp_uw_sample_frame_pointers(const uint8_t *hdr) {
  uint64_t count;
  const int32_t *table = tp_uw_fde_table(hdr, &count);
  if (!table) return false;
  uint32_t sampled = 0, rbp_based = 0;
  for (uint64_t run = 0; run < 8; run++) {
    uint64_t first = count * (2 * run + 1) / 16;
    for (uint64_t i = first; i < count && i < first + 8; i++) {
      tp_uw_fde fde;
      if (!tp_uw_parse_fde(hdr + table[2 * i + 1], &fde)) continue;
      tp_uw_row row = {.cfa_register = UINT64_MAX};
      bool uses_rbp = false;
      if (!tp_uw_run(&fde.cie, fde.insns, fde.end, fde.start, UINT64_MAX, &row, &row, &uses_rbp)) continue;
      sampled++;
      rbp_based += uses_rbp;
    }
  }
#ifdef TP_REC_UNWIND_COMPARE
  char line[96];
  tp_os_write(2, line, (size_t)snprintf(line, sizeof line, "tierpool unwind: module %p: %u of %u functions rbp-based\n",
                                        (const void *)hdr, rbp_based, sampled));
#endif
  return sampled >= 16 && rbp_based * 4 >= sampled;
}

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

/* The end of the current thread's stack above sp, 0 when sp is not on it
 * (a fiber, an alternate signal stack) or it is not known.  A pthread's
 * stack ends at its thread control block (glibc puts it, and the static TLS
 * below it, at the top of the stack block); all of [sp, end) is readable. */
static uintptr_t tp_uw_stack_top(uintptr_t sp) {
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
  dl_iterate_phdr(tp_rec_find_self, (void *)(uintptr_t)tp_rec_stacks_init);
  tp_uw_init();
#ifdef TP_REC_UNWIND_COMPARE /* every capture is compared with libunwind's: it must be there from the start */
  tp_rec_stacks_load_libunwind();
#endif
  return true;
}

/* libunwind, for the stacks the frame walk cannot follow: loaded by the
 * writer thread, off the program's start-up (two libraries to map and
 * relocate); a capture before that falls back to libgcc, or stays empty. */
void tp_rec_stacks_load_libunwind(void) {
  static bool tried;
  if (tried) return; /* a forked child's writer: loaded in the parent */
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

#ifndef TP_REC_UNWIND_COMPARE
uint32_t tp_rec_capture(uintptr_t *frames, uint32_t max, bool *truncated) {
  uint32_t depth;
  if (tp_uw_find_object && tp_uw_walk(frames, max, &depth, truncated) == TP_UW_WALK_DONE) return depth;
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
