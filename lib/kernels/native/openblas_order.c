/*
 * Matrix products with every float of OpenBLAS 0.3.21's Haswell kernels (the BLAS bnlab loads,
 * its core pinned by OPENBLAS_CORETYPE=Haswell), computed with AVX-512 where the processor has
 * it: the same products, twice as wide. Part of bnlab's native library (compiled with
 * bnlab_kernels.c and thread_pool.c by scripts/build_native.ts); thread_pool.c calls
 * bnlab_openblas_order_gemm in place of cblas_sgemm when lib/kernels/blas.ts has switched it on.
 *
 * OpenBLAS computes C = op(A)·op(B) in column-major terms, C' = B'·A' with m' = N columns of our
 * row-major C, n' = M rows; each element's sum is a chain of fused multiply-adds over the
 * depth, cut into blocks of Q = 320 terms (a block of more than Q and fewer than 2Q terms is
 * halved, rounded up to 8), each block's chain starting from zero and added to C. Within a block
 * the chain runs k = 0, 1, 2, … except in the kernel's m8n6 tiles of 12-column panels (and its
 * m8n4 tiles of 4-column panels), which sum even and odd k apart over the first 8·⌊kc/8⌋ terms
 * (the rest going to the even sum) and add the two. Which elements those are follows from the
 * driver's blocking (P = 320 rows of C' per block, panels of 12 columns, then 4, then the rest,
 * blocks of R = 25872 columns) and the kernel's staircase of 8×6 and 16×6 tiles, replayed here
 * (oo_classes, oo_ranges). tests/openblas_order_test.ts compares every float with OpenBLAS's on
 * random shapes and transposes.
 *
 * The loop order over tiles and strips of B is free (each element's chain is the same in any
 * order): where B is large (a dense layer's weights beside a small batch), groups of tiles share
 * each strip of B while it is in the core's cache and prefetch its rows ahead, so that B is read
 * from memory once, at the rate of a stream.
 *
 * Without AVX-512, for alpha ≠ 1 or beta other than 0 and 1, and for the shapes OpenBLAS runs
 * faster (a transposed B on few rows of C, large depth blocks of B on many) the kernel declines
 * (returns -1) and the caller runs OpenBLAS itself: the floats are the same either way.
 */
#include <stdint.h>
#include <stdlib.h>

int32_t bnlab_openblas_order_gemm(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                  float alpha, const float *a, int32_t lda, const float *b,
                                  int32_t ldb, float beta, float *c, int32_t ldc);

/* Whether this build has the kernel (1: compiled for AVX-512), else it declines every product. */
int32_t bnlab_openblas_order_available(void) {
#if defined(__AVX512F__)
  return 1;
#else
  return 0;
#endif
}

#if defined(__AVX512F__)
#include <immintrin.h>

#define OO_P 320   /* rows of C' (columns of C) per block */
#define OO_Q 320   /* depth per block */
#define OO_R 25872 /* columns of C' (rows of C) per block: a multiple of 12 */
#define OO_UM 8    /* the kernel's tile height */
#define OO_UN 4    /* its panel width */
#define OO_PF 16   /* rows of B ahead that a tile asks the cache for */
#define OO_CHUNK 8 /* tiles of rows that share each strip of B while it is in the core's cache */
#define OO_LARGE_B (256 << 10) /* bytes of B from which tiles share its strips and prefetch */
#define OO_GROUP 64 /* the most tiles that share a strip of B */

/* Row classes: where an element's sum splits into even and odd k (OpenBLAS's m8n6 and m8n4
 * tiles) depends on its row's place in the kernel's column panels. */
enum { OO_NONE = 0, OO_L12 = 1, OO_R12 = 2, OO_N4 = 3 };

static int oo_block(int rest) {
  if (rest >= OO_P * 2) return OO_P;
  if (rest > OO_P) return ((rest / 2 + OO_UM - 1) / OO_UM) * OO_UM;
  return rest;
}

static int oo_depth(int rest) {
  if (rest >= OO_Q * 2) return OO_Q;
  if (rest > OO_Q) return ((rest / 2 + OO_UM - 1) / OO_UM) * OO_UM;
  return rest;
}

/*
 * The class of each row of C (column of C') in a block of `rows`: `first` for the first block
 * of C' rows, which the driver hands to the kernel in panels of 12 columns, then 4, then the
 * rest (each under 4 as panels of 2 and 1); else for the later blocks, which the kernel cuts
 * itself into panels of 12, 8, 4, 2 and 1. A 12-panel's first six columns are its left half.
 */
static void oo_classes(uint8_t *cls, int rows, int first) {
  int pos = 0;
  while (pos < rows) {
    const int left = rows - pos;
    int w;
    if (first) w = left >= 3 * OO_UN ? 3 * OO_UN : left > OO_UN ? OO_UN : left;
    else w = left > 11 ? 12 : left > 7 ? 8 : left > 3 ? 4 : left > 1 ? 2 : 1;
    if (w == 3 * OO_UN) {
      for (int jj = 0; jj < w; jj++) cls[pos + jj] = jj < w / 2 ? OO_L12 : OO_R12;
    } else if (w == OO_UN) {
      for (int jj = 0; jj < w; jj++) cls[pos + jj] = OO_N4;
    } else {
      for (int jj = 0; jj < w; jj++) cls[pos + jj] = OO_NONE;
    }
    pos += w;
  }
}

/*
 * The rows of C' (columns of C) [lo, hi) of a block of mi rows whose sums split for a column of
 * class `cls`; returns how many ranges (at most two). A 4-panel's m8n4 tiles split every full
 * tile of 8 rows. A 12-panel of 16 rows or more starts with an m8n6 tile over the left half's
 * rows 0-7, then climbs a staircase of 16×6 tiles (right half at rows c..c+16, left half at
 * c+8..c+24, …, single sums) and ends with an m8n6 tile on the half that is 8 rows behind
 * (split); the rows past the last multiple of 8 go to single-sum tiles of 4, 2 and 1 rows.
 */
static int oo_ranges(int cls, int mi, int lo[2], int hi[2]) {
  if (cls == OO_N4) {
    lo[0] = 0, hi[0] = mi / 8 * 8;
    return hi[0] > 0;
  }
  if ((cls != OO_L12 && cls != OO_R12) || mi < 16) return 0;
  int c = 0, r11 = mi, side;
  for (;;) {
    c += 8, r11 -= 8;
    if (r11 < 16) { side = OO_L12; break; }
    c += 8, r11 -= 8;
    if (r11 < 16) { side = OO_R12; break; }
  }
  int n = 0;
  if (cls == OO_L12) lo[n] = 0, hi[n] = 8, n++;
  if (cls == side) lo[n] = c, hi[n] = c + 8, n++;
  return n;
}

/* The lanes of the 16 rows of C' from v0 that fall in the n ranges. */
static __mmask16 oo_mask(int v0, int n, const int *lo, const int *hi) {
  uint32_t m = 0;
  for (int r = 0; r < n; r++) {
    const int a = lo[r] > v0 ? lo[r] : v0, b = hi[r] < v0 + 16 ? hi[r] : v0 + 16;
    for (int i = a; i < b; i++) m |= 1u << (i - v0);
  }
  return (__mmask16)m;
}

/* How a vector's odd terms of the paired depth are summed: into the one accumulator (single),
 * into the odd accumulator (every lane split), or by lane (mixed). */
enum { OO_SINGLE = 0, OO_SPLIT = 1, OO_MIXED = 2 };

/* Asks the cache for row `kk` + OO_PF of a 32-column strip of B (three lines: the strip need not
 * start on one). A prefetch past the end of B is a hint, not a read. */
static inline __attribute__((always_inline)) void oo_prefetch(const float *bk, int64_t kk,
                                                              int ldb) {
  const char *p = (const char *)(bk + (kk + OO_PF) * ldb);
  _mm_prefetch(p, _MM_HINT_T0);
  _mm_prefetch(p + 64, _MM_HINT_T0);
  _mm_prefetch(p + 127, _MM_HINT_T0);
}

static inline __attribute__((always_inline)) __m512 oo_odd(int mode, __m512 a, __m512 b,
                                                          __m512 *e, __m512 o, __mmask16 s) {
  if (mode == OO_SINGLE) {
    *e = _mm512_fmadd_ps(a, b, *e);
    return o;
  }
  if (mode == OO_SPLIT) return _mm512_fmadd_ps(a, b, o);
  *e = _mm512_mask3_fmadd_ps(a, b, *e, (__mmask16)~s);
  return _mm512_mask3_fmadd_ps(a, b, o, s);
}

/*
 * Rows [j0, j0 + NR) (one class), columns [v0, v0 + 32) of a block (lanes t0/t1, split lanes
 * s0/s1, their modes M0/M1), every depth block in order: each depth block's sums start from
 * zero and are added to C, as OpenBLAS's kernel does.
 */
static inline __attribute__((always_inline)) void oo_tile_body(
    const float *restrict a, int64_t as, int64_t ar, const int32_t *rows, const int32_t *terms,
    const float *restrict b, int ldb, float *restrict c, int ldc, int k, int zero_c,
    __mmask16 t0, __mmask16 t1, __mmask16 s0, __mmask16 s1, const int NR, const int M0,
    const int M1, const int G, const int PF) {
  /* Gathered (G): op(A)[r][kk] is a[rows[r] + terms[kk]], an im2col matrix never written. */
  const float *ga[6];
  if (G) for (int r = 0; r < NR; r++) ga[r] = a + rows[r];
  for (int ls = 0, kc; ls < k; ls += kc) {
    kc = oo_depth(k - ls);
    __m512 e[6][2], o[6][2];
    for (int r = 0; r < NR; r++) e[r][0] = e[r][1] = o[r][0] = o[r][1] = _mm512_setzero_ps();
    const float *bk = b + (int64_t)ls * ldb;
    const float *ak = G ? a : a + (int64_t)ls * as;
    const int32_t *tk = G ? terms + ls : terms;
#define OO_A(r, kk) (G ? ga[r][tk[kk]] : ak[(int64_t)(kk) * as + (r) * ar])
    int kk = 0;
    if ((M0 != OO_SINGLE || M1 != OO_SINGLE) && kc >= 8) {
      const int paired = kc / 8 * 8;
      for (; kk < paired; kk += 2) {
        const float *b_even = bk + (int64_t)kk * ldb, *b_odd = b_even + ldb;
        if (PF) {
          oo_prefetch(bk, kk, ldb);
          oo_prefetch(bk, kk + 1, ldb);
        }
        const __m512 b0 = _mm512_maskz_loadu_ps(t0, b_even);
        const __m512 b1 = _mm512_maskz_loadu_ps(t1, b_even + 16);
        const __m512 c0 = _mm512_maskz_loadu_ps(t0, b_odd);
        const __m512 c1 = _mm512_maskz_loadu_ps(t1, b_odd + 16);
        for (int r = 0; r < NR; r++) {
          const __m512 x = _mm512_set1_ps(OO_A(r, kk));
          const __m512 y = _mm512_set1_ps(OO_A(r, kk + 1));
          e[r][0] = _mm512_fmadd_ps(x, b0, e[r][0]);
          e[r][1] = _mm512_fmadd_ps(x, b1, e[r][1]);
          o[r][0] = oo_odd(M0, y, c0, &e[r][0], o[r][0], s0);
          o[r][1] = oo_odd(M1, y, c1, &e[r][1], o[r][1], s1);
        }
      }
    }
    for (; kk < kc; kk++) {
      if (PF) oo_prefetch(bk, kk, ldb);
      const __m512 b0 = _mm512_maskz_loadu_ps(t0, bk + (int64_t)kk * ldb);
      const __m512 b1 = _mm512_maskz_loadu_ps(t1, bk + (int64_t)kk * ldb + 16);
      for (int r = 0; r < NR; r++) {
        const __m512 x = _mm512_set1_ps(OO_A(r, kk));
        e[r][0] = _mm512_fmadd_ps(x, b0, e[r][0]);
        e[r][1] = _mm512_fmadd_ps(x, b1, e[r][1]);
      }
    }
    for (int r = 0; r < NR; r++) {
      float *cr = c + (int64_t)r * ldc;
      /* Split lanes add their two sums (odd + even, as OpenBLAS's vaddps). */
      const __m512 x0 =
          M0 == OO_SINGLE ? e[r][0] : _mm512_mask_add_ps(e[r][0], s0, o[r][0], e[r][0]);
      const __m512 x1 =
          M1 == OO_SINGLE ? e[r][1] : _mm512_mask_add_ps(e[r][1], s1, o[r][1], e[r][1]);
      /* C = sum + C, C zero before the first depth block for beta 0 (so -0 becomes +0). */
      const int fresh = zero_c && ls == 0;
      const __m512 c0 = fresh ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(t0, cr);
      _mm512_mask_storeu_ps(cr, t0, _mm512_add_ps(x0, c0));
      if (t1) {
        const __m512 c1 = fresh ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(t1, cr + 16);
        _mm512_mask_storeu_ps(cr + 16, t1, _mm512_add_ps(x1, c1));
      }
    }
  }
#undef OO_A
}

static int oo_mode(__mmask16 s, __mmask16 t) {
  return s == 0 ? OO_SINGLE : s == t ? OO_SPLIT : OO_MIXED;
}

#define OO_TILE(NR, M0, M1, G, PF)                                                             \
  oo_tile_body(a, as, ar, rows, terms, b, ldb, c, ldc, k, zero_c, t0, t1, s0, s1, NR, M0, M1, G, \
               PF)
#define OO_MODES(NR, G, PF)                                                                    \
  switch (oo_mode(s0, t0) * 3 + oo_mode(s1, t1)) {                                            \
  case 0: OO_TILE(NR, OO_SINGLE, OO_SINGLE, G, PF); break;                                     \
  case 1: OO_TILE(NR, OO_SINGLE, OO_SPLIT, G, PF); break;                                      \
  case 3: OO_TILE(NR, OO_SPLIT, OO_SINGLE, G, PF); break;                                      \
  case 4: OO_TILE(NR, OO_SPLIT, OO_SPLIT, G, PF); break;                                       \
  default: OO_TILE(NR, OO_MIXED, OO_MIXED, G, PF); break;                                      \
  }
#define OO_ROWS(G, PF)                                                                         \
  switch (nr) {                                                                               \
  case 6: OO_MODES(6, G, PF) break;                                                            \
  case 5: OO_MODES(5, G, PF) break;                                                            \
  case 4: OO_MODES(4, G, PF) break;                                                            \
  case 3: OO_MODES(3, G, PF) break;                                                            \
  case 2: OO_MODES(2, G, PF) break;                                                            \
  default: OO_MODES(1, G, PF) break;                                                           \
  }

/* A tile of nr rows (1 to 6), its modes fixed at compile time for the common cases: A read from
 * a matrix (oo_tile) or gathered (oo_tile_gathered), and the same beside a large B whose rows
 * ahead each tile asks the cache for (_prefetched). */
#define OO_TILE_PARAMS                                                                         \
  const float *a, int64_t as, int64_t ar, const int32_t *rows, const int32_t *terms,           \
      const float *b, int ldb, float *c, int ldc, int k, int zero_c, __mmask16 t0,             \
      __mmask16 t1, __mmask16 s0, __mmask16 s1, int nr
static __attribute__((noinline)) void oo_tile(OO_TILE_PARAMS) { OO_ROWS(0, 0) }
static __attribute__((noinline)) void oo_tile_gathered(OO_TILE_PARAMS) { OO_ROWS(1, 0) }
static __attribute__((noinline)) void oo_tile_prefetched(OO_TILE_PARAMS) { OO_ROWS(0, 1) }
static __attribute__((noinline)) void oo_tile_gathered_prefetched(OO_TILE_PARAMS) {
  OO_ROWS(1, 1)
}

/* dst[i·ld + j] = src[j·ls + i] for a 16×16 block (the standard four rounds of shuffles). */
static void oo_transpose16(const float *src, int64_t ls, float *dst, int64_t ld) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ls);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    const __m512d a0 = _mm512_castps_pd(t[i]), a1 = _mm512_castps_pd(t[i + 1]);
    const __m512d a2 = _mm512_castps_pd(t[i + 2]), a3 = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ld, r[i]);
}

/*
 * The strip of op(B) = Bᵀ for the columns [j0, j0 + w) of C (w ≤ 32): strip[kk·32 + jj] =
 * b[(j0 + jj)·ldb + kk] for every kk of the depth, in 16×16 blocks where whole.
 */
static void oo_transpose_strip(const float *b, int ldb, int j0, int w, int k, float *strip) {
  int jj = 0;
  for (; jj + 16 <= w; jj += 16) {
    const float *rows = b + (int64_t)(j0 + jj) * ldb;
    int kk = 0;
    for (; kk + 16 <= k; kk += 16) oo_transpose16(rows + kk, ldb, strip + (int64_t)kk * 32 + jj, 32);
    for (; kk < k; kk++)
      for (int i = 0; i < 16; i++) strip[(int64_t)kk * 32 + jj + i] = rows[(int64_t)i * ldb + kk];
  }
  for (; jj < w; jj++) {
    const float *row = b + (int64_t)(j0 + jj) * ldb;
    for (int kk = 0; kk < k; kk++) strip[(int64_t)kk * 32 + jj] = row[kk];
  }
}

/*
 * Whether the kernel takes a product of this shape (see the header): a transposed B on fewer
 * than 64 rows of C from 128 KiB (each strip transposed as it is used) up to a depth of 65,536;
 * not on 64 to 127 rows past 512 KiB (its copy costs more than it saves) or on more past 16 MiB
 * (the copy is not made); not a transposed A over a long depth (read a column at a time,
 * OpenBLAS's packing wins), not a depth block of B past 512 KiB on many rows (read again for
 * every 6 rows of C, it falls out of the core's cache: OpenBLAS's packed blocks run such
 * products faster).
 */
static int oo_accepts(int ta, int tb, int m, int n, int k, float alpha, float beta) {
  if (alpha != 1.0f || (beta != 0.0f && beta != 1.0f) || m <= 0 || n <= 0 || k <= 0) return 0;
  if (tb && m >= 64 && ((m < 128 && (int64_t)n * k > 131072) || (int64_t)n * k > (1 << 22))) {
    return 0;
  }
  if (tb && m < 64 && ((int64_t)n * k < 32768 || k > 65536)) return 0;
  if (ta && m >= 64 && k > 1536) return 0;
  if ((int64_t)n * (k < OO_Q ? k : OO_Q) > 131072 && m >= 256) return 0;
  return 1;
}

/*
 * C = op(A)·op(B) + beta·C over the blocks and tiles OpenBLAS's driver and kernel use: op(B) is
 * B [K, N] row-major, or with `bt` (fewer than 64 rows of C) Bᵀ for B [N, K] row-major, each
 * 32-column strip transposed as the tiles need it; op(A)[i][kk] is a[i·ar + kk·as], or
 * a[rows[i] + terms[kk]] when `rows` is set.
 */
static int oo_gemm(int m, int n, int k, const float *a, int64_t as, int64_t ar,
                   const int32_t *rows, const int32_t *terms, const float *b, int ldb, int bt,
                   float beta, float *c, int ldc) {
  const int most = m < OO_R ? m : OO_R;
  const int large_b = (int64_t)k * n * (int64_t)sizeof(float) >= OO_LARGE_B;
  uint8_t *cls = malloc((size_t)2 * most);
  int *tile_row = malloc(sizeof(int) * 2 * (size_t)most), *tile_rows = tile_row + most;
  float *strip = bt ? aligned_alloc(64, (size_t)k * 32 * sizeof(float)) : NULL;
  if (cls == NULL || tile_row == NULL || (bt && (strip == NULL || m >= OO_GROUP))) {
    free(cls), free(tile_row), free(strip);
    return -1;
  }
  for (int js = 0; js < m; js += OO_R) {
    const int block_rows = m - js < OO_R ? m - js : OO_R;
    uint8_t *first = cls, *later = cls + block_rows;
    oo_classes(first, block_rows, 1);
    oo_classes(later, block_rows, 0);
    /* Tiles of up to 6 rows of one class. A tile runs every 32-column strip of B in turn; where
     * B is large, OO_CHUNK tiles take each strip in turn instead, so that it is read from memory
     * once for them, and each asks for the rows of B ahead; with `bt`, every tile takes each
     * strip in turn, transposed once for them. Every sum is the same in any order of tiles.
     * (The first loop is the grouped one with groups of one, written out: as one loop, a
     * convolution's [1280, 50, 500] ran 1.25× slower.) */
    int tiles = 0;
    for (int j = 0; j < block_rows; tiles++) {
      int nr = 1;
      while (nr < 6 && j + nr < block_rows && first[j + nr] == first[j] &&
             later[j + nr] == later[j]) {
        nr++;
      }
      tile_row[tiles] = j, tile_rows[tiles] = nr;
      j += nr;
    }
    if (!large_b && !bt) {
      for (int t = 0; t < tiles; t++) {
        const int j = tile_row[t], nr = tile_rows[t];
        for (int ib = 0, mi; ib < n; ib += mi) {
          mi = oo_block(n - ib);
          int lo[2], hi[2];
          const int count = oo_ranges(ib == 0 ? first[j] : later[j], mi, lo, hi);
          for (int v = 0; v < mi; v += 32) {
            const int w0 = mi - v < 16 ? mi - v : 16;
            const int w1 = mi - v - 16 <= 0 ? 0 : mi - v - 16 < 16 ? mi - v - 16 : 16;
            const __mmask16 t0 = (__mmask16)((1u << w0) - 1), t1 = (__mmask16)((1u << w1) - 1);
            const __mmask16 s0 = oo_mask(v, count, lo, hi) & t0;
            const __mmask16 s1 = oo_mask(v + 16, count, lo, hi) & t1;
            const int64_t row = js + j;
            if (rows != NULL) {
              oo_tile_gathered(a, as, ar, rows + row, terms, b + ib + v, ldb,
                               c + row * ldc + ib + v, ldc, k, beta == 0.0f, t0, t1, s0, s1, nr);
            } else {
              oo_tile(a + row * ar, as, ar, NULL, terms, b + ib + v, ldb, c + row * ldc + ib + v,
                      ldc, k, beta == 0.0f, t0, t1, s0, s1, nr);
            }
          }
        }
      }
      continue;
    }
    const int chunk = bt ? tiles : OO_CHUNK;
    for (int t_lo = 0; t_lo < tiles; t_lo += chunk) {
      const int t_hi = t_lo + chunk < tiles ? t_lo + chunk : tiles;
      for (int ib = 0, mi; ib < n; ib += mi) {
        mi = oo_block(n - ib);
        int lo[OO_GROUP][2], hi[OO_GROUP][2], count[OO_GROUP];
        for (int t = t_lo; t < t_hi; t++) {
          const int j = tile_row[t], i = t - t_lo;
          count[i] = oo_ranges(ib == 0 ? first[j] : later[j], mi, lo[i], hi[i]);
        }
        for (int v = 0; v < mi; v += 32) {
          const int w0 = mi - v < 16 ? mi - v : 16;
          const int w1 = mi - v - 16 <= 0 ? 0 : mi - v - 16 < 16 ? mi - v - 16 : 16;
          const __mmask16 t0 = (__mmask16)((1u << w0) - 1), t1 = (__mmask16)((1u << w1) - 1);
          if (bt) oo_transpose_strip(b, ldb, ib + v, w0 + w1, k, strip);
          for (int t = t_lo; t < t_hi; t++) {
            const int i = t - t_lo;
            const __mmask16 s0 = oo_mask(v, count[i], lo[i], hi[i]) & t0;
            const __mmask16 s1 = oo_mask(v + 16, count[i], lo[i], hi[i]) & t1;
            const int64_t row = js + tile_row[t];
            if (bt) {
              oo_tile(a + row * ar, as, ar, NULL, terms, strip, 32, c + row * ldc + ib + v, ldc, k,
                      beta == 0.0f, t0, t1, s0, s1, tile_rows[t]);
            } else if (rows != NULL) {
              oo_tile_gathered_prefetched(a, as, ar, rows + row, terms, b + ib + v, ldb,
                                          c + row * ldc + ib + v, ldc, k, beta == 0.0f, t0, t1,
                                          s0, s1, tile_rows[t]);
            } else {
              oo_tile_prefetched(a + row * ar, as, ar, NULL, terms, b + ib + v, ldb,
                                 c + row * ldc + ib + v, ldc, k, beta == 0.0f, t0, t1, s0, s1,
                                 tile_rows[t]);
            }
          }
        }
      }
    }
  }
  free(strip);
  free(tile_row);
  free(cls);
  return 0;
}

/*
 * C = op(A)·op(B) + beta·C (alpha 1, beta 0 or 1), row-major as cblas_sgemm with CblasRowMajor,
 * with every float of OpenBLAS 0.3.21's Haswell kernels. Returns 0, or -1 for what it does not
 * take (the caller then calls the BLAS itself).
 */
int32_t bnlab_openblas_order_gemm(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                  float alpha, const float *a, int32_t lda, const float *b,
                                  int32_t ldb, float beta, float *c, int32_t ldc) {
  if (!oo_accepts(ta, tb, m, n, k, alpha, beta)) return -1;
  if (tb && m < 64) { /* strips of op(B) transposed as they are used */
    return oo_gemm(m, n, k, a, ta ? lda : 1, ta ? 1 : lda, NULL, NULL, b, ldb, 1, beta, c, ldc);
  }
  float *packed = NULL;
  if (tb) { /* op(B) as [K, N] */
    packed = malloc((size_t)k * n * sizeof(float));
    if (packed == NULL) return -1;
    for (int kk = 0; kk < k; kk++)
      for (int i = 0; i < n; i++) packed[(int64_t)kk * n + i] = b[(int64_t)i * ldb + kk];
    b = packed, ldb = n;
  }
  const int status =
      oo_gemm(m, n, k, a, ta ? lda : 1, ta ? 1 : lda, NULL, NULL, b, ldb, 0, beta, c, ldc);
  free(packed);
  return status;
}

/*
 * Whether bnlab_openblas_order_gemm takes a product of this shape (1) or declines it (0), for
 * callers that must know before they prepare its operands.
 */
int32_t bnlab_openblas_order_accepts(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                     float alpha, float beta) {
  return oo_accepts(ta, tb, m, n, k, alpha, beta);
}

/*
 * C = A·B + beta·C with A gathered: A[i][kk] = a[rows[i] + terms[kk]] (an im2col matrix, or its
 * transpose, read from the image itself), B [K, N] row-major. The same floats as
 * bnlab_openblas_order_gemm on the matrix A written out with transpose flag `ta` (whose shape
 * rules apply: -1 where it would decline).
 */
int32_t bnlab_openblas_order_gathered(int32_t ta, int32_t m, int32_t n, int32_t k,
                                      const float *a, const int32_t *rows, const int32_t *terms,
                                      const float *b, int32_t ldb, float beta, float *c,
                                      int32_t ldc) {
  if (!oo_accepts(ta, 0, m, n, k, 1.0f, beta)) return -1;
  return oo_gemm(m, n, k, a, 0, 0, rows, terms, b, ldb, 0, beta, c, ldc);
}

#else
int32_t bnlab_openblas_order_gemm(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                  float alpha, const float *a, int32_t lda, const float *b,
                                  int32_t ldb, float beta, float *c, int32_t ldc) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b;
  (void)ldb, (void)beta, (void)c, (void)ldc;
  return -1;
}

int32_t bnlab_openblas_order_accepts(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                     float alpha, float beta) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)beta;
  return 0;
}

int32_t bnlab_openblas_order_gathered(int32_t ta, int32_t m, int32_t n, int32_t k,
                                      const float *a, const int32_t *rows, const int32_t *terms,
                                      const float *b, int32_t ldb, float beta, float *c,
                                      int32_t ldc) {
  (void)ta, (void)m, (void)n, (void)k, (void)a, (void)rows, (void)terms, (void)b, (void)ldb;
  (void)beta, (void)c, (void)ldc;
  return -1;
}
#endif
