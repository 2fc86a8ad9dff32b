/* pprof_fixture.c — `pprof_fixture OUT.pb.gz`: builds a profile by hand (no
 * trace, no loader) and writes it with the pprof encoder, then prints on
 * stdout what check_pprof.py must find in it, one expectation per line:
 *
 *   total.TYPE=N                  the sum of a value column (TYPE: alloc_objects...)
 *   label.KEY.VALUE.TYPE=N        the same over the samples labelled KEY=VALUE
 *   samples=N  locations=N  mappings=N
 *   build_id.PATH=HEX             the mapping of PATH carries that build-id
 *   period=N  period_type=TYPE/UNIT
 *   function=NAME                 a function of that name exists
 *
 * The estimates are fractional (byte-mode weights), so the sums check that
 * rounding keeps every column's total; the expected totals are computed here
 * from the sites, independently of the encoder.  Built with ASan and UBSan. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"

#define N_STACKS 300

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pprof_fixture OUT.pb.gz\n");
    return 2;
  }
  struct tp_profile p;
  tp_profile_init(&p);
  static const uint8_t exe_id[] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04};
  static const uint8_t lib_id[] = {0x0f, 0x1e, 0x2d, 0x3c};
  uint32_t exe = tp_profile_module(&p, "/opt/app/bin/server", exe_id, sizeof exe_id);
  uint32_t lib = tp_profile_module(&p, "/usr/lib/libwasm.so.1", lib_id, sizeof lib_id);
  uint32_t bare = tp_profile_module(&p, "/usr/lib/libnoid.so", NULL, 0); /* no build-id */

  p.processes = calloc(1, sizeof *p.processes);
  p.n_processes = 1;
  p.processes[0].pid = 42;
  p.processes[0].executable = strdup("/opt/app/bin/server");
  p.processes[0].sample_bytes = 4096; /* byte mode: period in bytes */
  p.processes[0].start_unix_ns = 1700000000000000000u;
  p.processes[0].duration_us = 2500000;

  uint32_t jit = tp_profile_frame(&p, TP_PROFILE_NONE, 0x7f0012345678, "wasm-function[12]", true);
  uint32_t jit_anon = tp_profile_frame(&p, TP_PROFILE_NONE, 0x7f0012349999, NULL, true);
  uint32_t unknown = tp_profile_frame(&p, TP_PROFILE_NONE, 0x7ffd00001000, NULL, false);
  uint32_t main_frame = tp_profile_frame(&p, exe, 0x1100, NULL, false);
  uint32_t blue = tp_profile_tenant(&p, "blue");
  uint32_t green = tp_profile_tenant(&p, "green,\"odd\"");

  double total[4] = {0}, blue_space = 0, large_objects = 0;
  for (uint32_t s = 0; s < N_STACKS; s++) {
    uint32_t frames[5] = {
        tp_profile_frame(&p, s % 3 == 0 ? lib : exe, 0x2000 + 16 * s, NULL, false),
        s % 7 == 0 ? jit : s % 11 == 0 ? jit_anon : s % 13 == 0 ? unknown : tp_profile_frame(&p, bare, 0x300 + s, NULL, false),
        tp_profile_frame(&p, exe, 0x1800 + 4 * (s % 5), NULL, false),
        main_frame,
    };
    uint32_t depth = s == 0 ? 0 : 4;
    uint32_t stack = tp_profile_stack(&p, frames, depth, s % 17 == 0);
    uint32_t tier = s % 3, tenant = s % 4 == 0 ? blue : s % 4 == 1 ? green : 0;
    struct tp_prof_site *site = tp_profile_site(&p, stack, tier, tenant);
    /* Byte-mode weights: estimates with fractions that rounding must not lose. */
    site->samples = 1 + s % 4;
    site->allocs = site->samples * (1.0 + (s % 9) * 0.37);
    site->bytes = site->allocs * (24 + 8 * s);
    site->live_allocs = s % 2 ? site->allocs * 0.5 : 0;
    site->live_bytes = s % 2 ? site->bytes * 0.5 : 0;
    p.samples += site->samples;
  }
  for (size_t i = 0; i < p.n_sites; i++) {
    const struct tp_prof_site *s = &p.sites[i];
    total[0] += s->allocs, total[1] += s->bytes, total[2] += s->live_allocs, total[3] += s->live_bytes;
    if (s->tenant == blue) blue_space += s->bytes;
    if (s->tier == 2) large_objects += s->allocs;
  }

  FILE *out = fopen(argv[1], "wb");
  if (!out) {
    perror(argv[1]);
    return 1;
  }
  char *traces[] = {(char *)"fixture"};
  struct tp_export x = {.profile = &p, .traces = traces, .n_traces = 1};
  char err[256];
  if (tp_export_pprof(&x, out, err, sizeof err) < 0) {
    fprintf(stderr, "pprof_fixture: %s\n", err);
    return 1;
  }
  fclose(out);

  static const char *const types[4] = {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
  for (int t = 0; t < 4; t++) printf("total.%s=%lld\n", types[t], llround(total[t]));
  printf("label.tenant.blue.alloc_space=%.3f\n", blue_space);
  printf("label.tier.large.alloc_objects=%.3f\n", large_objects);
  printf("samples=%zu\n", p.n_sites);
  /* A location per distinct frame the sites' stacks use. */
  size_t used = 0;
  bool *seen = calloc(p.n_frames, sizeof *seen);
  for (size_t i = 0; i < p.n_sites; i++) {
    const struct tp_prof_stack *st = &p.stacks[p.sites[i].stack];
    for (uint32_t d = 0; d < st->depth; d++)
      if (!seen[st->frames[d]]) seen[st->frames[d]] = true, used++;
  }
  free(seen);
  printf("locations=%zu\n", used);
  printf("mappings=3\n");
  printf("build_id./opt/app/bin/server=deadbeef01020304\n");
  printf("build_id./usr/lib/libwasm.so.1=0f1e2d3c\n");
  printf("build_id./usr/lib/libnoid.so=\n");
  printf("period=4096\nperiod_type=space/bytes\n");
  printf("function=[jit] wasm-function[12]\nfunction=[jit]\nfunction=0x7ffd00001000\n");
  printf("first_mapping=/opt/app/bin/server\n");
  tp_export_fini(&x);
  tp_profile_free(&p);
  return 0;
}
