/* trace_reader.h — reading a trace file record by record.
 *
 * The file is read in chunks and decompressed one frame at a time: memory is
 * bounded by the largest frame (the recorder writes small ones), never by the
 * file.  A frame's records are handed out only after its checksum has been
 * verified, so a damaged frame yields no record at all; a frame without a
 * checksum, or a skippable frame, is an error (the writer makes neither).
 *
 * Errors name the file, the offset of the frame at fault and what was wrong.
 * A trace whose last frame is incomplete (the process was killed while
 * writing) is "truncated": every complete frame before it was read normally,
 * and callers may go on with that. */
#ifndef TP_TRACE_READER_H
#define TP_TRACE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace_codec.h"

/* Largest decompressed frame the reader accepts (bounds its memory). */
#define TP_TRACE_MAX_FRAME (256u << 20)

typedef struct tp_trace_reader tp_trace_reader;

/* Opens path; NULL on failure, with "PATH: cannot open: REASON" in err. */
tp_trace_reader *tp_trace_open(const char *path, char *err, size_t errlen);

/* The next record: 1 with *out set (the caller owns it: tp_trace_record_free),
 * 0 at the clean end of the file, -1 on error (tp_trace_error says which; the
 * reader stays in error).  The first record is checked to be a Header of a
 * format version this reader knows.  Records come back as format 1 says them
 * whatever the version (trace.proto): a Stacks record as one Stack record per
 * stack, with all its frames. */
int tp_trace_next(tp_trace_reader *r, Tierpool__Trace__Record **out);

void tp_trace_record_free(Tierpool__Trace__Record *record);

/* "PATH: what went wrong", or NULL if no error happened. */
const char *tp_trace_error(const tp_trace_reader *r);
/* The error is that the file ends inside a frame: the complete frames before it were read. */
bool tp_trace_truncated(const tp_trace_reader *r);

/* Frames read completely so far, and records handed out. */
uint64_t tp_trace_frames(const tp_trace_reader *r);
uint64_t tp_trace_records(const tp_trace_reader *r);

void tp_trace_close(tp_trace_reader *r);

#endif /* TP_TRACE_READER_H */
