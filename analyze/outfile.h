/* outfile.h — an output file that appears whole or not at all: written to a
 * temporary file in the same directory, renamed over PATH on success, removed
 * on failure (so a failed command leaves no partial output behind).  PATH "-"
 * is stdout. */
#ifndef TP_OUTFILE_H
#define TP_OUTFILE_H

#include <stdio.h>

struct tp_outfile {
  FILE *file;       /* write here */
  char *path;       /* the final name; NULL for stdout */
  char *tmp_path;
};

/* Opens a temporary file next to path (or stdout for "-"): 0, or -1 with
 * "PATH: what" in err. */
int tp_outfile_open(struct tp_outfile *o, const char *path, char *err, size_t errlen);
/* Flushes, closes and renames it to its final name: 0, or -1 with "PATH: what"
 * in err (the temporary file is then removed). */
int tp_outfile_commit(struct tp_outfile *o, char *err, size_t errlen);
/* Closes and removes the temporary file (after an error); harmless twice. */
void tp_outfile_abort(struct tp_outfile *o);

#endif /* TP_OUTFILE_H */
