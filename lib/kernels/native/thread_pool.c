/*
 * Matrix products split over threads, part of bnlab's native library (compiled with
 * bnlab_kernels.c and openblas_order.c into one library by scripts/build_native.ts;
 * lib/kernels/blas.ts calls bnlab_blas_init, bnlab_blas_threads, bnlab_blas_slices,
 * bnlab_sgemm, bnlab_gemm and bnlab_openblas_order; bnlab_kernels.c's convolutions call
 * bnlab_sgemm_gathered). Each product, or slice of one, runs on openblas_order.c's kernel where
 * blas.ts has switched it on and it takes the case (the library's floats, computed twice as
 * wide), else on the library. A gathered product (its A read through tables of offsets, as a
 * convolution's im2col matrix from the images) runs only on that kernel, in the same slices.
 *
 * OpenBLAS's own threading splits LeNet's small, skinny products badly (two threads are
 * slower than one on them here), but two single-threaded products over halves of the
 * output run at nearly twice the speed of one. So bnlab keeps a pool of threads and cuts a
 * product into SLICES slices of C: ranges of rows (M), else of columns (N), else of the
 * summed axis (K: each slice but the first adds into its own scratch C, summed at the end).
 * How a product is cut depends on its shape alone, never on the threads that run it, so a
 * training gives the same floats on one thread or two (say, in `--workers` processes). The
 * BLAS must be safe to call from several threads at once: OpenBLAS's pthread build is, set
 * to one thread of its own; its serial build serializes concurrent calls
 * (lib/kernels/blas.ts picks the build).
 *
 * Slices are claimed, not assigned: the calling thread and the pool's threads take the next
 * unclaimed slice until none is left, so a pool thread that wakes late (the machine's other
 * threads, V8's among them, share its core) costs nothing but its absence; the caller then
 * waits only for slices already begun. Idle pool threads poll for SPIN_NS after their last
 * slice, yielding their core to other threads as they do (the next product of a training
 * step usually comes within a millisecond), then sleep on a condition variable.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int);

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define SLICES 2 /* slices of a product: fixed, so that results do not depend on threads */
#define MAX_THREADS SLICES
#define SPIN_NS 5000000L
#define ROW_MAJOR 101
#define NO_TRANS 111
#define TRANS 112

typedef struct {
  int trans_a, trans_b, m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
  /* A task other than a product (bnlab_pool_run): task(context, index) when set. */
  void (*task)(void *, int);
  void *context;
  int index;
  /* A gathered A (bnlab_sgemm_gathered): op(A)[i][kk] = a[a_rows[i] + a_terms[kk]]. */
  const int32_t *a_rows, *a_terms;
} product;

static sgemm_fn blas_sgemm = NULL;
static int pool_size = 1; /* threads a product may use, the caller's included */
static pthread_t workers[MAX_THREADS];
static pthread_mutex_t pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
/* The current task: generation (bits 32-63), its slice count (16-31), next slice (0-15). */
static _Atomic uint64_t ticket = 0;
static atomic_int slices_done = 0; /* slices of the current task finished */
static atomic_int stopping = 0;    /* set to stop the pool's threads */
static product slices[SLICES];
static float *scratch = NULL; /* K-split partial products, (slices - 1) · M · N floats */
static size_t scratch_size = 0;

int32_t bnlab_openblas_order_gemm(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                  float alpha, const float *a, int32_t lda, const float *b,
                                  int32_t ldb, float beta, float *c, int32_t ldc);
int32_t bnlab_openblas_order_accepts(int32_t ta, int32_t tb, int32_t m, int32_t n, int32_t k,
                                     float alpha, float beta);
int32_t bnlab_openblas_order_gathered(int32_t ta, int32_t m, int32_t n, int32_t k,
                                      const float *a, const int32_t *rows, const int32_t *terms,
                                      const float *b, int32_t ldb, float beta, float *c,
                                      int32_t ldc);

/* Whether products run on bnlab_openblas_order_gemm (openblas_order.c) where it takes them. */
static atomic_int openblas_order = 0;

/* One product: OpenBLAS's floats from bnlab's kernel when it is on and takes the case, else from
 * the library. */
static void run_product(const product *p) {
  if (p->a_rows != NULL) { /* taken: bnlab_sgemm_gathered checked every slice */
    bnlab_openblas_order_gathered(p->trans_a, p->m, p->n, p->k, p->a, p->a_rows, p->a_terms,
                                  p->b, p->ldb, p->beta, p->c, p->ldc);
    return;
  }
  if (atomic_load_explicit(&openblas_order, memory_order_relaxed) &&
      bnlab_openblas_order_gemm(p->trans_a, p->trans_b, p->m, p->n, p->k, p->alpha, p->a,
                                p->lda, p->b, p->ldb, p->beta, p->c, p->ldc) == 0) {
    return;
  }
  blas_sgemm(ROW_MAJOR, p->trans_a ? TRANS : NO_TRANS, p->trans_b ? TRANS : NO_TRANS, p->m, p->n,
             p->k, p->alpha, p->a, p->lda, p->b, p->ldb, p->beta, p->c, p->ldc);
}

static void run_slice(const product *p) {
  if (p->task != NULL) {
    p->task(p->context, p->index);
  } else if (p->m > 0 && p->n > 0) {
    run_product(p);
  }
}

/* Runs unclaimed slices of the current task until none is left. */
static void claim_slices(void) {
  uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
  for (;;) {
    const unsigned next = (unsigned)(t & 0xffff), count = (unsigned)((t >> 16) & 0xffff);
    if (next >= count) return;
    if (atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel,
                                              memory_order_acquire)) {
      run_slice(&slices[next]);
      atomic_fetch_add_explicit(&slices_done, 1, memory_order_acq_rel);
      t = atomic_load_explicit(&ticket, memory_order_acquire);
    }
  }
}

static long elapsed_ns(const struct timespec *from) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - from->tv_sec) * 1000000000L + (now.tv_nsec - from->tv_nsec);
}

static uint32_t generation_of(uint64_t t) { return (uint32_t)(t >> 32); }

static void *worker_main(void *arg) {
  uint32_t seen = (uint32_t)(uintptr_t)arg; /* the generation when the pool started */
  for (;;) {
    struct timespec since;
    clock_gettime(CLOCK_MONOTONIC, &since);
    unsigned polls = 0;
    while (generation_of(atomic_load_explicit(&ticket, memory_order_acquire)) == seen) {
      CPU_RELAX();
      if ((++polls & 15) == 0) sched_yield(); /* let other threads of this core run */
      if ((polls & 255) == 0 && elapsed_ns(&since) > SPIN_NS) {
        pthread_mutex_lock(&pool_mutex);
        while (generation_of(atomic_load_explicit(&ticket, memory_order_acquire)) == seen) {
          pthread_cond_wait(&pool_wake, &pool_mutex);
        }
        pthread_mutex_unlock(&pool_mutex);
      }
    }
    seen = generation_of(atomic_load_explicit(&ticket, memory_order_acquire));
    if (atomic_load_explicit(&stopping, memory_order_acquire)) return NULL;
    claim_slices();
  }
}

/* Publishes a task of `count` slices (already in `slices`) and wakes the pool. */
static void publish(unsigned count) {
  const uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
  const uint64_t next = ((uint64_t)(generation_of(t) + 1) << 32) | ((uint64_t)count << 16);
  atomic_store_explicit(&slices_done, 0, memory_order_release);
  atomic_store_explicit(&ticket, next, memory_order_release);
  pthread_mutex_lock(&pool_mutex);
  pthread_cond_broadcast(&pool_wake);
  pthread_mutex_unlock(&pool_mutex);
}

/* Stops and joins the pool's threads. */
static void pool_stop(void) {
  if (pool_size <= 1) return;
  atomic_store_explicit(&stopping, 1, memory_order_release);
  publish(0);
  for (int i = 1; i < pool_size; i++) pthread_join(workers[i], NULL);
  atomic_store(&stopping, 0);
  pool_size = 1;
}

/* Joins the pool before the library is unloaded (or the process exits): its threads run
 * this library's code. */
__attribute__((destructor)) static void pool_unload(void) { pool_stop(); }

/*
 * Loads cblas_sgemm from the BLAS at `path` (already loaded by the caller, so the same
 * copy) and starts threads - 1 pool threads. Returns 0, or -1 when the library or symbol
 * cannot be found, -2 for a thread count outside 1..MAX_THREADS, -3 when a thread cannot
 * be started (the pool then has the threads that did start). Can be called again.
 */
int32_t bnlab_blas_init(const char *path, int32_t threads) {
  if (threads < 1 || threads > MAX_THREADS) return -2;
  pool_stop();
  void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) return -1;
  blas_sgemm = (sgemm_fn)dlsym(library, "cblas_sgemm");
  if (blas_sgemm == NULL) return -1;
  const uint32_t generation = generation_of(atomic_load(&ticket));
  for (int i = 1; i < threads; i++) {
    if (pthread_create(&workers[i], NULL, worker_main, (void *)(uintptr_t)generation) != 0) {
      return -3;
    }
    pool_size = i + 1;
  }
  return 0;
}

/*
 * Switches bnlab_openblas_order_gemm on (1) or off (0) for every product after bnlab_blas_init,
 * or only reports (-1); returns whether it was on. lib/kernels/blas.ts switches it on only for
 * the library whose floats it reproduces (OpenBLAS 0.3.21 on its Haswell kernels).
 */
int32_t bnlab_openblas_order(int32_t on) {
  const int previous = atomic_load(&openblas_order);
  if (on >= 0) atomic_store(&openblas_order, on != 0);
  return previous;
}

/*
 * C = alpha·op(A)·op(B) + beta·C as one product (not cut into slices), as cblas_sgemm with the
 * order fixed to rows, on bnlab's kernel when it is on. Returns 0, or -1 before bnlab_blas_init.
 */
int32_t bnlab_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
                   const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
                   int32_t ldc) {
  if (blas_sgemm == NULL) return -1;
  const product whole = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c,
                         NULL, NULL, 0, NULL, NULL};
  run_slice(&whole);
  return 0;
}

/* Threads a product may use (the caller's included); 1 before bnlab_blas_init. */
int32_t bnlab_blas_threads(void) { return pool_size; }

/* Slices a large product is cut into. */
int32_t bnlab_blas_slices(void) { return SLICES; }

/* Slices [0, total) into `parts` ranges whose bounds are multiples of `align`. */
static int slice_bound(int total, int parts, int align, int i) {
  if (i >= parts) return total;
  const long bound = ((long)total * i / parts + align / 2) / align * align;
  return bound > total ? total : (int)bound;
}

/* slice_bound for the other kernels of the library (bnlab_kernels.c). */
int bnlab_slice_bound(int total, int parts, int align, int i) {
  return slice_bound(total, parts, align, i);
}

/*
 * Cuts `whole` into the slices it runs as (see the file's comment): ranges of rows of at least
 * 32, else of columns, else of the summed axis (each slice but the first into the scratch C,
 * beta 0); fills `out` and returns how many (1: the product whole), with the axis in `axis`.
 */
static int cut(const product *whole, product out[SLICES], int *axis) {
  const int m = whole->m, n = whole->n, k = whole->k;
  int parts = SLICES;
  if (m >= 32 * parts) {
    *axis = 0;
  } else if (n >= 32 * parts) {
    *axis = 1;
  } else if (k >= 128 * parts && (long)m * n <= 4096) {
    *axis = 2;
  } else {
    out[0] = *whole;
    return 1;
  }
  for (int i = 0; i < parts; i++) {
    product *p = &out[i];
    *p = *whole;
    if (*axis == 0) {
      const int m0 = slice_bound(m, parts, 16, i), m1 = slice_bound(m, parts, 16, i + 1);
      p->m = m1 - m0;
      if (p->a_rows != NULL) p->a_rows += m0;
      else p->a = whole->trans_a ? whole->a + m0 : whole->a + (long)m0 * whole->lda;
      p->c = whole->c + (long)m0 * whole->ldc;
    } else if (*axis == 1) {
      const int n0 = slice_bound(n, parts, 16, i), n1 = slice_bound(n, parts, 16, i + 1);
      p->n = n1 - n0;
      p->b = whole->trans_b ? whole->b + (long)n0 * whole->ldb : whole->b + n0;
      p->c = whole->c + n0;
    } else {
      const int k0 = slice_bound(k, parts, 16, i), k1 = slice_bound(k, parts, 16, i + 1);
      p->k = k1 - k0;
      if (p->a_rows != NULL) p->a_terms += k0;
      else p->a = whole->trans_a ? whole->a + (long)k0 * whole->lda : whole->a + k0;
      p->b = whole->trans_b ? whole->b + k0 : whole->b + (long)k0 * whole->ldb;
      if (i > 0) {
        p->beta = 0.0f;
        p->c = NULL; /* the scratch, set by run_cut */
        p->ldc = n;
      }
    }
  }
  return parts;
}

/* Runs the slices `cut` made on up to `threads` threads; 0, or -4 without scratch memory. */
static int32_t run_cut(int parts, int axis, int m, int n, float *c, int ldc, int threads) {
  if (parts <= 1) {
    run_slice(&slices[0]);
    return 0;
  }
  if (axis == 2) {
    const size_t need = (size_t)(parts - 1) * m * n;
    if (need > scratch_size) {
      float *grown = realloc(scratch, need * sizeof(float));
      if (grown == NULL) return -4;
      scratch = grown;
      scratch_size = need;
    }
    for (int i = 1; i < parts; i++) slices[i].c = scratch + (size_t)(i - 1) * m * n;
  }
  if (threads > 1 && pool_size > 1) {
    publish((unsigned)parts);
    claim_slices();
    while (atomic_load_explicit(&slices_done, memory_order_acquire) < parts) CPU_RELAX();
  } else {
    for (int i = 0; i < parts; i++) run_slice(&slices[i]);
  }
  if (axis == 2) {
    for (int i = 1; i < parts; i++) {
      const float *part = scratch + (size_t)(i - 1) * m * n;
      for (int r = 0; r < m; r++) {
        float *row = c + (long)r * ldc;
        for (int j = 0; j < n; j++) row[j] += part[(long)r * n + j];
      }
    }
  }
  return 0;
}

/*
 * C = alpha·op(A)·op(B) + beta·C, row-major, as cblas_sgemm with the order fixed to rows,
 * cut into SLICES slices where the shape allows, run on up to `threads` threads of the pool
 * (1: the slices one after another on the calling thread). The slices depend on the shape
 * alone, so the floats do not depend on `threads` (summation orders differ from one
 * uncut cblas_sgemm call). Same arguments as lib/kernels/blas.ts' sgemmUnchecked; returns
 * 0, or -1 before bnlab_blas_init, -4 when the K-split scratch memory cannot be allocated.
 */
int32_t bnlab_sgemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                    float alpha, const float *a, int32_t lda, const float *b, int32_t ldb,
                    float beta, float *c, int32_t ldc, int32_t threads) {
  if (blas_sgemm == NULL) return -1;
  const product whole = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c,
                         NULL, NULL, 0, NULL, NULL};
  int axis = 0;
  const int parts = cut(&whole, slices, &axis);
  return run_cut(parts, axis, m, n, c, ldc, threads);
}

/*
 * C = A·B + beta·C (beta 0 or 1) with A gathered, A[i][kk] = a[rows[i] + terms[kk]], B [K, N]
 * row-major: bnlab_sgemm (bnlab_gemm when `uncut`) on the matrix A written out with transpose
 * flag `trans_a` (an im2col matrix, or its transpose), cut into the same slices, each run on
 * openblas_order.c's kernel: the same floats, without writing A. Returns 0; -5 (nothing
 * computed) when that kernel is off or would decline a slice, the caller then writes A out
 * and calls bnlab_sgemm; -1 before bnlab_blas_init, -4 without scratch memory.
 */
int32_t bnlab_sgemm_gathered(int32_t trans_a, int32_t m, int32_t n, int32_t k, const float *a,
                             const int32_t *rows, const int32_t *terms, const float *b,
                             int32_t ldb, float beta, float *c, int32_t ldc, int32_t uncut,
                             int32_t threads) {
  if (blas_sgemm == NULL) return -1;
  if (!atomic_load(&openblas_order)) return -5;
  const product whole = {trans_a, 0, m, n, k, trans_a ? m : k, ldb, ldc, 1.0f, beta, a, b, c,
                         NULL, NULL, 0, rows, terms};
  int axis = 0;
  product cuts[SLICES];
  const int parts = uncut ? (cuts[0] = whole, 1) : cut(&whole, cuts, &axis);
  for (int i = 0; i < parts; i++) {
    if (!bnlab_openblas_order_accepts(trans_a, 0, cuts[i].m, cuts[i].n, cuts[i].k, 1.0f,
                                      cuts[i].beta)) {
      return -5;
    }
  }
  memcpy(slices, cuts, sizeof(cuts));
  return run_cut(parts, axis, m, n, c, ldc, threads);
}

/*
 * Runs task(context, i) for i in [0, parts) (parts at most SLICES) on up to `threads`
 * threads of the pool (1, or no pool: one after another on the calling thread), and returns
 * when all are done. The tasks must not depend on which thread runs them.
 */
void bnlab_pool_run(void (*task)(void *, int), void *context, int parts, int threads) {
  if (parts > SLICES) parts = SLICES;
  if (threads > 1 && pool_size > 1 && parts > 1) {
    for (int i = 0; i < parts; i++) {
      slices[i] = (product){0};
      slices[i].task = task;
      slices[i].context = context;
      slices[i].index = i;
    }
    publish((unsigned)parts);
    claim_slices();
    while (atomic_load_explicit(&slices_done, memory_order_acquire) < parts) CPU_RELAX();
  } else {
    for (int i = 0; i < parts; i++) task(context, i);
  }
}
