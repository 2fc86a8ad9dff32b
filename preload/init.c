/* init.c — lazy initialisation, fork handling, the optional background
 * thread (and what every helper thread owes the program), and the report at
 * exit.
 *
 * The first allocation (which may come from the dynamic loader, before any
 * constructor) initialises the pool: options, the free key, the main heap.
 * Nothing in that phase allocates.  The second phase (pthread key for thread
 * exit, fork handlers) may allocate, so it runs once the pool is usable. */
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

_Atomic int tp_init_state;
static int tp_stats_fd = 2;
static _Atomic bool tp_background_running;
static void tp_background_start(void);
static _Atomic int tp_helpers_alive, tp_helpers_running; /* helper threads, below */
static _Atomic bool tp_helper_exiting, tp_helpers_paused;
static _Atomic uint32_t tp_helper_wake; /* bumped, and futex-woken, to cut helpers' sleeps short */



/* Heaps are locked in index order; the tenant count cannot change meanwhile
 * (creating a heap takes no pool lock, but publishes it last). */
static uint32_t tp_fork_heaps;

static void tp_fork_prepare(void) {
  tp_rec_fork_prepare(); /* the recorder's lock is never held while pool locks are taken */
  tp_tenant_fork_lock(false);
  tp_tcache_registry_lock();
  tp_fork_heaps = tp_tenant_count();
  for (uint32_t i = 0; i < tp_fork_heaps; i++) tp_heap_lock_all(tp_tenant_heap(i));
  tp_tenant_fork_lock(true);
  tp_large_lock();
}

static void tp_fork_parent(void) {
  tp_large_unlock();
  for (uint32_t i = tp_fork_heaps; i-- > 0;) tp_heap_unlock_all(tp_tenant_heap(i));
  tp_tcache_registry_unlock();
  tp_tenant_fork_unlock();
  tp_rec_fork_parent();
}

static void tp_fork_child(void) {
  tp_large_reinit_lock();
  tp_tenant_fork_child();
  for (uint32_t i = 0; i < tp_fork_heaps; i++) tp_heap_reinit_locks(tp_tenant_heap(i));
  tp_node_budget_after_fork_child();
  tp_tcache_registry_unlock(); /* held by this thread since prepare */
  atomic_store(&tp_background_running, false);
  atomic_store(&tp_helpers_alive, 0); /* only the forking thread lives on */
  atomic_store(&tp_helpers_running, 0);
  atomic_store(&tp_helper_exiting, false);
  atomic_store(&tp_helpers_paused, false);
  tp_tcache_after_fork_child();
  tp_rec_fork_child();
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

void tp_init_slow(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&tp_init_state, &expected, 1)) {
    while (atomic_load_explicit(&tp_init_state, memory_order_acquire) != 2) sched_yield();
    return;
  }
  tp_options_init();
  tp_classes_finish(&tp_classes); /* per-class cache sizes depend on tcache_bytes */
  tp_free_key = tp_random_key();
  tp_heap_init(&tp_main_heap, "default");
  tp_tenant_init_default();
  atomic_store_explicit(&tp_init_state, 2, memory_order_release);

  tp_tcache_init_key();
  /* pthread_atfork is not in libc.so: libc_nonshared.a links a wrapper of
   * it in at the end of the library's text, among zstd's code, and calling
   * it would map that page range into every process.  All the wrapper does
   * is pass the library's handle, as here. */
  __register_atfork(tp_fork_prepare, tp_fork_parent, tp_fork_child, &__dso_handle);
  /* Programs like sort and ls close stderr before they exit: keep a copy
   * for the report, only when one was asked for. */
  if (tp_opt.stats) {
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 64);
    if (fd >= 0) tp_stats_fd = fd;
  }
}

/* ---- helper threads -----------------------------------------------------
 * glibc ends a process whose last thread calls pthread_exit (main included)
 * with exit(0) only when no other thread is left: a helper of ours would keep
 * it alive, idle, forever.  So each helper asks on its beat whether only
 * helpers are running, and if so ends the process as glibc would have.
 * Two counts: `alive` from spawn to return (what a pause waits for), and
 * `running` from the helper's first step to its last (what the exit check
 * trusts: it never exceeds the helpers the kernel counts). */

/* A helper blocks every signal (it inherits the mask it is created with): a
 * signal sent to the process must reach a thread of the program, or stay
 * pending where the program blocked it, as if the helper were not there. */
bool tp_helper_spawn(void *(*main)(void *), const char *name) {
  pthread_t thread;
  pthread_attr_t attr;
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  atomic_fetch_add(&tp_helpers_alive, 1);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  bool spawned = pthread_create(&thread, &attr, main, NULL) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (spawned)
    pthread_setname_np(thread, name); /* what top -H and gdb show */
  else
    atomic_fetch_sub(&tp_helpers_alive, 1);
  pthread_attr_destroy(&attr);
  return spawned;
}

void tp_helper_started(void) { atomic_fetch_add(&tp_helpers_running, 1); }

void tp_helper_stopping(void) {
  atomic_fetch_sub(&tp_helpers_running, 1);
  atomic_fetch_sub(&tp_helpers_alive, 1);
}

bool tp_helper_sleep(uint32_t ms) {
  uint32_t seen = atomic_load(&tp_helper_wake);
  if (atomic_load(&tp_helpers_paused)) return false;
  struct timespec delay = {ms / 1000, (long)(ms % 1000) * 1000000L};
  syscall(SYS_futex, &tp_helper_wake, FUTEX_WAIT_PRIVATE, seen, &delay, NULL, 0);
  return !atomic_load(&tp_helpers_paused);
}

void tp_helper_check(void) {
  int running = tp_os_running_threads();
  if (running < 0 || running > atomic_load(&tp_helpers_running)) return;
  if (atomic_exchange(&tp_helper_exiting, true)) return; /* another helper is ending it */
  exit(0);
}

/* Some calls want a single-threaded caller (unshare and setns of a user or
 * mount namespace fail with EINVAL otherwise): the helpers end for them. */
bool tp_helpers_pause(void) {
  int helpers = atomic_load(&tp_helpers_alive), before = tp_os_running_threads();
  if (helpers == 0) return false;
  atomic_store(&tp_helpers_paused, true);
  atomic_fetch_add(&tp_helper_wake, 1);
  syscall(SYS_futex, &tp_helper_wake, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
  /* A helper uncounts itself just before it returns; the kernel drops the
   * thread a little later.  Bounded: a helper stuck in a flush is waited for
   * at most a second, and the caller's retry then fails as it would have. */
  for (int waited_us = 0; waited_us < 1000000; waited_us += 100) {
    if (atomic_load(&tp_helpers_alive) == 0 && (before < 0 || tp_os_running_threads() <= before - helpers)) break;
    struct timespec delay = {0, 100 * 1000};
    nanosleep(&delay, NULL);
  }
  return true;
}

void tp_helpers_resume(void) {
  atomic_store(&tp_helpers_paused, false);
  tp_background_start();
  tp_rec_writer_restart();
}

static void *tp_background_main(void *arg) {
  (void)arg;
  tp_helper_started();
  while (tp_helper_sleep(100)) {
    tp_helper_check();
    uint64_t now = tp_os_now_ms();
    for (uint32_t i = 0; i < tp_tenant_count(); i++) {
      tp_heap *h = tp_tenant_heap(i);
      tp_lock_acquire(&h->buddy_lock);
      tp_heap_maintain(h, now);
      tp_lock_release(&h->buddy_lock);
    }
    tp_large_maintain(now);
    if (tp_opt.prom_file[0]) tp_prom_tick(now);
  }
  atomic_store(&tp_background_running, false); /* before it uncounts itself: resume may start another */
  tp_helper_stopping();
  return NULL;
}

static void tp_background_start(void) {
  bool expected = false;
  if (!tp_opt.background_thread || !atomic_compare_exchange_strong(&tp_background_running, &expected, true))
    return;
  if (!tp_helper_spawn(tp_background_main, "tierpool-bg")) atomic_store(&tp_background_running, false);
}

/* Without a TIERPOOL_ variable every option keeps its default: no recorder,
 * no background thread, and the pool waits for the first allocation, so a
 * program that never allocates pays only for loading the library. */
static bool tp_environment_configures(void) {
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, "TIERPOOL_", 9) == 0) return true;
  return false;
}

/* The recorder starts here, not in the first malloc: the loader is done and
 * may be asked about modules (dl_iterate_phdr), files may be opened. */
__attribute__((constructor)) static void tp_constructor(void) {
  if (!tp_environment_configures()) return;
  tp_ensure_init();
  tp_background_start();
  tp_rec_start();
}

/* Preloaded libraries are finalised last, so this sees the program's whole run. */
__attribute__((destructor)) static void tp_destructor(void) {
  tp_rec_finish();
  if (atomic_load(&tp_init_state) != 2) return;
  if (tp_opt.stats) tierpool_stats_print(tp_stats_fd);
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
