/* cfi.h — frame rules from DWARF call frame information (.eh_frame).
 *
 * The unwinder (unwind.c) steps a frame by a rule per return address; cfi.c
 * derives one from the module's .eh_frame_hdr and .eh_frame for the forms
 * compilers emit at call sites. */
#ifndef TP_CFI_H
#define TP_CFI_H

#include <stdbool.h>
#include <stdint.h>

/* A rule says how to find a frame's caller from its pc, sp and rbp.  The
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

static inline uint64_t tp_uw_make(unsigned kind, uint64_t offset, uint64_t slot) {
  return kind | offset << 3 | slot << 23;
}

/* The rule of return address pc from the CFI of the module whose
 * .eh_frame_hdr is hdr: TP_UW_NONE when no FDE covers it, TP_UW_FAIL when it
 * is not one of the simple forms. */
uint64_t tp_uw_rule_from_cfi(const uint8_t *hdr, uintptr_t pc);

/* Whether the module of hdr keeps frame pointers (most of its CFI defines
 * the CFA from rbp), judged from a sample of its functions. */
bool tp_uw_sample_frame_pointers(const uint8_t *hdr);

#endif /* TP_CFI_H */
