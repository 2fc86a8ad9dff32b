/* clock.c — the recorder's timestamps: nanoseconds of CLOCK_MONOTONIC since
 * the recording started, read from the TSC (a few cycles, no system call)
 * once its rate is known, with clock_gettime until then or for good where
 * the TSC cannot be trusted. */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "recorder_private.h"
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

uint64_t tp_rec_clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Event times come from the TSC when it is invariant and the kernel's clock
 * source (so synchronised across CPUs): rdtsc takes 15 ns on this VM,
 * clock_gettime 36-58 ns, and a sample and its free each read the clock.  Ticks are converted
 * with a multiply and shift from an anchor: the rate is first measured over
 * CLOCK_MONOTONIC's first 10 ms (clock_gettime until then), then, every
 * second, over the whole run, with the slope steered so that the tick time
 * meets CLOCK_MONOTONIC a second later: continuous, never going back, within
 * microseconds of CLOCK_MONOTONIC.  A seqlock guards the anchor. */

#define TP_REC_CLOCK_CALIBRATE_NS 10000000ull /* the first rate: over 10 ms */
#define TP_REC_CLOCK_STEER_NS 1000000000ull   /* then re-anchored each second */

static struct {
  _Atomic uint32_t seq;                 /* odd while the anchor changes */
  _Atomic uint64_t tsc, ns, mult, next; /* anchor: ns since start at tsc; ns per tick << 32; next steering */
  _Atomic bool ticking;                 /* calibrated: the TSC is read */
  _Atomic bool busy;                    /* a thread calibrates or steers */
  bool usable;                          /* invariant TSC, the kernel's clock source */
  uint64_t first_tsc, first_mono;       /* the calibration's start (CLOCK_MONOTONIC, absolute) */
} tp_rec_clock;

#if defined(__x86_64__)
static inline uint64_t tp_rec_ticks(void) { return __rdtsc(); }

static bool tp_rec_tsc_usable(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8))) return false; /* not invariant */
  char source[32];
  size_t n = tp_os_read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource", source,
                             sizeof source - 1);
  return n == 0 || (n >= 3 && memcmp(source, "tsc", 3) == 0 && (n == 3 || source[3] == '\n'));
}
#else
static inline uint64_t tp_rec_ticks(void) { return 0; }
static bool tp_rec_tsc_usable(void) { return false; }
#endif

/* CLOCK_MONOTONIC (absolute) and the TSC at the same moment, within the
 * time of a clock_gettime: the smallest gap of a few tries. */
static uint64_t tp_rec_clock_pair(uint64_t *tsc) {
  uint64_t best_gap = UINT64_MAX, mono = 0;
  *tsc = 0;
  for (int i = 0; i < 4; i++) {
    uint64_t before = tp_rec_ticks(), now = tp_rec_clock_ns(CLOCK_MONOTONIC), after = tp_rec_ticks();
    if (after - before < best_gap) best_gap = after - before, mono = now, *tsc = before + (after - before) / 2;
  }
  return mono;
}

/* The trace's times count from here (its Process record carries both clocks). */
static void tp_rec_clock_zero(void) {
  tp_rec.start_unix_ns = tp_rec_clock_ns(CLOCK_REALTIME);
  tp_rec.start_mono_ns = tp_rec_clock_ns(CLOCK_MONOTONIC);
}

void tp_rec_clock_start(void) {
  tp_rec_clock_zero();
  tp_rec_clock.usable = tp_rec_tsc_usable();
  tp_rec_clock.first_mono = tp_rec_clock_pair(&tp_rec_clock.first_tsc);
}

/* A forked child's times start at its fork: its next reading anchors again
 * (the rate measured since the parent's start still holds). */
void tp_rec_clock_after_fork(void) {
  tp_rec_clock_zero();
  atomic_store(&tp_rec_clock.ticking, false);
  atomic_store(&tp_rec_clock.busy, false);
  atomic_store(&tp_rec_clock.seq, 0);
}

static uint64_t tp_rec_clock_convert(uint64_t tsc, uint64_t anchor_tsc, uint64_t anchor_ns, uint64_t mult) {
  return anchor_ns + (uint64_t)(((unsigned __int128)(tsc > anchor_tsc ? tsc - anchor_tsc : 0) * mult) >> 32);
}

/* A new anchor at tsc, whose time is ns: the rate measured since the start,
 * steered by the distance to CLOCK_MONOTONIC (mono, ns since start). */
static void tp_rec_clock_anchor(uint64_t tsc, uint64_t ns, uint64_t mono) {
  double ticks_per_ns = (double)(tsc - tp_rec_clock.first_tsc) /
                        (double)(mono + tp_rec.start_mono_ns - tp_rec_clock.first_mono);
  if (mono > ns + TP_REC_CLOCK_CALIBRATE_NS) ns = mono; /* far behind (a stopped VM?): catch up now */
  double steer = ((double)mono - (double)ns) / (double)TP_REC_CLOCK_STEER_NS;
  if (steer < -0.5) steer = -0.5; /* far ahead: half speed until CLOCK_MONOTONIC is there */
  uint64_t mult = (uint64_t)((1.0 + steer) / ticks_per_ns * 4294967296.0);
  atomic_fetch_add_explicit(&tp_rec_clock.seq, 1, memory_order_acq_rel);
  atomic_store_explicit(&tp_rec_clock.tsc, tsc, memory_order_relaxed);
  atomic_store_explicit(&tp_rec_clock.ns, ns, memory_order_relaxed);
  atomic_store_explicit(&tp_rec_clock.mult, mult ? mult : 1, memory_order_relaxed);
  atomic_store_explicit(&tp_rec_clock.next, tsc + (uint64_t)(ticks_per_ns * TP_REC_CLOCK_STEER_NS), memory_order_relaxed);
  atomic_fetch_add_explicit(&tp_rec_clock.seq, 1, memory_order_release);
  atomic_store_explicit(&tp_rec_clock.ticking, true, memory_order_release);
}

/* clock_gettime, until the TSC's rate is known (or for good without a usable TSC). */
static TP_NOINLINE uint64_t tp_rec_now_calibrating(void) {
  uint64_t mono = tp_rec_clock_ns(CLOCK_MONOTONIC);
  if (tp_rec_clock.usable && mono - tp_rec_clock.first_mono >= TP_REC_CLOCK_CALIBRATE_NS &&
      !atomic_exchange_explicit(&tp_rec_clock.busy, true, memory_order_acquire)) {
    uint64_t tsc;
    mono = tp_rec_clock_pair(&tsc);
    if (!atomic_load(&tp_rec_clock.ticking) && tsc > tp_rec_clock.first_tsc)
      tp_rec_clock_anchor(tsc, mono - tp_rec.start_mono_ns, mono - tp_rec.start_mono_ns);
    atomic_store_explicit(&tp_rec_clock.busy, false, memory_order_release);
  }
  return mono - tp_rec.start_mono_ns;
}

static TP_NOINLINE void tp_rec_clock_steer(void) {
  if (atomic_exchange_explicit(&tp_rec_clock.busy, true, memory_order_acquire)) return;
  uint64_t tsc, mono = tp_rec_clock_pair(&tsc) - tp_rec.start_mono_ns;
  if (tsc >= atomic_load_explicit(&tp_rec_clock.next, memory_order_relaxed)) {
    uint64_t ns = tp_rec_clock_convert(tsc, atomic_load(&tp_rec_clock.tsc), atomic_load(&tp_rec_clock.ns),
                                       atomic_load(&tp_rec_clock.mult));
    tp_rec_clock_anchor(tsc, ns, mono);
  }
  atomic_store_explicit(&tp_rec_clock.busy, false, memory_order_release);
}

uint64_t tp_rec_now_ns(void) {
  if (tp_unlikely(!atomic_load_explicit(&tp_rec_clock.ticking, memory_order_acquire))) return tp_rec_now_calibrating();
  uint64_t tsc, ns, next;
  for (;;) {
    uint32_t seq = atomic_load_explicit(&tp_rec_clock.seq, memory_order_acquire);
    uint64_t anchor_tsc = atomic_load_explicit(&tp_rec_clock.tsc, memory_order_relaxed);
    uint64_t anchor_ns = atomic_load_explicit(&tp_rec_clock.ns, memory_order_relaxed);
    uint64_t mult = atomic_load_explicit(&tp_rec_clock.mult, memory_order_relaxed);
    next = atomic_load_explicit(&tp_rec_clock.next, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (tp_likely(!(seq & 1) && atomic_load_explicit(&tp_rec_clock.seq, memory_order_relaxed) == seq)) {
      tsc = tp_rec_ticks();
      ns = tp_rec_clock_convert(tsc, anchor_tsc, anchor_ns, mult);
      break;
    }
  }
  if (tp_unlikely(tsc >= next)) tp_rec_clock_steer();
  return ns;
}
