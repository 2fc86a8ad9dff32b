/* profile.h — one or more traces merged into one aggregate, for every
 * analysis subcommand (report, propose, diff, export).
 *
 * Traces are streamed (trace_events.h) and folded in: memory grows with the
 * number of distinct modules, frames, stacks, sites and processes, never with
 * the number of events.  Merging is associative and order-independent: every
 * aggregate is a sum, a max, or a table keyed by content (a frame is its
 * module's build-id and path plus the module-relative address, so the same
 * code in two processes — two ASLR layouts — is one frame).
 *
 * The struct is transparent so that tests and subcommands can build one by
 * hand; tp_profile_add_* keep the tables consistent. */
#ifndef TP_PROFILE_H
#define TP_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buckets.h"

#define TP_PROFILE_NONE UINT32_MAX
#define TP_TIERS 3 /* slab, buddy, large: TIERPOOL__TRACE__TIER__* */

/* Lifetimes: 8 sub-buckets per power of two of microseconds; bucket 0 is < 1 µs. */
#define TP_LIFETIME_BUCKETS (1 + 40 * 8)

/* An executable segment of a module's file (its ELF program header): what a
 * process maps of it, and what pprof's mappings describe. */
struct tp_prof_segment {
  uint64_t vaddr, memsz, file_offset;
};

struct tp_prof_module {
  char *path;
  uint8_t build_id[64];
  size_t build_id_len;
  struct tp_prof_segment *code; /* its executable segments (the file's: the same in every process) */
  size_t n_code;
};

/* A code address: in a module (addr relative to the ELF file's vaddrs, i.e.
 * pc - load_bias), or JIT code named from the process's perf map, or unknown
 * (addr is the absolute pc of whatever process recorded it). */
struct tp_prof_frame {
  uint32_t module;      /* index in modules, or TP_PROFILE_NONE */
  uint64_t addr;        /* a return address as recorded (callers subtract 1 to symbolize) */
  char *jit_name;       /* from the perf map, when module is NONE and a perf map named it; else NULL */
  bool jit;             /* inside a JIT range of its process */
};

struct tp_prof_stack {
  uint32_t *frames;     /* indices in frames, innermost first */
  uint32_t depth;
  bool truncated;
};

/* Everything sampled at one (stack, tier, tenant): estimates weighted by each
 * sample's weight; "live" = not freed when its process's trace ended. */
struct tp_prof_site {
  uint32_t stack, tier;
  uint32_t tenant;      /* index in tenants */
  uint64_t samples;
  double allocs, bytes, live_allocs, live_bytes;
};

struct tp_prof_process {
  uint32_t pid, ppid;
  char *executable, *hostname, *argv;   /* argv joined by spaces */
  uint64_t start_unix_ns, duration_us;  /* last time seen in the trace */
  double sample_rate;
  uint64_t sample_bytes;
  bool validate, ended, truncated;      /* End record seen; the file was cut short */
  uint64_t samples, dropped, allocations;
  uint64_t peak_live, peak_resident, peak_rss;   /* over its snapshots (sum of tiers) */
  uint64_t snapshots;                   /* 0: the peaks are unknown, not 0 */
  char *exec_path;                      /* replaced by an exec of this file ("": unnamed); NULL: not */
  uint32_t *size_classes;               /* the pool's classes when it ran */
  size_t n_size_classes;
  uint64_t buddy_max;
  const char *source;                   /* the trace file it came from (not owned) */
};

/* Per process, a bounded live-bytes series: at most TP_SERIES_MAX points;
 * when full, neighbours are merged (max) and the step doubles. */
#define TP_SERIES_MAX 512
struct tp_series {
  uint64_t step_us;                     /* time per point */
  uint32_t n;
  uint64_t live[TP_SERIES_MAX], resident[TP_SERIES_MAX];
};

/* One tenant's exact histogram (its Histogram records), by bucket. */
struct tp_prof_tenant_hist {
  uint64_t allocs[TP_BUCKET_COUNT], bytes[TP_BUCKET_COUNT], frees[TP_BUCKET_COUNT];
};

/* A tenant's live bytes in one process over time, from the snapshots'
 * per-tenant tier states.  Only processes with more than one tenant have
 * these: in the others, everything is the default tenant's (series). */
struct tp_tenant_series {
  uint32_t process, tenant;             /* indices in processes and tenants */
  struct tp_series series;
};

/* A large anonymous reservation (Wasm linear memory) seen in snapshots. */
struct tp_prof_reservation {
  uint32_t process;                     /* index in processes */
  uint64_t start, size, first_accessible, last_accessible, max_accessible;
  uint64_t first_us, last_us;
};

struct tp_profile {
  /* Exact, from the histograms: requested sizes by bucket (buckets.h). */
  uint64_t allocs[TP_BUCKET_COUNT], bytes[TP_BUCKET_COUNT], frees[TP_BUCKET_COUNT];

  /* Sampled lifetimes by tier, weighted; blocks never freed are counted apart. */
  double lifetime[TP_TIERS][TP_LIFETIME_BUCKETS];
  double never_freed[TP_TIERS];
  /* Sampled allocations by requested size bucket and tier, weighted. */
  double sampled_by_bucket[TP_BUCKET_COUNT];

  uint64_t mmap_calls[5], mmap_bytes[5];   /* by MmapKind: calls; bytes mapped/unmapped/... */

  struct tp_prof_module *modules;   size_t n_modules;
  struct tp_prof_frame *frames;     size_t n_frames;
  struct tp_prof_stack *stacks;     size_t n_stacks;
  struct tp_prof_site *sites;       size_t n_sites;
  char **tenants;                   size_t n_tenants;   /* tenants[0] = "default" */
  struct tp_prof_process *processes; size_t n_processes;
  struct tp_series *series;         /* one per process */
  struct tp_prof_reservation *reservations; size_t n_reservations;
  /* By tenant index (tenants past n_tenant_hists counted nothing): the
   * exact histogram split by tenant; allocs[] etc. above are their sum. */
  struct tp_prof_tenant_hist *tenant_hists; size_t n_tenant_hists;
  struct tp_tenant_series *tenant_series; size_t n_tenant_series;

  uint64_t samples, frees_matched, frees_unmatched;
  uint64_t snapshots;
  void *index;                      /* private: hash tables of the loader */
};

void tp_profile_init(struct tp_profile *p);
void tp_profile_free(struct tp_profile *p);

/* Folds one trace file in.  0 on success; -1 with "PATH: ..." in err when the
 * file cannot be read (not a trace, empty, corrupt): p is then left as it was.
 * A truncated trace (its writer was killed) is folded in up to its last
 * complete frame and returns 1 (err says so: callers warn and go on). */
int tp_profile_load(struct tp_profile *p, const char *path, char *err, size_t errlen);

/* Folds another profile in (the same as loading its traces); into != from. */
void tp_profile_merge(struct tp_profile *into, const struct tp_profile *from);

/* Interning, for loaders and tests: each returns the index of an equal entry,
 * adding one if there is none. */
uint32_t tp_profile_module(struct tp_profile *p, const char *path, const uint8_t *build_id, size_t build_id_len);
/* Sets module's executable segments unless it has some (0, or -1 out of memory). */
int tp_profile_module_code(struct tp_profile *p, uint32_t module, const struct tp_prof_segment *code, size_t n);
uint32_t tp_profile_frame(struct tp_profile *p, uint32_t module, uint64_t addr, const char *jit_name, bool jit);
uint32_t tp_profile_stack(struct tp_profile *p, const uint32_t *frames, uint32_t depth, bool truncated);
uint32_t tp_profile_tenant(struct tp_profile *p, const char *name);
/* (The site itself: the pointer is good until the next site is added.) */
struct tp_prof_site *tp_profile_site(struct tp_profile *p, uint32_t stack, uint32_t tier, uint32_t tenant);
/* A tenant's histogram (zeroed when new; good until the next tenant's is made). */
struct tp_prof_tenant_hist *tp_profile_tenant_hist(struct tp_profile *p, uint32_t tenant);

/* Lifetime bucket of a duration, and the bucket's bounds in µs: [lower, upper). */
uint32_t tp_lifetime_bucket(uint64_t us);
uint64_t tp_lifetime_bucket_lower(uint32_t b);
uint64_t tp_lifetime_bucket_upper(uint32_t b);
/* The q-quantile (0..1) of a lifetime histogram, in µs (bucket midpoint); 0 if empty. */
double tp_lifetime_quantile(const double *hist, double q);

/* Totals of the exact histogram. */
uint64_t tp_profile_total_allocs(const struct tp_profile *p);
uint64_t tp_profile_total_bytes(const struct tp_profile *p);

#endif /* TP_PROFILE_H */
