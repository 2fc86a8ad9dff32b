/* symbolize.h — naming a code address of a trace the way an offline analyzer
 * does: the trace's Module records say which ELF file is mapped where (load
 * bias, segments, build-id), and the file's symbol table names the function. */
#ifndef TP_TEST_SYMBOLIZE_H
#define TP_TEST_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "trace_load.h"

struct symbol {
  const char *module; /* the Module's path, NULL if no module maps the address */
  char name[256];     /* "" if the address is in no function of the symbol table */
  int build_id_ok;    /* the file's build-id is the one the trace recorded */
};

/* Names the function that holds code address pc (an instruction, not a
 * return address: pass frame - 1 for a caller frame). */
struct symbol symbolize(const struct tl_trace *t, uint64_t pc);

#endif
