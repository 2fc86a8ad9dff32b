/* trace_build.c — see trace_build.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace_build.h"

tp_trace_compressor compressor;
char trace_path[64];

int setup_compressor(void **state) {
  (void)state;
  return tp_trace_compressor_init(&compressor, NULL, NULL);
}

int teardown_compressor(void **state) {
  (void)state;
  tp_trace_compressor_fini(&compressor);
  return 0;
}

static void *grow(void *p, size_t *cap, size_t need) {
  if (need <= *cap) return p;
  while (*cap < need) *cap = *cap ? *cap * 2 : 4096;
  p = realloc(p, *cap);
  assert_non_null(p);
  return p;
}

void trace_reset(struct trace *t) {
  free(t->data), free(t->frame);
  memset(t, 0, sizeof *t);
}

void add_raw(struct trace *t, const void *bytes, size_t len) {
  t->frame = grow(t->frame, &t->frame_cap, t->frame_len + len);
  memcpy(t->frame + t->frame_len, bytes, len);
  t->frame_len += len;
}

void add_file_bytes(struct trace *t, const void *bytes, size_t len) {
  t->data = grow(t->data, &t->cap, t->len + len);
  memcpy(t->data + t->len, bytes, len);
  t->len += len;
}

void add_record(struct trace *t, const Tierpool__Trace__Record *rec) {
  size_t size = tp_trace_record_packed_size(rec);
  t->frame = grow(t->frame, &t->frame_cap, t->frame_len + size);
  assert_int_equal(tp_trace_record_pack(rec, t->frame + t->frame_len), size);
  t->frame_len += size;
}

void end_frame(struct trace *t) {
  size_t bound = tp_trace_frame_bound(t->frame_len);
  t->data = grow(t->data, &t->cap, t->len + bound);
  size_t n = tp_trace_compress_frame(&compressor, t->frame, t->frame_len, t->data + t->len, bound);
  assert_true(n > 0);
  if (t->frames < TRACE_FRAMES_MAX) t->frame_offsets[t->frames] = t->len;
  t->frames++;
  t->len += n;
  t->frame_len = 0;
}

void add_header(struct trace *t, const char *magic, uint32_t version) {
  Tierpool__Trace__Header h = TIERPOOL__TRACE__HEADER__INIT;
  h.magic = (char *)magic;
  h.format_version = version;
  h.producer = "tierpool tests";
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER;
  rec.header = &h;
  add_record(t, &rec);
}

void add_process(struct trace *t) {
  Tierpool__Trace__Process p = TIERPOOL__TRACE__PROCESS__INIT;
  p.pid = 42;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_PROCESS;
  rec.process = &p;
  add_record(t, &rec);
}

void add_end(struct trace *t, uint64_t time_us) {
  Tierpool__Trace__End end = TIERPOOL__TRACE__END__INIT;
  end.time_us = time_us;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_END;
  rec.end = &end;
  add_record(t, &rec);
}

const char *write_file(const void *bytes, size_t len) {
  if (trace_path[0]) unlink(trace_path);
  strcpy(trace_path, "/tmp/tierpool-trace-XXXXXX"); /* mkstemp's template */
  int fd = mkstemp(trace_path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, bytes, len), (ssize_t)len);
  close(fd);
  return trace_path;
}

int remove_file(void **state) {
  (void)state;
  if (trace_path[0]) unlink(trace_path);
  trace_path[0] = '\0';
  return 0;
}
