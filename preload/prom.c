/* prom.c — the Prometheus text file: per-tenant gauges and counters in the
 * text exposition format 0.0.4, kept current for node_exporter's textfile
 * collector.  The file is written whole to "PATH.tmp.PID" and renamed over
 * PATH, so a scrape never sees half a file.
 *
 * Runs inside malloc: no allocation, no stdio streams; integer-only snprintf
 * into a static buffer and raw system calls that leave errno alone.  One
 * writer at a time (the buffer is static): a second caller just returns. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define PROM_LINE_MAX 1024 /* longest line: a name, escaped labels (<= 2 x 256), a value */

/* One family per row: name, type, help, and where its number is.  Per-tenant
 * families read tierpool_tenant_stats_t, per-tier ones tierpool_tier_stats_t. */
typedef struct prom_family {
  const char *name, *type, *help;
  size_t offset;
} prom_family;

#define TENANT_U64(field) offsetof(tierpool_tenant_stats_t, field)
static const prom_family prom_tenant_families[] = {
  {"tierpool_live_bytes", "gauge", "Bytes of blocks allocated by the tenant, all tiers.", TENANT_U64(live_bytes)},
  {"tierpool_resident_bytes", "gauge", "Bytes of memory charged to the tenant (pages it holds).", TENANT_U64(resident_bytes)},
  {"tierpool_peak_bytes", "gauge", "High-water mark of the tenant's resident bytes.", TENANT_U64(peak_bytes)},
  {"tierpool_reserve_bytes", "gauge", "The tenant's reserve (tenant.NAME.reserve); 0 means none.", TENANT_U64(reserve_bytes)},
  {"tierpool_limit_bytes", "gauge", "The tenant's limit (tenant.NAME.limit); 0 means no limit.", TENANT_U64(limit_bytes)},
  {"tierpool_overflow_bytes", "gauge", "Of the tenant's resident bytes, those drawn from the shared overflow.", TENANT_U64(overflow_bytes)},
  {"tierpool_limit_hits_total", "counter", "Allocations refused to the tenant for its budget.", TENANT_U64(limit_hits)},
  {"tierpool_releases_total", "counter", "Times the tenant's memory was given back to the OS, all tiers.", TENANT_U64(releases)},
};

#define TIER_U64(field) offsetof(tierpool_tier_stats_t, field)
static const prom_family prom_tier_families[] = {
  {"tierpool_tier_live_bytes", "gauge", "Bytes of blocks allocated in the tier.", TIER_U64(live_bytes)},
  {"tierpool_tier_peak_bytes", "gauge", "High-water mark of the tier's live bytes.", TIER_U64(peak_bytes)},
  {"tierpool_tier_resident_bytes", "gauge", "Bytes of memory the tier holds from the OS.", TIER_U64(resident_bytes)},
  {"tierpool_tier_allocations_total", "counter", "Allocations served by the tier.", TIER_U64(allocs)},
  {"tierpool_tier_frees_total", "counter", "Blocks freed in the tier.", TIER_U64(frees)},
  {"tierpool_tier_requested_bytes_total", "counter", "Sum of the sizes requested from the tier.", TIER_U64(bytes_requested)},
  {"tierpool_tier_allocated_bytes_total", "counter", "Sum of the block sizes the tier handed out.", TIER_U64(bytes_allocated)},
  {"tierpool_tier_releases_total", "counter", "Times the tier gave memory back.", TIER_U64(releases)},
  {"tierpool_tier_released_bytes_total", "counter", "Bytes the tier gave back.", TIER_U64(released_bytes)},
};
static const char *const prom_tier_names[TIERPOOL_TIER_COUNT] = {"slab", "buddy", "large"};

/* The file being written: lines gather in buf and go out in write(2)s. */
typedef struct prom_out {
  int fd;
  int error; /* first errno; 0 while all is well */
  size_t len;
  char buf[32 << 10];
} prom_out;

/* State: the writer's lock holds its pid (a lock inherited over fork is
 * stale); next_due_ms is all that tp_prom_tick reads when not due. */
static struct {
  _Atomic uint64_t next_due_ms;
  _Atomic pid_t writer;
  _Atomic bool failing; /* the failure was reported; cleared by a success */
  uint32_t tenants;
  tierpool_tenant_stats_t tenant[TP_MAX_TENANTS];
  char path[TP_OPTION_PATH_MAX + 16], tmp_path[TP_OPTION_PATH_MAX + 48];
  prom_out out;
} prom;

/* A system call that returns -errno and leaves the program's errno alone. */
static long prom_sys(long number, long a, long b, long c, long d, long e) {
  int saved = errno;
  long r = syscall(number, a, b, c, d, e);
  if (r == -1) r = -errno;
  errno = saved;
  return r;
}

static void prom_flush(prom_out *o) {
  const char *p = o->buf;
  while (o->len > 0 && !o->error) {
    long w = prom_sys(SYS_write, o->fd, (long)p, (long)o->len, 0, 0);
    if (w == -EINTR) continue;
    if (w <= 0) {
      o->error = w < 0 ? (int)-w : EIO;
      break;
    }
    p += w;
    o->len -= (size_t)w;
  }
  o->len = 0;
}

/* Room for one more line: every line is shorter than PROM_LINE_MAX. */
static void prom_reserve_line(prom_out *o) {
  if (sizeof o->buf - o->len < PROM_LINE_MAX) prom_flush(o);
}

__attribute__((format(printf, 2, 3))) static void prom_printf(prom_out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = sizeof o->buf - o->len;
  int n = vsnprintf(o->buf + o->len, room, fmt, ap);
  va_end(ap);
  if (n > 0) o->len += (size_t)n < room ? (size_t)n : room - 1;
}

/* A label value, escaped as the format says: backslash, double quote, newline. */
static void prom_label_value(prom_out *o, const char *s, size_t max) {
  for (size_t i = 0; i < max && s[i] && o->len + 2 < sizeof o->buf; i++) {
    char c = s[i];
    if (c == '\\' || c == '"' || c == '\n') {
      o->buf[o->len++] = '\\';
      c = c == '\n' ? 'n' : c;
    }
    o->buf[o->len++] = c;
  }
}

static void prom_header(prom_out *o, const char *name, const char *type, const char *help) {
  prom_reserve_line(o);
  prom_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: name{tenant="T"[,tier="X"]} value. */
static void prom_tenant_sample(prom_out *o, const char *name, const char *tenant, const char *tier,
                               uint64_t value) {
  prom_reserve_line(o);
  prom_printf(o, "%s{tenant=\"", name);
  prom_label_value(o, tenant, TIERPOOL_TENANT_NAME_MAX);
  if (tier) prom_printf(o, "\",tier=\"%s", tier);
  prom_printf(o, "\"} %llu\n", (unsigned long long)value);
}

static void prom_format(prom_out *o) {
  static const size_t n_tenant = sizeof prom_tenant_families / sizeof prom_tenant_families[0];
  static const size_t n_tier = sizeof prom_tier_families / sizeof prom_tier_families[0];
  char pid[24];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());

  prom_header(o, "tierpool_info", "gauge", "The tierpool library in this process; the value is 1.");
  prom_printf(o, "tierpool_info{version=\"%s\",pid=\"%s\"} 1\n", TIERPOOL_VERSION, pid);
  prom_header(o, "tierpool_tenants", "gauge", "Tenants in the process (default included).");
  prom_printf(o, "tierpool_tenants %u\n", prom.tenants);

  for (size_t f = 0; f < n_tenant; f++) {
    const prom_family *fam = &prom_tenant_families[f];
    prom_header(o, fam->name, fam->type, fam->help);
    for (uint32_t t = 0; t < prom.tenants; t++) {
      uint64_t value;
      memcpy(&value, (const char *)&prom.tenant[t] + fam->offset, sizeof value);
      prom_tenant_sample(o, fam->name, prom.tenant[t].name, NULL, value);
    }
  }
  prom_header(o, "tierpool_isolated", "gauge", "1 when the tenant is isolated (tenant.NAME.isolated).");
  for (uint32_t t = 0; t < prom.tenants; t++)
    prom_tenant_sample(o, "tierpool_isolated", prom.tenant[t].name, NULL, prom.tenant[t].isolated != 0);

  for (size_t f = 0; f < n_tier; f++) {
    const prom_family *fam = &prom_tier_families[f];
    prom_header(o, fam->name, fam->type, fam->help);
    for (uint32_t t = 0; t < prom.tenants; t++)
      for (int tier = 0; tier < TIERPOOL_TIER_COUNT; tier++) {
        uint64_t value;
        memcpy(&value, (const char *)&prom.tenant[t].tier[tier] + fam->offset, sizeof value);
        prom_tenant_sample(o, fam->name, prom.tenant[t].name, prom_tier_names[tier], value);
      }
  }

  if (tp_opt.node_budget > 0) {
    static const char *const names[3] = {"tierpool_node_budget_bytes", "tierpool_node_budget_used_bytes",
                                          "tierpool_node_budget_held_bytes"};
    static const char *const helps[3] = {
        "Size of the node-wide overflow budget (node_budget).",
        "Bytes of the node budget held by every live process that shares it.",
        "Bytes of the node budget held by this process."};
    uint64_t values[3] = {tp_node_budget_total(), tp_node_budget_used(), tp_node_budget_held()};
    for (int i = 0; i < 3; i++) {
      prom_header(o, names[i], "gauge", helps[i]);
      prom_reserve_line(o);
      prom_printf(o, "%s{budget=\"", names[i]);
      prom_label_value(o, tp_opt.node_budget_name, TP_OPTION_PATH_MAX);
      prom_printf(o, "\"} %llu\n", (unsigned long long)values[i]);
    }
  }
}

/* The writer's lock: 0 free, else the pid of the process whose thread holds
 * it.  A lock that came over fork from the parent is taken over. */
static bool prom_lock(void) {
  pid_t expected = 0, self = getpid();
  if (atomic_compare_exchange_strong(&prom.writer, &expected, self)) return true;
  return expected != self && atomic_compare_exchange_strong(&prom.writer, &expected, self);
}

static void prom_unlock(void) { atomic_store_explicit(&prom.writer, 0, memory_order_release); }

#ifdef SYS_renameat
#define PROM_RENAME(from, to) prom_sys(SYS_renameat, AT_FDCWD, (long)(from), AT_FDCWD, (long)(to), 0)
#else
#define PROM_RENAME(from, to) prom_sys(SYS_renameat2, AT_FDCWD, (long)(from), AT_FDCWD, (long)(to), 0)
#endif

/* "%p" in the path is the pid (one file per process: forked children and
 * exec'd programs inherit the setting), "%%" a percent sign. */
static bool prom_expand(const char *template, char *out, size_t cap) {
  size_t n = 0;
  for (const char *t = template; *t; t++) {
    int w = 1;
    if (t[0] == '%' && t[1] == 'p') w = snprintf(out + n, cap - n, "%ld", (long)getpid()), t++;
    else if (t[0] == '%' && t[1] == '%') out[n] = '%', t++;
    else if (n < cap) out[n] = *t;
    if (w < 0 || (n += (size_t)w) >= cap) return false;
  }
  out[n] = '\0';
  return true;
}

/* Writes the whole file: 0, or the errno of the step that failed. */
static int prom_write_locked(const char *template) {
  if (!prom_expand(template, prom.path, sizeof prom.path)) return ENAMETOOLONG;
  const char *path = prom.path;
  int n = snprintf(prom.tmp_path, sizeof prom.tmp_path, "%s.tmp.%ld", path, (long)getpid());
  if (!*path || n < 0 || (size_t)n >= sizeof prom.tmp_path) return *path ? ENAMETOOLONG : ENOENT;

  /* A snapshot first, so that every family sees the same numbers. */
  prom.tenants = tp_tenant_count();
  if (prom.tenants > TP_MAX_TENANTS) prom.tenants = TP_MAX_TENANTS;
  for (uint32_t t = 0; t < prom.tenants; t++) tp_tenant_stats(t, &prom.tenant[t]);

  long fd = prom_sys(SYS_openat, AT_FDCWD, (long)prom.tmp_path,
                     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644, 0);
  if (fd < 0) return (int)-fd;
  prom_out *o = &prom.out;
  o->fd = (int)fd;
  o->error = 0;
  o->len = 0;
  prom_format(o);
  prom_flush(o);
  long r = prom_sys(SYS_fchmod, fd, 0644, 0, 0, 0); /* the umask may have taken read bits away */
  if (r < 0 && !o->error) o->error = (int)-r;
  r = prom_sys(SYS_close, fd, 0, 0, 0, 0);
  if (r < 0 && r != -EINTR && !o->error) o->error = (int)-r;
  if (!o->error) {
    r = PROM_RENAME(prom.tmp_path, path);
    if (r < 0) o->error = (int)-r;
  }
  if (o->error) prom_sys(SYS_unlinkat, AT_FDCWD, (long)prom.tmp_path, 0, 0, 0);
  return o->error;
}

/* A relative prom_file is taken from the directory the program started in: a
 * program that changes directory later would scatter its files.  (The
 * directory's own '%' are doubled: the path is a template.) */
void tp_prom_init(void) {
  if (!tp_opt.prom_file[0] || tp_opt.prom_file[0] == '/') return;
  char dir[TP_OPTION_PATH_MAX], path[sizeof tp_opt.prom_file];
  long got = prom_sys(SYS_getcwd, (long)dir, sizeof dir, 0, 0, 0);
  size_t n = 0;
  const char *d = dir;
  for (; got > 0 && *d && n + 2 < sizeof path; d++) {
    if (*d == '%') path[n++] = '%';
    path[n++] = *d;
  }
  int w = got > 0 && !*d ? snprintf(path + n, sizeof path - n, "/%s", tp_opt.prom_file) : -1;
  if (w < 0 || n + (size_t)w >= sizeof path) {
    tp_message("prom_file %s: the working directory cannot be put in front (%s); the path follows it",
               tp_opt.prom_file, got > 0 ? "too long" : "cannot read it");
    return;
  }
  memcpy(tp_opt.prom_file, path, n + (size_t)w + 1);
}

/* false with errno set when the file could not be written (EBUSY: another
 * thread is writing it now). */
bool tp_prom_write(const char *path) {
  if (!prom_lock()) return errno = EBUSY, false;
  int error = prom_write_locked(path);
  prom_unlock();
  if (error) errno = error;
  return error == 0;
}

TP_COLD static void prom_tick_slow(uint64_t now_ms, uint64_t due) {
  if (atomic_load_explicit(&tp_init_state, memory_order_acquire) != 2) return; /* no options yet */
  if (!tp_opt.prom_file[0]) {
    atomic_store_explicit(&prom.next_due_ms, UINT64_MAX, memory_order_relaxed);
    return;
  }
  /* The thread that moves the deadline writes; the others go on. */
  if (!atomic_compare_exchange_strong(&prom.next_due_ms, &due, now_ms + tp_opt.prom_interval_ms)) return;
  int saved = errno;
  if (tp_prom_write(tp_opt.prom_file)) {
    atomic_store_explicit(&prom.failing, false, memory_order_relaxed);
  } else if (errno != EBUSY && !atomic_exchange(&prom.failing, true)) {
    tp_message("prom_file %s: cannot write it: %s (will keep trying every %llu ms)", tp_opt.prom_file,
               tp_os_error_text(errno),
               (unsigned long long)tp_opt.prom_interval_ms);
  }
  errno = saved;
}

void tp_prom_tick(uint64_t now_ms) {
  uint64_t due = atomic_load_explicit(&prom.next_due_ms, memory_order_relaxed);
  if (tp_likely(now_ms < due)) return;
  prom_tick_slow(now_ms, due);
}
