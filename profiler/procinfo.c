/* procinfo.c — facts about the process for offline analysis: who it is, which
 * ELF modules are loaded where (with build-ids, for symbolisation), its large
 * address-space reservations (Wasm linear memories, from /proc/self/maps: this
 * sees runtimes that map through raw system calls too), and the JIT perf map.
 * Runs on the writer thread only. */
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recorder_private.h"

#define TP_REC_RESERVATION_MIN ((uint64_t)64 << 20) /* smaller anonymous ranges are not reported */
#define TP_REC_MODULES_MAX 4096
#define TP_REC_PERF_MAP_CHUNK (1u << 20)

static uint64_t tp_rec_modules_seen[TP_REC_MODULES_MAX]; /* each emitted module: load address and name (tp_rec_module_visit) */
static uint32_t tp_rec_modules_seen_count;
static unsigned long long tp_rec_modules_adds = ~0ull;
static uint64_t tp_rec_perf_map_offset;
/* The perf map, kept open high once found (tp_os_proc_read says why); a
 * fork child closes its parent's (tp_rec_procinfo_reset). */
static int tp_rec_perf_map_fd = -1;
static struct stat tp_rec_perf_map_stat;

void tp_rec_procinfo_reset(void) {
  tp_rec_modules_seen_count = 0;
  tp_rec_modules_adds = ~0ull;
  tp_rec_perf_map_offset = 0;
  if (tp_rec_perf_map_fd >= 0) close(tp_rec_perf_map_fd); /* the parent's map: the child's has its pid */
  tp_rec_perf_map_fd = -1;
}

/* Reads a whole /proc file into the writer's scratch (NUL-terminated): one
 * the library keeps open (kept, read again each period), or path, opened for
 * this one read (kept < 0). */
static char *tp_rec_slurp(const char *path, int kept, size_t *len_out) {
  int fd = -1;
  if (kept < 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = tp_rec_scratch_alloc(cap);
  while (buf) {
    if (len + 1 == cap) {
      char *bigger = tp_rec_scratch_grow(buf, len, cap * 2);
      if (!bigger) break;
      buf = bigger, cap *= 2;
    }
    ssize_t n = kept < 0 ? read(fd, buf + len, cap - len - 1)
                         : tp_os_proc_read((tp_os_proc_file)kept, buf + len, cap - len, len);
    if (n <= 0) break;
    len += (size_t)n;
  }
  if (fd >= 0) close(fd);
  if (buf) buf[len] = '\0';
  if (len_out) *len_out = len;
  return buf;
}

void tp_rec_emit_process(tp_rec_out *out) {
  Tierpool__Trace__Process process = TIERPOOL__TRACE__PROCESS__INIT;
  char exe[4096] = "", host[256] = "";
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = '\0';
  gethostname(host, sizeof host - 1);
  size_t cmdline_len = 0;
  char *cmdline = tp_rec_slurp("/proc/self/cmdline", -1, &cmdline_len);
  char *argv[256];
  size_t argc = 0;
  for (size_t i = 0; cmdline && i < cmdline_len && argc < 256; i += strlen(cmdline + i) + 1) argv[argc++] = cmdline + i;
  process.pid = (uint32_t)getpid();
  process.ppid = (uint32_t)getppid();
  process.executable = exe;
  process.n_argv = argc;
  process.argv = argv;
  process.hostname = host;
  process.start_unix_ns = tp_rec.start_unix_ns;
  process.start_mono_ns = tp_rec.start_mono_ns;
  process.sample_rate = tp_rec.sample_bytes ? 0 : tp_rec.sample_rate;
  process.sample_bytes = tp_rec.sample_bytes;
  uint32_t classes[TP_MAX_CLASSES];
  for (uint32_t c = 0; c < tp_classes.count; c++) classes[c] = tp_classes.classes[c].size;
  process.n_size_classes = tp_classes.count;
  process.size_classes = classes;
  process.buddy_max = tp_opt.buddy_max;
  process.validate = tp_opt.validate;
  Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
  record.kind_case = TIERPOOL__TRACE__RECORD__KIND_PROCESS;
  record.process = &process;
  tp_rec_out_record(out, &record);
}

/* The GNU build-id note of a loaded module, read from its mapped PT_NOTE. */
static size_t tp_rec_build_id(const struct dl_phdr_info *info, const uint8_t **id) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)p;
      const uint8_t *name = p + sizeof *note, *desc = name + ((note->n_namesz + 3) & ~3u);
      if (desc + note->n_descsz > end) break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        *id = desc;
        return note->n_descsz;
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return 0;
}

static int tp_rec_module_visit(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  tp_rec_out *out = data;
  /* Known by address (+1: the executable's bias may be 0) and name, in the
   * top bits user addresses never use: a library loaded where an unloaded
   * one was is another module. */
  uint64_t name_hash = 0xcbf29ce484222325ull;
  for (const char *c = info->dlpi_name; c && *c; c++) name_hash = (name_hash ^ (uint8_t)*c) * 0x100000001b3ull;
  uint64_t key = (info->dlpi_addr + 1) ^ (name_hash << 48);
  for (uint32_t i = 0; i < tp_rec_modules_seen_count; i++)
    if (tp_rec_modules_seen[i] == key) return 0;
  if (tp_rec_modules_seen_count == TP_REC_MODULES_MAX) return 1;
  tp_rec_modules_seen[tp_rec_modules_seen_count++] = key;
  Tierpool__Trace__Module module = TIERPOOL__TRACE__MODULE__INIT;
  uint64_t vaddr[16], memsz[16];
  int64_t offset_gap[16];
  protobuf_c_boolean executable[16];
  char exe[4096];
  const char *path = info->dlpi_name;
  if (!path || !*path) { /* the main program */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    path = exe;
  }
  module.path = (char *)path;
  const uint8_t *id = NULL;
  module.build_id.len = tp_rec_build_id(info, &id);
  module.build_id.data = (uint8_t *)id;
  module.load_bias = info->dlpi_addr;
  module.time_ns = tp_rec_modules_adds == ~0ull ? 0 : tp_rec_now_ns();
  /* The segments as columns (trace.proto, format 3): the file offset as its
   * gap below vaddr, mostly 0 or a page or two. */
  size_t n = 0;
  for (int i = 0; i < info->dlpi_phnum && n < 16; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    vaddr[n] = ph->p_vaddr;
    memsz[n] = ph->p_memsz;
    offset_gap[n] = (int64_t)(ph->p_vaddr - ph->p_offset);
    executable[n++] = (ph->p_flags & PF_X) != 0;
  }
  module.n_segment_vaddr = module.n_segment_memsz = module.n_segment_offset_gap = module.n_segment_executable = n;
  module.segment_vaddr = vaddr, module.segment_memsz = memsz;
  module.segment_offset_gap = offset_gap, module.segment_executable = executable;
  Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
  record.kind_case = TIERPOOL__TRACE__RECORD__KIND_MODULE;
  record.module = &module;
  tp_rec_out_record(out, &record);
  return 0;
}

static int tp_rec_adds_visit(struct dl_phdr_info *info, size_t size, void *data) {
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs)) *(unsigned long long *)data = info->dlpi_adds;
  return 1;
}

/* Modules loaded since the last call (all of them the first time); the
 * loader's counter of additions makes the common case one callback. */
void tp_rec_emit_new_modules(tp_rec_out *out) {
  unsigned long long adds = 0;
  dl_iterate_phdr(tp_rec_adds_visit, &adds);
  if (adds == tp_rec_modules_adds) return;
  dl_iterate_phdr(tp_rec_module_visit, out);
  tp_rec_modules_adds = adds;
}

/* A line of /proc/self/maps, "start-end perms offset dev inode  [path]":
 * true when it maps anonymous memory (no inode; no path, or "[anon:...]").
 * By hand, not sscanf: node's maps run to a thousand lines, read at every
 * snapshot and at exit. */
static bool tp_rec_parse_maps_line(const char *line, uint64_t *start, uint64_t *end, bool *accessible) {
  char *p;
  *start = strtoull(line, &p, 16);
  if (*p != '-') return false;
  *end = strtoull(p + 1, &p, 16);
  if (*p != ' ' || strnlen(p, 5) < 5) return false;
  *accessible = strncmp(p + 1, "---", 3) != 0;
  p += 5;
  for (int field = 0; field < 2; field++) { /* offset, device */
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  uint64_t inode = strtoull(p, &p, 10);
  while (*p == ' ') p++;
  return inode == 0 && (*p == '\0' || strncmp(p, "[anon", 5) == 0);
}

/* Contiguous anonymous ranges of 64 MiB and more, and how much of each is
 * accessible: a Wasm linear memory is a large PROT_NONE reservation whose
 * accessible part grows with memory.grow.  The pool's segments and the
 * recorder's tables are left out. */
static size_t tp_rec_reservations(Tierpool__Trace__Snapshot__Reservation *out, size_t cap) {
  size_t len = 0, count = 0;
  char *maps = tp_rec_slurp(NULL, TP_OS_PROC_MAPS, &len);
  if (!maps) return 0;
  uint64_t run_start = 0, run_end = 0, run_accessible = 0;
  for (char *line = maps; line && *line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = '\0';
    uint64_t start, end;
    bool accessible, anonymous = tp_rec_parse_maps_line(line, &start, &end, &accessible);
    bool ours = anonymous && (tp_segment_in_range(start, start + 1) || tp_rec_is_own_map(start));
    if (anonymous && !ours && start == run_end) {
      run_end = end;
    } else {
      if (run_end - run_start >= TP_REC_RESERVATION_MIN && count < cap) {
        tierpool__trace__snapshot__reservation__init(&out[count]);
        out[count].start = run_start;
        out[count].size = run_end - run_start;
        out[count++].accessible = run_accessible;
      }
      run_start = anonymous && !ours ? start : 0;
      run_end = anonymous && !ours ? end : 0;
      run_accessible = 0;
    }
    if (anonymous && !ours && accessible) run_accessible += end - start;
    line = next;
  }
  if (run_end - run_start >= TP_REC_RESERVATION_MIN && count < cap) {
    tierpool__trace__snapshot__reservation__init(&out[count]);
    out[count].start = run_start;
    out[count].size = run_end - run_start;
    out[count++].accessible = run_accessible;
  }
  return count;
}

static void tp_rec_tier_state(Tierpool__Trace__Snapshot__TierState *state, uint32_t tier, uint32_t tenant,
                              const tierpool_tier_stats_t *stats) {
  tierpool__trace__snapshot__tier_state__init(state);
  state->tier = tier;
  state->tenant = tenant;
  state->live = stats->live_bytes;
  state->resident = stats->resident_bytes;
  state->peak = stats->peak_bytes;
  state->allocs = stats->allocs;
  state->frees = stats->frees;
}

/* The pool per tier: with one tenant, the process's totals; with more, one
 * state per (tenant, tier) of each tenant holding memory, and always the
 * default tenant's. */
void tp_rec_emit_snapshot(tp_rec_out *out, uint64_t time_us, uint32_t tenant_count) {
  Tierpool__Trace__Snapshot snapshot = TIERPOOL__TRACE__SNAPSHOT__INIT;
  static Tierpool__Trace__Snapshot__TierState tiers[TP_MAX_TENANTS * TIERPOOL_TIER_COUNT];
  Tierpool__Trace__Snapshot__TierState *tier_ptrs[TP_MAX_TENANTS * TIERPOOL_TIER_COUNT];
  static Tierpool__Trace__Snapshot__Reservation reservations[256];
  Tierpool__Trace__Snapshot__Reservation *reservation_ptrs[256];
  size_t n = 0;
  if (tenant_count <= 1) {
    tierpool_stats_t stats;
    tierpool_stats_get(&stats);
    for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) tp_rec_tier_state(&tiers[n++], (uint32_t)t, 0, &stats.tier[t]);
  } else {
    for (uint32_t k = 0; k < tenant_count && k < TP_MAX_TENANTS; k++) {
      tierpool_tenant_stats_t stats;
      tp_tenant_stats(k, &stats);
      if (k != 0 && !stats.resident_bytes && !stats.live_bytes) continue;
      for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) tp_rec_tier_state(&tiers[n++], (uint32_t)t, k, &stats.tier[t]);
    }
  }
  for (size_t i = 0; i < n; i++) tier_ptrs[i] = &tiers[i];
  snapshot.time_us = time_us;
  snapshot.n_tiers = n;
  snapshot.tiers = tier_ptrs;
  snapshot.n_reservations = tp_rec_reservations(reservations, 256);
  for (size_t i = 0; i < snapshot.n_reservations; i++) reservation_ptrs[i] = &reservations[i];
  snapshot.reservations = reservation_ptrs;
  char *statm = tp_rec_slurp(NULL, TP_OS_PROC_STATM, NULL);
  unsigned long long size_pages, rss_pages;
  if (statm && sscanf(statm, "%llu %llu", &size_pages, &rss_pages) == 2)
    snapshot.process_rss = rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
  Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
  record.kind_case = TIERPOOL__TRACE__RECORD__KIND_SNAPSHOT;
  record.snapshot = &snapshot;
  tp_rec_out_record(out, &record);
}

/* New complete lines of /tmp/perf-PID.map (node --perf-basic-prof, wasmtime
 * --profile=perfmap): the analyzer names JIT frames from them.  All of them
 * at each flush, a chunk a record.  Only a regular file of this user written
 * since the recording started: runtimes leave their maps behind, and a dead
 * process's may carry this pid. */
#define TP_REC_PERF_MAP_FLUSH_MAX ((size_t)64 << 20)
void tp_rec_emit_perf_map(tp_rec_out *out) {
  int fd = tp_rec_perf_map_fd;
  if (fd >= 0 && !tp_os_fd_is(fd, tp_rec_perf_map_stat.st_dev, tp_rec_perf_map_stat.st_ino))
    fd = tp_rec_perf_map_fd = -1; /* the program closed it: the number may be its own now */
  if (fd < 0) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    struct stat st; /* checked by name first: a stale map is not opened at every flush */
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (uint64_t)st.st_mtime + 1 < tp_rec.start_unix_ns / 1000000000u)
      return;
    fd = tp_os_fd_out_of_the_way(open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW));
    if (fd < 0) return;
    if (fstat(fd, &tp_rec_perf_map_stat) != 0 || tp_rec_perf_map_stat.st_ino != st.st_ino ||
        tp_rec_perf_map_stat.st_dev != st.st_dev) {
      close(fd);
      return;
    }
    tp_rec_perf_map_fd = fd;
  }
  char *chunk = tp_rec_scratch_alloc(TP_REC_PERF_MAP_CHUNK);
  for (size_t copied = 0; chunk && copied < TP_REC_PERF_MAP_FLUSH_MAX;) {
    ssize_t n = pread(fd, chunk, TP_REC_PERF_MAP_CHUNK, (off_t)tp_rec_perf_map_offset);
    size_t complete = 0;
    for (ssize_t i = 0; i < n; i++)
      if (chunk[i] == '\n') complete = (size_t)i + 1;
    if (!complete) break;
    Tierpool__Trace__PerfMap map = TIERPOOL__TRACE__PERF_MAP__INIT;
    map.text.data = (uint8_t *)chunk;
    map.text.len = complete;
    Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
    record.kind_case = TIERPOOL__TRACE__RECORD__KIND_PERF_MAP;
    record.perf_map = &map;
    tp_rec_out_record(out, &record);
    tp_rec_perf_map_offset += complete;
    copied += complete;
  }
  if (fd < TP_OS_FD_FLOOR) close(fd), tp_rec_perf_map_fd = -1; /* a low limit: not held low */
}
