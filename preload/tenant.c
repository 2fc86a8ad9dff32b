/* tenant.c — tenants: a heap each, which tenant a thread allocates for, and
 * the budgets (reserve, limit, shared overflow, node budget).
 *
 * A tenant's heap has its own segments, slabs and buddy lists, so memory
 * never moves between tenants inside the pool; only cached large mappings
 * can, and large.c clears those.  The thread's tenant is its cache's heap:
 * switching flushes the cache to the old heap.  Chosen, most specific first:
 * tierpool_tenant_set, the tenant_threads rules on the thread's name (when it
 * first allocates or names itself), the `tenant` option, "default".
 *
 * Budget: a heap is charged for the bytes it holds from the OS (resident
 * buddy pages, slabs included, and live large mappings), when it takes them.
 * Bytes past the reserve come from the shared overflow (overflow_limit, and
 * the node budget across processes); past the limit nothing comes. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

typedef struct tp_tenant_config {
  char name[TIERPOOL_TENANT_NAME_MAX + 1];
  uint64_t reserve, limit;
  bool isolated;
} tp_tenant_config;

static tp_tenant_config tp_configs[TP_MAX_TENANTS]; /* from tenant.NAME.* keys */
static uint32_t tp_config_count;
static char tp_heap_names[TP_MAX_TENANTS][TIERPOOL_TENANT_NAME_MAX + 1];
static tp_heap *tp_heaps[TP_MAX_TENANTS];
static _Atomic uint32_t tp_heap_count;
static tp_lock tp_tenant_lock = TP_LOCK_INITIALIZER; /* creating heaps */
static tp_lock tp_budget_lock = TP_LOCK_INITIALIZER; /* the process-wide totals below */
/* This thread is updating a budget (it may hold tp_budget_lock or the node
 * budget's): a signal handler that maps memory must not purge, which would
 * settle budgets too (tp_heap_host_grows). */
static __thread volatile bool tp_budget_busy;
bool tp_budget_busy_here(void) { return tp_budget_busy; }
static void tp_budget_mark_busy(bool busy) {
  atomic_signal_fence(memory_order_seq_cst);
  tp_budget_busy = busy;
  atomic_signal_fence(memory_order_seq_cst);
}
static uint64_t tp_process_charged, tp_overflow_used;
static bool tp_budgets_active; /* any limit, reserve or node budget: totals need the lock */

__thread size_t tp_request_bytes;
static __thread tp_heap *tp_thread_heap;  /* NULL: not chosen yet */
static __thread bool tp_thread_explicit;  /* chosen by tierpool_tenant_set */

/* ---- names and options ---------------------------------------------------- */

static bool tp_tenant_name_ok(const char *name, size_t len) {
  if (len == 0 || len > TIERPOOL_TENANT_NAME_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  }
  return true;
}

static tp_tenant_config *tp_config_find(const char *name, size_t len, bool create) {
  for (uint32_t i = 0; i < tp_config_count; i++)
    if (strlen(tp_configs[i].name) == len && memcmp(tp_configs[i].name, name, len) == 0) return &tp_configs[i];
  if (!create || tp_config_count == TP_MAX_TENANTS) return NULL;
  tp_tenant_config *c = &tp_configs[tp_config_count++];
  memcpy(c->name, name, len);
  c->name[len] = '\0';
  return c;
}

bool tp_tenant_option_set(const char *key, size_t key_len, const char *value, size_t value_len,
                          const char *source) {
  const char *name = key + 7, *dot = memrchr(key, '.', key_len);
  size_t name_len = (size_t)(dot - name);
  const char *field = dot + 1;
  size_t field_len = key_len - (size_t)(field - key);
  if (dot < name || !tp_tenant_name_ok(name, name_len)) {
    tp_message("%s: bad tenant key '%.*s' (want tenant.NAME.reserve, .limit or .isolated; ignored)", source,
               (int)key_len, key);
    return false;
  }
  uint64_t size = 0;
  bool flag = false;
  enum { RESERVE, LIMIT, ISOLATED, UNKNOWN } which = UNKNOWN;
  if (field_len == 7 && memcmp(field, "reserve", 7) == 0) which = RESERVE;
  else if (field_len == 5 && memcmp(field, "limit", 5) == 0) which = LIMIT;
  else if (field_len == 8 && memcmp(field, "isolated", 8) == 0) which = ISOLATED;
  if (which == UNKNOWN) {
    tp_message("%s: unknown tenant key '%.*s' (want reserve, limit or isolated; ignored)", source, (int)key_len,
               key);
    return false;
  }
  bool ok = which == ISOLATED ? tp_parse_bool(value, value_len, &flag) : tp_parse_size(value, value_len, &size);
  if (!ok) {
    tp_message("%s: bad value '%.*s' for %.*s (%s); using %s", source, (int)value_len, value, (int)key_len, key,
               which == ISOLATED ? "want on or off" : "not a size", which == ISOLATED ? "off" : "0 (none)");
    return false;
  }
  tp_tenant_config *c = tp_config_find(name, name_len, true);
  if (!c) {
    tp_message("%s: more than %d tenants configured; '%.*s' ignored", source, TP_MAX_TENANTS, (int)key_len, key);
    return false;
  }
  if (which == RESERVE) c->reserve = size;
  else if (which == LIMIT) c->limit = size;
  else c->isolated = flag;
  return true;
}

/* One element of a glob at p[*i] against the character c — '?', a [set]
 * (ranges, '!' negation) or itself — moving *i past it.  An unterminated
 * '[' matches nothing. */
static bool tp_glob_one(const char *p, size_t plen, size_t *i, char c) {
  size_t k = *i;
  if (p[k] != '[') {
    *i = k + 1;
    return p[k] == '?' || p[k] == c;
  }
  size_t j = k + 1;
  bool negate = j < plen && p[j] == '!', hit = false;
  if (negate) j++;
  for (; j < plen && (p[j] != ']' || j == k + 1 + negate); j++) {
    if (j + 2 < plen && p[j + 1] == '-' && p[j + 2] != ']') {
      hit |= c >= p[j] && c <= p[j + 2];
      j += 2;
    } else {
      hit |= c == p[j];
    }
  }
  if (j >= plen || hit == negate) return false;
  *i = j + 1;
  return true;
}

/* Glob match of a thread name: '*', '?' and [set].  On a mismatch it goes
 * back to the last '*' only, one character further: at most len(p) × len(s)
 * steps, where trying every split at every '*' took exponential time (forty
 * stars against a 15-byte name: ~10^13 calls, in a thread's first malloc). */
static bool tp_glob(const char *p, size_t plen, const char *s) {
  size_t i = 0, star = SIZE_MAX;
  const char *star_s = NULL;
  while (*s) {
    if (i < plen && p[i] == '*') {
      star = ++i, star_s = s;
      continue;
    }
    size_t next = i;
    if (i < plen && tp_glob_one(p, plen, &next, *s)) {
      i = next, s++;
      continue;
    }
    if (star == SIZE_MAX) return false;
    i = star, s = ++star_s;
  }
  while (i < plen && p[i] == '*') i++;
  return i == plen;
}

/* Walks "pattern=tenant, ..." calling visit(pattern, tenant); stops when it returns true. */
static bool tp_rules_walk(bool (*visit)(const char *, size_t, const char *, size_t, void *), void *ctx) {
  const char *r = tp_opt.tenant_threads;
  while (*r) {
    const char *end = strchr(r, ',');
    if (!end) end = r + strlen(r);
    const char *item = r;
    size_t len = (size_t)(end - r);
    while (len && (*item == ' ' || *item == '\t')) item++, len--;
    while (len && (item[len - 1] == ' ' || item[len - 1] == '\t')) len--;
    const char *eq = memchr(item, '=', len);
    if (len) {
      const char *tenant = eq ? eq + 1 : item + len;
      size_t pattern_len = eq ? (size_t)(eq - item) : len, tenant_len = len - pattern_len - (eq ? 1 : 0);
      while (pattern_len && item[pattern_len - 1] == ' ') pattern_len--;
      while (tenant_len && *tenant == ' ') tenant++, tenant_len--;
      if (visit(item, eq ? pattern_len : 0, tenant, tenant_len, ctx)) return true;
    }
    r = *end ? end + 1 : end;
  }
  return false;
}

static bool tp_rule_check(const char *pattern, size_t pattern_len, const char *tenant, size_t tenant_len,
                          void *ctx) {
  bool *bad = ctx;
  (void)pattern;
  if (!pattern_len || !tp_tenant_name_ok(tenant, tenant_len)) {
    tp_message("bad rule in tenant_threads '%s' (want pattern=tenant, ...); rules ignored", tp_opt.tenant_threads);
    *bad = true;
    return true;
  }
  return false;
}

void tp_tenant_options_check(void) {
  bool bad = false;
  tp_rules_walk(tp_rule_check, &bad);
  if (bad) tp_opt.tenant_threads[0] = '\0';
  if (!tp_tenant_name_ok(tp_opt.tenant, strlen(tp_opt.tenant))) {
    tp_message("bad value '%s' for tenant (want [A-Za-z0-9_.-], at most %d bytes); using default", tp_opt.tenant,
               TIERPOOL_TENANT_NAME_MAX);
    strcpy(tp_opt.tenant, "default");
  }
  uint64_t reserves = 0;
  for (uint32_t i = 0; i < tp_config_count; i++) {
    tp_tenant_config *c = &tp_configs[i];
    if (c->limit && c->reserve > c->limit) {
      tp_message("tenant.%s.limit (%llu) is below tenant.%s.reserve (%llu); using no reserve", c->name,
                 (unsigned long long)c->limit, c->name, (unsigned long long)c->reserve);
      c->reserve = 0;
    }
    reserves += c->reserve;
    if (c->reserve || c->limit || c->isolated) tp_budgets_active = true;
  }
  if (tp_opt.limit && reserves > tp_opt.limit)
    tp_message("the tenants' reserves (%llu) add up to more than limit (%llu): the limit wins",
               (unsigned long long)reserves, (unsigned long long)tp_opt.limit);
  if (tp_opt.limit || tp_opt.overflow_limit || tp_opt.node_budget) tp_budgets_active = true;
  if (tp_opt.node_budget && !tp_opt.node_budget_name[0]) {
    tp_message("node_budget is set but node_budget_name is empty; node budget off");
    tp_opt.node_budget = 0;
  }
}

/* node_budget_mode: octal digits only ("0640"); anything else is reported and 0600 used. */
static unsigned tp_node_budget_mode(void) {
  const char *s = tp_opt.node_budget_mode;
  unsigned mode = 0;
  size_t i = 0;
  for (; s[i] >= '0' && s[i] <= '7' && mode <= 0777; i++) mode = mode * 8 + (unsigned)(s[i] - '0');
  if (i == 0 || s[i] || mode > 0777) {
    tp_message("bad value '%s' for node_budget_mode (want octal permissions like 0600); using 0600", s);
    return 0600;
  }
  return mode;
}

/* ---- the registry of heaps ------------------------------------------------ */

static void tp_heap_configure(tp_heap *h) {
  const tp_tenant_config *c = tp_config_find(h->name, strlen(h->name), false);
  h->buddy_max = tp_opt.buddy_max;
  h->budget.capped = tp_opt.limit || tp_opt.overflow_limit || tp_opt.node_budget;
  if (!c) return;
  h->budget.reserve = c->reserve;
  h->budget.limit = c->limit;
  h->budget.isolated = c->isolated;
  h->budget.capped |= c->limit || c->isolated;
  if (c->limit && c->limit / 4 < h->buddy_max) { /* a quarter of the limit at most */
    size_t cap = tp_align_up(c->limit / 4, TP_PAGE_SIZE);
    size_t floor = tp_align_up(tp_classes.max_size, TP_PAGE_SIZE);
    h->buddy_max = cap > floor ? cap : floor;
  }
}

void tp_tenant_init_default(void) {
  strcpy(tp_heap_names[0], "default");
  tp_main_heap.name = tp_heap_names[0];
  tp_main_heap.index = 0;
  /* The node budget first: one that cannot be opened is off, and the heap
   * must not stay capped by it (a capped heap keeps free slab pages). */
  if (tp_opt.node_budget && !tp_node_budget_open(tp_opt.node_budget_name, tp_opt.node_budget, tp_node_budget_mode()))
    tp_opt.node_budget = 0;
  tp_heap_configure(&tp_main_heap);
  tp_heaps[0] = &tp_main_heap;
  atomic_store_explicit(&tp_heap_count, 1, memory_order_release);
}

static tp_heap *tp_heap_lookup(const char *name, size_t len) {
  uint32_t n = atomic_load_explicit(&tp_heap_count, memory_order_acquire);
  for (uint32_t i = 0; i < n; i++)
    if (strlen(tp_heaps[i]->name) == len && memcmp(tp_heaps[i]->name, name, len) == 0) return tp_heaps[i];
  return NULL;
}

/* The heap of tenant `name`, created on first use (NULL: too many tenants). */
static tp_heap *tp_tenant_heap_named(const char *name, size_t len) {
  tp_ensure_init();
  tp_heap *h = tp_heap_lookup(name, len);
  if (h) return h;
  tp_lock_acquire(&tp_tenant_lock);
  h = tp_heap_lookup(name, len);
  uint32_t n = atomic_load_explicit(&tp_heap_count, memory_order_relaxed);
  if (!h && n < TP_MAX_TENANTS && (h = tp_os_map(tp_align_up(sizeof(tp_heap), TP_PAGE_SIZE)))) {
    memcpy(tp_heap_names[n], name, len);
    tp_heap_names[n][len] = '\0';
    tp_heap_init(h, tp_heap_names[n]);
    h->index = n;
    tp_heap_configure(h);
    tp_heaps[n] = h;
    atomic_store_explicit(&tp_heap_count, n + 1, memory_order_release);
  }
  tp_lock_release(&tp_tenant_lock);
  return h;
}

uint32_t tp_tenant_count(void) {
  uint32_t n = atomic_load_explicit(&tp_heap_count, memory_order_acquire);
  return n ? n : 1;
}

tp_heap *tp_tenant_heap(uint32_t index) {
  if (atomic_load_explicit(&tp_heap_count, memory_order_acquire) == 0) return index == 0 ? &tp_main_heap : NULL;
  return index < tp_tenant_count() ? tp_heaps[index] : NULL;
}

/* ---- which tenant a thread allocates for ---------------------------------- */

typedef struct tp_rule_match {
  const char *thread_name;
  tp_heap *heap;
} tp_rule_match;

static bool tp_rule_apply(const char *pattern, size_t pattern_len, const char *tenant, size_t tenant_len,
                          void *ctx) {
  tp_rule_match *m = ctx;
  if (!tp_glob(pattern, pattern_len, m->thread_name)) return false;
  m->heap = tp_tenant_heap_named(tenant, tenant_len);
  return m->heap != NULL;
}

/* The rules' choice for the calling thread (its name, else the process's tenant). */
static tp_heap *tp_tenant_by_rules(void) {
  if (tp_opt.tenant_threads[0]) {
    char name[17] = {0};
    if (syscall(SYS_prctl, PR_GET_NAME, name, 0, 0, 0) == 0) {
      tp_rule_match m = {name, NULL};
      if (tp_rules_walk(tp_rule_apply, &m)) return m.heap;
    }
  }
  if (strcmp(tp_opt.tenant, "default") == 0) return &tp_main_heap;
  tp_heap *h = tp_tenant_heap_named(tp_opt.tenant, strlen(tp_opt.tenant));
  return h ? h : &tp_main_heap;
}

tp_heap *tp_tenant_thread_heap(void) {
  if (!tp_thread_heap) tp_thread_heap = tp_tenant_by_rules();
  return tp_thread_heap;
}

tp_heap *tp_current_heap(void) {
  tp_tcache *tc = tp_tcache_current;
  return tc ? tc->heap : tp_tenant_thread_heap();
}

static void tp_thread_switch(tp_heap *h) {
  tp_thread_heap = h;
  tp_tcache *tc = tp_tcache_current ? tp_tcache_current : tp_tcache_create();
  if (tc && tc->heap != h) tp_tcache_switch_heap(tc, h);
}

/* A thread that names itself gets the rules' tenant, unless it chose one. */
static void tp_thread_renamed(void) {
  if (tp_thread_explicit || !tp_opt.tenant_threads[0] ||
      atomic_load_explicit(&tp_init_state, memory_order_acquire) != 2)
    return;
  tp_thread_switch(tp_tenant_by_rules());
}

TP_API int pthread_setname_np(pthread_t thread, const char *name) {
  static int (*next)(pthread_t, const char *);
  if (!next) next = (int (*)(pthread_t, const char *))dlsym(RTLD_NEXT, "pthread_setname_np");
  int rc = next ? next(thread, name) : ENOSYS;
  if (rc == 0 && pthread_equal(thread, pthread_self())) tp_thread_renamed();
  return rc;
}

/* prctl(PR_SET_NAME) names the calling thread too (V8 and others use it). */
TP_API int prctl(int option, ...) {
  va_list ap;
  va_start(ap, option);
  unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
  unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
  va_end(ap);
  long rc = syscall(SYS_prctl, option, a2, a3, a4, a5);
  if (rc == 0 && option == PR_SET_NAME) tp_thread_renamed();
  return (int)rc;
}

/* ---- budgets -------------------------------------------------------------- */

static void tp_budget_note_peak(tp_budget *b, uint64_t charged) {
  if (charged > b->peak) b->peak = charged; /* racy by design: a statistic */
}

static TP_COLD bool tp_budget_refuse(tp_heap *h, const char *what, uint64_t cap) {
  atomic_fetch_add_explicit(&h->budget.limit_hits, 1, memory_order_relaxed);
  if (tp_opt.on_limit[0] == 'a')
    tp_fatal("tenant %s: %s of %llu bytes reached by a request of %zu bytes (on_limit = abort)", h->name, what,
             (unsigned long long)cap, tp_request_bytes);
  return false;
}

/* Overflow bytes a heap needs at `charged` bytes. */
static uint64_t tp_overflow_need(const tp_budget *b, uint64_t charged) {
  return charged > b->reserve ? charged - b->reserve : 0;
}

static bool tp_budget_take(tp_heap *h, uint64_t bytes, bool may_refuse, bool quiet);

bool tp_budget_charge(tp_heap *h, uint64_t bytes) { return tp_budget_take(h, bytes, true, false); }

/* A charge the caller can do without (a larger cached mapping than asked
 * for): refused without a word, never on_limit = abort. */
bool tp_budget_charge_optional(tp_heap *h, uint64_t bytes) { return tp_budget_take(h, bytes, true, true); }

/* Charges bytes a heap already holds (no refusal possible): the budget may
 * end up over its limit, and the next charge is refused. */
static void tp_budget_force(tp_heap *h, uint64_t bytes) { tp_budget_take(h, bytes, false, false); }

/* Another process reclaimed this one's node share (it looked dead): what the
 * heaps held of it is gone, or their frees would give back later draws.
 * Budget lock held. */
static void tp_budget_forget_lost_share(void) {
  if (!atomic_exchange_explicit(&tp_node_budget_share_lost, false, memory_order_relaxed)) return;
  for (uint32_t i = 0; i < tp_heap_count; i++)
    if (tp_heaps[i]) tp_heaps[i]->budget.node_held = 0;
}

static bool tp_budget_take(tp_heap *h, uint64_t bytes, bool may_refuse, bool quiet) {
  tp_budget *b = &h->budget;
  if (!tp_budgets_active) {
    tp_budget_note_peak(b, atomic_fetch_add_explicit(&b->charged, bytes, memory_order_relaxed) + bytes);
    return true;
  }
  tp_budget_mark_busy(true);
  tp_lock_acquire(&tp_budget_lock);
  uint64_t charged = atomic_load_explicit(&b->charged, memory_order_relaxed), after = charged + bytes;
  const char *refused = NULL;
  uint64_t cap = 0;
  /* An isolated tenant lives on its reserve (if it has one) and never draws. */
  uint64_t need = b->isolated ? 0 : tp_overflow_need(b, after);
  uint64_t extra = need > b->overflow_held ? need - b->overflow_held : 0;
  if (b->limit && after > b->limit) refused = "limit", cap = b->limit;
  else if (tp_opt.limit && tp_process_charged + bytes > tp_opt.limit) refused = "process limit", cap = tp_opt.limit;
  else if (b->isolated && b->reserve && after > b->reserve) refused = "reserve (isolated)", cap = b->reserve;
  else if (extra && tp_opt.overflow_limit && tp_overflow_used + extra > tp_opt.overflow_limit)
    refused = "shared overflow", cap = tp_opt.overflow_limit;
  bool node_taken = false;
  if (!refused && extra && tp_opt.node_budget && !(node_taken = tp_node_budget_take(extra)))
    refused = "node budget", cap = tp_node_budget_total();
  if (refused && !may_refuse) { /* pages already held: counted all the same */
    refused = NULL;
    if (extra && tp_opt.node_budget && !node_taken) node_taken = tp_node_budget_take(extra);
  }
  tp_budget_forget_lost_share();
  if (node_taken) b->node_held += extra;
  if (!refused) {
    b->overflow_held += extra;
    tp_overflow_used += extra;
    tp_process_charged += bytes;
    atomic_store_explicit(&b->charged, after, memory_order_relaxed);
    tp_budget_note_peak(b, after);
  }
  tp_lock_release(&tp_budget_lock);
  tp_budget_mark_busy(false);
  return refused ? !quiet && tp_budget_refuse(h, refused, cap) : true;
}

void tp_budget_uncharge(tp_heap *h, uint64_t bytes) {
  tp_budget *b = &h->budget;
  if (!tp_budgets_active) {
    atomic_fetch_sub_explicit(&b->charged, bytes, memory_order_relaxed);
    return;
  }
  tp_budget_mark_busy(true);
  tp_lock_acquire(&tp_budget_lock);
  uint64_t charged = atomic_load_explicit(&b->charged, memory_order_relaxed);
  uint64_t after = charged > bytes ? charged - bytes : 0;
  /* An isolated tenant holds no overflow (tp_budget_take), whatever it needs. */
  uint64_t need = b->isolated ? 0 : tp_overflow_need(b, after);
  uint64_t give = b->overflow_held > need ? b->overflow_held - need : 0;
  b->overflow_held -= give;
  tp_overflow_used -= give;
  tp_process_charged -= charged - after;
  atomic_store_explicit(&b->charged, after, memory_order_relaxed);
  tp_budget_forget_lost_share();
  uint64_t node_give = give < b->node_held ? give : b->node_held;
  b->node_held -= node_give;
  tp_lock_release(&tp_budget_lock);
  if (node_give) tp_node_budget_give(node_give);
  tp_budget_mark_busy(false);
}

/* The heap's charge follows its resident pages (frontier minus released, an
 * upper bound of what the OS holds for it).  Pages taken from the released
 * ones are charged before they are taken (tp_buddy_take), where the budget
 * may refuse them; everything else settles here: pages released or moved
 * away are uncharged, and a free block merged with a resident neighbour
 * (counted resident from then on) is charged. */
void tp_budget_settle_pool(tp_heap *h) {
  uint64_t resident = tp_heap_resident_bytes(h);
  if (resident < h->budget.pool_charged) tp_budget_uncharge(h, h->budget.pool_charged - resident);
  else if (resident > h->budget.pool_charged) tp_budget_force(h, resident - h->budget.pool_charged);
  h->budget.pool_charged = resident;
}

/* fork: the registry lock is taken first, the budget lock after the heaps'
 * (a charge runs under a heap's lock); the child starts with both free. */
void tp_tenant_fork_lock(bool budget) { tp_lock_acquire(budget ? &tp_budget_lock : &tp_tenant_lock); }
void tp_tenant_fork_unlock(void) {
  tp_lock_release(&tp_budget_lock);
  tp_lock_release(&tp_tenant_lock);
}
void tp_tenant_fork_child(void) {
  tp_lock_init(&tp_budget_lock);
  tp_lock_init(&tp_tenant_lock);
  /* The child holds no share of the node budget (its slot is its own, made
   * at its first draw): what the parent drew stays the parent's, or the
   * child's frees of inherited memory would give back what the child draws. */
  for (uint32_t i = 0; i < tp_heap_count; i++)
    if (tp_heaps[i]) tp_heaps[i]->budget.node_held = 0;
}

/* ---- statistics and the API ----------------------------------------------- */

void tp_tenant_stats(uint32_t index, tierpool_tenant_stats_t *out) {
  memset(out, 0, sizeof *out);
  tp_heap *h = tp_tenant_heap(index);
  if (!h) return;
  tp_heap_tenant_stats(h, out);
  strcpy(out->name, tp_tenant_name(index));
  const tp_budget *b = &h->budget;
  out->resident_bytes = atomic_load_explicit(&b->charged, memory_order_relaxed);
  out->peak_bytes = b->peak > out->resident_bytes ? b->peak : out->resident_bytes;
  out->reserve_bytes = b->reserve;
  out->limit_bytes = b->limit;
  out->overflow_bytes = b->overflow_held;
  out->limit_hits = atomic_load_explicit(&b->limit_hits, memory_order_relaxed);
  out->isolated = b->isolated;
}

const char *tp_tenant_name(uint32_t index) {
  tp_heap *h = tp_tenant_heap(index);
  return h && h->name ? h->name : "default";
}

uint32_t tp_tenant_index_of(const void *p) {
  if (tp_segment_is_ours(p)) return tp_segment_of(p)->heap->index;
  return tp_large_owner(p);
}

uint32_t tp_tenant_current_index(void) {
  tp_tcache *tc = tp_tcache_current;
  return tc ? tc->heap->index : tp_thread_heap ? tp_thread_heap->index : 0;
}

TP_API int tierpool_tenant_set(const char *name) {
  if (!name || !*name) {
    tp_thread_explicit = false;
    tp_ensure_init();
    tp_thread_switch(tp_tenant_by_rules());
    return 0;
  }
  size_t len = strnlen(name, TIERPOOL_TENANT_NAME_MAX + 1);
  if (!tp_tenant_name_ok(name, len)) return errno = EINVAL, -1;
  tp_heap *h = tp_tenant_heap_named(name, len);
  if (!h) return errno = ENOSPC, -1;
  tp_thread_explicit = true;
  tp_thread_switch(h);
  return 0;
}

TP_API const char *tierpool_tenant_get(void) {
  tp_ensure_init();
  return tp_current_heap()->name;
}

TP_API unsigned tierpool_tenant_count(void) { return tp_tenant_count(); }

TP_API int tierpool_tenant_stats_at(unsigned index, tierpool_tenant_stats_t *out) {
  tp_ensure_init();
  if (index >= tp_tenant_count()) return -1;
  tp_tenant_stats(index, out);
  return 0;
}

TP_API int tierpool_tenant_stats_get(const char *name, tierpool_tenant_stats_t *out) {
  tp_ensure_init();
  tp_heap *h = name ? tp_heap_lookup(name, strlen(name)) : NULL;
  if (!h) return -1;
  tp_tenant_stats(h->index, out);
  return 0;
}
