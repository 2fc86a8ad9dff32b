/* init.c — lazy initialisation, fork handling, and the report at exit.
 *
 * The first allocation (which may come from the dynamic loader, before any
 * constructor) initialises the pool: options, the free key, the main heap.
 * Nothing in that phase allocates.  The second phase (pthread key for thread
 * exit, fork handlers) may allocate, so it runs once the pool is usable. */
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

_Atomic int tp_init_state;
static int tp_stats_fd = -1; /* the exit report's copy of stderr; -1: none (stderr was closed) */
static dev_t tp_stats_dev; /* what tp_stats_fd was: a program that closed it may have the number for a file of its own */
static ino_t tp_stats_ino;

static bool tp_stats_fd_intact(int fd) { return tp_os_fd_is(fd, tp_stats_dev, tp_stats_ino); }



/* Heaps are locked in index order; the tenant count cannot change meanwhile
 * (creating a heap takes no pool lock, but publishes it last).  The forking
 * thread's own: glibc (2.36 on) runs the handlers of two threads' forks at once, and
 * one that found the pool not made yet must not unlock what the other's
 * prepare took. */
static __thread uint32_t tp_fork_heaps;
static __thread bool tp_fork_locked; /* prepare found the pool made and took its locks */

static void tp_fork_prepare(void) {
  tp_fork_locked = atomic_load_explicit(&tp_init_state, memory_order_acquire) == 2;
  if (!tp_fork_locked) return; /* registered at load (tp_constructor), the pool not made yet */
  tp_rec_fork_prepare(); /* the recorder's lock is never held while pool locks are taken */
  tp_tenant_fork_lock(false);
  tp_tcache_registry_lock();
  tp_fork_heaps = tp_tenant_count();
  for (uint32_t i = 0; i < tp_fork_heaps; i++) tp_heap_lock_all(tp_tenant_heap(i));
  tp_tenant_fork_lock(true);
  tp_large_lock();
}

static void tp_fork_parent(void) {
  if (!tp_fork_locked) return;
  tp_large_unlock();
  for (uint32_t i = tp_fork_heaps; i-- > 0;) tp_heap_unlock_all(tp_tenant_heap(i));
  tp_tcache_registry_unlock();
  tp_tenant_fork_unlock();
  tp_rec_fork_parent();
}

static void tp_fork_child(void) {
  if (!tp_fork_locked) return;
  tp_large_reinit_lock();
  tp_tenant_fork_child();
  for (uint32_t i = 0; i < tp_fork_heaps; i++) tp_heap_reinit_locks(tp_tenant_heap(i));
  tp_node_budget_after_fork_child();
  tp_tcache_registry_unlock(); /* held by this thread since prepare */
  tp_helpers_after_fork_child();
  tp_os_after_fork_child();
  tp_tcache_after_fork_child();
  tp_rec_fork_child();
  tp_locks_held = 0; /* the locks prepare took are new ones in the child, held by nobody */
  tp_background_start(); /* background_thread = on holds for the child too (the writer restarts likewise) */
}

/* The kernel hands every process 16 random bytes (AT_RANDOM): no system call. */
static uintptr_t tp_random_key(void) {
  uintptr_t key = 0;
  const unsigned char *bytes = (const unsigned char *)getauxval(AT_RANDOM);
  if (bytes) {
    memcpy(&key, bytes + 8, sizeof key); /* the first 8 are glibc's stack guard */
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    key = ((uintptr_t)ts.tv_nsec << 32) ^ (uintptr_t)ts.tv_sec ^ (uintptr_t)&key;
  }
  return key | 1; /* never a valid aligned pointer, never NULL */
}

extern void *__dso_handle;
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);

/* Once, as early as the library can: at load, or at the first allocation if
 * that comes first.  glibc runs prepare handlers newest first and child
 * handlers oldest first, so handlers the program registers later run while
 * the pool is not locked — they may allocate (registered at the pool's first
 * allocation, after a constructor's pthread_atfork, they ran with every lock
 * held and the fork hung).  pthread_atfork is not in libc.so: libc_nonshared.a
 * links a wrapper of it in at the end of the library's text, among zstd's
 * code, and calling it would map that page range into every process.  All
 * the wrapper does is pass the library's handle, as here.  The flag is set
 * first: the registration may allocate, and the pool's first allocation
 * must not register again inside it. */
static void tp_register_fork_handlers(void) {
  static atomic_bool registered;
  if (atomic_exchange(&registered, true)) return;
  __register_atfork(tp_fork_prepare, tp_fork_parent, tp_fork_child, &__dso_handle);
}

void tp_init_slow(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&tp_init_state, &expected, 1)) {
    while (atomic_load_explicit(&tp_init_state, memory_order_acquire) != 2) sched_yield();
    return;
  }
  tp_options_init();
  tp_prom_init();
  tp_classes_finish(&tp_classes); /* per-class cache sizes depend on tcache_bytes */
  tp_free_key = tp_random_key();
  tp_heap_init(&tp_main_heap, "default");
  tp_tenant_init_default();
  atomic_store_explicit(&tp_init_state, 2, memory_order_release);

  tp_tcache_init_key();
  tp_register_fork_handlers();
  /* Programs like sort and ls close stderr before they exit: keep a copy
   * for the report, only when one was asked for. */
  if (tp_opt.stats) {
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
      tp_stats_fd = tp_os_fd_out_of_the_way(fd);
      tp_stats_dev = st.st_dev, tp_stats_ino = st.st_ino;
    } else if (fd >= 0) {
      close(fd); /* no report: stderr's number may become a file of the program's */
    }
  }
}

/* Without a TIERPOOL_ variable every option keeps its default: no recorder,
 * no background thread, and the pool waits for the first allocation, so a
 * program that never allocates pays only for loading the library. */
static bool tp_environment_configures(void) {
  /* __environ, not environ: the loader finds environ in the executable (a
   * copy relocation), reading a page of its symbol table — 64 KiB of node's
   * RSS with fault-around; libc looks __environ up already. */
  for (char **e = __environ; e && *e; e++) /* TIERPOOL_LIB and _CLI are the tools', not options */
    if (strncmp(*e, "TIERPOOL_", 9) == 0 && strncmp(*e + 9, "LIB=", 4) != 0 && strncmp(*e + 9, "CLI=", 4) != 0)
      return true;
  return false;
}

/* The recorder starts here, not in the first malloc: the loader is done and
 * may be asked about modules (dl_iterate_phdr), files may be opened. */
__attribute__((constructor)) static void tp_constructor(void) {
  tp_register_fork_handlers();
  if (!tp_environment_configures()) return;
  tp_ensure_init();
  tp_rec_start(); /* first: it loads libunwind, which wants no other thread yet (unwind.c) */
  tp_background_start();
}

/* After the program's own destructors and exit handlers; but before those of
 * the shared libraries it loaded (ld.so finalises the preloaded library right
 * after the executable): what they free at exit is neither counted in the
 * statistics nor in the trace, and validation's leak report lists it. */
#define TP_REPORT_STACK (16u << 10) /* stack the exit report asks for below the destructor */

__attribute__((destructor)) static void tp_destructor(void) {
  tp_rec_finish();
  if (atomic_load(&tp_init_state) != 2) return;
  /* An exit() from a signal handler that stopped this thread inside the pool:
   * the report and the metrics read the pool under the locks it holds. */
  if (tp_locks_held_here()) {
    if (tp_opt.stats || tp_opt.prom_file[0]) tp_message("exit inside the allocator (a signal handler): no final statistics");
    return;
  }
  /* The table is formatted on the stack: an exit() from a handler on an
   * 8 KiB signal stack ran off its end (on 12 KiB it went through); said
   * without formatting, on what stack is left. */
  if ((tp_opt.stats || tp_opt.prom_file[0]) && tp_rec_signal_stack_short(TP_REPORT_STACK)) {
    static const char line[] = "tierpool: exit on a small signal stack: no final statistics\n";
    tp_os_write(2, line, sizeof line - 1);
    return;
  }
  if (tp_opt.stats) { /* to the copy of stderr, or stderr, whichever is still what stderr was */
    if (tp_stats_fd >= 0 && !tp_stats_fd_intact(tp_stats_fd)) tp_stats_fd = tp_stats_fd_intact(2) ? 2 : -1;
    if (tp_stats_fd >= 0) tierpool_stats_print(tp_stats_fd);
  }
  if (tp_opt.prom_file[0]) tp_prom_write(tp_opt.prom_file); /* the final numbers */
}

TP_API const char *tierpool_version(void) { return TIERPOOL_VERSION; }

TP_API size_t tierpool_release(void) {
  tp_ensure_init();
  if (tp_tcache_current) tp_tcache_flush_all(tp_tcache_current);
  size_t released = 0;
  for (uint32_t i = 0; i < tp_tenant_count(); i++) released += tp_heap_release_all(tp_tenant_heap(i));
  released += tp_large_cache_flush();
  return released;
}
