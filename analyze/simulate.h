/* simulate.h — `tierpool simulate`: a trace's allocation stream replayed
 * through an independent instance of the pool, one config at a time.
 *
 *   simulate.c         the command: a forked child per config, numbers back
 *                      through a pipe, the side-by-side table
 *   simulate_trace.c   a trace's events, back in time order
 *   simulate_replay.c  events → simulated blocks: weights, lifetimes, peaks
 *   simulate_pool.c    the pool instance: preload/'s core and alloc.c (with
 *                      renamed entry points, simulate_alloc.c), its clock
 *                      driven by the trace, options from the config file
 *
 * The pool's options and state are process-global, as in a preloaded
 * process: one config per process, which is why each runs in a child. */
#ifndef TIERPOOL_SIMULATE_H
#define TIERPOOL_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the pool instance (simulate_pool.c) ---------------------------------- */

/* Sets the pool's options from a config file, with the pool's own parser
 * (as TIERPOOL_CONFIG=path would; TIERPOOL_* variables of the environment are
 * ignored), and initialises the pool.  Any diagnostic of the parser makes it
 * fail: *err gets it as one line ("PATH:LINE: bad value ..."). */
bool sim_pool_configure(const char *config_path, char *err, size_t errlen);

/* The pool's API (preload/alloc.c compiled under other names). */
void *sim_pool_alloc(uint64_t size, uint64_t align);
void sim_pool_free(void *p);
uint64_t sim_pool_usable(void *p);

/* The pool's clock (its tp_os_now_ms) in ms; never goes back.  With
 * background_thread = on, the maintenance the thread would run every 100 ms
 * of this clock runs here. */
void sim_pool_set_clock(uint64_t ms);

/* Writes a byte to every page of the first `bytes` of a block, as the
 * program that asked for them would have. */
void sim_pool_touch(void *p, uint64_t bytes);

/* Memory the pool holds from the OS, as its statistics measure it (mincore):
 * slab and buddy pages, in use or free, plus large mappings live and cached;
 * segment headers apart, as the statistics count them.  Walks the heap. */
uint64_t sim_pool_resident(void);

/* The same by the pool's own accounting, at no cost: heap pages handed out
 * and not known to be released — an upper bound of sim_pool_resident(). */
uint64_t sim_pool_accounted(void);

/* The pool's statistics (tierpool_stats_get), summed over the tiers. */
struct sim_pool_totals {
  uint64_t allocs, frees, bytes_requested, bytes_allocated, live_bytes;
};
void sim_pool_totals(struct sim_pool_totals *out);

/* ---- the replay (simulate_replay.c) ---------------------------------------- */

/* Numbers of one replay.  "Live" counts blocks the replay holds: requested
 * bytes as the trace asked, usable bytes as the pool handed out.  The live
 * peak is the first moment the requested bytes are at their highest.
 * Resident memory is measured now and then (see simulate_replay.c). */
struct sim_numbers {
  uint64_t samples;                /* sample events replayed */
  uint64_t allocations;            /* simulated blocks allocated (weights rounded) */
  uint64_t failed;                 /* allocations the pool refused */
  uint64_t frees;                  /* simulated blocks freed */
  uint64_t peak_live;              /* requested bytes at the live peak */
  uint64_t peak_usable;            /* usable bytes of live blocks at the live peak */
  uint64_t measured_live;          /* the live peak's measure, within 1/256 of it: */
  uint64_t measured_usable;        /*   requested and usable bytes of live blocks, */
  uint64_t measured_resident;      /*   and sim_pool_resident() */
  uint64_t peak_resident;          /* highest sim_pool_resident() measured */
  uint64_t peak_accounted;         /* highest sim_pool_accounted() */
  uint64_t mean_resident;          /* sim_pool_resident() averaged over the traces' time */
  uint64_t measures;               /* times sim_pool_resident() was measured */
  uint64_t sections;               /* process sections replayed */
  uint64_t exact_sections;         /* of which validation mode: every allocation a sample */
  uint64_t unmatched_frees;        /* frees whose sample never came */
  uint64_t late_events;            /* events that came too late to be put in time order */
  uint64_t duration_ms;            /* simulated time */
  struct sim_pool_totals pool;     /* the pool's statistics at the end */
  uint64_t final_live_usable;      /* the replay's own count, to check pool.live_bytes */
};

struct sim_replay;

struct sim_replay *sim_replay_new(void); /* NULL when out of memory */
void sim_replay_delete(struct sim_replay *r);

/* One event each.  A sample of weight w stands for w allocations of its size:
 * round(w) blocks (fractions carried over, so totals stay unbiased), freed
 * together at its free.  A free that comes before its sample waits for it.
 * Times are µs since the process section's start.  False when out of memory. */
bool sim_replay_sample(struct sim_replay *r, uint64_t id, uint64_t time_us, uint64_t size,
                       uint32_t align_log2, double weight);
bool sim_replay_free(struct sim_replay *r, uint64_t id, uint64_t time_us);

/* A new process section (exact: recorded in validation mode): the previous
 * process's blocks are freed (it exited), ids start over, the clock goes on
 * from the previous process's last event. */
void sim_replay_section(struct sim_replay *r, bool exact);

/* The numbers so far, with the pool's statistics. */
void sim_replay_numbers(struct sim_replay *r, struct sim_numbers *out);

/* ---- a trace file (simulate_trace.c) --------------------------------------- */

/* Replays a whole trace file, its events in time order.  Returns 0, or -1
 * with "PATH: what" in err; *truncated says the file ended inside a frame
 * (what came before was replayed). */
int sim_replay_trace(struct sim_replay *r, const char *path, bool *truncated, char *err, size_t errlen);

#endif /* TIERPOOL_SIMULATE_H */
