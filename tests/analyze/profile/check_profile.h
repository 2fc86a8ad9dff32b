/* check_profile.h — what the checks of check_profile share: assertions, the
 * traces they make (make_trace) and the profile as canonical text. */
#ifndef TP_CHECK_PROFILE_H
#define TP_CHECK_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

/* Prints "ok: ..." or "FAIL: ..." and counts failures; returns cond. */
__attribute__((format(printf, 2, 3))) bool check(bool cond, const char *fmt, ...);
/* Runs make_trace on spec; returns the trace's path (valid for the next 31 calls). */
const char *make(const char *name, const char *spec);
/* A path in the scratch directory. */
const char *scratch(const char *name);
bool near(double a, double b);
/* A fresh profile with paths (NULL-terminated) loaded, each with status want. */
void load_all(struct tp_profile *p, const char *const *paths, int want);
/* Every aggregate as sorted lines of text: equal texts, equal profiles. */
char *canon(const struct tp_profile *p);
void check_same(const struct tp_profile *a, const struct tp_profile *b, const char *what);
/* Frames as "PATH@BUILDID+0xADDR", "jit:NAME@0xPC" or "?:@0xPC", joined by ';'. */
char *describe_stack(const struct tp_profile *p, uint32_t stack);
const struct tp_prof_process *find_process(const struct tp_profile *p, uint32_t pid);
void check_site(const struct tp_profile *p, const char *stack, uint32_t tier, const char *tenant, uint64_t samples,
                double allocs, double bytes, double live_allocs, double live_bytes);

/* profile_cases.c */
void check_lifetime_buckets(void);
void check_live_table(void);
void check_one_trace(void);
void check_two_layouts(void);
void check_overlapping_modules(void);
void check_merge_order(void);
void check_truncated(void);
void check_errors(void);
void check_series(void);

#endif
