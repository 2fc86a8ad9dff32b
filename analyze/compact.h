/* compact.h — records as the reader hands them out (format 1's shapes: whole
 * Stack records, absolute columns) put back into the compact encodings the
 * recorder writes, for `tierpool merge`: Stack records into Stacks batches
 * over the section's prefix tree, Samples' stack column into stack_back,
 * Histograms' bucket and bytes into bucket_step and bytes_over, MmapCalls'
 * addr and stack into deltas.  Frees keep id_delta (id_age needs the frame's
 * sample times, which a merged frame does not keep together). */
#ifndef TP_COMPACT_H
#define TP_COMPACT_H

#include "trace.pb-c.h"

typedef struct tp_compactor tp_compactor;

/* Where the compact records go; < 0 stops (an error). */
typedef int (*tp_compact_put_fn)(void *ctx, const Tierpool__Trace__Record *rec);

tp_compactor *tp_compactor_new(tp_compact_put_fn put, void *ctx);
/* Re-encodes rec in place and puts it, or holds it (a Stack record) for the
 * batch that the next other record, tp_compactor_flush or a full batch
 * writes.  The caller still frees rec.  < 0: out of memory, or put failed. */
int tp_compactor_record(tp_compactor *c, Tierpool__Trace__Record *rec);
/* Writes the stacks held. */
int tp_compactor_flush(tp_compactor *c);
void tp_compactor_free(tp_compactor *c);

#endif /* TP_COMPACT_H */
