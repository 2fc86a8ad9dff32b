/* test_trace.c — the trace codec and reader: a round trip of every field, and
 * damaged files (truncated, corrupt, foreign, empty, absurd lengths), which
 * must give one clear error and never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "stack_tree.h"
#include "trace_build.h"

/* --- Reading them back --------------------------------------------------- */

struct readback {
  Tierpool__Trace__Record *rec[64];
  size_t n;
  int rc; /* of the last tp_trace_next: 0 (end) or -1 */
  char error[512];
  bool truncated;
  uint64_t frames;
};

/* Reads path to its end or first error, keeping the first 64 records. */
static void read_trace(const char *path, struct readback *out) {
  memset(out, 0, sizeof *out);
  char err[256];
  tp_trace_reader *r = tp_trace_open(path, err, sizeof err);
  assert_non_null(r);
  Tierpool__Trace__Record *rec;
  while ((out->rc = tp_trace_next(r, &rec)) > 0) {
    if (out->n < 64) out->rec[out->n++] = rec;
    else tp_trace_record_free(rec);
  }
  assert_null(rec);
  const char *error = tp_trace_error(r);
  assert_true(out->rc == 0 ? error == NULL : error != NULL);
  if (error) snprintf(out->error, sizeof out->error, "%s", error);
  out->truncated = tp_trace_truncated(r);
  out->frames = tp_trace_frames(r);
  /* The error is sticky. */
  assert_int_equal(tp_trace_next(r, &rec), out->rc);
  tp_trace_close(r);
}

static void readback_free(struct readback *rb) {
  for (size_t i = 0; i < rb->n; i++) tp_trace_record_free(rb->rec[i]);
  rb->n = 0;
}

/* The error message, without its "PATH: " prefix (checked here). */
static const char *message(const struct readback *rb) {
  size_t len = strlen(trace_path);
  assert_memory_equal(rb->error, trace_path, len);
  assert_memory_equal(rb->error + len, ": ", 2);
  return rb->error + len + 2;
}

static void expect_error(const char *expected, const void *bytes, size_t len) {
  struct readback rb;
  read_trace(write_file(bytes, len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_string_equal(message(&rb), expected);
  assert_false(rb.truncated);
  readback_free(&rb);
}

/* --- Round trip ---------------------------------------------------------- */

static uint32_t size_classes[] = {16, 32, 48};
static char *argv_[] = {"prog", "--flag"};
static uint64_t frames_[] = {0x401000, 0x7f0000001234};
static uint64_t id_delta[] = {1, 2, 3}, time_delta[] = {10, 0, 5}, sizes[] = {24, 5000, 1u << 22},
                usable[] = {32, 5120, 1u << 22};
static uint32_t stacks[] = {1, 2, 1}, threads[] = {0, 0, 1}, tiers[] = {0, 1, 2}, aligns[] = {4, 4, 12},
                tenants[] = {0, 1, 0};
static double weights[] = {100.0, 1.5, 0.25};
static uint32_t buckets[] = {2, 258};
static uint64_t hist_allocs[] = {7, 1}, hist_bytes[] = {200, 4200}, hist_frees[] = {3, 0};
static int64_t free_ids[] = {3, -2};
static uint64_t free_times[] = {20, 1};

/* Header, Process, two Stacks, Samples | Histogram, Frees, End: two frames,
 * all in format 1's records (which format 2 keeps). */
static void build_trace_of_version(struct trace *t, uint32_t version) {
  add_header(t, TP_TRACE_MAGIC, version);

  Tierpool__Trace__Process p = TIERPOOL__TRACE__PROCESS__INIT;
  p.pid = 1234;
  p.ppid = 1;
  p.executable = "/usr/bin/prog";
  p.n_argv = 2;
  p.argv = argv_;
  p.hostname = "host";
  p.start_unix_ns = 1700000000123456789ull;
  p.start_mono_ns = 987654321;
  p.sample_rate = 0.01;
  p.sample_bytes = 0;
  p.n_size_classes = 3;
  p.size_classes = size_classes;
  p.buddy_max = 4u << 20;
  p.validate = true;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_PROCESS;
  rec.process = &p;
  add_record(t, &rec);

  for (uint32_t id = 1; id <= 2; id++) {
    Tierpool__Trace__Stack s = TIERPOOL__TRACE__STACK__INIT;
    s.id = id;
    s.n_frames = id; /* stack 1: one frame, stack 2: two */
    s.frames = frames_;
    s.truncated = id == 2;
    rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACK;
    rec.stack = &s;
    add_record(t, &rec);
  }

  Tierpool__Trace__Samples samples = TIERPOOL__TRACE__SAMPLES__INIT;
  samples.n_id_delta = samples.n_time_delta_us = samples.n_size = samples.n_stack = samples.n_thread = 3;
  samples.n_tier = samples.n_align_log2 = samples.n_weight = samples.n_tenant = samples.n_usable = 3;
  samples.id_delta = id_delta;
  samples.time_delta_us = time_delta;
  samples.size = sizes;
  samples.stack = stacks;
  samples.thread = threads;
  samples.tier = tiers;
  samples.align_log2 = aligns;
  samples.weight = weights;
  samples.tenant = tenants;
  samples.usable = usable;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
  rec.samples = &samples;
  add_record(t, &rec);
  end_frame(t);

  Tierpool__Trace__Histogram h = TIERPOOL__TRACE__HISTOGRAM__INIT;
  h.time_us = 1000000;
  h.n_bucket = h.n_allocs = h.n_bytes = h.n_frees = 2;
  h.bucket = buckets;
  h.allocs = hist_allocs;
  h.bytes = hist_bytes;
  h.frees = hist_frees;
  h.tenant = 3;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM;
  rec.histogram = &h;
  add_record(t, &rec);

  Tierpool__Trace__Frees f = TIERPOOL__TRACE__FREES__INIT;
  f.n_id_delta = f.n_time_delta_us = 2;
  f.id_delta = free_ids;
  f.time_delta_us = free_times;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_FREES;
  rec.frees = &f;
  add_record(t, &rec);
  add_end(t, 2000000);
  end_frame(t);
}

static void build_full_trace(struct trace *t) { build_trace_of_version(t, TP_TRACE_FORMAT_VERSION); }

static void check_round_trip(uint32_t version) {
  struct trace t = {0};
  build_trace_of_version(&t, version);
  assert_int_equal(t.frames, 2);

  struct readback rb;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, 0);
  assert_int_equal(rb.n, 8);
  assert_int_equal(rb.frames, 2);
  assert_false(rb.truncated);

  const Tierpool__Trace__Header *hd = rb.rec[0]->header;
  assert_int_equal(rb.rec[0]->kind_case, TIERPOOL__TRACE__RECORD__KIND_HEADER);
  assert_string_equal(hd->magic, "tierpool-trace");
  assert_int_equal(hd->format_version, version);
  assert_string_equal(hd->producer, "tierpool tests");

  assert_int_equal(rb.rec[1]->kind_case, TIERPOOL__TRACE__RECORD__KIND_PROCESS);
  const Tierpool__Trace__Process *p = rb.rec[1]->process;
  assert_int_equal(p->pid, 1234);
  assert_int_equal(p->ppid, 1);
  assert_string_equal(p->executable, "/usr/bin/prog");
  assert_int_equal(p->n_argv, 2);
  assert_string_equal(p->argv[0], "prog");
  assert_string_equal(p->argv[1], "--flag");
  assert_string_equal(p->hostname, "host");
  assert_true(p->start_unix_ns == 1700000000123456789ull);
  assert_int_equal(p->start_mono_ns, 987654321);
  assert_true(p->sample_rate == 0.01);
  assert_int_equal(p->sample_bytes, 0);
  assert_int_equal(p->n_size_classes, 3);
  assert_memory_equal(p->size_classes, size_classes, sizeof size_classes);
  assert_int_equal(p->buddy_max, 4u << 20);
  assert_true(p->validate);

  for (uint32_t id = 1; id <= 2; id++) {
    const Tierpool__Trace__Record *rec = rb.rec[1 + id];
    assert_int_equal(rec->kind_case, TIERPOOL__TRACE__RECORD__KIND_STACK);
    assert_int_equal(rec->stack->id, id);
    assert_int_equal(rec->stack->n_frames, id);
    assert_memory_equal(rec->stack->frames, frames_, id * sizeof frames_[0]);
    assert_int_equal(rec->stack->truncated, id == 2);
  }

  assert_int_equal(rb.rec[4]->kind_case, TIERPOOL__TRACE__RECORD__KIND_SAMPLES);
  const Tierpool__Trace__Samples *s = rb.rec[4]->samples;
  assert_int_equal(s->n_id_delta, 3);
  assert_int_equal(s->n_time_delta_us, 3);
  assert_int_equal(s->n_size, 3);
  assert_int_equal(s->n_stack, 3);
  assert_int_equal(s->n_thread, 3);
  assert_int_equal(s->n_tier, 3);
  assert_int_equal(s->n_align_log2, 3);
  assert_int_equal(s->n_weight, 3);
  assert_int_equal(s->n_tenant, 3);
  assert_int_equal(s->n_usable, 3);
  assert_memory_equal(s->id_delta, id_delta, sizeof id_delta);
  assert_memory_equal(s->time_delta_us, time_delta, sizeof time_delta);
  assert_memory_equal(s->size, sizes, sizeof sizes);
  assert_memory_equal(s->stack, stacks, sizeof stacks);
  assert_memory_equal(s->thread, threads, sizeof threads);
  assert_memory_equal(s->tier, tiers, sizeof tiers);
  assert_memory_equal(s->align_log2, aligns, sizeof aligns);
  assert_memory_equal(s->weight, weights, sizeof weights);
  assert_memory_equal(s->tenant, tenants, sizeof tenants);
  assert_memory_equal(s->usable, usable, sizeof usable);

  assert_int_equal(rb.rec[5]->kind_case, TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM);
  const Tierpool__Trace__Histogram *h = rb.rec[5]->histogram;
  assert_int_equal(h->time_us, 1000000);
  assert_int_equal(h->tenant, 3);
  assert_int_equal(h->n_bucket, 2);
  assert_int_equal(h->n_allocs, 2);
  assert_int_equal(h->n_bytes, 2);
  assert_int_equal(h->n_frees, 2);
  assert_memory_equal(h->bucket, buckets, sizeof buckets);
  assert_memory_equal(h->allocs, hist_allocs, sizeof hist_allocs);
  assert_memory_equal(h->bytes, hist_bytes, sizeof hist_bytes);
  assert_memory_equal(h->frees, hist_frees, sizeof hist_frees);

  assert_int_equal(rb.rec[6]->kind_case, TIERPOOL__TRACE__RECORD__KIND_FREES);
  const Tierpool__Trace__Frees *f = rb.rec[6]->frees;
  assert_int_equal(f->n_id_delta, 2);
  assert_int_equal(f->n_time_delta_us, 2);
  assert_int_equal(f->n_stack, 0);
  assert_memory_equal(f->id_delta, free_ids, sizeof free_ids);
  assert_memory_equal(f->time_delta_us, free_times, sizeof free_times);

  assert_int_equal(rb.rec[7]->kind_case, TIERPOOL__TRACE__RECORD__KIND_END);
  assert_int_equal(rb.rec[7]->end->time_us, 2000000);
  readback_free(&rb);
  trace_reset(&t);
}

/* Every version the reader reads.  */
static void test_round_trip(void **state) {
  for (uint32_t version = TP_TRACE_FORMAT_OLDEST; version <= TP_TRACE_FORMAT_VERSION; version++) {
    remove_file(state);
    check_round_trip(version);
  }
}

static void test_varints(void **state) {
  (void)state;
  const uint64_t values[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    uint8_t buf[TP_TRACE_VARINT_MAX];
    size_t n = tp_trace_varint_put(values[i], buf);
    assert_int_equal(n, tp_trace_varint_size(values[i]));
    uint64_t back;
    assert_int_equal(tp_trace_varint_get(buf, n, &back), (int)n);
    assert_true(back == values[i]);
    assert_int_equal(tp_trace_varint_get(buf, n - 1, &back), 0); /* cut short */
  }
  uint8_t endless[11];
  memset(endless, 0x80, sizeof endless);
  uint64_t v;
  assert_int_equal(tp_trace_varint_get(endless, sizeof endless, &v), -1);
}

/* Frames bigger than the reader's read chunk and decompression step, so that
 * records straddle both: 3 frames of 100 stacks of 512 random frames. */
#define BIG_FRAMES 3
#define BIG_STACKS 100
#define BIG_DEPTH 512

static uint64_t next_random(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static void test_big_frames(void **state) {
  (void)state;
  size_t record_max = TP_TRACE_VARINT_MAX + 16 + BIG_DEPTH * TP_TRACE_VARINT_MAX;
  size_t records_cap = BIG_STACKS * record_max, file_cap = BIG_FRAMES * tp_trace_frame_bound(records_cap);
  uint8_t *records = malloc(records_cap), *file = malloc(file_cap);
  uint64_t *frames = malloc(BIG_DEPTH * sizeof *frames);
  assert_non_null(records);
  assert_non_null(file);
  assert_non_null(frames);
  size_t file_len = 0, frame_starts[BIG_FRAMES];
  uint64_t random = 42;
  for (uint32_t f = 0; f < BIG_FRAMES; f++) {
    size_t len = 0;
    if (f == 0) {
      Tierpool__Trace__Header h = TIERPOOL__TRACE__HEADER__INIT;
      h.magic = TP_TRACE_MAGIC;
      h.format_version = TP_TRACE_FORMAT_VERSION;
      Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
      rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER;
      rec.header = &h;
      len += tp_trace_record_pack(&rec, records + len);
    }
    for (uint32_t i = 0; i < BIG_STACKS; i++) {
      for (size_t d = 0; d < BIG_DEPTH; d++) frames[d] = next_random(&random);
      Tierpool__Trace__Stack s = TIERPOOL__TRACE__STACK__INIT;
      s.id = f * BIG_STACKS + i;
      s.n_frames = BIG_DEPTH;
      s.frames = frames;
      Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
      rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACK;
      rec.stack = &s;
      assert_true(len + tp_trace_record_packed_size(&rec) <= records_cap);
      len += tp_trace_record_pack(&rec, records + len);
    }
    assert_true(len > 2 * ZSTD_DStreamInSize() && len > 2 * ZSTD_DStreamOutSize());
    frame_starts[f] = file_len;
    size_t n = tp_trace_compress_frame(&compressor, records, len, file + file_len, file_cap - file_len);
    assert_true(n > ZSTD_DStreamInSize()); /* random frames hardly compress */
    file_len += n;
  }

  const char *path = write_file(file, file_len);
  char err[256];
  tp_trace_reader *r = tp_trace_open(path, err, sizeof err);
  assert_non_null(r);
  Tierpool__Trace__Record *rec;
  assert_int_equal(tp_trace_next(r, &rec), 1);
  assert_int_equal(rec->kind_case, TIERPOOL__TRACE__RECORD__KIND_HEADER);
  tp_trace_record_free(rec);
  random = 42;
  for (uint32_t id = 0; id < BIG_FRAMES * BIG_STACKS; id++) {
    assert_int_equal(tp_trace_next(r, &rec), 1);
    assert_int_equal(rec->kind_case, TIERPOOL__TRACE__RECORD__KIND_STACK);
    assert_int_equal(rec->stack->id, id);
    assert_int_equal(rec->stack->n_frames, BIG_DEPTH);
    for (size_t d = 0; d < BIG_DEPTH; d++) assert_true(rec->stack->frames[d] == next_random(&random));
    tp_trace_record_free(rec);
  }
  assert_int_equal(tp_trace_next(r, &rec), 0);
  assert_int_equal(tp_trace_frames(r), BIG_FRAMES);
  tp_trace_close(r);

  /* Cut in the middle of the last frame: the first two frames, then truncation. */
  struct readback rb;
  read_trace(write_file(file, (frame_starts[2] + file_len) / 2), &rb);
  assert_int_equal(rb.rc, -1);
  assert_true(rb.truncated);
  assert_int_equal(rb.frames, 2);
  readback_free(&rb);
  free(frames);
  free(file);
  free(records);
}

/* --- Damaged files ------------------------------------------------------- */

/* Three frames of 2, 3 and 2 records. */
static void build_three_frames(struct trace *t) {
  add_header(t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_end(t, 1);
  end_frame(t);
  for (int i = 0; i < 3; i++) add_end(t, 100 + (uint64_t)i);
  end_frame(t);
  add_end(t, 200);
  add_end(t, 201);
  end_frame(t);
}

static void test_truncated(void **state) {
  (void)state;
  struct trace t = {0};
  build_three_frames(&t);
  const size_t records_before[] = {0, 2, 5, 7}; /* by complete frames */
  size_t ends[] = {t.frame_offsets[1], t.frame_offsets[2], t.len};
  for (size_t cut = 1; cut < t.len; cut++) {
    size_t complete = 0;
    while (complete < 3 && ends[complete] <= cut) complete++;
    bool at_boundary = complete > 0 && ends[complete - 1] == cut;
    struct readback rb;
    read_trace(write_file(t.data, cut), &rb);
    assert_int_equal(rb.n, records_before[complete]);
    assert_int_equal(rb.frames, complete);
    if (at_boundary) { /* indistinguishable from a trace that ends there */
      assert_int_equal(rb.rc, 0);
      assert_false(rb.truncated);
    } else {
      assert_int_equal(rb.rc, -1);
      assert_true(rb.truncated);
      char expected[128];
      snprintf(expected, sizeof expected, "truncated: last frame incomplete at offset %zu (%zu complete frames read)",
               complete ? ends[complete - 1] : (size_t)0, complete);
      assert_string_equal(message(&rb), expected);
    }
    readback_free(&rb);
  }
  trace_reset(&t);
}

static void test_corrupt_frame(void **state) {
  (void)state;
  struct trace t = {0};
  build_three_frames(&t);
  struct readback rb;
  char expected[128];

  /* The last byte of the second frame's checksum: its records are not handed out. */
  t.data[t.frame_offsets[2] - 1] ^= 0x01;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_false(rb.truncated);
  assert_int_equal(rb.n, 2);
  snprintf(expected, sizeof expected, "corrupt frame at offset %zu: Restored data doesn't match checksum",
           t.frame_offsets[1]);
  assert_string_equal(message(&rb), expected);
  readback_free(&rb);
  t.data[t.frame_offsets[2] - 1] ^= 0x01;

  /* A bit in the middle of the body: some error of that frame, no record of it. */
  size_t middle = (t.frame_offsets[1] + t.frame_offsets[2]) / 2;
  t.data[middle] ^= 0x10;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_int_equal(rb.n, 2);
  snprintf(expected, sizeof expected, "offset %zu", t.frame_offsets[1]);
  assert_non_null(strstr(message(&rb), expected));
  readback_free(&rb);
  t.data[middle] ^= 0x10;

  /* Bytes after the last frame that are not a frame. */
  memcpy(t.data + t.len, "garbage!", 8);
  read_trace(write_file(t.data, t.len + 8), &rb);
  assert_int_equal(rb.rc, -1);
  assert_int_equal(rb.n, 7);
  snprintf(expected, sizeof expected, "corrupt frame at offset %zu: Unknown frame descriptor", t.len);
  assert_string_equal(message(&rb), expected);
  readback_free(&rb);
  trace_reset(&t);
}

/* Reads bytes, which hold `records` good records, then a frame at `offset` the writer never makes. */
static void expect_foreign_frame(const char *what, const void *bytes, size_t len, size_t records, size_t offset) {
  struct readback rb;
  read_trace(write_file(bytes, len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_false(rb.truncated);
  assert_int_equal(rb.n, records);
  char expected[128];
  snprintf(expected, sizeof expected, "corrupt frame at offset %zu: %s", offset, what);
  assert_string_equal(message(&rb), expected);
  readback_free(&rb);
}

/* Appends to t a frame of an End record, compressed by zstd's defaults: without a checksum. */
static void add_frame_without_checksum(struct trace *t) {
  struct trace records = {0};
  add_end(&records, 300);
  uint8_t frame[64];
  size_t n = ZSTD_compress(frame, sizeof frame, records.frame, records.frame_len, 1);
  assert_false(ZSTD_isError(n));
  add_file_bytes(t, frame, n);
  trace_reset(&records);
}

/* A skippable frame declaring 4 GiB of content. */
static const uint8_t skippable_4g[] = {0x50, 0x2A, 0x4D, 0x18, 0xFF, 0xFF, 0xFF, 0xFF};

/* Frames the writer never makes, which the decoder would take: a skippable
 * one (skipped, or read as truncation when it declares more than the file
 * holds) and one without a content checksum (its damage would go unseen). */
static void test_foreign_frames(void **state) {
  (void)state;
  struct trace t = {0};
  build_three_frames(&t);
  size_t good = t.len;
  add_file_bytes(&t, skippable_4g, sizeof skippable_4g);
  expect_foreign_frame("a skippable frame (tierpool writes none)", t.data, t.len, 7, good);
  expect_foreign_frame("a skippable frame (tierpool writes none)", skippable_4g, sizeof skippable_4g, 0, 0);

  t.len = good;
  add_frame_without_checksum(&t);
  expect_foreign_frame("no content checksum", t.data, t.len, 7, good);
  trace_reset(&t);
  add_frame_without_checksum(&t);
  expect_foreign_frame("no content checksum", t.data, t.len, 0, 0);
  trace_reset(&t);
}

/* A first frame that ends 3 bytes before the end of the reader's first read
 * chunk, so that the next frame's header straddles two reads. */
static void build_first_frame_ending_at(struct trace *t, size_t end) {
  static char producer[1 << 18];
  uint64_t random = 7;
  for (size_t i = 0; i < sizeof producer - 1; i++) producer[i] = (char)(1 + next_random(&random) % 255);
  size_t len = end - 64; /* random bytes hardly compress: the frame is a little longer than them */
  for (int tries = 0; tries < 64; tries++) {
    trace_reset(t);
    producer[len] = '\0';
    Tierpool__Trace__Header h = TIERPOOL__TRACE__HEADER__INIT;
    h.magic = TP_TRACE_MAGIC;
    h.format_version = TP_TRACE_FORMAT_VERSION;
    h.producer = producer;
    Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
    rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER;
    rec.header = &h;
    add_record(t, &rec);
    end_frame(t);
    producer[len] = (char)1;
    if (t->len == end) return;
    len = t->len < end ? len + 1 : len - 1;
  }
  fail_msg("no producer length makes a frame of %zu bytes", end);
}

static void test_frame_header_across_reads(void **state) {
  (void)state;
  struct trace t = {0};
  size_t edge = ZSTD_DStreamInSize() - 3;
  build_first_frame_ending_at(&t, edge);
  add_end(&t, 1);
  end_frame(&t);
  struct readback rb;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, 0);
  assert_int_equal(rb.n, 2);
  assert_int_equal(rb.frames, 2);
  readback_free(&rb);

  /* Cut inside that header: truncation, at its offset. */
  read_trace(write_file(t.data, edge + 5), &rb);
  assert_int_equal(rb.rc, -1);
  assert_true(rb.truncated);
  char expected[128];
  snprintf(expected, sizeof expected, "truncated: last frame incomplete at offset %zu (1 complete frames read)", edge);
  assert_string_equal(message(&rb), expected);
  readback_free(&rb);

  memcpy(t.data + edge, skippable_4g, sizeof skippable_4g);
  expect_foreign_frame("a skippable frame (tierpool writes none)", t.data, edge + sizeof skippable_4g, 1, edge);
  trace_reset(&t);
}

static void test_foreign_and_empty_files(void **state) {
  (void)state;
  static const char text[] = "#!/bin/sh\necho this is no trace\n";
  expect_error("not a tierpool trace (not zstd-compressed)", text, sizeof text - 1);
  expect_error("not a tierpool trace (not zstd-compressed)", "ab", 2);
  expect_error("empty file", "", 0);

  /* A zstd file, but of something else: 'h' reads as a length. */
  struct trace t = {0};
  add_raw(&t, "hello, world\n", 13);
  end_frame(&t);
  expect_error("corrupt record in frame at offset 0: bad length 104 (past the end of the frame)", t.data, t.len);

  /* A record of the right length that is no protobuf message (wire type 7). */
  trace_reset(&t);
  add_raw(&t, "\x02\x0f\x00", 3);
  end_frame(&t);
  expect_error("corrupt record in frame at offset 0: protobuf unpack failed", t.data, t.len);

  /* Frames without records. */
  trace_reset(&t);
  end_frame(&t);
  end_frame(&t);
  expect_error("no records (only empty frames)", t.data, t.len);

  char err[256];
  assert_null(tp_trace_open("/nonexistent/trace", err, sizeof err));
  assert_string_equal(err, "/nonexistent/trace: cannot open: No such file or directory");
  trace_reset(&t);
}

static void test_bad_header(void **state) {
  (void)state;
  struct trace t = {0};
  add_end(&t, 1);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  end_frame(&t);
  expect_error("not a tierpool trace (first record is not a Header)", t.data, t.len);

  trace_reset(&t);
  add_header(&t, "tierpool-trice", TP_TRACE_FORMAT_VERSION);
  end_frame(&t);
  expect_error("not a tierpool trace (bad magic)", t.data, t.len);

  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION + 1);
  end_frame(&t);
  char expected[64];
  snprintf(expected, sizeof expected, "unsupported format version %u", TP_TRACE_FORMAT_VERSION + 1);
  expect_error(expected, t.data, t.len);

  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_OLDEST - 1);
  end_frame(&t);
  snprintf(expected, sizeof expected, "unsupported format version %u", TP_TRACE_FORMAT_OLDEST - 1);
  expect_error(expected, t.data, t.len);
  trace_reset(&t);
}

static void test_bad_lengths(void **state) {
  (void)state;
  static struct trace t;
  uint8_t bytes[TP_TRACE_VARINT_MAX + 8];
  size_t offset;
  char expected[160];

  /* An absurd length, in the second frame. */
  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  end_frame(&t);
  offset = t.len;
  size_t n = tp_trace_varint_put(1ull << 40, bytes);
  add_raw(&t, bytes, n);
  add_raw(&t, "xyz", 3);
  end_frame(&t);
  snprintf(expected, sizeof expected, "corrupt record in frame at offset %zu: bad length 1099511627776 (over 64 MiB)",
           offset);
  expect_error(expected, t.data, t.len);

  /* A record that goes on in the next frame. */
  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  uint8_t whole[64];
  Tierpool__Trace__End end = TIERPOOL__TRACE__END__INIT;
  end.time_us = 123456789;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_END;
  rec.end = &end;
  size_t whole_len = tp_trace_record_pack(&rec, whole);
  add_raw(&t, whole, 3);
  end_frame(&t);
  add_raw(&t, whole + 3, whole_len - 3);
  end_frame(&t);
  snprintf(expected, sizeof expected,
           "corrupt record in frame at offset 0: bad length %zu (past the end of the frame)", whole_len - 1);
  expect_error(expected, t.data, t.len);

  /* A frame that ends inside a length, and a length of more than 10 bytes. */
  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_raw(&t, "\x80\x80", 2);
  end_frame(&t);
  expect_error("corrupt record in frame at offset 0: bad length (frame ends inside it)", t.data, t.len);

  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  memset(bytes, 0xff, sizeof bytes);
  add_raw(&t, bytes, sizeof bytes);
  end_frame(&t);
  expect_error("corrupt record in frame at offset 0: bad length (varint too long)", t.data, t.len);
}

/* --- Format 2: stacks as a prefix tree, histograms as steps -------------- */

/* A Stacks record: n stacks from first_id; frames hold sum(count) values (NULL: none written, whatever the counts). */
static void add_stacks(struct trace *t, uint32_t first_id, size_t n, const uint32_t *from, const uint32_t *count,
                       const uint64_t *frames, size_t n_truncated, const uint32_t *truncated) {
  Tierpool__Trace__Stacks s = TIERPOOL__TRACE__STACKS__INIT;
  s.first_id = first_id;
  s.n_from = s.n_count = n;
  s.from = (uint32_t *)from, s.count = (uint32_t *)count;
  for (size_t i = 0; frames && i < n; i++) s.n_frames += count[i];
  s.frames = (uint64_t *)frames;
  s.n_truncated = n_truncated, s.truncated = (uint32_t *)truncated;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACKS;
  rec.stacks = &s;
  add_record(t, &rec);
}

/* Two sections.  The first: stacks 1-4 in one frame (nodes 1 A, 2 B, 3 C, 4 D),
 * stack 5 in the next one (nodes 5 E, 6 F); the second starts a new tree. */
static const uint32_t tree_from1[] = {0, 2, 0, 4}, tree_count1[] = {3, 1, 0, 0}, tree_truncated1[] = {3};
static const uint64_t tree_frames1[] = {0xA, 0xB, 0xC, 0xD};
static const uint32_t tree_from2[] = {2}, tree_count2[] = {2}, tree_from3[] = {0}, tree_count3[] = {1};
static const uint64_t tree_frames2[] = {0xE, 0xF}, tree_frames3[] = {0x10};
static uint32_t hist_steps[] = {2, 256};
static uint64_t hist_over[] = {200 - 7 * 17, 4200 - 4609}; /* bucket 258 starts at 4609: wraps */

/* Samples of stacks 1 2 2 1 4 | 5 3 | (next section) 1, as stack_back says them. */
static int32_t back1[] = {0, 0, 1, 2, -1}, back2[] = {0, 3}, back3[] = {0};
static const uint32_t back_stacks[] = {1, 2, 2, 1, 4, 5, 3, 1};

static void add_samples(struct trace *t, size_t n, int32_t *back) {
  Tierpool__Trace__Samples s = TIERPOOL__TRACE__SAMPLES__INIT;
  s.n_stack_back = n, s.stack_back = back;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
  rec.samples = &s;
  add_record(t, &rec);
}

static void build_v2_trace(struct trace *t) {
  add_header(t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(t);
  add_stacks(t, 1, 4, tree_from1, tree_count1, tree_frames1, 1, tree_truncated1);
  add_samples(t, 5, back1);
  end_frame(t);
  add_stacks(t, 5, 1, tree_from2, tree_count2, tree_frames2, 0, NULL);
  add_samples(t, 2, back2);
  Tierpool__Trace__Histogram h = TIERPOOL__TRACE__HISTOGRAM__INIT;
  h.n_bucket_step = h.n_allocs = h.n_bytes_over = h.n_frees = 2;
  h.bucket_step = hist_steps, h.allocs = hist_allocs, h.bytes_over = hist_over, h.frees = hist_frees;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM;
  rec.histogram = &h;
  add_record(t, &rec);
  add_process(t);
  add_stacks(t, 1, 1, tree_from3, tree_count3, tree_frames3, 0, NULL);
  add_samples(t, 1, back3);
  add_end(t, 1);
  end_frame(t);
}

static void expect_stack(const Tierpool__Trace__Record *rec, uint32_t id, bool truncated, size_t depth,
                         const uint64_t *frames) {
  assert_int_equal(rec->kind_case, TIERPOOL__TRACE__RECORD__KIND_STACK);
  assert_int_equal(rec->stack->id, id);
  assert_int_equal(rec->stack->truncated, truncated);
  assert_int_equal(rec->stack->n_frames, depth);
  if (depth) assert_memory_equal(rec->stack->frames, frames, depth * sizeof *frames);
}

static void test_v2_round_trip(void **state) {
  (void)state;
  struct trace t = {0};
  build_v2_trace(&t);
  struct readback rb;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, 0);
  /* Header, Process, 4 Stacks, Samples | Stack, Samples, Histogram, Process, Stack, Samples, End */
  assert_int_equal(rb.n, 14);
  static const uint64_t cba[] = {0xC, 0xB, 0xA}, dba[] = {0xD, 0xB, 0xA}, a[] = {0xA},
                        fecba[] = {0xF, 0xE, 0xC, 0xB, 0xA}, s10[] = {0x10};
  expect_stack(rb.rec[2], 1, false, 3, cba);
  expect_stack(rb.rec[3], 2, false, 3, dba);
  expect_stack(rb.rec[4], 3, false, 0, NULL);
  expect_stack(rb.rec[5], 4, true, 1, a);
  expect_stack(rb.rec[7], 5, false, 5, fecba);
  const uint32_t *want = back_stacks;
  for (size_t i = 6; i < rb.n; i++) {
    if (rb.rec[i]->kind_case != TIERPOOL__TRACE__RECORD__KIND_SAMPLES) continue;
    const Tierpool__Trace__Samples *s = rb.rec[i]->samples;
    assert_int_equal(s->n_stack_back, 0);
    assert_memory_equal(s->stack, want, s->n_stack * sizeof *want);
    want += s->n_stack;
  }
  assert_int_equal(want - back_stacks, 8);
  const Tierpool__Trace__Histogram *h = rb.rec[9]->histogram;
  assert_int_equal(h->n_bucket, 2);
  assert_int_equal(h->n_bytes, 2);
  assert_int_equal(h->n_bucket_step + h->n_bytes_over, 0);
  assert_memory_equal(h->bucket, buckets, sizeof buckets);
  assert_memory_equal(h->bytes, hist_bytes, sizeof hist_bytes);
  assert_memory_equal(h->allocs, hist_allocs, sizeof hist_allocs);
  assert_int_equal(rb.rec[10]->kind_case, TIERPOOL__TRACE__RECORD__KIND_PROCESS);
  expect_stack(rb.rec[11], 1, false, 1, s10);
  assert_int_equal(rb.rec[13]->kind_case, TIERPOOL__TRACE__RECORD__KIND_END);
  readback_free(&rb);
  trace_reset(&t);
}

/* A section whose first batch writes nodes A, B, then the batch under test. */
static void expect_bad_stacks(const char *what, size_t n, const uint32_t *from, const uint32_t *count,
                              const uint64_t *frames, size_t n_truncated, const uint32_t *truncated) {
  static struct trace t;
  static const uint32_t from0[] = {0}, count0[] = {2};
  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  add_stacks(&t, 1, 1, from0, count0, tree_frames1, 0, NULL);
  end_frame(&t);
  add_stacks(&t, 2, n, from, count, frames, n_truncated, truncated);
  end_frame(&t);
  char expected[256];
  snprintf(expected, sizeof expected, "corrupt Stacks record in frame at offset %zu: %s", t.frame_offsets[1], what);
  struct readback rb;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_string_equal(message(&rb), expected);
  assert_int_equal(rb.n, 3); /* Header, Process, stack 1: none of the bad batch */
  readback_free(&rb);
}

static void test_v2_bad_stacks(void **state) {
  (void)state;
  static const uint32_t zero[] = {0, 0}, one[] = {1, 1}, two[] = {2}, three[] = {3, 1}, five[] = {5};
  static const uint32_t one_four[] = {1, 4}, one_zero[] = {1, 0};
  expect_bad_stacks("stack 3 starts 4 nodes back, but 3 nodes were written", 2, one_four, one_zero, tree_frames1, 0,
                    NULL);
  expect_bad_stacks("stack 2 starts 3 nodes back, but 2 nodes were written", 1, three, zero, NULL, 0, NULL);
  Tierpool__Trace__Stacks s = TIERPOOL__TRACE__STACKS__INIT; /* counts for 3 frames, 2 written */
  s.first_id = 2, s.n_from = s.n_count = 1, s.from = (uint32_t *)zero, s.count = (uint32_t *)three;
  s.n_frames = 2, s.frames = (uint64_t *)tree_frames1;
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACKS;
  rec.stacks = &s;
  add_record(&t, &rec);
  end_frame(&t);
  expect_error("corrupt Stacks record in frame at offset 0: counts add up to 3 frames but 2 are written", t.data,
               t.len);
  s.n_count = 2; /* the columns' lengths differ */
  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_record(&t, &rec);
  end_frame(&t);
  expect_error("corrupt Stacks record in frame at offset 0: 1 from values but 2 counts", t.data, t.len);
  expect_bad_stacks("truncated stack 5 of a batch of 2", 2, zero, zero, NULL, 1, five);
  /* One frame too many for a stack: 2 from the first batch, 65535 new. */
  uint32_t deep[] = {1}, deep_count[] = {TP_TRACE_MAX_STACK_DEPTH - 1};
  static uint64_t deep_frames[TP_TRACE_MAX_STACK_DEPTH];
  expect_bad_stacks("stack 2 has more than 65536 frames", 1, deep, deep_count, deep_frames, 0, NULL);
  /* A new section starts a new tree: its first stack cannot refer back. */
  trace_reset(&t);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  add_stacks(&t, 1, 1, zero, two, tree_frames1, 0, NULL);
  add_process(&t);
  add_stacks(&t, 1, 1, one, zero, NULL, 0, NULL);
  end_frame(&t);
  struct readback rb;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_string_equal(message(&rb),
                      "corrupt Stacks record in frame at offset 0: stack 1 starts 1 nodes back, but 0 nodes were written");
  readback_free(&rb);
  trace_reset(&t);
}

/* Many stacks ending at one deep node: a few bytes each that would expand to
 * gigabytes of frames (every reader would hang copying them out).  A writer's
 * distinct stacks end at distinct nodes: the reader stops the section at 128
 * frames handed out per node of its tree. */
static void test_stacks_fan_out(void **state) {
  (void)state;
  enum { DEPTH = 64, FANS = 20000 };
  uint32_t *from = calloc(FANS + 1, sizeof *from), *count = calloc(FANS + 1, sizeof *count);
  uint64_t frames[DEPTH];
  assert_non_null(from), assert_non_null(count);
  for (uint32_t k = 0; k < DEPTH; k++) frames[k] = 0x401000 + 16 * k;
  count[0] = DEPTH;                                  /* stack 1: a chain 64 deep */
  for (size_t i = 1; i <= FANS; i++) from[i] = 1;     /* the rest: its deepest node again */
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  add_stacks(&t, 1, FANS + 1, from, count, frames, 0, NULL);
  end_frame(&t);
  struct readback rb;
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_non_null(strstr(message(&rb), "takes the section past"));
  assert_true(rb.n < 4 + 128 + TP_TRACE_MAX_STACK_DEPTH / DEPTH);
  readback_free(&rb);
  trace_reset(&t);
  free(from), free(count);
  /* A format-1 Stack record deeper than a Stacks record may be is refused too
   * (tierpool compact would write it as a Stacks record no reader takes). */
  static uint64_t deep[TP_TRACE_MAX_STACK_DEPTH + 1];
  Tierpool__Trace__Stack stack = TIERPOOL__TRACE__STACK__INIT;
  stack.id = 1, stack.n_frames = TP_TRACE_MAX_STACK_DEPTH + 1, stack.frames = deep;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACK;
  rec.stack = &stack;
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  add_record(&t, &rec);
  end_frame(&t);
  read_trace(write_file(t.data, t.len), &rb);
  assert_int_equal(rb.rc, -1);
  assert_string_equal(message(&rb), "corrupt Stack record in frame at offset 0: more than 65536 frames");
  readback_free(&rb);
  trace_reset(&t);
}

/* A section's stacks beyond what the writer keeps of a process's
 * (TP_TRACE_MAX_STACKS, TP_TRACE_MAX_STACK_FRAMES): a few bytes that would
 * have every reader hold gigabytes.  Each is refused before its nodes or
 * stacks are made. */
static void test_section_limits(void **state) {
  (void)state;
  /* Counts that would take the tree past its nodes, refused before its
   * frames are even counted (so this record need not hold 2^25 of them). */
  char expected[128];
  snprintf(expected, sizeof expected, "the section's tree would have %u nodes (at most %u)",
           TP_TRACE_MAX_STACK_FRAMES + 1, TP_TRACE_MAX_STACK_FRAMES);
  static const uint32_t root[] = {0}, too_many[] = {TP_TRACE_MAX_STACK_FRAMES - 1};
  expect_bad_stacks(expected, 1, root, too_many, NULL, 0, NULL);

  /* One stack too many: 1 in the first batch, 2^22 empty ones in the next. */
  uint32_t *zeros = calloc(TP_TRACE_MAX_STACKS, sizeof *zeros);
  assert_non_null(zeros);
  snprintf(expected, sizeof expected, "the section would have %u stacks (at most %u)", TP_TRACE_MAX_STACKS + 1,
           TP_TRACE_MAX_STACKS);
  expect_bad_stacks(expected, TP_TRACE_MAX_STACKS, zeros, zeros, NULL, 0, NULL);

  /* 8 chains 65536 deep (2^19 nodes: the fan-out bound allows 2^26 frames),
   * then stacks of the last chain's deepest node: 2 + 8 * 65536 frames, and
   * 65536 more each, pass 2^25 at the 504th of them, stack 9 + 504. */
  enum { CHAINS = 8, SHARED = 600 };
  uint32_t from[CHAINS + SHARED], count[CHAINS + SHARED];
  for (size_t i = 0; i < CHAINS + SHARED; i++) from[i] = i < CHAINS ? 0 : 1, count[i] = i < CHAINS ? 65536 : 0;
  uint64_t *chain_frames = calloc((size_t)CHAINS * 65536, sizeof *chain_frames);
  assert_non_null(chain_frames);
  snprintf(expected, sizeof expected, "stack %u takes the section's stacks past %u frames", 9 + 504,
           TP_TRACE_MAX_STACK_FRAMES);
  expect_bad_stacks(expected, CHAINS + SHARED, from, count, chain_frames, 0, NULL);
  free(chain_frames);
  free(zeros);
}

/* Weights that are no number of allocations, which every total they went
 * into would become: NaN, infinite, negative or zero; written, or implied by
 * the Process's sample_rate (1/rate). */
/* A trace of one frame: the header, a Process when `with_process`, then rec;
 * reading it must fail with `expected`. */
static void expect_record_error(const Tierpool__Trace__Record *rec, bool with_process, const char *expected) {
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  if (with_process) add_process(&t);
  add_record(&t, rec);
  end_frame(&t);
  expect_error(expected, t.data, t.len);
  trace_reset(&t);
}

static void test_bad_weights(void **state) {
  (void)state;
  static uint64_t ids[] = {5, 1};
  const double weights[] = {NAN, INFINITY, -2.0, 0.0, -0.0};
  char expected[160];
  for (size_t k = 0; k < sizeof weights / sizeof weights[0]; k++) {
    double column[] = {4.0, weights[k]};
    Tierpool__Trace__Samples samples = TIERPOOL__TRACE__SAMPLES__INIT;
    samples.n_id_delta = samples.n_weight = 2;
    samples.id_delta = ids, samples.weight = column;
    Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
    rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
    rec.samples = &samples;
    snprintf(expected, sizeof expected,
             "corrupt Samples record in frame at offset 0: weight %g of sample 6 (not a positive finite number)",
             weights[k]);
    expect_record_error(&rec, true, expected);
  }
  const double rates[] = {NAN, INFINITY, -0.5, 1e-320 /* 1/rate overflows */};
  for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
    Tierpool__Trace__Process p = TIERPOOL__TRACE__PROCESS__INIT;
    p.pid = 42;
    p.sample_rate = rates[k];
    Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
    rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_PROCESS;
    rec.process = &p;
    snprintf(expected, sizeof expected,
             "corrupt Process record in frame at offset 0: sample_rate %g (1/rate is no positive finite weight)",
             rates[k]);
    expect_record_error(&rec, false, expected);
  }
}

static void *zeroed(size_t bytes) { return calloc(1, bytes); }
static void release(void *p, size_t bytes) {
  (void)bytes;
  free(p);
}

/* The writer's and merge's prefix tree finds the paths it has, whatever its
 * hash key (0 in the preload, random in the analyzer), past index growth. */
static void test_stack_tree(void **state) {
  (void)state;
  const uint64_t keys[] = {0, 0x8f1bbcdc2c9a61e5ull};
  for (size_t k = 0; k < 2; k++) {
    tp_stack_tree t = {.map = zeroed, .unmap = release, .key = keys[k]};
    const uint64_t cba[] = {0xC, 0xB, 0xA}, dba[] = {0xD, 0xB, 0xA}, ba[] = {0xB, 0xA};
    uint32_t from, shared;
    assert_int_equal(tp_stack_tree_add(&t, cba, 3, &from, &shared), 0); /* A 1, B 2, C 3 */
    assert_int_equal(from, 0), assert_int_equal(shared, 0);
    assert_int_equal(tp_stack_tree_add(&t, dba, 3, &from, &shared), 3); /* D 4, under B */
    assert_int_equal(from, 2), assert_int_equal(shared, 2);
    assert_int_equal(tp_stack_tree_add(&t, ba, 2, &from, &shared), 4);
    assert_int_equal(from, 2), assert_int_equal(shared, 2);
    enum { MANY = 20000 }; /* past the index's first 8192 slots, twice */
    for (uint64_t i = 0; i < MANY; i++) {
      uint64_t frame = 0x1000 + (i << 40);
      assert_int_equal(tp_stack_tree_add(&t, &frame, 1, &from, &shared), 4 + i);
    }
    for (uint64_t i = 0; i < MANY; i++) {
      uint64_t frame = 0x1000 + (i << 40);
      tp_stack_tree_add(&t, &frame, 1, &from, &shared);
      assert_int_equal(shared, 1), assert_int_equal(from, 5 + i);
    }
    assert_int_equal(t.nodes, 4 + MANY);
    tp_stack_tree_reset(&t);
  }
}

/* --- Fuzzing, a little --------------------------------------------------- */

/* Reads a damaged file to its end: it may fail, but must not crash or leak. */
static void read_damaged(const void *bytes, size_t len) {
  struct readback rb;
  read_trace(write_file(bytes, len), &rb);
  readback_free(&rb);
}

static void test_flipped_bytes(void **state) {
  (void)state;
  struct trace t = {0};
  build_full_trace(&t);
  uint8_t *copy = malloc(t.len);
  assert_non_null(copy);
  size_t limit = t.len < 400 ? t.len : 400;
  for (size_t i = 0; i < limit; i++) {
    memcpy(copy, t.data, t.len);
    copy[i] ^= 0xff;
    read_damaged(copy, t.len);
    copy[i] ^= 0xfe; /* one bit, the lowest */
    read_damaged(copy, t.len);
  }
  free(copy);
  trace_reset(&t);
}

/* Damage in the records themselves, in frames whose checksums are right:
 * exercises the length and protobuf checks rather than zstd's. */
static void flip_record_bytes(void (*build)(struct trace *)) {
  struct trace t = {0};
  build(&t);
  /* Recover the records of the first frame by reading it back with zstd. */
  static uint8_t records[1 << 15];
  size_t len = ZSTD_decompress(records, sizeof records, t.data, t.frame_offsets[1]);
  assert_false(ZSTD_isError(len));
  for (size_t i = 0; i < len && i < 400; i++) {
    for (int bit = 0; bit < 8; bit += 3) {
      struct trace damaged = {0};
      add_raw(&damaged, records, len);
      damaged.frame[i] ^= (uint8_t)(1u << bit);
      end_frame(&damaged);
      read_damaged(damaged.data, damaged.len);
      trace_reset(&damaged);
    }
  }
  trace_reset(&t);
}

static void test_flipped_record_bytes(void **state) {
  (void)state;
  flip_record_bytes(build_full_trace);
  flip_record_bytes(build_v2_trace);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_varints),
      cmocka_unit_test_teardown(test_round_trip, remove_file),
      cmocka_unit_test_teardown(test_big_frames, remove_file),
      cmocka_unit_test_teardown(test_truncated, remove_file),
      cmocka_unit_test_teardown(test_corrupt_frame, remove_file),
      cmocka_unit_test_teardown(test_foreign_frames, remove_file),
      cmocka_unit_test_teardown(test_frame_header_across_reads, remove_file),
      cmocka_unit_test_teardown(test_foreign_and_empty_files, remove_file),
      cmocka_unit_test_teardown(test_bad_header, remove_file),
      cmocka_unit_test_teardown(test_bad_lengths, remove_file),
      cmocka_unit_test_teardown(test_v2_round_trip, remove_file),
      cmocka_unit_test_teardown(test_v2_bad_stacks, remove_file),
      cmocka_unit_test_teardown(test_stacks_fan_out, remove_file),
      cmocka_unit_test_teardown(test_section_limits, remove_file),
      cmocka_unit_test_teardown(test_bad_weights, remove_file),
      cmocka_unit_test(test_stack_tree),
      cmocka_unit_test_teardown(test_flipped_bytes, remove_file),
      cmocka_unit_test_teardown(test_flipped_record_bytes, remove_file),
  };
  return cmocka_run_group_tests(tests, setup_compressor, teardown_compressor);
}
