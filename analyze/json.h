/* json.h — JSON text shared by the JSON outputs (`report --json`,
 * `export --format json`): strings escaped so that any bytes a trace holds
 * (an argv, a path, a demangled name) make valid JSON. */
#ifndef TP_JSON_H
#define TP_JSON_H

#include <stdio.h>

/* s as a JSON string ("null" for NULL): quotes, backslashes and control
 * characters escaped, UTF-8 kept, bytes that are not UTF-8 as U+FFFD. */
void tp_json_string(FILE *out, const char *s);

#endif /* TP_JSON_H */
