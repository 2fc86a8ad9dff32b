/* preload.c — finding libtierpool.so and putting it into LD_PRELOAD. */
#include "preload.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define LIBNAME "libtierpool.so"
#define MAX_CANDIDATES 4

struct candidates {
  char path[MAX_CANDIDATES][PATH_MAX];
  int n;
};

static void add(struct candidates *c, const char *dir, const char *rel) {
  if (c->n == MAX_CANDIDATES) return;
  int len = snprintf(c->path[c->n], PATH_MAX, "%s%s%s", dir, rel[0] ? "/" : "", rel);
  if (len > 0 && len < PATH_MAX) c->n++;
}

/* The directory holding this executable, or "" if /proc is not mounted. */
static void exe_dir(char dir[PATH_MAX]) {
  ssize_t n = readlink("/proc/self/exe", dir, PATH_MAX - 1);
  dir[n > 0 ? n : 0] = '\0';
  if (n <= 0) return;
  char *d = dirname(dir); /* may return a pointer into dir or a static "." */
  memmove(dir, d, strlen(d) + 1);
}

static void list_candidates(struct candidates *c) {
  const char *env = getenv("TIERPOOL_LIB");
  if (env && *env) { /* explicit: no fallback that would hide a typo */
    add(c, env, "");
    return;
  }
  char dir[PATH_MAX];
  exe_dir(dir);
  if (dir[0]) add(c, dir, "../preload/" LIBNAME);
  add(c, TIERPOOL_INSTALL_LIBDIR, LIBNAME);
  if (dir[0] && TIERPOOL_REL_LIBDIR[0] != '/') add(c, dir, "../" TIERPOOL_REL_LIBDIR "/" LIBNAME);
}

int preload_find(char lib[PATH_MAX]) {
  struct candidates c = {.n = 0};
  list_candidates(&c);
  for (int i = 0; i < c.n; i++)
    if (access(c.path[i], R_OK) == 0 && realpath(c.path[i], lib)) return 0;
  fprintf(stderr, "tierpool: cannot find " LIBNAME " (looked in");
  for (int i = 0; i < c.n; i++) fprintf(stderr, "%s %s", i ? "," : "", c.path[i]);
  fprintf(stderr, "; set TIERPOOL_LIB to its path)\n");
  return -1;
}

int preload_add(const char *lib) {
  const char *old = getenv("LD_PRELOAD");
  if (!old || !*old) return setenv("LD_PRELOAD", lib, 1);
  size_t n = strlen(lib) + 1 + strlen(old) + 1;
  char *value = malloc(n);
  if (!value) return -1;
  snprintf(value, n, "%s:%s", lib, old);
  int rc = setenv("LD_PRELOAD", value, 1);
  free(value);
  return rc;
}
