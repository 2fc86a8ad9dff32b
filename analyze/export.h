/* export.h — the formats of `tierpool export`: pprof (export_pprof.c),
 * folded stacks and JSON (export.c) from the merged profile, and CSV
 * (export_csv.c), which streams the samples from the traces themselves. */
#ifndef TP_EXPORT_H
#define TP_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"
#include "symbols.h"

/* What every aggregate format is written from. */
struct tp_export {
  const struct tp_profile *profile;
  struct tp_symbolizer *symbols;  /* NULL (--no-symbolize): frames named module+0xOFF */
  char **traces;                  /* the source files, named in comments */
  size_t n_traces;
  struct tp_symbol *fallback;     /* per frame, made on demand when symbols is NULL */
};

/* A frame's name and source position, from the symbolizer or, without one,
 * "module+0xOFF" / "[jit] name" / "0xADDR" (display only, function NULL). */
const struct tp_symbol *tp_export_symbol(struct tp_export *x, uint32_t frame);

/* Frees the fallback names and the symbolizer. */
void tp_export_fini(struct tp_export *x);

/* The tier's name ("slab", "buddy", "large"), or "tierN". */
const char *tp_export_tier_name(uint32_t tier, char *buf, size_t len);

/* Integer values that add up exactly: out_i = round(sum_{j<=i} v_j) -
 * round(sum_{j<i} v_j), so every value is within 1 of its estimate and the
 * column's total is the total estimate rounded.  *carry starts at 0. */
int64_t tp_export_round(double v, double *carry);

/* gzip'd pprof profile.proto: 0, or -1 with "what" in err. */
int tp_export_pprof(struct tp_export *x, FILE *out, char *err, size_t errlen);

/* CSV of every sample of every trace, one row each, streamed: 0, or -1 with
 * "PATH: what" in err.  A truncated trace is used up to its last complete
 * frame, with a warning on stderr. */
int tp_export_csv(char **traces, size_t n_traces, bool symbolize, FILE *out, char *err, size_t errlen);

#endif /* TP_EXPORT_H */
