/* check_damage.c — `damage TRACE SCRATCH`: damaged copies of a good trace
 * (written to SCRATCH) are read safely.  Cut inside a frame, the reader hands
 * out exactly the records of the complete frames before the cut, then says
 * "truncated"; cut at a frame boundary, it ends cleanly there.  With one bit
 * flipped, it either rejects the frame (always, for the frame's magic and
 * checksum) or gives back every record unchanged; never different records. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "checker.h"

struct blob {
  uint8_t *data;
  size_t len;
};

static struct blob read_file(const char *path) {
  struct blob b = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return b;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  b.data = malloc(len > 0 ? (size_t)len : 1);
  if (b.data && len > 0 && fread(b.data, 1, (size_t)len, f) == (size_t)len) b.len = (size_t)len;
  fclose(f);
  return b;
}

static int write_file(const char *path, const uint8_t *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = fwrite(data, 1, len, f);
  return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Every record of a file, each packed again: what it said, byte for byte. */
struct reading {
  struct blob *records;
  size_t n;
  int status; /* of the last tp_trace_next: 0 clean end, -1 error */
  bool truncated;
  char error[512];
};

static struct reading read_all(const char *path) {
  struct reading out = {0};
  char err[512];
  tp_trace_reader *r = tp_trace_open(path, err, sizeof err);
  if (!r) {
    out.status = -1;
    snprintf(out.error, sizeof out.error, "%s", err);
    return out;
  }
  size_t cap = 0;
  Tierpool__Trace__Record *rec;
  while ((out.status = tp_trace_next(r, &rec)) > 0) {
    if (out.n == cap) out.records = realloc(out.records, (cap = cap ? cap * 2 : 256) * sizeof *out.records);
    struct blob *b = &out.records[out.n++];
    b->len = tp_trace_record_packed_size(rec);
    b->data = malloc(b->len);
    tp_trace_record_pack(rec, b->data);
    tp_trace_record_free(rec);
  }
  out.truncated = tp_trace_truncated(r);
  if (tp_trace_error(r)) snprintf(out.error, sizeof out.error, "%s", tp_trace_error(r));
  tp_trace_close(r);
  return out;
}

static void reading_free(struct reading *x) {
  for (size_t i = 0; i < x->n; i++) free(x->records[i].data);
  free(x->records);
}

/* The first n records of a and b are the same. */
static bool same_records(const struct reading *a, const struct reading *b, size_t n) {
  if (a->n < n || b->n < n) return false;
  for (size_t i = 0; i < n; i++)
    if (a->records[i].len != b->records[i].len || memcmp(a->records[i].data, b->records[i].data, a->records[i].len))
      return false;
  return true;
}

/* A copy cut at `cut`, inside frame k (or at its start): records of frames < k, then truncated. */
static void check_cut(const char *scratch, const struct blob *file, size_t cut, size_t k, bool at_boundary,
                      const struct reading *whole, const size_t *records_before) {
  if (write_file(scratch, file->data, cut) != 0) {
    expect(false, "writing %s", scratch);
    return;
  }
  struct reading r = read_all(scratch);
  size_t want = records_before[k];
  if (at_boundary)
    expect(r.status == 0 && r.n == want && same_records(&r, whole, want),
           "cut at %zu, the start of frame %zu: a clean end after %zu records (read %zu, status %d%s%s)", cut, k, want,
           r.n, r.status, r.error[0] ? ": " : "", r.error);
  else
    expect(r.status < 0 && r.truncated == (cut > 0) && r.error[0] && r.n == want && same_records(&r, whole, want),
           "cut at %zu, inside frame %zu: the %zu records before it, then an error (read %zu, truncated=%d: %s)", cut,
           k, want, r.n, (int)r.truncated, r.error);
  reading_free(&r);
}

/* A copy with bit `bit` of byte `at` flipped: rejected, or all records unchanged. */
static void check_flip(const char *scratch, const struct blob *file, size_t at, int bit, const char *where,
                       bool must_reject, const struct reading *whole) {
  file->data[at] ^= (uint8_t)(1u << bit);
  int written = write_file(scratch, file->data, file->len);
  file->data[at] ^= (uint8_t)(1u << bit);
  if (written != 0) {
    expect(false, "writing %s", scratch);
    return;
  }
  struct reading r = read_all(scratch);
  bool rejected = r.status < 0 && r.error[0];
  bool unchanged = r.status == 0 && r.n == whole->n && same_records(&r, whole, whole->n);
  expect(must_reject ? rejected : rejected || unchanged, "bit %d of byte %zu (%s) flipped: %s", bit, at, where,
         rejected ? r.error : unchanged ? "read back unchanged" : "DIFFERENT records handed out");
  reading_free(&r);
}

int check_damage(int argc, char **argv) {
  if (argc != 3) return -1;
  const char *scratch = argv[2];
  struct blob file = read_file(argv[1]);
  /* Frame boundaries, and how many records the frames before each hold.  A
   * trace whose writer was killed is taken up to its last complete frame. */
  static size_t starts[4097], records_before[4097];
  size_t nframes = 0, at = 0;
  while (at < file.len && nframes < 4096) {
    size_t len = ZSTD_findFrameCompressedSize(file.data + at, file.len - at);
    if (ZSTD_isError(len)) break;
    starts[nframes++] = at;
    at += len;
  }
  starts[nframes] = file.len = at;
  if (write_file(scratch, file.data, file.len) != 0) return -1;
  struct reading whole = read_all(scratch);
  if (!file.len || whole.status != 0) {
    fprintf(stderr, "trace_check damage: %s unreadable: %s\n", argv[1], whole.error);
    return -1;
  }
  expect(nframes >= 3, "the trace has %zu frames (want 3 or more for this test)", nframes);
  for (size_t k = 0; k <= nframes; k++) {
    if (write_file(scratch, file.data, starts[k]) != 0) return -1;
    struct reading r = read_all(scratch);
    records_before[k] = r.n;
    reading_free(&r);
  }
  expect(records_before[nframes] == whole.n, "frames found by zstd hold all %zu records", whole.n);
  /* Cuts: the empty file, then in the first, second and last frames. */
  check_cut(scratch, &file, 0, 0, false, &whole, records_before);
  for (size_t k = 0; k < nframes; k++) {
    if (k > 1 && k + 1 < nframes) continue;
    size_t len = starts[k + 1] - starts[k];
    if (k) check_cut(scratch, &file, starts[k], k, true, &whole, records_before);
    check_cut(scratch, &file, starts[k] + 1, k, false, &whole, records_before);
    check_cut(scratch, &file, starts[k] + len / 2, k, false, &whole, records_before);
    check_cut(scratch, &file, starts[k + 1] - 1, k, false, &whole, records_before);
  }
  /* Flips in the first, second and last frames. */
  for (size_t k = 0; k < nframes; k++) {
    if (k > 1 && k + 1 < nframes) continue;
    size_t start = starts[k], end = starts[k + 1];
    check_flip(scratch, &file, start + 1, 3, "frame magic", true, &whole);
    check_flip(scratch, &file, end - 2, 5, "frame checksum", true, &whole);
    check_flip(scratch, &file, start + 4, 0, "frame header", false, &whole);
    for (int i = 1; i < 8; i++)
      check_flip(scratch, &file, start + (end - start) * (size_t)i / 8, i - 1, "frame content", false, &whole);
  }
  free(file.data);
  reading_free(&whole);
  return checker_failures;
}
