/* make_trace.c — `make_trace SPEC OUT`: writes a trace with known contents
 * from a text description, through the same codec as the recorder, so that
 * the analyzer's numbers can be checked against what the test put in.
 *
 * SPEC: one record per line, `#` comments, blank lines ignored.  Numbers are
 * decimal or 0x hex; times in µs since the process's start.  Each line:
 *
 *   process pid=N [ppid=N] [exe=PATH] [argv=A,B,C] [host=NAME] [start_ns=N]
 *           [rate=R] [sample_bytes=N] [classes=16,32,...] [buddy_max=N] [validate=1]
 *   module path=PATH [build_id=HEX] [bias=N] [seg=VADDR:MEMSZ:OFFSET:X ...]
 *   thread id=N tid=N [name=S]
 *   tenant id=N name=S
 *   stack id=N frames=A,B,... [truncated=1]
 *   sample id=N t=US size=N stack=N [tier=N] [thread=N] [align=LOG2] [weight=W] [tenant=N] [usable=N]
 *   free id=N t=US [stack=N]
 *   mmap kind=mmap|munmap|mremap|mprotect|madvise t=US addr=N length=N [prot=N] [flags=N]
 *        [stack=N] [thread=N] [old_addr=N]
 *   alloc size=N count=N [frees=N] [tenant=N]      exact histogram: count allocations of size N
 *                                                   (and frees of that many blocks), at the next flush
 *   flush t=US          writes the histogram counted since the last flush (as the recorder does each second)
 *   snapshot t=US [rss=N] tier=T:LIVE:RESIDENT:PEAK ... [reservation=START:SIZE:ACCESSIBLE ...]
 *   jit start=N size=N [removed=1] [t=US]
 *   perfmap LINE...     the rest of the line + "\n" is perf-map text ("START SIZE NAME")
 *   end t=US [samples=N] [dropped=N] [allocations=N]
 *   exec t=US [path=PATH] [error=ERRNO]   an exec of PATH: the image was replaced (error=0, nothing after),
 *                       or the exec came back with ERRNO (error=, after the first)
 *   frame               ends the current zstd frame (records are otherwise grouped ~16 per frame)
 *
 * Consecutive sample lines (and free, mmap lines) are written as one columnar
 * batch, as the recorder does.  Exit status 0, or 1 with a message naming the
 * spec line. */
/* Details the format above leaves open, settled as the recorder does:
 * - a batch's first id and time are deltas from 0 (absolute), later ones from
 *   the previous element of the batch; times within a batch must not go back;
 * - the weight, tenant and usable columns of a batch are written only when one
 *   of its samples gives them (others then get 1/rate, 0, 0); a free batch's
 *   stack column only when one of its frees gives stack=;
 * - align defaults to 4 (16 bytes); tier, thread, tenant to 0;
 * - a flush writes one Histogram per tenant that counted something (an empty
 *   one for tenant 0 when nothing was counted), with frees in size N's bucket;
 * - also accepted: process start_mono_ns=N, module time_ns=N,
 *   tier=T:LIVE:RESIDENT:PEAK:TENANT and reservation=START:SIZE:ACCESSIBLE:RSS. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buckets.h"
#include "trace_codec.h"

#define RECORDS_PER_FRAME 16
#define MAX_FIELDS 256

/* ---- errors ---------------------------------------------------------------- */

static const char *spec_path, *out_path;
static unsigned spec_line;

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "make_trace: %s:%u: ", spec_path, spec_line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (out_path) unlink(out_path); /* no half-written trace left behind */
  exit(1);
}

static void *xrealloc(void *p, size_t size) {
  p = realloc(p, size ? size : 1);
  if (!p) fail("out of memory");
  return p;
}

/* Appends one element to a growing array of elements of elem bytes. */
#define PUSH(array, n, cap, value)                                   \
  do {                                                               \
    if ((n) == (cap)) {                                              \
      (cap) = (cap) ? (cap) * 2 : 64;                                \
      (array) = xrealloc((array), (cap) * sizeof *(array));          \
    }                                                                \
    (array)[(n)++] = (value);                                        \
  } while (0)

/* ---- the line's key=value fields ------------------------------------------- */

struct fields {
  char *key[MAX_FIELDS], *value[MAX_FIELDS];
  bool used[MAX_FIELDS];
  int n;
};

static void split_fields(char *rest, struct fields *f) {
  f->n = 0;
  for (char *tok = strtok(rest, " \t"); tok; tok = strtok(NULL, " \t")) {
    char *eq = strchr(tok, '=');
    if (!eq || eq == tok) fail("'%s' is not KEY=VALUE", tok);
    if (f->n == MAX_FIELDS) fail("more than %d fields", MAX_FIELDS);
    *eq = '\0';
    f->key[f->n] = tok, f->value[f->n] = eq + 1, f->used[f->n] = false;
    f->n++;
  }
}

/* The next unused value of key, or NULL. */
static const char *take(struct fields *f, const char *key) {
  for (int i = 0; i < f->n; i++) {
    if (!f->used[i] && strcmp(f->key[i], key) == 0) {
      f->used[i] = true;
      return f->value[i];
    }
  }
  return NULL;
}

static void no_more(const struct fields *f, const char *kind) {
  for (int i = 0; i < f->n; i++)
    if (!f->used[i]) fail("%s: unknown or repeated field '%s'", kind, f->key[i]);
}

/* Decimal or 0x hex, the whole text. */
static uint64_t parse_u64(const char *text, const char *what) {
  const char *digits = text;
  int base = 10;
  if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) digits = text + 2, base = 16;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(digits, &end, base);
  if (!*digits || *end || errno || *digits == '-' || *digits == '+') fail("%s: bad number '%s'", what, text);
  return v;
}

static double parse_double(const char *text, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (!*text || *end || errno) fail("%s: bad number '%s'", what, text);
  return v;
}

static uint32_t parse_u32(const char *text, const char *what) {
  uint64_t v = parse_u64(text, what);
  if (v > UINT32_MAX) fail("%s: %s is over 32 bits", what, text);
  return (uint32_t)v;
}

static uint64_t need_u64(struct fields *f, const char *key, const char *kind) {
  const char *v = take(f, key);
  if (!v) fail("%s: %s= is required", kind, key);
  return parse_u64(v, key);
}

static uint32_t need_u32(struct fields *f, const char *key, const char *kind) {
  uint64_t v = need_u64(f, key, kind);
  if (v > UINT32_MAX) fail("%s: %s= is over 32 bits", kind, key);
  return (uint32_t)v;
}

static uint64_t opt_u64(struct fields *f, const char *key, uint64_t otherwise) {
  const char *v = take(f, key);
  return v ? parse_u64(v, key) : otherwise;
}

static uint32_t opt_u32(struct fields *f, const char *key, uint32_t otherwise) {
  const char *v = take(f, key);
  return v ? parse_u32(v, key) : otherwise;
}

/* Splits "A<sep>B<sep>C" in place into at most cap parts; returns the count. */
static size_t split(char *text, char sep, char **parts, size_t cap) {
  size_t n = 0;
  for (char *p = text;;) {
    if (n == cap) fail("more than %zu parts in '%s'", cap, text);
    parts[n++] = p;
    char *next = strchr(p, sep);
    if (!next) break;
    *next = '\0';
    p = next + 1;
  }
  return n;
}

/* ---- the output ------------------------------------------------------------ */

struct writer {
  FILE *file;
  tp_trace_compressor compressor;
  uint8_t *data;
  size_t len, cap;
  unsigned records; /* in the current frame */
};

static void end_frame(struct writer *w) {
  if (!w->len) return;
  size_t bound = tp_trace_frame_bound(w->len);
  uint8_t *frame = xrealloc(NULL, bound);
  size_t size = tp_trace_compress_frame(&w->compressor, w->data, w->len, frame, bound);
  if (!size) fail("zstd compression failed");
  if (fwrite(frame, 1, size, w->file) != size) fail("writing %s: %s", out_path, strerror(errno));
  free(frame);
  w->len = 0;
  w->records = 0;
}

static void put_record(struct writer *w, Tierpool__Trace__Record *r) {
  size_t need = tp_trace_record_packed_size(r);
  if (w->len + need > w->cap) {
    while (w->len + need > w->cap) w->cap = w->cap ? w->cap * 2 : 64 << 10;
    w->data = xrealloc(w->data, w->cap);
  }
  w->len += tp_trace_record_pack(r, w->data + w->len);
  if (++w->records >= RECORDS_PER_FRAME) end_frame(w);
}

/* ---- batches under construction -------------------------------------------- */

enum batch_kind { BATCH_NONE, BATCH_SAMPLES, BATCH_FREES, BATCH_MMAPS, BATCH_PERFMAP };

struct batch {
  enum batch_kind kind;
  size_t n, cap, text_len, text_cap;
  uint64_t prev_id, prev_us;
  bool has_weight, has_tenant, has_usable, has_stack;
  uint64_t *ids, *times, *sizes, *usable, *addrs, *lengths, *olds;
  int64_t *free_ids;
  uint32_t *stacks, *threads, *tiers, *aligns, *tenants, *kinds, *prots, *flags;
  double *weights;
  char *text;
};

/* Grows every column so that one more element fits. */
static void batch_reserve(struct batch *b) {
  if (b->n < b->cap) return;
  b->cap = b->cap ? b->cap * 2 : 64;
#define GROW(col) b->col = xrealloc(b->col, b->cap * sizeof *b->col)
  GROW(ids), GROW(times), GROW(sizes), GROW(usable), GROW(addrs), GROW(lengths), GROW(olds), GROW(free_ids);
  GROW(stacks), GROW(threads), GROW(tiers), GROW(aligns), GROW(tenants), GROW(kinds), GROW(prots), GROW(flags);
  GROW(weights);
#undef GROW
}

/* The time delta of the next element: times of a batch never go back. */
static uint64_t batch_time_delta(struct batch *b, uint64_t us) {
  if (us < b->prev_us) fail("t=%llu goes back in time within a batch (previous %llu)", (unsigned long long)us,
                            (unsigned long long)b->prev_us);
  uint64_t delta = us - b->prev_us;
  b->prev_us = us;
  return delta;
}

static void write_samples(struct writer *w, struct batch *b, double default_weight) {
  Tierpool__Trace__Samples s = TIERPOOL__TRACE__SAMPLES__INIT;
  s.n_id_delta = s.n_time_delta_us = s.n_size = s.n_stack = s.n_thread = s.n_tier = s.n_align_log2 = b->n;
  s.id_delta = b->ids, s.time_delta_us = b->times, s.size = b->sizes, s.stack = b->stacks;
  s.thread = b->threads, s.tier = b->tiers, s.align_log2 = b->aligns;
  if (b->has_weight) {
    for (size_t i = 0; i < b->n; i++)
      if (b->weights[i] < 0) b->weights[i] = default_weight;
    s.n_weight = b->n, s.weight = b->weights;
  }
  if (b->has_tenant) s.n_tenant = b->n, s.tenant = b->tenants;
  if (b->has_usable) s.n_usable = b->n, s.usable = b->usable;
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_SAMPLES;
  r.samples = &s;
  put_record(w, &r);
}

static void write_frees(struct writer *w, struct batch *b) {
  Tierpool__Trace__Frees f = TIERPOOL__TRACE__FREES__INIT;
  f.n_id_delta = f.n_time_delta_us = b->n;
  f.id_delta = b->free_ids, f.time_delta_us = b->times;
  if (b->has_stack) f.n_stack = b->n, f.stack = b->stacks;
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_FREES;
  r.frees = &f;
  put_record(w, &r);
}

static void write_mmaps(struct writer *w, struct batch *b) {
  Tierpool__Trace__MmapCalls m = TIERPOOL__TRACE__MMAP_CALLS__INIT;
  m.n_kind = m.n_time_delta_us = m.n_addr = m.n_length = m.n_prot = m.n_flags = m.n_stack = m.n_thread = b->n;
  m.n_old_addr = b->n;
  m.kind = b->kinds, m.time_delta_us = b->times, m.addr = b->addrs, m.length = b->lengths, m.prot = b->prots;
  m.flags = b->flags, m.stack = b->stacks, m.thread = b->threads, m.old_addr = b->olds;
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS;
  r.mmap_calls = &m;
  put_record(w, &r);
}

static void write_perfmap(struct writer *w, struct batch *b) {
  Tierpool__Trace__PerfMap p = TIERPOOL__TRACE__PERF_MAP__INIT;
  p.text.data = (uint8_t *)b->text;
  p.text.len = b->text_len;
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_PERF_MAP;
  r.perf_map = &p;
  put_record(w, &r);
}

/* ---- the spec, line by line ------------------------------------------------- */

/* One tenant's counts since the last flush. */
struct tenant_hist {
  uint64_t allocs[TP_BUCKET_COUNT], bytes[TP_BUCKET_COUNT], frees[TP_BUCKET_COUNT];
  bool touched;
};

struct state {
  struct writer w;
  struct batch batch;
  double default_weight; /* 1/rate of the current process */
  struct tenant_hist *hists;
  size_t n_hists; /* indexed by tenant id */
};

static void end_batch(struct state *st) {
  struct batch *b = &st->batch;
  switch (b->kind) {
  case BATCH_SAMPLES: write_samples(&st->w, b, st->default_weight); break;
  case BATCH_FREES: write_frees(&st->w, b); break;
  case BATCH_MMAPS: write_mmaps(&st->w, b); break;
  case BATCH_PERFMAP: write_perfmap(&st->w, b); break;
  case BATCH_NONE: break;
  }
  b->kind = BATCH_NONE;
  b->n = b->text_len = 0;
  b->prev_id = b->prev_us = 0;
  b->has_weight = b->has_tenant = b->has_usable = b->has_stack = false;
}

/* The batch of this kind, started if the previous line was of another kind. */
static struct batch *batch_for(struct state *st, enum batch_kind kind) {
  if (st->batch.kind != kind) end_batch(st);
  st->batch.kind = kind;
  batch_reserve(&st->batch);
  return &st->batch;
}

static void line_process(struct state *st, struct fields *f) {
  Tierpool__Trace__Process p = TIERPOOL__TRACE__PROCESS__INIT;
  char *argv[256], *classes_text[1024];
  uint32_t classes[1024];
  p.pid = need_u32(f, "pid", "process");
  p.ppid = opt_u32(f, "ppid", 0);
  const char *v;
  p.executable = (char *)((v = take(f, "exe")) ? v : "");
  p.hostname = (char *)((v = take(f, "host")) ? v : "");
  if ((v = take(f, "argv"))) p.n_argv = split((char *)v, ',', argv, 256), p.argv = argv;
  p.start_unix_ns = opt_u64(f, "start_ns", 0);
  p.start_mono_ns = opt_u64(f, "start_mono_ns", 0);
  p.sample_rate = (v = take(f, "rate")) ? parse_double(v, "rate") : 0;
  p.sample_bytes = opt_u64(f, "sample_bytes", 0);
  if ((v = take(f, "classes"))) {
    p.n_size_classes = split((char *)v, ',', classes_text, 1024);
    for (size_t i = 0; i < p.n_size_classes; i++) classes[i] = parse_u32(classes_text[i], "classes");
    p.size_classes = classes;
  }
  p.buddy_max = opt_u64(f, "buddy_max", 0);
  p.validate = opt_u64(f, "validate", 0) != 0;
  no_more(f, "process");
  st->default_weight = p.sample_rate > 0 ? 1.0 / p.sample_rate : 1.0;
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_PROCESS;
  r.process = &p;
  put_record(&st->w, &r);
}

static void line_module(struct state *st, struct fields *f) {
  Tierpool__Trace__Module m = TIERPOOL__TRACE__MODULE__INIT;
  Tierpool__Trace__Module__Segment segs[64], *seg_ptrs[64];
  uint8_t build_id[64];
  const char *v;
  if (!(m.path = (char *)take(f, "path"))) fail("module: path= is required");
  if ((v = take(f, "build_id"))) {
    size_t len = strlen(v);
    if (len % 2 || len / 2 > sizeof build_id) fail("module: build_id= needs an even number of hex digits (<= 128)");
    for (size_t i = 0; i < len / 2; i++) {
      char byte[3] = {v[2 * i], v[2 * i + 1], 0}, *end;
      build_id[i] = (uint8_t)strtoul(byte, &end, 16);
      if (*end) fail("module: bad build_id '%s'", v);
    }
    m.build_id.data = build_id, m.build_id.len = len / 2;
  }
  m.load_bias = opt_u64(f, "bias", 0);
  m.time_ns = opt_u64(f, "time_ns", 0);
  while ((v = take(f, "seg"))) {
    if (m.n_segments == 64) fail("module: more than 64 segments");
    char *parts[4];
    if (split((char *)v, ':', parts, 4) != 4) fail("module: seg= is VADDR:MEMSZ:OFFSET:X");
    Tierpool__Trace__Module__Segment *s = &segs[m.n_segments];
    tierpool__trace__module__segment__init(s);
    s->vaddr = parse_u64(parts[0], "seg vaddr"), s->memsz = parse_u64(parts[1], "seg memsz");
    s->file_offset = parse_u64(parts[2], "seg offset"), s->executable = parse_u64(parts[3], "seg X") != 0;
    seg_ptrs[m.n_segments++] = s;
  }
  m.segments = seg_ptrs;
  no_more(f, "module");
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_MODULE;
  r.module = &m;
  put_record(&st->w, &r);
}

static void line_thread_or_tenant(struct state *st, struct fields *f, bool tenant) {
  Tierpool__Trace__Thread t = TIERPOOL__TRACE__THREAD__INIT;
  Tierpool__Trace__Tenant n = TIERPOOL__TRACE__TENANT__INIT;
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  const char *name = take(f, "name");
  if (tenant) {
    n.id = need_u32(f, "id", "tenant");
    if (!name) fail("tenant: name= is required");
    n.name = (char *)name;
    r.kind_case = TIERPOOL__TRACE__RECORD__KIND_TENANT, r.tenant = &n;
  } else {
    t.id = need_u32(f, "id", "thread");
    t.tid = need_u32(f, "tid", "thread");
    t.name = (char *)(name ? name : "");
    r.kind_case = TIERPOOL__TRACE__RECORD__KIND_THREAD, r.thread = &t;
  }
  no_more(f, tenant ? "tenant" : "thread");
  put_record(&st->w, &r);
}

static void line_stack(struct state *st, struct fields *f) {
  Tierpool__Trace__Stack s = TIERPOOL__TRACE__STACK__INIT;
  s.id = need_u32(f, "id", "stack");
  const char *v = take(f, "frames");
  char *parts[1024];
  uint64_t frames[1024];
  if (v && *v) {
    s.n_frames = split((char *)v, ',', parts, 1024);
    for (size_t i = 0; i < s.n_frames; i++) frames[i] = parse_u64(parts[i], "frames");
    s.frames = frames;
  }
  s.truncated = opt_u64(f, "truncated", 0) != 0;
  no_more(f, "stack");
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACK;
  r.stack = &s;
  put_record(&st->w, &r);
}

static void line_sample(struct state *st, struct fields *f) {
  struct batch *b = batch_for(st, BATCH_SAMPLES);
  size_t i = b->n;
  uint64_t id = need_u64(f, "id", "sample");
  if (id < b->prev_id) fail("sample: ids go down within a batch (%llu after %llu)", (unsigned long long)id,
                            (unsigned long long)b->prev_id);
  b->ids[i] = id - b->prev_id, b->prev_id = id;
  b->times[i] = batch_time_delta(b, need_u64(f, "t", "sample"));
  b->sizes[i] = need_u64(f, "size", "sample");
  b->stacks[i] = need_u32(f, "stack", "sample");
  b->tiers[i] = opt_u32(f, "tier", 0);
  b->threads[i] = opt_u32(f, "thread", 0);
  b->aligns[i] = opt_u32(f, "align", 4);
  const char *v = take(f, "weight");
  b->weights[i] = v ? parse_double(v, "weight") : -1; /* -1: the default, filled in when written */
  if (v && b->weights[i] < 0) fail("sample: negative weight");
  b->has_weight |= v != NULL;
  b->has_tenant |= (v = take(f, "tenant")) != NULL;
  b->tenants[i] = v ? parse_u32(v, "tenant") : 0;
  b->has_usable |= (v = take(f, "usable")) != NULL;
  b->usable[i] = v ? parse_u64(v, "usable") : 0;
  no_more(f, "sample");
  b->n++;
}

static void line_free(struct state *st, struct fields *f) {
  struct batch *b = batch_for(st, BATCH_FREES);
  size_t i = b->n;
  uint64_t id = need_u64(f, "id", "free");
  b->free_ids[i] = (int64_t)(id - b->prev_id), b->prev_id = id;
  b->times[i] = batch_time_delta(b, need_u64(f, "t", "free"));
  const char *v = take(f, "stack");
  b->has_stack |= v != NULL;
  b->stacks[i] = v ? parse_u32(v, "stack") : 0;
  no_more(f, "free");
  b->n++;
}

static void line_mmap(struct state *st, struct fields *f) {
  static const char *const kinds[] = {"mmap", "munmap", "mremap", "mprotect", "madvise"};
  struct batch *b = batch_for(st, BATCH_MMAPS);
  size_t i = b->n;
  const char *kind = take(f, "kind");
  if (!kind) fail("mmap: kind= is required");
  b->kinds[i] = UINT32_MAX;
  for (uint32_t k = 0; k < 5; k++)
    if (strcmp(kind, kinds[k]) == 0) b->kinds[i] = k;
  if (b->kinds[i] == UINT32_MAX) fail("mmap: unknown kind '%s'", kind);
  b->times[i] = batch_time_delta(b, need_u64(f, "t", "mmap"));
  b->addrs[i] = need_u64(f, "addr", "mmap");
  b->lengths[i] = need_u64(f, "length", "mmap");
  b->prots[i] = opt_u32(f, "prot", 0);
  b->flags[i] = opt_u32(f, "flags", 0);
  b->stacks[i] = opt_u32(f, "stack", 0);
  b->threads[i] = opt_u32(f, "thread", 0);
  b->olds[i] = opt_u64(f, "old_addr", 0);
  no_more(f, "mmap");
  b->n++;
}

static struct tenant_hist *hist_of(struct state *st, uint32_t tenant) {
  if (tenant > 4096) fail("alloc: tenant %u is too large for make_trace", tenant);
  if (tenant >= st->n_hists) {
    st->hists = xrealloc(st->hists, (tenant + 1) * sizeof *st->hists);
    memset(st->hists + st->n_hists, 0, (tenant + 1 - st->n_hists) * sizeof *st->hists);
    st->n_hists = tenant + 1;
  }
  return &st->hists[tenant];
}

static void line_alloc(struct state *st, struct fields *f) {
  uint64_t size = need_u64(f, "size", "alloc"), count = need_u64(f, "count", "alloc");
  uint64_t frees = opt_u64(f, "frees", 0);
  struct tenant_hist *h = hist_of(st, opt_u32(f, "tenant", 0));
  no_more(f, "alloc");
  uint32_t b = tp_bucket_of_size(size);
  h->allocs[b] += count, h->bytes[b] += count * size, h->frees[b] += frees;
  h->touched = true;
}

static void line_flush(struct state *st, struct fields *f) {
  uint64_t t = need_u64(f, "t", "flush");
  no_more(f, "flush");
  hist_of(st, 0);
  static uint32_t buckets[TP_BUCKET_COUNT];
  static uint64_t allocs[TP_BUCKET_COUNT], bytes[TP_BUCKET_COUNT], frees[TP_BUCKET_COUNT];
  for (uint32_t tenant = 0; tenant < st->n_hists; tenant++) {
    struct tenant_hist *h = &st->hists[tenant];
    if (!h->touched && tenant != 0) continue;
    bool any = false;
    for (uint32_t k = 0; k < st->n_hists; k++) any |= st->hists[k].touched;
    if (!h->touched && any) continue; /* the empty histogram only when nothing was counted */
    size_t n = 0;
    for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
      if (!h->allocs[b] && !h->frees[b]) continue;
      buckets[n] = b, allocs[n] = h->allocs[b], bytes[n] = h->bytes[b], frees[n] = h->frees[b];
      n++;
    }
    Tierpool__Trace__Histogram hist = TIERPOOL__TRACE__HISTOGRAM__INIT;
    hist.time_us = t, hist.tenant = tenant;
    hist.n_bucket = hist.n_allocs = hist.n_bytes = hist.n_frees = n;
    hist.bucket = buckets, hist.allocs = allocs, hist.bytes = bytes, hist.frees = frees;
    Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
    r.kind_case = TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM;
    r.histogram = &hist;
    put_record(&st->w, &r);
  }
  for (uint32_t k = 0; k < st->n_hists; k++) memset(&st->hists[k], 0, sizeof st->hists[k]);
}

static void line_snapshot(struct state *st, struct fields *f) {
  Tierpool__Trace__Snapshot s = TIERPOOL__TRACE__SNAPSHOT__INIT;
  Tierpool__Trace__Snapshot__TierState tiers[64], *tier_ptrs[64];
  Tierpool__Trace__Snapshot__Reservation res[64], *res_ptrs[64];
  s.time_us = need_u64(f, "t", "snapshot");
  s.process_rss = opt_u64(f, "rss", 0);
  const char *v;
  char *parts[5];
  while ((v = take(f, "tier"))) {
    if (s.n_tiers == 64) fail("snapshot: more than 64 tier= fields");
    size_t n = split((char *)v, ':', parts, 5);
    if (n < 4) fail("snapshot: tier= is T:LIVE:RESIDENT:PEAK[:TENANT]");
    Tierpool__Trace__Snapshot__TierState *t = &tiers[s.n_tiers];
    tierpool__trace__snapshot__tier_state__init(t);
    t->tier = parse_u32(parts[0], "tier"), t->live = parse_u64(parts[1], "live");
    t->resident = parse_u64(parts[2], "resident"), t->peak = parse_u64(parts[3], "peak");
    t->tenant = n > 4 ? parse_u32(parts[4], "tenant") : 0;
    tier_ptrs[s.n_tiers++] = t;
  }
  while ((v = take(f, "reservation"))) {
    if (s.n_reservations == 64) fail("snapshot: more than 64 reservation= fields");
    size_t n = split((char *)v, ':', parts, 4);
    if (n < 3) fail("snapshot: reservation= is START:SIZE:ACCESSIBLE[:RSS]");
    Tierpool__Trace__Snapshot__Reservation *r = &res[s.n_reservations];
    tierpool__trace__snapshot__reservation__init(r);
    r->start = parse_u64(parts[0], "start"), r->size = parse_u64(parts[1], "size");
    r->accessible = parse_u64(parts[2], "accessible"), r->rss = n > 3 ? parse_u64(parts[3], "rss") : 0;
    res_ptrs[s.n_reservations++] = r;
  }
  s.tiers = tier_ptrs, s.reservations = res_ptrs;
  no_more(f, "snapshot");
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_SNAPSHOT;
  r.snapshot = &s;
  put_record(&st->w, &r);
}

static void line_jit(struct state *st, struct fields *f) {
  Tierpool__Trace__JitRange j = TIERPOOL__TRACE__JIT_RANGE__INIT;
  j.start = need_u64(f, "start", "jit");
  j.size = need_u64(f, "size", "jit");
  j.removed = opt_u64(f, "removed", 0) != 0;
  j.time_us = opt_u64(f, "t", 0);
  no_more(f, "jit");
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_JIT_RANGE;
  r.jit_range = &j;
  put_record(&st->w, &r);
}

static void line_perfmap(struct state *st, const char *text) {
  struct batch *b = batch_for(st, BATCH_PERFMAP);
  size_t len = strlen(text);
  if (b->text_len + len + 1 > b->text_cap) {
    while (b->text_len + len + 1 > b->text_cap) b->text_cap = b->text_cap ? b->text_cap * 2 : 4096;
    b->text = xrealloc(b->text, b->text_cap);
  }
  memcpy(b->text + b->text_len, text, len);
  b->text_len += len;
  b->text[b->text_len++] = '\n';
}

static void line_end(struct state *st, struct fields *f) {
  Tierpool__Trace__End e = TIERPOOL__TRACE__END__INIT;
  e.time_us = need_u64(f, "t", "end");
  e.samples = opt_u64(f, "samples", 0);
  e.dropped = opt_u64(f, "dropped", 0);
  e.allocations = opt_u64(f, "allocations", 0);
  no_more(f, "end");
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_END;
  r.end = &e;
  put_record(&st->w, &r);
}

static void line_exec(struct state *st, struct fields *f) {
  Tierpool__Trace__Exec e = TIERPOOL__TRACE__EXEC__INIT;
  e.time_us = need_u64(f, "t", "exec");
  const char *path = take(f, "path");
  e.path = (char *)(path ? path : "");
  e.error = (uint32_t)opt_u64(f, "error", 0);
  no_more(f, "exec");
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_EXEC;
  r.exec = &e;
  put_record(&st->w, &r);
}

static void do_line(struct state *st, char *line) {
  char *hash = strchr(line, '#');
  char *kind = line + strspn(line, " \t");
  if (strncmp(kind, "perfmap", 7) == 0 && (kind[7] == ' ' || kind[7] == '\t' || kind[7] == '\0')) {
    char *text = kind + 7; /* verbatim: a '#' there is text */
    line_perfmap(st, text + strspn(text, " \t"));
    return;
  }
  if (hash) *hash = '\0';
  size_t len = strlen(kind);
  while (len && (kind[len - 1] == ' ' || kind[len - 1] == '\t' || kind[len - 1] == '\r')) kind[--len] = '\0';
  if (!*kind) return;
  char *rest = kind + strcspn(kind, " \t");
  if (*rest) *rest++ = '\0';
  struct fields f;
  split_fields(rest, &f);
  if (strcmp(kind, "sample") == 0) return line_sample(st, &f);
  if (strcmp(kind, "free") == 0) return line_free(st, &f);
  if (strcmp(kind, "mmap") == 0) return line_mmap(st, &f);
  end_batch(st);
  if (strcmp(kind, "process") == 0) return line_process(st, &f);
  if (strcmp(kind, "module") == 0) return line_module(st, &f);
  if (strcmp(kind, "thread") == 0) return line_thread_or_tenant(st, &f, false);
  if (strcmp(kind, "tenant") == 0) return line_thread_or_tenant(st, &f, true);
  if (strcmp(kind, "stack") == 0) return line_stack(st, &f);
  if (strcmp(kind, "alloc") == 0) return line_alloc(st, &f);
  if (strcmp(kind, "flush") == 0) return line_flush(st, &f);
  if (strcmp(kind, "snapshot") == 0) return line_snapshot(st, &f);
  if (strcmp(kind, "jit") == 0) return line_jit(st, &f);
  if (strcmp(kind, "end") == 0) return line_end(st, &f);
  if (strcmp(kind, "exec") == 0) return line_exec(st, &f);
  if (strcmp(kind, "frame") == 0) {
    no_more(&f, "frame");
    return end_frame(&st->w);
  }
  fail("unknown record kind '%s'", kind);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: make_trace SPEC OUT\n");
    return 1;
  }
  spec_path = argv[1];
  FILE *spec = fopen(spec_path, "r");
  if (!spec) fail("cannot open: %s", strerror(errno));
  static struct state st;
  st.default_weight = 1.0;
  st.w.file = fopen(argv[2], "wb");
  if (!st.w.file) fail("cannot create %s: %s", argv[2], strerror(errno));
  out_path = argv[2];
  if (tp_trace_compressor_init(&st.w.compressor, NULL, NULL) != 0) fail("zstd: out of memory");

  Tierpool__Trace__Header header = TIERPOOL__TRACE__HEADER__INIT;
  header.magic = TP_TRACE_MAGIC;
  header.format_version = TP_TRACE_FORMAT_VERSION;
  header.producer = "make_trace";
  Tierpool__Trace__Record r = TIERPOOL__TRACE__RECORD__INIT;
  r.kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER;
  r.header = &header;
  put_record(&st.w, &r);

  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, spec) >= 0) {
    spec_line++;
    line[strcspn(line, "\n")] = '\0';
    do_line(&st, line);
  }
  spec_line++;
  end_batch(&st);
  end_frame(&st.w);
  if (fclose(st.w.file) != 0) fail("writing %s: %s", out_path, strerror(errno));
  fclose(spec);
  free(line);
  tp_trace_compressor_fini(&st.w.compressor);
  return 0;
}
