/* trace_codec.c — varints, record packing and frame compression (trace_codec.h). */
#include "trace_codec.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createCCtx_advanced */
#include <zstd.h>

size_t tp_trace_varint_size(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) n++;
  return n;
}

size_t tp_trace_varint_put(uint64_t v, uint8_t *out) {
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) out[n++] = (uint8_t)(v | 0x80);
  out[n++] = (uint8_t)v;
  return n;
}

int tp_trace_varint_get(const uint8_t *in, size_t avail, uint64_t *v) {
  uint64_t value = 0;
  for (size_t i = 0; i < TP_TRACE_VARINT_MAX; i++) {
    if (i >= avail) return 0;
    value |= (uint64_t)(in[i] & 0x7f) << (7 * i); /* bits past 64 are dropped, as protobuf does */
    if (!(in[i] & 0x80)) {
      *v = value;
      return (int)i + 1;
    }
  }
  return -1;
}

size_t tp_trace_record_packed_size(const Tierpool__Trace__Record *r) {
  size_t len = tierpool__trace__record__get_packed_size(r);
  return tp_trace_varint_size(len) + len;
}

size_t tp_trace_record_pack(const Tierpool__Trace__Record *r, uint8_t *out) {
  size_t len = tierpool__trace__record__get_packed_size(r);
  size_t prefix = tp_trace_varint_put(len, out);
  return prefix + tierpool__trace__record__pack(r, out + prefix);
}

int tp_trace_compressor_init(tp_trace_compressor *c, void *(*alloc)(void *opaque, size_t size),
                             void (*release)(void *opaque, void *address)) {
  c->cctx = alloc ? ZSTD_createCCtx_advanced((ZSTD_customMem){alloc, release, NULL}) : ZSTD_createCCtx();
  if (!c->cctx) return -1;
  /* The checksum lets a reader tell a damaged frame from a good one. */
  if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, TP_TRACE_ZSTD_LEVEL)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_windowLog, TP_TRACE_ZSTD_WINDOW_LOG)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_hashLog, TP_TRACE_ZSTD_TABLE_LOG)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_chainLog, TP_TRACE_ZSTD_TABLE_LOG)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1))) {
    tp_trace_compressor_fini(c);
    return -1;
  }
  return 0;
}

void tp_trace_compressor_fini(tp_trace_compressor *c) {
  ZSTD_freeCCtx(c->cctx);
  c->cctx = NULL;
}

void tp_trace_marks_prepare(tp_trace_sample_mark *marks, size_t n) {
  for (size_t i = 1; i < n; i++) {
    if (marks[i].time_us < marks[i - 1].time_us) marks[i].time_us = marks[i - 1].time_us;
    if (marks[i].id < marks[i - 1].id) marks[i].id = marks[i - 1].id;
  }
}

uint64_t tp_trace_free_ref(const tp_trace_sample_mark *marks, size_t n, uint64_t prior, uint64_t time_us) {
  size_t lo = 0, hi = n; /* the first mark later than time_us is in [lo, hi] */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (marks[mid].time_us > time_us) hi = mid;
    else lo = mid + 1;
  }
  return lo && marks[lo - 1].id > prior ? marks[lo - 1].id : prior;
}

/* Block headers and the blocks a split adds, at most. */
#define TP_TRACE_SPLIT_ROOM (16u * (2u * TP_TRACE_SPLIT_MAX + 2u))

size_t tp_trace_frame_bound(size_t len) { return ZSTD_compressBound(len) + TP_TRACE_SPLIT_ROOM; }

/* Skips one field of a message at p (its key read into *key): the end of the
 * field, or NULL if it runs past end. */
static const uint8_t *tp_trace_skip_field(const uint8_t *p, const uint8_t *end, uint64_t *key) {
  int n = tp_trace_varint_get(p, (size_t)(end - p), key);
  if (n <= 0) return NULL;
  p += n;
  uint64_t len;
  switch (*key & 7) {
  case 0:
    n = tp_trace_varint_get(p, (size_t)(end - p), &len);
    return n > 0 ? p + n : NULL;
  case 1: return end - p >= 8 ? p + 8 : NULL;
  case 5: return end - p >= 4 ? p + 4 : NULL;
  case 2:
    n = tp_trace_varint_get(p, (size_t)(end - p), &len);
    return n > 0 && len <= (uint64_t)(end - p - n) ? p + n + len : NULL;
  default: return NULL;
  }
}

/* Offsets in records[0..len) where a block should end: before and after
 * every long field of a record's message.  Returns their count (increasing). */
static size_t tp_trace_split_points(const uint8_t *records, size_t len, size_t *points) {
  const uint8_t *p = records, *end = records + len;
  size_t count = 0;
  while (p < end && count + 2 <= TP_TRACE_SPLIT_MAX) {
    uint64_t record_len, key, message_len;
    int n = tp_trace_varint_get(p, (size_t)(end - p), &record_len);
    if (n <= 0 || record_len > (uint64_t)(end - p - n)) break;
    const uint8_t *record = p + n, *record_end = record + record_len;
    p = record_end;
    /* A Record holds one field: the message of its kind. */
    n = tp_trace_varint_get(record, record_len, &key);
    if (n <= 0 || (key & 7) != 2) continue;
    const uint8_t *message = record + n;
    n = tp_trace_varint_get(message, (size_t)(record_end - message), &message_len);
    if (n <= 0 || message_len != (uint64_t)(record_end - message - n)) continue;
    for (const uint8_t *field = message + n; field < record_end && count + 2 <= TP_TRACE_SPLIT_MAX;) {
      const uint8_t *next = tp_trace_skip_field(field, record_end, &key);
      if (!next) break;
      if ((size_t)(next - field) >= TP_TRACE_SPLIT_FIELD_MIN) {
        size_t from = (size_t)(field - records), to = (size_t)(next - records);
        if (!count || points[count - 1] < from) points[count++] = from;
        if (to < len) points[count++] = to;
      }
      field = next;
    }
  }
  return count;
}

size_t tp_trace_compress_frame(tp_trace_compressor *c, const void *records, size_t len, void *out,
                               size_t out_cap) {
  size_t points[TP_TRACE_SPLIT_MAX];
  size_t splits = len >= TP_TRACE_SPLIT_FRAME_MIN ? tp_trace_split_points(records, len, points) : 0;
  if (!splits) {
    /* compress2 ends the frame: each call makes a frame that decodes on its own. */
    size_t n = ZSTD_compress2(c->cctx, out, out_cap, records, len);
    return ZSTD_isError(n) ? 0 : n;
  }
  /* One frame all the same: a flush ends a block, not the frame, and later
   * blocks still find their matches in the earlier ones. */
  if (ZSTD_isError(ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_only)) ||
      ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c->cctx, len)))
    return 0;
  ZSTD_outBuffer dst = {out, out_cap, 0};
  size_t from = 0;
  for (size_t i = 0; i <= splits; i++) {
    size_t to = i < splits ? points[i] : len;
    ZSTD_inBuffer src = {(const uint8_t *)records + from, to - from, 0};
    ZSTD_EndDirective end = i < splits ? ZSTD_e_flush : ZSTD_e_end;
    for (;;) {
      size_t left = ZSTD_compressStream2(c->cctx, &dst, &src, end);
      if (ZSTD_isError(left) || (left && dst.pos == dst.size)) {
        ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_only);
        return 0;
      }
      if (!left && src.pos == src.size) break;
    }
    from = to;
  }
  return dst.pos;
}
