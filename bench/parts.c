/* The training step of the vector builds, part by part, in C: how long each kernel
   (src/cnn_ext/kernels) takes per image on real digits, without Python around it. Built
   and run by bench/parts.py, with the flags of each installed vector build, each part
   printed against that build's FMA peak; see there.

       parts DIGITS LABELS N ROUNDS [PART]
       parts DIGITS LABELS N train PARAMETERS

   DIGITS: N * 784 bytes of 28x28 uint8 images, LABELS: N bytes (0..9). Every part runs
   over the N images per round; the median round is printed per part as "name<TAB>seconds
   per image<TAB>multiply-adds per image". With PART, only that part runs, once over the
   images (for instruction counts under callgrind). The whole step is the package's own
   (cnn_ext_train_step10 in kernels/network.h, which TrainState.step and Network.fit run
   for ten nodes); it trains its own parameters (learn rate 0.005), so its values are those
   a step meets. The dense parts and the first whole step take the weights quad-blocked
   (softmax.h), as the x86 builds' Network.fit chunks and predict_proba batches do (the
   NEON build's keep them row-major); the parts named "row-major" take them as
   TrainState.step does, one step at a time. With "train", the
   whole step (blocked) runs once over the images from the float64 filters (8, 3, 3),
   weights (1352, 10) and biases (10,) in the file PARAMETERS, and writes them back,
   trained, followed by the N losses: tests/test_bench_parts.py checks them against
   TrainState.step, bit for bit (the harness passes the buffers, shapes and parameters as
   the package does). */
#define _POSIX_C_SOURCE 199309L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "network.h"

#if !CNN_EXT_V4D
#error "bench/parts.c times the vector kernels: build it with the flags of a vector build"
#endif

enum { H = 28, W = 28, NF = 8, PH = 13, PW = 13, L = PH * PW * NF, NODES = 10 };
/* The shapes as the package passes them to the kernels: values known only at run time, so
   that the compiler cannot specialise the loops for them (it could not in the package, and
   a step with constant shapes measured 1-2% faster) */
ptrdiff_t image_h = H, image_w = W, filters_n = NF, dense_inputs = L;
#define RATE 0.005

/* The parts share the buffers but not the parameters: each whole step trains its own
   (filters, weights, biases: [0] blocked, [1] row-major), while the single parts apply a
   fixed small d_L_d_t to weights of their own (blocked and row-major), so that none
   drifts another's values. */
typedef struct {
    double *x, *t, *pool, *mask, *weights, *blocked, *d_pool, *step_t;
    double *filters[2], *step_weights[2], *biases[2];
    double totals[NODES], probs[NODES], d_L_d_t[NODES], d_filt[9 * NF];
    cnn_ext_step_buffers buffers;  /* the whole steps' view of the above */
} State;

/* 64-byte aligned, as the package allocates its weights and buffers */
static double* doubles(size_t n) {
    double* p = aligned_alloc(64, (n * sizeof(double) + 63) / 64 * 64);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* The forward pass as _network.pxi's forward_c runs it: one loop in the x86 builds,
   conv + pool and then the dense layer in the NEON build (kernels/network.h) */
static void step_forward(const double* x, const double* t, double* pool, double* mask,
                         const double* blocked, double* totals, int nan_free) {
#if CNN_EXT_ONE_LOOP_FORWARD
    cnn_ext_forward10_v4(x, image_h, image_w, t, filters_n, pool, mask, blocked, totals,
                         nan_free, 1);
#else
    cnn_ext_conv_pool_v4(x, image_h, image_w, t, filters_n, pool, mask, nan_free);
    cnn_ext_dense10_forward_blocked(pool, dense_inputs, blocked, totals);
#endif
}

/* the tutorial's (pixel / 255) - 0.5, as forward_c: vectorised, the rest as its table */
static void normalise(const unsigned char* image, double* x) {
    for (ptrdiff_t k = cnn_ext_normalise_v4(image, image_h * image_w, x); k < image_h * image_w;
         k++)
        x[k] = image[k] / 255.0 - 0.5;
}

/* The package's training step itself (kernels/network.h, which _network.pxi's train_step_c
   calls for ten nodes), on the whole step's own parameters and the shared buffers: with
   blocked weights (1) as in Network.fit, or row-major (0) as in TrainState.step */
static double whole_step(const unsigned char* image, int label, State* st, int blocked) {
    unsigned char correct;
    int k = blocked ? 0 : 1;
    return cnn_ext_train_step10(image, label, image_h, image_w, st->filters[k], filters_n,
                                st->step_weights[k], st->biases[k], RATE, &st->buffers,
                                &correct, blocked);
}

static const char* NAMES[] = {
    "normalise", "conv + pool + masks", "dense forward", "the step's forward",
    "dense backward + update", "filter gradient via masks", "whole step",
    "dense forward, row-major", "dense backward, row-major", "whole step, row-major",
};
static const double MADDS[] = {0, 26 * 26 * NF * 9, L * NODES, 26 * 26 * NF * 9 + L * NODES,
                               2 * L * NODES, 26 * 26 * NF * 9,
                               2 * (26 * 26 * NF * 9) + 3 * L * NODES,
                               L * NODES, 2 * L * NODES, 2 * (26 * 26 * NF * 9) + 3 * L * NODES};
enum { PARTS = sizeof(NAMES) / sizeof(NAMES[0]) };

static double run(int part, const unsigned char* image, int label, State* st) {
    switch (part) {
    case 0: normalise(image, st->x); break;
    case 1: cnn_ext_conv_pool_v4(st->x, image_h, image_w, st->t, filters_n, st->pool, st->mask, 1);
            break;
    case 2: cnn_ext_dense10_forward_blocked(st->pool, dense_inputs, st->blocked, st->totals);
            break;
    case 3: step_forward(st->x, st->t, st->pool, st->mask, st->blocked, st->totals, 1); break;
    case 4: cnn_ext_dense10_backprop_blocked(st->pool, dense_inputs, st->blocked, st->d_L_d_t,
                                             RATE, st->d_pool); break;
    case 5: cnn_ext_filter_grad_v4(st->x, image_h, image_w, st->d_pool, st->mask, filters_n,
                                   st->d_filt); break;
    case 6: return whole_step(image, label, st, 1);
    case 7: cnn_ext_dense10_forward(st->pool, dense_inputs, st->weights, st->totals); break;
    case 8: cnn_ext_dense10_backprop(st->pool, dense_inputs, st->weights, st->d_L_d_t, RATE,
                                     st->d_pool); break;
    default: return whole_step(image, label, st, 0);
    }
    return 0.0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static unsigned char* read_file(const char* path, size_t n) {
    unsigned char* data = malloc(n);
    FILE* f = fopen(path, "rb");
    if (data == NULL || f == NULL || fread(data, 1, n, f) != n) {
        fprintf(stderr, "parts: cannot read %zu bytes from %s\n", n, path);
        exit(2);
    }
    fclose(f);
    return data;
}

/* a whole number in [low, high] from text, or exit 2 naming what was expected */
static long number(const char* text, long low, long high, const char* what) {
    char* end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < low || v > high) {
        fprintf(stderr, "parts: %s must be a whole number in %ld..%ld, got '%s'\n", what, low,
                high, text);
        exit(2);
    }
    return v;
}

static const size_t N_PARAMETERS = 9 * NF + L * NODES + NODES;

/* "train": the whole step over the images from the parameters in a file, written back */
static int train(const unsigned char* images, const unsigned char* labels, int n,
                 const char* path, State* st) {
    double* values = malloc(sizeof(double) * (N_PARAMETERS + (size_t)n));
    FILE* f = fopen(path, "rb");
    if (values == NULL || f == NULL
            || fread(values, sizeof(double), N_PARAMETERS, f) != N_PARAMETERS) {
        fprintf(stderr, "parts: cannot read %zu float64 parameters from %s\n", N_PARAMETERS,
                path);
        return 2;
    }
    fclose(f);
    memcpy(st->filters[0], values, sizeof(double) * 9 * NF);
    cnn_ext_dense10_block(values + 9 * NF, L, st->step_weights[0]);
    memcpy(st->biases[0], values + 9 * NF + L * NODES, sizeof(double) * NODES);
    for (int i = 0; i < n; i++)
        values[N_PARAMETERS + i] = whole_step(images + i * H * W, labels[i], st, 1);
    memcpy(values, st->filters[0], sizeof(double) * 9 * NF);
    cnn_ext_dense10_unblock(st->step_weights[0], L, values + 9 * NF);
    memcpy(values + 9 * NF + L * NODES, st->biases[0], sizeof(double) * NODES);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(values, sizeof(double), N_PARAMETERS + n, f) != N_PARAMETERS + n
            || fclose(f) != 0) {
        fprintf(stderr, "parts: cannot write %s\n", path);
        return 2;
    }
    free(values);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 5 || argc > 6 || (strcmp(argv[4], "train") == 0 && argc != 6)) {
        fprintf(stderr, "usage: parts DIGITS LABELS N ROUNDS [PART]\n"
                        "       parts DIGITS LABELS N train PARAMETERS\n");
        return 2;
    }
    int n = (int)number(argv[3], 1, 1000000, "N");
    int training = strcmp(argv[4], "train") == 0;
    int rounds = training ? 0 : (int)number(argv[4], 1, 100000, "ROUNDS");
    int only = argc > 5 && !training ? (int)number(argv[5], 0, PARTS - 1, "PART") : -1;
    unsigned char* images = read_file(argv[1], (size_t)n * H * W);
    unsigned char* labels = read_file(argv[2], (size_t)n);
    for (int i = 0; i < n; i++)
        if (labels[i] >= NODES) {
            fprintf(stderr, "parts: label %d of %s is %d, not a class 0..%d\n", i, argv[2],
                    labels[i], NODES - 1);
            return 2;
        }
    State st;
    st.x = doubles(H * W); st.t = doubles(9 * NF); st.pool = doubles(L);
    st.mask = doubles(PH * PW * 4 * NF); st.weights = doubles(L * NODES);
    st.blocked = doubles(L * NODES); st.d_pool = doubles(L); st.step_t = doubles(9 * NF);
    for (int j = 0; j < 2; j++) {
        st.filters[j] = doubles(9 * NF);
        st.step_weights[j] = doubles(L * NODES);
        st.biases[j] = doubles(NODES);
    }
    st.buffers = (cnn_ext_step_buffers){st.x, st.step_t, st.pool, st.mask, st.d_pool, st.d_filt,
                                        st.totals, st.probs};
    srand(1);  /* the tutorial's scales: filters / 9, weights / input length */
    for (int k = 0; k < 9 * NF; k++)
        st.filters[0][k] = st.filters[1][k] = st.t[k] = (rand() / (double)RAND_MAX - 0.5) / 9;
    for (int k = 0; k < L * NODES; k++)
        st.weights[k] = st.step_weights[1][k] = (rand() / (double)RAND_MAX - 0.5) / L;
    cnn_ext_dense10_block(st.weights, L, st.blocked);
    cnn_ext_dense10_block(st.weights, L, st.step_weights[0]);
    for (int k = 0; k < NODES; k++) {
        st.biases[0][k] = st.biases[1][k] = 0.0;
        st.d_L_d_t[k] = (rand() / (double)RAND_MAX - 0.5) * 1e-3;
    }
    if (training)
        return train(images, labels, n, argv[5], &st);
    /* the single parts' inputs: a pooled digit, its masks and its pooled gradient */
    normalise(images, st.x);
    step_forward(st.x, st.t, st.pool, st.mask, st.blocked, st.totals, 1);
    cnn_ext_dense10_backprop_blocked(st.pool, dense_inputs, st.blocked, st.d_L_d_t, RATE,
                                     st.d_pool);
    double loss = 0.0;
    if (only >= 0) {
        for (int i = 0; i < n; i++)
            loss += run(only, images + i * H * W, labels[i], &st);
        printf("%s\t-\t%.0f\t(loss %g)\n", NAMES[only], MADDS[only], loss);
        return 0;
    }
    double* times = malloc(sizeof(double) * (size_t)rounds * PARTS);
    if (times == NULL) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    for (int r = 0; r < rounds; r++)
        for (int p = 0; p < PARTS; p++) {  /* the parts interleaved: drift hits them alike */
            double start = now();
            for (int i = 0; i < n; i++)
                loss += run(p, images + i * H * W, labels[i], &st);
            times[p * rounds + r] = (now() - start) / n;
        }
    for (int p = 0; p < PARTS; p++) {
        qsort(times + p * rounds, rounds, sizeof(double), by_value);
        printf("%s\t%.6e\t%.0f\n", NAMES[p], times[p * rounds + rounds / 2], MADDS[p]);
    }
    if (!(loss == loss))  /* a diverged run times the NaN paths: not what a step meets */
        fprintf(stderr, "parts: the loss became NaN\n");
    return 0;
}
