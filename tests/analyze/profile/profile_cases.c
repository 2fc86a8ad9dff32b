/* profile_cases.c — the checks of check_profile: traces with known contents
 * (the specs below, in make_trace's format) and the numbers the profile must
 * hold for them, worked out by hand in the comments. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_profile.h"
#include "live_table.h"
#include "trace_codec.h"

/* Process 101, count mode at 1/4 (weight 4 per sample).  Two frames: the
 * second (mmap calls, a snapshot, 24 more allocations, the End) is what a
 * truncated copy loses. */
static const char spec_a[] =
    "process pid=101 ppid=1 exe=/usr/bin/app argv=app,--fast host=node1 start_ns=1000 rate=0.25 "
    "classes=16,32,64 buddy_max=65536\n"
    "module path=/usr/lib/libx.so build_id=0badc0de bias=0x7f0000000000 seg=0:0x10000:0:1\n"
    "module path=/usr/bin/app build_id=aa01 bias=0x400000 seg=0:0x2000:0:0 seg=0x2000:0x8000:0x2000:1\n"
    "tenant id=1 name=alice\n"
    "stack id=1 frames=0x7f0000001234,0x402100\n"
    "stack id=2 frames=0x7f0000005678,0x402200 truncated=1\n"
    "sample id=1 t=100 size=100 stack=1\n"
    "sample id=2 t=200 size=100 stack=1\n"
    "sample id=3 t=300 size=5000 stack=2 tier=1\n"
    "sample id=4 t=400 size=40 stack=1 tenant=1\n"
    "free id=1 t=1100\n" /* lifetimes 1000, 1000 (tier 1), 2000 µs; 99 was never sampled */
    "free id=3 t=1300\n"
    "free id=2 t=2200\n"
    "free id=99 t=2300\n"
    "alloc size=100 count=1000 frees=900\n"
    "alloc size=5000 count=10 frees=4\n"
    "alloc size=40 count=50 tenant=1\n"
    "flush t=1000000\n"
    "snapshot t=1000000 rss=9000000 tier=0:1000:4096:1000 tier=1:5000:8192:5000 "
    "reservation=0x100000000:0x200000000:0x10000\n"
    "frame\n"
    "mmap kind=mmap t=1000100 addr=0x100000000 length=0x200000000\n"
    "mmap kind=mprotect t=1000200 addr=0x100000000 length=0x10000\n"
    "snapshot t=2000000 rss=8000000 tier=0:3000:4096:3000 tier=1:0:8192:5000 "
    "reservation=0x100000000:0x200000000:0x30000\n"
    "alloc size=100 count=24\n"
    "flush t=2000000\n"
    "end t=2500000 samples=4 dropped=1 allocations=1084\n";

#define A_STACK1 "/usr/lib/libx.so@0badc0de+0x1234;/usr/bin/app@aa01+0x2100"
#define A_STACK2 "/usr/lib/libx.so@0badc0de+0x5678;/usr/bin/app@aa01+0x2200;..."

/* Process 202: the same program in another address-space layout, at 1/2.
 * libx's Module record comes a frame after the stacks that use it (dlopen);
 * stack 2 runs through JIT code: named by the perf map, in a JIT range with no
 * name, in no module at all, and named by the perf map outside any range. */
static const char spec_b[] =
    "process pid=202 exe=/usr/bin/app argv=app rate=0.5\n"
    "module path=/usr/bin/app build_id=aa01 bias=0x555500000000 seg=0:0x2000:0:0 seg=0x2000:0x8000:0x2000:1\n"
    "stack id=1 frames=0x7fa000001234,0x555500002100\n"
    "stack id=2 frames=0x10000010,0x10000150,0x10000f00,0x20000000,0x30000004,0x7fa000001234\n"
    "sample id=1 t=10 size=100 stack=1\n"
    "sample id=2 t=20 size=64 stack=2 tier=2\n"
    "jit start=0x10000000 size=0x1000 t=5\n"
    "perfmap 10000000 100 wasm::func_a\n"
    "perfmap 0x10000100 80 wasm::func_b\n"
    "perfmap 30000000 10 node::lazy compile\n"
    "frame\n"
    "module path=/usr/lib/libx.so build_id=0badc0de bias=0x7fa000000000 seg=0:0x10000:0:1 time_ns=1000000\n"
    "free id=1 t=3000\n";

#define B_STACK2                                                                                      \
  "jit:wasm::func_a@0x10000010;jit:wasm::func_b@0x10000150;jit:@0x10000f00;?:@0x20000000;"           \
  "jit:node::lazy compile@0x30000004;/usr/lib/libx.so@0badc0de+0x1234"

/* Two sections in one file (as `tierpool merge` writes): ids are scoped to
 * their section, so 304's sample 1 and tenant 1 are not 303's. */
static const char spec_c[] =
    "process pid=303 rate=1\n"
    "tenant id=1 name=bob\n"
    "stack id=1 frames=0x7000\n"
    "sample id=1 t=5 size=16 stack=1 tenant=1\n"
    "sample id=2 t=6 size=16 stack=1\n"
    "end t=10 samples=2\n"
    "process pid=304 rate=1\n"
    "tenant id=1 name=alice\n"
    "stack id=1 frames=0x7000\n"
    "sample id=1 t=7 size=32 stack=1 tenant=1\n"
    "free id=1 t=8\n"
    "alloc size=32 count=3\n"
    "flush t=9\n"
    "end t=11\n";

void check_lifetime_buckets(void) {
  bool bounds = true, monotone = true;
  uint32_t prev = 0;
  for (uint64_t us = 0; us < 70000; us += 1 + us / 64) {
    uint32_t b = tp_lifetime_bucket(us);
    bounds &= tp_lifetime_bucket_lower(b) <= us && us < tp_lifetime_bucket_upper(b);
    monotone &= b >= prev;
    prev = b;
  }
  check(bounds && monotone, "lifetime buckets: lower <= us < upper, and growing with us");
  check(tp_lifetime_bucket(0) == 0 && tp_lifetime_bucket(1) == 1 && tp_lifetime_bucket(8) == 25 &&
            tp_lifetime_bucket(15) == 32 && tp_lifetime_bucket(16) == 33 && tp_lifetime_bucket(UINT64_MAX) == TP_LIFETIME_BUCKETS - 1,
        "lifetime buckets: 0 µs, 1 µs, 8 per power of two from 8 µs, the last one open");
  double hist[TP_LIFETIME_BUCKETS] = {0};
  hist[tp_lifetime_bucket(100)] = 1, hist[tp_lifetime_bucket(10000)] = 3;
  double q25 = tp_lifetime_quantile(hist, 0.25), q50 = tp_lifetime_quantile(hist, 0.5);
  check(q25 >= 96 && q25 < 104 && q50 >= 9216 && q50 < 10240 && tp_lifetime_quantile(hist, 1) == q50,
        "lifetime quantiles: 25%% %g (~100 µs), 50%% %g (~10 ms)", q25, q50);
  double none[TP_LIFETIME_BUCKETS] = {0};
  check(tp_lifetime_quantile(none, 0.5) == 0, "the quantile of no lifetimes is 0");

  struct tp_profile p;
  tp_profile_init(&p);
  uint8_t id1[] = {1, 2}, id2[] = {1, 3};
  uint32_t m1 = tp_profile_module(&p, "/lib/a.so", id1, 2), m2 = tp_profile_module(&p, "/lib/a.so", id2, 2);
  uint32_t f1 = tp_profile_frame(&p, m1, 0x10, NULL, false), f2 = tp_profile_frame(&p, m1, 0x10, NULL, false);
  uint32_t j1 = tp_profile_frame(&p, TP_PROFILE_NONE, 0x10, "f", true), j2 = tp_profile_frame(&p, TP_PROFILE_NONE, 0x10, "g", true);
  check(m1 != m2 && m1 == tp_profile_module(&p, "/lib/a.so", id1, 2) && f1 == f2 && j1 != j2 &&
            j1 == tp_profile_frame(&p, TP_PROFILE_NONE, 0x10, "f", true) && tp_profile_tenant(&p, "default") == 0,
        "interning: modules by path and build-id, frames by content, tenant 0 is \"default\"");
  tp_profile_free(&p);
}

/* x from x ^ (x >> shift). */
static uint64_t unxorshift(uint64_t y, int shift) {
  uint64_t x = y;
  for (int i = 0; i < 64 / shift + 1; i++) x = y ^ (x >> shift);
  return x;
}

/* The inverse of an odd number, mod 2^64 (Newton's iteration). */
static uint64_t inverse(uint64_t a) {
  uint64_t x = a;
  for (int i = 0; i < 6; i++) x *= 2 - a * x;
  return x;
}

/* The id splitmix64's finaliser (the live table's hash, unkeyed) takes to y. */
static uint64_t unmix(uint64_t y) {
  y = unxorshift(y, 31) * inverse(0x94d049bb133111ebull);
  y = unxorshift(y, 27) * inverse(0xbf58476d1ce4e5b9ull);
  return unxorshift(y, 30);
}

/* Sample ids chosen so that, unkeyed, all would hash to slot 0 of any table
 * up to 2^20 slots: one run of them all, each lookup walking it.  Keyed, the
 * longest run of used slots stays short; and every entry is still found. */
void check_live_table(void) {
  enum { N = 4096 };
  struct entry {
    uint64_t id, value;
  };
  struct tp_live_table t;
  tp_live_init(&t, sizeof(struct entry));
  for (uint64_t k = 1; k <= N; k++) tp_live_put(&t, &(struct entry){unmix(k << 20), k});
  size_t run = 0, longest = 0;
  for (size_t i = 0; i < 2 * t.cap; i++) /* twice round: a run may wrap */
    run = t.used[i % t.cap] ? run + 1 : 0, longest = run > longest ? run : longest;
  check(longest < N / 8, "live table: ids made to collide unkeyed spread out (longest run %zu of %d)", longest, N);
  bool found = t.count == N;
  struct entry e;
  for (uint64_t k = 1; k <= N; k += 2) found &= tp_live_take(&t, unmix(k << 20), &e) && e.value == k;
  for (uint64_t k = 2; k <= N; k += 2) found &= tp_live_take(&t, unmix(k << 20), &e) && e.value == k;
  found &= t.count == 0 && !tp_live_take(&t, unmix(1u << 20), &e);
  check(found, "live table: each of them found once, then none");
  tp_live_free(&t);
}

void check_one_trace(void) {
  const char *a = make("a", spec_a);
  struct tp_profile p;
  load_all(&p, (const char *const[]){a, NULL}, 0);
  /* Histogram: 100 B x (1000 + 24), 5000 B x 10, 40 B x 50 (tenant alice). */
  uint32_t b100 = tp_bucket_of_size(100), b5000 = tp_bucket_of_size(5000), b40 = tp_bucket_of_size(40);
  check(p.allocs[b100] == 1024 && p.bytes[b100] == 102400 && p.frees[b100] == 900 && p.allocs[b5000] == 10 &&
            p.bytes[b5000] == 50000 && p.frees[b5000] == 4 && p.allocs[b40] == 50 && p.bytes[b40] == 2000,
        "histogram buckets: deltas of both flushes and both tenants summed");
  check(tp_profile_total_allocs(&p) == 1084 && tp_profile_total_bytes(&p) == 154400,
        "histogram totals: 1084 allocations, 154400 bytes (got %" PRIu64 ", %" PRIu64 ")",
        tp_profile_total_allocs(&p), tp_profile_total_bytes(&p));
  /* Sites: weight 4 each. */
  check(p.n_sites == 3 && p.samples == 4, "3 sites, 4 samples (got %zu, %" PRIu64 ")", p.n_sites, p.samples);
  check_site(&p, A_STACK1, 0, "default", 2, 8, 800, 0, 0);
  check_site(&p, A_STACK2, 1, "default", 1, 4, 20000, 0, 0);
  check_site(&p, A_STACK1, 0, "alice", 1, 4, 160, 4, 160);
  check(near(p.sampled_by_bucket[b100], 8) && near(p.sampled_by_bucket[b5000], 4) && near(p.sampled_by_bucket[b40], 4),
        "sampled allocations by size bucket, weighted");
  /* Lifetimes: tier 0 has 4 x 1000 µs and 4 x 2000 µs, tier 1 4 x 1000 µs; sample 4 lives on. */
  uint32_t l1000 = tp_lifetime_bucket(1000), l2000 = tp_lifetime_bucket(2000);
  check(near(p.lifetime[0][l1000], 4) && near(p.lifetime[0][l2000], 4) && near(p.lifetime[1][l1000], 4),
        "lifetimes by tier, weighted");
  double q50 = tp_lifetime_quantile(p.lifetime[0], 0.5), q90 = tp_lifetime_quantile(p.lifetime[0], 0.9);
  check(q50 >= (double)tp_lifetime_bucket_lower(l1000) && q50 < (double)tp_lifetime_bucket_upper(l1000) &&
            q90 >= (double)tp_lifetime_bucket_lower(l2000) && q90 < (double)tp_lifetime_bucket_upper(l2000),
        "lifetime quantiles: median %g µs (~1000), p90 %g µs (~2000)", q50, q90);
  check(near(p.never_freed[0], 4) && near(p.never_freed[1], 0) && p.frees_matched == 3 && p.frees_unmatched == 1,
        "live at the end: 4 blocks of tier 0 never freed; 3 frees matched, 1 not");
  /* Process facts, peaks (sum of tiers), series, reservation, mmap calls. */
  const struct tp_prof_process *x = find_process(&p, 101);
  check(x && x->ppid == 1 && strcmp(x->executable, "/usr/bin/app") == 0 && strcmp(x->argv, "app --fast") == 0 &&
            strcmp(x->hostname, "node1") == 0 && x->start_unix_ns == 1000 && x->sample_rate == 0.25 &&
            x->n_size_classes == 3 && x->size_classes[2] == 64 && x->buddy_max == 65536 && x->source == a,
        "process facts from the Process record");
  check(x && x->duration_us == 2500000 && x->ended && !x->truncated && x->samples == 4 && x->dropped == 1 &&
            x->allocations == 1084,
        "process: duration 2.5 s, ended, End's counts");
  check(x && x->peak_live == 6000 && x->peak_resident == 12288 && x->peak_rss == 9000000,
        "peaks: live 6000, resident 12288, rss 9000000 (got %" PRIu64 " %" PRIu64 " %" PRIu64 ")",
        x ? x->peak_live : 0, x ? x->peak_resident : 0, x ? x->peak_rss : 0);
  const struct tp_series *s = &p.series[0];
  check(s->step_us == 1000000 && s->n == 3 && s->live[1] == 6000 && s->live[2] == 3000 && s->resident[1] == 12288,
        "series: a point per second (n %u, step %" PRIu64 ")", s->n, s->step_us);
  const struct tp_prof_reservation *r = p.n_reservations == 1 ? &p.reservations[0] : NULL;
  check(r && r->process == 0 && r->start == 0x100000000 && r->size == 0x200000000 && r->first_accessible == 0x10000 &&
            r->last_accessible == 0x30000 && r->max_accessible == 0x30000 && r->first_us == 1000000 &&
            r->last_us == 2000000,
        "one reservation, its accessible part grown from 64 KiB to 192 KiB");
  check(p.mmap_calls[0] == 1 && p.mmap_bytes[0] == 0x200000000 && p.mmap_calls[3] == 1 && p.mmap_bytes[3] == 0x10000 &&
            p.mmap_calls[1] == 0 && p.snapshots == 2,
        "mmap calls by kind, with bytes; 2 snapshots");
  check(p.n_modules == 2 && p.n_frames == 4 && p.n_stacks == 2 && p.n_tenants == 2, "2 modules, 4 frames, 2 stacks");
  tp_profile_free(&p);
}

/* Module segments that overlap: libb inside liba's range, libd loaded over
 * liba's end (as after a dlclose and a dlopen).  An address goes to the range
 * holding it that starts last: libb inside libb, liba past libb's end, libd
 * from its start on, even past liba's end; none past every range. */
static const char spec_overlap[] =
    "process pid=505 rate=1\n"
    "module path=/usr/lib/liba.so build_id=aa bias=0x400000 seg=0:0x400000:0:1\n"
    "module path=/usr/lib/libb.so build_id=bb bias=0x500000 seg=0:0x1000:0:1\n"
    "module path=/usr/lib/libd.so build_id=dd bias=0x780000 seg=0:0x100000:0:1\n"
    "stack id=1 frames=0x600000,0x500010,0x400010,0x7f0000,0x700000,0x850000,0x900000\n"
    "sample id=1 t=1 size=16 stack=1\n";

#define OVERLAP_STACK                                                                                 \
  "/usr/lib/liba.so@aa+0x200000;/usr/lib/libb.so@bb+0x10;/usr/lib/liba.so@aa+0x10;"                  \
  "/usr/lib/libd.so@dd+0x70000;/usr/lib/liba.so@aa+0x300000;/usr/lib/libd.so@dd+0xd0000;?:@0x900000"

void check_overlapping_modules(void) {
  struct tp_profile p;
  load_all(&p, (const char *const[]){make("overlap", spec_overlap), NULL}, 0);
  char *got = p.n_sites == 1 ? describe_stack(&p, p.sites[0].stack) : NULL;
  check(got && strcmp(got, OVERLAP_STACK) == 0,
        "overlapping modules: each address in the range that starts last (got %s)", got ? got : "no single site");
  free(got);
  tp_profile_free(&p);
}

void check_two_layouts(void) {
  const char *a = make("a", spec_a), *b = make("b", spec_b);
  struct tp_profile p;
  load_all(&p, (const char *const[]){a, b, NULL}, 0);
  /* The same module+offset in both processes: one frame, one stack, one site (4+4 + 2 allocations). */
  check_site(&p, A_STACK1, 0, "default", 3, 10, 1000, 0, 0);
  check_site(&p, B_STACK2, 2, "default", 1, 2, 128, 2, 128);
  check(p.n_modules == 2 && p.n_frames == 9 && p.n_stacks == 3 && p.n_sites == 4,
        "frames dedupe across load biases: 2 modules, 9 frames, 3 stacks, 4 sites (got %zu %zu %zu %zu)",
        p.n_modules, p.n_frames, p.n_stacks, p.n_sites);
  uint32_t named = 0, unnamed_jit = 0, unknown = 0;
  for (size_t i = 0; i < p.n_frames; i++) {
    const struct tp_prof_frame *f = &p.frames[i];
    named += f->module == TP_PROFILE_NONE && f->jit && f->jit_name != NULL;
    unnamed_jit += f->module == TP_PROFILE_NONE && f->jit && !f->jit_name && f->addr == 0x10000f00;
    unknown += f->module == TP_PROFILE_NONE && !f->jit && !f->jit_name && f->addr == 0x20000000;
  }
  check(named == 3 && unnamed_jit == 1 && unknown == 1,
        "JIT frames: 3 named from the perf map, 1 in a JIT range unnamed, 1 unknown");
  check(near(p.never_freed[2], 2) && near(p.lifetime[0][tp_lifetime_bucket(2990)], 2),
        "process 202: its tier-2 block lives on, its other one lived 2990 µs");
  const struct tp_prof_process *x = find_process(&p, 202);
  check(x && !x->ended && !x->truncated && x->duration_us == 3000, "process 202: no End, duration 3000 µs");
  tp_profile_free(&p);
}

void check_merge_order(void) {
  const char *a = make("a", spec_a), *b = make("b", spec_b), *c = make("c", spec_c);
  struct tp_profile abc, cba, bca, pa, pb, pc, pbc, empty;
  load_all(&abc, (const char *const[]){a, b, c, NULL}, 0);
  load_all(&cba, (const char *const[]){c, b, a, NULL}, 0);
  load_all(&bca, (const char *const[]){b, c, a, NULL}, 0);
  load_all(&pa, (const char *const[]){a, NULL}, 0);
  load_all(&pb, (const char *const[]){b, NULL}, 0);
  load_all(&pc, (const char *const[]){c, NULL}, 0);
  load_all(&pbc, (const char *const[]){NULL}, 0);
  tp_profile_init(&empty);

  check_site(&abc, "?:@0x7000", 0, "bob", 1, 1, 16, 1, 16);
  check_site(&abc, "?:@0x7000", 0, "default", 1, 1, 16, 1, 16);
  check_site(&abc, "?:@0x7000", 0, "alice", 1, 1, 32, 0, 0);
  check(abc.n_processes == 4 && abc.n_tenants == 3 && abc.frees_matched == 5,
        "sections of one file keep their ids apart (4 processes, tenants default/alice/bob, 5 frees matched)");
  check_same(&abc, &cba, "load order A B C = C B A");
  check_same(&abc, &bca, "load order A B C = B C A");
  struct tp_profile ab;
  tp_profile_init(&ab);
  tp_profile_merge(&ab, &pa);
  tp_profile_merge(&ab, &pb);
  tp_profile_merge(&ab, &pc);
  check_same(&abc, &ab, "((A + B) + C) merged = A B C loaded into one profile");
  tp_profile_merge(&pbc, &pb);
  tp_profile_merge(&pbc, &pc);
  tp_profile_merge(&pa, &pbc);
  check_same(&abc, &pa, "A + (B + C) merged = A B C loaded");
  tp_profile_merge(&ab, &empty);
  check_same(&abc, &ab, "merging an empty profile changes nothing");
  struct tp_profile *all[] = {&abc, &cba, &bca, &pa, &pb, &pc, &pbc, &empty, &ab};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tp_profile_free(all[i]);
}

static void copy_cut(const char *from, const char *to, long cut, long flip_at) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  if (!in || !out) exit(2);
  char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, in);
  if (flip_at >= 0 && (size_t)flip_at < n) buf[flip_at] ^= 0x55;
  fwrite(buf, 1, n - (size_t)cut, out);
  fclose(in);
  fclose(out);
}

void check_truncated(void) {
  const char *a = make("a", spec_a), *cut = scratch("a-cut.tpt");
  copy_cut(a, cut, 10, -1);
  struct tp_profile p;
  tp_profile_init(&p);
  char err[512];
  int rc = tp_profile_load(&p, cut, err, sizeof err);
  check(rc == 1 && strncmp(err, cut, strlen(cut)) == 0 && strstr(err, "truncated"),
        "truncated trace: status 1, warning naming the file: %s", err);
  const struct tp_prof_process *x = find_process(&p, 101);
  check(tp_profile_total_allocs(&p) == 1060 && p.samples == 4 && p.snapshots == 1 && p.mmap_calls[0] == 0,
        "truncated trace: the first frame's data only (1060 allocations, 4 samples, 1 snapshot)");
  check(x && x->truncated && !x->ended && x->duration_us == 1000000 && x->peak_live == 6000,
        "truncated trace: process marked truncated, not ended, last seen at 1 s");
  tp_profile_free(&p);
}

/* A trace whose histogram names a bucket past the last one (make_trace cannot write that). */
static const char *bad_bucket_trace(void) {
  const char *path = scratch("bad-bucket.tpt");
  uint8_t records[4096], frame[8192];
  size_t len = 0;
  Tierpool__Trace__Header h = TIERPOOL__TRACE__HEADER__INIT;
  h.magic = TP_TRACE_MAGIC, h.format_version = TP_TRACE_FORMAT_VERSION;
  Tierpool__Trace__Process proc = TIERPOOL__TRACE__PROCESS__INIT;
  proc.pid = 5;
  uint32_t bucket = TP_BUCKET_COUNT;
  uint64_t one = 1;
  Tierpool__Trace__Histogram hist = TIERPOOL__TRACE__HISTOGRAM__INIT;
  hist.n_bucket = hist.n_allocs = 1, hist.bucket = &bucket, hist.allocs = &one;
  Tierpool__Trace__Record r[3] = {TIERPOOL__TRACE__RECORD__INIT, TIERPOOL__TRACE__RECORD__INIT,
                                  TIERPOOL__TRACE__RECORD__INIT};
  r[0].kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER, r[0].header = &h;
  r[1].kind_case = TIERPOOL__TRACE__RECORD__KIND_PROCESS, r[1].process = &proc;
  r[2].kind_case = TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM, r[2].histogram = &hist;
  for (int i = 0; i < 3; i++) len += tp_trace_record_pack(&r[i], records + len);
  tp_trace_compressor c;
  if (tp_trace_compressor_init(&c, NULL, NULL) != 0) exit(2);
  size_t size = tp_trace_compress_frame(&c, records, len, frame, sizeof frame);
  tp_trace_compressor_fini(&c);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(frame, 1, size, f) != size || fclose(f) != 0) exit(2);
  return path;
}

void check_errors(void) {
  const char *a = make("a", spec_a);
  struct tp_profile p;
  load_all(&p, (const char *const[]){a, NULL}, 0);
  char *before = canon(&p);
  const char *foreign = scratch("foreign.tpt"), *empty = scratch("empty.tpt"), *flipped = scratch("flipped.tpt");
  FILE *f = fopen(foreign, "w");
  fputs("this is not a trace\n", f);
  fclose(f);
  fclose(fopen(empty, "w"));
  copy_cut(a, flipped, 0, 100);
  struct {
    const char *what, *path, *says;
  } cases[] = {
      {"foreign file", foreign, "not a tierpool trace"},
      {"empty file", empty, "empty"},
      {"missing file", scratch("missing.tpt"), "cannot open"},
      {"damaged frame", flipped, "corrupt"},
      {"header only", make("header-only", "# no records\n"), "no process"},
      {"tier out of range", make("bad-tier", "process pid=1 rate=1\nsample id=1 t=1 size=8 stack=0 tier=7\n"),
       "tier 7"},
      {"histogram bucket out of range", bad_bucket_trace(), "bucket"},
      {"mmap past the end of the address space",
       make("mmap-wraps", "process pid=1 rate=1\n"
                          "mmap kind=mmap t=1 addr=0xfffffffff0000000 length=0x20000000 prot=3 flags=0x22\n"),
       "mmap of 536870912 bytes at 0xfffffffff0000000 wraps past the end of the address space"},
      {"reservation past the end of the address space",
       make("reservation-wraps", "process pid=1 rate=1\n"
                                 "snapshot t=1 tier=0:0:0:0 reservation=0xfffffffff0000000:0x20000000:0\n"),
       "reservation of 536870912 bytes at 0xfffffffff0000000 wraps past the end of the address space"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[512] = "";
    int rc = tp_profile_load(&p, cases[i].path, err, sizeof err);
    check(rc == -1 && strncmp(err, cases[i].path, strlen(cases[i].path)) == 0 && strstr(err, cases[i].says),
          "%s: status %d (want -1), message: %s", cases[i].what, rc, err);
  }
  char *after = canon(&p);
  check(strcmp(before, after) == 0, "a file that fails to load leaves the profile as it was");
  free(before), free(after);
  tp_profile_free(&p);
}

void check_series(void) {
  /* 1000 snapshots a second apart, live = the second: 512 points at most, so 2 s a point. */
  size_t cap = 64 << 10, len = 0;
  char *spec = malloc(cap);
  len += (size_t)snprintf(spec + len, cap - len, "process pid=9 rate=1\n");
  for (int i = 0; i < 1000; i++)
    len += (size_t)snprintf(spec + len, cap - len, "snapshot t=%d tier=0:%d:%d:%d\n", i * 1000000, i, 2 * i, i);
  struct tp_profile p;
  load_all(&p, (const char *const[]){make("series", spec), NULL}, 0);
  free(spec);
  const struct tp_series *s = &p.series[0];
  check(s->step_us == 2000000 && s->n == 500 && s->live[10] == 21 && s->resident[10] == 42 && s->live[499] == 999 &&
            p.processes[0].peak_live == 999,
        "series of 1000 s: %u points of %" PRIu64 " µs, each the max of its two seconds", s->n, s->step_us);
  tp_profile_free(&p);
}
