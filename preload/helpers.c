/* helpers.c — the library's own threads: the optional background thread
 * (maintenance off the program's slow paths) and, started by the recorder,
 * its writer; and what every such helper owes the program: to be invisible
 * to it.  A helper blocks every signal, never keeps the process alive, and
 * steps aside for calls that want a single-threaded caller (namespace.c). */
#include <dlfcn.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

static _Atomic bool tp_background_running;

/* glibc ends a process whose last thread calls pthread_exit (main included)
 * with exit(0) only when no other thread is left: a helper of ours would keep
 * it alive, idle, forever.  So each helper asks on its beat whether only
 * helpers are running, and if so ends the process as glibc would have.
 * Two counts: `alive` from spawn to return (what a pause waits for), and
 * `running` from the helper's first step to its last (what the exit check
 * trusts: it never exceeds the helpers the kernel counts). */
static _Atomic int tp_helpers_alive, tp_helpers_running;
static _Atomic bool tp_helper_exiting, tp_helpers_paused;
static _Atomic uint32_t tp_helper_wake; /* bumped, and futex-woken, to cut helpers' sleeps short */
/* The process the counts are about: a child made without fork's handlers
 * (vfork, _Fork, a raw clone) has none of the helpers, and a vfork child
 * shares the parent's memory — it must not stop the parent's. */
static _Atomic pid_t tp_helpers_pid;

/* The program's threads still running, helpers included; -1 if unknown.
 * /proc/self/stat counts every thread the kernel has; without /proc (a
 * chroot, a sandbox) glibc's own count, which pthread_create raises and a
 * thread's exit (main's pthread_exit too) lowers, says as much for threads
 * made by pthread_create — all there are in a glibc program.  Looked up on
 * the first need, from a helper or an unshare: never inside the pool. */
static int tp_helpers_threads_running(void) {
  static _Atomic(const unsigned int *) glibc_count;
  static _Atomic bool looked_up;
  int running = tp_os_running_threads();
  if (running >= 0) return running;
  if (!atomic_exchange(&looked_up, true))
    atomic_store(&glibc_count, dlvsym(RTLD_DEFAULT, "__nptl_nthreads", "GLIBC_PRIVATE"));
  const unsigned int *count = atomic_load(&glibc_count);
  return count ? (int)__atomic_load_n(count, __ATOMIC_RELAXED) : -1;
}

/* A helper blocks every signal (it inherits the mask it is created with): a
 * signal sent to the process must reach a thread of the program, or stay
 * pending where the program blocked it, as if the helper were not there. */
bool tp_helper_spawn(void *(*main)(void *), const char *name) {
  pthread_t thread;
  pthread_attr_t attr;
  sigset_t all, old;
  sigfillset(&all);
  tp_os_proc_prepare(); /* the files the helpers read, opened while the program's threads are few */
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  atomic_fetch_add(&tp_helpers_alive, 1);
  atomic_store(&tp_helpers_pid, getpid());
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* The thread names itself: a detached one may be gone before its handle is used. */
  bool was_own = tp_rec_own_begin(); /* its TLS, which glibc allocates, is not the program's */
  bool spawned = pthread_create(&thread, &attr, main, (void *)name) == 0;
  tp_rec_own_end(was_own);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!spawned) atomic_fetch_sub(&tp_helpers_alive, 1);
  pthread_attr_destroy(&attr);
  return spawned;
}

void tp_helper_started(void *name) {
  prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); /* what top -H and gdb show */
  atomic_fetch_add(&tp_helpers_running, 1);
}

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

void tp_helpers_wake(void) {
  atomic_fetch_add(&tp_helper_wake, 1);
  syscall(SYS_futex, &tp_helper_wake, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void tp_helper_check(void) {
  int running = tp_helpers_threads_running();
  if (running < 0 || running > atomic_load(&tp_helpers_running)) return;
  if (atomic_exchange(&tp_helper_exiting, true)) return; /* another helper is ending it */
  exit(0);
}

/* Some calls want a single-threaded caller (unshare and setns of a user or
 * mount namespace fail with EINVAL otherwise): the helpers end for them. */
bool tp_helpers_pause(void) {
  if (atomic_load(&tp_helpers_pid) != getpid()) return false;
  int helpers = atomic_load(&tp_helpers_alive), before = tp_helpers_threads_running();
  if (helpers == 0) return false;
  atomic_store(&tp_helpers_paused, true);
  atomic_fetch_add(&tp_helper_wake, 1);
  syscall(SYS_futex, &tp_helper_wake, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
  /* A helper uncounts itself just before it returns; the kernel drops the
   * thread a little later.  Bounded: a helper stuck in a flush is waited for
   * at most a second, and the caller's retry then fails as it would have. */
  for (int waited_us = 0; waited_us < 1000000; waited_us += 100) {
    if (atomic_load(&tp_helpers_alive) == 0 && (before < 0 || tp_helpers_threads_running() <= before - helpers)) break;
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

static void *tp_background_main(void *name) {
  tp_helper_started(name);
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

void tp_background_start(void) {
  bool expected = false;
  if (!tp_opt.background_thread || !atomic_compare_exchange_strong(&tp_background_running, &expected, true))
    return;
  if (!tp_helper_spawn(tp_background_main, "tierpool-bg")) atomic_store(&tp_background_running, false);
}

/* In a forked child only the forking thread lives on. */
void tp_helpers_after_fork_child(void) {
  atomic_store(&tp_helpers_pid, getpid());
  atomic_store(&tp_background_running, false);
  atomic_store(&tp_helpers_alive, 0);
  atomic_store(&tp_helpers_running, 0);
  atomic_store(&tp_helper_exiting, false);
  atomic_store(&tp_helpers_paused, false);
}
