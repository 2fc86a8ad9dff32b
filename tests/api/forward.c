/* forward.c — a program that defines malloc & co itself and forwards to
 * glibc's __libc_* names (as a tracing shim or an old hook does): under the
 * preload those names must reach the pool, not come back to this malloc
 * (an endless loop).  Prints "ok" and exits 0; a hang is the failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *p, size_t size);

static unsigned long forwarded;

void *malloc(size_t size) {
  forwarded++;
  return __libc_malloc(size);
}
void free(void *p) { __libc_free(p); }
void *calloc(size_t count, size_t size) { return __libc_calloc(count, size); }
void *realloc(void *p, size_t size) { return __libc_realloc(p, size); }

int main(void) {
  for (size_t n = 1; n <= ((size_t)8 << 20); n *= 3) {
    char *p = malloc(n);
    if (!p) return 1;
    memset(p, 1, n);
    p = realloc(p, n * 2);
    if (!p || p[n - 1] != 1) return 1;
    free(p);
    unsigned char *z = calloc(n, 1);
    if (!z || z[n - 1] != 0) return 1;
    free(z);
  }
  printf("ok: %lu mallocs forwarded\n", forwarded);
  return 0;
}
