/* jit.c — code ranges of JIT compilers.  wasmtime hands the unwind info of
 * the code it generates to libgcc's __register_frame; intercepting it (and
 * passing it on) tells the trace where generated code lives, so the analyzer
 * can mark those frames [jit] rather than guess. */
#include <dlfcn.h>
#include <string.h>

#include "recorder_private.h"

typedef void (*tp_frame_fn)(void *);

/* Code ranges registered now, for the unwinder's "did this stack go through
 * JIT code" test: a few at a time (one per wasmtime module). */
#define TP_REC_JIT_SLOTS 256
#define TP_REC_JIT_CLAIMED ((uintptr_t)1) /* an end being filled in */
static struct {
  _Atomic uintptr_t start, end;
} tp_rec_jit_ranges[TP_REC_JIT_SLOTS];

bool tp_rec_in_jit(uintptr_t pc) {
  for (int i = 0; i < TP_REC_JIT_SLOTS; i++) {
    uintptr_t end = atomic_load_explicit(&tp_rec_jit_ranges[i].end, memory_order_acquire);
    if (end > TP_REC_JIT_CLAIMED && pc < end && pc >= atomic_load_explicit(&tp_rec_jit_ranges[i].start, memory_order_relaxed))
      return true;
  }
  return false;
}

/* A slot is claimed by moving its end from 0 to 1 (two threads registering
 * at once take two slots), then filled start first: a reader that sees the
 * end sees the start that goes with it. */
static void tp_rec_jit_ranges_update(uintptr_t start, uintptr_t end, bool removed) {
  for (int i = 0; i < TP_REC_JIT_SLOTS; i++) {
    _Atomic uintptr_t *slot_end = &tp_rec_jit_ranges[i].end;
    if (removed) {
      uintptr_t expected = end; /* a failed exchange writes the slot's value here */
      if (atomic_load(slot_end) == end && atomic_load(&tp_rec_jit_ranges[i].start) == start &&
          atomic_compare_exchange_strong(slot_end, &expected, 0))
        return;
    } else {
      uintptr_t empty = 0;
      if (atomic_load(slot_end) == 0 && atomic_compare_exchange_strong(slot_end, &empty, TP_REC_JIT_CLAIMED)) {
        atomic_store(&tp_rec_jit_ranges[i].start, start);
        atomic_store_explicit(slot_end, end, memory_order_release);
        return;
      }
    }
  }
}

/* The next definition (libgcc_s's); it also gives the stack capture libgcc's
 * unwinder, which can read the unwind info registered there. */
static tp_frame_fn tp_rec_next_frame_fn(const char *name) {
  void *fn = dlsym(RTLD_NEXT, name), *libgcc = NULL;
  Dl_info info;
  if (fn && dladdr(fn, &info) && info.dli_fname) libgcc = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!fn) { /* the caller found us by dlsym, before libgcc_s was loaded */
    libgcc = dlopen("libgcc_s.so.1", RTLD_LAZY);
    if (libgcc) fn = dlsym(libgcc, name);
  }
  if (libgcc && tp_rec_active) tp_rec_stacks_use_libgcc(libgcc);
  return (tp_frame_fn)fn;
}

static uint64_t tp_rec_uleb(const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  return v;
}

/* A DW_EH_PE-encoded value: format in the low nibble, pc-relative (0x10) or absolute. */
static bool tp_rec_read_encoded(const uint8_t **p, const uint8_t *end, uint8_t encoding, uint64_t *out) {
  const uint8_t *field = *p;
  int64_t v = 0;
  size_t size;
  switch (encoding & 0x0f) {
    case 0x00: case 0x04: case 0x0c: size = 8; break;
    case 0x03: case 0x0b: size = 4; break;
    case 0x02: case 0x0a: size = 2; break;
    case 0x01: case 0x09: *out = tp_rec_uleb(p, end); return true; /* rare here: no sign extension needed */
    default: return false;
  }
  if (field + size > end) return false;
  if (size == 8) memcpy(&v, field, 8);
  if (size == 4) { int32_t x; uint32_t u; memcpy(&x, field, 4); memcpy(&u, field, 4); v = (encoding & 0x08) ? x : (int64_t)u; }
  if (size == 2) { int16_t x; uint16_t u; memcpy(&x, field, 2); memcpy(&u, field, 2); v = (encoding & 0x08) ? x : (int64_t)u; }
  *p = field + size;
  if ((encoding & 0x70) == 0x10) v += (int64_t)(uintptr_t)field;
  *out = (uint64_t)v;
  return true;
}

/* The FDE pointer encoding a CIE declares ('R' in a "z" augmentation). */
static uint8_t tp_rec_cie_fde_encoding(const uint8_t *cie, const uint8_t *end) {
  const uint8_t *p = cie;
  uint8_t version = *p++;
  const char *augmentation = (const char *)p;
  while (p < end && *p) p++;
  p++;
  if (augmentation[0] != 'z') return 0x00;
  tp_rec_uleb(&p, end);                                   /* code alignment */
  tp_rec_uleb(&p, end);                                   /* data alignment (sleb, skipped alike) */
  if (version == 1) p++; else tp_rec_uleb(&p, end);       /* return register */
  tp_rec_uleb(&p, end);                                   /* augmentation length */
  for (const char *a = augmentation + 1; *a && p < end; a++) {
    if (*a == 'R') return *p;
    if (*a == 'L') p++;
    else if (*a == 'P') {
      uint8_t penc = *p++;
      uint64_t ignored;
      if (!tp_rec_read_encoded(&p, end, penc, &ignored)) return 0x00;
    }
  }
  return 0x00;
}

/* The code range covered by the FDEs of an .eh_frame image (ended by a zero
 * length, as libgcc's __register_frame expects). */
static bool tp_rec_eh_frame_range(const uint8_t *eh, uint64_t *lo, uint64_t *hi) {
  *lo = UINT64_MAX, *hi = 0;
  const uint8_t *p = eh;
  for (int entries = 0; entries < (1 << 20); entries++) {
    uint32_t length;
    memcpy(&length, p, 4);
    if (length == 0 || length == 0xffffffffu) break; /* end (64-bit DWARF is not emitted by JITs) */
    const uint8_t *id_field = p + 4, *end = id_field + length;
    uint32_t cie_offset;
    memcpy(&cie_offset, id_field, 4);
    if (cie_offset != 0) {
      const uint8_t *cie = id_field - cie_offset, *q = id_field + 4;
      uint32_t cie_length;
      memcpy(&cie_length, cie, 4);
      uint8_t encoding = tp_rec_cie_fde_encoding(cie + 8, cie + 4 + cie_length);
      uint64_t start, size;
      if (tp_rec_read_encoded(&q, end, encoding, &start) && tp_rec_read_encoded(&q, end, encoding & 0x0f, &size)) {
        if (start < *lo) *lo = start;
        if (start + size > *hi) *hi = start + size;
      }
    }
    p = end;
  }
  return *hi > *lo;
}

static void tp_rec_jit_note(void *begin, bool removed) {
  uint64_t lo, hi;
  if (!tp_rec_active || tp_rec_self.busy || !begin || !tp_rec_eh_frame_range(begin, &lo, &hi)) return;
  tp_rec_jit_ranges_update(lo, hi, removed);
  bool was_own = tp_rec_own_begin(); /* busy while holding the lock: a signal handler's mmap would wait for it */
  tp_lock_acquire(&tp_rec.lock);
  tp_rec_batch *batch = &tp_rec.batches[tp_rec.active];
  if (batch->jit_count < TP_REC_BATCH_MAX)
    batch->jits[batch->jit_count++] = (tp_rec_jit_event){lo, hi - lo, tp_rec_now_ns(), removed};
  else
    tp_rec.dropped++;
  tp_lock_release(&tp_rec.lock);
  tp_rec_own_end(was_own);
}

TP_API void __register_frame(void *begin) {
  static tp_frame_fn next;
  if (!next) next = tp_rec_next_frame_fn("__register_frame");
  tp_rec_jit_note(begin, false);
  if (next) next(begin);
}

TP_API void __deregister_frame(void *begin) {
  static tp_frame_fn next;
  if (!next) next = tp_rec_next_frame_fn("__deregister_frame");
  tp_rec_jit_note(begin, true);
  if (next) next(begin);
}
