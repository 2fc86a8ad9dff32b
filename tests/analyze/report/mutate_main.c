/* mutate_main.c — `mutate_asan TRACE SCRATCH SEED COUNT`: copies of a good
 * trace, each with one change the reader cannot tell from a good trace: in
 * the first record of each kind, every field in turn set to edge values (a
 * column at one random element) or a repeated field cut short; then COUNT
 * copies with a record dropped, doubled or swapped with another.  Each copy
 * goes through `report`, and one in four through `report --json`, `export`
 * in four formats, `dump` (and --summary), `propose`, `merge` and `diff` too,
 * in this process, built with ASan and UBSan (analysis_asan): whatever a
 * command makes of it (a report, or exit status 2 with a message), it must
 * not misbehave.  The frames stay as they were: a
 * change is made inside one frame, which is compressed again; modules lose
 * their paths and build-ids first, so that no copy reads debug files.
 * Seeded: the same copies every run.  Prints "ok: ..." or "FAIL: ..." lines
 * (../lib.sh verdicts); the commands' messages, and what each copy changed,
 * go to SCRATCH/messages. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "commands.h"
#include "trace_codec.h"

typedef struct record {
  uint8_t *data; /* packed message, without its length prefix */
  size_t len;
  unsigned weight; /* how likely it is the one changed: events more than facts */
  unsigned kind;   /* Record.kind_case */
} record;

typedef struct frame {
  record *records;
  size_t count;
} frame;

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static size_t pick(size_t n) { return n ? (size_t)(rng() % n) : 0; }

static uint8_t *read_whole(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
  *len = data && size > 0 && fread(data, 1, (size_t)size, f) == (size_t)size ? (size_t)size : 0;
  fclose(f);
  return data;
}

/* m packed into r (the message alone: the frame's length prefixes are
 * written by write_trace). */
static void pack_record(const Tierpool__Trace__Record *m, record *r) {
  r->len = tierpool__trace__record__get_packed_size(m);
  r->data = malloc(r->len ? r->len : 1);
  tierpool__trace__record__pack(m, r->data);
}

/* A module record's path made one that does not exist, its build-id
 * dropped: symbolising a copy would otherwise read the module's file or its
 * debug file each time (a second for wasmtime). */
static void hide_module(record *r) {
  Tierpool__Trace__Record *m = tierpool__trace__record__unpack(NULL, r->len, r->data);
  r->weight = 1;
  if (!m) return;
  r->kind = m->kind_case;
  switch (m->kind_case) {
    case TIERPOOL__TRACE__RECORD__KIND_SAMPLES: case TIERPOOL__TRACE__RECORD__KIND_FREES:
    case TIERPOOL__TRACE__RECORD__KIND_STACKS: case TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS:
    case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM: case TIERPOOL__TRACE__RECORD__KIND_SNAPSHOT:
    case TIERPOOL__TRACE__RECORD__KIND_JIT_RANGE: case TIERPOOL__TRACE__RECORD__KIND_END: r->weight = 8; break;
    default: break;
  }
  if (m->kind_case == TIERPOOL__TRACE__RECORD__KIND_MODULE) {
    char *path = m->module->path, hidden[4096];
    size_t build_id_len = m->module->build_id.len;
    snprintf(hidden, sizeof hidden, "/nonexistent%s", path);
    m->module->path = hidden;
    m->module->build_id.len = 0; /* nor found by build-id, in /usr/lib/debug */
    free(r->data);
    pack_record(m, r);
    m->module->path = path;
    m->module->build_id.len = build_id_len;
  }
  tierpool__trace__record__free_unpacked(m, NULL);
}

/* The trace's frames, each its records; false if it is not a clean trace. */
static bool split_trace(const uint8_t *file, size_t len, frame **out, size_t *count) {
  size_t cap = 0;
  *count = 0;
  *out = NULL;
  for (size_t at = 0; at < len;) {
    size_t size = ZSTD_findFrameCompressedSize(file + at, len - at);
    unsigned long long content = ZSTD_getFrameContentSize(file + at, len - at);
    if (ZSTD_isError(size) || content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN) return false;
    uint8_t *plain = malloc(content ? content : 1);
    if (ZSTD_isError(ZSTD_decompress(plain, content, file + at, size))) return false;
    if (*count == cap) *out = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof **out);
    frame *f = &(*out)[(*count)++];
    *f = (frame){0};
    size_t record_cap = 0;
    for (size_t pos = 0; pos < content;) {
      uint64_t n;
      int took = tp_trace_varint_get(plain + pos, content - pos, &n);
      if (took <= 0 || n > content - pos - (size_t)took) return false;
      if (f->count == record_cap) f->records = realloc(f->records, (record_cap = record_cap ? record_cap * 2 : 64) * sizeof *f->records);
      record *r = &f->records[f->count++];
      r->len = n;
      r->data = malloc(n ? n : 1);
      memcpy(r->data, plain + pos + took, n);
      hide_module(r);
      pos += (size_t)took + n;
    }
    free(plain);
    at += size;
  }
  return *count > 0;
}

/* ---- changing one record's numbers, through protobuf-c's descriptors ----- */

/* A number or a repeated field's count somewhere in a message. */
typedef struct slot {
  void *at;
  ProtobufCType type; /* of a number; PROTOBUF_C_TYPE_MESSAGE for a count */
  const char *message, *field; /* names, for the log */
} slot;

/* The slots of a message, grouped by field (a column of many numbers is one
 * group, as is a single number), so that each field is as likely to change. */
typedef struct slots {
  slot items[8192];
  size_t count;
  size_t group_first[512], group_count;
} slots;

static void add_slot(slots *s, void *at, ProtobufCType type, const ProtobufCMessage *m,
                     const ProtobufCFieldDescriptor *field) {
  if (s->count < sizeof s->items / sizeof s->items[0])
    s->items[s->count++] = (slot){at, type, m->descriptor->short_name, field->name};
}
static void start_group(slots *s) {
  if (s->group_count < sizeof s->group_first / sizeof s->group_first[0]) s->group_first[s->group_count++] = s->count;
}

static bool is_number(ProtobufCType type) {
  return type != PROTOBUF_C_TYPE_STRING && type != PROTOBUF_C_TYPE_BYTES && type != PROTOBUF_C_TYPE_MESSAGE;
}

static size_t number_size(ProtobufCType type) {
  switch (type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
  }
}

static void collect(ProtobufCMessage *m, slots *s, int depth) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields && depth < 16; i++) {
    const ProtobufCFieldDescriptor *field = &d->fields[i];
    char *at = (char *)m + field->offset;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) { /* only the member that is set */
      if (*(uint32_t *)((char *)m + field->quantifier_offset) != field->id) continue;
    }
    if (field->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(size_t *)((char *)m + field->quantifier_offset);
      if (n) {
        start_group(s);
        add_slot(s, (char *)m + field->quantifier_offset, PROTOBUF_C_TYPE_MESSAGE, m, field);
      }
      if (n && is_number(field->type)) start_group(s);
      for (size_t k = 0; k < n; k++) {
        if (field->type == PROTOBUF_C_TYPE_MESSAGE) collect(((ProtobufCMessage **)*(void **)at)[k], s, depth + 1);
        else if (is_number(field->type)) add_slot(s, *(char **)at + k * number_size(field->type), field->type, m, field);
      }
    } else if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
      if (*(ProtobufCMessage **)at) collect(*(ProtobufCMessage **)at, s, depth + 1);
    } else if (is_number(field->type)) {
      start_group(s);
      add_slot(s, at, field->type, m, field);
    }
  }
}

/* Variants of a change: a count becomes 0 or half; a number one of these
 * (by its width); a bool flips. */
#define VARIANTS 4
static const uint64_t edges64[VARIANTS] = {0, 0xffffffffull, 1ull << 63, UINT64_MAX};
static const uint32_t edges32[VARIANTS] = {0, 0x7fffffffu, 0x80000000u, 0xffffffffu};

static slots record_slots;

/* Record r with variant `variant` of a change to group `group` of its
 * fields (at a random element of a column), packed again into *out; false
 * if there is no such group or variant.  *groups: how many r has. */
static bool change_record(const record *r, record *out, size_t group, unsigned variant, size_t *groups) {
  Tierpool__Trace__Record *m = tierpool__trace__record__unpack(NULL, r->len, r->data);
  *groups = 0;
  if (!m) return false;
  slots *s = &record_slots;
  s->count = s->group_count = 0;
  collect(&m->base, s, 0);
  *groups = s->group_count;
  slot *at = NULL;
  if (group < s->group_count) {
    size_t first = s->group_first[group], end = group + 1 < s->group_count ? s->group_first[group + 1] : s->count;
    if (end > first) at = &s->items[first + pick(end - first)];
  }
  size_t size = !at ? 0 : at->type == PROTOBUF_C_TYPE_MESSAGE ? sizeof(size_t) : number_size(at->type);
  uint8_t saved[8];
  bool changed = at != NULL;
  if (changed) {
    memcpy(saved, at->at, size);
    if (at->type == PROTOBUF_C_TYPE_MESSAGE) { /* a count: only ever smaller (the array is that long) */
      size_t n = *(size_t *)at->at;
      changed = variant < 2 && (variant == 0 || n > 1);
      *(size_t *)at->at = variant == 0 ? 0 : n / 2;
    } else if (at->type == PROTOBUF_C_TYPE_BOOL) {
      changed = variant == 0;
      *(protobuf_c_boolean *)at->at = !*(protobuf_c_boolean *)at->at;
    } else if (at->type == PROTOBUF_C_TYPE_DOUBLE) {
      const double doubles[VARIANTS] = {0, -1, 0.0 / 0.0, 1.0 / 0.0};
      *(double *)at->at = doubles[variant];
    } else if (at->type == PROTOBUF_C_TYPE_FLOAT) {
      *(float *)at->at = (float)edges32[variant];
    } else if (size == 8) {
      *(uint64_t *)at->at = edges64[variant];
    } else {
      *(uint32_t *)at->at = edges32[variant];
    }
  }
  if (changed) {
    if (at->type == PROTOBUF_C_TYPE_MESSAGE)
      fprintf(stderr, "-- %s.%s: %zu of them\n", at->message, at->field, *(size_t *)at->at);
    else
      fprintf(stderr, "-- %s.%s: %#" PRIx64 "\n", at->message, at->field,
              size == 8 ? *(uint64_t *)at->at : *(uint32_t *)at->at);
    pack_record(m, out);
    out->weight = r->weight;
  }
  if (at) memcpy(at->at, saved, size); /* as unpacked, for the free */
  tierpool__trace__record__free_unpacked(m, NULL);
  return changed;
}

/* ---- writing a changed copy ---------------------------------------------- */

/* Frames as the library writes them (tp_trace_compress_frame), with one
 * compressor for every copy. */
static tp_trace_compressor compressor;

static bool write_trace(const char *path, frame *frames, size_t count) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = true;
  for (size_t i = 0; i < count && ok; i++) {
    size_t len = 0;
    for (size_t k = 0; k < frames[i].count; k++) len += TP_TRACE_VARINT_MAX + frames[i].records[k].len;
    uint8_t *plain = malloc(len ? len : 1), *pos = plain;
    for (size_t k = 0; k < frames[i].count; k++) {
      pos += tp_trace_varint_put(frames[i].records[k].len, pos);
      memcpy(pos, frames[i].records[k].data, frames[i].records[k].len);
      pos += frames[i].records[k].len;
    }
    size_t cap = tp_trace_frame_bound((size_t)(pos - plain));
    uint8_t *packed = malloc(cap);
    size_t n = tp_trace_compress_frame(&compressor, plain, (size_t)(pos - plain), packed, cap);
    ok = n > 0 && fwrite(packed, 1, n, f) == n;
    free(packed);
    free(plain);
  }
  return fclose(f) == 0 && ok;
}

/* A record by weight, over all frames. */
static void pick_record(const frame *frames, size_t count, size_t *which, size_t *at) {
  uint64_t total = 0;
  for (size_t i = 0; i < count; i++)
    for (size_t k = 0; k < frames[i].count; k++) total += frames[i].records[k].weight;
  uint64_t ticket = pick(total);
  for (size_t i = 0; i < count; i++)
    for (size_t k = 0; k < frames[i].count; k++) {
      if (ticket < frames[i].records[k].weight) {
        *which = i, *at = k;
        return;
      }
      ticket -= frames[i].records[k].weight;
    }
}

/* Frame `which` of copy given records of its own, room for one more. */
static record *own_records(frame *copy, size_t which) {
  record *records = malloc((copy[which].count + 1) * sizeof *records);
  memcpy(records, copy[which].records, copy[which].count * sizeof *records);
  return copy[which].records = records;
}

/* A record dropped, doubled or swapped with another of its frame. */
static const char *restructure(frame *copy, size_t count) {
  size_t which = 0, at = 0;
  pick_record(copy, count, &which, &at);
  frame *f = &copy[which];
  record *records = own_records(copy, which);
  switch (pick(3)) {
    case 0:
      memmove(&records[at], &records[at + 1], (f->count - at - 1) * sizeof *records);
      f->count--;
      return "a record dropped";
    case 1:
      memmove(&records[at + 1], &records[at], (f->count - at) * sizeof *records);
      f->count++;
      return "a record doubled";
    default: {
      size_t to = pick(f->count);
      record r = records[at];
      records[at] = records[to];
      records[to] = r;
      return "two records swapped";
    }
  }
}

/* The commands run on each copy (argv[argc-1] is the trace). */
static int run_command(int which, const char *trace, const char *out) {
  const char *report[] = {"report", trace, NULL};
  const char *report_json[] = {"report", "--json", trace, NULL};
  const char *pprof[] = {"export", "--format", "pprof", "--no-symbolize", "-o", out, trace, NULL};
  const char *folded[] = {"export", "--format", "folded", "--value", "inuse-bytes", "-o", out, trace, NULL};
  const char *csv[] = {"export", "--format", "csv", "-o", out, trace, NULL};
  const char *json[] = {"export", "--format", "json", "-o", out, trace, NULL};
  const char *dump[] = {"dump", trace, NULL};
  const char *summary[] = {"dump", "--summary", trace, NULL};
  const char *propose[] = {"propose", trace, "-o", out, NULL};
  const char *merge[] = {"merge", trace, trace, "-o", out, NULL};
  const char *diff[] = {"diff", trace, trace, NULL};
  const char **commands[] = {report, report_json, pprof, folded, csv, json, dump, summary, propose, merge, diff};
  int (*const runs[])(int, char **) = {cmd_report, cmd_report, cmd_export, cmd_export, cmd_export, cmd_export,
                                       cmd_dump, cmd_dump, cmd_propose, cmd_merge, cmd_diff};
  const char **argv = commands[which];
  int argc = 0;
  while (argv[argc]) argc++;
  return runs[which](argc, (char **)argv);
}
#define COMMANDS 11

static struct {
  const char *trace, *out;
  FILE *verdicts;
  unsigned long made, numbers, structure, reported, rejected;
} copies;

static frame *copy_frames(const frame *frames, size_t count) {
  frame *copy = malloc(count * sizeof *copy);
  memcpy(copy, frames, count * sizeof *copy);
  return copy;
}

/* Writes the copy, runs the commands on it, frees it (not the records). */
static void run_copy(frame *copy, const frame *frames, size_t count, const char *what) {
  unsigned long i = copies.made++;
  if (!write_trace(copies.trace, copy, count)) {
    fprintf(copies.verdicts, "FAIL: cannot write %s\n", copies.trace);
    exit(0);
  }
  for (int c = 0; c < (i % 4 == 0 ? COMMANDS : 1); c++) {
    fprintf(stderr, "-- copy %lu (%s), command %d\n", i, what, c);
    int rc = run_command(c, copies.trace, copies.out);
    if (rc != 0 && rc != EXIT_USAGE) {
      fprintf(copies.verdicts, "FAIL: copy %lu (%s): command %d exited %d, neither 0 nor %d\n", i, what, c, rc,
              EXIT_USAGE);
      fflush(copies.verdicts);
    }
    if (c == 0) copies.reported += rc == 0, copies.rejected += rc != 0;
  }
  for (size_t f = 0; f < count; f++)
    if (copy[f].records != frames[f].records) free(copy[f].records);
  free(copy);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: mutate_asan TRACE SCRATCH SEED COUNT\n");
    return EXIT_USAGE;
  }
  size_t len;
  uint8_t *file = read_whole(argv[1], &len);
  frame *frames;
  size_t frame_count;
  if (!file || !split_trace(file, len, &frames, &frame_count)) {
    printf("FAIL: %s: not a trace of complete frames with their sizes\n", argv[1]);
    return 0;
  }
  if (tp_trace_compressor_init(&compressor, NULL, NULL) != 0) {
    printf("FAIL: no zstd context\n");
    return 0;
  }
  rng_state = strtoull(argv[3], NULL, 0) | 1;
  unsigned long count = strtoul(argv[4], NULL, 0);
  char trace[4096], out[4096];
  snprintf(trace, sizeof trace, "%s/mutated.tpt", argv[2]);
  snprintf(out, sizeof out, "%s/mutated.out", argv[2]);
  /* The commands' output goes nowhere, their messages (and a sanitizer's
   * report) to SCRATCH/messages; the verdicts to the saved stdout. */
  char messages[4096];
  snprintf(messages, sizeof messages, "%s/messages", argv[2]);
  fflush(stdout);
  FILE *verdicts = fdopen(dup(1), "w");
  int null = open("/dev/null", O_WRONLY), log = open(messages, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  dup2(null, 1);
  dup2(log, 2);
  /* The sweep: in the first record of each kind, every field, each variant. */
  copies.trace = trace, copies.out = out, copies.verdicts = verdicts;
  bool seen[64] = {false};
  for (size_t f = 0; f < frame_count; f++)
    for (size_t k = 0; k < frames[f].count; k++) {
      unsigned kind = frames[f].records[k].kind;
      if (kind >= 64 || seen[kind]) continue;
      seen[kind] = true;
      size_t groups = 1;
      for (size_t g = 0; g < groups; g++)
        for (unsigned v = 0; v < VARIANTS; v++) {
          record made = {0};
          if (!change_record(&frames[f].records[k], &made, g, v, &groups)) continue;
          frame *copy = copy_frames(frames, frame_count);
          own_records(copy, f)[k] = made;
          run_copy(copy, frames, frame_count, "a number changed");
          free(made.data);
          copies.numbers++;
        }
    }
  /* Then records dropped, doubled or swapped. */
  for (unsigned long i = 0; i < count; i++) {
    frame *copy = copy_frames(frames, frame_count);
    run_copy(copy, frames, frame_count, restructure(copy, frame_count));
    copies.structure++;
  }
  fprintf(verdicts, "ok: %lu copies, each a field of the first record of its kind at an edge value or cut short (%lu), "
                    "or a record dropped, doubled or swapped (%lu), through report (and one in four through report --json, "
                    "export in 4 formats, dump, propose, merge and diff): %lu reported, %lu rejected, none misbehaved\n",
          copies.numbers + copies.structure, copies.numbers, copies.structure, copies.reported, copies.rejected);
  fclose(verdicts);
  for (size_t f = 0; f < frame_count; f++) {
    for (size_t k = 0; k < frames[f].count; k++) free(frames[f].records[k].data);
    free(frames[f].records);
  }
  free(frames);
  free(file);
  tp_trace_compressor_fini(&compressor);
  close(null);
  close(log);
  return 0;
}
