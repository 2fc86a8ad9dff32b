/* cfi.c — DWARF call frame information: from a return address and its
 * module's .eh_frame_hdr (binary search table) and .eh_frame (CIE and FDE),
 * the rule that steps the frame (cfi.h).  Only the CFA programs compilers
 * emit for ordinary frames are run: CFA = rsp or rbp + offset, the return
 * address at CFA - 8, rbp saved at a slot below the CFA or left alone;
 * anything else (expressions, signal frames) is TP_UW_FAIL and the walk goes
 * to libunwind.  Reads only mapped memory of loaded modules, no allocation,
 * no lock. */
#include <string.h>

#include "cfi.h"
#include "internal.h"
#include "trace_codec.h"
#ifdef TP_REC_UNWIND_COMPARE
#include <stdio.h>
#endif

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
  if (length < 4 || length >= TP_UW_SPAN || id != 0) return false;
  const uint8_t *p = cie + 8, *end = cie + 4 + length;
  if (p >= end) return false;
  uint8_t version = *p++;
  if (version != 1 && version != 3) return false;
  const char *augmentation = (const char *)p;
  while (p < end && *p) p++;
  if (p++ >= end) return false;
  if (augmentation[0] && augmentation[0] != 'z') return false; /* "eh" and other old forms */
  *out = (tp_uw_cie){.end = end, .fde_encoding = 0x00, .augmented = augmentation[0] == 'z'};
  out->code_align = tp_uw_uleb(&p, end);
  out->data_align = tp_uw_sleb(&p, end);
  if (version == 1 && p >= end) return false;
  out->ra_column = version == 1 ? *p++ : tp_uw_uleb(&p, end);
  if (out->augmented) {
    uint64_t data_length = tp_uw_uleb(&p, end);
    const uint8_t *data = p;
    if (p > end || data_length > (uint64_t)(end - p)) return false;
    const uint8_t *data_end = data + data_length; /* every byte read below stays before it */
    for (const char *a = augmentation + 1; *a; a++) {
      if (*a == 'S') {
        out->signal_frame = true;
        continue;
      }
      if (p >= data_end) return false;
      if (*a == 'R') out->fde_encoding = *p++;
      else if (*a == 'L') p++;
      else if (*a == 'P') {
        uint8_t encoding = *p++;
        uint64_t ignored;
        if (!tp_uw_encoded(&p, data_end, encoding & 0x7f, 0, &ignored)) return false;
      } else {
        return false;
      }
    }
    p = data_end;
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

/* ---- rules ------------------------------------------------------------------ */

uint64_t tp_uw_rule_from_cfi(const uint8_t *hdr, uintptr_t pc) {
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

/* A module keeps frame pointers, judged from the CFI of 64 of its functions
 * (eight runs of neighbours: few pages touched): node defines the CFA from
 * rbp in 1/2 to 2/3 of its functions (the others are leaves), code compiled
 * without frame pointers in ~1/40 (those that realign the stack or alloca).
 * A function without one in such a module is found when its frame does not
 * check out, or not at all if it leaves rbp alone: its caller is skipped. */
bool tp_uw_sample_frame_pointers(const uint8_t *hdr) {
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
