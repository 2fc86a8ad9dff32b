/* scratch.c — the writer's working memory: a flush's arrays, its records and
 * its compressed frame, bumped from mapped chunks and let go when the flush
 * ends; and zstd's memory, mapped.  Not the pool's: an exec from a signal
 * handler flushes on a thread the signal may have stopped inside the pool,
 * holding one of its locks or halfway through a list, which the flush must
 * then not touch.  Used only under tp_rec_writer_lock (or before the writer
 * exists), so there is one arena and no lock of its own. */
#include <string.h>

#include "recorder_private.h"

#define TP_REC_SCRATCH_CHUNK ((size_t)1 << 20) /* the chunk kept from flush to flush */

typedef struct tp_rec_scratch_chunk {
  struct tp_rec_scratch_chunk *older;
  size_t size, used; /* bytes of the mapping; used counts this header */
} tp_rec_scratch_chunk;

#define TP_REC_SCRATCH_HEADER tp_align_up(sizeof(tp_rec_scratch_chunk), 64)

static tp_rec_scratch_chunk *tp_rec_scratch_newest;
static void *tp_rec_scratch_last; /* the newest allocation: grown in place */

tp_rec_scratch_mark tp_rec_scratch_save(void) {
  tp_rec_scratch_chunk *c = tp_rec_scratch_newest;
  return (tp_rec_scratch_mark){c, c ? c->used : 0};
}

/* Everything allocated since the mark goes; chunks mapped since are unmapped,
 * but the first one, which the next flush uses again. */
void tp_rec_scratch_restore(tp_rec_scratch_mark mark) {
  tp_rec_scratch_chunk *c = tp_rec_scratch_newest;
  while (c && c != mark.chunk && c->older) {
    tp_rec_scratch_chunk *older = c->older;
    /* Published before the unmap: a fork meanwhile must not hand the child's
     * reset a chunk that is gone. */
    tp_rec_scratch_newest = older;
    tp_os_unmap(c, c->size);
    c = older;
  }
  tp_rec_scratch_newest = c;
  if (c) c->used = c == mark.chunk ? mark.used : TP_REC_SCRATCH_HEADER;
  tp_rec_scratch_last = NULL;
}

/* In a fork child: a flush in another thread of the parent may have been in
 * the middle; nothing of it is the child's. */
void tp_rec_scratch_reset(void) { tp_rec_scratch_restore((tp_rec_scratch_mark){NULL, 0}); }

void *tp_rec_scratch_alloc(size_t size) {
  size = tp_align_up(size ? size : 1, 16);
  tp_rec_scratch_chunk *c = tp_rec_scratch_newest;
  if (!c || size > c->size - c->used) {
    if (size > SIZE_MAX / 2) return NULL;
    size_t want = tp_align_up(TP_REC_SCRATCH_HEADER + size, TP_PAGE_SIZE);
    if (want < TP_REC_SCRATCH_CHUNK) want = TP_REC_SCRATCH_CHUNK;
    tp_rec_scratch_chunk *fresh = tp_os_map(want);
    if (!fresh) return NULL;
    *fresh = (tp_rec_scratch_chunk){c, want, TP_REC_SCRATCH_HEADER};
    tp_rec_scratch_newest = c = fresh;
  }
  void *p = (char *)c + c->used;
  c->used += size;
  tp_rec_scratch_last = p;
  return p;
}

/* realloc: the newest allocation grows where it is when its chunk has room. */
void *tp_rec_scratch_grow(void *p, size_t old_size, size_t size) {
  tp_rec_scratch_chunk *c = tp_rec_scratch_newest;
  if (p && p == tp_rec_scratch_last) {
    size_t start = (size_t)((char *)p - (char *)c), end = start + tp_align_up(size, 16);
    if (end >= start && end <= c->size) {
      c->used = end;
      return p;
    }
  }
  void *fresh = tp_rec_scratch_alloc(size);
  if (fresh && p) memcpy(fresh, p, old_size < size ? old_size : size);
  return fresh;
}

/* zstd's context and workspace (ZSTD_customMem): mapped, the size kept in
 * front of the block, as zstd's free does not pass it. */
void *tp_rec_zstd_alloc(void *opaque, size_t size) {
  (void)opaque;
  if (size > SIZE_MAX / 2) return NULL;
  size_t total = tp_align_up(size + 64, TP_PAGE_SIZE);
  char *p = tp_os_map(total);
  if (!p) return NULL;
  *(size_t *)p = total;
  return p + 64;
}

void tp_rec_zstd_free(void *opaque, void *address) {
  (void)opaque;
  if (!address) return;
  char *p = (char *)address - 64;
  tp_os_unmap(p, *(size_t *)p);
}
