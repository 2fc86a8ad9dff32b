/* trace_codec.c — varints, record packing and frame compression (trace_codec.h). */
#include "trace_codec.h"

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

int tp_trace_compressor_init(tp_trace_compressor *c) {
  c->cctx = ZSTD_createCCtx();
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

size_t tp_trace_frame_bound(size_t len) { return ZSTD_compressBound(len); }

size_t tp_trace_compress_frame(tp_trace_compressor *c, const void *records, size_t len, void *out,
                               size_t out_cap) {
  /* compress2 ends the frame: each call makes a frame that decodes on its own. */
  size_t n = ZSTD_compress2(c->cctx, out, out_cap, records, len);
  return ZSTD_isError(n) ? 0 : n;
}
