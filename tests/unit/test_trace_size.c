/* test_trace_size.c — what keeps traces small: format 3's encodings (Frees'
 * id_age, MmapCalls' addr_delta and stack_delta, Module's segment columns),
 * which the reader hands back as format 1 says them, and big frames whose long
 * columns get zstd blocks of their own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "trace_build.h"

/* --- Writing and reading traces ------------------------------------------ */

/* Reads the whole trace; calls visit on every record. */
static void read_all(const struct trace *t, void (*visit)(const Tierpool__Trace__Record *, void *), void *ctx) {
  char err[256];
  tp_trace_reader *r = tp_trace_open(write_file(t->data, t->len), err, sizeof err);
  assert_non_null(r);
  Tierpool__Trace__Record *rec;
  int rc;
  while ((rc = tp_trace_next(r, &rec)) > 0) {
    visit(rec, ctx);
    tp_trace_record_free(rec);
  }
  if (rc < 0) fail_msg("%s", tp_trace_error(r));
  tp_trace_close(r);
}

/* A deterministic generator (xorshift). */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(uint64_t below) {
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return below ? rng_state % below : rng_state;
}

/* --- Frees.id_age -------------------------------------------------------- */

static void test_free_refs(void **state) {
  (void)state;
  /* In the order written: times and ids need not grow. */
  tp_trace_sample_mark marks[] = {{10, 5}, {10, 3}, {20, 7}, {15, 6}, {30, 4}};
  tp_trace_marks_prepare(marks, 5);
  static const tp_trace_sample_mark want[] = {{10, 5}, {10, 5}, {20, 7}, {20, 7}, {30, 7}};
  assert_memory_equal(marks, want, sizeof want);
  assert_int_equal(tp_trace_free_ref(marks, 5, 2, 9), 2);   /* before every sample: the prior */
  assert_int_equal(tp_trace_free_ref(marks, 5, 2, 10), 5);  /* a sample at the same µs counts */
  assert_int_equal(tp_trace_free_ref(marks, 5, 2, 19), 5);
  assert_int_equal(tp_trace_free_ref(marks, 5, 2, 20), 7);
  assert_int_equal(tp_trace_free_ref(marks, 5, 2, ~0ull), 7);
  assert_int_equal(tp_trace_free_ref(marks, 5, 100, 25), 100); /* the prior when higher */
  assert_int_equal(tp_trace_free_ref(marks, 0, 3, 25), 3);
  assert_int_equal(tp_trace_free_ref(marks, 1, 0, 10), 5);
  tp_trace_marks_prepare(marks, 0);
}

/* Sections of frames of samples and frees; the frees of some frames written
 * with id_age, of the others with id_delta.  The reader must give back the
 * freed ids. */
#define AGE_FRAMES 6
#define AGE_SAMPLES 300
#define AGE_FREES 250

struct age_expect {
  uint64_t ids[AGE_FRAMES * AGE_FREES * 2];
  size_t n, next;
};

static void add_samples(struct trace *t, const uint64_t *ids, const uint64_t *times, size_t n) {
  uint64_t *id_delta = malloc(n * sizeof *id_delta), *time_delta = malloc(n * sizeof *time_delta);
  for (size_t i = 0; i < n; i++) {
    id_delta[i] = ids[i] - (i ? ids[i - 1] : 0);
    time_delta[i] = times[i] - (i ? times[i - 1] : 0);
  }
  Tierpool__Trace__Samples s = TIERPOOL__TRACE__SAMPLES__INIT;
  s.n_id_delta = s.n_time_delta_us = n;
  s.id_delta = id_delta, s.time_delta_us = time_delta;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
  rec.samples = &s;
  add_record(t, &rec);
  free(id_delta), free(time_delta);
}

/* One section: each frame has samples (in two records, the second's times
 * starting again from an earlier point) then frees of any sample so far
 * (some not sampled yet: negative ages).  The last frame is left open. */
static void add_age_section(struct trace *t, struct age_expect *e, uint64_t first_id) {
  static uint64_t all_ids[AGE_FRAMES * AGE_SAMPLES];
  size_t n_all = 0;
  uint64_t prior = 0, id = first_id, time_us = 0;
  add_process(t);
  for (int f = 0; f < AGE_FRAMES; f++) {
    uint64_t ids[AGE_SAMPLES], times[AGE_SAMPLES];
    tp_trace_sample_mark marks[AGE_SAMPLES];
    for (size_t i = 0; i < AGE_SAMPLES; i++) {
      id += 1 + rnd(3);
      time_us += rnd(50);
      ids[i] = id, times[i] = i == AGE_SAMPLES / 2 ? time_us - rnd(40) : time_us;
      if (i >= AGE_SAMPLES / 2 && times[i] < times[AGE_SAMPLES / 2]) times[i] = times[AGE_SAMPLES / 2];
      all_ids[n_all++] = id;
      marks[i] = (tp_trace_sample_mark){times[i], ids[i]};
    }
    add_samples(t, ids, times, AGE_SAMPLES / 2);
    add_samples(t, ids + AGE_SAMPLES / 2, times + AGE_SAMPLES / 2, AGE_SAMPLES - AGE_SAMPLES / 2);
    tp_trace_marks_prepare(marks, AGE_SAMPLES);
    int64_t age[AGE_FREES], delta[AGE_FREES];
    uint64_t free_time[AGE_FREES], prev = 0, t_us = f ? marks[0].time_us - 100 : 0;
    for (size_t i = 0; i < AGE_FREES; i++) {
      uint64_t freed = i % 50 == 7 ? id + 1 + rnd(5) : all_ids[rnd(n_all)];
      t_us += rnd(70);
      free_time[i] = t_us;
      age[i] = (int64_t)(tp_trace_free_ref(marks, AGE_SAMPLES, prior, t_us) - freed);
      delta[i] = (int64_t)(freed - prev), prev = freed;
      e->ids[e->n++] = freed;
    }
    uint64_t time_delta[AGE_FREES];
    for (size_t i = 0; i < AGE_FREES; i++) time_delta[i] = free_time[i] - (i ? free_time[i - 1] : 0);
    Tierpool__Trace__Frees fr = TIERPOOL__TRACE__FREES__INIT;
    fr.n_time_delta_us = AGE_FREES, fr.time_delta_us = time_delta;
    if (f % 3 != 1) fr.n_id_age = AGE_FREES, fr.id_age = age;
    else fr.n_id_delta = AGE_FREES, fr.id_delta = delta;
    Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
    rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_FREES;
    rec.frees = &fr;
    add_record(t, &rec);
    prior = marks[AGE_SAMPLES - 1].id;
    if (f < AGE_FRAMES - 1) end_frame(t);
    time_us = marks[AGE_SAMPLES - 1].time_us;
  }
}

static void check_frees(const Tierpool__Trace__Record *rec, void *ctx) {
  struct age_expect *e = ctx;
  if (rec->kind_case != TIERPOOL__TRACE__RECORD__KIND_FREES) return;
  const Tierpool__Trace__Frees *f = rec->frees;
  assert_int_equal(f->n_id_age, 0);
  assert_int_equal(f->n_id_delta, AGE_FREES);
  uint64_t id = 0;
  for (size_t i = 0; i < f->n_id_delta; i++) {
    id += (uint64_t)f->id_delta[i];
    assert_true(e->next < e->n);
    assert_int_equal(id, e->ids[e->next++]);
  }
}

static void test_id_age_round_trip(void **state) {
  (void)state;
  struct trace t = {0};
  static struct age_expect e;
  memset(&e, 0, sizeof e);
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_age_section(&t, &e, 0);
  /* A second section, whose ids start again, from the middle of a frame: its
   * references are its own samples', not the first section's. */
  add_age_section(&t, &e, 10);
  end_frame(&t);
  read_all(&t, check_frees, &e);
  assert_int_equal(e.next, e.n);
  trace_reset(&t);
}

/* --- MmapCalls and Module columns ---------------------------------------- */

static const uint64_t mmap_addr[] = {0x7f0000001000, 0x7f0000001000, 0x7e0000000000, 0x1000, 0xffffffffffff0000};
static const uint32_t mmap_stack[] = {5, 6, 2, 0xffffffff, 3};

static const uint64_t seg_vaddr[] = {0, 0x424b40, 0x1198200, 0x10};
static const uint64_t seg_memsz[] = {4340528, 14100160, 458240, 8};
static const uint64_t seg_offset[] = {0, 0x423b40, 0x1196200, 0x20};
static const protobuf_c_boolean seg_exec[] = {0, 1, 0, 0};

static void add_columns(struct trace *t) {
  int64_t addr_delta[5];
  int32_t stack_delta[5];
  for (size_t i = 0; i < 5; i++) {
    addr_delta[i] = (int64_t)(mmap_addr[i] - (i ? mmap_addr[i - 1] : 0));
    stack_delta[i] = (int32_t)(mmap_stack[i] - (i ? mmap_stack[i - 1] : 0));
  }
  uint64_t zeros[5] = {0};
  uint32_t kinds[5] = {0, 1, 2, 3, 4};
  Tierpool__Trace__MmapCalls m = TIERPOOL__TRACE__MMAP_CALLS__INIT;
  m.n_kind = m.n_time_delta_us = m.n_addr_delta = m.n_stack_delta = m.n_length = 5;
  m.kind = kinds, m.time_delta_us = zeros, m.length = zeros;
  m.addr_delta = addr_delta, m.stack_delta = stack_delta;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS;
  rec.mmap_calls = &m;
  add_record(t, &rec);

  int64_t gap[4];
  for (size_t i = 0; i < 4; i++) gap[i] = (int64_t)(seg_vaddr[i] - seg_offset[i]);
  Tierpool__Trace__Module mod = TIERPOOL__TRACE__MODULE__INIT;
  mod.path = "/bin/x";
  mod.n_segment_vaddr = mod.n_segment_memsz = mod.n_segment_offset_gap = mod.n_segment_executable = 4;
  mod.segment_vaddr = (uint64_t *)seg_vaddr, mod.segment_memsz = (uint64_t *)seg_memsz;
  mod.segment_offset_gap = gap, mod.segment_executable = (protobuf_c_boolean *)seg_exec;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_MODULE;
  rec.module = &mod;
  add_record(t, &rec);
  /* Columns shorter than vaddr: the missing values are 0, never read past. */
  mod.n_segment_memsz = 1, mod.n_segment_offset_gap = 0, mod.n_segment_executable = 2;
  add_record(t, &rec);
}

static void check_columns(const Tierpool__Trace__Record *rec, void *ctx) {
  int *seen = ctx;
  if (rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS) {
    const Tierpool__Trace__MmapCalls *m = rec->mmap_calls;
    assert_int_equal(m->n_addr_delta + m->n_stack_delta, 0);
    assert_int_equal(m->n_addr, 5);
    assert_int_equal(m->n_stack, 5);
    assert_memory_equal(m->addr, mmap_addr, sizeof mmap_addr);
    assert_memory_equal(m->stack, mmap_stack, sizeof mmap_stack);
    ++*seen;
  }
  if (rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_MODULE) {
    const Tierpool__Trace__Module *m = rec->module;
    assert_int_equal(m->n_segment_vaddr + m->n_segment_memsz + m->n_segment_offset_gap + m->n_segment_executable, 0);
    assert_int_equal(m->n_segments, 4);
    bool whole = *seen == 1;
    for (size_t i = 0; i < 4; i++) {
      const Tierpool__Trace__Module__Segment *s = m->segments[i];
      assert_int_equal(s->vaddr, seg_vaddr[i]);
      assert_int_equal(s->memsz, whole || i < 1 ? seg_memsz[i] : 0);
      assert_int_equal(s->file_offset, whole ? seg_offset[i] : seg_vaddr[i]);
      assert_int_equal(s->executable, whole || i < 2 ? seg_exec[i] : 0);
    }
    ++*seen;
  }
}

static void test_columns_round_trip(void **state) {
  (void)state;
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  add_columns(&t);
  end_frame(&t);
  int seen = 0;
  read_all(&t, check_columns, &seen);
  assert_int_equal(seen, 3);
  trace_reset(&t);
}

/* Format 1's fields win over format 3's when a record has both. */
static void check_old_wins(const Tierpool__Trace__Record *rec, void *ctx) {
  (void)ctx;
  if (rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_FREES) {
    assert_int_equal(rec->frees->n_id_age, 0);
    assert_int_equal(rec->frees->n_id_delta, 1);
    assert_int_equal(rec->frees->id_delta[0], 9);
  }
  if (rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS) {
    assert_int_equal(rec->mmap_calls->n_addr_delta, 0);
    assert_int_equal(rec->mmap_calls->addr[0], 0x5000);
  }
}

static void test_old_fields_win(void **state) {
  (void)state;
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  int64_t nine = 9, one = 1;
  uint64_t zero = 0, addr = 0x5000;
  Tierpool__Trace__Frees f = TIERPOOL__TRACE__FREES__INIT;
  f.n_id_delta = f.n_id_age = f.n_time_delta_us = 1;
  f.id_delta = &nine, f.id_age = &one, f.time_delta_us = &zero;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_FREES;
  rec.frees = &f;
  add_record(&t, &rec);
  Tierpool__Trace__MmapCalls m = TIERPOOL__TRACE__MMAP_CALLS__INIT;
  m.n_addr = m.n_addr_delta = 1;
  m.addr = &addr, m.addr_delta = &one;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS;
  rec.mmap_calls = &m;
  add_record(&t, &rec);
  end_frame(&t);
  read_all(&t, check_old_wins, NULL);
  trace_reset(&t);
}

/* --- Blocks per column ----------------------------------------------------- */

/* A Samples record of n samples with columns of unlike statistics, as the
 * recorder writes them. */
static void add_busy_samples(struct trace *t, size_t n) {
  uint64_t *ids = malloc(n * sizeof *ids), *times = malloc(n * sizeof *times), *sizes = malloc(n * sizeof *sizes);
  int32_t *back = malloc(n * sizeof *back);
  uint32_t *threads = malloc(n * sizeof *threads);
  for (size_t i = 0; i < n; i++) {
    ids[i] = 1;
    times[i] = rnd(4) ? rnd(200) : rnd(20000);
    sizes[i] = 8 + 8 * rnd(rnd(2) ? 8 : 200);
    back[i] = rnd(3) ? 0 : (int32_t)rnd(1000) - 10;
    threads[i] = 1 + (uint32_t)rnd(2);
  }
  Tierpool__Trace__Samples s = TIERPOOL__TRACE__SAMPLES__INIT;
  s.n_id_delta = s.n_time_delta_us = s.n_size = s.n_stack_back = s.n_thread = n;
  s.id_delta = ids, s.time_delta_us = times, s.size = sizes, s.stack_back = back, s.thread = threads;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
  rec.samples = &s;
  add_record(t, &rec);
  free(ids), free(times), free(sizes), free(back), free(threads);
}

static size_t plain_frame(const uint8_t *records, size_t len, uint8_t *out, size_t cap) {
  size_t n = ZSTD_compress2(compressor.cctx, out, cap, records, len);
  assert_false(ZSTD_isError(n));
  return n;
}

/* One frame, whole, and decoding to the records given. */
static void expect_one_frame(const uint8_t *frame, size_t size, const uint8_t *records, size_t len) {
  assert_int_equal(ZSTD_findFrameCompressedSize(frame, size), size);
  assert_int_equal(ZSTD_getFrameContentSize(frame, size), len);
  uint8_t *back = malloc(len + 1);
  assert_int_equal(ZSTD_decompress(back, len + 1, frame, size), len);
  assert_memory_equal(back, records, len);
  free(back);
}

static size_t count_records(const struct trace *t) {
  char err[256];
  tp_trace_reader *r = tp_trace_open(write_file(t->data, t->len), err, sizeof err);
  assert_non_null(r);
  Tierpool__Trace__Record *rec;
  int rc;
  size_t n = 0;
  while ((rc = tp_trace_next(r, &rec)) > 0) n++, tp_trace_record_free(rec);
  assert_int_equal(rc, 0);
  tp_trace_close(r);
  return n;
}

static void test_blocks_per_column(void **state) {
  (void)state;
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_process(&t);
  add_busy_samples(&t, 40000);
  add_busy_samples(&t, 30);
  size_t len = t.frame_len;
  uint8_t *records = malloc(len);
  memcpy(records, t.frame, len);
  size_t cap = tp_trace_frame_bound(len);
  uint8_t *plain = malloc(cap);
  size_t plain_size = plain_frame(records, len, plain, cap);
  end_frame(&t);
  expect_one_frame(t.data, t.len, records, len);
  /* Smaller than the same records compressed as one block run. */
  assert_true(t.len < plain_size);
  assert_int_equal(count_records(&t), 4);
  trace_reset(&t);
  free(records), free(plain);

  /* A small frame is compressed as it always was. */
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  add_busy_samples(&t, 2000);
  assert_true(t.frame_len < TP_TRACE_SPLIT_FRAME_MIN);
  records = malloc(t.frame_len);
  memcpy(records, t.frame, len = t.frame_len);
  plain = malloc(cap = tp_trace_frame_bound(len));
  plain_size = plain_frame(records, len, plain, cap);
  end_frame(&t);
  assert_int_equal(t.len, plain_size);
  assert_memory_equal(t.data, plain, plain_size);
  trace_reset(&t);
  free(records), free(plain);
}

/* Incompressible long fields, more than a frame may split at: the bound holds. */
static void test_split_bound(void **state) {
  (void)state;
  struct trace t = {0};
  add_header(&t, TP_TRACE_MAGIC, TP_TRACE_FORMAT_VERSION);
  static uint8_t text[5000];
  Tierpool__Trace__PerfMap map = TIERPOOL__TRACE__PERF_MAP__INIT;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_PERF_MAP;
  rec.perf_map = &map;
  for (int i = 0; i < 400; i++) {
    for (size_t k = 0; k < sizeof text; k++) text[k] = (uint8_t)rnd(256);
    map.text.data = text, map.text.len = i % 2 ? sizeof text : 100 + (size_t)i;
    add_record(&t, &rec);
  }
  size_t len = t.frame_len;
  uint8_t *records = malloc(len);
  memcpy(records, t.frame, len);
  /* Exactly the bound: tp_trace_compress_frame must not need more. */
  size_t bound = tp_trace_frame_bound(len);
  uint8_t *frame = malloc(bound);
  size_t n = tp_trace_compress_frame(&compressor, records, len, frame, bound);
  assert_true(n > 0 && n <= bound);
  expect_one_frame(frame, n, records, len);
  /* Too little room: an error, and the compressor still works afterwards. */
  assert_int_equal(tp_trace_compress_frame(&compressor, records, len, frame, len / 2), 0);
  n = tp_trace_compress_frame(&compressor, records, len, frame, bound);
  expect_one_frame(frame, n, records, len);
  end_frame(&t);
  assert_int_equal(count_records(&t), 401);
  trace_reset(&t);
  free(records), free(frame);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_free_refs),
      cmocka_unit_test_teardown(test_id_age_round_trip, remove_file),
      cmocka_unit_test_teardown(test_columns_round_trip, remove_file),
      cmocka_unit_test_teardown(test_old_fields_win, remove_file),
      cmocka_unit_test_teardown(test_blocks_per_column, remove_file),
      cmocka_unit_test_teardown(test_split_bound, remove_file),
  };
  return cmocka_run_group_tests(tests, setup_compressor, teardown_compressor);
}
