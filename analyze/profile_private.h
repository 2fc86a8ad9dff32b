/* profile_private.h — what profile.c (the tables, merging) and profile_load.c
 * (folding a trace in) share: the hash sets behind p->index and the growth
 * of the per-process arrays. */
#ifndef TP_PROFILE_PRIVATE_H
#define TP_PROFILE_PRIVATE_H

#include "hash_set.h"
#include "profile.h"

/* p->index: a hash set per interned table, and each array's capacity. */
struct tp_profile_index {
  struct tp_hash_set modules, frames, stacks, tenants, sites;
  size_t modules_cap, frames_cap, stacks_cap, sites_cap, tenants_cap, processes_cap, reservations_cap;
  size_t tenant_hists_cap, tenant_series_cap;
};

/* Makes room for element n of *array (capacity *cap, elem bytes each); new room is zeroed. */
void *tp_profile_grow(void *array, size_t *cap, size_t n, size_t elem);
char *tp_profile_strdup(const char *s);

/* A new process (zeroed, with an empty series); returns its index. */
uint32_t tp_profile_add_process(struct tp_profile *p);
/* A new reservation (zeroed); returns its index. */
uint32_t tp_profile_add_reservation(struct tp_profile *p);
/* A new, empty live-bytes series of a tenant in a process. */
struct tp_tenant_series *tp_profile_add_tenant_series(struct tp_profile *p, uint32_t process, uint32_t tenant);

/* The initial time per point of a series: the recorder's snapshot period. */
#define TP_SERIES_STEP_US 1000000u
/* Puts a snapshot into the series (max per point; halves the resolution when full). */
void tp_series_add(struct tp_series *s, uint64_t time_us, uint64_t live, uint64_t resident);

#endif /* TP_PROFILE_PRIVATE_H */
