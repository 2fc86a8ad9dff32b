/* mmap.c — the host program's mmap family, passed through unchanged and
 * counted, so that later tools can follow a runtime's own mappings (V8's Wasm
 * reservations and their growth go through libc's mmap64/mprotect); and
 * mlockall, which the pool must know of (tp_os_move_pages).
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
    tp_heap_host_grows(length);
}

/* A host call that would unmap or replace the pool's memory (a munmap of a
 * freed block, a stale pointer given to MAP_FIXED): the pool would go on
 * handing out pages that are gone or someone else's.  Refused, said in one
 * line, EINVAL; glibc lets it through and corrupts later.  True: refuse. */
static bool tp_refuse_range(const char *call, const void *addr, size_t length) {
  uintptr_t lo = (uintptr_t)addr, hi = lo + length < lo ? UINTPTR_MAX : lo + length;
  uintptr_t ours = tp_segment_in_range(lo, hi);
  const char *what = "heap segment";
  if (!ours && (ours = tp_large_in_range(lo, hi))) what = "large block";
  if (!ours) return false;
  tp_message("%s(%p, %zu): the range holds the pool's memory (%s at 0x%lx); refused", call, addr, length, what,
             (unsigned long)ours);
  errno = EINVAL;
  return true;
}

TP_API void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
  tp_stat_inc(tp_os_stats.host_mmap);
  if (tp_unlikely(flags & MAP_FIXED) && tp_refuse_range("mmap", addr, length)) return MAP_FAILED;
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
  if (tp_refuse_range("munmap", addr, length)) return -1;
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
  if (tp_refuse_range("mremap", old_address, old_size) ||
      ((flags & MREMAP_FIXED) && tp_refuse_range("mremap", new_address, new_size)))
    return MAP_FAILED;
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

TP_API int mlockall(int flags) {
  int r = (int)syscall(SYS_mlockall, flags);
  if (r == 0) atomic_store_explicit(&tp_os_memory_locked, true, memory_order_relaxed);
  return r;
}

TP_API int munlockall(void) {
  int r = (int)syscall(SYS_munlockall);
  if (r == 0) atomic_store_explicit(&tp_os_memory_locked, false, memory_order_relaxed);
  return r;
}
