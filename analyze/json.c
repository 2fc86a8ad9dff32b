/* json.c — JSON text shared by the JSON outputs (json.h). */
#include "json.h"

#include <stdbool.h>
#include <stddef.h>

void tp_json_string(FILE *out, const char *s) {
  if (!s) {
    fputs("null", out);
    return;
  }
  const unsigned char *p = (const unsigned char *)s;
  fputc('"', out);
  while (*p) {
    unsigned c = *p;
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    bool valid = len > 0;
    for (size_t i = 1; i < len && valid; i++) valid = (p[i] & 0xc0) == 0x80;
    if (!valid) { /* not UTF-8 (an argv can hold anything): the replacement character */
      fputs("\\ufffd", out);
      p++;
      continue;
    }
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c == '\n') fputs("\\n", out);
    else if (c == '\t') fputs("\\t", out);
    else if (c < 0x20 || c == 0x7f) fprintf(out, "\\u%04x", c);
    else fwrite(p, 1, len, out);
    p += len;
  }
  fputc('"', out);
}
