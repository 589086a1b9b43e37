/* The tool's JSON output helpers: strings escaped, numbers that are never NaN or Inf. */
#include "tool.h"

void tool_json_string(FILE *out, const char *s) {
  if (!s) {
    fputs("null", out);
    return;
  }
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      /* JSON forbids raw control characters; everything else (UTF-8 included) passes as is. */
      if (*p < 0x20)
        fprintf(out, "\\u%04x", (unsigned)*p);
      else
        fputc(*p, out);
    }
  }
  fputc('"', out);
}

void tool_json_number(FILE *out, double v) {
  /* NaN and the infinities have no JSON spelling: a figure that does not exist is null. */
  if (v != v || v > 1e300 || v < -1e300)
    fputs("null", out);
  else
    fprintf(out, "%.6g", v);
}

void tool_json_field(FILE *out, const char *key, const char *value) {
  fprintf(out, ", \"%s\": ", key);
  tool_json_string(out, value);
}

void tool_json_number_field(FILE *out, const char *key, double v) {
  fprintf(out, ", \"%s\": ", key);
  tool_json_number(out, v);
}
