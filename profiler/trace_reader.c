/* trace_reader.c — the streaming trace reader (trace_reader.h).
 *
 * One frame at a time: its compressed bytes arrive in chunks from the file, its
 * content is decompressed whole into `frame` (so its checksum is checked
 * before any of its records is handed out), then records are cut from it.
 *
 * Format 2's and 3's compact encodings are undone here, so that every user
 * reads format 1's records: a Stacks record is checked whole, its frames
 * added to the section's prefix tree, then its stacks are handed out one
 * Stack record at a time; Samples get their stack column back, Histograms
 * their bucket and bytes columns, Frees their id_delta, MmapCalls their addr
 * and stack. */
#include "trace_reader.h"

#include "buckets.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
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
  /* The section's stack tree: node k is nodes[k - 1] (node 0, the root, is not stored). */
  struct tree_node {
    uint64_t frame;
    uint32_t parent, depth;
  } *nodes;
  size_t n_nodes, nodes_cap;
  uint64_t frames_out; /* frames of the section's stacks handed out: bounded by its tree (next_in_batch) */
  /* The section's stacks and their frames, each stack whole: what the writer
   * keeps of them is TP_TRACE_MAX_STACKS and TP_TRACE_MAX_STACK_FRAMES. */
  uint64_t section_stacks, section_frames;
  uint32_t sample_stack_max; /* highest stack id of the section's samples (Samples.stack_back) */
  /* Frees.id_age: the section's samples of this frame, as tp_trace_marks_prepare
   * leaves them, and the highest id of its earlier frames. */
  tp_trace_sample_mark *marks;
  size_t n_marks, marks_cap;
  uint64_t sample_id_prior;
  /* The Stacks record being handed out: stack i is the path of node batch_node[i]. */
  Tierpool__Trace__Record *batch;
  uint32_t *batch_node;
  bool *batch_truncated;
  size_t batch_next;
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
  /* The writer's frames use a 1 MiB window: a frame asking for more than
   * this is not one of ours, and would have the decoder allocate it. */
  if (r->dctx && ZSTD_isError(ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, TP_TRACE_ZSTD_WINDOW_LOG + 4)))
    ZSTD_freeDCtx(r->dctx), r->dctx = NULL;
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
  free(r->nodes);
  free(r->marks);
  tp_trace_record_free(r->batch);
  free(r->batch_node);
  free(r->batch_truncated);
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
  if (r->frame_len >= TP_TRACE_MAX_FRAME) /* checked at every step, not only when the buffer grows */
    return fail(r, "corrupt frame at offset %llu: more than %u MiB of records",
                (unsigned long long)r->frame_offset, TP_TRACE_MAX_FRAME >> 20);
  if (r->frame_cap - r->frame_len >= step) return 0;
  size_t cap = r->frame_cap ? r->frame_cap * 2 : step;
  if (cap < r->frame_len + step) cap = r->frame_len + step;
  if (cap > TP_TRACE_MAX_FRAME + step) cap = TP_TRACE_MAX_FRAME + step;
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

/* The file ends inside the current frame. */
static int frame_truncated(tp_trace_reader *r) {
  r->truncated = true;
  return fail(r, "truncated: last frame incomplete at offset %llu (%llu complete frames read)",
              (unsigned long long)r->frame_offset, (unsigned long long)r->frames);
}

/* Checks the header of the frame at in.pos is one the writer makes (it always
 * sets ZSTD_c_checksumFlag): 0, or -1 on error.  A header cut by the end of a
 * read chunk is moved to the front of the chunk and completed from the file. */
static int check_frame_header(tp_trace_reader *r) {
  unsigned long long at = (unsigned long long)r->frame_offset;
  ZSTD_frameHeader header;
  for (;;) {
    size_t need = ZSTD_getFrameHeader(&header, r->chunk + r->in.pos, r->in.size - r->in.pos);
    if (ZSTD_isError(need)) return frame_error(r, need);
    if (need == 0) break;
    size_t kept = r->in.size - r->in.pos;
    memmove(r->chunk, r->chunk + r->in.pos, kept);
    r->chunk_offset += r->in.pos;
    r->in.pos = 0;
    size_t got = fread(r->chunk + kept, 1, ZSTD_DStreamInSize() - kept, r->file);
    r->in.size = kept + got;
    if (got == 0) {
      if (ferror(r->file))
        return fail(r, "read error at offset %llu: %s", (unsigned long long)(r->chunk_offset + kept), strerror(errno));
      return frame_truncated(r);
    }
  }
  /* The decoder would skip one silently, or wait for the gigabytes it declares. */
  if (header.frameType == ZSTD_skippableFrame)
    return fail(r, "corrupt frame at offset %llu: a skippable frame (tierpool writes none)", at);
  if (!header.checksumFlag) return fail(r, "corrupt frame at offset %llu: no content checksum", at);
  return 0;
}

/* Decompresses the next frame into `frame`: 1, 0 at the end of the file, -1 on error. */
static int load_frame(tp_trace_reader *r) {
  r->frame_len = r->frame_pos = 0;
  if (r->n_marks && r->marks[r->n_marks - 1].id > r->sample_id_prior) r->sample_id_prior = r->marks[r->n_marks - 1].id;
  r->n_marks = 0;
  int have = refill(r);
  if (have <= 0) return have;
  r->frame_offset = r->chunk_offset + r->in.pos;
  if (check_frame_header(r) < 0) return -1;
  bool wants_input = false;
  for (;;) {
    /* The decoder wants more only when it left room in the output unused. */
    if (wants_input) {
      have = refill(r);
      if (have < 0) return -1;
      if (have == 0) return frame_truncated(r);
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
  if (h->format_version < TP_TRACE_FORMAT_OLDEST || h->format_version > TP_TRACE_FORMAT_VERSION)
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
  *out = rec;
  return 1;
}

/* ---- format 2 ---------------------------------------------------------------- */

static void end_batch(tp_trace_reader *r) {
  tp_trace_record_free(r->batch);
  free(r->batch_node);
  free(r->batch_truncated);
  r->batch = NULL;
  r->batch_node = NULL;
  r->batch_truncated = NULL;
  r->batch_next = 0;
}

#define STACKS_ERROR "corrupt Stacks record in frame at offset %llu: "

/* Checks a Stacks record whole and adds its frames to the tree; it becomes
 * the batch that tp_trace_next hands out.  Takes rec; -1 on error. */
static int start_batch(tp_trace_reader *r, Tierpool__Trace__Record *rec) {
  const Tierpool__Trace__Stacks *s = rec->stacks;
  unsigned long long at = (unsigned long long)r->frame_offset;
  r->batch = rec;
  size_t n = s->n_from;
  if (s->n_count != n) return fail(r, STACKS_ERROR "%zu from values but %zu counts", at, n, s->n_count);
  if (n && (uint64_t)s->first_id + n - 1 > UINT32_MAX) return fail(r, STACKS_ERROR "stack ids past 2^32 - 1", at);
  r->section_stacks += n;
  if (r->section_stacks > TP_TRACE_MAX_STACKS)
    return fail(r, STACKS_ERROR "the section would have %llu stacks (at most %u)", at,
                (unsigned long long)r->section_stacks, TP_TRACE_MAX_STACKS);
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) total += s->count[i];
  /* Before the frames are counted: the tree's nodes are what the counts say. */
  if (r->n_nodes + total > TP_TRACE_MAX_STACK_FRAMES)
    return fail(r, STACKS_ERROR "the section's tree would have %llu nodes (at most %u)", at,
                (unsigned long long)(r->n_nodes + total), TP_TRACE_MAX_STACK_FRAMES);
  if (total != s->n_frames)
    return fail(r, STACKS_ERROR "counts add up to %llu frames but %zu are written", at, (unsigned long long)total,
                s->n_frames);
  if (r->n_nodes + total > r->nodes_cap) {
    size_t cap = r->nodes_cap ? r->nodes_cap : 4096;
    while (cap < r->n_nodes + total) cap *= 2;
    struct tree_node *nodes = realloc(r->nodes, cap * sizeof *nodes);
    if (!nodes) return fail(r, "out of memory (stacks in frame at offset %llu)", at);
    r->nodes = nodes;
    r->nodes_cap = cap;
  }
  r->batch_node = malloc((n ? n : 1) * sizeof *r->batch_node);
  r->batch_truncated = calloc(n ? n : 1, sizeof *r->batch_truncated);
  if (!r->batch_node || !r->batch_truncated) return fail(r, "out of memory (stacks in frame at offset %llu)", at);
  for (size_t i = 0; i < s->n_truncated; i++) {
    if (s->truncated[i] >= n)
      return fail(r, STACKS_ERROR "truncated stack %u of a batch of %zu", at, s->truncated[i], n);
    r->batch_truncated[s->truncated[i]] = true;
  }
  const uint64_t *frame = s->frames;
  for (size_t i = 0; i < n; i++) {
    uint32_t id = s->first_id + (uint32_t)i, back = s->from[i];
    if (back > r->n_nodes)
      return fail(r, STACKS_ERROR "stack %u starts %u nodes back, but %zu nodes were written", at, id, back,
                  r->n_nodes);
    uint32_t node = back ? (uint32_t)(r->n_nodes + 1 - back) : 0, depth = node ? r->nodes[node - 1].depth : 0;
    if ((uint64_t)depth + s->count[i] > TP_TRACE_MAX_STACK_DEPTH)
      return fail(r, STACKS_ERROR "stack %u has more than %u frames", at, id, TP_TRACE_MAX_STACK_DEPTH);
    r->section_frames += depth + s->count[i];
    if (r->section_frames > TP_TRACE_MAX_STACK_FRAMES) /* stacks sharing deep nodes: each is handed out whole */
      return fail(r, STACKS_ERROR "stack %u takes the section's stacks past %u frames", at, id,
                  TP_TRACE_MAX_STACK_FRAMES);
    for (uint32_t k = 0; k < s->count[i]; k++) {
      r->nodes[r->n_nodes++] = (struct tree_node){*frame++, node, ++depth};
      node = (uint32_t)r->n_nodes;
    }
    r->batch_node[i] = node;
  }
  return 0;
}

/* The batch's next stack as a Stack record, frames innermost first. */
static int next_in_batch(tp_trace_reader *r, Tierpool__Trace__Record **out) {
  size_t i = r->batch_next++;
  uint32_t node = r->batch_node[i], depth = node ? r->nodes[node - 1].depth : 0;
  /* Distinct stacks end at distinct nodes, each at most 64 deep in a writer's
   * trace: many stacks sharing one deep node would expand a few bytes into
   * gigabytes of frames. */
  r->frames_out += depth;
  if (r->frames_out > TP_TRACE_STACK_FRAMES_PER_NODE * (r->n_nodes + 1) + TP_TRACE_MAX_STACK_DEPTH)
    return fail(r, "corrupt stacks in frame at offset %llu: stack %u takes the section past %llu frames for %zu nodes",
                (unsigned long long)r->frame_offset, r->batch->stacks->first_id + (uint32_t)i,
                (unsigned long long)r->frames_out, r->n_nodes);
  Tierpool__Trace__Record *rec = malloc(sizeof *rec);
  Tierpool__Trace__Stack *stack = malloc(sizeof *stack);
  uint64_t *frames = depth ? malloc(depth * sizeof *frames) : NULL;
  if (!rec || !stack || (depth && !frames)) {
    free(rec), free(stack), free(frames);
    return fail(r, "out of memory (stacks in frame at offset %llu)", (unsigned long long)r->frame_offset);
  }
  tierpool__trace__record__init(rec);
  tierpool__trace__stack__init(stack);
  for (uint32_t k = 0; k < depth; k++, node = r->nodes[node - 1].parent) frames[k] = r->nodes[node - 1].frame;
  stack->id = r->batch->stacks->first_id + (uint32_t)i;
  stack->n_frames = depth;
  stack->frames = frames;
  stack->truncated = r->batch_truncated[i];
  rec->kind_case = TIERPOOL__TRACE__RECORD__KIND_STACK;
  rec->stack = stack;
  *out = rec;
  return 1;
}

/* A format 1 Stack record, within the limits a Stacks record has. */
static int check_stack(tp_trace_reader *r, const Tierpool__Trace__Stack *s) {
  unsigned long long at = (unsigned long long)r->frame_offset;
  if (s->n_frames > TP_TRACE_MAX_STACK_DEPTH)
    return fail(r, "corrupt Stack record in frame at offset %llu: more than %u frames", at, TP_TRACE_MAX_STACK_DEPTH);
  if (++r->section_stacks > TP_TRACE_MAX_STACKS)
    return fail(r, "corrupt Stack record in frame at offset %llu: the section would have %llu stacks (at most %u)", at,
                (unsigned long long)r->section_stacks, TP_TRACE_MAX_STACKS);
  r->section_frames += s->n_frames;
  if (r->section_frames > TP_TRACE_MAX_STACK_FRAMES)
    return fail(r, "corrupt Stack record in frame at offset %llu: stack %u takes the section's stacks past %u frames",
                at, s->id, TP_TRACE_MAX_STACK_FRAMES);
  return 0;
}

/* Remembers the samples' times and ids for the frame's Frees.id_age. */
static int note_marks(tp_trace_reader *r, const Tierpool__Trace__Samples *s) {
  size_t n = s->n_id_delta;
  if (r->n_marks + n > r->marks_cap) {
    size_t cap = r->marks_cap ? r->marks_cap : 1024;
    while (cap < r->n_marks + n) cap *= 2;
    tp_trace_sample_mark *marks = realloc(r->marks, cap * sizeof *marks);
    if (!marks) return fail(r, "out of memory (samples in frame at offset %llu)", (unsigned long long)r->frame_offset);
    r->marks = marks;
    r->marks_cap = cap;
  }
  uint64_t id = 0, time_us = 0;
  for (size_t i = 0; i < n; i++) {
    id += s->id_delta[i];
    time_us += i < s->n_time_delta_us ? s->time_delta_us[i] : 0;
    r->marks[r->n_marks++] = (tp_trace_sample_mark){time_us, id};
  }
  if (n) tp_trace_marks_prepare(r->marks + (r->n_marks > n ? r->n_marks - n - 1 : 0), n + (r->n_marks > n));
  return 0;
}

/* Format 3 Frees as format 1 says them: id_delta. */
static int frees_v1(tp_trace_reader *r, Tierpool__Trace__Frees *f) {
  if (!f->n_id_age || f->n_id_delta) { /* id_delta wins */
    free(f->id_age);
    f->id_age = NULL, f->n_id_age = 0;
    return 0;
  }
  int64_t *ids = malloc(f->n_id_age * sizeof *ids);
  if (!ids) return fail(r, "out of memory (frees in frame at offset %llu)", (unsigned long long)r->frame_offset);
  uint64_t prev_id = 0, time_us = 0;
  for (size_t i = 0; i < f->n_id_age; i++) {
    time_us += i < f->n_time_delta_us ? f->time_delta_us[i] : 0;
    uint64_t id = tp_trace_free_ref(r->marks, r->n_marks, r->sample_id_prior, time_us) - (uint64_t)f->id_age[i];
    ids[i] = (int64_t)(id - prev_id), prev_id = id; /* mod 2^64 */
  }
  free(f->id_age);
  f->id_age = NULL;
  f->id_delta = ids, f->n_id_delta = f->n_id_age;
  f->n_id_age = 0;
  return 0;
}

/* A format 3 Module as format 1 says it: segments. */
static int module_v1(tp_trace_reader *r, Tierpool__Trace__Module *m) {
  size_t n = m->n_segment_vaddr;
  unsigned long long at = (unsigned long long)r->frame_offset;
  if (n && !m->n_segments) {
    m->segments = calloc(n, sizeof *m->segments);
    if (!m->segments) return fail(r, "out of memory (module in frame at offset %llu)", at);
    for (; m->n_segments < n; m->n_segments++) {
      size_t i = m->n_segments;
      Tierpool__Trace__Module__Segment *s = malloc(sizeof *s);
      if (!s) return fail(r, "out of memory (module in frame at offset %llu)", at);
      tierpool__trace__module__segment__init(s);
      s->vaddr = m->segment_vaddr[i];
      s->memsz = i < m->n_segment_memsz ? m->segment_memsz[i] : 0;
      s->file_offset = s->vaddr - (i < m->n_segment_offset_gap ? (uint64_t)m->segment_offset_gap[i] : 0);
      s->executable = i < m->n_segment_executable && m->segment_executable[i];
      m->segments[i] = s;
    }
  }
  free(m->segment_vaddr), free(m->segment_memsz), free(m->segment_offset_gap), free(m->segment_executable);
  m->segment_vaddr = m->segment_memsz = NULL, m->segment_offset_gap = NULL, m->segment_executable = NULL;
  m->n_segment_vaddr = m->n_segment_memsz = m->n_segment_offset_gap = m->n_segment_executable = 0;
  return 0;
}

/* Format 3 MmapCalls as format 1 says them: addr and stack. */
static int mmaps_v1(tp_trace_reader *r, Tierpool__Trace__MmapCalls *m) {
  unsigned long long at = (unsigned long long)r->frame_offset;
  if (m->n_addr_delta && !m->n_addr) {
    uint64_t *addr = malloc(m->n_addr_delta * sizeof *addr);
    if (!addr) return fail(r, "out of memory (mmap calls in frame at offset %llu)", at);
    for (size_t i = 0; i < m->n_addr_delta; i++) addr[i] = (i ? addr[i - 1] : 0) + (uint64_t)m->addr_delta[i];
    m->addr = addr, m->n_addr = m->n_addr_delta;
  }
  if (m->n_stack_delta && !m->n_stack) {
    uint32_t *stack = malloc(m->n_stack_delta * sizeof *stack);
    if (!stack) return fail(r, "out of memory (mmap calls in frame at offset %llu)", at);
    for (size_t i = 0; i < m->n_stack_delta; i++) stack[i] = (i ? stack[i - 1] : 0) + (uint32_t)m->stack_delta[i];
    m->stack = stack, m->n_stack = m->n_stack_delta;
  }
  free(m->addr_delta), free(m->stack_delta);
  m->addr_delta = NULL, m->stack_delta = NULL;
  m->n_addr_delta = m->n_stack_delta = 0;
  return 0;
}

/* A sample stands for a positive, finite number of allocations: anything else
 * would make every total it goes into NaN, infinite or negative. */
static bool weight_ok(double weight) { return isfinite(weight) && weight > 0; }

/* The section's rate: 0 (byte mode, or none), or one whose inverse, the weight of its samples, is a weight. */
static int check_process(tp_trace_reader *r, const Tierpool__Trace__Process *p) {
  if (p->sample_rate == 0 || (p->sample_rate > 0 && weight_ok(1.0 / p->sample_rate))) return 0;
  return fail(r, "corrupt Process record in frame at offset %llu: sample_rate %g (1/rate is no positive finite weight)",
              (unsigned long long)r->frame_offset, p->sample_rate);
}

static int check_weights(tp_trace_reader *r, const Tierpool__Trace__Samples *s) {
  uint64_t id = 0;
  for (size_t i = 0; i < s->n_weight && i < s->n_id_delta; i++) { /* a weight past the ids is no sample's */
    id += s->id_delta[i];
    if (!weight_ok(s->weight[i]))
      return fail(r,
                  "corrupt Samples record in frame at offset %llu: weight %g of sample %llu "
                  "(not a positive finite number)",
                  (unsigned long long)r->frame_offset, s->weight[i], (unsigned long long)id);
  }
  return 0;
}

/* Format 2 Samples as format 1 says them: stack. */
static int samples_v1(tp_trace_reader *r, Tierpool__Trace__Samples *s) {
  if (check_weights(r, s) < 0 || note_marks(r, s) < 0) return -1;
  bool back = s->n_stack_back && !s->n_stack;
  if (back) {
    s->stack = malloc(s->n_stack_back * sizeof *s->stack);
    if (!s->stack) return fail(r, "out of memory (samples in frame at offset %llu)", (unsigned long long)r->frame_offset);
    s->n_stack = s->n_stack_back;
  }
  for (size_t i = 0; i < s->n_stack; i++) {
    if (back) s->stack[i] = r->sample_stack_max + 1 - (uint32_t)s->stack_back[i]; /* mod 2^32 */
    if (s->stack[i] > r->sample_stack_max) r->sample_stack_max = s->stack[i];
  }
  free(s->stack_back);
  s->stack_back = NULL, s->n_stack_back = 0;
  return 0;
}

/* A format 2 Histogram as format 1 says it: bucket and bytes. */
static int histogram_v1(tp_trace_reader *r, Tierpool__Trace__Histogram *h) {
  unsigned long long at = (unsigned long long)r->frame_offset;
  if (h->n_bucket_step && !h->n_bucket) {
    uint32_t *bucket = malloc(h->n_bucket_step * sizeof *bucket);
    if (!bucket) return fail(r, "out of memory (histogram in frame at offset %llu)", at);
    for (size_t i = 0; i < h->n_bucket_step; i++) bucket[i] = (i ? bucket[i - 1] : 0) + h->bucket_step[i];
    h->bucket = bucket, h->n_bucket = h->n_bucket_step;
  }
  if (h->n_bytes_over && !h->n_bytes) {
    uint64_t *bytes = malloc(h->n_bytes_over * sizeof *bytes);
    if (!bytes) return fail(r, "out of memory (histogram in frame at offset %llu)", at);
    for (size_t i = 0; i < h->n_bytes_over; i++) {
      uint32_t b = i < h->n_bucket ? h->bucket[i] : 0;
      uint64_t allocs = i < h->n_allocs ? h->allocs[i] : 0;
      bytes[i] = h->bytes_over[i] + allocs * (b < TP_BUCKET_COUNT ? tp_bucket_lower(b) : 0); /* mod 2^64 */
    }
    h->bytes = bytes, h->n_bytes = h->n_bytes_over;
  }
  free(h->bucket_step), free(h->bytes_over);
  h->bucket_step = NULL, h->bytes_over = NULL;
  h->n_bucket_step = h->n_bytes_over = 0;
  return 0;
}

int tp_trace_next(tp_trace_reader *r, Tierpool__Trace__Record **out) {
  *out = NULL;
  for (;;) {
    if (r->failed) return -1;
    if (r->batch) {
      if (r->batch_next < r->batch->stacks->n_from) {
        if (next_in_batch(r, out) < 0) return -1;
        r->records++;
        return 1;
      }
      end_batch(r);
    }
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
    Tierpool__Trace__Record *rec = NULL;
    if (next_in_frame(r, &rec) < 0) return -1;
    switch (rec->kind_case) {
    case TIERPOOL__TRACE__RECORD__KIND_STACKS:
      start_batch(r, rec); /* takes rec; on error, the loop returns -1 */
      continue;
    case TIERPOOL__TRACE__RECORD__KIND_STACK: /* format 1: within a Stacks record's limits, too */
      if (check_stack(r, rec->stack) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      break;
    case TIERPOOL__TRACE__RECORD__KIND_PROCESS: /* node numbers and stack and sample ids are the section's */
      if (check_process(r, rec->process) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      r->n_nodes = 0;
      r->frames_out = 0;
      r->section_stacks = r->section_frames = 0;
      r->sample_stack_max = 0;
      r->n_marks = 0;
      r->sample_id_prior = 0;
      break;
    case TIERPOOL__TRACE__RECORD__KIND_SAMPLES:
      if (samples_v1(r, rec->samples) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      break;
    case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM:
      if (histogram_v1(r, rec->histogram) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      break;
    case TIERPOOL__TRACE__RECORD__KIND_MODULE:
      if (module_v1(r, rec->module) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      break;
    case TIERPOOL__TRACE__RECORD__KIND_FREES:
      if (frees_v1(r, rec->frees) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      break;
    case TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS:
      if (mmaps_v1(r, rec->mmap_calls) < 0) {
        tp_trace_record_free(rec);
        return -1;
      }
      break;
    default: break;
    }
    r->records++;
    *out = rec;
    return 1;
  }
}

void tp_trace_record_free(Tierpool__Trace__Record *record) {
  if (record) tierpool__trace__record__free_unpacked(record, NULL);
}

const char *tp_trace_error(const tp_trace_reader *r) { return r->failed ? r->error : NULL; }
bool tp_trace_truncated(const tp_trace_reader *r) { return r->truncated; }
uint64_t tp_trace_frames(const tp_trace_reader *r) { return r->frames; }
uint64_t tp_trace_records(const tp_trace_reader *r) { return r->records; }
