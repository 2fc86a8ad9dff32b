/* prom_unit.c — preload/prom.c alone, with AddressSanitizer, against fake
 * tenants: names that need escaping, the most tenants there can be, extreme
 * values; the tick's schedule, failures reported once, errno left alone,
 * concurrent writers.
 *
 *   prom_unit file PATH   writes PATH and prints what it should hold, one line
 *                         per number: HEX(tenant) tier|- field value
 *   prom_unit behaviour DIR   checks the rest itself (exit 1 on a failure) */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- the fakes prom.c links against ---- */
tp_options tp_opt;
_Atomic int tp_init_state = 2;
static uint32_t fake_count;
static tierpool_tenant_stats_t fake_tenant[TP_MAX_TENANTS];
static int messages;
static char last_message[512];

uint32_t tp_tenant_count(void) { return fake_count; }
void tp_tenant_stats(uint32_t index, tierpool_tenant_stats_t *out) {
  if (index >= fake_count) abort();
  *out = fake_tenant[index];
}
uint64_t tp_node_budget_used(void) { return 123456789; }
uint64_t tp_node_budget_held(void) { return 4096; }
uint64_t tp_node_budget_total(void) { return 268435456; }
const char *tp_os_error_text(int err) { return strerror(err); }
void tp_message(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  messages++;
}

static int failures;
#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond);         \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
      failures++;                                                     \
    }                                                                 \
  } while (0)

static uint64_t next_random(uint64_t *state) { /* splitmix64 */
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* 64 tenants: the awkward names first, then 48-character ones. */
static void fake_tenants(uint32_t count) {
  static const char *const awkward[] = {"default", "q\"uote", "back\\slash", "new\nline", "\\\"\n\\n",
                                        "", "tab\there", "ünïcode"};
  uint64_t seed = 42;
  fake_count = count;
  for (uint32_t t = 0; t < count; t++) {
    tierpool_tenant_stats_t *s = &fake_tenant[t];
    memset(s, 0, sizeof *s);
    if (t < sizeof awkward / sizeof awkward[0]) snprintf(s->name, sizeof s->name, "%s", awkward[t]);
    else snprintf(s->name, sizeof s->name, "t%02u-%.44s", t, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH");
    uint64_t *words = (uint64_t *)s->tier; /* every counter, tiers and budget */
    size_t n = (offsetof(tierpool_tenant_stats_t, isolated) - offsetof(tierpool_tenant_stats_t, tier)) / 8;
    for (size_t i = 0; i < n; i++) words[i] = next_random(&seed) >> (next_random(&seed) % 64);
    s->isolated = t % 3 == 0;
  }
  fake_tenant[1].live_bytes = UINT64_MAX;
  fake_tenant[2].live_bytes = 0;
  fake_tenant[3].live_bytes = ((uint64_t)1 << 53) + 1; /* not exact as a double: text is */
}

static void print_hex(const char *s) {
  if (!*s) fputc('-', stdout);
  for (; *s; s++) printf("%02x", (unsigned char)*s);
}

static void print_expected(void) {
  static const char *const fields[] = {"live_bytes", "resident_bytes", "peak_bytes", "reserve_bytes",
                                       "limit_bytes", "overflow_bytes", "limit_hits", "releases"};
  static const char *const tier_fields[] = {"allocs", "frees", "bytes_requested", "bytes_allocated",
                                            "live_bytes", "peak_bytes", "resident_bytes", "releases",
                                            "released_bytes"};
  static const char *const tiers[] = {"slab", "buddy", "large"};
  for (uint32_t t = 0; t < fake_count; t++) {
    const tierpool_tenant_stats_t *s = &fake_tenant[t];
    const uint64_t *budget = &s->live_bytes;
    for (int f = 0; f < 8; f++) {
      print_hex(s->name);
      printf(" - %s %llu\n", fields[f], (unsigned long long)budget[f]);
    }
    print_hex(s->name);
    printf(" - isolated %u\n", s->isolated);
    for (int tier = 0; tier < 3; tier++) {
      const uint64_t *w = &s->tier[tier].allocs;
      for (int f = 0; f < 9; f++) {
        print_hex(s->name);
        printf(" %s %s %llu\n", tiers[tier], tier_fields[f], (unsigned long long)w[f]);
      }
    }
  }
}

static int mode_file(const char *path) {
  fake_tenants(TP_MAX_TENANTS);
  tp_opt.node_budget = 256 << 20;
  snprintf(tp_opt.node_budget_name, sizeof tp_opt.node_budget_name, "edge\"node\\1");
  if (!tp_prom_write(path)) {
    fprintf(stderr, "tp_prom_write(%s): %s\n", path, strerror(errno));
    return 1;
  }
  print_expected();
  return 0;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Names in dir other than those allowed: a temporary file left behind. */
static int stray_files(const char *dir, const char *allowed) {
  DIR *d = opendir(dir);
  int stray = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.' && strcmp(e->d_name, allowed) != 0 && strcmp(e->d_name, "sub") != 0) {
      fprintf(stderr, "stray file %s/%s\n", dir, e->d_name);
      stray++;
    }
  if (d) closedir(d);
  return stray;
}

static const char *writer_path;
static _Atomic int writer_ok, writer_busy, writer_other;
static void *writer_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 300; i++) {
    if (tp_prom_write(writer_path)) writer_ok++;
    else if (errno == EBUSY) writer_busy++;
    else writer_other++;
  }
  return NULL;
}

static int mode_behaviour(const char *dir) {
  char path[256], missing[256], sub[256];
  if (strlen(dir) > 180) return fprintf(stderr, "directory name too long\n"), 2;
  snprintf(path, sizeof path, "%.180s/t.prom", dir);
  snprintf(sub, sizeof sub, "%.180s/sub", dir);
  snprintf(missing, sizeof missing, "%.180s/sub/t.prom", dir);
  fake_tenants(3);

  /* A failed write: false, errno says why, nothing left behind. */
  errno = 0;
  CHECK(!tp_prom_write(missing), "wrote into a missing directory");
  CHECK(errno == ENOENT, "errno %d", errno);
  char long_path[TP_OPTION_PATH_MAX + 64];
  memset(long_path, 'a', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  CHECK(!tp_prom_write(long_path) && errno == ENAMETOOLONG, "errno %d", errno);

  /* Mode 0644 whatever the umask. */
  mode_t old_umask = umask(077);
  CHECK(tp_prom_write(path), "%s", strerror(errno));
  umask(old_umask);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "mode %o", st.st_mode & 0777);
  CHECK(stray_files(dir, "t.prom") == 0, "temporary files left");

  /* Before the options exist the tick does nothing, and does not give up. */
  snprintf(tp_opt.prom_file, sizeof tp_opt.prom_file, "%.200s", path);
  tp_opt.prom_interval_ms = 100;
  unlink(path);
  tp_init_state = 0;
  tp_prom_tick(1000);
  CHECK(!exists(path), "written before initialisation");
  tp_init_state = 2;

  /* The first tick writes at once, then one write per interval; errno kept. */
  errno = 1234;
  tp_prom_tick(1000);
  CHECK(errno == 1234, "errno changed to %d", errno);
  CHECK(exists(path), "first tick did not write");
  unlink(path);
  tp_prom_tick(1001);
  tp_prom_tick(1099);
  CHECK(!exists(path), "written before the interval was over");
  tp_prom_tick(1100);
  CHECK(exists(path), "not written when due");

  /* A failing file: one message naming it and the error, whatever the count of ticks. */
  snprintf(tp_opt.prom_file, sizeof tp_opt.prom_file, "%.200s", missing);
  errno = 77;
  for (uint64_t now = 1200; now < 3000; now += 100) tp_prom_tick(now);
  CHECK(errno == 77, "errno changed to %d", errno);
  CHECK(messages == 1, "%d messages", messages);
  CHECK(strstr(last_message, missing) && strstr(last_message, "No such file or directory"),
        "message: %s", last_message);
  /* Once it works again, a new failure is reported again. */
  CHECK(mkdir(sub, 0755) == 0, "mkdir %s", sub);
  tp_prom_tick(3000);
  CHECK(exists(missing), "not written once the directory exists");
  CHECK(messages == 1, "%d messages", messages);
  unlink(missing);
  rmdir(sub);
  tp_prom_tick(3100);
  tp_prom_tick(3200);
  CHECK(messages == 2, "%d messages after a second failure", messages);

  /* Concurrent writers: every call writes or finds the writer busy. */
  writer_path = path;
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, writer_main, NULL);
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  CHECK(writer_other == 0 && writer_ok + writer_busy == 1200 && writer_ok > 0, "ok %d busy %d other %d",
        writer_ok, writer_busy, writer_other);
  printf("concurrent writers: %d written, %d found it busy\n", writer_ok, writer_busy);
  CHECK(stray_files(dir, "t.prom") == 0, "temporary files left");

  /* No file configured: the tick stops looking after one call. */
  tp_opt.prom_file[0] = '\0';
  unlink(path);
  for (uint64_t now = 4000; now < 5000; now += 100) tp_prom_tick(now);
  CHECK(!exists(path) && messages == 2, "wrote or complained with no prom_file");
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "file") == 0) return mode_file(argv[2]);
  if (argc == 3 && strcmp(argv[1], "behaviour") == 0) return mode_behaviour(argv[2]);
  fprintf(stderr, "usage: prom_unit file PATH | behaviour DIR\n");
  return 2;
}
