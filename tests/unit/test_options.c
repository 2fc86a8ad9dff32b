/* test_options.c — the option table, config files, environment overrides and
 * their diagnostics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

static void test_defaults(void **state) {
  (void)state;
  const char *err = unit_load_options(NULL, NULL);
  assert_string_equal(err, "");
  assert_int_equal(tp_opt.buddy_max, 4u << 20);
  assert_int_equal(tp_opt.large_cache_ms, 1000);
  assert_int_equal(tp_opt.grow_chunk, 1u << 20);
  assert_true(tp_opt.release_threshold > 0.69 && tp_opt.release_threshold < 0.71);
  assert_false(tp_opt.thp);
  assert_int_equal(tp_release_policy, TP_RELEASE_EAGER);
  assert_int_equal(tp_classes.classes[0].size, 16);
  assert_int_equal(tp_classes.max_size, 32768);
  assert_int_equal(tp_opt.size_classes, tp_classes.count);
}

static void test_config_file_and_env(void **state) {
  (void)state;
  const char *env[] = {"TIERPOOL_LARGE_CACHE_MS=250", NULL};
  const char *err = unit_load_options(
      "# a proposal\n"
      "size_classes = 16, 48, 128, 1024   # trailing comment\n"
      "buddy_max = 2M\n"
      "release_threshold=0.5\n"
      "large_cache_ms = 900\n"
      "thp = on\n"
      "release = idle\n"
      "\n",
      env);
  assert_string_equal(err, "");
  assert_int_equal(tp_classes.count, 4);
  assert_int_equal(tp_classes.classes[2].size, 128);
  assert_int_equal(tp_classes.max_size, 1024);
  assert_int_equal(tp_opt.buddy_max, 2u << 20);
  assert_true(tp_opt.release_threshold == 0.5);
  assert_int_equal(tp_opt.large_cache_ms, 250); /* the environment wins over the file */
  assert_true(tp_opt.thp);
  assert_int_equal(tp_release_policy, TP_RELEASE_IDLE);
  /* Every size maps to the smallest class that holds it. */
  assert_int_equal(tp_class_of_size(0), 0);
  assert_int_equal(tp_class_of_size(16), 0);
  assert_int_equal(tp_class_of_size(17), 1);
  assert_int_equal(tp_class_of_size(48), 1);
  assert_int_equal(tp_class_of_size(49), 2);
  assert_int_equal(tp_class_of_size(1024), 3);
}

static void test_bad_keys_and_values(void **state) {
  (void)state;
  const char *env[] = {"TIERPOOL_BUDDY_MAX=lots", "TIERPOOL_LIMT=1G", "TIERPOOL_limit=1G", NULL};
  const char *err = unit_load_options(
      "no_such_key = 1\n"
      "grow_chunk = 12Q\n"
      "release_threshold = 1.5\n"
      "coalesce_delay_ms = 5M\n"
      "this line has no equals sign\n"
      "large_cache_max = 99999999999999999999999\n"
      "release = never\n",
      env);
  assert_non_null(strstr(err, "unknown key 'no_such_key'"));
  assert_non_null(strstr(err, "bad value '12Q' for grow_chunk"));
  assert_non_null(strstr(err, "bad value '1.5' for release_threshold"));
  assert_non_null(strstr(err, "bad value '5M' for coalesce_delay_ms"));
  assert_non_null(strstr(err, "expected 'key = value'"));
  assert_non_null(strstr(err, "bad value '99999999999999999999999' for large_cache_max"));
  assert_non_null(strstr(err, "bad value 'never' for release (want eager, idle or off); using eager"));
  assert_non_null(strstr(err, "TIERPOOL_BUDDY_MAX: bad value 'lots' for buddy_max"));
  assert_non_null(strstr(err, "unknown variable TIERPOOL_LIMT (ignored)"));  /* a typo */
  assert_non_null(strstr(err, "unknown variable TIERPOOL_limit (ignored)")); /* names are upper case */
  assert_null(strstr(err, "TIERPOOL_BUDDY_MAX (ignored)"));
  /* ... and the defaults stay. */
  assert_int_equal(tp_opt.grow_chunk, 1u << 20);
  assert_int_equal(tp_opt.buddy_max, 4u << 20);
  assert_int_equal(tp_opt.large_cache_max, 64u << 20);
  assert_true(tp_opt.release_threshold > 0.69 && tp_opt.release_threshold < 0.71);
  assert_int_equal(tp_release_policy, TP_RELEASE_EAGER);
  /* Every diagnostic is one line starting with "tierpool: ". */
  for (const char *line = err; *line;) {
    assert_memory_equal(line, "tierpool: ", 10);
    const char *nl = strchr(line, '\n');
    assert_non_null(nl);
    line = nl + 1;
  }
}

/* A bad value in the environment after a good one in the file: the file's
 * value stays, and the message says so (it named the built-in default). */
static void test_bad_value_keeps_earlier(void **state) {
  (void)state;
  const char *env[] = {"TIERPOOL_LARGE_CACHE_MS=soon", NULL};
  const char *err = unit_load_options("large_cache_ms = 700\n", env);
  assert_non_null(strstr(err, "bad value 'soon' for large_cache_ms"));
  assert_non_null(strstr(err, "; keeping the value set before"));
  assert_int_equal(tp_opt.large_cache_ms, 700);
  unit_load_options(NULL, NULL);
}

/* A file larger than the parser's 64 KiB: the line cut at the edge is not
 * read as a shorter value ("limit = 1G" as "limit = 1", a one-byte budget that
 * refuses every malloc); the lines from it on are reported ignored. */
static void test_config_too_large(void **state) {
  (void)state;
  enum { SIZE = (64 << 10) + 100 };
  char *text = malloc(SIZE + 1);
  assert_non_null(text);
  size_t len = 0;
  len += (size_t)sprintf(text + len, "large_cache_ms = 700\n");
  while (len < (64 << 10) - 40) len += (size_t)sprintf(text + len, "# %s\n", "padding padding padding padding");
  while (len < (64 << 10) - 5) text[len++] = '#';
  text[len++] = '\n';
  len += (size_t)sprintf(text + len, "limit = 1G\n"); /* straddles the 64 KiB edge */
  text[len] = '\0';
  const char *err = unit_load_options(text, NULL);
  assert_non_null(strstr(err, "larger than 64 KiB; lines from"));
  assert_int_equal(tp_opt.large_cache_ms, 700);
  assert_int_equal(tp_opt.limit, 0); /* neither 1 nor 1G: the line was not read */
  free(text);
  unit_load_options(NULL, NULL);
}

/* An empty file (or /dev/null) is a configuration of defaults, said nothing
 * about; a FIFO is refused at once (a read would block the program's first
 * malloc). */
static void test_config_empty_and_fifo(void **state) {
  (void)state;
  assert_string_equal(unit_load_options("", NULL), "");
  const char *null_env[] = {"TIERPOOL_CONFIG=/dev/null", NULL};
  assert_string_equal(unit_load_options(NULL, null_env), "");
  char dir[] = "/tmp/tierpool-unit-fifo-XXXXXX", fifo[64];
  assert_non_null(mkdtemp(dir));
  snprintf(fifo, sizeof fifo, "%s/config", dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  const char *env[] = {NULL, NULL};
  char var[96];
  snprintf(var, sizeof var, "TIERPOOL_CONFIG=%s", fifo);
  env[0] = var;
  const char *err = unit_load_options(NULL, env);
  assert_non_null(strstr(err, "not a regular file; using defaults"));
  unlink(fifo), rmdir(dir);
}

static void test_bad_classes(void **state) {
  (void)state;
  static const char *const bad[] = {
      "size_classes = 16, 24, 32\n",   /* not a multiple of 16 */
      "size_classes = 32, 16\n",       /* descending */
      "size_classes = 16, 16\n",       /* repeated */
      "size_classes = 16, , 32\n",     /* empty entry */
      "size_classes = 128K\n",         /* above the slab limit */
      "size_classes = \n",             /* nothing */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *err = unit_load_options(bad[i], NULL);
    assert_non_null(strstr(err, "for size_classes"));
    assert_int_equal(tp_classes.max_size, 32768); /* default kept */
  }
}

static void test_buddy_max_below_largest_class(void **state) {
  (void)state;
  const char *err = unit_load_options("size_classes = 16, 64K\nbuddy_max = 64K\n", NULL);
  assert_string_equal(err, "");
  err = unit_load_options("size_classes = 16, 48K\nbuddy_max = 32K\n", NULL);
  assert_non_null(strstr(err, "buddy_max"));
  assert_true(tp_opt.buddy_max >= tp_classes.max_size);
}

static void test_format_round_trip(void **state) {
  (void)state;
  unit_load_options("size_classes = 32, 96, 4096\nthp = on\ngrow_chunk = 2M\n", NULL);
  char text[4096];
  tp_options_format(text, sizeof text);
  assert_non_null(strstr(text, "size_classes = 32, 96, 4096\n"));
  assert_non_null(strstr(text, "thp = on\n"));
  /* What the pool prints, the pool reads back unchanged. */
  const char *err = unit_load_options(text, NULL);
  assert_string_equal(err, "");
  assert_int_equal(tp_classes.count, 3);
  assert_int_equal(tp_opt.grow_chunk, 2u << 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_config_file_and_env),
      cmocka_unit_test(test_bad_keys_and_values),
      cmocka_unit_test(test_bad_value_keeps_earlier),
      cmocka_unit_test(test_config_too_large),
      cmocka_unit_test(test_config_empty_and_fifo),
      cmocka_unit_test(test_bad_classes),
      cmocka_unit_test(test_buddy_max_below_largest_class),
      cmocka_unit_test(test_format_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
