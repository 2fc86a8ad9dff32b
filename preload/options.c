/* options.c — the option table, the config file and TIERPOOL_<KEY> overrides.
 *
 * Order: built-in defaults, then TIERPOOL_CONFIG's file, then the environment.
 * A bad key or value is reported in one line naming it; the previous value
 * (the default) stays, and the host program goes on.  No allocation here: the
 * parser runs inside the first malloc. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

tp_options tp_opt;
tp_class_table tp_classes;
enum tp_release_policy tp_release_policy;

typedef struct tp_option_desc {
  enum tp_option_kind kind;
  const char *key;
  const char *default_text;
  uint64_t min, max;
  size_t offset;
  const char *help;
} tp_option_desc;

static const tp_option_desc tp_option_table[] = {
#define TP_OPTION_ROW(kind, key, def, lo, hi, help) \
  {TP_OPT_##kind, #key, def, (uint64_t)(lo), (uint64_t)(hi), offsetof(tp_options, key), help},
    TP_OPTION_LIST(TP_OPTION_ROW)
#undef TP_OPTION_ROW
};
#define TP_OPTION_COUNT (sizeof tp_option_table / sizeof tp_option_table[0])

static bool tp_is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void tp_trim(const char **s, size_t *len) {
  while (*len && tp_is_space(**s)) (*s)++, (*len)--;
  while (*len && tp_is_space((*s)[*len - 1])) (*len)--;
}

/* Parses an unsigned number with an optional K/M/G suffix (binary, with an
 * optional "i"/"iB"/"B"): "4M", "512K", "1048576", "2GiB". */
bool tp_parse_size(const char *s, size_t len, uint64_t *out) {
  uint64_t v = 0;
  size_t i = 0;
  if (len == 0) return false;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (i == 0) return false;
  unsigned shift = 0;
  if (i < len) {
    switch (s[i] | 0x20) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      case 'b': break;
      default: return false;
    }
    i++;
    if (shift && i < len && (s[i] | 0x20) == 'i') i++;
    if (shift && i < len && (s[i] | 0x20) == 'b') i++;
    if (i != len) return false;
  }
  if (shift && v > (UINT64_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

bool tp_parse_bool(const char *s, size_t len, bool *out) {
  static const char *const yes[] = {"1", "on", "true", "yes"}, *const no[] = {"0", "off", "false", "no"};
  for (size_t i = 0; i < 4; i++) {
    if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) return (*out = true), true;
    if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) return (*out = false), true;
  }
  return false;
}

static bool tp_parse_ratio(const char *s, size_t len, double *out) {
  char tmp[32];
  if (len == 0 || len >= sizeof tmp) return false;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  char *end;
  double v = strtod(tmp, &end);
  if (*end != '\0' || !(v >= 0.0 && v <= 1.0)) return false;
  *out = v;
  return true;
}

bool tp_classes_parse(tp_class_table *table, const char *text, size_t len, const char **why) {
  tp_class_table t;
  memset(&t, 0, sizeof t);
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && text[i] != ',') i++;
    const char *item = text + start;
    size_t item_len = i - start;
    tp_trim(&item, &item_len);
    i++; /* skip the comma */
    if (item_len == 0) {
      if (i >= len && t.count > 0) break; /* tolerate a trailing comma */
      return (*why = "empty entry"), false;
    }
    uint64_t size;
    if (!tp_parse_size(item, item_len, &size)) return (*why = "not a size"), false;
    if (size == 0 || size % 16 != 0) return (*why = "classes must be multiples of 16"), false;
    if (size > TP_SLAB_MAX_CLASS) return (*why = "a class is larger than 64K"), false;
    if (t.count > 0 && size <= t.classes[t.count - 1].size)
      return (*why = "classes must be strictly ascending"), false;
    if (t.count == TP_MAX_CLASSES) return (*why = "more than 64 classes"), false;
    t.classes[t.count++].size = (uint32_t)size;
  }
  if (t.count == 0) return (*why = "no classes"), false;
  tp_classes_finish(&t);
  *table = t;
  return true;
}

static bool tp_option_parse(const tp_option_desc *o, const char *value, size_t len, const char **why) {
  char *field = (char *)&tp_opt + o->offset;
  uint64_t n;
  switch (o->kind) {
    case TP_OPT_CLASSES:
      if (!tp_classes_parse(&tp_classes, value, len, why)) return false;
      *(uint32_t *)field = tp_classes.count;
      return true;
    case TP_OPT_SIZE:
    case TP_OPT_MS:
    case TP_OPT_COUNT:
      if (!tp_parse_size(value, len, &n) || (o->kind != TP_OPT_SIZE && (value[len - 1] | 0x20) > '9'))
        return (*why = o->kind == TP_OPT_MS      ? "want milliseconds"
                       : o->kind == TP_OPT_COUNT ? "want a number"
                                                 : "want a size like 4M"),
               false;
      if (n < o->min || n > o->max) return (*why = "out of range"), false;
      *(uint64_t *)field = n;
      return true;
    case TP_OPT_BOOL:
      if (!tp_parse_bool(value, len, (bool *)field)) return (*why = "want on or off"), false;
      return true;
    case TP_OPT_RATIO:
      if (!tp_parse_ratio(value, len, (double *)field)) return (*why = "want a number from 0 to 1"), false;
      return true;
    case TP_OPT_PATH:
    case TP_OPT_TEXT:
      if ((o->kind == TP_OPT_PATH && len == 0) || len >= TP_OPTION_PATH_MAX)
        return (*why = o->kind == TP_OPT_PATH ? "want a path of 1 to 255 bytes" : "longer than 255 bytes"), false;
      memcpy(field, value, len);
      field[len] = '\0';
      return true;
  }
  return false;
}

static const tp_option_desc *tp_option_find(const char *key, size_t len) {
  for (size_t i = 0; i < TP_OPTION_COUNT; i++)
    if (strlen(tp_option_table[i].key) == len && strncasecmp(tp_option_table[i].key, key, len) == 0)
      return &tp_option_table[i];
  return NULL;
}

/* Which options a source has set: a bad value later keeps that one, not the default. */
static bool tp_option_set_before[TP_OPTION_COUNT];

bool tp_option_set(const char *key, size_t key_len, const char *value, size_t value_len,
                   const char *source) {
  if (key_len > 7 && memcmp(key, "tenant.", 7) == 0) /* tenant.NAME.KEY */
    return tp_tenant_option_set(key, key_len, value, value_len, source);
  const tp_option_desc *o = tp_option_find(key, key_len);
  if (!o) {
    tp_message("%s: unknown key '%.*s' (ignored)", source, (int)key_len, key);
    return false;
  }
  size_t index = (size_t)(o - tp_option_table);
  const char *why = "bad value";
  if (!tp_option_parse(o, value, value_len, &why)) {
    if (tp_option_set_before[index])
      tp_message("%s: bad value '%.*s' for %s (%s); keeping the value set before", source, (int)value_len, value,
                 o->key, why);
    else
      tp_message("%s: bad value '%.*s' for %s (%s); using %s", source, (int)value_len, value, o->key, why,
                 o->default_text);
    return false;
  }
  tp_option_set_before[index] = true;
  return true;
}

static void tp_config_file_load(const char *path) {
  static char text[64 << 10]; /* static: the parser must not allocate */
  bool whole;
  long r = tp_os_read_regular_file(path, text, sizeof text, &whole);
  if (r < 0) {
    tp_message("TIERPOOL_CONFIG=%s: %s; using defaults", path,
               r == -EINVAL ? "not a regular file" : "cannot read the file");
    return;
  }
  size_t len = (size_t)r;
  if (!whole) { /* the last line may be cut short: "limit = 1G" read as "limit = 1" */
    char *last = memrchr(text, '\n', len);
    len = last ? (size_t)(last - text) + 1 : 0;
    unsigned lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    tp_message("TIERPOOL_CONFIG=%s: larger than %u KiB; lines from %u on ignored", path,
               (unsigned)(sizeof text >> 10), lines + 1);
  }
  unsigned line_no = 0;
  for (size_t i = 0; i < len;) {
    size_t start = i;
    while (i < len && text[i] != '\n') i++;
    const char *line = text + start;
    size_t line_len = i - start;
    i++;
    line_no++;
    const char *hash = memchr(line, '#', line_len);
    if (hash) line_len = (size_t)(hash - line);
    tp_trim(&line, &line_len);
    if (line_len == 0) continue;
    char source[300];
    snprintf(source, sizeof source, "%s:%u", path, line_no);
    const char *eq = memchr(line, '=', line_len);
    if (!eq) {
      tp_message("%s: expected 'key = value', got '%.*s' (ignored)", source, (int)line_len, line);
      continue;
    }
    const char *key = line, *value = eq + 1;
    size_t key_len = (size_t)(eq - line), value_len = line_len - key_len - 1;
    tp_trim(&key, &key_len);
    tp_trim(&value, &value_len);
    tp_option_set(key, key_len, value, value_len, source);
  }
}

static void tp_options_defaults(void) {
  memset(tp_option_set_before, 0, sizeof tp_option_set_before);
  for (size_t i = 0; i < TP_OPTION_COUNT; i++) {
    const tp_option_desc *o = &tp_option_table[i];
    const char *why;
    if (!tp_option_parse(o, o->default_text, strlen(o->default_text), &why))
      tp_fatal("built-in default of %s is invalid (%s)", o->key, why);
  }
}

/* TIERPOOL_ and the key upper-cased: the option's environment variable. */
#define TP_ENV_NAME_MAX 64
static void tp_env_name(const char *key, char name[TP_ENV_NAME_MAX]) {
  size_t n = 9;
  memcpy(name, "TIERPOOL_", n);
  for (const char *k = key; *k && n + 1 < TP_ENV_NAME_MAX; k++)
    name[n++] = (char)(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
  name[n] = '\0';
}

static void tp_options_from_env(void) {
  for (size_t i = 0; i < TP_OPTION_COUNT; i++) {
    const tp_option_desc *o = &tp_option_table[i];
    char name[TP_ENV_NAME_MAX];
    tp_env_name(o->key, name);
    const char *value = getenv(name);
    if (value) tp_option_set(o->key, strlen(o->key), value, strlen(value), name);
  }
}

/* TIERPOOL_ variables read besides the options: the config file, an exec'd
 * image's trace index, and the library's path for the tools and tests. */
static const char *const tp_env_other[] = {"CONFIG", "TRACE_INDEX", "LIB", "CLI"};

/* Whether the environment entry e ("NAME=value") is the variable of key. */
static bool tp_env_is(const char *e, const char *key) {
  char name[TP_ENV_NAME_MAX];
  tp_env_name(key, name);
  size_t len = strlen(name);
  return strncmp(e, name, len) == 0 && (e[len] == '=' || e[len] == '\0');
}

/* A TIERPOOL_ variable that names nothing is most likely a typo, which the
 * program would otherwise run without a word about (TIERPOOL_LIMT=1G). */
static void tp_options_unknown_env(void) {
  for (char **e = __environ; e && *e; e++) {
    if (strncmp(*e, "TIERPOOL_", 9) != 0) continue;
    bool known = false;
    for (size_t i = 0; i < TP_OPTION_COUNT && !known; i++) known = tp_env_is(*e, tp_option_table[i].key);
    for (size_t i = 0; i < sizeof tp_env_other / sizeof *tp_env_other && !known; i++)
      known = tp_env_is(*e, tp_env_other[i]);
    size_t len = strcspn(*e, "=");
    if (!known) tp_message("environment: unknown variable %.*s (ignored)", (int)len, *e);
  }
}

/* A text option that names one of `count` choices: its index, or after one
 * line naming them, the first (the default), which value then says too. */
static uint32_t tp_option_choice(const char *key, char *value, const char *const *names, uint32_t count) {
  for (uint32_t i = 0; i < count; i++)
    if (strcmp(value, names[i]) == 0) return i;
  char want[96];
  size_t len = 0;
  for (uint32_t i = 0; i < count && len < sizeof want; i++)
    len += (size_t)snprintf(want + len, sizeof want - len, "%s%s", i == 0 ? "" : i + 1 == count ? " or " : ", ",
                            names[i]);
  tp_message("bad value '%s' for %s (want %s); using %s", value, key, want, names[0]);
  strcpy(value, names[0]);
  return 0;
}

/* Cross-option rules, checked after every source has been applied. */
static void tp_options_check(void) {
  if (tp_opt.buddy_max < tp_classes.max_size) {
    tp_message("buddy_max (%llu) is below the largest size class (%zu); using %zu",
               (unsigned long long)tp_opt.buddy_max, tp_classes.max_size, tp_classes.max_size);
    tp_opt.buddy_max = tp_align_up(tp_classes.max_size, TP_PAGE_SIZE);
  }
  tp_opt.buddy_max = tp_align_up(tp_opt.buddy_max, TP_PAGE_SIZE);
  static const char *const on_limit_names[] = {"fail", "abort"};
  tp_option_choice("on_limit", tp_opt.on_limit, on_limit_names, 2);
  static const char *const release_names[] = {"eager", "idle", "off"}; /* enum tp_release_policy */
  tp_release_policy = (enum tp_release_policy)tp_option_choice("release", tp_opt.release, release_names, 3);
  tp_tenant_options_check();
}

void tp_options_init(void) {
  tp_options_defaults();
  const char *config = getenv("TIERPOOL_CONFIG");
  if (config && *config) tp_config_file_load(config);
  tp_options_from_env();
  tp_options_unknown_env();
  tp_options_check();
}

size_t tp_options_format(char *buf, size_t cap) {
  size_t n = 0;
#define TP_APPEND(...)                                                  \
  do {                                                                  \
    int w = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);      \
    if (w > 0) n += (size_t)w;                                          \
  } while (0)
  for (size_t i = 0; i < TP_OPTION_COUNT; i++) {
    const tp_option_desc *o = &tp_option_table[i];
    const char *field = (const char *)&tp_opt + o->offset;
    switch (o->kind) {
      case TP_OPT_CLASSES:
        TP_APPEND("%s = ", o->key);
        for (uint32_t c = 0; c < tp_classes.count; c++)
          TP_APPEND("%s%u", c ? ", " : "", tp_classes.classes[c].size);
        TP_APPEND("\n");
        break;
      case TP_OPT_SIZE:
      case TP_OPT_MS:
      case TP_OPT_COUNT: TP_APPEND("%s = %llu\n", o->key, (unsigned long long)*(const uint64_t *)field); break;
      case TP_OPT_BOOL: TP_APPEND("%s = %s\n", o->key, *(const bool *)field ? "on" : "off"); break;
      case TP_OPT_RATIO: TP_APPEND("%s = %g\n", o->key, *(const double *)field); break;
      case TP_OPT_PATH:
      case TP_OPT_TEXT: TP_APPEND("%s = %s\n", o->key, field); break;
    }
  }
#undef TP_APPEND
  return n < cap ? n : cap;
}
