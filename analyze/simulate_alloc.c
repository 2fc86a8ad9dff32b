/* simulate_alloc.c — the pool's allocation API, preload/alloc.c itself,
 * compiled again with every entry point renamed: `tierpool simulate` drives
 * the pool's own fast paths (thread cache, tier dispatch, free checks) while
 * the tierpool command keeps glibc's malloc.  Every function alloc.c defines
 * under a libc name must be in this list (tests/analyze/simulate checks that
 * the tierpool executable defines none of them). */
#define malloc tp_sim_malloc
#define free tp_sim_free
#define calloc tp_sim_calloc
#define realloc tp_sim_realloc
#define reallocarray tp_sim_reallocarray
#define posix_memalign tp_sim_posix_memalign
#define aligned_alloc tp_sim_aligned_alloc
#define memalign tp_sim_memalign
#define valloc tp_sim_valloc
#define pvalloc tp_sim_pvalloc
#define malloc_usable_size tp_sim_malloc_usable_size
#define malloc_trim tp_sim_malloc_trim
#define mallopt tp_sim_mallopt
#define malloc_stats tp_sim_malloc_stats
#define mallinfo tp_sim_mallinfo
#define mallinfo2 tp_sim_mallinfo2
#define __libc_malloc tp_sim___libc_malloc
#define __libc_free tp_sim___libc_free
#define __libc_calloc tp_sim___libc_calloc
#define __libc_realloc tp_sim___libc_realloc
#define __libc_memalign tp_sim___libc_memalign
#define __libc_valloc tp_sim___libc_valloc
#define __libc_pvalloc tp_sim___libc_pvalloc
#define cfree tp_sim_cfree

#include "alloc.c"
