/* export_pprof.c — a profile as pprof's profile.proto (pprof.proto), gzip'd,
 * for `go tool pprof`, Grafana Pyroscope and Parca.
 *
 * One pprof sample per profile site (stack, tier, tenant) with four values,
 * in Go's heap-profile order: alloc_objects, alloc_space, inuse_objects,
 * inuse_space — estimates already scaled by the sampling weights, as pprof
 * expects.  inuse_space is the default, as in Go heap profiles (what `go tool
 * pprof` and Pyroscope show first for memory): "inuse" is what was still
 * allocated when each process's trace ended; -sample_index=alloc_space gives
 * the allocation churn.  Tier and tenant are string labels.
 *
 * A profile's frames are module-relative (ELF virtual addresses), and one
 * module may have been loaded at other addresses in each process, so each
 * module gets a synthetic base and is laid out at it as a process maps it: a
 * mapping per executable segment, [base + p_vaddr, + p_memsz) at its file
 * offset, and a frame at base + addr - 1 (the call instruction, as pprof
 * stores return addresses).  address - memory_start + file_offset is then the
 * frame's offset in the file, as profile.proto says, which pprof's own
 * symbolizer turns back into an address through the program headers of the
 * file with the mapping's build-id: right also for files whose code is not
 * at vaddr == offset (non-PIE executables, lld's layout).  A module whose
 * segments the trace did not give gets one mapping at file offset 0. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export.h"
#include "pprof.pb-c.h"

/* Synthetic bases start above any user-space address (x86-64 and arm64 use
 * 47-48 bits), so they never meet the absolute addresses of unmapped frames. */
#define PPROF_FIRST_BASE (UINT64_C(1) << 48)
#define PPROF_BASE_ALIGN (UINT64_C(1) << 20)

enum { VALUE_ALLOC_OBJECTS, VALUE_ALLOC_SPACE, VALUE_INUSE_OBJECTS, VALUE_INUSE_SPACE, N_VALUES };

static const char *const value_names[N_VALUES][2] = {
    {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};

/* An open-addressing table from keys to indices (+1; 0 is an empty slot). */
struct index_table {
  uint32_t *slots;
  size_t n_slots;
};

/* The profile being built. */
struct pprof {
  /* The string table, and its index by content. */
  char **strings;
  size_t n_strings, cap_strings;
  struct index_table string_index;
  /* Functions, indexed by (name, file). */
  Perftools__Profiles__Function *functions;
  size_t n_functions, cap_functions;
  struct index_table function_index;
  /* Per module of the profile: the 1-based id of its first mapping (0:
   * unused; then one per executable segment), and its base. */
  uint64_t *mapping_id, *base;
  Perftools__Profiles__Mapping *mappings;
  size_t n_mappings;
  /* Per mapping: its locations, and those with a function, a file, a line. */
  size_t (*named)[4];
  /* Per frame: 1-based location id (0: unused). */
  uint64_t *location_id;
  Perftools__Profiles__Location *locations;
  Perftools__Profiles__Line *lines, **line_ptrs;  /* one line per location */
  size_t n_locations;
  bool failed;  /* out of memory */
};

static uint64_t hash_bytes(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3u;
  return h ^ (h >> 29);
}

/* Grows an array of elem-sized items to hold need; false when out of memory. */
static bool grow(void **array, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need) n *= 2;
  void *grown = realloc(*array, n * elem);
  if (!grown) return false;
  *array = grown;
  *cap = n;
  return true;
}

/* Makes room for one more entry beside the count there are (at most half
 * full), rehashing entry i with hash(pp, i).  false when out of memory. */
static bool make_room(struct pprof *pp, struct index_table *t, size_t count, uint64_t (*hash)(struct pprof *, size_t)) {
  if ((count + 1) * 2 <= t->n_slots) return true;
  size_t n = t->n_slots ? t->n_slots * 2 : 256;
  uint32_t *slots = calloc(n, sizeof *slots);
  if (!slots) return false;
  for (size_t i = 0; i < count; i++) {
    size_t at = hash(pp, i) & (n - 1);
    while (slots[at]) at = (at + 1) & (n - 1);
    slots[at] = (uint32_t)i + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->n_slots = n;
  return true;
}

static uint64_t string_hash(struct pprof *pp, size_t i) { return hash_bytes(pp->strings[i], strlen(pp->strings[i])); }

/* The index of s in the string table, adding it if new. */
static int64_t string_id(struct pprof *pp, const char *s) {
  if (!s) s = "";
  if (pp->failed || !make_room(pp, &pp->string_index, pp->n_strings, string_hash)) {
    pp->failed = true;
    return 0;
  }
  size_t mask = pp->string_index.n_slots - 1;
  size_t at = hash_bytes(s, strlen(s)) & mask;
  for (uint32_t slot; (slot = pp->string_index.slots[at]) != 0; at = (at + 1) & mask)
    if (strcmp(pp->strings[slot - 1], s) == 0) return slot - 1;
  char *copy = strdup(s);
  if (!copy || !grow((void **)&pp->strings, &pp->cap_strings, pp->n_strings + 1, sizeof *pp->strings)) {
    free(copy);
    pp->failed = true;
    return 0;
  }
  pp->strings[pp->n_strings] = copy;
  pp->string_index.slots[at] = (uint32_t)++pp->n_strings;
  return (int64_t)pp->n_strings - 1;
}

static uint64_t function_key_hash(int64_t name, int64_t file) {
  int64_t key[2] = {name, file};
  return hash_bytes(key, sizeof key);
}

static uint64_t function_hash(struct pprof *pp, size_t i) {
  return function_key_hash(pp->functions[i].name, pp->functions[i].filename);
}

/* The id of the function (name, file), adding it if new. */
static uint64_t function_id(struct pprof *pp, const char *name, const char *file) {
  int64_t name_id = string_id(pp, name), file_id = string_id(pp, file);
  if (pp->failed || !make_room(pp, &pp->function_index, pp->n_functions, function_hash)) {
    pp->failed = true;
    return 0;
  }
  size_t mask = pp->function_index.n_slots - 1;
  size_t at = function_key_hash(name_id, file_id) & mask;
  for (uint32_t slot; (slot = pp->function_index.slots[at]) != 0; at = (at + 1) & mask) {
    const Perftools__Profiles__Function *f = &pp->functions[slot - 1];
    if (f->name == name_id && f->filename == file_id) return f->id;
  }
  if (!grow((void **)&pp->functions, &pp->cap_functions, pp->n_functions + 1, sizeof *pp->functions)) {
    pp->failed = true;
    return 0;
  }
  Perftools__Profiles__Function *f = &pp->functions[pp->n_functions];
  perftools__profiles__function__init(f);
  f->id = pp->n_functions + 1;
  f->name = f->system_name = name_id;
  f->filename = file_id;
  pp->function_index.slots[at] = (uint32_t)++pp->n_functions;
  return f->id;
}

static void build_id_hex(const struct tp_prof_module *m, char *out) {
  for (size_t i = 0; i < m->build_id_len && i < sizeof m->build_id; i++) sprintf(out + 2 * i, "%02x", m->build_id[i]);
  out[2 * (m->build_id_len < sizeof m->build_id ? m->build_id_len : sizeof m->build_id)] = '\0';
}

/* The modules the sites' frames are in, as mappings at synthetic bases; the
 * process's executable (the main binary, which pprof wants first) leads. */
static void add_mappings(struct pprof *pp, const struct tp_profile *p) {
  uint64_t *max_addr = calloc(p->n_modules + 1, sizeof *max_addr);
  bool *used = calloc(p->n_modules + 1, sizeof *used);
  uint32_t *order = calloc(p->n_modules + 1, sizeof *order);
  if (!max_addr || !used || !order) {
    pp->failed = true;
    goto out;
  }
  for (size_t s = 0; s < p->n_sites; s++) {
    const struct tp_prof_stack *st = &p->stacks[p->sites[s].stack];
    for (uint32_t d = 0; d < st->depth; d++) {
      const struct tp_prof_frame *f = &p->frames[st->frames[d]];
      if (f->module >= p->n_modules) continue;
      used[f->module] = true;
      if (f->addr > max_addr[f->module]) max_addr[f->module] = f->addr;
    }
  }
  size_t n = 0, n_maps = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t m = 0; m < p->n_modules; m++) {
      bool main_binary = false;
      for (size_t i = 0; i < p->n_processes && !main_binary; i++)
        main_binary = p->processes[i].executable && p->modules[m].path &&
                      strcmp(p->processes[i].executable, p->modules[m].path) == 0;
      if (used[m] && main_binary == (pass == 0)) order[n++] = m, n_maps += p->modules[m].n_code ? p->modules[m].n_code : 1;
    }
  }
  pp->mappings = calloc(n_maps + 1, sizeof *pp->mappings);
  pp->named = calloc(n_maps + 1, sizeof *pp->named);
  if (!pp->mappings || !pp->named) {
    pp->failed = true;
    goto out;
  }
  uint64_t base = PPROF_FIRST_BASE;
  for (size_t i = 0; i < n; i++) {
    uint32_t m = order[i];
    const struct tp_prof_module *mod = &p->modules[m];
    char hex[2 * sizeof mod->build_id + 1];
    build_id_hex(mod, hex);
    uint64_t end = max_addr[m] + 1;
    pp->mapping_id[m] = pp->n_mappings + 1;
    pp->base[m] = base;
    for (size_t c = 0; c < (mod->n_code ? mod->n_code : 1); c++) {
      Perftools__Profiles__Mapping *map = &pp->mappings[pp->n_mappings];
      perftools__profiles__mapping__init(map);
      map->id = ++pp->n_mappings;
      map->filename = string_id(pp, mod->path);
      map->build_id = string_id(pp, hex);
      if (mod->n_code) { /* as the process mapped it: page-aligned, vaddr and offset alike */
        const struct tp_prof_segment *seg = &mod->code[c];
        uint64_t skew = seg->vaddr & 4095;
        map->memory_start = base + seg->vaddr - skew;
        map->memory_limit = base + seg->vaddr + seg->memsz;
        map->file_offset = seg->file_offset - (seg->file_offset >= skew ? skew : seg->file_offset);
        if (seg->vaddr + seg->memsz > end) end = seg->vaddr + seg->memsz;
      } else {
        map->memory_start = base;
        map->memory_limit = base + ((max_addr[m] + 1 + 4095) & ~UINT64_C(4095));
        map->file_offset = 0;
      }
    }
    base = (base + end + PPROF_BASE_ALIGN - 1) & ~(PPROF_BASE_ALIGN - 1);
  }
out:
  free(max_addr);
  free(used);
  free(order);
}

/* The mapping of module m holding frame address addr (a return address):
 * with segments, the one whose range holds the call; NULL if none does. */
static Perftools__Profiles__Mapping *mapping_of(struct pprof *pp, const struct tp_prof_module *mod, uint32_t m,
                                               uint64_t addr) {
  uint64_t first = pp->mapping_id[m] - 1, call = addr ? addr - 1 : 0;
  if (!mod->n_code) return &pp->mappings[first];
  for (size_t c = 0; c < mod->n_code; c++)
    if (call >= mod->code[c].vaddr && call - mod->code[c].vaddr < mod->code[c].memsz) return &pp->mappings[first + c];
  return NULL;
}

/* The location of a frame (made on first use): its address in its module's
 * mapping, and one line naming it. */
static uint64_t location_for(struct pprof *pp, struct tp_export *x, uint32_t frame) {
  if (pp->location_id[frame]) return pp->location_id[frame];
  const struct tp_profile *p = x->profile;
  const struct tp_prof_frame *f = &p->frames[frame];
  const struct tp_symbol *sym = tp_export_symbol(x, frame);
  if (!sym) {
    pp->failed = true;
    return 0;
  }
  Perftools__Profiles__Location *loc = &pp->locations[pp->n_locations];
  Perftools__Profiles__Line *line = &pp->lines[pp->n_locations];
  perftools__profiles__location__init(loc);
  perftools__profiles__line__init(line);
  loc->id = pp->n_locations + 1;
  if (f->module < p->n_modules && pp->mapping_id[f->module]) {
    loc->address = pp->base[f->module] + (f->addr ? f->addr - 1 : 0);
    Perftools__Profiles__Mapping *map = mapping_of(pp, &p->modules[f->module], f->module, f->addr);
    if (map) {
      size_t *named = pp->named[map->id - 1];
      loc->mapping_id = map->id;
      named[0]++, named[1] += sym->function != NULL, named[2] += sym->file != NULL, named[3] += sym->line != 0;
    }
  } else {
    loc->address = f->addr; /* JIT or unknown code: the absolute address in its process */
  }
  line->function_id = function_id(pp, sym->function ? sym->function : sym->display, sym->file);
  line->line = sym->line;
  pp->line_ptrs[pp->n_locations] = line;
  loc->line = &pp->line_ptrs[pp->n_locations];
  loc->n_line = 1;
  pp->n_locations++;
  return pp->location_id[frame] = loc->id;
}

/* pprof symbolizes a mapping again (from its build-id) unless it says it has
 * names: only those whose every location got one say so. */
static void set_mapping_flags(struct pprof *pp) {
  for (size_t i = 0; i < pp->n_mappings; i++) {
    const size_t *named = pp->named[i];
    pp->mappings[i].has_functions = named[0] && named[1] == named[0];
    pp->mappings[i].has_filenames = named[0] && named[2] == named[0];
    pp->mappings[i].has_line_numbers = named[0] && named[3] == named[0];
  }
}

/* The sampling unit of one process: bytes, or allocations (validation mode
 * samples every one), and how many between two samples. */
static void process_period(const struct tp_prof_process *proc, bool *by_bytes, int64_t *period) {
  *by_bytes = proc->sample_bytes && !proc->validate;
  double rate = proc->validate ? 1 : proc->sample_rate;
  *period = *by_bytes ? (int64_t)proc->sample_bytes : rate > 0 && rate <= 1 ? llround(1 / rate) : 1;
}

/* The counting unit between two samples (pprof shows it as information):
 * the processes', when they agree; when they do not (a merge of count- and
 * byte-mode traces, or of other rates), none rather than the first one's. */
static void set_period(struct pprof *pp, const struct tp_profile *p, Perftools__Profiles__ValueType *type,
                       Perftools__Profiles__Profile *out) {
  bool by_bytes = false;
  int64_t period = 1;
  for (size_t i = 0; i < p->n_processes; i++) {
    bool b;
    int64_t n;
    process_period(&p->processes[i], &b, &n);
    if (i && (b != by_bytes || n != period)) return; /* no period_type, period 0 */
    by_bytes = b, period = n;
  }
  out->period_type = type;
  type->type = string_id(pp, by_bytes ? "space" : "allocations");
  type->unit = string_id(pp, by_bytes ? "bytes" : "count");
  out->period = period;
}

static void set_times(const struct tp_profile *p, Perftools__Profiles__Profile *out) {
  uint64_t start = UINT64_MAX, end = 0;
  for (size_t i = 0; i < p->n_processes; i++) {
    const struct tp_prof_process *proc = &p->processes[i];
    if (!proc->start_unix_ns) continue;
    if (proc->start_unix_ns < start) start = proc->start_unix_ns;
    uint64_t stop = proc->start_unix_ns + proc->duration_us * 1000;
    if (stop > end) end = stop;
  }
  if (start == UINT64_MAX) return;
  out->time_nanos = (int64_t)start;
  out->duration_nanos = (int64_t)(end - start);
}

/* Writes the packed profile gzip'd to out: 0, or -1 on a write error. */
static int write_gzip(const uint8_t *data, size_t len, FILE *out) {
  z_stream z = {0};
  /* windowBits 15 + 16: a gzip header and trailer rather than zlib's. */
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  uint8_t chunk[1 << 16];
  z.next_in = (Bytef *)data;
  int status = 0, rc;
  do {
    size_t in = len > (1u << 30) ? (1u << 30) : len;
    z.avail_in = (uInt)in;
    len -= in;
    do {
      z.next_out = chunk;
      z.avail_out = sizeof chunk;
      rc = deflate(&z, len ? Z_NO_FLUSH : Z_FINISH);
      size_t have = sizeof chunk - z.avail_out;
      if (rc == Z_STREAM_ERROR || fwrite(chunk, 1, have, out) != have) status = -1;
    } while (status == 0 && z.avail_out == 0);
  } while (status == 0 && len);
  deflateEnd(&z);
  return status;
}

static void pprof_free(struct pprof *pp) {
  for (size_t i = 0; i < pp->n_strings; i++) free(pp->strings[i]);
  free(pp->strings);
  free(pp->string_index.slots);
  free(pp->functions);
  free(pp->function_index.slots);
  free(pp->mapping_id);
  free(pp->base);
  free(pp->mappings);
  free(pp->named);
  free(pp->location_id);
  free(pp->locations);
  free(pp->lines);
  free(pp->line_ptrs);
}

/* Pointers to each element of an array of structs, as protobuf-c wants. */
static void **pointers(void *array, size_t n, size_t elem) {
  void **v = malloc((n ? n : 1) * sizeof *v);
  if (v)
    for (size_t i = 0; i < n; i++) v[i] = (char *)array + i * elem;
  return v;
}

int tp_export_pprof(struct tp_export *x, FILE *out, char *err, size_t errlen) {
  const struct tp_profile *p = x->profile;
  struct pprof pp = {0};
  Perftools__Profiles__Profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
  Perftools__Profiles__ValueType types[N_VALUES], period_type = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
  Perftools__Profiles__ValueType *type_ptrs[N_VALUES];
  size_t n_sites = p->n_sites, total_depth = 0;
  for (size_t s = 0; s < n_sites; s++) total_depth += p->stacks[p->sites[s].stack].depth;

  Perftools__Profiles__Sample *samples = calloc(n_sites + 1, sizeof *samples);
  Perftools__Profiles__Label *labels = calloc(2 * n_sites + 1, sizeof *labels);
  Perftools__Profiles__Label **label_ptrs = calloc(2 * n_sites + 1, sizeof *label_ptrs);
  uint64_t *location_ids = calloc(total_depth + 1, sizeof *location_ids);
  int64_t *values = calloc(N_VALUES * n_sites + 1, sizeof *values);
  int64_t comments[2];
  void **sample_ptrs = NULL, **mapping_ptrs = NULL, **location_ptrs = NULL, **function_ptrs = NULL;
  uint8_t *packed = NULL;
  pp.mapping_id = calloc(p->n_modules + 1, sizeof *pp.mapping_id);
  pp.base = calloc(p->n_modules + 1, sizeof *pp.base);
  pp.location_id = calloc(p->n_frames + 1, sizeof *pp.location_id);
  pp.locations = calloc(p->n_frames + 1, sizeof *pp.locations);
  pp.lines = calloc(p->n_frames + 1, sizeof *pp.lines);
  pp.line_ptrs = calloc(p->n_frames + 1, sizeof *pp.line_ptrs);
  int status = -1;
  bool written = false; /* the error is in writing, not in memory */
  if (!samples || !labels || !label_ptrs || !location_ids || !values || !pp.mapping_id || !pp.base ||
      !pp.location_id || !pp.locations || !pp.lines || !pp.line_ptrs)
    goto out;

  string_id(&pp, ""); /* string_table[0] must be "" */
  for (int v = 0; v < N_VALUES; v++) {
    perftools__profiles__value_type__init(&types[v]);
    types[v].type = string_id(&pp, value_names[v][0]);
    types[v].unit = string_id(&pp, value_names[v][1]);
    type_ptrs[v] = &types[v];
  }
  prof.n_sample_type = N_VALUES;
  prof.sample_type = type_ptrs;
  prof.default_sample_type = types[VALUE_INUSE_SPACE].type;
  set_period(&pp, p, &period_type, &prof);
  set_times(p, &prof);
  add_mappings(&pp, p);

  int64_t tier_key = string_id(&pp, "tier"), tenant_key = string_id(&pp, "tenant");
  double carry[N_VALUES] = {0};
  size_t at = 0;
  for (size_t s = 0; s < n_sites && !pp.failed; s++) {
    const struct tp_prof_site *site = &p->sites[s];
    const struct tp_prof_stack *st = &p->stacks[site->stack];
    Perftools__Profiles__Sample *out_sample = &samples[s];
    perftools__profiles__sample__init(out_sample);
    out_sample->location_id = location_ids + at;
    out_sample->n_location_id = st->depth;
    for (uint32_t d = 0; d < st->depth; d++) location_ids[at++] = location_for(&pp, x, st->frames[d]);
    int64_t *v = values + N_VALUES * s;
    v[VALUE_ALLOC_OBJECTS] = tp_export_round(site->allocs, &carry[VALUE_ALLOC_OBJECTS]);
    v[VALUE_ALLOC_SPACE] = tp_export_round(site->bytes, &carry[VALUE_ALLOC_SPACE]);
    v[VALUE_INUSE_OBJECTS] = tp_export_round(site->live_allocs, &carry[VALUE_INUSE_OBJECTS]);
    v[VALUE_INUSE_SPACE] = tp_export_round(site->live_bytes, &carry[VALUE_INUSE_SPACE]);
    out_sample->value = v;
    out_sample->n_value = N_VALUES;
    char tier_buf[32];
    Perftools__Profiles__Label *l = &labels[2 * s];
    perftools__profiles__label__init(&l[0]);
    perftools__profiles__label__init(&l[1]);
    l[0].key = tier_key;
    l[0].str = string_id(&pp, tp_export_tier_name(site->tier, tier_buf, sizeof tier_buf));
    l[1].key = tenant_key;
    l[1].str = string_id(&pp, site->tenant < p->n_tenants ? p->tenants[site->tenant] : "default");
    label_ptrs[2 * s] = &l[0];
    label_ptrs[2 * s + 1] = &l[1];
    out_sample->label = &label_ptrs[2 * s];
    out_sample->n_label = 2;
  }

  char note[512];
  snprintf(note, sizeof note, "tierpool export: %zu trace(s), %zu process(es), %" PRIu64 " samples%s%s", x->n_traces,
           p->n_processes, p->samples, x->n_traces ? ", first " : "", x->n_traces ? x->traces[0] : "");
  comments[0] = string_id(&pp, note);
  comments[1] = string_id(&pp, "values are estimates (sampled allocations times their weights); "
                               "inuse = not freed when its process's trace ended");
  prof.comment = comments;
  prof.n_comment = 2;
  if (pp.failed) goto out;
  set_mapping_flags(&pp);

  sample_ptrs = pointers(samples, n_sites, sizeof *samples);
  mapping_ptrs = pointers(pp.mappings, pp.n_mappings, sizeof *pp.mappings);
  location_ptrs = pointers(pp.locations, pp.n_locations, sizeof *pp.locations);
  function_ptrs = pointers(pp.functions, pp.n_functions, sizeof *pp.functions);
  if (!sample_ptrs || !mapping_ptrs || !location_ptrs || !function_ptrs) goto out;
  prof.sample = (Perftools__Profiles__Sample **)sample_ptrs;
  prof.n_sample = n_sites;
  prof.mapping = (Perftools__Profiles__Mapping **)mapping_ptrs;
  prof.n_mapping = pp.n_mappings;
  prof.location = (Perftools__Profiles__Location **)location_ptrs;
  prof.n_location = pp.n_locations;
  prof.function = (Perftools__Profiles__Function **)function_ptrs;
  prof.n_function = pp.n_functions;
  prof.string_table = pp.strings;
  prof.n_string_table = pp.n_strings;

  size_t len = perftools__profiles__profile__get_packed_size(&prof);
  packed = malloc(len ? len : 1);
  if (!packed) goto out;
  perftools__profiles__profile__pack(&prof, packed);
  if (write_gzip(packed, len, out) < 0) {
    snprintf(err, errlen, "write error");
    written = true;
  } else {
    status = 0;
  }
out:
  if (status < 0 && !written) snprintf(err, errlen, "out of memory");
  free(packed);
  free(sample_ptrs);
  free(mapping_ptrs);
  free(location_ptrs);
  free(function_ptrs);
  free(samples);
  free(labels);
  free(label_ptrs);
  free(location_ids);
  free(values);
  pprof_free(&pp);
  return status;
}
