/* trace_build.h — traces made in memory for the trace tests (test_trace.c,
 * test_trace_size.c): records packed into a frame, frames compressed into a
 * file image that grows as needed, the image written to a temporary file.
 * Failures are cmocka assertions. */
#ifndef TP_TEST_TRACE_BUILD_H
#define TP_TEST_TRACE_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "trace_reader.h"

#define TRACE_FRAMES_MAX 16 /* frames whose offsets are kept */

struct trace {
  uint8_t *data, *frame; /* the file image; the frame being filled */
  size_t len, cap, frame_len, frame_cap;
  size_t frame_offsets[TRACE_FRAMES_MAX]; /* where the first finished frames start */
  size_t frames;
};

extern tp_trace_compressor compressor;
int setup_compressor(void **state);    /* cmocka group setup: the compressor */
int teardown_compressor(void **state);

void trace_reset(struct trace *t); /* frees its buffers: an empty trace */
void add_raw(struct trace *t, const void *bytes, size_t len);
void add_file_bytes(struct trace *t, const void *bytes, size_t len); /* after the frames: a frame made otherwise */
void add_record(struct trace *t, const Tierpool__Trace__Record *rec);
void end_frame(struct trace *t); /* compresses the records added since the last call into a frame */
void add_header(struct trace *t, const char *magic, uint32_t version);
void add_process(struct trace *t); /* pid 42, no other facts */
void add_end(struct trace *t, uint64_t time_us);

extern char trace_path[64];
const char *write_file(const void *bytes, size_t len); /* a fresh temporary file; its path */
int remove_file(void **state);                         /* cmocka teardown: the file */

#endif
