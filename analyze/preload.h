/* preload.h — finding libtierpool.so and putting it into a child's LD_PRELOAD. */
#ifndef TIERPOOL_PRELOAD_H
#define TIERPOOL_PRELOAD_H

#include <limits.h>

/* Finds libtierpool.so: $TIERPOOL_LIB if set, else next to this executable in
 * the build tree (../preload/), else the install location.  On success writes
 * its canonical path to lib and returns 0; otherwise prints
 * "tierpool: cannot find libtierpool.so (looked in ...)" and returns -1. */
int preload_find(char lib[PATH_MAX]);

/* Prepends lib to LD_PRELOAD, keeping the entries already there.
 * Returns 0, or -1 with errno set. */
int preload_add(const char *lib);

#endif
