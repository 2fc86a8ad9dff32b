/* churn_mt.c — server-style churn with cross-thread frees: THREADS workers
 * build request objects (a header struct, 1–8 header strings of 8–128 bytes,
 * a body of 16 bytes to 4 KiB, mostly small), hand them over in batches to
 * the other workers, and check and free the requests handed to them.  The
 * total number of requests is fixed, so the work does not depend on timing;
 * inboxes are bounded, so neither does the number of requests in flight.
 *
 *   churn_mt [REQUESTS [THREADS]]      defaults: 2000000 4 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

#define EDGE 16
#define BATCH 32
#define MAX_HDR 8
#define MAX_QUEUED (64 * BATCH) /* a full inbox makes producers wait (backpressure) */

struct req {
  struct req *next;
  uint64_t tag;
  unsigned char *body;
  size_t body_len;
  unsigned nhdr;
  unsigned char *hdr[MAX_HDR];
  size_t hdr_len[MAX_HDR];
};

struct worker {
  pthread_t thread;
  unsigned id;
  size_t quota;            /* requests this worker builds */
  pthread_mutex_t lock;    /* guards inbox */
  struct req *inbox;
  size_t queued;           /* requests in inbox */
  size_t freed;            /* requests this worker checked and freed */
  uint64_t sum;            /* sum of their tags (order-independent) */
  char pad[64];
};

static struct worker *workers;
static unsigned nworkers;
static atomic_uint producers_done;

static size_t body_size(uint64_t *rng) {
  uint64_t r = rng_next(rng) % 100;
  if (r < 60) return rng_range(rng, 16, 256);
  if (r < 90) return rng_range(rng, 257, 1024);
  return rng_range(rng, 1025, 4096);
}

static struct req *build(uint64_t *rng, uint64_t tag) {
  struct req *r = xmalloc(sizeof *r);
  r->next = NULL;
  r->tag = tag;
  r->body_len = body_size(rng);
  r->body = xmalloc(r->body_len);
  walk_edges(r->body, r->body_len, tag, EDGE, 0);
  r->nhdr = (unsigned)rng_range(rng, 1, MAX_HDR);
  for (unsigned h = 0; h < r->nhdr; h++) {
    r->hdr_len[h] = rng_range(rng, 8, 128);
    r->hdr[h] = xmalloc(r->hdr_len[h]);
    walk_edges(r->hdr[h], r->hdr_len[h], tag + h + 1, EDGE, 0);
  }
  return r;
}

static void consume(struct worker *w, struct req *r) {
  if (walk_edges(r->body, r->body_len, r->tag, EDGE, 1) != r->body_len)
    fail("churn_mt: request body of %zu bytes overwritten", r->body_len);
  free(r->body);
  for (unsigned h = 0; h < r->nhdr; h++) {
    if (walk_edges(r->hdr[h], r->hdr_len[h], r->tag + h + 1, EDGE, 1) != r->hdr_len[h])
      fail("churn_mt: request header of %zu bytes overwritten", r->hdr_len[h]);
    free(r->hdr[h]);
  }
  w->freed++;
  w->sum += r->tag;
  free(r);
}

static void drain(struct worker *w) {
  pthread_mutex_lock(&w->lock);
  struct req *r = w->inbox;
  w->inbox = NULL;
  w->queued = 0;
  pthread_mutex_unlock(&w->lock);
  while (r) {
    struct req *next = r->next;
    consume(w, r);
    r = next;
  }
}

/* Hands a batch to `to`, draining our own inbox while its inbox is full. */
static void hand_over(struct worker *self, struct worker *to, struct req *head, struct req *tail,
                      size_t n) {
  for (;;) {
    pthread_mutex_lock(&to->lock);
    if (to->queued < MAX_QUEUED) break;
    pthread_mutex_unlock(&to->lock);
    drain(self);
    sched_yield();
  }
  tail->next = to->inbox;
  to->inbox = head;
  to->queued += n;
  pthread_mutex_unlock(&to->lock);
}

static void *work(void *arg) {
  struct worker *w = arg;
  uint64_t rng = 0x5eed0004 + w->id * 0x9e3779b97f4a7c15ULL;
  size_t built = 0, batches = 0;
  while (built < w->quota) {
    struct req *head = NULL, *tail = NULL;
    size_t n = 0;
    for (; n < BATCH && built < w->quota; n++, built++) {
      struct req *r = build(&rng, ((uint64_t)w->id << 40) | built);
      if (!tail) tail = r;
      r->next = head;
      head = r;
    }
    unsigned to = (w->id + 1 + (unsigned)(batches++ % (nworkers - 1))) % nworkers;
    hand_over(w, &workers[to], head, tail, n);
    drain(w);
  }
  atomic_fetch_add(&producers_done, 1);
  while (atomic_load(&producers_done) < nworkers) {
    drain(w);
    sched_yield();
  }
  drain(w); /* nothing is handed over any more: this empties the inbox */
  return NULL;
}

int main(int argc, char **argv) {
  size_t total = arg_size(argc, argv, 1, 2000000);
  nworkers = (unsigned)arg_size(argc, argv, 2, 4);
  if (nworkers < 2) fail("churn_mt needs at least 2 threads");
  workers = calloc(nworkers, sizeof *workers);
  if (!workers) fail("cannot allocate %u workers", nworkers);

  uint64_t expect = 0;
  for (unsigned i = 0; i < nworkers; i++) {
    workers[i].id = i;
    workers[i].quota = total / nworkers + (i < total % nworkers);
    for (size_t k = 0; k < workers[i].quota; k++) expect += ((uint64_t)i << 40) | k;
    pthread_mutex_init(&workers[i].lock, NULL);
  }
  for (unsigned i = 0; i < nworkers; i++)
    if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0)
      fail("pthread_create failed");
  size_t freed = 0;
  uint64_t sum = 0;
  for (unsigned i = 0; i < nworkers; i++) {
    pthread_join(workers[i].thread, NULL);
    freed += workers[i].freed;
    sum += workers[i].sum;
  }
  if (freed != total || sum != expect)
    fail("churn_mt: %zu of %zu requests came back, tag sum %016llx, expected %016llx", freed, total,
         (unsigned long long)sum, (unsigned long long)expect);
  free(workers);
  printf("churn_mt requests=%zu threads=%u checksum=%016llx\n", total, nworkers,
         (unsigned long long)sum);
  return 0;
}
