/* kq: a small persistent thread pool for the engine's parallel loops.
 *
 * kq_pool_run(p, fn, ctx) calls fn(ctx, ith, nth) once for every ith in [0, nth): ith 0 on the
 * calling thread, the others on the pool's workers, and returns when all have finished. Workers
 * spin briefly between jobs (a token's matmuls follow each other within microseconds) and then
 * sleep on a condition variable, so an idle pool costs no CPU. One caller at a time. */
#ifndef KQ_THREADS_H
#define KQ_THREADS_H

typedef struct kq_pool kq_pool;
typedef void (*kq_pool_fn)(void *ctx, int ith, int nth);

/* n >= 1 threads in all (the caller counts as one). NULL if a thread cannot be created. */
kq_pool *kq_pool_new(int n);
void kq_pool_free(kq_pool *p);
int kq_pool_size(const kq_pool *p);
void kq_pool_run(kq_pool *p, kq_pool_fn fn, void *ctx);

/* Online CPUs (>= 1). */
int kq_cpu_count(void);

#endif
