/* outfile.c — output files that appear whole or not at all (outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tp_outfile_open(struct tp_outfile *o, const char *path, char *err, size_t errlen) {
  *o = (struct tp_outfile){0};
  if (strcmp(path, "-") == 0) {
    o->file = stdout;
    return 0;
  }
  size_t len = strlen(path);
  o->path = strdup(path);
  o->tmp_path = malloc(len + sizeof ".tmp.XXXXXX");
  if (!o->path || !o->tmp_path) {
    snprintf(err, errlen, "%s: out of memory", path);
    tp_outfile_abort(o);
    return -1;
  }
  memcpy(o->tmp_path, path, len);
  memcpy(o->tmp_path + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
  int fd = mkstemp(o->tmp_path);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    free(o->tmp_path);
    o->tmp_path = NULL; /* nothing to remove */
    tp_outfile_abort(o);
    return -1;
  }
  /* mkstemp makes it 0600: give it the mode any new file would get. */
  mode_t mask = umask(0);
  umask(mask);
  (void)fchmod(fd, 0666 & ~mask);
  o->file = fdopen(fd, "wb");
  if (!o->file) {
    snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    close(fd);
    tp_outfile_abort(o);
    return -1;
  }
  return 0;
}

int tp_outfile_commit(struct tp_outfile *o, char *err, size_t errlen) {
  if (!o->path) { /* stdout */
    if (fflush(stdout) != 0 || ferror(stdout)) {
      snprintf(err, errlen, "<stdout>: write error: %s", strerror(errno));
      return -1;
    }
    return 0;
  }
  int failed = ferror(o->file);
  int saved = errno;
  /* On disk before it takes the name: a crash leaves the old file or the new one. */
  if (!failed && (fflush(o->file) != 0 || fsync(fileno(o->file)) != 0)) {
    failed = 1;
    saved = errno;
  }
  if (fclose(o->file) != 0 && !failed) {
    failed = 1;
    saved = errno;
  }
  o->file = NULL;
  if (!failed && rename(o->tmp_path, o->path) != 0) {
    failed = 1;
    saved = errno;
  }
  if (failed) {
    snprintf(err, errlen, "%s: cannot write: %s", o->path, strerror(saved));
    tp_outfile_abort(o);
    return -1;
  }
  free(o->tmp_path);
  free(o->path);
  *o = (struct tp_outfile){0};
  return 0;
}

void tp_outfile_abort(struct tp_outfile *o) {
  if (o->file && o->file != stdout) fclose(o->file);
  if (o->tmp_path) unlink(o->tmp_path);
  free(o->tmp_path);
  free(o->path);
  *o = (struct tp_outfile){0};
}
