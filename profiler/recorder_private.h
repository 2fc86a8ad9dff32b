/* recorder_private.h — types shared by the recorder's files:
 *   sampler.c   per-thread (and per-tenant) histograms, sampling, the tables of live samples
 *   rings.c    each thread's ring of samples and sampled frees; the writer's merge of them
 *   clock.c     event timestamps (the TSC, anchored to CLOCK_MONOTONIC)
 *   unwind.c    stack capture (frame pointers and CFI; libunwind as the fallback)
 *   stacks.c    stack interning
 *   procinfo.c  process facts, modules, reservations, perf map, JIT ranges
 *   writer.c    event batches, the writer thread, trace frames
 * tp_rec.lock guards the batches (JIT ranges), tp_rec.live, the filters'
 * updates, the thread list and the rings' list; samples, their frees and mmap
 * calls take no lock (rings.c); the stack table has a lock of its own for additions
 * (stacks.c: lookups take none).  Both are held for copies and lookups only,
 * never across I/O, unwinding or compression; the stack lock is never taken
 * while tp_rec.lock is held. */
#ifndef TP_RECORDER_PRIVATE_H
#define TP_RECORDER_PRIVATE_H

#include "buckets.h"
#include "internal.h"
#include "recorder.h"
#include "recorder_fast.h"
#include "trace.pb-c.h"

#define TP_REC_MAX_DEPTH 64
#define TP_REC_BATCH_MAX 65536u       /* events of each kind per batch; more are dropped */
#define TP_REC_FLUSH_MS 250           /* the writer drains batches this often: bigger frames compress better */
#define TP_REC_WAKE_MS 25             /* ... and sooner once a batch holds TP_REC_FLUSH_EVENTS, */
#define TP_REC_FLUSH_EVENTS 2048u     /* so that a busy program's exit has little left to write */
#define TP_REC_SNAPSHOT_MS 1000       /* histogram, snapshot, modules, perf map */


/* Tenants are indices below TP_MAX_TENANTS: one bit each in a uint64_t. */
_Static_assert(TP_MAX_TENANTS <= 64, "tp_rec.tenants_used is a 64-bit mask");


typedef struct tp_rec_sample {
  uint64_t id, time_ns, size, usable;
  double weight;
  uint32_t stack, thread;
  uint8_t tier, align_log2, tenant; /* tenant < TP_MAX_TENANTS */
} tp_rec_sample;

typedef struct tp_rec_free_event {
  uint64_t id, time_ns;
  uint32_t stack;
} tp_rec_free_event;

typedef struct tp_rec_mmap_event {
  uint64_t time_ns, addr, length, old_addr;
  uint32_t kind, prot, flags, stack, thread;
} tp_rec_mmap_event;

typedef struct tp_rec_jit_event {
  uint64_t start, size, time_ns;
  bool removed;
} tp_rec_jit_event;

/* JIT ranges since the writer's last swap (appended under tp_rec.lock).
 * The array is mapped once, never moved. */
typedef struct tp_rec_batch {
  tp_rec_jit_event *jits;
  uint32_t jit_count;
} tp_rec_batch;

/* Samples, frees and mmap calls the writer has drained from the rings
 * (rings.c) and not yet written: the writer's alone (tp_rec_writer_lock). */
typedef struct tp_rec_drained {
  tp_rec_sample *samples;
  tp_rec_free_event *frees;
  tp_rec_mmap_event *mmaps;
  uint32_t sample_count, free_count, mmap_count;
} tp_rec_drained;

/* A live sampled block (sampler.c: the tables of live samples). */
typedef struct tp_rec_live {
  uintptr_t address; /* 0: empty slot */
  uint64_t id, size; /* the writer's table: id, and size and stack for the leak report */
  uint32_t stack;
  bool filtered;     /* tp_rec.live's: has its filter bits (a buddy or large block) */
} tp_rec_live;

typedef struct tp_rec_live_table {
  tp_rec_live *slots;
  uint64_t capacity, count;
  uint32_t log2;
} tp_rec_live_table;

/* A sample, a sampled free or a host's mmap-family call, as its thread
 * appends it to its ring (rings.c): 48 bytes and the stack's frames (a free:
 * 32 bytes, and in validation mode its stack). */
typedef enum tp_rec_event_kind {
  TP_REC_EVENT_SAMPLE = 1,
  TP_REC_EVENT_FREE = 2,
  TP_REC_EVENT_WRAP = 3, /* the ring's rest is skipped: its next event is at the front */
  TP_REC_EVENT_MMAP = 4,
} tp_rec_event_kind;

typedef struct tp_rec_event {
  uint8_t kind, depth;
  uint8_t tier; /* a sample's; an mmap call's tp_rec_mmap_kind */
  uint8_t align_log2, tenant; /* a sample's; tenant < TP_MAX_TENANTS */
  bool truncated;
  uint32_t thread; /* Thread.id */
  uint32_t flags;  /* an mmap call's (mmap, mremap) */
  uint64_t time_ns;
  uintptr_t address;
  uint64_t size; /* a sample's; an mmap call's length */
  union {
    uint64_t usable;     /* a sample's, in validation mode */
    uint64_t prot;       /* an mmap call's protection (mmap, mprotect) or advice (madvise) */
    uintptr_t old_address; /* an mremap's */
  };
  uintptr_t frames[]; /* depth of them, innermost first */
} tp_rec_event;
_Static_assert(sizeof(tp_rec_event) == 48, "events stay 8-byte aligned in the rings");
_Static_assert(TP_REC_MAX_DEPTH <= UINT8_MAX, "an event's depth fits a byte");

typedef struct tp_rec_thread_info {
  uint32_t tid;
  char name[16];
} tp_rec_thread_info;

/* Thread ids never run out: a server that starts a thread per connection
 * passes 65535 of them in hours (2^26 here, 1.25 MiB of address space per
 * chunk, written as used). */
#define TP_REC_THREAD_CHUNK 65536u
#define TP_REC_THREAD_CHUNKS 1024u

typedef struct tp_recorder {
  tp_lock lock;
  tp_rec_batch batches[2];
  uint32_t active;               /* batch being filled */
  tp_rec_drained drained;
  uint64_t next_sample_id;
  uint64_t start_mono_ns, start_unix_ns;
  double sample_rate;            /* 1 in validation mode */
  double inv_ln_keep;            /* 1 / ln(1 - sample_rate): the geometric skip's scale */
  uint64_t sample_bytes;         /* byte mode when non-zero */
  uint64_t samples, dropped;     /* samples: counted by the writer; dropped: JIT ranges, exited threads' events */
  tp_rec_live_table live;        /* buddy and large samples, for their frees */
  /* threads, by Thread.id - 1: chunks mapped as threads come (tp_rec_thread_at) */
  tp_rec_thread_info *threads[TP_REC_THREAD_CHUNKS];
  uint32_t thread_count;
  /* histograms: live threads' and, per tenant, the sum of exited ones */
  tp_rec_hist *hists, *spare_hists;
  tp_rec_hist retired;                        /* tenant 0's */
  tp_rec_hist *retired_tenants[TP_MAX_TENANTS]; /* the others', mapped on first use */
  uint64_t tenants_used;                      /* bit per tenant that has a histogram */
  bool multi_tenant;                          /* two bits or more: frees look for their owner */
  /* output */
  int fd;
  dev_t fd_dev; /* the trace's identity: a program may close our descriptor */
  ino_t fd_ino; /* and open something else under its number */
  bool fd_is_pipe; /* a FIFO or socket: a write may raise SIGPIPE */
  char path[4096];
  char reopen_path[4096]; /* path, absolute: the program may change directory */
  pid_t pid;
  bool writer_running;
} tp_recorder;

extern tp_recorder tp_rec;


/* sampler.c */
double tp_rec_weight(uint64_t size); /* allocations one sample of this size stands for */
void tp_rec_live_insert(tp_rec_live_table *t, const tp_rec_live *entry);
bool tp_rec_live_remove(tp_rec_live_table *t, uintptr_t address, tp_rec_live *out);

/* rings.c */
void tp_rec_event_push(tp_rec_thread *t, tp_rec_event *e, const uintptr_t *frames); /* thread: set here */
void tp_rec_rings_thread_exit(tp_rec_thread *t);
void tp_rec_rings_after_fork_child(tp_rec_thread *self);
/* The writer (tp_rec_writer_lock held): every ring's events older than
 * cut_ns into d, in time order, ids given.  wait false:
 * an event with a new stack whose lock is busy stops the drain there. */
void tp_rec_rings_drain(tp_rec_drained *d, uint64_t cut_ns, bool wait);
uint64_t tp_rec_rings_pending(void); /* bytes waiting in the rings: a hint */
uint64_t tp_rec_rings_dropped(void); /* events the rings had no room for */
const tp_rec_live_table *tp_rec_rings_live(void); /* the writer's table of live samples */

/* clock.c */
uint64_t tp_rec_now_ns(void); /* CLOCK_MONOTONIC, relative to the start */
uint64_t tp_rec_clock_ns(clockid_t clock); /* clock_gettime, in ns */
void tp_rec_clock_start(void);
void tp_rec_clock_after_fork(void); /* a forked child's times start at its fork */
uint32_t tp_rec_thread_id(tp_rec_thread *t); /* registers the thread; lock held */
/* The facts of the thread with id index + 1 (index < tp_rec.thread_count). */
static inline tp_rec_thread_info *tp_rec_thread_at(uint32_t index) {
  return &tp_rec.threads[index / TP_REC_THREAD_CHUNK][index % TP_REC_THREAD_CHUNK];
}
void tp_rec_hist_sum(tp_rec_hist *out, uint32_t tenant); /* one tenant's counts; lock held */

/* unwind.c */
bool tp_rec_stacks_init(void); /* the frame walk; false: cannot record stacks */
void tp_rec_stacks_load_libunwind(void); /* the fallback, at tp_rec_start */
void tp_rec_stacks_use_libgcc(void *libgcc);
uint32_t tp_rec_capture(uintptr_t *frames, uint32_t max, bool *truncated);

/* stacks.c */
uint32_t tp_rec_stack_intern(const uintptr_t *frames, uint32_t depth, bool truncated); /* takes its own lock */
bool tp_rec_stack_intern_if(const uintptr_t *frames, uint32_t depth, bool truncated, bool wait, uint32_t *id);
void tp_rec_stacks_lock(void); /* fork */
void tp_rec_stacks_unlock(void);
void tp_rec_stacks_reinit_lock(void);
/* Stack id's frames, innermost first, at most max of them: how many. */
uint32_t tp_rec_stack_frames(uint32_t id, uintptr_t *frames, uint32_t max, bool *truncated);
/* The frames stack id added to the tree of stacks (outermost first): how
 * many, where they are, and *back as a Stacks record's `from` wants it (the
 * node they hang from, counted back from the first of them; 0: the root). */
uint32_t tp_rec_stack_added(uint32_t id, uint32_t *back, const uint64_t **frames);
bool tp_rec_stack_truncated(uint32_t id);
uint32_t tp_rec_stack_node_count(void); /* nodes in the tree of stacks */
uint32_t tp_rec_stack_count(void);
void tp_rec_print_stack(int fd, const uintptr_t *frames, uint32_t depth);

/* procinfo.c: each appends records to the writer's output */
/* Records packed into a growing buffer of scratch memory (a frame's worth). */
typedef struct tp_rec_out {
  uint8_t *data;
  size_t len, cap;
  bool failed; /* out of memory: the frame is lost */
} tp_rec_out;
void tp_rec_out_record(tp_rec_out *out, Tierpool__Trace__Record *record);
void tp_rec_emit_process(tp_rec_out *out);
void tp_rec_emit_new_modules(tp_rec_out *out);
void tp_rec_emit_snapshot(tp_rec_out *out, uint64_t time_us, uint32_t tenant_count);
void tp_rec_emit_perf_map(tp_rec_out *out);
void tp_rec_procinfo_reset(void); /* a forked child emits everything again */

/* jit.c */
bool tp_rec_in_jit(uintptr_t pc);

/* trace_file.c */
bool tp_rec_writer_open(void); /* a new file and its first frame: header, process, modules */
bool tp_rec_write_frame(tp_rec_out *out); /* false: the frame is lost (out of memory) */
void tp_rec_fd_give_up(void);              /* the trace stops, not the program */
void tp_rec_file_after_fork_child(void);

/* writer.c */
void tp_rec_writer_start(void);
typedef enum tp_rec_flush_mode {
  TP_REC_FLUSH_PERIODIC, /* the writer thread's 250 ms beat            */
  TP_REC_FLUSH_EXEC,     /* all data and the Exec record now; the program may go on (exec failed) */
  TP_REC_FLUSH_FINAL,    /* all data and the End record: exit          */
  TP_REC_FLUSH_FINAL_HELD, /* the same from an exit() in a signal handler that stopped this
                              thread holding pool locks: the writer waited for a second at most, no snapshot */
} tp_rec_flush_mode;
/* exec_path: EXEC's, or NULL.  True: EXEC's record written, and the beats
 * wait until tp_rec_writer_exec_failed (or the new image). */
bool tp_rec_writer_flush(tp_rec_flush_mode mode, const char *exec_path);
void tp_rec_writer_exec_failed(int error); /* the exec's errno */
bool tp_rec_writer_flush_fits_stack(void); /* false (said on stderr): a signal stack too small for a flush */
bool tp_rec_in_unforked_child(void); /* _Fork, raw clone, vfork: the trace is the parent's */
void tp_rec_writer_after_fork_child(void);
void *tp_rec_map(size_t size); /* zeroed pages for the recorder's own tables */
void *tp_rec_map_table(size_t size); /* the same, resident at once: for hash tables */
bool tp_rec_is_own_map(uintptr_t address); /* inside one of the recorder's big tables */

/* scratch.c: the writer's working memory, not the pool's (tp_rec_writer_lock
 * held).  Allocations live until the arena is restored to a mark saved
 * before them. */
typedef struct tp_rec_scratch_mark {
  void *chunk;
  size_t used;
} tp_rec_scratch_mark;
tp_rec_scratch_mark tp_rec_scratch_save(void);
void tp_rec_scratch_restore(tp_rec_scratch_mark mark);
void tp_rec_scratch_reset(void); /* fork child: all of it gone but the first chunk */
void *tp_rec_scratch_alloc(size_t size);                          /* NULL: out of memory */
void *tp_rec_scratch_grow(void *p, size_t old_size, size_t size); /* realloc */
void *tp_rec_zstd_alloc(void *opaque, size_t size);               /* zstd's (ZSTD_customMem) */
void tp_rec_zstd_free(void *opaque, void *address);

#endif /* TP_RECORDER_PRIVATE_H */
