/* The per-row training loop in plain C: the yardstick for bench/engine_speed.py.
 *
 * Models `linear` (y = a*x + b) and `two_relu` (y = c*max(a*x + b, 0) + d), squared loss, one
 * row per step, rows in order; optimizers torch.optim.SGD (no momentum) and torch.optim.Adam
 * (no weight decay, no amsgrad), spelled in the same operation order as sheetsync's pytorch
 * flavour (and torch's single-tensor code): gradients as autograd multiplies them out, Adam's
 * first moment as ATen's lerp, `sqrt(v) / (1 - beta2**t)**0.5 + eps`, `p + (-(lr/bc1)) * (m/denom)`.
 * Compiled with -O2 and -ffp-contract=off (no -ffast-math), so every operation is the IEEE one
 * written here and the results can be compared with sheetsync's to the last bit.
 *
 * E experiments (one learning rate each) run one after the other; `params` holds E x P values,
 * the start values in and the final values out. Returns the number of row steps taken.
 *
 * Build: cc -O2 -ffp-contract=off -shared -fPIC -o c_loop.so c_loop.c -lm  (bench does this)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { LINEAR = 0, TWO_RELU = 1 };
enum { SGD = 0, ADAM = 1 };
#define MAX_PARAMS 4

/* Row gradients of (pred - y)^2 for one row; returns the number of parameters. */
static inline int row_grads(int model, const double *p, double x, double y, double *grad) {
    if (model == LINEAR) {
        double pred = p[0] * x + p[1];
        double err = pred - y;
        double dloss = 2.0 * err;
        grad[0] = x * dloss;
        grad[1] = dloss;
        return 2;
    }
    double u = p[0] * x + p[1];
    double h = u > 0.0 ? u : 0.0;
    double pred = p[2] * h + p[3];
    double err = pred - y;
    double dloss = 2.0 * err;
    double dh = u > 0.0 ? dloss * p[2] : 0.0; /* relu backward: no gradient at u == 0 */
    grad[0] = dh * x;
    grad[1] = dh;
    grad[2] = dloss * h;
    grad[3] = dloss;
    return 4;
}

/* torch.lerp as ATen computes it: two formulas, switched at |weight| < 0.5. */
static inline double lerp(double start, double end, double weight) {
    return weight < 0.5 ? start + weight * (end - start) : end - (end - start) * (1.0 - weight);
}

static void run_one(int model, int optimizer, int64_t n, int64_t epochs, const double *x, const double *y,
                    double lr, double beta1, double beta2, double eps, double *p) {
    double grad[MAX_PARAMS], m[MAX_PARAMS] = {0}, v[MAX_PARAMS] = {0};
    double t = 0.0;
    for (int64_t ep = 0; ep < epochs; ep++) {
        for (int64_t i = 0; i < n; i++) {
            int np_ = row_grads(model, p, x[i], y[i], grad);
            t += 1.0;
            if (optimizer == SGD) {
                for (int k = 0; k < np_; k++) p[k] = p[k] + (-lr) * grad[k];
                continue;
            }
            double bc1 = 1.0 - pow(beta1, t);
            double bc2_sqrt = pow(1.0 - pow(beta2, t), 0.5);
            double step = -(lr / bc1);
            for (int k = 0; k < np_; k++) {
                m[k] = lerp(m[k], grad[k], 1.0 - beta1);
                v[k] = v[k] * beta2 + ((1.0 - beta2) * grad[k]) * grad[k];
                double denom = sqrt(v[k]) / bc2_sqrt + eps;
                p[k] = p[k] + step * (m[k] / denom);
            }
        }
    }
}

int64_t run(int model, int optimizer, int64_t n_experiments, int64_t n, int64_t epochs, const double *x,
            const double *y, const double *lrs, double beta1, double beta2, double eps, double *params) {
    int P = model == LINEAR ? 2 : 4;
    for (int64_t e = 0; e < n_experiments; e++)
        run_one(model, optimizer, n, epochs, x, y, lrs[e], beta1, beta2, eps, params + e * P);
    return n_experiments * n * epochs;
}
