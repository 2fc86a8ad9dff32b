/* trace_codec.h — encoding records and frames of the trace format (trace.proto).
 *
 * A trace file is a sequence of independent zstd frames; a frame's content is
 * a sequence of records, each a varint length then one packed
 * Tierpool__Trace__Record.  Packing never allocates (the preload calls it from
 * inside the allocator); frame compression uses a context made once. */
#ifndef TP_TRACE_CODEC_H
#define TP_TRACE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "trace.pb-c.h"

#define TP_TRACE_MAGIC "tierpool-trace"
#define TP_TRACE_FORMAT_VERSION 3u
/* The oldest version the reader still reads. */
#define TP_TRACE_FORMAT_OLDEST 1u
/* Frames in one stack of a Stacks record (trace.proto): bounds a reader's work. */
#define TP_TRACE_MAX_STACK_DEPTH 65536u
/* Stacks of a section, and frames of all its stacks counted whole (so nodes of
 * its stack tree too): the writer never exceeds them (profiler/stacks.c). */
#define TP_TRACE_MAX_STACKS (1u << 22)
#define TP_TRACE_MAX_STACK_FRAMES (1u << 25)
/* Frames a section's stacks may expand to, per node of its stack tree (a
 * writer's distinct stacks end at distinct nodes, each at most 64 deep). */
#define TP_TRACE_STACK_FRAMES_PER_NODE 128u
/* Longest record a reader accepts: anything longer is a corrupt length. */
#define TP_TRACE_MAX_RECORD (64u << 20)
/* Largest encoded varint (a uint64_t). */
#define TP_TRACE_VARINT_MAX 10u
/* zstd level of the frames, with tables sized for frames of up to a few MB:
 * 1% smaller than level 3 at the same speed, with half its context (0.7 MB
 * for 1 MB frames).  Level 6 would save 2% more at 2.5 times the CPU: per
 * sample, as much as the unwinding. */
#define TP_TRACE_ZSTD_LEVEL 4
#define TP_TRACE_ZSTD_WINDOW_LOG 20
#define TP_TRACE_ZSTD_TABLE_LOG 15
/* Frames of records shorter than this are compressed whole: their columns are
 * too short to pay for the tables of blocks of their own. */
#define TP_TRACE_SPLIT_FRAME_MIN (32u << 10)
/* A field of a record this long (a column) starts a block and ends it. */
#define TP_TRACE_SPLIT_FIELD_MIN (4u << 10)
/* Most block ends one frame asks for (each costs a block header). */
#define TP_TRACE_SPLIT_MAX 256u

/* Bytes of the varint encoding of v. */
size_t tp_trace_varint_size(uint64_t v);
/* Writes v as a varint to out; returns the bytes written. */
size_t tp_trace_varint_put(uint64_t v, uint8_t *out);
/* Reads a varint from in[0..avail): returns the bytes it took, 0 if the input
 * ends inside it, or -1 if it is longer than TP_TRACE_VARINT_MAX bytes. */
int tp_trace_varint_get(const uint8_t *in, size_t avail, uint64_t *v);

/* Bytes tp_trace_record_pack writes for r: its length prefix and message. */
size_t tp_trace_record_packed_size(const Tierpool__Trace__Record *r);
/* Writes r (length prefix + message) to out, which holds at least
 * tp_trace_record_packed_size(r) bytes; returns the bytes written. */
size_t tp_trace_record_pack(const Tierpool__Trace__Record *r, uint8_t *out);

/* Frees.id_age (trace.proto, format 3): a free's reference is the highest id
 * of the section's samples of earlier frames (prior) and of this frame's
 * samples before the first one later than the free. */
typedef struct tp_trace_sample_mark {
  uint64_t time_us, id;
} tp_trace_sample_mark;
/* Turns this frame's samples, in the order written, into what
 * tp_trace_free_ref searches: each time the latest so far, each id the
 * highest so far (in place). */
void tp_trace_marks_prepare(tp_trace_sample_mark *marks, size_t n);
/* The reference of a free at time_us. */
uint64_t tp_trace_free_ref(const tp_trace_sample_mark *marks, size_t n, uint64_t prior, uint64_t time_us);

/* Compresses buffers of packed records into frames. */
typedef struct tp_trace_compressor {
  struct ZSTD_CCtx_s *cctx;
} tp_trace_compressor;

/* 0, or -1 if zstd could not make its context (out of memory).  alloc and
 * release, if not NULL, are zstd's memory instead of malloc's (the recorder's
 * are mapped: it may compress where the pool is not to be called). */
int tp_trace_compressor_init(tp_trace_compressor *c, void *(*alloc)(void *opaque, size_t size),
                             void (*release)(void *opaque, void *address));
void tp_trace_compressor_fini(tp_trace_compressor *c);
/* Room the frame of len bytes of records may need. */
size_t tp_trace_frame_bound(size_t len);
/* Compresses records[0..len) into one independent frame (with its content
 * checksum) in out[0..out_cap); returns the frame's size, or 0 on error
 * (out_cap below tp_trace_frame_bound(len)).  In a big frame, each long
 * column of a record gets zstd blocks of its own: their entropy tables fit
 * that column alone (6-10% smaller traces). */
size_t tp_trace_compress_frame(tp_trace_compressor *c, const void *records, size_t len, void *out,
                               size_t out_cap);

#endif /* TP_TRACE_CODEC_H */
