/* frames.h — the code and stacks of one process section of a trace, turned
 * into a profile's frames and stacks.  Every reader of traces that names
 * frames goes through here (the loader, profile_load.c; `export --format csv`),
 * so that a return address is named alike by every subcommand and format.
 *
 * A section's stacks hold absolute return addresses, and what they point into
 * is known only when the section ends: a Module record may come after the
 * first stack that uses it (a dlopen is noticed at the next periodic flush).
 * So the section's Module, JitRange, PerfMap and Stack records are gathered
 * first, and resolved together at its end.  An address in JIT code is a JIT
 * frame (named by the perf map when a line covers it); else one in a module's
 * segment is that module's, at its module-relative address (of overlapping
 * segments, the one starting last: the innermost); else it is an
 * unknown address (a JIT frame if the perf map names it).  Memory: the
 * section's stacks and code ranges. */
#ifndef TP_FRAMES_H
#define TP_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"
#include "trace_codec.h"

struct tp_frames;

struct tp_frames *tp_frames_new(void);
void tp_frames_free(struct tp_frames *f);
/* Forgets the section, for the next one (its memory is kept). */
void tp_frames_clear(struct tp_frames *f);

/* The section's records.  A module is interned into p at once; the other
 * records wait for tp_frames_resolve. */
void tp_frames_add_module(struct tp_frames *f, struct tp_profile *p, const Tierpool__Trace__Module *r);
void tp_frames_add_jit_range(struct tp_frames *f, const Tierpool__Trace__JitRange *r);
/* Lines "START SIZE NAME" (hex numbers, 0x optional); others are skipped. */
void tp_frames_add_perf_map(struct tp_frames *f, const Tierpool__Trace__PerfMap *r);
/* The first Stack record of an id counts; false for one too deep to be real
 * (a corrupt trace). */
bool tp_frames_add_stack(struct tp_frames *f, const Tierpool__Trace__Stack *r);

/* At the end of the section: every stack (in the order of their records)
 * becomes a stack of p, its addresses frames of p. */
void tp_frames_resolve(struct tp_frames *f, struct tp_profile *p);

/* After tp_frames_resolve: the stack of p that the section's stack id is.  An
 * id no Stack record gave is the empty stack (interned into p). */
uint32_t tp_frames_stack(const struct tp_frames *f, struct tp_profile *p, uint32_t id);

/* The section's stack ids, in the order of their records: i < tp_frames_count. */
size_t tp_frames_count(const struct tp_frames *f);
uint32_t tp_frames_stack_id(const struct tp_frames *f, size_t i);

#endif /* TP_FRAMES_H */
