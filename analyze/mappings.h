/* mappings.h — a process's large anonymous mappings followed through the
 * mmap-family calls its trace recorded: V8 reserves each Wasm memory with one
 * mmap (10 GiB, PROT_NONE), trims its edges to an alignment with munmap and
 * opens it from its start with mprotect as the memory grows.  For each:
 * where it is now and how many of its bytes are accessible.  (Runtimes that
 * map with raw system calls, wasmtime, show in the snapshots instead.) */
#ifndef TP_MAPPINGS_H
#define TP_MAPPINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Smaller anonymous mappings are not followed (the recorder's snapshots
 * report reservations from the same size). */
#define TP_MAPPING_MIN ((uint64_t)64 << 20)

struct tp_range {
  uint64_t lo, hi;
};

struct tp_mapping {
  uint64_t lo, hi;       /* as it stands: munmap trims its edges */
  uint64_t accessible;   /* bytes of [lo, hi) with any of read, write, execute */
  uint32_t tag;          /* the caller's (its reservation's index) */
  struct tp_range *open; /* the accessible ranges, sorted, disjoint, apart */
  size_t n_open, open_cap;
};

struct tp_mappings {
  struct tp_mapping *v;
  size_t n, cap;
};

/* A new mapping [lo, lo + len) (cut at the end of the address space), all
 * accessible or none of it; NULL when out of memory.  The pointer lives until
 * the next call on s. */
struct tp_mapping *tp_mappings_open(struct tp_mappings *s, uint64_t lo, uint64_t len, bool accessible, uint32_t tag);
/* The first mapping overlapping [lo, hi), NULL if none. */
struct tp_mapping *tp_mappings_find(struct tp_mappings *s, uint64_t lo, uint64_t hi);

/* Called with each mapping a call changed; `gone`: it was unmapped whole
 * (reported as it was just before, then dropped). */
typedef void (*tp_mapping_changed_fn)(void *ctx, const struct tp_mapping *m, bool gone);

/* mprotect(addr, len, prot): accessible when prot has any of rwx.  < 0: out of memory. */
int tp_mappings_protect(struct tp_mappings *s, uint64_t addr, uint64_t len, bool accessible, tp_mapping_changed_fn fn,
                        void *ctx);
/* munmap(addr, len).  < 0: out of memory. */
int tp_mappings_unmap(struct tp_mappings *s, uint64_t addr, uint64_t len, tp_mapping_changed_fn fn, void *ctx);

void tp_mappings_clear(struct tp_mappings *s);

#endif /* TP_MAPPINGS_H */
