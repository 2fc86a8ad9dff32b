/* recorder.h — the profiler's entry points inside libtierpool.so, called by
 * the pool's API (preload/alloc.c, mmap.c, init.c, tcache.c).
 *
 * Off (the default), none of these is called: the API tests tp_rec_active, one
 * predictable branch.  On, every allocation and free is counted in a per-thread
 * histogram; about one in 1/sample_rate is sampled with its stack; a writer
 * thread turns the events into trace frames (writer.c). */
#ifndef TP_RECORDER_H
#define TP_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierpool.h"

typedef enum tp_rec_mmap_kind {
  TP_REC_MMAP = 0,
  TP_REC_MUNMAP = 1,
  TP_REC_MREMAP = 2,
  TP_REC_MPROTECT = 3,
  TP_REC_MADVISE = 4,
} tp_rec_mmap_kind;

/* True while profiling or validation is on: the API takes its recording path. */
extern bool tp_rec_active;

void tp_rec_start(void); /* once the pool is usable; opens the trace, starts the writer */
/* The tier that served a live block (segment.c): looked up for samples only. */
tierpool_tier_t tp_tier_of(const void *p);
bool tp_slab_block_sampled(const void *p); /* segment.c: a slab block the recorder marked sampled */
void tp_rec_free(void *p, size_t usable); /* before the block goes back */
void tp_rec_free_slab(uint32_t cls); /* the count of a normal slab block's free, of class cls */
void tp_rec_mmap(tp_rec_mmap_kind kind, void *addr, size_t length, int prot, int flags, void *old_addr);
void tp_rec_bad_free(const char *call, void *p, const char *what); /* validation: stack, before abort */
void tp_rec_thread_exit(void);
bool tp_rec_in_recorder(void); /* the calling thread is doing the recorder's own work */
/* What the calling thread allocates between these is the library's, not the
 * program's (a helper thread's start: glibc allocates its TLS).  Nest. */
bool tp_rec_own_begin(void);
void tp_rec_own_end(bool was_own);
/* path: the file exec'd; NULL: unnamed (fexecve).  True: call
 * tp_rec_after_failed_exec if the exec comes back. */
bool tp_rec_before_exec(const char *path);
void tp_rec_after_failed_exec(int error); /* the exec's errno */
/* The calling thread's signal stack, as sigaltstack set it (sigstack.c): a
 * frame walk that starts on it keeps to it (unwind.c). */
void tp_rec_note_signal_stack(uintptr_t base, size_t size, bool disabled);
/* True on the thread's signal stack with less than room bytes left below
 * the caller's frame (an exit from a handler on an 8 KiB one: init.c). */
bool tp_rec_signal_stack_short(size_t room);
void tp_rec_writer_restart(void); /* after tp_helpers_pause (helpers.c) */
void tp_rec_fork_prepare(void);
void tp_rec_fork_parent(void);
void tp_rec_fork_child(void);
void tp_rec_finish(void); /* at exit: the last frame; the leak report in validation mode */

#endif /* TP_RECORDER_H */
