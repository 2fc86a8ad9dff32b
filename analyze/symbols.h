/* symbols.h — naming a profile's frames offline with elfutils' libdw.
 *
 * A frame in a module is looked up in the module's file (the path the trace
 * recorded, used only if its build-id matches; else the debug file under
 * /usr/lib/debug/.build-id/), giving function, and file:line where debug info
 * exists.  JIT frames are named from the perf map the trace carried, else
 * "[jit]".  Results are cached per frame; files are opened once. */
#ifndef TP_SYMBOLS_H
#define TP_SYMBOLS_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

struct tp_symbol {
  const char *function; /* demangled where possible; NULL if unknown */
  const char *file;     /* source file, NULL without debug info */
  uint32_t line;        /* 0 without debug info */
  const char *module;   /* the module's path (basename-free), NULL for JIT/unknown */
  uint64_t offset;      /* module-relative address of the call (frame addr - 1) */
  bool jit;
  bool allocator;       /* allocator plumbing (tp_symbol_is_allocator) */
  const char *display;  /* one line for reports: "func (file.c:12)", "func", "libx.so+0x1a2b", "[jit] name", "[jit]", "0x7f..." */
};

struct tp_symbolizer;

struct tp_symbolizer *tp_symbolizer_new(const struct tp_profile *p);
void tp_symbolizer_free(struct tp_symbolizer *s);

/* The frame's symbol; the strings live as long as the symbolizer. */
const struct tp_symbol *tp_symbolize(struct tp_symbolizer *s, uint32_t frame);

/* Is the frame allocator plumbing: the pool itself (libtierpool*), or an
 * allocation entry point wherever it lives (libc's malloc family, operator
 * new, Rust's global allocator shims and RawVec's out-of-line growth)?  An
 * allocation's site is the first frame past them.  Only functions that are
 * never inlined are listed: a frame is named by its innermost inlined
 * function, and skipping an inlined helper would skip the caller it was
 * inlined into. */
bool tp_symbol_is_allocator(const struct tp_symbol *sym);

/* Where a stack's allocation site is: the index of its first frame past the
 * allocator plumbing, or 0 when it is all plumbing (then the plumbing is
 * what there is to show). */
uint32_t tp_symbolize_site(struct tp_symbolizer *s, const struct tp_prof_stack *st);

#endif /* TP_SYMBOLS_H */
