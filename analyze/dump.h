/* dump.h — the text form of trace records, for `tierpool dump`. */
#ifndef TIERPOOL_DUMP_H
#define TIERPOOL_DUMP_H

#include <stdio.h>

#include "trace_codec.h"

/* Writes rec as one line (batches: one line per element, indented). */
void dump_record(FILE *out, const Tierpool__Trace__Record *rec);

#endif
