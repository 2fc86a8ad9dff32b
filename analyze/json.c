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
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : (c & 0xf0) == 0xe0 ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    bool valid = len > 0;
    for (size_t i = 1; i < len && valid; i++) valid = (p[i] & 0xc0) == 0x80;
    /* RFC 3629's second bytes: no overlong forms, surrogates or code points
     * past U+10FFFF, which strict decoders (Python's) refuse. */
    if (valid && len > 2) {
      unsigned d = p[1];
      if ((c == 0xe0 && d < 0xa0) || (c == 0xed && d > 0x9f) || (c == 0xf0 && d < 0x90) || (c == 0xf4 && d > 0x8f))
        valid = false;
    }
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
