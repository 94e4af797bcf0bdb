/* Per-row classifier training in plain C: the yardstick for bench/classify_speed.py.
 *
 * logistic (z = a1*x1 + a2*x2 + b, binary cross-entropy from z) and softmax over 3 classes
 * (z_k = a_k1*x1 + a_k2*x2 + b_k, cross-entropy as log_softmax + nll), one row per step, rows
 * in order, torch.optim.SGD without momentum: p + (-lr)*g rounded once (torch's add_ with alpha
 * is a fused multiply-add on CPU, sheetsync's engine/fused.py: C99 fma here). Gradients in autograd's order, as
 * sheetsync writes them (engine/losses.py): bce's (sigmoid(z) - y), log_softmax's backward
 * g_k - exp(lsm_k)*g with g = -1 on the label. Compiled -O2 -ffp-contract=off: every operation
 * is the IEEE one written here, so the final parameters can be compared with sheetsync's bit for bit.
 *
 * E experiments (one lr each) run one after the other; `params` holds E x P values in
 * sheetsync's parameter order (start values in, final values out).
 */
#include <math.h>
#include <stdint.h>

static void logistic(int64_t n, int64_t epochs, const double *x, const double *y, double lr, double *p) {
    for (int64_t ep = 0; ep < epochs; ep++) {
        for (int64_t i = 0; i < n; i++) {
            double x1 = x[2 * i], x2 = x[2 * i + 1];
            double z = ((p[0] * x1) + (p[1] * x2)) + p[2];
            double prob = 1.0 / (1.0 + exp(-z));
            double d = prob - y[i];
            double g0 = x1 * d, g1 = x2 * d, g2 = d;
            p[0] = fma(-lr, g0, p[0]);
            p[1] = fma(-lr, g1, p[1]);
            p[2] = fma(-lr, g2, p[2]);
        }
    }
}

static void softmax3(int64_t n, int64_t epochs, const double *x, const double *y, double lr, double *p) {
    /* p: a1_1 a1_2 a2_1 a2_2 a3_1 a3_2 b1 b2 b3 */
    for (int64_t ep = 0; ep < epochs; ep++) {
        for (int64_t i = 0; i < n; i++) {
            double x1 = x[2 * i], x2 = x[2 * i + 1];
            double z[3], lsm[3], d[3];
            for (int k = 0; k < 3; k++) z[k] = ((p[2 * k] * x1) + (p[2 * k + 1] * x2)) + p[6 + k];
            double m = z[0];
            if (z[1] > m) m = z[1];
            if (z[2] > m) m = z[2];
            double s = (exp(z[0] - m) + exp(z[1] - m)) + exp(z[2] - m);
            double ls = log(s);
            for (int k = 0; k < 3; k++) lsm[k] = (z[k] - m) - ls;
            for (int k = 0; k < 3; k++) d[k] = ((y[i] == (double)k) ? -1.0 : 0.0) - exp(lsm[k]) * -1.0;
            for (int k = 0; k < 3; k++) {
                double ga = x1 * d[k], gb = x2 * d[k];
                p[2 * k] = fma(-lr, ga, p[2 * k]);
                p[2 * k + 1] = fma(-lr, gb, p[2 * k + 1]);
            }
            for (int k = 0; k < 3; k++) p[6 + k] = fma(-lr, d[k], p[6 + k]);
        }
    }
}

int64_t run(int model, int64_t E, int64_t n, int64_t epochs, const double *x, const double *y, const double *lrs,
            double *params) {
    int P = model == 0 ? 3 : 9;
    for (int64_t e = 0; e < E; e++) {
        if (model == 0) logistic(n, epochs, x, y, lrs[e], params + e * P);
        else softmax3(n, epochs, x, y, lrs[e], params + e * P);
    }
    return E * n * epochs;
}
