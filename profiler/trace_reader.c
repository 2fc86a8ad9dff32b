/* trace_reader.c — the streaming trace reader (trace_reader.h).
 *
 * One frame at a time: its compressed bytes arrive in chunks from the file, its
 * content is decompressed whole into `frame` (so its checksum is checked
 * before any of its records is handed out), then records are cut from it. */
#include "trace_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

struct tp_trace_reader {
  FILE *file;
  char *path;
  ZSTD_DCtx *dctx;
  uint8_t *chunk;     /* compressed bytes read from the file */
  ZSTD_inBuffer in;   /* over chunk: pos = next byte to decompress */
  uint64_t chunk_offset; /* file offset of chunk[0] */
  uint8_t *frame;     /* the decompressed content of the current frame */
  size_t frame_len, frame_cap, frame_pos;
  uint64_t frame_offset; /* file offset of the current frame */
  uint64_t frames, records;
  bool at_end, failed, truncated;
  char error[512];
};

/* Puts the reader in error with "PATH: message". Returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(tp_trace_reader *r, const char *fmt, ...) {
  int n = snprintf(r->error, sizeof r->error, "%s: ", r->path);
  if (n < 0 || (size_t)n >= sizeof r->error) n = 0; /* a path this long: the message matters more */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->error + n, sizeof r->error - (size_t)n, fmt, ap);
  va_end(ap);
  r->failed = true;
  return -1;
}

tp_trace_reader *tp_trace_open(const char *path, char *err, size_t errlen) {
  tp_trace_reader *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "%s: out of memory", path);
    return NULL;
  }
  r->path = strdup(path);
  r->dctx = ZSTD_createDCtx();
  r->chunk = malloc(ZSTD_DStreamInSize());
  if (!r->path || !r->dctx || !r->chunk) {
    snprintf(err, errlen, "%s: out of memory", path);
    tp_trace_close(r);
    return NULL;
  }
  r->in.src = r->chunk;
  r->file = fopen(path, "rb");
  if (!r->file) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    tp_trace_close(r);
    return NULL;
  }
  return r;
}

void tp_trace_close(tp_trace_reader *r) {
  if (!r) return;
  if (r->file) fclose(r->file);
  ZSTD_freeDCtx(r->dctx);
  free(r->chunk);
  free(r->frame);
  free(r->path);
  free(r);
}

/* Makes compressed input available: 1 if there is some, 0 at the end of the
 * file, -1 on a read error. */
static int refill(tp_trace_reader *r) {
  if (r->in.pos < r->in.size) return 1;
  r->chunk_offset += r->in.size;
  r->in.size = fread(r->chunk, 1, ZSTD_DStreamInSize(), r->file);
  r->in.pos = 0;
  if (r->in.size > 0) return 1;
  if (ferror(r->file)) return fail(r, "read error at offset %llu: %s", (unsigned long long)r->chunk_offset,
                                   strerror(errno));
  return 0;
}

/* Room for one more decompression step in `frame`; -1 past TP_TRACE_MAX_FRAME. */
static int grow_frame(tp_trace_reader *r) {
  size_t step = ZSTD_DStreamOutSize();
  if (r->frame_cap - r->frame_len >= step) return 0;
  if (r->frame_len > TP_TRACE_MAX_FRAME)
    return fail(r, "corrupt frame at offset %llu: more than %u MiB of records",
                (unsigned long long)r->frame_offset, TP_TRACE_MAX_FRAME >> 20);
  size_t cap = r->frame_cap ? r->frame_cap * 2 : step;
  if (cap < r->frame_len + step) cap = r->frame_len + step;
  uint8_t *frame = realloc(r->frame, cap);
  if (!frame) return fail(r, "out of memory (frame at offset %llu)", (unsigned long long)r->frame_offset);
  r->frame = frame;
  r->frame_cap = cap;
  return 0;
}

static int frame_error(tp_trace_reader *r, size_t zstd_result) {
  /* Garbage where the first frame should start: some other kind of file. */
  if (r->frame_offset == 0 && ZSTD_getErrorCode(zstd_result) == ZSTD_error_prefix_unknown)
    return fail(r, "not a tierpool trace (not zstd-compressed)");
  return fail(r, "corrupt frame at offset %llu: %s", (unsigned long long)r->frame_offset,
              ZSTD_getErrorName(zstd_result));
}

/* Decompresses the next frame into `frame`: 1, 0 at the end of the file, -1 on error. */
static int load_frame(tp_trace_reader *r) {
  r->frame_len = r->frame_pos = 0;
  int have = refill(r);
  if (have <= 0) return have;
  r->frame_offset = r->chunk_offset + r->in.pos;
  bool wants_input = false;
  for (;;) {
    /* The decoder wants more only when it left room in the output unused. */
    if (wants_input) {
      have = refill(r);
      if (have < 0) return -1;
      if (have == 0) {
        r->truncated = true;
        return fail(r, "truncated: last frame incomplete at offset %llu (%llu complete frames read)",
                    (unsigned long long)r->frame_offset, (unsigned long long)r->frames);
      }
    }
    if (grow_frame(r) < 0) return -1;
    ZSTD_outBuffer out = {r->frame, r->frame_cap, r->frame_len};
    size_t left = ZSTD_decompressStream(r->dctx, &out, &r->in);
    r->frame_len = out.pos;
    if (ZSTD_isError(left)) return frame_error(r, left);
    if (left == 0) { /* the frame ended, its checksum matched, and the decoder stopped at its end */
      r->frames++;
      return 1;
    }
    wants_input = out.pos < out.size && r->in.pos == r->in.size;
  }
}

/* The first record must say this is a trace we understand. */
static int check_header(tp_trace_reader *r, const Tierpool__Trace__Record *rec) {
  if (rec->kind_case != TIERPOOL__TRACE__RECORD__KIND_HEADER)
    return fail(r, "not a tierpool trace (first record is not a Header)");
  const Tierpool__Trace__Header *h = rec->header;
  if (!h->magic || strcmp(h->magic, TP_TRACE_MAGIC) != 0) return fail(r, "not a tierpool trace (bad magic)");
  if (h->format_version != TP_TRACE_FORMAT_VERSION)
    return fail(r, "unsupported format version %u", h->format_version);
  return 0;
}

/* Cuts the next record from the current frame, which has bytes left. */
static int next_in_frame(tp_trace_reader *r, Tierpool__Trace__Record **out) {
  const uint8_t *p = r->frame + r->frame_pos;
  size_t avail = r->frame_len - r->frame_pos;
  unsigned long long at = (unsigned long long)r->frame_offset;
  uint64_t len;
  int prefix = tp_trace_varint_get(p, avail, &len);
  if (prefix < 0) return fail(r, "corrupt record in frame at offset %llu: bad length (varint too long)", at);
  if (prefix == 0)
    return fail(r, "corrupt record in frame at offset %llu: bad length (frame ends inside it)", at);
  if (len > TP_TRACE_MAX_RECORD)
    return fail(r, "corrupt record in frame at offset %llu: bad length %llu (over %u MiB)", at,
                (unsigned long long)len, TP_TRACE_MAX_RECORD >> 20);
  if (len > avail - (size_t)prefix) /* a record never spans two frames */
    return fail(r, "corrupt record in frame at offset %llu: bad length %llu (past the end of the frame)", at,
                (unsigned long long)len);
  Tierpool__Trace__Record *rec = tierpool__trace__record__unpack(NULL, len, p + prefix);
  if (!rec) return fail(r, "corrupt record in frame at offset %llu: protobuf unpack failed", at);
  r->frame_pos += (size_t)prefix + len;
  if (r->records == 0 && check_header(r, rec) < 0) {
    tp_trace_record_free(rec);
    return -1;
  }
  r->records++;
  *out = rec;
  return 1;
}

int tp_trace_next(tp_trace_reader *r, Tierpool__Trace__Record **out) {
  *out = NULL;
  if (r->failed) return -1;
  if (r->at_end) return 0;
  while (r->frame_pos == r->frame_len) { /* frames may be empty */
    int got = load_frame(r);
    if (got < 0) return -1;
    if (got == 0) {
      if (r->records == 0)
        return fail(r, r->chunk_offset == 0 ? "empty file" : "no records (only empty frames)");
      r->at_end = true;
      return 0;
    }
  }
  return next_in_frame(r, out);
}

void tp_trace_record_free(Tierpool__Trace__Record *record) {
  if (record) tierpool__trace__record__free_unpacked(record, NULL);
}

const char *tp_trace_error(const tp_trace_reader *r) { return r->failed ? r->error : NULL; }
bool tp_trace_truncated(const tp_trace_reader *r) { return r->truncated; }
uint64_t tp_trace_frames(const tp_trace_reader *r) { return r->frames; }
uint64_t tp_trace_records(const tp_trace_reader *r) { return r->records; }
