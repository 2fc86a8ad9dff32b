/* merge.c — `tierpool merge TRACE... -o OUT`: one trace from many, in the same
 * format, so that a fleet's traces can be reduced in stages.
 *
 * Every id in a trace is scoped to its process section (trace.proto), so the
 * merged trace is one Header followed by each input's records after its own
 * Header, in order: read back (which checks them), put into the compact
 * encodings again (compact.c), re-framed and compressed.  merge(merge(A,B),C) and merge(A,merge(B,C)) are the same file, and
 * any analysis of merge(A,B) equals that of A and B read together.  Memory is
 * one input frame and one output frame. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "compact.h"
#include "config.h"
#include "outfile.h"
#include "trace_codec.h"
#include "trace_reader.h"

/* Records are gathered into frames of about this size: big enough to compress
 * well, small enough that readers need little memory. */
#define MERGE_FRAME_BYTES (256u << 10)

static const char merge_usage[] = "usage: tierpool merge TRACE... -o OUT\n";

static void merge_help(void) {
  printf("%s\n"
         "Writes one trace, OUT, holding every process of the TRACEs (from many\n"
         "processes or machines), in the same format: any tierpool command reads it as\n"
         "it would read the TRACEs together.  Merging is associative, so a fleet's\n"
         "traces can be merged in stages, in any grouping.\n"
         "\n"
         "  -o, --output OUT  the merged trace (written whole or not at all; may be one\n"
         "                    of the TRACEs)\n"
         "\n"
         "Every input is checked as it is copied.  A truncated TRACE (its writer was\n"
         "killed) is merged up to its last complete frame, with a warning; any other\n"
         "damage is an error (exit status 2, OUT not written).\n",
         merge_usage);
}

/* The trace being written: packed records of the current frame, then frames. */
struct merge_writer {
  FILE *file;
  tp_trace_compressor zstd;
  uint8_t *records;
  size_t len, cap;
  uint8_t *frame;
  size_t frame_cap;
  uint64_t n_records, n_frames;
};

/* Makes *buf hold at least need bytes. */
static int reserve(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  uint8_t *grown = realloc(*buf, n);
  if (!grown) return -1;
  *buf = grown;
  *cap = n;
  return 0;
}

/* Compresses the records gathered so far into one frame. */
static int flush_frame(struct merge_writer *w) {
  if (w->len == 0) return 0;
  if (reserve(&w->frame, &w->frame_cap, tp_trace_frame_bound(w->len)) < 0) return -1;
  size_t n = tp_trace_compress_frame(&w->zstd, w->records, w->len, w->frame, w->frame_cap);
  if (n == 0 || fwrite(w->frame, 1, n, w->file) != n) return -1;
  w->len = 0;
  w->n_frames++;
  return 0;
}

static int put_record(struct merge_writer *w, const Tierpool__Trace__Record *rec) {
  size_t size = tp_trace_record_packed_size(rec);
  /* A record never spans two frames: a reader cuts records from one frame. */
  if (w->len > 0 && w->len + size > MERGE_FRAME_BYTES && flush_frame(w) < 0) return -1;
  if (reserve(&w->records, &w->cap, w->len + size) < 0) return -1;
  w->len += tp_trace_record_pack(rec, w->records + w->len);
  w->n_records++;
  return 0;
}

static int put_header(struct merge_writer *w) {
  Tierpool__Trace__Header header = TIERPOOL__TRACE__HEADER__INIT;
  header.magic = (char *)TP_TRACE_MAGIC;
  header.format_version = TP_TRACE_FORMAT_VERSION;
  header.producer = (char *)"tierpool merge " TIERPOOL_CLI_VERSION;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER;
  rec.header = &header;
  return put_record(w, &rec);
}

static int put_compact(void *w, const Tierpool__Trace__Record *rec) { return put_record(w, rec); }

/* Copies one input's records after its Header, in the compact encodings
 * again.  0 when all of it was copied, 1 when it was truncated (what was
 * readable is copied), -1 on error (in err; -2 when the error is in writing). */
static int copy_trace(tp_compactor *compact, const char *path, uint64_t *sections, char *err, size_t errlen) {
  tp_trace_reader *r = tp_trace_open(path, err, errlen);
  if (!r) return -1;
  Tierpool__Trace__Record *rec;
  int got, status = 0;
  uint64_t copied = 0;
  while ((got = tp_trace_next(r, &rec)) > 0) {
    int kind = rec->kind_case;
    if (kind == TIERPOOL__TRACE__RECORD__KIND_HEADER) {
      /* Ours says what we are; another's (its first record) is dropped. */
    } else if (copied == 0 && kind != TIERPOOL__TRACE__RECORD__KIND_PROCESS) {
      /* Copied as is, these would land in the previous input's last section. */
      snprintf(err, errlen, "%s: not a valid trace: record %" PRIu64 " comes before any Process record", path,
               tp_trace_records(r));
      status = -1;
    } else if (tp_compactor_record(compact, rec) < 0) {
      status = -2;
    } else {
      copied++;
      if (kind == TIERPOOL__TRACE__RECORD__KIND_PROCESS) (*sections)++;
    }
    tp_trace_record_free(rec);
    if (status < 0) break;
  }
  if (status == 0 && got < 0) {
    snprintf(err, errlen, "%s", tp_trace_error(r));
    status = tp_trace_truncated(r) ? 1 : -1;
  }
  /* The merged file is whole: its last section says it was cut short. */
  if (status == 1 && copied > 0) {
    Tierpool__Trace__End end = TIERPOOL__TRACE__END__INIT;
    end.cut_short = true;
    Tierpool__Trace__Record end_rec = TIERPOOL__TRACE__RECORD__INIT;
    end_rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_END;
    end_rec.end = &end;
    if (tp_compactor_record(compact, &end_rec) < 0) status = -2;
  }
  if (status >= 0 && tp_compactor_flush(compact) < 0) status = -2;
  if (status == 0 && copied == 0) {
    snprintf(err, errlen, "%s: empty trace (no process in it)", path);
    status = -1;
  }
  /* A truncated trace that held nothing but its Header is of no use either. */
  if (status == 1 && copied == 0) status = -1;
  tp_trace_close(r);
  return status;
}

static int merge(const char *out_path, char **inputs, int n_inputs) {
  char err[1024];
  struct tp_outfile out;
  if (tp_outfile_open(&out, out_path, err, sizeof err) < 0) {
    fprintf(stderr, "tierpool merge: %s\n", err);
    return EXIT_USAGE;
  }
  struct merge_writer w = {.file = out.file};
  int status = 0;
  uint64_t sections = 0;
  tp_compactor *compact = tp_compactor_new(put_compact, &w);
  if (!compact || tp_trace_compressor_init(&w.zstd, NULL, NULL) < 0 || put_header(&w) < 0) {
    fprintf(stderr, "tierpool merge: out of memory\n");
    status = EXIT_USAGE;
  }
  size_t n_kept = (size_t)n_inputs;
  if (status == 0 && cli_skip_unstarted("merge", inputs, &n_kept) != 0) status = EXIT_USAGE;
  for (size_t i = 0; i < n_kept && status == 0; i++) {
    int got = copy_trace(compact, inputs[i], &sections, err, sizeof err);
    if (got == 1) {
      fprintf(stderr, "tierpool merge: warning: %s (merged up to there)\n", err);
    } else if (got == -2) {
      fprintf(stderr, "tierpool merge: %s: write error\n", out_path);
      status = EXIT_USAGE;
    } else if (got < 0) {
      fprintf(stderr, "tierpool merge: %s\n", err);
      status = EXIT_USAGE;
    }
  }
  if (status == 0 && flush_frame(&w) < 0) {
    fprintf(stderr, "tierpool merge: %s: write error\n", out_path);
    status = EXIT_USAGE;
  }
  if (status == 0 && tp_outfile_commit(&out, err, sizeof err) < 0) {
    fprintf(stderr, "tierpool merge: %s\n", err);
    status = EXIT_USAGE;
  }
  if (status != 0) tp_outfile_abort(&out);
  else
    fprintf(stderr, "tierpool merge: %s: %" PRIu64 " process(es) from %zu trace(s), %" PRIu64 " records\n", out_path,
            sections, n_kept, w.n_records);
  tp_trace_compressor_fini(&w.zstd);
  tp_compactor_free(compact);
  free(w.records);
  free(w.frame);
  return status;
}

int cmd_merge(int argc, char **argv) {
  const char *out_path = NULL;
  char **inputs = calloc((size_t)argc, sizeof *inputs);
  int n_inputs = 0;
  bool options_done = false;
  int status = -1;
  if (!inputs) {
    fprintf(stderr, "tierpool merge: out of memory\n");
    return EXIT_USAGE;
  }
  for (int i = 1; i < argc && status < 0; i++) {
    const char *a = argv[i];
    int got;
    if (options_done || a[0] != '-' || a[1] == '\0') {
      inputs[n_inputs++] = argv[i];
    } else if (strcmp(a, "--") == 0) {
      options_done = true;
    } else if (cli_is_help(a)) {
      merge_help();
      status = 0;
    } else if ((got = cli_option(argc, argv, &i, "-o", &out_path)) != 0 ||
               (got = cli_option(argc, argv, &i, "--output", &out_path)) != 0) {
      if (got < 0) status = cli_error("merge", "%s needs a file name (see 'tierpool merge --help')", a);
    } else {
      fprintf(stderr, "tierpool merge: unknown option '%s' (see 'tierpool merge --help')\n", a);
      status = EXIT_USAGE;
    }
  }
  if (status < 0 && n_inputs == 0) {
    fprintf(stderr, "tierpool merge: no trace given (%.*s)\n", (int)strlen(merge_usage) - 1, merge_usage);
    status = EXIT_USAGE;
  } else if (status < 0 && (!out_path || !*out_path)) {
    fprintf(stderr, "tierpool merge: no output given (%.*s)\n", (int)strlen(merge_usage) - 1, merge_usage);
    status = EXIT_USAGE;
  } else if (status < 0 && strcmp(out_path, "-") == 0) {
    fprintf(stderr, "tierpool merge: -o -: a trace is binary, give a file name\n");
    status = EXIT_USAGE;
  }
  if (status < 0) status = merge(out_path, inputs, n_inputs);
  free(inputs);
  return status;
}
