/* kq: the engine's thread pool (see threads.h). */
#include "threads.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Waiting, in three stages: spin (the next matmul of a token follows within microseconds), then
 * yield the CPU (cheap when the core is idle, and it lets the other threads run when there are more
 * threads than cores), then (workers only) sleep on the condition variable, so an idle pool costs no
 * CPU. */
#define KQ_POOL_SPIN 2000
#define KQ_POOL_YIELDS 2000

struct kq_pool;

typedef struct {
    struct kq_pool *pool;
    int ith;
} kq_worker;

struct kq_pool {
    int n;
    pthread_t *threads;
    kq_worker *workers;
    int started;
    kq_pool_fn fn;
    void *ctx;
    atomic_uint gen;     /* incremented for each job; workers wait for it to change */
    atomic_int pending;  /* workers still running the current job */
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static inline void kq_cpu_relax(void) {
#if defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#endif
}

static unsigned kq_pool_wait_job(kq_pool *p, unsigned seen) {
    for (int i = 0; i < KQ_POOL_SPIN + KQ_POOL_YIELDS; i++) {
        const unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        if (i < KQ_POOL_SPIN)
            kq_cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *kq_pool_main(void *arg) {
    kq_worker *w = arg;
    kq_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = kq_pool_wait_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, w->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

kq_pool *kq_pool_new(int n) {
    if (n < 1) n = 1;
    kq_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n > 1) {
        p->threads = calloc((size_t)n, sizeof *p->threads);
        p->workers = calloc((size_t)n, sizeof *p->workers);
        if (!p->threads || !p->workers) {
            kq_pool_free(p);
            return NULL;
        }
        for (int i = 1; i < n; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i;
            if (pthread_create(&p->threads[i], NULL, kq_pool_main, &p->workers[i]) != 0) {
                kq_pool_free(p);
                return NULL;
            }
            p->started = i;
        }
    }
    return p;
}

void kq_pool_free(kq_pool *p) {
    if (!p) return;
    if (p->started > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i <= p->started; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->workers);
    free(p);
}

int kq_pool_size(const kq_pool *p) { return p->n; }

void kq_pool_run(kq_pool *p, kq_pool_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    /* The mutex orders the wake-up with a worker that is about to sleep. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        if (i < KQ_POOL_SPIN)
            kq_cpu_relax();
        else
            sched_yield(); /* maybe more threads than cores: let the stragglers run */
    }
}

int kq_cpu_count(void) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 512 ? 512 : (int)n);
}
