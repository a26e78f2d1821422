/*
 * bnlab's native helper kernels: the memory-bound loops around LeNet's matrix products,
 * the normalizations, and ResNet-20's 3×3 convolutions of 16 or 32 channels, in C, called
 * through Deno's FFI on the wasm backend's heap (lib/kernels/native_library.ts loads the
 * library; scripts/build_native.ts compiles it, with thread_pool.c, the matrix products
 * split over threads, and openblas_order.c, the products themselves with OpenBLAS's floats,
 * using the system's C compiler).
 *
 * Every function takes the heap as one float array and positions in it as float offsets
 * (32-bit: a wasm32 heap holds fewer than 2^31 floats);
 * it reads and writes only the ranges its arguments describe. Their JavaScript twins in
 * lib/kernels/ (im2col.ts' im2col and col2im, max_pool_grad.ts) define what they
 * compute, and tests/native_test.ts checks both give the same floats. Compiled without
 * -ffast-math, so comparisons with NaN and signed zeros behave as in JavaScript.
 */
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* The ABI version: lib/kernels/native_library.ts refuses a library that reports another. */
int32_t bnlab_native_version(void) { return 14; }

/* A convolution's geometry after its image range, as bnlab_im2col and bnlab_col2im take it. */
typedef struct {
  int32_t h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, top, left;
} conv_geometry;

void bnlab_pool_run(void (*task)(void *, int), void *context, int parts, int threads);
int bnlab_slice_bound(int total, int parts, int align, int i);

/*
 * Rows [r0, r1) of im2col for an NHWC convolution, row r being output pixel r of the images
 * from `x` on: the KH·KW·C input values under the filter in (kh, kw, c) order, zero over
 * padding. Output row by output row; where no window of the row reaches into the left or right
 * padding, tap row by tap row (a run of KW·C contiguous floats per output pixel).
 */
static void im2col_rows(const float *x, float *cols, const conv_geometry *g, int64_t r0,
                        int64_t r1) {
  const int64_t run = (int64_t)g->kw * g->c;
  const int64_t k = (int64_t)g->kh * run;
  const int64_t row_stride = (int64_t)g->w * g->c;
  const int no_columns_padded = g->dw == 1 && g->left <= 0 &&
                                (int64_t)(g->ow - 1) * g->sw - g->left + g->kw <= g->w;
  for (int64_t line = r0 / g->ow; line * g->ow < r1; line++) {
    const int64_t b = line / g->oh;
    const int32_t y = (int32_t)(line % g->oh);
    const int32_t xa = line * g->ow < r0 ? (int32_t)(r0 - line * g->ow) : 0;
    const int32_t xb = (line + 1) * g->ow > r1 ? (int32_t)(r1 - line * g->ow) : g->ow;
    const float *image = x + b * g->h * row_stride;
    float *dst = cols + line * g->ow * k;
    const int32_t y0 = y * g->sh - g->top;
    if (no_columns_padded) {
      for (int32_t i = 0; i < g->kh; i++) {
        const int32_t iy = y0 + i * g->dh;
        float *to = dst + (int64_t)i * run;
        if (iy < 0 || iy >= g->h) {
          for (int32_t xo = xa; xo < xb; xo++) memset(to + xo * k, 0, (size_t)run * sizeof(float));
          continue;
        }
        const float *from = image + (int64_t)iy * row_stride - (int64_t)g->left * g->c;
        const int64_t step = (int64_t)g->sw * g->c;
        if (run == 5) { /* LeNet's first layer: a fixed-size, inlined copy */
          for (int32_t xo = xa; xo < xb; xo++) memcpy(to + xo * k, from + xo * step, 5 * sizeof(float));
        } else {
          for (int32_t xo = xa; xo < xb; xo++) {
            memcpy(to + xo * k, from + xo * step, (size_t)run * sizeof(float));
          }
        }
      }
      continue;
    }
    for (int32_t xo = xa; xo < xb; xo++) {
      float *to = dst + xo * k;
      const int32_t x0 = xo * g->sw - g->left;
      const int inside = g->dw == 1 && x0 >= 0 && x0 + g->kw <= g->w;
      for (int32_t i = 0; i < g->kh; i++, to += run) {
        const int32_t iy = y0 + i * g->dh;
        if (iy < 0 || iy >= g->h) {
          memset(to, 0, (size_t)run * sizeof(float));
          continue;
        }
        const float *row = image + (int64_t)iy * row_stride;
        if (inside) {
          memcpy(to, row + (int64_t)x0 * g->c, (size_t)run * sizeof(float));
          continue;
        }
        for (int32_t j = 0; j < g->kw; j++) {
          const int32_t ix = x0 + j * g->dw;
          if (ix < 0 || ix >= g->w) {
            memset(to + (int64_t)j * g->c, 0, (size_t)g->c * sizeof(float));
          } else {
            memcpy(to + (int64_t)j * g->c, row + (int64_t)ix * g->c, (size_t)g->c * sizeof(float));
          }
        }
      }
    }
  }
}

/*
 * col2im of images [i0, i1) (counted from the slice's first image): adds each cols value onto
 * the input pixel and channel it was read from, rows in order; values over padding are
 * dropped. With `zero`, the images' dx is cleared first.
 */
static void col2im_images(const float *cols, float *dx, const conv_geometry *g, int64_t i0,
                          int64_t i1, int zero) {
  const int64_t run = (int64_t)g->kw * g->c;
  const int64_t row_stride = (int64_t)g->w * g->c;
  const int64_t image_size = (int64_t)g->h * row_stride;
  const float *src = cols + i0 * g->oh * g->ow * g->kh * run;
  if (zero) memset(dx + i0 * image_size, 0, (size_t)((i1 - i0) * image_size) * sizeof(float));
  for (int64_t b = i0; b < i1; b++) {
    float *image = dx + b * image_size;
    for (int32_t y = 0; y < g->oh; y++) {
      const int32_t y0 = y * g->sh - g->top;
      for (int32_t x = 0; x < g->ow; x++) {
        const int32_t x0 = x * g->sw - g->left;
        const int inside = g->dw == 1 && x0 >= 0 && x0 + g->kw <= g->w;
        for (int32_t i = 0; i < g->kh; i++) {
          const int32_t iy = y0 + i * g->dh;
          if (iy < 0 || iy >= g->h) {
            src += run;
            continue;
          }
          float *row = image + (int64_t)iy * row_stride;
          if (inside) {
            float *dst = row + (int64_t)x0 * g->c;
            for (int64_t j = 0; j < run; j++) dst[j] += src[j];
            src += run;
            continue;
          }
          for (int32_t j = 0; j < g->kw; j++) {
            const int32_t ix = x0 + j * g->dw;
            if (ix >= 0 && ix < g->w) {
              float *dst = row + (int64_t)ix * g->c;
              for (int32_t ci = 0; ci < g->c; ci++) dst[ci] += src[ci];
            }
            src += g->c;
          }
        }
      }
    }
  }
}

/*
 * How im2col and col2im split a slice's rows over two threads: at the bound where the matrix
 * products' slices split their rows (thread_pool.c), so that the thread that writes a cols row
 * is the one whose product reads it (or whose product wrote it, for col2im) and the row stays
 * in its core's cache. Rows of 64 or more, as the products; else one part.
 */
static int64_t cols_split(int64_t rows) {
  return rows >= 64 && rows <= INT32_MAX ? bnlab_slice_bound((int)rows, 2, 16, 1) : rows;
}

typedef struct {
  const float *x;
  float *cols;
  float *dx;
  const conv_geometry *g;
  int64_t bound; /* rows (im2col) or images (col2im) of the first part */
  int64_t total;
  int zero;
} cols_task;

static void im2col_part(void *context, int part) {
  const cols_task *t = context;
  if (part == 0) im2col_rows(t->x, t->cols, t->g, 0, t->bound);
  else im2col_rows(t->x, t->cols, t->g, t->bound, t->total);
}

static void col2im_part(void *context, int part) {
  const cols_task *t = context;
  if (part == 0) col2im_images(t->cols, t->dx, t->g, 0, t->bound, t->zero);
  else col2im_images(t->cols, t->dx, t->g, t->bound, t->total, t->zero);
}

/*
 * im2col for an NHWC convolution, images [b0, b0 + images): per output pixel, the
 * KH·KW·C input values under the filter in (kh, kw, c) order, zero over padding. On two
 * threads the rows are split where the product that reads them splits (a copy: the same
 * floats on any number of threads).
 */
void bnlab_im2col(float *heap, int32_t x_off, int32_t cols_off, int32_t b0, int32_t images,
                  int32_t h, int32_t w, int32_t c, int32_t oh, int32_t ow, int32_t kh,
                  int32_t kw, int32_t sh, int32_t sw, int32_t dh, int32_t dw, int32_t top,
                  int32_t left, int32_t threads) {
  const conv_geometry g = {h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, top, left};
  const int64_t rows = (int64_t)images * oh * ow;
  const cols_task t = {heap + x_off + (int64_t)b0 * h * w * c, heap + cols_off, NULL, &g,
                       cols_split(rows), rows, 0};
  bnlab_pool_run(im2col_part, (void *)&t, t.bound < rows ? 2 : 1, threads);
}

/*
 * col2im, the adjoint of bnlab_im2col: adds each cols value onto the input pixel and
 * channel it was read from (with `zero`, onto zeros: dx is cleared first; else dx holds what
 * to add to); values over padding are dropped. Same summation order as the JavaScript loop
 * on any number of threads: an image's rows are added by one thread, in order.
 */
void bnlab_col2im(float *heap, int32_t cols_off, int32_t dx_off, int32_t b0, int32_t images,
                  int32_t h, int32_t w, int32_t c, int32_t oh, int32_t ow, int32_t kh,
                  int32_t kw, int32_t sh, int32_t sw, int32_t dh, int32_t dw, int32_t top,
                  int32_t left, int32_t zero, int32_t threads) {
  const conv_geometry g = {h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, top, left};
  const int64_t pixels = (int64_t)oh * ow;
  int64_t split = (cols_split((int64_t)images * pixels) + pixels / 2) / pixels;
  if (split <= 0 || split >= images) split = images; /* one part */
  const cols_task t = {NULL, heap + cols_off, heap + dx_off + (int64_t)b0 * h * w * c, &g,
                       split, images, zero};
  bnlab_pool_run(col2im_part, (void *)&t, split < images ? 2 : 1, threads);
}

int32_t bnlab_sgemm_gathered(int32_t trans_a, int32_t m, int32_t n, int32_t k, const float *a,
                             const int32_t *rows, const int32_t *terms, const float *b,
                             int32_t ldb, float beta, float *c, int32_t ldc, int32_t uncut,
                             int32_t threads);

/*
 * A convolution's product with its im2col matrix read from the images, never written: with
 * `filter` 0 the forward product y = cols·W (+ beta·y), with 1 the filter gradient
 * dW = colsᵀ·dy (+ beta·dW), for images [b0, b0 + images) and a convolution without padding.
 * bnlab_sgemm_gathered gives the floats bnlab_im2col + bnlab_sgemm give. `b` is W [K, N] or
 * dy [M, N] (n columns, row stride ldb), `c` the output (row stride ldc). Returns 0; -5 (nothing
 * computed) where the gathered product does not run (padding, or its kernel off or declining
 * the shape): the caller then runs im2col and the product; -1 or -4 as bnlab_sgemm. `uncut`:
 * the product as one call (as bnlab_gemm), else in bnlab_sgemm's slices.
 */
int32_t bnlab_conv_gathered(float *heap, int32_t x_off, int32_t b0, int32_t images, int32_t h,
                            int32_t w, int32_t c, int32_t oh, int32_t ow, int32_t kh, int32_t kw,
                            int32_t sh, int32_t sw, int32_t dh, int32_t dw, int32_t top,
                            int32_t left, int32_t filter, int32_t b_off, int32_t n, int32_t ldb,
                            float beta, int32_t c_off, int32_t ldc, int32_t uncut,
                            int32_t threads) {
  if (top != 0 || left != 0 || (int64_t)(oh - 1) * sh + (int64_t)(kh - 1) * dh >= h ||
      (int64_t)(ow - 1) * sw + (int64_t)(kw - 1) * dw >= w) {
    return -5;
  }
  const int64_t pixels = (int64_t)images * oh * ow, taps = (int64_t)kh * kw * c;
  if ((int64_t)h * w * c * images > INT32_MAX || pixels > INT32_MAX) return -5;
  int32_t *pixel_at = malloc((size_t)(pixels + taps) * sizeof(int32_t));
  if (pixel_at == NULL) return -4;
  int32_t *tap_at = pixel_at + pixels;
  int64_t p = 0;
  for (int32_t b = 0; b < images; b++)
    for (int32_t y = 0; y < oh; y++)
      for (int32_t x = 0; x < ow; x++) {
        pixel_at[p++] = (int32_t)((((int64_t)b * h + (int64_t)y * sh) * w + (int64_t)x * sw) * c);
      }
  int64_t t = 0;
  for (int32_t i = 0; i < kh; i++)
    for (int32_t j = 0; j < kw; j++)
      for (int32_t ch = 0; ch < c; ch++) {
        tap_at[t++] = (int32_t)(((int64_t)i * dh * w + (int64_t)j * dw) * c + ch);
      }
  const float *x = heap + x_off + (int64_t)b0 * h * w * c;
  const int32_t status =
      filter ? bnlab_sgemm_gathered(1, (int32_t)taps, n, (int32_t)pixels, x, tap_at, pixel_at,
                                    heap + b_off, ldb, beta, heap + c_off, ldc, uncut, threads)
             : bnlab_sgemm_gathered(0, (int32_t)pixels, n, (int32_t)taps, x, pixel_at, tap_at,
                                    heap + b_off, ldb, beta, heap + c_off, ldc, uncut, threads);
  free(pixel_at);
  return status;
}

/* Channels scanned at once by bnlab_max_pool_grad (wider layers go in groups). */
#define POOL_GROUP 64

/* Eight floats, and eight comparison masks, as GCC/Clang vector types (unaligned loads and
 * stores go through memcpy). */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
static inline v8f load8(const float *p) {
  v8f v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
/* Where mask is all ones, a; elsewhere b. */
static inline v8f select8(v8i mask, v8f a, v8f b) { return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask)); }
/* The same on four floats. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
static inline v4f load4(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
static inline v4f select4(v4i mask, v4f a, v4f b) { return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask)); }

/*
 * The 2×2, stride-2 pools that tile the input exactly (LeNet's): every input value lies in
 * one window, so each window writes its four dx values (dy at the argmax, +0 elsewhere)
 * and nothing is zeroed first. Same argmax rule as below; the channel loop has no
 * branches, so it vectorizes.
 */
static void max_pool_grad_2x2(const float *x, const float *dy, float *dx, int32_t batch,
                              int32_t out_h, int32_t out_w, int32_t channels) {
  const int64_t row = (int64_t)2 * out_w * channels; /* one input row */
  for (int32_t b = 0; b < batch; b++) {
    for (int32_t oh = 0; oh < out_h; oh++) {
      for (int32_t ow = 0; ow < out_w; ow++) {
        const int64_t top_left = (((int64_t)b * 2 * out_h + 2 * oh) * 2 * out_w + 2 * ow) *
                                 channels;
        const float *x0 = x + top_left, *x1 = x0 + channels, *x2 = x0 + row, *x3 = x2 + channels;
        float *d0 = dx + top_left, *d1 = d0 + channels, *d2 = d0 + row, *d3 = d2 + channels;
        const float *g = dy + (((int64_t)b * out_h + oh) * out_w + ow) * channels;
        int32_t c = 0;
        /* Eight channels at a time, branch-free: the masks tN are all ones where value N
         * beats every value before it (and −∞); the argmax is the last such. */
        for (; c + 8 <= channels; c += 8) {
          const v8f a0 = load8(x0 + c), a1 = load8(x1 + c), a2 = load8(x2 + c), a3 = load8(x3 + c);
          v8f best = {-__builtin_inff(), -__builtin_inff(), -__builtin_inff(), -__builtin_inff(),
                      -__builtin_inff(), -__builtin_inff(), -__builtin_inff(), -__builtin_inff()};
          const v8i t0 = a0 > best;
          best = select8(t0, a0, best);
          const v8i t1 = a1 > best;
          best = select8(t1, a1, best);
          const v8i t2 = a2 > best;
          best = select8(t2, a2, best);
          const v8i t3 = a3 > best;
          const v8i v = (v8i)(load8(g + c) + 0.0f);
          store8(d3 + c, (v8f)(v & t3));
          store8(d2 + c, (v8f)(v & t2 & ~t3));
          store8(d1 + c, (v8f)(v & t1 & ~t2 & ~t3));
          store8(d0 + c, (v8f)(v & t0 & ~t1 & ~t2 & ~t3));
        }
        /* Four channels, the same way. */
        for (; c + 4 <= channels; c += 4) {
          const v4f a0 = load4(x0 + c), a1 = load4(x1 + c), a2 = load4(x2 + c), a3 = load4(x3 + c);
          v4f best = {-__builtin_inff(), -__builtin_inff(), -__builtin_inff(), -__builtin_inff()};
          const v4i t0 = a0 > best;
          best = select4(t0, a0, best);
          const v4i t1 = a1 > best;
          best = select4(t1, a1, best);
          const v4i t2 = a2 > best;
          best = select4(t2, a2, best);
          const v4i t3 = a3 > best;
          const v4i v = (v4i)(load4(g + c) + 0.0f);
          store4(d3 + c, (v4f)(v & t3));
          store4(d2 + c, (v4f)(v & t2 & ~t3));
          store4(d1 + c, (v4f)(v & t1 & ~t2 & ~t3));
          store4(d0 + c, (v4f)(v & t0 & ~t1 & ~t2 & ~t3));
        }
        /* The channels left, one at a time with the same masks (no branches: on real
         * activations the argmax is as unpredictable as in the vector loop). */
        for (; c < channels; c++) {
          float best = -__builtin_inff();
          const uint32_t t0 = -(uint32_t)(x0[c] > best);
          best = t0 ? x0[c] : best;
          const uint32_t t1 = -(uint32_t)(x1[c] > best);
          best = t1 ? x1[c] : best;
          const uint32_t t2 = -(uint32_t)(x2[c] > best);
          best = t2 ? x2[c] : best;
          const uint32_t t3 = -(uint32_t)(x3[c] > best);
          uint32_t v;
          const float value = 0.0f + g[c];
          memcpy(&v, &value, sizeof v);
          const uint32_t bits[4] = {v & t0 & ~t1 & ~t2 & ~t3, v & t1 & ~t2 & ~t3, v & t2 & ~t3,
                                    v & t3};
          memcpy(d0 + c, bits, sizeof(float));
          memcpy(d1 + c, bits + 1, sizeof(float));
          memcpy(d2 + c, bits + 2, sizeof(float));
          memcpy(d3 + c, bits + 3, sizeof(float));
        }
      }
    }
  }
}

/*
 * MaxPool forward for the same exactly tiling 2×2, stride-2 pools, with tfjs's cpu rule:
 * the window's largest value by strict comparisons from −∞, so NaN is never chosen and a
 * window of −∞ and NaN gives −∞.
 */
void bnlab_max_pool_2x2(float *heap, int32_t x_off, int32_t y_off, int32_t batch,
                        int32_t out_h, int32_t out_w, int32_t channels) {
  const float *x = heap + x_off;
  float *y = heap + y_off;
  const int64_t row = (int64_t)2 * out_w * channels;
  for (int32_t b = 0; b < batch; b++) {
    for (int32_t oh = 0; oh < out_h; oh++) {
      for (int32_t ow = 0; ow < out_w; ow++) {
        const int64_t top_left = (((int64_t)b * 2 * out_h + 2 * oh) * 2 * out_w + 2 * ow) *
                                 channels;
        const float *x0 = x + top_left, *x1 = x0 + channels, *x2 = x0 + row, *x3 = x2 + channels;
        float *out = y + (((int64_t)b * out_h + oh) * out_w + ow) * channels;
        for (int32_t c = 0; c < channels; c++) {
          float best = -__builtin_inff();
          best = x0[c] > best ? x0[c] : best;
          best = x1[c] > best ? x1[c] : best;
          best = x2[c] > best ? x2[c] : best;
          best = x3[c] > best ? x3[c] : best;
          out[c] = best;
        }
      }
    }
  }
}

/*
 * MaxPoolGrad for windows that do not overlap (filter <= stride): dx is zeroed, then each
 * window's dy goes to its argmax per channel, found as tfjs's cpu backend does: the first
 * position in row-major window order strictly greater than all before it, from -inf (ties
 * to the first, NaN never chosen, an all -inf/NaN window passes nothing). dx = 0 + dy.
 */
void bnlab_max_pool_grad(float *heap, int32_t x_off, int32_t dy_off, int32_t dx_off,
                         int32_t batch, int32_t in_h, int32_t in_w, int32_t channels,
                         int32_t out_h, int32_t out_w, int32_t fh, int32_t fw, int32_t sh,
                         int32_t sw, int32_t top, int32_t left) {
  const float *x = heap + x_off;
  const float *dy = heap + dy_off;
  float *dx = heap + dx_off;
  if (fh == 2 && fw == 2 && sh == 2 && sw == 2 && top == 0 && left == 0 && in_h == 2 * out_h &&
      in_w == 2 * out_w) {
    max_pool_grad_2x2(x, dy, dx, batch, out_h, out_w, channels);
    return;
  }
  memset(dx, 0, (size_t)batch * in_h * in_w * channels * sizeof(float));
  float best[POOL_GROUP];
  int64_t where[POOL_GROUP];
  for (int32_t b = 0; b < batch; b++) {
    for (int32_t oh = 0; oh < out_h; oh++) {
      int32_t row_start = oh * sh - top, row_end = oh * sh - top + fh;
      if (row_start < 0) row_start = 0;
      if (row_end > in_h) row_end = in_h;
      for (int32_t ow = 0; ow < out_w; ow++) {
        int32_t col_start = ow * sw - left, col_end = ow * sw - left + fw;
        if (col_start < 0) col_start = 0;
        if (col_end > in_w) col_end = in_w;
        const int64_t dy_base = (((int64_t)b * out_h + oh) * out_w + ow) * channels;
        for (int32_t c0 = 0; c0 < channels; c0 += POOL_GROUP) {
          const int32_t group = channels - c0 < POOL_GROUP ? channels - c0 : POOL_GROUP;
          for (int32_t c = 0; c < group; c++) {
            best[c] = -__builtin_inff();
            where[c] = -1;
          }
          for (int32_t hh = row_start; hh < row_end; hh++) {
            for (int32_t ww = col_start; ww < col_end; ww++) {
              const int64_t base = (((int64_t)b * in_h + hh) * in_w + ww) * channels + c0;
              for (int32_t c = 0; c < group; c++) {
                const float value = x[base + c];
                if (value > best[c]) {
                  best[c] = value;
                  where[c] = base + c;
                }
              }
            }
          }
          for (int32_t c = 0; c < group; c++) {
            if (where[c] >= 0) dx[where[c]] = 0.0f + dy[dy_base + c0 + c];
          }
        }
      }
    }
  }
}

/* ---- Batch normalization over the leading axes ----------------------------------------
 *
 * x is read as [rows, channels] (channels last; rows = every other axis). These are the
 * closed forms of lib/batch_norm_ops.ts' analytic op in one pass or two over x, with the
 * per-channel sums in double; lib/kernels/batch_norm_native.ts registers them as kernels.
 *
 * Calls of BN_SPLIT_MIN values or more run in two parts on the matrix products' thread pool
 * (up to `threads` threads): the per-channel sums over two halves of the channels, each
 * channel's sum in row order as in one part; the element-wise passes over two halves of the
 * rows. Every float is computed as it is in one part, on any number of threads.
 */

#define BN_SPLIT_MIN 262144

typedef struct {
  float *heap;
  int32_t x_off, dy_off, mean_off, var_off, out_off, rows, channels;
  double *sum, *products; /* per-channel sums */
  const float *inv, *gamma, *beta, *shift, *scale; /* per-channel factors */
} bn_task;

static int bn_parts(int32_t rows, int32_t channels) {
  return (int64_t)rows * channels >= BN_SPLIT_MIN && channels >= 2 && rows >= 2 ? 2 : 1;
}

/* [0, total/2) or [total/2, total) for part 0 or 1 of `parts`. */
static void bn_half(int32_t total, int parts, int part, int32_t *from, int32_t *to) {
  const int32_t mid = parts == 2 ? total / 2 : total;
  *from = part == 0 ? 0 : mid;
  *to = part == 0 ? mid : total;
}

/* Runs BLOCK(c_, w) for the channels [c_, to) when fewer than 16 remain: w = 8, then the
 * rest, every w a constant (so that the block's sums stay in registers); advances c_. */
#define CHANNEL_TAIL(c_, to, BLOCK)                  \
  do {                                               \
    if (c_ + 8 <= (to)) {                            \
      BLOCK(c_, 8);                                  \
      c_ += 8;                                       \
    }                                                \
    switch ((to) - c_) {                             \
      case 7: BLOCK(c_, 7); break;                   \
      case 6: BLOCK(c_, 6); break;                   \
      case 5: BLOCK(c_, 5); break;                   \
      case 4: BLOCK(c_, 4); break;                   \
      case 3: BLOCK(c_, 3); break;                   \
      case 2: BLOCK(c_, 2); break;                   \
      case 1: BLOCK(c_, 1); break;                   \
      default: break;                                \
    }                                                \
    c_ = (to);                                       \
  } while (0)

/* Runs BLOCK(k, w) for the channels [k, k + w) of [from, to): w = 32, 16, then CHANNEL_TAIL. */
#define CHANNEL_BLOCKS(from, to, BLOCK)              \
  do {                                               \
    int32_t c_ = (from);                             \
    for (; c_ + 32 <= (to); c_ += 32) BLOCK(c_, 32); \
    if (c_ + 16 <= (to)) {                           \
      BLOCK(c_, 16);                                 \
      c_ += 16;                                      \
    }                                                \
    CHANNEL_TAIL(c_, to, BLOCK);                     \
  } while (0)

/*
 * Per-channel sums over the rows, each channel's in row order and in double, for the channels
 * [c0, c1) of a [rows, stride] matrix: Σ x (mean NULL) or Σ (x − mean)² (mean given). The
 * channels go in blocks of 32, 16 and 8 whose sums stay in registers over all the rows
 * (the same additions in the same order as one channel at a time).
 */
static inline __attribute__((always_inline)) void bn_block_sums(const float *x, int32_t rows,
                                                               int32_t stride, const float *mean,
                                                               double *sum, int w) {
  double acc[32], m[32];
  for (int j = 0; j < w; j++) {
    acc[j] = sum[j];
    m[j] = mean != NULL ? mean[j] : 0;
  }
  for (int32_t r = 0; r < rows; r++) {
    const float *row = x + (int64_t)r * stride;
    if (mean == NULL) {
      for (int j = 0; j < w; j++) acc[j] += row[j];
    } else {
      for (int j = 0; j < w; j++) {
        const double d = (double)row[j] - m[j];
        acc[j] += d * d;
      }
    }
  }
  for (int j = 0; j < w; j++) sum[j] = acc[j];
}

static void bn_channel_sums(const float *x, int32_t rows, int32_t stride, int32_t c0, int32_t c1,
                            const float *mean, double *sum) {
#define BN_SUM_BLOCK(k, w) \
  bn_block_sums(x + (k), rows, stride, mean ? mean + (k) : NULL, sum + (k), w)
  CHANNEL_BLOCKS(c0, c1, BN_SUM_BLOCK);
#undef BN_SUM_BLOCK
}

static void bn_moments_part(void *context, int part) {
  const bn_task *t = context;
  const int32_t rows = t->rows, channels = t->channels;
  int32_t c0, c1;
  bn_half(channels, bn_parts(rows, channels), part, &c0, &c1);
  const float *x = t->heap + t->x_off;
  double *sum = t->sum, *squares = t->products;
  bn_channel_sums(x, rows, channels, c0, c1, NULL, sum);
  float *mean = t->heap + t->mean_off;
  for (int32_t c = c0; c < c1; c++) mean[c] = (float)(sum[c] / rows);
  bn_channel_sums(x, rows, channels, c0, c1, mean, squares);
  float *variance = t->heap + t->var_off;
  for (int32_t c = c0; c < c1; c++) variance[c] = (float)(squares[c] / rows);
}

/* Per-channel mean and biased variance (two passes: mean, then squared deviations). */
void bnlab_bn_moments(float *heap, int32_t x_off, int32_t mean_off, int32_t var_off,
                      int32_t rows, int32_t channels, int32_t threads) {
  double *sum = calloc((size_t)channels * 2, sizeof(double));
  if (sum == NULL) abort();
  bn_task t = {heap, x_off, -1, mean_off, var_off, -1, rows, channels, sum, sum + channels,
               NULL, NULL, NULL, NULL, NULL};
  bnlab_pool_run(bn_moments_part, &t, bn_parts(rows, channels), threads);
  free(sum);
}

/* y = (x − μ)·inv·γ + β over rows [r0, r1) of w channels (w a constant where inlined). */
static inline __attribute__((always_inline)) void bn_forward_rows(
    const float *x, float *y, int32_t r0, int32_t r1, const float *mean, const float *inv,
    const float *gamma, const float *beta, int32_t w) {
  for (int32_t r = r0; r < r1; r++) {
    const float *in = x + (int64_t)r * w;
    float *out = y + (int64_t)r * w;
    for (int32_t c = 0; c < w; c++) out[c] = (in[c] - mean[c]) * inv[c] * gamma[c] + beta[c];
  }
}

static void bn_forward_part(void *context, int part) {
  const bn_task *t = context;
  const int32_t channels = t->channels;
  int32_t r0, r1;
  bn_half(t->rows, bn_parts(t->rows, channels), part, &r0, &r1);
  const float *x = t->heap + t->x_off, *mean = t->heap + t->mean_off;
  const float *inv = t->inv, *gamma = t->gamma, *beta = t->beta;
  float *y = t->heap + t->out_off;
  /* LeNet's and ResNet-20's widths with the channel count known to the compiler. */
  switch (channels) {
    case 16: bn_forward_rows(x, y, r0, r1, mean, inv, gamma, beta, 16); break;
    case 20: bn_forward_rows(x, y, r0, r1, mean, inv, gamma, beta, 20); break;
    case 32: bn_forward_rows(x, y, r0, r1, mean, inv, gamma, beta, 32); break;
    case 64: bn_forward_rows(x, y, r0, r1, mean, inv, gamma, beta, 64); break;
    default: bn_forward_rows(x, y, r0, r1, mean, inv, gamma, beta, channels);
  }
}

/* y = (x − μ)·(1/√(σ² + ε))·γ + β; γ or β absent when their offset is negative. */
void bnlab_bn_forward(float *heap, int32_t x_off, int32_t mean_off, int32_t var_off,
                      int32_t gamma_off, int32_t beta_off, int32_t y_off, int32_t rows,
                      int32_t channels, float epsilon, int32_t threads) {
  const float *variance = heap + var_off;
  float *inv = malloc((size_t)channels * sizeof(float) * 3);
  if (inv == NULL) abort();
  float *gamma = inv + channels, *beta = inv + 2 * channels;
  for (int32_t c = 0; c < channels; c++) {
    inv[c] = 1.0f / sqrtf(variance[c] + epsilon);
    gamma[c] = gamma_off >= 0 ? heap[gamma_off + c] : 1.0f;
    beta[c] = beta_off >= 0 ? heap[beta_off + c] : 0.0f;
  }
  bn_task t = {heap, x_off, -1, mean_off, var_off, y_off, rows, channels, NULL, NULL,
               inv, gamma, beta, NULL, NULL};
  bnlab_pool_run(bn_forward_part, &t, bn_parts(rows, channels), threads);
  free(inv);
}

/* Σ dy and Σ dy·x̂ per channel for the channels [0, w) of a block, as bn_block_sums. */
static inline __attribute__((always_inline)) void bn_block_backward_sums(
    const float *dy, const float *x, int32_t rows, int32_t stride, const float *mean,
    const float *inv, double *sum_dy, double *sum_dy_xhat, int w) {
  double a[32], b[32];
  float m[32], s[32];
  for (int j = 0; j < w; j++) {
    a[j] = sum_dy[j];
    b[j] = sum_dy_xhat[j];
    m[j] = mean[j];
    s[j] = inv[j];
  }
  for (int32_t r = 0; r < rows; r++) {
    const float *g = dy + (int64_t)r * stride, *in = x + (int64_t)r * stride;
    for (int j = 0; j < w; j++) {
      a[j] += g[j];
      b[j] += (double)g[j] * ((in[j] - m[j]) * s[j]);
    }
  }
  for (int j = 0; j < w; j++) {
    sum_dy[j] = a[j];
    sum_dy_xhat[j] = b[j];
  }
}

static void bn_backward_sums_part(void *context, int part) {
  const bn_task *t = context;
  const int32_t rows = t->rows, channels = t->channels;
  int32_t c0, c1;
  bn_half(channels, bn_parts(rows, channels), part, &c0, &c1);
  const float *dy = t->heap + t->dy_off, *x = t->heap + t->x_off, *mean = t->heap + t->mean_off;
  const float *inv = t->inv;
  double *sum_dy = t->sum, *sum_dy_xhat = t->products;
#define BN_BACKWARD_BLOCK(k, w)                                                            \
  bn_block_backward_sums(dy + (k), x + (k), rows, channels, mean + (k), inv + (k), sum_dy + (k), \
                         sum_dy_xhat + (k), w)
  CHANNEL_BLOCKS(c0, c1, BN_BACKWARD_BLOCK);
#undef BN_BACKWARD_BLOCK
}

/* dx = (dy − mean(dy) − x̂·mean(dy·x̂))·γ·inv over rows [r0, r1) of w channels. */
static inline __attribute__((always_inline)) void bn_dx_rows(
    const float *dy, const float *x, float *dx, int32_t r0, int32_t r1, const float *mean,
    const float *inv, const float *factor, const float *dy_mean, const float *dy_xhat_mean,
    int32_t w) {
  for (int32_t r = r0; r < r1; r++) {
    const float *g = dy + (int64_t)r * w, *in = x + (int64_t)r * w;
    float *out = dx + (int64_t)r * w;
    for (int32_t c = 0; c < w; c++) {
      const float x_hat = (in[c] - mean[c]) * inv[c];
      out[c] = (g[c] - dy_mean[c] - x_hat * dy_xhat_mean[c]) * factor[c];
    }
  }
}

static void bn_backward_dx_part(void *context, int part) {
  const bn_task *t = context;
  const int32_t channels = t->channels;
  int32_t r0, r1;
  bn_half(t->rows, bn_parts(t->rows, channels), part, &r0, &r1);
  const float *dy = t->heap + t->dy_off, *x = t->heap + t->x_off, *mean = t->heap + t->mean_off;
  const float *inv = t->inv, *factor = t->gamma, *dy_mean = t->shift;
  const float *dy_xhat_mean = t->scale;
  float *dx = t->heap + t->out_off;
#define BN_DX_ROWS(W) bn_dx_rows(dy, x, dx, r0, r1, mean, inv, factor, dy_mean, dy_xhat_mean, W)
  switch (channels) {
    case 16: BN_DX_ROWS(16); break;
    case 20: BN_DX_ROWS(20); break;
    case 32: BN_DX_ROWS(32); break;
    case 64: BN_DX_ROWS(64); break;
    default: BN_DX_ROWS(channels);
  }
#undef BN_DX_ROWS
}

/*
 * The analytic backward pass: with x̂ = (x − μ)/√(σ² + ε) and N = rows,
 * dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/√(σ² + ε)·(dy − dβ/N − x̂·dγ/N).
 * dgamma and dbeta get `channels` floats each (dbeta_off or dgamma_off negative: not written).
 */
void bnlab_bn_backward(float *heap, int32_t dy_off, int32_t x_off, int32_t mean_off,
                       int32_t var_off, int32_t gamma_off, int32_t dx_off, int32_t dgamma_off,
                       int32_t dbeta_off, int32_t rows, int32_t channels, float epsilon,
                       int32_t threads) {
  const float *variance = heap + var_off;
  double *sum_dy = calloc((size_t)channels * 2, sizeof(double));
  float *per = malloc((size_t)channels * sizeof(float) * 4);
  if (sum_dy == NULL || per == NULL) abort();
  double *sum_dy_xhat = sum_dy + channels;
  float *inv = per, *factor = per + channels, *dy_mean = per + 2 * channels;
  float *dy_xhat_mean = per + 3 * channels;
  for (int32_t c = 0; c < channels; c++) inv[c] = 1.0f / sqrtf(variance[c] + epsilon);
  bn_task t = {heap, x_off, dy_off, mean_off, var_off, dx_off, rows, channels, sum_dy,
               sum_dy_xhat, inv, factor, NULL, dy_mean, dy_xhat_mean};
  const int parts = bn_parts(rows, channels);
  bnlab_pool_run(bn_backward_sums_part, &t, parts, threads);
  for (int32_t c = 0; c < channels; c++) {
    const float gamma = gamma_off >= 0 ? heap[gamma_off + c] : 1.0f;
    factor[c] = gamma * inv[c];
    dy_mean[c] = (float)(sum_dy[c] / rows);
    dy_xhat_mean[c] = (float)(sum_dy_xhat[c] / rows);
    if (dgamma_off >= 0) heap[dgamma_off + c] = (float)sum_dy_xhat[c];
    if (dbeta_off >= 0) heap[dbeta_off + c] = (float)sum_dy[c];
  }
  bnlab_pool_run(bn_backward_dx_part, &t, parts, threads);
  free(sum_dy);
  free(per);
}

/* ---- 3×3 convolutions of 16 or 32 output channels, stride 1, padding 1 -----------------
 *
 * ResNet-20's 3×3 convolutions at stride 1: im2col + sgemm runs their products of only
 * 16 or 32 columns below the machine's rate, so these compute them directly. NHWC, the filter
 * [3, 3, Cin, Cout] (forward) or [3, 3, Cout, Cin] (input gradient, read flipped and
 * transposed), one zero pixel of padding on every side (tfjs's `same` at stride 1). The
 * images are split into two fixed halves run on the matrix products' thread pool, so the
 * floats do not depend on the threads. Sums run in float in another order than the BLAS's
 * (with fused multiply-adds where the processor has them): the same values within float32
 * rounding, not the same bits. The vectors are 16 floats wide with AVX-512 and 8 with AVX2;
 * each output's chain of multiply-adds is the same on both.
 */

/*
 * The kernels' vector: 16 floats where the processor has AVX-512, else 8. Each output's sum is
 * the same chain of multiply-adds in the same order whatever the width (a lane never mixes
 * with another), so AVX-512 and AVX2 machines compute the same floats.
 */
#if defined(__AVX512F__)
#include <immintrin.h>
typedef float vconv __attribute__((vector_size(64)));
#define CONV_LANES 16
static inline vconv conv_madd(vconv acc, vconv a, vconv b) {
  return (vconv)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)acc);
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef v8f vconv;
#define CONV_LANES 8
static inline vconv conv_madd(vconv acc, vconv a, vconv b) {
  return (vconv)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc);
}
#else
typedef v8f vconv;
#define CONV_LANES 8
static inline vconv conv_madd(vconv acc, vconv a, vconv b) { return acc + a * b; }
#endif
static inline vconv conv_load(const float *p) {
  vconv v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void conv_store(float *p, vconv v) { memcpy(p, &v, sizeof v); }
static inline vconv conv_splat(float v) { return (vconv){0} + v; }

/* Output pixels (forward) and input channels (filter gradient) per block for cout 16 and 32;
 * with 16 lanes, pixel blocks of 14 and 7 divide ResNet-20's widths 28 and 14. */
#if CONV_LANES == 16
#define CONV_PIXELS_16 14
#define CONV_PIXELS_32 7
#define CONV_CHANNELS_16 16
#define CONV_CHANNELS_32 8
#else
#define CONV_PIXELS_16 6
#define CONV_PIXELS_32 2
#define CONV_CHANNELS_16 6
#define CONV_CHANNELS_32 2
#endif

typedef struct {
  const float *x, *filter, *dy;
  float *y;
  int32_t batch, h, w, cin, cout, accumulate;
  float *partial[2]; /* the filter gradient's per-half sums, 9·cin·cout floats each */
} conv3x3_task;

/* Copies image [h, w, c] into [h + 2, w + 2, c] with a border of zeros. */
static void pad_image(const float *x, float *xp, int32_t h, int32_t w, int32_t c) {
  const int64_t prow = (int64_t)(w + 2) * c;
  memset(xp, 0, (size_t)prow * sizeof(float));
  memset(xp + (int64_t)(h + 1) * prow, 0, (size_t)prow * sizeof(float));
  for (int32_t r = 0; r < h; r++) {
    float *to = xp + (int64_t)(r + 1) * prow;
    memset(to, 0, (size_t)c * sizeof(float));
    memcpy(to + c, x + (int64_t)r * w * c, (size_t)w * c * sizeof(float));
    memset(to + (int64_t)(w + 1) * c, 0, (size_t)c * sizeof(float));
  }
}

/* P output pixels from column x of row r: V = cout/CONV_LANES vectors each (the pixels are
 * independent: P changes no float). */
static inline __attribute__((always_inline)) void conv_pixels(
    const conv3x3_task *t, const float *xp, float *y, int32_t r, int32_t x, const int P,
    const int V) {
  const int32_t w = t->w, cin = t->cin, cout = CONV_LANES * V;
  const int64_t prow = (int64_t)(w + 2) * cin;
  vconv acc[16][4];
  for (int p = 0; p < P; p++) {
    for (int v = 0; v < V; v++) acc[p][v] = conv_splat(0.0f);
  }
  for (int32_t tap = 0; tap < 9; tap++) {
    const float *in = xp + (r + tap / 3) * prow + (int64_t)(x + tap % 3) * cin;
    const float *wk = t->filter + (int64_t)tap * cin * cout;
    for (int32_t ci = 0; ci < cin; ci++) {
      vconv wv[4];
      for (int v = 0; v < V; v++) wv[v] = conv_load(wk + (int64_t)ci * cout + CONV_LANES * v);
      for (int p = 0; p < P; p++) {
        const vconv s = conv_splat(in[(int64_t)p * cin + ci]);
        for (int v = 0; v < V; v++) acc[p][v] = conv_madd(acc[p][v], s, wv[v]);
      }
    }
  }
  for (int p = 0; p < P; p++) {
    float *out = y + ((int64_t)r * w + x + p) * cout;
    for (int v = 0; v < V; v++) {
      float *o = out + CONV_LANES * v;
      conv_store(o, t->accumulate ? conv_load(o) + acc[p][v] : acc[p][v]);
    }
  }
}

/* The images [b0, b1) of the forward convolution; V = cout/CONV_LANES, P pixels at a time. */
static inline __attribute__((always_inline)) void conv_images(const conv3x3_task *t,
                                                              int32_t b0, int32_t b1,
                                                              const int P, const int V) {
  const int32_t h = t->h, w = t->w, cin = t->cin;
  float *xp = malloc((size_t)(h + 2) * (w + 2) * cin * sizeof(float));
  if (xp == NULL) abort();
  for (int32_t b = b0; b < b1; b++) {
    pad_image(t->x + (int64_t)b * h * w * cin, xp, h, w, cin);
    float *y = t->y + (int64_t)b * h * w * t->cout;
    for (int32_t r = 0; r < h; r++) {
      int32_t x = 0;
      for (; x + P <= w; x += P) conv_pixels(t, xp, y, r, x, P, V);
      if (P > 4) {
        for (; x + 4 <= w; x += 4) conv_pixels(t, xp, y, r, x, 4, V);
      }
      for (; x < w; x++) conv_pixels(t, xp, y, r, x, 1, V);
    }
  }
  free(xp);
}

/* [0, batch/2) or [batch/2, batch) for part 0 or 1 (one image: all of it in part 0). */
static void half_of(int32_t batch, int part, int32_t *b0, int32_t *b1) {
  const int32_t mid = batch >= 2 ? batch / 2 : batch;
  *b0 = part == 0 ? 0 : mid;
  *b1 = part == 0 ? mid : batch;
}

static void conv_part(void *context, int part) {
  const conv3x3_task *t = context;
  int32_t b0, b1;
  half_of(t->batch, part, &b0, &b1);
  if (t->cout == 16) {
    conv_images(t, b0, b1, CONV_PIXELS_16, 16 / CONV_LANES);
  } else {
    conv_images(t, b0, b1, CONV_PIXELS_32, 32 / CONV_LANES);
  }
}

/*
 * y [batch, h, w, cout] = x [batch, h, w, cin] convolved with the filter at filter_off
 * ([3, 3, cin, cout]; flip = 1: the filter [3, 3, cout, cin] of a convolution from cout to
 * cin channels, whose input gradient this then is), stride 1, one pixel of zero padding;
 * accumulate = 1 adds the sums to y's values (a bias already there). cout is 16 or 32;
 * `threads` 1 or 2.
 */
void bnlab_conv3x3(float *heap, int32_t x_off, int32_t filter_off, int32_t y_off,
                   int32_t batch, int32_t h, int32_t w, int32_t cin, int32_t cout, int32_t flip,
                   int32_t accumulate, int32_t threads) {
  if (cout != 16 && cout != 32) abort();
  float *filter = malloc((size_t)9 * cin * cout * sizeof(float));
  if (filter == NULL) abort();
  const float *given = heap + filter_off;
  if (flip) {
    /* filter'[i][j][ci][co] = filter[2 − i][2 − j][co][ci] */
    for (int32_t tap = 0; tap < 9; tap++) {
      const float *from = given + (int64_t)(8 - tap) * cout * cin;
      float *to = filter + (int64_t)tap * cin * cout;
      for (int32_t ci = 0; ci < cin; ci++) {
        for (int32_t co = 0; co < cout; co++) to[ci * cout + co] = from[co * cin + ci];
      }
    }
  } else {
    memcpy(filter, given, (size_t)9 * cin * cout * sizeof(float));
  }
  conv3x3_task t = {heap + x_off, filter, NULL, heap + y_off, batch, h, w, cin, cout,
                    accumulate, {NULL, NULL}};
  bnlab_pool_run(conv_part, &t, batch >= 2 ? 2 : 1, threads);
  free(filter);
}

/* C input channels (from ci) of one tap over an image's pixels into out [cin, cout], V =
 * cout/CONV_LANES vectors each (each channel's sum runs over the pixels in order: C changes no
 * float). */
static inline __attribute__((always_inline)) void filter_channels(
    const conv3x3_task *t, const float *xp, const float *dy, float *out, int32_t tap,
    int32_t ci, const int C, const int V) {
  const int32_t h = t->h, w = t->w, cin = t->cin, cout = CONV_LANES * V;
  const int64_t prow = (int64_t)(w + 2) * cin;
  vconv acc[16][4];
  for (int c = 0; c < C; c++) {
    for (int v = 0; v < V; v++) acc[c][v] = conv_splat(0.0f);
  }
  for (int32_t r = 0; r < h; r++) {
    const float *in = xp + (r + tap / 3) * prow + (int64_t)(tap % 3) * cin + ci;
    const float *g = dy + (int64_t)r * w * cout;
    for (int32_t x = 0; x < w; x++) {
      vconv gv[4];
      for (int v = 0; v < V; v++) gv[v] = conv_load(g + (int64_t)x * cout + CONV_LANES * v);
      for (int c = 0; c < C; c++) {
        const vconv s = conv_splat(in[(int64_t)x * cin + c]);
        for (int v = 0; v < V; v++) acc[c][v] = conv_madd(acc[c][v], s, gv[v]);
      }
    }
  }
  for (int c = 0; c < C; c++) {
    float *o = out + ((int64_t)tap * cin + ci + c) * cout;
    for (int v = 0; v < V; v++) {
      conv_store(o + CONV_LANES * v, conv_load(o + CONV_LANES * v) + acc[c][v]);
    }
  }
}

/* The filter gradient's sums over images [b0, b1) into out [9, cin, cout] (overwritten). */
static inline __attribute__((always_inline)) void filter_images(
    const conv3x3_task *t, int32_t b0, int32_t b1, float *out, const int C, const int V) {
  const int32_t h = t->h, w = t->w, cin = t->cin, cout = CONV_LANES * V;
  float *xp = malloc((size_t)(h + 2) * (w + 2) * cin * sizeof(float));
  if (xp == NULL) abort();
  memset(out, 0, (size_t)9 * cin * cout * sizeof(float));
  for (int32_t b = b0; b < b1; b++) {
    pad_image(t->x + (int64_t)b * h * w * cin, xp, h, w, cin);
    const float *dy = t->dy + (int64_t)b * h * w * cout;
    for (int32_t tap = 0; tap < 9; tap++) {
      int32_t ci = 0;
      for (; ci + C <= cin; ci += C) filter_channels(t, xp, dy, out, tap, ci, C, V);
      if (C > 4) {
        for (; ci + 4 <= cin; ci += 4) filter_channels(t, xp, dy, out, tap, ci, 4, V);
      }
      for (; ci < cin; ci++) filter_channels(t, xp, dy, out, tap, ci, 1, V);
    }
  }
  free(xp);
}

static void filter_part(void *context, int part) {
  const conv3x3_task *t = context;
  int32_t b0, b1;
  half_of(t->batch, part, &b0, &b1);
  if (t->cout == 16) {
    filter_images(t, b0, b1, t->partial[part], CONV_CHANNELS_16, 16 / CONV_LANES);
  } else {
    filter_images(t, b0, b1, t->partial[part], CONV_CHANNELS_32, 32 / CONV_LANES);
  }
}

/*
 * The filter gradient of bnlab_conv3x3's forward convolution: dw [3, 3, cin, cout] = Σ over
 * images and pixels of x's padded values under each tap times dy [batch, h, w, cout]: per
 * image, sums over its pixels; per half of the images, the sum of those; then the two
 * halves' sum (whatever the threads). cout is 16 or 32.
 */
void bnlab_conv3x3_filter(float *heap, int32_t x_off, int32_t dy_off, int32_t dw_off,
                          int32_t batch, int32_t h, int32_t w, int32_t cin, int32_t cout,
                          int32_t threads) {
  if (cout != 16 && cout != 32) abort();
  const size_t size = (size_t)9 * cin * cout;
  float *partial = malloc(size * 2 * sizeof(float));
  if (partial == NULL) abort();
  conv3x3_task t = {heap + x_off, NULL, heap + dy_off, NULL, batch, h, w, cin, cout, 0,
                    {partial, partial + size}};
  const int parts = batch >= 2 ? 2 : 1;
  bnlab_pool_run(filter_part, &t, parts, threads);
  float *dw = heap + dw_off;
  for (size_t i = 0; i < size; i++) dw[i] = parts == 2 ? partial[i] + partial[size + i] : partial[i];
  free(partial);
}

/* ---- Group normalization (layer normalization: one group) -----------------------------
 *
 * x is read as [n, s, c]: n samples, s positions, c channels (the last axis), the channels
 * split into g groups of c/g consecutive ones. lib/kernels/group_norm_native.ts registers
 * these; lib/norms/group_norm_ops.ts' analytic op is the reference they compute.
 */

/* Σ a and Σ a·b over s positions for the channels [0, w) of a block, the sums in registers. */
static inline __attribute__((always_inline)) void gn_block_sums(const float *a, const float *b,
                                                               int32_t s, int32_t c, double *sum,
                                                               double *products, int w) {
  double acc[32], prod[32];
  for (int j = 0; j < w; j++) acc[j] = prod[j] = 0;
  for (int32_t p = 0; p < s; p++) {
    const float *ra = a + (int64_t)p * c, *rb = b + (int64_t)p * c;
    for (int j = 0; j < w; j++) {
      const double v = ra[j];
      acc[j] += v;
      prod[j] += v * rb[j];
    }
  }
  for (int j = 0; j < w; j++) {
    sum[j] = acc[j];
    products[j] = prod[j];
  }
}

/*
 * Per channel of one sample, Σ a and Σ a·b over its s positions, in double, each channel's in
 * position order (b NULL: Σ a²); the channels in blocks as bn_channel_sums.
 */
static void gn_channel_sums(const float *a, const float *b, int32_t s, int32_t c, double *sum,
                            double *products) {
  if (b == NULL) b = a;
#define GN_SUM_BLOCK(k, w) gn_block_sums(a + (k), b + (k), s, c, sum + (k), products + (k), w)
  CHANNEL_BLOCKS(0, c, GN_SUM_BLOCK);
#undef GN_SUM_BLOCK
}

/* A group normalization call's arguments, shared by the halves of its samples. */
typedef struct {
  float *heap;
  int32_t x_off, dy_off, gamma_off, beta_off, out_off, mean_off, inv_off;
  int32_t n, s, c, g;
  double epsilon;
  double *sums[2]; /* backward: per half, Σ dy and Σ dy·x̂ per channel (2·c doubles) */
} gn_task;

/* Halves of the samples for calls of at least this many values (by shape alone). */
#define GN_SPLIT_MIN 16384

static int gn_parts(int32_t n, int32_t s, int32_t c) {
  return n >= 2 && (int64_t)n * s * c >= GN_SPLIT_MIN ? 2 : 1;
}

/* [0, n/2) or [n/2, n) for part 0 or 1 of `parts`. */
static void gn_half(int32_t n, int parts, int part, int32_t *b0, int32_t *b1) {
  const int32_t mid = parts == 2 ? n / 2 : n;
  *b0 = part == 0 ? 0 : mid;
  *b1 = part == 0 ? mid : n;
}

static void gn_forward_part(void *context, int part) {
  const gn_task *t = context;
  float *heap = t->heap;
  const int32_t s = t->s, c = t->c, g = t->g, per = c / g;
  int32_t b0, b1;
  gn_half(t->n, gn_parts(t->n, s, c), part, &b0, &b1);
  const float *x = heap + t->x_off;
  float *y = heap + t->out_off, *mean = heap + t->mean_off, *inv = heap + t->inv_off;
  double *sums = malloc((size_t)c * 2 * sizeof(double));
  float *cf = malloc((size_t)c * 4 * sizeof(float));
  if (sums == NULL || cf == NULL) abort();
  double *squares = sums + c;
  float *chan_mean = cf, *chan_inv = cf + c, *gamma = cf + 2 * c, *beta = cf + 3 * c;
  for (int32_t ch = 0; ch < c; ch++) {
    gamma[ch] = t->gamma_off >= 0 ? heap[t->gamma_off + ch] : 1.0f;
    beta[ch] = t->beta_off >= 0 ? heap[t->beta_off + ch] : 0.0f;
  }
  const double m = (double)s * per;
  for (int32_t b = b0; b < b1; b++) {
    const float *xb = x + (int64_t)b * s * c;
    float *yb = y + (int64_t)b * s * c;
    gn_channel_sums(xb, NULL, s, c, sums, squares);
    for (int32_t k = 0; k < g; k++) {
      double a = 0, q = 0;
      for (int32_t j = 0; j < per; j++) {
        a += sums[k * per + j];
        q += squares[k * per + j];
      }
      const double mu = a / m;
      double variance = q / m - mu * mu;
      if (variance < 0) variance = 0;
      const float mf = (float)mu, vf = (float)(1.0 / sqrt(variance + t->epsilon));
      mean[(int64_t)b * g + k] = mf;
      inv[(int64_t)b * g + k] = vf;
      for (int32_t j = 0; j < per; j++) {
        chan_mean[k * per + j] = mf;
        chan_inv[k * per + j] = vf;
      }
    }
    /* Without γ the product by 1 is exact; without β nothing is added. */
    for (int32_t p = 0; p < s; p++) {
      const float *in = xb + (int64_t)p * c;
      float *out = yb + (int64_t)p * c;
      if (t->beta_off >= 0) {
        for (int32_t ch = 0; ch < c; ch++) {
          out[ch] = (in[ch] - chan_mean[ch]) * chan_inv[ch] * gamma[ch] + beta[ch];
        }
      } else {
        for (int32_t ch = 0; ch < c; ch++) {
          out[ch] = (in[ch] - chan_mean[ch]) * chan_inv[ch] * gamma[ch];
        }
      }
    }
  }
  free(sums);
  free(cf);
}

/*
 * Per sample and group, over its m = s·(c/g) values: μ and σ² from one pass of sums of x and
 * x² in double (σ² = Σx²/m − μ², at least 0), stored as mean = (float)μ and
 * inv_std = (float)(1/√(σ² + ε)); then x̂ = (x − mean)·inv_std, y = x̂·γ + β in float (γ, β
 * per channel; absent when their offset is negative). mean and inv_std get n·g floats each.
 * Calls of 16384 values or more split the samples into two halves, run on up to `threads`
 * threads of the pool (each sample's floats do not depend on it).
 */
void bnlab_gn_forward(float *heap, int32_t x_off, int32_t gamma_off, int32_t beta_off,
                      int32_t y_off, int32_t mean_off, int32_t inv_off, int32_t n, int32_t s,
                      int32_t c, int32_t g, double epsilon, int32_t threads) {
  gn_task t = {heap, x_off, -1, gamma_off, beta_off, y_off, mean_off, inv_off, n, s, c, g,
               epsilon, {NULL, NULL}};
  bnlab_pool_run(gn_forward_part, &t, gn_parts(n, s, c), threads);
}

static void gn_backward_part(void *context, int part) {
  const gn_task *t = context;
  float *heap = t->heap;
  const int32_t s = t->s, c = t->c, g = t->g, per = c / g;
  int32_t b0, b1;
  gn_half(t->n, gn_parts(t->n, s, c), part, &b0, &b1);
  const float *dy = heap + t->dy_off, *x = heap + t->x_off;
  const float *mean = heap + t->mean_off, *inv = heap + t->inv_off;
  float *dx = heap + t->out_off;
  double *sum_dy = t->sums[part], *sum_dy_xhat = t->sums[part] + c;
  double *acc = malloc((size_t)c * 2 * sizeof(double));
  float *cf = malloc((size_t)c * 6 * sizeof(float));
  float *xhat = malloc((size_t)s * c * sizeof(float));
  if (acc == NULL || cf == NULL || xhat == NULL) abort();
  double *chan_dy = acc, *chan_dy_xhat = acc + c;
  float *gamma = cf, *chan_mean = cf + c, *chan_inv = cf + 2 * c, *chan_gy = cf + 3 * c;
  float *chan_gy_xhat = cf + 4 * c;
  for (int32_t ch = 0; ch < c; ch++) {
    gamma[ch] = t->gamma_off >= 0 ? heap[t->gamma_off + ch] : 1.0f;
    sum_dy[ch] = sum_dy_xhat[ch] = 0;
  }
  const double m = (double)s * per;
  for (int32_t b = b0; b < b1; b++) {
    const float *xb = x + (int64_t)b * s * c, *db = dy + (int64_t)b * s * c;
    float *out = dx + (int64_t)b * s * c;
    for (int32_t k = 0; k < g; k++) {
      for (int32_t j = 0; j < per; j++) {
        chan_mean[k * per + j] = mean[(int64_t)b * g + k];
        chan_inv[k * per + j] = inv[(int64_t)b * g + k];
      }
    }
    for (int64_t p = 0; p < s; p++) {
      const float *in = xb + p * c;
      float *h = xhat + p * c;
      for (int32_t ch = 0; ch < c; ch++) h[ch] = (in[ch] - chan_mean[ch]) * chan_inv[ch];
    }
    gn_channel_sums(db, xhat, s, c, chan_dy, chan_dy_xhat);
    for (int32_t k = 0; k < g; k++) {
      double a = 0, q = 0;
      for (int32_t j = 0; j < per; j++) {
        const int32_t ch = k * per + j;
        sum_dy[ch] += chan_dy[ch];
        sum_dy_xhat[ch] += chan_dy_xhat[ch];
        a += gamma[ch] * chan_dy[ch];
        q += gamma[ch] * chan_dy_xhat[ch];
      }
      for (int32_t j = 0; j < per; j++) {
        chan_gy[k * per + j] = (float)(a / m);
        chan_gy_xhat[k * per + j] = (float)(q / m);
      }
    }
    for (int64_t p = 0; p < s; p++) {
      const float *d = db + p * c, *h = xhat + p * c;
      float *o = out + p * c;
      for (int32_t ch = 0; ch < c; ch++) {
        o[ch] = (d[ch] * gamma[ch] - chan_gy[ch] - h[ch] * chan_gy_xhat[ch]) * chan_inv[ch];
      }
    }
  }
  free(acc);
  free(cf);
  free(xhat);
}

/*
 * The analytic backward pass, with x̂ = (x − mean)·inv_std and gy = γ·dy (γ = 1 when its
 * offset is negative): dx = inv_std·(gy − mean(gy) − x̂·mean(gy·x̂)), the means over each
 * sample's group from per-channel sums of dy and dy·x̂ in double (times γ); dγ = Σ dy·x̂ and
 * dβ = Σ dy per channel over every sample and position (in double: per half of the samples,
 * as bnlab_gn_forward splits them, then the halves' sum). dgamma and dbeta get c floats each
 * (not written when their offset is negative).
 */
void bnlab_gn_backward(float *heap, int32_t dy_off, int32_t x_off, int32_t mean_off,
                       int32_t inv_off, int32_t gamma_off, int32_t dx_off, int32_t dgamma_off,
                       int32_t dbeta_off, int32_t n, int32_t s, int32_t c, int32_t g,
                       int32_t threads) {
  double *sums = malloc((size_t)c * 4 * sizeof(double));
  if (sums == NULL) abort();
  gn_task t = {heap, x_off, dy_off, gamma_off, -1, dx_off, mean_off, inv_off, n, s, c, g, 0,
               {sums, sums + 2 * c}};
  const int parts = gn_parts(n, s, c);
  bnlab_pool_run(gn_backward_part, &t, parts, threads);
  for (int32_t ch = 0; ch < c; ch++) {
    double dbeta = sums[ch], dgamma = sums[c + ch];
    if (parts == 2) {
      dbeta += sums[2 * c + ch];
      dgamma += sums[3 * c + ch];
    }
    if (dgamma_off >= 0) heap[dgamma_off + ch] = (float)dgamma;
    if (dbeta_off >= 0) heap[dbeta_off + ch] = (float)dbeta;
  }
  free(sums);
}

/* ---- Element-wise arithmetic, per-channel sums, tfjs's FusedBatchNorm ------------------
 *
 * lib/kernels/elementwise.ts registers these in place of tfjs's wasm Add, Sub, Multiply,
 * RealDiv, Sum, Mean and FusedBatchNorm for the shapes they handle. Each float operation is
 * the one tfjs's own kernels perform (IEEE single precision, no contraction into fused
 * multiply-adds: -ffp-contract=off), so the outputs are the same floats.
 */

/* Operand layouts of bnlab_binary: a and b of one shape; b one value per channel (the last
 * axis); a one value per channel; b a single value; a a single value. */
enum { SAME = 0, B_CHANNELS = 1, A_CHANNELS = 2, B_SCALAR = 3, A_SCALAR = 4 };

#define BINARY_LOOPS(OP)                                                                    \
  switch (layout) {                                                                         \
    case SAME:                                                                              \
      for (int64_t i = 0; i < n; i++) out[i] = OP(a[i], b[i]);                              \
      break;                                                                                \
    case B_CHANNELS:                                                                        \
      for (int64_t r = 0; r < rows; r++) {                                                  \
        const float *ar = a + r * channels;                                                 \
        float *o = out + r * channels;                                                      \
        for (int32_t c = 0; c < channels; c++) o[c] = OP(ar[c], b[c]);                      \
      }                                                                                     \
      break;                                                                                \
    case A_CHANNELS:                                                                        \
      for (int64_t r = 0; r < rows; r++) {                                                  \
        const float *br = b + r * channels;                                                 \
        float *o = out + r * channels;                                                      \
        for (int32_t c = 0; c < channels; c++) o[c] = OP(a[c], br[c]);                      \
      }                                                                                     \
      break;                                                                                \
    case B_SCALAR: {                                                                        \
      const float s = b[0];                                                                 \
      for (int64_t i = 0; i < n; i++) out[i] = OP(a[i], s);                                 \
      break;                                                                                \
    }                                                                                       \
    case A_SCALAR: {                                                                        \
      const float s = a[0];                                                                 \
      for (int64_t i = 0; i < n; i++) out[i] = OP(s, b[i]);                                 \
      break;                                                                                \
    }                                                                                       \
  }

#define OP_ADD(x, y) ((x) + (y))
#define OP_SUB(x, y) ((x) - (y))
#define OP_MUL(x, y) ((x) * (y))
#define OP_DIV(x, y) ((x) / (y))

/*
 * out = a ∘ b for ∘ in {+, −, ×, ÷} (op 0..3), out being [rows, channels]; a and b laid
 * out as `layout` says. Returns 0, or -1 for an unknown op or layout (nothing written).
 */
int32_t bnlab_binary(float *heap, int32_t op, int32_t layout, int32_t a_off, int32_t b_off,
                     int32_t out_off, int32_t rows, int32_t channels) {
  if (op < 0 || op > 3 || layout < SAME || layout > A_SCALAR) return -1;
  const float *a = heap + a_off, *b = heap + b_off;
  float *out = heap + out_off;
  const int64_t n = (int64_t)rows * channels;
  switch (op) {
    case 0: BINARY_LOOPS(OP_ADD) break;
    case 1: BINARY_LOOPS(OP_SUB) break;
    case 2: BINARY_LOOPS(OP_MUL) break;
    case 3: BINARY_LOOPS(OP_DIV) break;
  }
  return 0;
}

/*
 * out[c] = scale · Σ_r x[r, c], summed in double over the rows in order and rounded once
 * (scale 1 for a sum, 1/rows for a mean): lib/kernels/reduce_leading.ts' loop.
 */
void bnlab_column_sums(float *heap, int32_t x_off, int32_t out_off, int32_t rows,
                       int32_t columns, double scale) {
  const float *x = heap + x_off;
  double *sums = calloc((size_t)columns, sizeof(double));
  if (sums == NULL) abort();
  bn_channel_sums(x, rows, columns, 0, columns, NULL, sums); /* in blocks of columns */
  float *out = heap + out_off;
  for (int32_t c = 0; c < columns; c++) out[c] = (float)(sums[c] * scale);
  free(sums);
}

/*
 * tfjs's FusedBatchNorm as its cpu backend computes it (in double, rounded once):
 * y = β + (x − μ)·γ / √(σ² + ε). Each of mean, variance, scale and offset has one value
 * per channel (length `channels`) or a single value (length 1); scale or offset absent when
 * their offset is negative (γ = 1, β = 0).
 */
void bnlab_fused_batch_norm(float *heap, int32_t x_off, int32_t mean_off, int32_t mean_len,
                            int32_t var_off, int32_t var_len, int32_t scale_off,
                            int32_t scale_len, int32_t offset_off, int32_t offset_len,
                            int32_t y_off, int32_t rows, int32_t channels, double epsilon) {
  double *per = malloc((size_t)channels * 4 * sizeof(double));
  if (per == NULL) abort();
  double *mean = per, *gamma = per + channels, *root = per + 2 * channels;
  double *beta = per + 3 * channels;
  for (int32_t c = 0; c < channels; c++) {
    mean[c] = heap[mean_off + (mean_len == 1 ? 0 : c)];
    gamma[c] = scale_off >= 0 ? heap[scale_off + (scale_len == 1 ? 0 : c)] : 1.0;
    root[c] = sqrt((double)heap[var_off + (var_len == 1 ? 0 : c)] + epsilon);
    beta[c] = offset_off >= 0 ? heap[offset_off + (offset_len == 1 ? 0 : c)] : 0.0;
  }
  const float *x = heap + x_off;
  float *y = heap + y_off;
  for (int32_t r = 0; r < rows; r++) {
    const float *in = x + (int64_t)r * channels;
    float *out = y + (int64_t)r * channels;
    /* JavaScript's off + (x − m)·s / √(v + ε), left to right, in double. */
    for (int32_t c = 0; c < channels; c++) {
      out[c] = (float)(beta[c] + ((double)in[c] - mean[c]) * gamma[c] / root[c]);
    }
  }
  free(per);
}

/*
 * The gradient tfjs 4.22 registers for FusedBatchNorm (x [rows, channels], mean, variance
 * and scale one value per channel), with the floats of its op sequence on these kernels:
 * every product rounded to float32 in tfjs's order, every reduction a column sum in double
 * in row order (bnlab_column_sums). With r = 1/√(σ² + ε) (float32) and s = γ (1 when scale
 * is absent):
 *   dx = (dy·r)·s,  dμ = Σ (r·−1)·(dy·s),  dσ² = Σ (((r·r)·r)·−0.5·(x − μ))·(dy·s),
 *   dγ = Σ dy·((x − μ)·r),  dβ = Σ dy.
 * One pass over dy and x instead of tfjs's fifteen over the activation.
 */
/* The four sums and dx of bnlab_fused_batch_norm_grad for the channels [0, w) of a block (w a
 * constant where inlined, so that the sums stay in registers), each channel's sums in row
 * order as one channel at a time. */
static inline __attribute__((always_inline)) void fbn_grad_block(
    const float *dy, const float *x, float *dx, int32_t rows, int32_t stride, const float *mean,
    const float *per, int32_t channels, double *sums, int w) {
  const float *r = per, *neg_r = per + channels, *half_cube = per + 2 * channels;
  const float *scale = per + 3 * channels;
  double s_mean[16] = {0}, s_var[16] = {0}, s_scale[16] = {0}, s_offset[16] = {0};
  float m[16], rr[16], nr[16], hc[16], sc[16];
  for (int j = 0; j < w; j++) {
    m[j] = mean[j], rr[j] = r[j], nr[j] = neg_r[j], hc[j] = half_cube[j], sc[j] = scale[j];
  }
  for (int32_t row = 0; row < rows; row++) {
    const float *g = dy + (int64_t)row * stride, *in = x + (int64_t)row * stride;
    float *out = dx + (int64_t)row * stride;
    for (int j = 0; j < w; j++) {
      const float centered = in[j] - m[j];
      const float g_scaled = g[j] * sc[j];
      out[j] = (g[j] * rr[j]) * sc[j];
      s_mean[j] += nr[j] * g_scaled;
      s_var[j] += (hc[j] * centered) * g_scaled;
      s_scale[j] += g[j] * (centered * rr[j]);
      s_offset[j] += g[j];
    }
  }
  for (int j = 0; j < w; j++) {
    sums[j] = s_mean[j];
    sums[channels + j] = s_var[j];
    sums[2 * channels + j] = s_scale[j];
    sums[3 * channels + j] = s_offset[j];
  }
}

static void fused_batch_norm_grad(const float *dy, const float *x, const float *mean,
                                  const float *variance, const float *gamma, float *dx,
                                  float *dmean, float *dvar, float *dscale, float *doffset,
                                  int32_t rows, int32_t channels, float epsilon) {
  float *per = malloc((size_t)channels * 4 * sizeof(float));
  double *sums = malloc((size_t)channels * 4 * sizeof(double));
  if (per == NULL || sums == NULL) abort();
  float *r = per, *neg_r = per + channels, *half_cube = per + 2 * channels;
  float *scale = per + 3 * channels;
  for (int32_t c = 0; c < channels; c++) {
    r[c] = 1.0f / sqrtf(variance[c] + epsilon);
    neg_r[c] = r[c] * -1.0f;
    half_cube[c] = ((r[c] * r[c]) * r[c]) * -0.5f;
    scale[c] = gamma != NULL ? gamma[c] : 1.0f;
  }
#define FBN_BLOCK(k, w)                                                                    \
  fbn_grad_block(dy + (k), x + (k), dx + (k), rows, channels, mean + (k), per + (k), channels, \
                 sums + (k), w)
  int32_t c_ = 0;
  for (; c_ + 16 <= channels; c_ += 16) FBN_BLOCK(c_, 16);
  CHANNEL_TAIL(c_, channels, FBN_BLOCK);
#undef FBN_BLOCK
  for (int32_t c = 0; c < channels; c++) {
    dmean[c] = (float)sums[c];
    dvar[c] = (float)sums[channels + c];
    dscale[c] = (float)sums[2 * channels + c];
    doffset[c] = (float)sums[3 * channels + c];
  }
  free(per);
  free(sums);
}

void bnlab_fused_batch_norm_grad(float *heap, int32_t dy_off, int32_t x_off, int32_t mean_off,
                                 int32_t var_off, int32_t scale_off, int32_t dx_off,
                                 int32_t dmean_off, int32_t dvar_off, int32_t dscale_off,
                                 int32_t doffset_off, int32_t rows, int32_t channels,
                                 float epsilon) {
  fused_batch_norm_grad(heap + dy_off, heap + x_off, heap + mean_off, heap + var_off,
                        scale_off >= 0 ? heap + scale_off : NULL, heap + dx_off,
                        heap + dmean_off, heap + dvar_off, heap + dscale_off,
                        heap + doffset_off, rows, channels, epsilon);
}

/*
 * ReLU and its gradient as tfjs's wasm kernels compute them (tfjs's Relu; its gradient
 * dy·Step(x) with Step and Multiply): relu(x) = x > 0 ? x : 0, NaN staying NaN (−0 gives 0);
 * dx = dy·s with s = 1 where x > 0, NaN where x is NaN, else 0 (so −0 where dy < 0).
 * Branch-free, so the compiler vectorizes both loops.
 */
void bnlab_relu(float *heap, int32_t x_off, int32_t y_off, int32_t size) {
  const float *x = heap + x_off;
  float *y = heap + y_off;
  for (int32_t i = 0; i < size; i++) {
    const float v = x[i];
    y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
  }
}

void bnlab_relu_grad(float *heap, int32_t dy_off, int32_t x_off, int32_t dx_off, int32_t size) {
  const float *dy = heap + dy_off, *x = heap + x_off;
  float *dx = heap + dx_off;
  for (int32_t i = 0; i < size; i++) {
    const float v = x[i];
    const float step = v > 0.0f ? 1.0f : (v != v ? v : 0.0f);
    dx[i] = dy[i] * step;
  }
}

/*
 * The logistic sigmoid as tfjs's wasm `Sigmoid` computes it (XNNPACK's wasm SIMD kernel,
 * "rr2_p5_div"), operation for operation in float without fused multiply-adds, so every
 * output has the same bits: with z = −|x|,
 *
 *   n = z·log2(e) + M, with M = 1.5·2^23 + 127 (n rounded to an integer, its low bits the
 *   biased exponent);  s = 2^(n − 127) made from n's bits;  n = n − M;
 *   t = n·(−ln 2)_hi + z;  t = n·(−ln 2)_lo + t;
 *   p = (((c5·t + c4)·t + c3)·t + c2)·t + c1;  e = (t·s)·p + s  (≈ e^z);
 *   f = e/(e + 1), 0 where z < −87.34 (e^z would be subnormal);
 *   y = f for x with the sign bit set, 1 − f otherwise; NaN stays NaN, its sign cleared.
 *
 * The constants are the kernel's, as tfjs's binary sets them up. tests/elementwise_test.ts
 * compares the bits with tfjs's kernel on a sweep of float32 inputs, and on every one of the
 * 2^32 with BNLAB_TEST_EVERY_FLOAT=1.
 */
static inline float float_of(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static inline uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

void bnlab_sigmoid(float *heap, int32_t x_off, int32_t y_off, int32_t size) {
  const float *x = heap + x_off;
  float *y = heap + y_off;
  const float log2e = float_of(0x3FB8AA3B), magic = float_of(0x4B40007F);
  const float minus_ln2_hi = float_of(0xBF317200), minus_ln2_lo = float_of(0xB5BFBE8E);
  const float c5 = float_of(0x3C07CFCE), c4 = float_of(0x3D2B9D0D), c3 = float_of(0x3E2AAD40);
  const float c2 = float_of(0x3EFFFEE3), c1 = float_of(0x3F7FFFFB);
  const float cutoff = float_of(0xC2AEAC4F);
  for (int32_t i = 0; i < size; i++) {
    const uint32_t xb = bits_of(x[i]);
    const float z = float_of(xb | 0x80000000u);
    float n = z * log2e + magic;
    const float s = float_of(bits_of(n) << 23);
    n = n - magic;
    float t = n * minus_ln2_hi + z;
    t = n * minus_ln2_lo + t;
    float p = t * c5 + c4;
    p = p * t + c3;
    p = p * t + c2;
    p = p * t + c1;
    t = t * s;
    const float e = t * p + s;
    const float d = e + 1.0f;
    float f = e / d;
    f = float_of(bits_of(f) & (z < cutoff ? 0u : ~0u));
    const float cf = 1.0f - f;
    const uint32_t negative = (uint32_t)((int32_t)xb >> 31);
    const uint32_t out = (bits_of(f) & negative) | (bits_of(cf) & ~negative);
    /* NaN in: tfjs's kernel gives x's payload, quieted, with the sign cleared. */
    const uint32_t nan = -(uint32_t)(z != z);
    y[i] = float_of((out & ~nan) | ((xb | 0x00400000u) & 0x7fffffffu & nan));
  }
}

/*
 * The sigmoid's gradient from its output y as tfjs writes it, dy·(y·(1 − y)): three IEEE
 * single-precision operations per element in that order (tfjs's Sub, Multiply and Multiply).
 */
void bnlab_sigmoid_grad(float *heap, int32_t dy_off, int32_t y_off, int32_t dx_off, int32_t size) {
  const float *dy = heap + dy_off, *y = heap + y_off;
  float *dx = heap + dx_off;
  for (int32_t i = 0; i < size; i++) {
    const float v = y[i];
    const float slope = v * (1.0f - v);
    dx[i] = dy[i] * slope;
  }
}

/*
 * The gradient of x² as tfjs 4.22 registers it, mul(dy, mul(x, 2)): dx = dy·(x·2), each
 * product rounded to float32 (x·2 is exact unless it overflows).
 */
void bnlab_square_grad(float *heap, int32_t dy_off, int32_t x_off, int32_t dx_off, int32_t size) {
  const float *dy = heap + dy_off, *x = heap + x_off;
  float *dx = heap + dx_off;
  for (int32_t i = 0; i < size; i++) {
    const float twice = x[i] * 2.0f;
    dx[i] = dy[i] * twice;
  }
}

/*
 * Plain SGD's update of one variable as tfjs's SGDOptimizer writes it, add(mul(c, g), v) with
 * c = −lr as a float32: out = c·g + v, the product and the sum each rounded to float32.
 */
void bnlab_sgd_update(float *heap, int32_t v_off, int32_t g_off, int32_t out_off, int32_t size,
                      float c) {
  const float *v = heap + v_off, *g = heap + g_off;
  float *out = heap + out_off;
  for (int32_t i = 0; i < size; i++) {
    const float step = c * g[i];
    out[i] = step + v[i];
  }
}

/*
 * expf and logf as tfjs's wasm binary computes them: its C library's (musl's, from Arm's
 * optimized-routines) algorithms and tables, evaluated in double and rounded once to float32,
 * which compiled without contraction (-ffp-contract=off) gives the same bits on any IEEE
 * machine. exp: x·32/ln2 = k + r, 2^(k/32) from the table (its entries less i·2^47), a cubic
 * in r. log: x = 2^k·z with z near a table point c, log(z/c) by a cubic, plus log(c) + k·ln2.
 * The tables are the ones in tfjs 4.22's wasm binaries (both hold the same).
 * tests/losses_test.ts compares the bits with tfjs's Exp and Log kernels on a sweep of float32
 * inputs, and on every one of the 2^32 with BNLAB_TEST_EVERY_FLOAT=1.
 */
static const uint64_t expf_table[32] = {
  0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
  0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
  0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
  0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
  0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
  0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
  0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
  0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};
static const double logf_table[16][2] = {
  {0x1.661ec79f8f3bep+0, -0x1.57bf7808caadep-2},
  {0x1.571ed4aaf883dp+0, -0x1.2bef0a7c06ddbp-2},
  {0x1.49539f0f010b0p+0, -0x1.01eae7f513a67p-2},
  {0x1.3c995b0b80385p+0, -0x1.b31d8a68224e9p-3},
  {0x1.30d190c8864a5p+0, -0x1.6574f0ac07758p-3},
  {0x1.25e227b0b8ea0p+0, -0x1.1aa2bc79c8100p-3},
  {0x1.1bb4a4a1a343fp+0, -0x1.a4e76ce8c0e5ep-4},
  {0x1.12358f08ae5bap+0, -0x1.1973c5a611cccp-4},
  {0x1.0953f419900a7p+0, -0x1.252f438e10c1ep-5},
  {0x1.0000000000000p+0, 0x0.0p+0},
  {0x1.e608cfd9a47acp-1, 0x1.aa5aa5df25984p-5},
  {0x1.ca4b31f026aa0p-1, 0x1.c5e53aa362eb4p-4},
  {0x1.b2036576afce6p-1, 0x1.526e57720db08p-3},
  {0x1.9c2d163a1aa2dp-1, 0x1.bc2860d224770p-3},
  {0x1.886e6037841edp-1, 0x1.1058bc8a07ee1p-2},
  {0x1.767dcf5534862p-1, 0x1.4043057b6ee09p-2},
};

static inline uint64_t double_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static inline double double_of(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static float musl_expf(float x) {
  const double shift = 0x1.8p+52, inv_ln2_32 = 0x1.71547652b82fep+5;
  const double c0 = 0x1.c6af84b912394p-20, c1 = 0x1.ebfce50fac4f3p-13, c2 = 0x1.62e42ff0c52d6p-6;
  const uint32_t abstop = (bits_of(x) >> 20) & 0x7ff;
  if (abstop >= (bits_of(88.0f) >> 20)) {
    if (bits_of(x) == bits_of(-INFINITY)) return 0.0f;
    if (abstop >= (bits_of(INFINITY) >> 20)) return x + x;
    if (x > 0x1.62e42ep6f) return INFINITY;
    if (x < -0x1.9fe368p6f) return 0.0f;
  }
  double z = inv_ln2_32 * (double)x;
  double kd = z + shift;
  const uint64_t ki = double_bits(kd);
  kd -= shift;
  const double r = z - kd;
  const double s = double_of(expf_table[ki % 32] + (ki << 47));
  z = c0 * r + c1;
  const double r2 = r * r;
  double y = c2 * r + 1;
  y = z * r2 + y;
  return (float)(y * s);
}

static float musl_logf(float x) {
  const double ln2 = 0x1.62e42fefa39efp-1;
  const double a0 = -0x1.00ea348b88334p-2, a1 = 0x1.5575b0be00b6ap-2, a2 = -0x1.ffffef20a4123p-2;
  uint32_t ix = bits_of(x);
  if (ix == 0x3f800000) return 0.0f;
  if (ix - 0x00800000 >= 0x7f800000 - 0x00800000) {
    if (ix * 2 == 0) return -INFINITY;
    if (ix == 0x7f800000) return x;
    if ((ix & 0x80000000) || ix * 2 >= 0xff000000) return (x - x) / (x - x);
    ix = bits_of(x * 0x1p23f); /* subnormal: normalize */
    ix -= 23 << 23;
  }
  const uint32_t tmp = ix - 0x3f330000;
  const int i = (tmp >> 19) % 16;
  const int k = (int32_t)tmp >> 23;
  const double z = (double)float_of(ix - (tmp & 0xff800000u));
  const double r = z * logf_table[i][0] - 1;
  const double y0 = logf_table[i][1] + (double)k * ln2;
  const double r2 = r * r;
  double y = a1 * r + a2;
  y = a0 * r2 + y;
  y = y * r2 + (y0 + r);
  return (float)y;
}

/* y = expf(x) (op 0) or logf(x) (op 1) element by element: the tests' view of the two. */
void bnlab_exp_log(float *heap, int32_t op, int32_t x_off, int32_t y_off, int32_t size) {
  const float *x = heap + x_off;
  float *y = heap + y_off;
  for (int32_t i = 0; i < size; i++) y[i] = op == 0 ? musl_expf(x[i]) : musl_logf(x[i]);
}

static inline float label_at(const float *heap, int32_t off, int32_t ints, int32_t i) {
  return ints ? (float)((const int32_t *)(heap + off))[i] : heap[off + i];
}

/*
 * Softmax cross-entropy of [rows, cols] logits against labels (float32, or int32 when `ints`,
 * converted as tfjs's Cast does) as tfjs 4.22's softmaxCrossEntropy computes it on wasm, each
 * step rounded to float32 in its order: per row, m = the largest logit (tfjs's Max: the first,
 * replaced by any greater), lse = m + logf(Σ expf(x − m)) (the sum in float32 from zero, in
 * column order), logSoftmax = x − lse; each row's cost Σ_cols −(logSoftmax·label) (likewise),
 * their sum over rows in double, rounded once (bnlab's Sum over a leading axis, reduce_leading.ts,
 * which replaces tfjs's there), divided by rows. Writes logSoftmax [rows, cols] and the loss.
 */
void bnlab_softmax_xent(float *heap, int32_t logits_off, int32_t labels_off, int32_t ints,
                        int32_t rows, int32_t cols, int32_t log_softmax_off, int32_t loss_off) {
  const float *logits = heap + logits_off;
  float *log_softmax = heap + log_softmax_off;
  double total = 0.0;
  for (int32_t r = 0; r < rows; r++) {
    const float *x = logits + (int64_t)r * cols;
    float *ls = log_softmax + (int64_t)r * cols;
    float m = x[0];
    for (int32_t j = 0; j < cols; j++) {
      if (x[j] > m) m = x[j];
    }
    float sum = 0.0f;
    for (int32_t j = 0; j < cols; j++) sum += musl_expf(x[j] - m);
    const float lse = m + musl_logf(sum);
    float cost = 0.0f;
    for (int32_t j = 0; j < cols; j++) {
      ls[j] = x[j] - lse;
      const float product = ls[j] * label_at(heap, labels_off, ints, r * cols + j);
      cost += -product;
    }
    total += cost;
  }
  heap[loss_off] = (float)total / (float)rows;
}

/*
 * Its gradient as tfjs 4.22 registers it, from dy (the loss's gradient) and logSoftmax: with
 * g = dy / rows and p = expf(logSoftmax), dlabels = g·(label − p) and dlogits = g·(p − label).
 */
void bnlab_softmax_xent_grad(float *heap, int32_t dy_off, int32_t labels_off, int32_t ints,
                             int32_t log_softmax_off, int32_t rows, int32_t cols,
                             int32_t dlabels_off, int32_t dlogits_off) {
  const float g = heap[dy_off] / (float)rows;
  const float *ls = heap + log_softmax_off;
  float *dlabels = heap + dlabels_off, *dlogits = heap + dlogits_off;
  const int64_t size = (int64_t)rows * cols;
  for (int64_t i = 0; i < size; i++) {
    const float p = musl_expf(ls[i]);
    const float label = label_at(heap, labels_off, ints, (int32_t)i);
    dlabels[i] = g * (label - p);
    dlogits[i] = g * (p - label);
  }
}

/*
 * Per-channel sums in double, in row order, of float32 terms of a [rows, stride] matrix's
 * channels [0, w): fl(fl(x − m)²) (factor absent) or fl(factor·fl(fl(x − m)·2)) (tfjs's
 * squared deviations, and its square's gradient through them), each channel's sum as one
 * channel at a time would add it, kept in registers for blocks of 32, 16 and 8 channels.
 */
static inline __attribute__((always_inline)) void tfjs_block_sums(const float *x, int32_t rows,
                                                                 int32_t stride,
                                                                 const float *mean,
                                                                 const float *factor, double *sum,
                                                                 int w) {
  double acc[32];
  float m[32], f[32];
  for (int j = 0; j < w; j++) {
    acc[j] = 0.0;
    m[j] = mean[j];
    f[j] = factor != NULL ? factor[j] : 0.0f;
  }
  for (int32_t r = 0; r < rows; r++) {
    const float *row = x + (int64_t)r * stride;
    for (int j = 0; j < w; j++) {
      const float d = row[j] - m[j];
      if (factor == NULL) {
        const float square = d * d;
        acc[j] += square;
      } else {
        const float twice = d * 2.0f;
        const float term = f[j] * twice;
        acc[j] += term;
      }
    }
  }
  for (int j = 0; j < w; j++) sum[j] = acc[j];
}

static void tfjs_channel_sums(const float *x, int32_t rows, int32_t channels, const float *mean,
                              const float *factor, double *sum) {
#define TFJS_SUM_BLOCK(k, w) \
  tfjs_block_sums(x + (k), rows, channels, mean + (k), factor ? factor + (k) : NULL, sum + (k), w)
  CHANNEL_BLOCKS(0, channels, TFJS_SUM_BLOCK);
#undef TFJS_SUM_BLOCK
}

/*
 * tfjs's BatchNormalization layer in training (tfjs-layers 4.22: tf.moments, tf.batchNorm, then
 * the moving averages) for x [rows, channels] with γ and β, with the floats its ops give on
 * these kernels: μ = Σ x / rows and σ² = Σ (x − μ)² / rows, each sum in double in row order
 * and scaled by 1/rows in double, rounded once (bnlab's Mean over leading axes, with x − μ and
 * its square rounded to float32 first); y as bnlab_fused_batch_norm; the moving averages
 * m − (m − μ)·decay and v − (v − σ²)·decay in float32 (decay = 1 − momentum as float32).
 */
void bnlab_tfjs_bn_training(float *heap, int32_t x_off, int32_t gamma_off, int32_t beta_off,
                            int32_t moving_mean_off, int32_t moving_var_off, int32_t y_off,
                            int32_t mean_off, int32_t var_off, int32_t new_mean_off,
                            int32_t new_var_off, int32_t rows, int32_t channels, double epsilon,
                            float decay) {
  double *sums = malloc((size_t)channels * sizeof(double));
  if (sums == NULL) abort();
  const float *x = heap + x_off;
  float *mean = heap + mean_off, *var = heap + var_off;
  const double scale = 1.0 / rows;
  for (int32_t c = 0; c < channels; c++) sums[c] = 0.0;
  bn_channel_sums(x, rows, channels, 0, channels, NULL, sums);
  for (int32_t c = 0; c < channels; c++) mean[c] = (float)(sums[c] * scale);
  tfjs_channel_sums(x, rows, channels, mean, NULL, sums);
  for (int32_t c = 0; c < channels; c++) var[c] = (float)(sums[c] * scale);
  free(sums);
  bnlab_fused_batch_norm(heap, x_off, mean_off, channels, var_off, channels, gamma_off, channels,
                         beta_off, channels, y_off, rows, channels, epsilon);
  for (int32_t c = 0; c < channels; c++) {
    const float m = heap[moving_mean_off + c], v = heap[moving_var_off + c];
    const float mean_step = (m - mean[c]) * decay, var_step = (v - var[c]) * decay;
    heap[new_mean_off + c] = m - mean_step;
    heap[new_var_off + c] = v - var_step;
  }
}

/*
 * The gradient of bnlab_tfjs_bn_training's y with respect to x, γ and β as tfjs's tape
 * composes it from its ops' gradients on these kernels: FusedBatchNorm's (as
 * bnlab_fused_batch_norm_grad: dx₁, dμ₁, dσ²₁, dγ, dβ), then through σ² = mean((x − μ)²) and
 * μ = mean(x), each step rounded to float32 as tfjs's kernels round it:
 *   d = dσ²₁ / rows,  e = d·((x − μ)·2),  dμ = dμ₁ + (−Σ e)  (Σ in double, rounded once),
 *   dx = (dx₁ + e) + dμ / rows.
 */
void bnlab_tfjs_bn_training_grad(float *heap, int32_t dy_off, int32_t x_off, int32_t mean_off,
                                 int32_t var_off, int32_t gamma_off, int32_t dx_off,
                                 int32_t dgamma_off, int32_t dbeta_off, int32_t rows,
                                 int32_t channels, float epsilon) {
  float *per = malloc((size_t)channels * 4 * sizeof(float));
  double *sums = malloc((size_t)channels * sizeof(double));
  if (per == NULL || sums == NULL) abort();
  float *dmean = per, *dvar = per + channels, *d = per + 2 * channels, *shift = per + 3 * channels;
  const float *x = heap + x_off, *mean = heap + mean_off;
  float *dx = heap + dx_off;
  fused_batch_norm_grad(heap + dy_off, x, mean, heap + var_off, heap + gamma_off, dx, dmean, dvar,
                        heap + dgamma_off, heap + dbeta_off, rows, channels, epsilon);
  const float count = (float)rows;
  for (int32_t c = 0; c < channels; c++) d[c] = dvar[c] / count;
  tfjs_channel_sums(x, rows, channels, mean, d, sums);
  for (int32_t c = 0; c < channels; c++) {
    const float through_variance = (float)(-sums[c]);
    const float total = dmean[c] + through_variance;
    shift[c] = total / count;
  }
  for (int32_t r = 0; r < rows; r++) {
    const float *in = x + (int64_t)r * channels;
    float *out = dx + (int64_t)r * channels;
    for (int32_t c = 0; c < channels; c++) {
      const float twice = (in[c] - mean[c]) * 2.0f;
      const float e = d[c] * twice;
      const float partial = out[c] + e;
      out[c] = partial + shift[c];
    }
  }
  free(per);
  free(sums);
}
