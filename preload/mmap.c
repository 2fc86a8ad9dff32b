/* mmap.c — the host program's mmap family, passed through unchanged and
 * counted, so that later tools can follow a runtime's own mappings (V8's Wasm
 * reservations and their growth go through libc's mmap64/mprotect).
 * wasmtime maps through raw system calls (rustix), which no preload sees. */
#undef _FILE_OFFSET_BITS /* mmap and mmap64 are both defined here */
#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

static void *tp_syscall_pointer(long result) { return result == -1 ? MAP_FAILED : (void *)result; }

/* Memory the host is about to use: the pool's idle pages should go first. */
#define TP_HOST_GROWTH_MIN (64u << 10)
static inline void tp_host_growth(size_t length, int prot) {
  if (length >= TP_HOST_GROWTH_MIN && (prot & PROT_WRITE) &&
      atomic_load_explicit(&tp_init_state, memory_order_acquire) == 2)
    tp_heap_host_grows();
}

TP_API void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
  tp_stat_inc(tp_os_stats.host_mmap);
  tp_host_growth(length, prot);
  void *p = tp_syscall_pointer(syscall(SYS_mmap, addr, length, prot, flags, fd, offset));
  if (tp_unlikely(tp_rec_active) && p != MAP_FAILED) tp_rec_mmap(TP_REC_MMAP, p, length, prot, flags, NULL);
  return p;
}

TP_API void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off64_t offset) {
  return mmap(addr, length, prot, flags, fd, offset);
}

TP_API int munmap(void *addr, size_t length) {
  tp_stat_inc(tp_os_stats.host_munmap);
  int r = (int)syscall(SYS_munmap, addr, length);
  if (tp_unlikely(tp_rec_active) && r == 0) tp_rec_mmap(TP_REC_MUNMAP, addr, length, 0, 0, NULL);
  return r;
}

TP_API void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...) {
  void *new_address = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_address = va_arg(ap, void *);
    va_end(ap);
  }
  tp_stat_inc(tp_os_stats.host_mremap);
  void *p = tp_syscall_pointer(syscall(SYS_mremap, old_address, old_size, new_size, flags, new_address));
  if (tp_unlikely(tp_rec_active) && p != MAP_FAILED) tp_rec_mmap(TP_REC_MREMAP, p, new_size, 0, flags, old_address);
  return p;
}

TP_API int mprotect(void *addr, size_t length, int prot) {
  tp_stat_inc(tp_os_stats.host_mprotect);
  tp_host_growth(length, prot);
  int r = (int)syscall(SYS_mprotect, addr, length, prot);
  if (tp_unlikely(tp_rec_active) && r == 0) tp_rec_mmap(TP_REC_MPROTECT, addr, length, prot, 0, NULL);
  return r;
}

TP_API int madvise(void *addr, size_t length, int advice) {
  tp_stat_inc(tp_os_stats.host_madvise);
  int r = (int)syscall(SYS_madvise, addr, length, advice);
  if (tp_unlikely(tp_rec_active) && r == 0) tp_rec_mmap(TP_REC_MADVISE, addr, length, advice, 0, NULL);
  return r;
}
