/* TEMPORARY forwarding stub while the pool is written: replaced by the real pool. */
#include <stdlib.h>
#include "tierpool.h"
#define API __attribute__((visibility("default")))
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
API void *malloc(size_t n) { return __libc_malloc(n); }
API void free(void *p) { __libc_free(p); }
API const char *tierpool_version(void) { return TIERPOOL_VERSION; }
API int tierpool_stats_get(tierpool_stats_t *out) { (void)out; return -1; }
API void tierpool_stats_print(int fd) { (void)fd; }
API size_t tierpool_release(void) { return 0; }
