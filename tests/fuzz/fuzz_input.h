/* Reading a libFuzzer input as a stream of choices, and values biased toward the edges that
   range arithmetic gets wrong (0, the size, one past it, the top of the type). */
#ifndef XMMAP_FUZZ_INPUT_H
#define XMMAP_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_input {
  const uint8_t *data;
  size_t size, at;
};

static inline uint8_t fuzz_u8(struct fuzz_input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
static inline int fuzz_done(const struct fuzz_input *in) { return in->at >= in->size; }

static inline uint64_t fuzz_u64(struct fuzz_input *in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | fuzz_u8(in);
  return v;
}

static inline uint16_t fuzz_u16(struct fuzz_input *in) {
  uint16_t hi = fuzz_u8(in);
  return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* A size_t near one of the interesting points of a range of size bytes with a unit (page, line). */
static inline size_t fuzz_size_near(struct fuzz_input *in, size_t size, size_t unit) {
  uint8_t sel = fuzz_u8(in);
  size_t small = fuzz_u8(in) & 0x1f;
  switch (sel & 7) {
  case 0: return small;
  case 1: return size - small; /* may wrap below 0 on purpose */
  case 2: return size + small;
  case 3: return SIZE_MAX - small;
  case 4: return (size_t)fuzz_u16(in);
  case 5: return unit * (small & 7) + ((sel & 8) ? small : 0) - ((sel & 16) ? 1 : 0);
  case 6: return (size_t)1 << (fuzz_u8(in) % (8 * sizeof(size_t)));
  default: return (size_t)fuzz_u64(in);
  }
}

/* A model mismatch is a bug: say what differs and abort, so that libFuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                                                                          \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "model mismatch at %s:%d: ", __FILE__, __LINE__);                                                \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fprintf(stderr, "\n");                                                                                           \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

#endif /* XMMAP_FUZZ_INPUT_H */
