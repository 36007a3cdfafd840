/*
 * The anole sine demo in C on a Cortex-M4F under QEMU (mps2-an386), through the C API and the
 * Rust static library: parse the embedded meta-learned blob in place, draw a new sine task,
 * collect 10 samples into a sample buffer, measure the MSE on 50 held-out points, adapt for
 * the blob's recommended steps, measure again, and print the losses and the cost
 * (instructions per step, per prediction and per multiply-accumulate, peak stack) over
 * semihosting. The task, samples and held-out points are the Rust firmware's
 * (firmware-examples/app-sine: same seed, generator and order), so the losses are the same
 * bits. Exits 0 when adapting lowered the held-out loss, 1 otherwise or on any error.
 */
#include "anole.h"
#include "board.h"

#include <math.h>
#include <stdint.h>

/* The model, embedded by model.S. */
extern const uint8_t anole_model[], anole_model_end[];

/* Floats of arena the model needs to adapt in the device layout at its recommended batch:
 * `anole inspect models/sine/init.postcard`, line "arena to adapt on a device". Checked at
 * run time against anole_arena_len. */
#ifndef ARENA_LEN
#define ARENA_LEN 6303
#endif

#define SUPPORT 10            /* samples collected before adapting (the paper's 10-shot) */
#define HELD_OUT 50           /* held-out points the loss is measured on */
#define SEED 0x2545F491u      /* the task and sample generator's seed */
#define X_RANGE 5.0f          /* inputs are drawn from [-X_RANGE, X_RANGE] */
#define PI_F 3.14159265358979323846f

static float arena[ARENA_LEN];
static _Alignas(ANOLE_HANDLE_ALIGN) uint8_t blob_mem[ANOLE_BLOB_SIZE];
static _Alignas(ANOLE_HANDLE_ALIGN) uint8_t learner_mem[ANOLE_LEARNER_SIZE];
static _Alignas(ANOLE_HANDLE_ALIGN) uint8_t samples_mem[ANOLE_SAMPLES_SIZE];
static float sample_storage[SUPPORT * 2];

/* ------------------------------------------------------------------ output */

static void print2(const char *a, const char *b) {
    board_print(a);
    board_print(b);
}

static const char *u64_text(uint64_t v, char buf[24]) {
    char *p = buf + 23;
    *p = 0;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

/* A float as the Rust firmware prints it (shortest text that reads back to the same bits). */
static const char *f32_text(float v, char buf[ANOLE_FORMAT_F32_LEN]) {
    if (anole_format_f32(v, buf, ANOLE_FORMAT_F32_LEN, NULL) != ANOLE_STATUS_OK) {
        buf[0] = '?';
        buf[1] = 0;
    }
    return buf;
}

static void print_u64(const char *key, uint64_t v) {
    char b[24];
    print2(key, u64_text(v, b));
    board_print("\n");
}

static void print_f32(const char *key, float v) {
    char b[ANOLE_FORMAT_F32_LEN];
    print2(key, f32_text(v, b));
    board_print("\n");
}

/* Print why `call` failed (with the details recorded in `handle`, if any) and stop. Out of
 * line: its message buffer then takes no room in the frames the demo runs in. */
static void fail(const char *call, anole_status s, const void *handle)
    __attribute__((noinline, noreturn));
static void fail(const char *call, anole_status s, const void *handle) {
    char details[160];
    print2("error: ", call);
    print2(": ", anole_status_message(s));
    if (handle != NULL && anole_last_error(handle, details, sizeof details, NULL) == ANOLE_STATUS_OK) {
        print2(" (", details);
        board_print(")");
    }
    board_print("\n");
    board_exit(0);
}

#define TRY(call, handle)                                                                          \
    do {                                                                                           \
        anole_status s_ = (call);                                                                  \
        if (s_ != ANOLE_STATUS_OK) {                                                               \
            fail(#call, s_, (handle));                                                             \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ the task */

/* xorshift32 (Marsaglia 2003), as app-sine's Rng. */
static uint32_t rng_state = SEED;

static uint32_t next_u32(void) {
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

/* Uniform in [lo, hi) from 24 random bits. */
static float uniform(float lo, float hi) {
    float u = (float)(next_u32() >> 8) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

static float amplitude, phase;

static float task(float x) {
    return amplitude * sinf(x + phase);
}

/* ------------------------------------------------------------------ the demo */

/* What the demo measured (app-sine's Report). */
typedef struct {
    anole_blob_info info;
    anole_learner_info learner;
    anole_adapt_report adapted;
    float loss_before, loss_after;
    uint64_t adapt_cost, predict_cost, macs_per_step;
} report;

/* Parse the model, collect the samples, adapt, measure. Out of line, as the Rust demo's
 * `run`: the held-out points live in its frame, and the printing after it (whose float
 * formatting takes most of the stack it uses) does not add its buffers to this frame. */
static void run(report *r) __attribute__((noinline));
static void run(report *r) {
    anole_blob *blob = NULL;
    TRY(anole_blob_parse(blob_mem, sizeof blob_mem, anole_model,
                         (size_t)(anole_model_end - anole_model), &blob),
        blob_mem);
    TRY(anole_blob_get_info(blob, &r->info), blob);
    if (r->info.input_len != 1 || r->info.target_len != 1) {
        board_print("error: the sine demo needs a 1-input, 1-output regressor\n");
        board_exit(0);
    }
    anole_learner_options opts;
    TRY(anole_learner_options_default(blob, &opts), blob);
    opts.mode = ANOLE_MODE_DEVICE;
    size_t needed = 0;
    TRY(anole_arena_len(blob, &opts, &needed), blob);
    if (needed > ARENA_LEN) {
        print_u64("error: ARENA_LEN is too small for this model; it needs ", needed);
        board_exit(0);
    }
    anole_learner *learner = NULL;
    TRY(anole_learner_init(learner_mem, sizeof learner_mem, blob, arena, ARENA_LEN, &opts, &learner),
        learner_mem);

    /* A new task, as the device meets it: samples arrive one by one into the buffer. */
    amplitude = uniform(0.1f, 5.0f);
    phase = uniform(0.0f, 2.0f * PI_F);
    anole_samples *support = NULL;
    TRY(anole_samples_init(samples_mem, sizeof samples_mem, sample_storage,
                           sizeof sample_storage / sizeof sample_storage[0], SUPPORT, 1, 1, &support),
        samples_mem);
    for (int i = 0; i < SUPPORT; i++) {
        float x = uniform(-X_RANGE, X_RANGE), y = task(x);
        TRY(anole_samples_push(support, &x, 1, &y, 1), support);
    }
    float xs[HELD_OUT], ys[HELD_OUT];
    for (int i = 0; i < HELD_OUT; i++) {
        xs[i] = uniform(-X_RANGE, X_RANGE);
        ys[i] = task(xs[i]);
    }

    TRY(anole_learner_loss_arrays(learner, xs, HELD_OUT, ys, HELD_OUT, &r->loss_before), learner);
    uint64_t t0 = board_instructions();
    TRY(anole_learner_adapt(learner, support, r->info.steps, &r->adapted), learner);
    r->adapt_cost = board_instructions() - t0;
    TRY(anole_learner_loss_arrays(learner, xs, HELD_OUT, ys, HELD_OUT, &r->loss_after), learner);

    r->predict_cost = 0;
    for (int i = 0; i < HELD_OUT; i++) {
        float y;
        uint64_t t = board_instructions();
        TRY(anole_learner_predict(learner, &xs[i], 1, &y, 1), learner);
        r->predict_cost += board_instructions() - t;
    }

    TRY(anole_learner_get_info(learner, &r->learner), learner);
    size_t count = 0;
    TRY(anole_samples_count(support, &count), support);
    size_t batch = r->learner.options.batch;
    r->macs_per_step = (uint64_t)r->learner.step_macs * (count < batch ? count : batch);
}

/* Print the report as the Rust firmware does. */
static void print_report(const report *r) __attribute__((noinline));
static void print_report(const report *r) {
    uint64_t steps = r->adapted.steps ? r->adapted.steps : 1;
    uint64_t per_step = r->adapt_cost / steps;
    uint64_t per_mac_x100 = per_step * 100 / (r->macs_per_step ? r->macs_per_step : 1);
    const anole_learner_info *li = &r->learner;

    char a[24], b[24], c[ANOLE_FORMAT_F32_LEN], d[ANOLE_FORMAT_F32_LEN];
    print2("model: ", u64_text(r->info.meta_iterations, a));
    print2(" meta-iterations, ", u64_text(r->info.params, b));
    print2(" parameters, arena ", u64_text(li->arena_used, a));
    print2(" f32 (", u64_text(li->arena_used * 4, b));
    print2(" bytes) at batch ", u64_text(li->options.batch, a));
    board_print("\n");
    print2("task: y = ", f32_text(amplitude, c));
    print2(" sin(x + ", f32_text(phase, d));
    print2("); ", u64_text(SUPPORT, a));
    print2(" support points, ", u64_text(HELD_OUT, b));
    board_print(" held-out points\n");
    print2("adapt: ", u64_text(r->adapted.steps, a));
    print2(" SGD steps at lr ", f32_text(li->options.lr, c));
    print2(", support loss ", f32_text(r->adapted.first_loss, d));
    print2(" -> ", f32_text(r->adapted.last_loss, c));
    board_print("\n");
    print_f32("loss_before=", r->loss_before);
    print_f32("loss_after=", r->loss_after);
    board_print("cost_unit=instructions\n");
    print_u64("per_step=", per_step);
    print_u64("per_prediction=", r->predict_cost / HELD_OUT);
    print_u64("macs_per_step=", r->macs_per_step);
    print2("per_mac=", u64_text(per_mac_x100 / 100, a));
    print2(".", u64_text(per_mac_x100 % 100 / 10, b));
    print2(u64_text(per_mac_x100 % 10, a), "\n");
}

/* The verdict's line. */
static void print_ok(const report *r) __attribute__((noinline));
static void print_ok(const report *r) {
    char c[ANOLE_FORMAT_F32_LEN], d[ANOLE_FORMAT_F32_LEN];
    print2("ok: held-out loss fell from ", f32_text(r->loss_before, c));
    print2(" to ", f32_text(r->loss_after, d));
    board_print("\n");
}

int main(void) {
    board_clock_start();
    board_print("anole sine demo in C on Cortex-M4F (QEMU mps2-an386)\n");
    report r;
    run(&r);
    print_report(&r);

    board_stack stack = board_stack_usage();
    print_u64("peak_stack=", stack.peak);
    print_u64("stack_available=", stack.size);
    if (stack.peak >= stack.size) {
        board_print("error: the stack used all the RAM left\n");
        return 1;
    }
    if (!(r.loss_after < r.loss_before)) {
        board_print("error: adapting did not lower the held-out loss\n");
        return 1;
    }
    print_ok(&r);
    return 0;
}
