/* dump_text.c — one line per record (and per element of a batch), for reading
 * a trace by eye.  Columns of a batch may differ in length in a damaged
 * trace: a missing element reads as 0. */
#include <inttypes.h>
#include <string.h>

#include "buckets.h"
#include "dump.h"

static const char *const tier_names[] = {"slab", "buddy", "large"};
static const char *const mmap_kind_names[] = {"mmap", "munmap", "mremap", "mprotect", "madvise"};

/* Name of enum value v, or its number. */
static const char *enum_name(const char *const *names, size_t count, uint32_t v, char *buf, size_t len) {
  if (v < count) return names[v];
  snprintf(buf, len, "%" PRIu32, v);
  return buf;
}

static uint64_t at64(const uint64_t *col, size_t n, size_t i) { return i < n ? col[i] : 0; }
static uint32_t at32(const uint32_t *col, size_t n, size_t i) { return i < n ? col[i] : 0; }

/* s in double quotes, with anything unprintable escaped. */
static void put_quoted(FILE *out, const char *s, size_t len) {
  fputc('"', out);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f) fprintf(out, "\\x%02x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

static void put_string(FILE *out, const char *s) { put_quoted(out, s ? s : "", s ? strlen(s) : 0); }

static void dump_header(FILE *out, const Tierpool__Trace__Header *h) {
  fprintf(out, "header magic=");
  put_string(out, h->magic);
  fprintf(out, " format_version=%" PRIu32 " producer=", h->format_version);
  put_string(out, h->producer);
  fputc('\n', out);
}

static void dump_process(FILE *out, const Tierpool__Trace__Process *p) {
  fprintf(out, "process pid=%" PRIu32 " ppid=%" PRIu32 " executable=", p->pid, p->ppid);
  put_string(out, p->executable);
  fprintf(out, " argv=[");
  for (size_t i = 0; i < p->n_argv; i++) {
    if (i) fputc(' ', out);
    put_string(out, p->argv[i]);
  }
  fprintf(out, "] hostname=");
  put_string(out, p->hostname);
  fprintf(out, " start_unix_ns=%" PRIu64 " start_mono_ns=%" PRIu64 " sample_rate=%g sample_bytes=%" PRIu64
               " buddy_max=%" PRIu64 " validate=%d size_classes=",
          p->start_unix_ns, p->start_mono_ns, p->sample_rate, p->sample_bytes, p->buddy_max, (int)p->validate);
  for (size_t i = 0; i < p->n_size_classes; i++) fprintf(out, "%s%" PRIu32, i ? "," : "", p->size_classes[i]);
  fputc('\n', out);
}

static void dump_module(FILE *out, const Tierpool__Trace__Module *m) {
  fprintf(out, "module path=");
  put_string(out, m->path);
  fprintf(out, " build_id=");
  for (size_t i = 0; i < m->build_id.len; i++) fprintf(out, "%02x", m->build_id.data[i]);
  fprintf(out, " load_bias=0x%" PRIx64 " time_ns=%" PRIu64 " segments=%zu\n", m->load_bias, m->time_ns,
          m->n_segments);
  for (size_t i = 0; i < m->n_segments; i++) {
    const Tierpool__Trace__Module__Segment *s = m->segments[i];
    fprintf(out, "  segment vaddr=0x%" PRIx64 " memsz=%" PRIu64 " file_offset=0x%" PRIx64 " executable=%d\n",
            s->vaddr, s->memsz, s->file_offset, (int)s->executable);
  }
}

static void dump_stack(FILE *out, const Tierpool__Trace__Stack *s) {
  fprintf(out, "stack id=%" PRIu32 " truncated=%d frames=", s->id, (int)s->truncated);
  for (size_t i = 0; i < s->n_frames; i++) fprintf(out, "%s0x%" PRIx64, i ? "," : "", s->frames[i]);
  fputc('\n', out);
}

static void dump_samples(FILE *out, const Tierpool__Trace__Samples *s) {
  fprintf(out, "samples count=%zu\n", s->n_id_delta);
  uint64_t id = 0, time_us = 0;
  char buf[16];
  for (size_t i = 0; i < s->n_id_delta; i++) {
    id += s->id_delta[i];
    time_us += at64(s->time_delta_us, s->n_time_delta_us, i);
    fprintf(out,
            "  sample id=%" PRIu64 " time_us=%" PRIu64 " size=%" PRIu64 " usable=%" PRIu64 " stack=%" PRIu32
            " thread=%" PRIu32 " tier=%s align_log2=%" PRIu32,
            id, time_us, at64(s->size, s->n_size, i), at64(s->usable, s->n_usable, i),
            at32(s->stack, s->n_stack, i), at32(s->thread, s->n_thread, i),
            enum_name(tier_names, 3, at32(s->tier, s->n_tier, i), buf, sizeof buf),
            at32(s->align_log2, s->n_align_log2, i));
    if (s->n_weight) fprintf(out, " weight=%g", i < s->n_weight ? s->weight[i] : 0.0);
    if (s->n_tenant) fprintf(out, " tenant=%" PRIu32, at32(s->tenant, s->n_tenant, i));
    fputc('\n', out);
  }
}

static void dump_frees(FILE *out, const Tierpool__Trace__Frees *f) {
  fprintf(out, "frees count=%zu\n", f->n_id_delta);
  uint64_t id = 0, time_us = 0;
  for (size_t i = 0; i < f->n_id_delta; i++) {
    id += (uint64_t)f->id_delta[i]; /* may go back: frees come in any order */
    time_us += at64(f->time_delta_us, f->n_time_delta_us, i);
    fprintf(out, "  free id=%" PRIu64 " time_us=%" PRIu64, id, time_us);
    if (f->n_stack) fprintf(out, " stack=%" PRIu32, at32(f->stack, f->n_stack, i));
    fputc('\n', out);
  }
}

static void dump_mmap_calls(FILE *out, const Tierpool__Trace__MmapCalls *m) {
  fprintf(out, "mmap_calls count=%zu\n", m->n_kind);
  uint64_t time_us = 0;
  char buf[16];
  for (size_t i = 0; i < m->n_kind; i++) {
    time_us += at64(m->time_delta_us, m->n_time_delta_us, i);
    fprintf(out,
            "  %s time_us=%" PRIu64 " addr=0x%" PRIx64 " length=%" PRIu64 " prot=%" PRIu32 " flags=0x%" PRIx32
            " stack=%" PRIu32 " thread=%" PRIu32 " old_addr=0x%" PRIx64 "\n",
            enum_name(mmap_kind_names, 5, m->kind[i], buf, sizeof buf), time_us, at64(m->addr, m->n_addr, i),
            at64(m->length, m->n_length, i), at32(m->prot, m->n_prot, i), at32(m->flags, m->n_flags, i),
            at32(m->stack, m->n_stack, i), at32(m->thread, m->n_thread, i),
            at64(m->old_addr, m->n_old_addr, i));
  }
}

static void dump_histogram(FILE *out, const Tierpool__Trace__Histogram *h) {
  fprintf(out, "histogram time_us=%" PRIu64 " tenant=%" PRIu32 " buckets=%zu\n", h->time_us, h->tenant,
          h->n_bucket);
  for (size_t i = 0; i < h->n_bucket; i++) {
    uint32_t b = h->bucket[i];
    fprintf(out, "  bucket %" PRIu32, b);
    if (b < TP_BUCKET_COUNT) fprintf(out, " size=%" PRIu64 "..%" PRIu64, tp_bucket_lower(b), tp_bucket_upper(b));
    fprintf(out, " allocs=%" PRIu64 " bytes=%" PRIu64 " frees=%" PRIu64 "\n", at64(h->allocs, h->n_allocs, i),
            at64(h->bytes, h->n_bytes, i), at64(h->frees, h->n_frees, i));
  }
}

static void dump_snapshot(FILE *out, const Tierpool__Trace__Snapshot *s) {
  fprintf(out, "snapshot time_us=%" PRIu64 " process_rss=%" PRIu64 " tiers=%zu reservations=%zu\n", s->time_us,
          s->process_rss, s->n_tiers, s->n_reservations);
  char buf[16];
  for (size_t i = 0; i < s->n_tiers; i++) {
    const Tierpool__Trace__Snapshot__TierState *t = s->tiers[i];
    fprintf(out,
            "  tier %s tenant=%" PRIu32 " live=%" PRIu64 " resident=%" PRIu64 " peak=%" PRIu64 " allocs=%" PRIu64
            " frees=%" PRIu64 "\n",
            enum_name(tier_names, 3, t->tier, buf, sizeof buf), t->tenant, t->live, t->resident, t->peak,
            t->allocs, t->frees);
  }
  for (size_t i = 0; i < s->n_reservations; i++) {
    const Tierpool__Trace__Snapshot__Reservation *r = s->reservations[i];
    fprintf(out, "  reservation start=0x%" PRIx64 " size=%" PRIu64 " accessible=%" PRIu64 " rss=%" PRIu64 "\n",
            r->start, r->size, r->accessible, r->rss);
  }
}

void dump_record(FILE *out, const Tierpool__Trace__Record *rec) {
  switch (rec->kind_case) {
  case TIERPOOL__TRACE__RECORD__KIND_HEADER: dump_header(out, rec->header); break;
  case TIERPOOL__TRACE__RECORD__KIND_PROCESS: dump_process(out, rec->process); break;
  case TIERPOOL__TRACE__RECORD__KIND_MODULE: dump_module(out, rec->module); break;
  case TIERPOOL__TRACE__RECORD__KIND_THREAD:
    fprintf(out, "thread id=%" PRIu32 " tid=%" PRIu32 " name=", rec->thread->id, rec->thread->tid);
    put_string(out, rec->thread->name);
    fputc('\n', out);
    break;
  case TIERPOOL__TRACE__RECORD__KIND_TENANT:
    fprintf(out, "tenant id=%" PRIu32 " name=", rec->tenant->id);
    put_string(out, rec->tenant->name);
    fputc('\n', out);
    break;
  case TIERPOOL__TRACE__RECORD__KIND_STACK: dump_stack(out, rec->stack); break;
  case TIERPOOL__TRACE__RECORD__KIND_SAMPLES: dump_samples(out, rec->samples); break;
  case TIERPOOL__TRACE__RECORD__KIND_FREES: dump_frees(out, rec->frees); break;
  case TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS: dump_mmap_calls(out, rec->mmap_calls); break;
  case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM: dump_histogram(out, rec->histogram); break;
  case TIERPOOL__TRACE__RECORD__KIND_SNAPSHOT: dump_snapshot(out, rec->snapshot); break;
  case TIERPOOL__TRACE__RECORD__KIND_JIT_RANGE:
    fprintf(out, "jit_range start=0x%" PRIx64 " size=%" PRIu64 " removed=%d time_us=%" PRIu64 "\n",
            rec->jit_range->start, rec->jit_range->size, (int)rec->jit_range->removed, rec->jit_range->time_us);
    break;
  case TIERPOOL__TRACE__RECORD__KIND_PERF_MAP:
    fprintf(out, "perf_map bytes=%zu text=", rec->perf_map->text.len);
    put_quoted(out, (const char *)rec->perf_map->text.data, rec->perf_map->text.len);
    fputc('\n', out);
    break;
  case TIERPOOL__TRACE__RECORD__KIND_END:
    fprintf(out, "end time_us=%" PRIu64 " samples=%" PRIu64 " dropped=%" PRIu64 " allocations=%" PRIu64 "%s\n",
            rec->end->time_us, rec->end->samples, rec->end->dropped, rec->end->allocations,
            rec->end->cut_short ? " cut_short=1" : "");
    break;
  case TIERPOOL__TRACE__RECORD__KIND_EXEC:
    fprintf(out, "exec time_us=%" PRIu64 " path=", rec->exec->time_us);
    put_string(out, rec->exec->path);
    if (rec->exec->error) fprintf(out, " error=%" PRIu32, rec->exec->error);
    fputc('\n', out);
    break;
  default: fprintf(out, "unknown (a record kind this version does not know)\n"); break;
  }
}
