/* unit.c — shared helpers of the unit tests. */
#include "unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char unit_stderr[8192];

const char *unit_load_options(const char *config, const char *const *env) {
  char path[] = "/tmp/tierpool-unit-XXXXXX";
  if (config) {
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, config, strlen(config)), (ssize_t)strlen(config));
    close(fd);
    setenv("TIERPOOL_CONFIG", path, 1);
  } else {
    unsetenv("TIERPOOL_CONFIG");
  }
  for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);

  /* Capture fd 2 in a file while the options are parsed. */
  char log_path[] = "/tmp/tierpool-unit-log-XXXXXX";
  int log_fd = mkstemp(log_path);
  assert_true(log_fd >= 0);
  int saved = dup(2);
  dup2(log_fd, 2);
  tp_options_init();
  tp_classes_finish(&tp_classes);
  dup2(saved, 2);
  close(saved);
  lseek(log_fd, 0, SEEK_SET);
  ssize_t n = read(log_fd, unit_stderr, sizeof unit_stderr - 1);
  unit_stderr[n > 0 ? n : 0] = '\0';
  close(log_fd);
  unlink(log_path);

  for (size_t i = 0; env && env[i]; i++) {
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(env[i], "="), env[i]);
    unsetenv(name);
  }
  if (config) unlink(path);
  unsetenv("TIERPOOL_CONFIG");
  return unit_stderr;
}

tp_heap unit_heap;

int unit_setup_heap(void **state) {
  (void)state;
  unit_load_options(NULL, NULL);
  tp_heap_init(&unit_heap, "unit");
  return 0;
}
