/* embedder.c — how a runtime opts in to tenants: it looks the API up with
 * dlsym, so the same binary runs with or without libtierpool.so.
 *
 *   ./embedder                                   plain glibc: no tenants
 *   LD_PRELOAD=libtierpool.so TIERPOOL_CONFIG=two.conf ./embedder
 *
 * Two "guests" take turns on one thread, as a runtime's worker switches
 * between the instances it runs: "quiet" serves small requests, "noisy"
 * grabs memory until its limit refuses it.  Prints what each got. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tierpool.h"

typedef int (*tenant_set_fn)(const char *);
typedef int (*tenant_stats_fn)(const char *, tierpool_tenant_stats_t *);

static tenant_set_fn tenant_set;

static void enter(const char *guest) {
  if (tenant_set) tenant_set(guest); /* without tierpool: one heap for all */
}

/* The quiet guest: a thousand short-lived requests of a few small blocks. */
static size_t serve_quiet(void) {
  size_t served = 0;
  for (int r = 0; r < 1000; r++) {
    char *header = malloc(64), *body = malloc(200 + (size_t)r % 300);
    if (!header || !body) break;
    snprintf(header, 64, "request %d", r);
    memset(body, 'q', 200);
    served++;
    free(body);
    free(header);
  }
  return served;
}

/* The noisy guest: 1 MiB blocks until refused (or 256 of them). */
static size_t grab_noisy(void **blocks, size_t max) {
  size_t n = 0;
  while (n < max && (blocks[n] = malloc(1 << 20)) != NULL) memset(blocks[n++], 'n', 1 << 20);
  return n;
}

int main(void) {
  tenant_set = (tenant_set_fn)dlsym(RTLD_DEFAULT, "tierpool_tenant_set");
  tenant_stats_fn tenant_stats = (tenant_stats_fn)dlsym(RTLD_DEFAULT, "tierpool_tenant_stats_get");
  printf("tenants: %s\n", tenant_set ? "tierpool" : "none (not preloaded)");
  static void *blocks[256];
  enter("noisy");
  size_t grabbed = grab_noisy(blocks, 256);
  int refused = grabbed < 256 && errno == ENOMEM;
  enter("quiet");
  size_t served = serve_quiet();
  printf("noisy: %zu MiB%s\nquiet: %zu requests served\n", grabbed, refused ? ", then ENOMEM" : "", served);
  if (tenant_stats) {
    const char *names[] = {"quiet", "noisy"};
    for (int i = 0; i < 2; i++) {
      tierpool_tenant_stats_t s;
      if (tenant_stats(names[i], &s) == 0)
        printf("%s: resident %llu KiB, limit %llu KiB, limit hits %llu\n", s.name,
               (unsigned long long)s.resident_bytes >> 10, (unsigned long long)s.limit_bytes >> 10,
               (unsigned long long)s.limit_hits);
    }
  }
  enter("noisy");
  for (size_t i = 0; i < grabbed; i++) free(blocks[i]);
  return served == 1000 ? 0 : 1;
}
