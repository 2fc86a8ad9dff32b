/* unit.h — shared helpers of the unit tests. */
#ifndef TP_UNIT_H
#define TP_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

/* Resets the options to their defaults with `config` (a config file's text,
 * or NULL) and the given TIERPOOL_* environment (NULL-terminated "K=V" list),
 * and returns what the pool wrote to stderr meanwhile. */
const char *unit_load_options(const char *config, const char *const *env);

/* cmocka setup: default options and a fresh heap (its segments are not
 * returned: each test process is short). */
extern tp_heap unit_heap;
int unit_setup_heap(void **state);

#endif
