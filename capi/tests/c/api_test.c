/*
 * Host tests of the anole C API: every function of anole.h with good arguments and with the
 * bad ones C can pass (NULL, misaligned, short, overlapping, wrong lengths, uninitialised,
 * released, copied, busy and wrong-kind handles), each status checked. Run by
 * capi/tests/c_api.rs, which writes the fixtures into the directory given as the only
 * argument and compares c-adapted.postcard, written here, with the runtime's own result.
 * Prints one line per failed check and "N passed, M failed"; exits 1 on any failure.
 */
#include "anole.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGNED _Alignas(ANOLE_HANDLE_ALIGN)

static int passed, failed;

static void check(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(cond) check((cond) != 0, #cond, __LINE__)

static void expect(anole_status got, anole_status want, const char *call, int line) {
    if (got == want) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL line %d: %s\n  returned %d (%s), expected %d (%s)\n", line, call, (int)got,
           anole_status_message(got), (int)want, anole_status_message(want));
}
#define EXPECT(call, want) expect((call), (want), #call, __LINE__)

/* Whether the last failure recorded in `handle` mentions `needle`. */
static int error_mentions(const void *handle, const char *needle) {
    char text[512];
    if (anole_last_error(handle, text, sizeof text, NULL) != ANOLE_STATUS_OK) {
        return 0;
    }
    if (strstr(text, needle) == NULL) {
        printf("  last error: %s\n", text);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ fixtures */

static const char *dir;

static size_t load(const char *name, void *buf, size_t cap) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        exit(2);
    }
    size_t n = fread(buf, 1, cap, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        printf("%s is larger than %zu bytes\n", path, cap);
        exit(2);
    }
    return n;
}

static void save(const char *name, const void *buf, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        printf("cannot write %s\n", path);
        exit(2);
    }
}

/* A value of expect.txt ("key value" lines written by the Rust side). */
static unsigned long long expected(const char *key) {
    static char text[4096];
    size_t n = load("expect.txt", text, sizeof text - 1);
    text[n] = 0;
    size_t klen = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            return strtoull(line + klen + 1, NULL, 10);
        }
    }
    printf("expect.txt has no %s\n", key);
    exit(2);
}

static uint8_t sine[32768], signed_blob[32768], head[1024], head_proto[1024], head_scaled[1024];
static size_t sine_len, signed_len, head_len, head_proto_len, head_scaled_len;
static uint8_t key_pub[32], other_pub[32], invalid_pub[32];
static float xs[10], ys[10];

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        }
    }
    return ~c;
}

/* Parse `bytes` into `mem`, which must succeed. */
static anole_blob *parse(void *mem, const uint8_t *bytes, size_t len) {
    anole_blob *b = NULL;
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, bytes, len, &b), ANOLE_STATUS_OK);
    return b;
}

/* A learner of `blob` in `mem` with `arena`, in `mode` with the blob's other settings. */
static anole_learner *learner(void *mem, anole_blob *blob, float *arena, size_t arena_len,
                              uint32_t mode) {
    anole_learner_options o;
    EXPECT(anole_learner_options_default(blob, &o), ANOLE_STATUS_OK);
    o.mode = mode;
    anole_learner *l = NULL;
    EXPECT(anole_learner_init(mem, ANOLE_LEARNER_SIZE, blob, arena, arena_len, &o, &l),
           ANOLE_STATUS_OK);
    return l;
}

static float arena_a[16384], arena_b[16384], arena_c[16384];

/* ------------------------------------------------------------------ status and text */

static const anole_status all_statuses[] = {
    ANOLE_STATUS_OK, ANOLE_STATUS_NULL_POINTER, ANOLE_STATUS_MISALIGNED,
    ANOLE_STATUS_MEMORY_TOO_SMALL, ANOLE_STATUS_OVERLAP, ANOLE_STATUS_INVALID_ARGUMENT,
    ANOLE_STATUS_NOT_A_HANDLE, ANOLE_STATUS_RELEASED, ANOLE_STATUS_WRONG_HANDLE,
    ANOLE_STATUS_IN_USE, ANOLE_STATUS_TRUNCATED, ANOLE_STATUS_BAD_MAGIC,
    ANOLE_STATUS_UNSUPPORTED_VERSION, ANOLE_STATUS_CRC_MISMATCH, ANOLE_STATUS_MALFORMED,
    ANOLE_STATUS_TRAILING_BYTES, ANOLE_STATUS_UNKNOWN_LAYER, ANOLE_STATUS_BAD_LAYER_ARGS,
    ANOLE_STATUS_SHAPE_MISMATCH, ANOLE_STATUS_LAYER_COUNT, ANOLE_STATUS_TENSOR_COUNT,
    ANOLE_STATUS_TENSOR_SIZE, ANOLE_STATUS_UNKNOWN_DTYPE, ANOLE_STATUS_NON_FINITE_WEIGHT,
    ANOLE_STATUS_BAD_LOSS, ANOLE_STATUS_BAD_OPTIMIZER, ANOLE_STATUS_BAD_SETTINGS,
    ANOLE_STATUS_UNSUPPORTED_CHAIN, ANOLE_STATUS_TOO_LARGE, ANOLE_STATUS_BAD_GEOMETRY,
    ANOLE_STATUS_UNSIGNED,
    ANOLE_STATUS_ENVELOPE_VERSION, ANOLE_STATUS_ENVELOPE_LENGTH, ANOLE_STATUS_ENVELOPE_MALFORMED,
    ANOLE_STATUS_UNKNOWN_KEY, ANOLE_STATUS_BAD_SIGNATURE, ANOLE_STATUS_BAD_PUBLIC_KEY,
    ANOLE_STATUS_BAD_HEAD_START,
    ANOLE_STATUS_ARENA_TOO_SMALL, ANOLE_STATUS_BATCH_TOO_LARGE, ANOLE_STATUS_SAMPLE_LENGTH,
    ANOLE_STATUS_NON_FINITE_SAMPLE, ANOLE_STATUS_BAD_LABEL, ANOLE_STATUS_NO_SAMPLES,
    ANOLE_STATUS_NON_FINITE_LOSS, ANOLE_STATUS_NON_FINITE_PARAMETER,
    ANOLE_STATUS_BUFFER_TOO_SMALL, ANOLE_STATUS_PARAM_COUNT, ANOLE_STATUS_OPTIMIZER_STATE_LEN,
    ANOLE_STATUS_BAD_OPTIMIZER_STATE, ANOLE_STATUS_NOT_OPTIMIZER_STATE,
    ANOLE_STATUS_BAD_TRAINABLE_MASK, ANOLE_STATUS_ARCHITECTURE_MISMATCH, ANOLE_STATUS_NOT_A_HEAD,
    ANOLE_STATUS_MISSING_CLASS, ANOLE_STATUS_NO_HEAD, ANOLE_STATUS_NO_BODY,
    ANOLE_STATUS_FLASH_GEOMETRY, ANOLE_STATUS_FLASH_RANGE,
    ANOLE_STATUS_FLASH_FAILED, ANOLE_STATUS_STORE_RANGE_TOO_SMALL, ANOLE_STATUS_STORE_VERIFY,
};

static void test_status_messages(void) {
    const size_t n = sizeof all_statuses / sizeof all_statuses[0];
    const char *unknown = anole_status_message(-1);
    CHECK(strcmp(unknown, "unknown status code") == 0);
    CHECK(strcmp(anole_status_message(10), unknown) == 0);
    CHECK(strcmp(anole_status_message(1000), unknown) == 0);
    CHECK(strcmp(anole_status_message(ANOLE_STATUS_OK), "success") == 0);
    int distinct = 1;
    for (size_t i = 0; i < n; i++) {
        const char *m = anole_status_message(all_statuses[i]);
        distinct &= m != NULL && strlen(m) > 5 && strcmp(m, unknown) != 0;
        for (size_t j = 0; j < i; j++) {
            distinct &= strcmp(m, anole_status_message(all_statuses[j])) != 0;
        }
    }
    CHECK(distinct);
    /* Exactly these codes have a message. */
    size_t known = 0;
    for (int code = -100; code < 200; code++) {
        known += strcmp(anole_status_message(code), unknown) != 0;
    }
    CHECK(known == n);
}

static void test_format_f32(void) {
    char buf[ANOLE_FORMAT_F32_LEN];
    size_t n = 0;
    EXPECT(anole_format_f32(0.1f, buf, sizeof buf, &n), ANOLE_STATUS_OK);
    CHECK(strcmp(buf, "0.1") == 0 && n == 3);
    EXPECT(anole_format_f32(-2.5f, buf, sizeof buf, NULL), ANOLE_STATUS_OK);
    CHECK(strcmp(buf, "-2.5") == 0);
    EXPECT(anole_format_f32(1.0f / 3.0f, buf, sizeof buf, NULL), ANOLE_STATUS_OK);
    CHECK(strcmp(buf, "0.33333334") == 0);
    EXPECT(anole_format_f32(NAN, buf, sizeof buf, NULL), ANOLE_STATUS_OK);
    CHECK(strcmp(buf, "NaN") == 0);
    EXPECT(anole_format_f32(-INFINITY, buf, sizeof buf, NULL), ANOLE_STATUS_OK);
    CHECK(strcmp(buf, "-inf") == 0);
    /* The longest text: minus the smallest subnormal. */
    float tiny;
    uint32_t bits = 0x80000001u;
    memcpy(&tiny, &bits, sizeof tiny);
    EXPECT(anole_format_f32(tiny, buf, sizeof buf, &n), ANOLE_STATUS_OK);
    CHECK(n == ANOLE_FORMAT_F32_LEN - 1 && strlen(buf) == n);
    CHECK(strtof(buf, NULL) == tiny);
    EXPECT(anole_format_f32(0.1f, buf, 3, &n), ANOLE_STATUS_BUFFER_TOO_SMALL);
    CHECK(buf[0] == 0);
    EXPECT(anole_format_f32(0.1f, NULL, 0, &n), ANOLE_STATUS_BUFFER_TOO_SMALL);
    EXPECT(anole_format_f32(0.1f, NULL, 8, &n), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_format_f32(0.1f, buf, sizeof buf, (size_t *)(void *)buf), ANOLE_STATUS_OVERLAP);
    static _Alignas(8) uint8_t raw[16];
    EXPECT(anole_format_f32(0.1f, buf, sizeof buf, (size_t *)(void *)(raw + 1)),
           ANOLE_STATUS_MISALIGNED);
}

/* ------------------------------------------------------------------ blobs */

static void test_blob_parse(void) {
    static ALIGNED uint8_t mem[ANOLE_BLOB_SIZE + 16];
    static ALIGNED uint8_t out_raw[16];
    static uint8_t bytes[32768];
    anole_blob *b = (anole_blob *)(void *)1;
    anole_blob_info info;

    EXPECT(anole_blob_parse(NULL, ANOLE_BLOB_SIZE, sine, sine_len, &b), ANOLE_STATUS_NULL_POINTER);
    CHECK(b == NULL);
    EXPECT(anole_blob_parse(mem + 1, ANOLE_BLOB_SIZE, sine, sine_len, &b), ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE - 1, sine, sine_len, &b),
           ANOLE_STATUS_MEMORY_TOO_SMALL);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, sine_len, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, sine_len, (anole_blob **)(void *)(out_raw + 1)),
           ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, sine_len, (anole_blob **)(void *)(mem + 8)),
           ANOLE_STATUS_OVERLAP);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, NULL, sine_len, &b), ANOLE_STATUS_NULL_POINTER);
    CHECK(b == NULL);
    CHECK(error_mentions(mem, "anole_blob_parse: `bytes` is NULL"));
    /* The memory of a failed creation is no handle. */
    EXPECT(anole_blob_get_info((anole_blob *)(void *)mem, &info), ANOLE_STATUS_RELEASED);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, mem + 64, 16, &b), ANOLE_STATUS_OVERLAP);
    CHECK(error_mentions(mem, "overlaps"));

    /* Damaged blobs, each with its own status. */
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, 0, &b), ANOLE_STATUS_TRUNCATED);
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, 6, &b), ANOLE_STATUS_TRUNCATED);
    memcpy(bytes, sine, sine_len);
    bytes[0] = 'X';
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, bytes, sine_len, &b), ANOLE_STATUS_BAD_MAGIC);
    memcpy(bytes, sine, sine_len);
    bytes[sine_len / 2] ^= 0x40;
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, bytes, sine_len, &b), ANOLE_STATUS_CRC_MISMATCH);
    CHECK(error_mentions(mem, "CRC-32"));
    memcpy(bytes, sine, sine_len);
    bytes[4] = 4; /* format version 4, newer than the library reads; CRC made to match */
    uint32_t crc = crc32(bytes, sine_len - 4);
    for (int i = 0; i < 4; i++) {
        bytes[sine_len - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, bytes, sine_len, &b), ANOLE_STATUS_UNSUPPORTED_VERSION);
    CHECK(error_mentions(mem, "version 4"));

    /* Blobs whose CRC checks out but whose content does not: one status per way
     * (damaged.txt: file and status, written by the Rust side). */
    static char index[2048];
    size_t index_len = load("damaged.txt", index, sizeof index - 1);
    index[index_len] = 0;
    int damaged = 0;
    for (char *line = strtok(index, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char name[64];
        int want;
        if (sscanf(line, "%63s %d", name, &want) != 2) {
            continue;
        }
        size_t n = load(name, bytes, sizeof bytes);
        anole_status got = anole_blob_parse(mem, ANOLE_BLOB_SIZE, bytes, n, &b);
        if (got != want) {
            printf("  %s:\n", name);
        }
        EXPECT(got, want);
        damaged++;
    }
    CHECK(damaged >= 14);

    /* A good one. */
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, sine_len, &b), ANOLE_STATUS_OK);
    CHECK((void *)b == (void *)mem);
    CHECK(error_mentions(b, "no failure recorded")); /* a new handle starts clean */
    EXPECT(anole_blob_get_info(b, &info), ANOLE_STATUS_OK);
    CHECK(info.input_len == expected("input_len"));
    CHECK(info.output_len == expected("output_len"));
    CHECK(info.target_len == expected("target_len"));
    CHECK(info.layers == expected("layers"));
    CHECK(info.params == expected("params"));
    CHECK(info.blob_len == sine_len);
    CHECK(info.loss == ANOLE_LOSS_MSE);
    CHECK(info.optimizer == ANOLE_OPTIMIZER_SGD);
    CHECK(float_bits(info.lr) == expected("lr_bits"));
    CHECK(info.steps == expected("steps"));
    CHECK(info.batch == expected("batch"));
    CHECK(info.trainable == expected("trainable"));
    CHECK(info.meta_iterations == expected("meta_iterations"));
    CHECK(info.head_scale == 1.0f);
    EXPECT(anole_blob_get_info(b, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_blob_get_info(b, (anole_blob_info *)(void *)(mem + 64)), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_blob_get_info(b, (anole_blob_info *)(void *)(out_raw + 1)), ANOLE_STATUS_MISALIGNED);
    CHECK(error_mentions(b, "anole_blob_get_info: `info` is not aligned"));

    /* Arena sizes: the figures `anole inspect` prints. */
    size_t len = 0;
    EXPECT(anole_arena_len(b, NULL, &len), ANOLE_STATUS_OK);
    CHECK(len == expected("arena_buffered"));
    anole_learner_options o;
    EXPECT(anole_learner_options_default(b, &o), ANOLE_STATUS_OK);
    CHECK(o.mode == ANOLE_MODE_BUFFERED && o.batch == expected("batch") &&
          o.trainable == expected("trainable") && float_bits(o.lr) == expected("lr_bits"));
    o.mode = ANOLE_MODE_DEVICE;
    EXPECT(anole_arena_len(b, &o, &len), ANOLE_STATUS_OK);
    CHECK(len == expected("arena_device"));
    anole_learner_options predict = o;
    predict.batch = 1;
    predict.trainable = 0;
    EXPECT(anole_arena_len(b, &predict, &len), ANOLE_STATUS_OK);
    CHECK(len == expected("arena_predict_device"));
    anole_learner_options bad = o;
    bad.mode = 7;
    EXPECT(anole_arena_len(b, &bad, &len), ANOLE_STATUS_INVALID_ARGUMENT);
    bad = o;
    bad.batch = 0;
    EXPECT(anole_arena_len(b, &bad, &len), ANOLE_STATUS_BAD_SETTINGS);
    bad = o;
    bad.trainable = 1u << 30;
    EXPECT(anole_arena_len(b, &bad, &len), ANOLE_STATUS_BAD_TRAINABLE_MASK);
    bad.trainable = (uint64_t)1 << 40; /* 64 bits since format version 3 */
    CHECK(anole_arena_len(b, &bad, &len) != ANOLE_STATUS_OK);
    EXPECT(anole_arena_len(b, &o, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_arena_len(b, (anole_learner_options *)(void *)(out_raw + 1), &len),
           ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_arena_len(b, &o, (size_t *)(void *)&o), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_options_default(b, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_options_default(b, (anole_learner_options *)(void *)(mem + 8)),
           ANOLE_STATUS_OVERLAP);

    /* Parsing again over a live blob nobody uses is allowed; release ends it. */
    EXPECT(anole_blob_parse(mem, ANOLE_BLOB_SIZE, sine, sine_len, &b), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_RELEASED);
    EXPECT(anole_blob_get_info(b, &info), ANOLE_STATUS_RELEASED);
    EXPECT(anole_arena_len(b, NULL, &len), ANOLE_STATUS_RELEASED);
    EXPECT(anole_learner_options_default(b, &o), ANOLE_STATUS_RELEASED);
}

static void test_blob_signed(void) {
    static ALIGNED uint8_t mem[ANOLE_BLOB_SIZE];
    static uint8_t bytes[32768];
    anole_blob *b = NULL;
    anole_blob_info info;

    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len, key_pub, 32, &b),
           ANOLE_STATUS_OK);
    EXPECT(anole_blob_get_info(b, &info), ANOLE_STATUS_OK);
    CHECK(info.blob_len == sine_len && info.params == expected("params"));
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);

    EXPECT(anole_blob_parse_signed(mem, sizeof mem, sine, sine_len, key_pub, 32, &b),
           ANOLE_STATUS_UNSIGNED);
    CHECK(b == NULL);
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len, other_pub, 32, &b),
           ANOLE_STATUS_UNKNOWN_KEY);
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len, invalid_pub, 32, &b),
           ANOLE_STATUS_BAD_PUBLIC_KEY);
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len, key_pub, 31, &b),
           ANOLE_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions(mem, "key_len"));
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len, NULL, 32, &b),
           ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len - 1, key_pub, 32, &b),
           ANOLE_STATUS_ENVELOPE_LENGTH);
    memcpy(bytes, signed_blob, signed_len);
    bytes[signed_len - 1] ^= 1; /* the signature */
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, bytes, signed_len, key_pub, 32, &b),
           ANOLE_STATUS_BAD_SIGNATURE);
    memcpy(bytes, signed_blob, signed_len);
    bytes[4] = 9; /* envelope version */
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, bytes, signed_len, key_pub, 32, &b),
           ANOLE_STATUS_ENVELOPE_VERSION);
    memcpy(bytes, signed_blob, signed_len);
    bytes[7] = 1; /* reserved byte */
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, bytes, signed_len, key_pub, 32, &b),
           ANOLE_STATUS_ENVELOPE_MALFORMED);
    EXPECT(anole_blob_parse_signed(mem, sizeof mem, signed_blob, signed_len, mem + 16, 32, &b),
           ANOLE_STATUS_OVERLAP);
}

/* Handles of the wrong kind, uninitialised, copied, NULL, misaligned. */
static void test_handle_checks(void) {
    static ALIGNED uint8_t mem[ANOLE_BLOB_SIZE];
    static ALIGNED uint8_t copy[ANOLE_BLOB_SIZE];
    static ALIGNED uint8_t zero[ANOLE_BLOB_SIZE];
    anole_blob *b = parse(mem, sine, sine_len);
    anole_blob_info info;
    size_t count;

    EXPECT(anole_learner_reset((anole_learner *)(void *)b), ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_samples_clear((anole_samples *)(void *)b), ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_samples_count((anole_samples *)(void *)b, &count), ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_store_release((anole_store *)(void *)b), ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_blob_get_info((anole_blob *)(void *)zero, &info), ANOLE_STATUS_NOT_A_HANDLE);
    EXPECT(anole_learner_reset((anole_learner *)(void *)zero), ANOLE_STATUS_NOT_A_HANDLE);
    memcpy(copy, mem, sizeof copy);
    EXPECT(anole_blob_get_info((anole_blob *)(void *)copy, &info), ANOLE_STATUS_NOT_A_HANDLE);
    EXPECT(anole_blob_get_info(NULL, &info), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_blob_get_info((anole_blob *)(void *)(mem + 4), &info), ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
}

/* ------------------------------------------------------------------ learners */

static void test_learner_init(void) {
    static ALIGNED uint8_t bmem[ANOLE_BLOB_SIZE], b2mem[ANOLE_BLOB_SIZE];
    static ALIGNED uint8_t lmem[ANOLE_LEARNER_SIZE + 16];
    static ALIGNED uint8_t zero[ANOLE_BLOB_SIZE];
    static float blob_in_floats[8192];
    anole_blob *b = parse(bmem, sine, sine_len);
    anole_learner *l = NULL;
    anole_learner_options o;
    EXPECT(anole_learner_options_default(b, &o), ANOLE_STATUS_OK);
    o.mode = ANOLE_MODE_DEVICE;
    size_t need = 0;
    EXPECT(anole_arena_len(b, &o, &need), ANOLE_STATUS_OK);
    const size_t L = ANOLE_LEARNER_SIZE;

    EXPECT(anole_learner_init(NULL, L, b, arena_a, need, &o, &l), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_init(lmem + 8, L, b, arena_a, need, &o, &l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_init(lmem + 4, L, b, arena_a, need, &o, &l), ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_learner_init(lmem, L - 1, b, arena_a, need, &o, &l), ANOLE_STATUS_MEMORY_TOO_SMALL);
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, &o, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_init(lmem, L, NULL, arena_a, need, &o, &l), ANOLE_STATUS_NULL_POINTER);
    CHECK(error_mentions(lmem, "anole_learner_init: `blob` is NULL"));
    EXPECT(anole_learner_init(lmem, L, (anole_blob *)(void *)zero, arena_a, need, &o, &l),
           ANOLE_STATUS_NOT_A_HANDLE);
    EXPECT(anole_learner_init(lmem, L, (anole_blob *)(void *)lmem, arena_a, need, &o, &l),
           ANOLE_STATUS_RELEASED);
    EXPECT(anole_learner_init(lmem, L, b, NULL, need, &o, &l), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_init(lmem, L, b, (float *)(void *)((uint8_t *)arena_a + 2), need, &o, &l),
           ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need - 1, &o, &l), ANOLE_STATUS_ARENA_TOO_SMALL);
    CHECK(error_mentions(lmem, "arena too small"));
    EXPECT(anole_learner_init(lmem, L, b, (float *)(void *)lmem, need, &o, &l), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, (anole_learner_options *)(void *)arena_a, &l),
           ANOLE_STATUS_OVERLAP);
    /* An arena holding the blob's own bytes. */
    memcpy(blob_in_floats, sine, sine_len);
    anole_blob *b2 = parse(b2mem, (const uint8_t *)blob_in_floats, sine_len);
    EXPECT(anole_learner_init(lmem, L, b2, blob_in_floats, need, &o, &l), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_blob_release(b2), ANOLE_STATUS_OK);

    anole_learner_options bad = o;
    bad.mode = 2;
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, &bad, &l), ANOLE_STATUS_INVALID_ARGUMENT);
    bad = o;
    bad.lr = NAN;
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, &bad, &l), ANOLE_STATUS_BAD_SETTINGS);
    bad = o;
    bad.lr = -1.0f;
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, &bad, &l), ANOLE_STATUS_BAD_SETTINGS);
    bad = o;
    bad.trainable = 0xFFFFFFFFu;
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, &bad, &l), ANOLE_STATUS_BAD_TRAINABLE_MASK);
    bad = o;
    bad.batch = 100000;
    EXPECT(anole_learner_init(lmem, L, b, arena_a, need, &bad, &l), ANOLE_STATUS_BAD_SETTINGS);

    /* NULL options: the blob's recommendation, buffered. */
    size_t buffered = 0;
    EXPECT(anole_arena_len(b, NULL, &buffered), ANOLE_STATUS_OK);
    EXPECT(anole_learner_init(lmem, L, b, arena_a, buffered, NULL, &l), ANOLE_STATUS_OK);
    anole_learner_info li;
    EXPECT(anole_learner_get_info(l, &li), ANOLE_STATUS_OK);
    CHECK(li.options.mode == ANOLE_MODE_BUFFERED && li.arena_used == buffered);
    CHECK(li.params_in_arena == expected("params"));
    CHECK(li.steps_taken == 0);
    CHECK(li.forward_macs > 0 && li.step_macs > li.forward_macs);
    EXPECT(anole_learner_get_info(l, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_get_info(l, (anole_learner_info *)(void *)arena_a), ANOLE_STATUS_OVERLAP);
    /* In use: the blob cannot be released or parsed over. */
    EXPECT(anole_blob_release(b), ANOLE_STATUS_IN_USE);
    CHECK(error_mentions(b, "1 live learner"));
    EXPECT(anole_blob_parse(bmem, sizeof bmem, sine, sine_len, &b2), ANOLE_STATUS_IN_USE);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_RELEASED);
    EXPECT(anole_learner_reset(l), ANOLE_STATUS_RELEASED);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
}

static void test_learner_calls(void) {
    static ALIGNED uint8_t bmem[ANOLE_BLOB_SIZE], amem[ANOLE_BLOB_SIZE], hmem[ANOLE_BLOB_SIZE];
    static ALIGNED uint8_t lmem[ANOLE_LEARNER_SIZE], l2mem[ANOLE_LEARNER_SIZE],
        l3mem[ANOLE_LEARNER_SIZE];
    static ALIGNED uint8_t smem[ANOLE_SAMPLES_SIZE];
    static float storage[20];
    static uint8_t exported[32768], exported2[32768];
    anole_blob *b = parse(bmem, sine, sine_len);
    anole_learner *l = learner(lmem, b, arena_a, 16384, ANOLE_MODE_DEVICE);
    anole_learner *l2 = learner(l2mem, b, arena_b, 16384, ANOLE_MODE_DEVICE);
    const uint32_t steps = (uint32_t)expected("steps");

    /* Predict. Heap buffers of the exact size, so valgrind sees a write past them. */
    float *in = malloc(3 * sizeof *in);
    float *out = malloc(3 * sizeof *out);
    in[0] = 0.5f;
    in[1] = -1.0f;
    in[2] = 2.0f;
    EXPECT(anole_learner_predict(l, in, 3, out, 3), ANOLE_STATUS_OK);
    CHECK(isfinite(out[0]) && isfinite(out[1]) && isfinite(out[2]));
    /* One sample at a time (the runtime's per-sample path): the same bits. */
    for (int i = 0; i < 3; i++) {
        float one = NAN;
        EXPECT(anole_learner_predict(l, &in[i], 1, &one, 1), ANOLE_STATUS_OK);
        CHECK(memcmp(&one, &out[i], sizeof one) == 0);
    }
    {
        float one = NAN, bad = INFINITY;
        EXPECT(anole_learner_predict(l, &bad, 1, &one, 1), ANOLE_STATUS_NON_FINITE_SAMPLE);
        CHECK(error_mentions(l, "sample 0"));
        EXPECT(anole_learner_predict(l, in, 1, &one, 0), ANOLE_STATUS_BUFFER_TOO_SMALL);
        EXPECT(anole_learner_predict(l, in, 1, in, 1), ANOLE_STATUS_OVERLAP);
        EXPECT(anole_learner_predict(l, in, 1, arena_a, 1), ANOLE_STATUS_OVERLAP);
    }
    EXPECT(anole_learner_predict(l, in, 3, out, 2), ANOLE_STATUS_BUFFER_TOO_SMALL);
    EXPECT(anole_learner_predict(l, in, 0, out, 0), ANOLE_STATUS_OK);
    EXPECT(anole_learner_predict(l, NULL, 3, out, 3), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_predict(l, in, 3, NULL, 3), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_predict(l, in, 3, in, 3), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_predict(l, in, 3, arena_a + 100, 3), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_predict(l, arena_a, 3, out, 3), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_predict(l, in, 3, (float *)(void *)lmem, 3), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_predict(l, in, 3, (float *)(void *)((uint8_t *)out + 1), 2),
           ANOLE_STATUS_MISALIGNED);
    in[1] = NAN;
    EXPECT(anole_learner_predict(l, in, 3, out, 3), ANOLE_STATUS_NON_FINITE_SAMPLE);
    CHECK(error_mentions(l, "sample 1"));
    in[1] = -1.0f;

    size_t cls = 9;
    EXPECT(anole_learner_classify(l, in, 1, &cls), ANOLE_STATUS_OK);
    CHECK(cls == 0);
    EXPECT(anole_learner_classify(l, in, 2, &cls), ANOLE_STATUS_SAMPLE_LENGTH);
    EXPECT(anole_learner_classify(l, in, 1, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_classify(l, in, 1, (size_t *)(void *)in), ANOLE_STATUS_OVERLAP);

    /* Loss before adapting: arrays and a sample buffer agree. */
    float before = NAN, before2 = NAN, after = NAN;
    EXPECT(anole_learner_loss_arrays(l, xs, 10, ys, 10, &before), ANOLE_STATUS_OK);
    CHECK(isfinite(before) && before > 0.0f);
    EXPECT(anole_learner_loss_arrays(l, xs, 10, ys, 9, &before), ANOLE_STATUS_SAMPLE_LENGTH);
    EXPECT(anole_learner_loss_arrays(l, xs, 0, ys, 0, &before), ANOLE_STATUS_NO_SAMPLES);
    EXPECT(anole_learner_loss_arrays(l, xs, 10, ys, 10, NULL), ANOLE_STATUS_NULL_POINTER);
    anole_samples *s = NULL;
    EXPECT(anole_samples_init(smem, sizeof smem, storage, 20, 10, 1, 1, &s), ANOLE_STATUS_OK);
    for (int i = 0; i < 10; i++) {
        EXPECT(anole_samples_push(s, &xs[i], 1, &ys[i], 1), ANOLE_STATUS_OK);
    }
    EXPECT(anole_learner_loss(l, s, &before2), ANOLE_STATUS_OK);
    CHECK(float_bits(before) == float_bits(before2));
    EXPECT(anole_learner_loss(l, s, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_loss(l, (anole_samples *)(void *)b, &before2), ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_learner_loss(l, s, storage), ANOLE_STATUS_OVERLAP);

    /* Adapt on the sample buffer; the same on arrays gives the same blob. */
    anole_adapt_report rep;
    EXPECT(anole_learner_adapt(l, s, steps, &rep), ANOLE_STATUS_OK);
    CHECK(rep.steps == steps && isfinite(rep.first_loss) && isfinite(rep.last_loss));
    CHECK(rep.last_loss < rep.first_loss);
    EXPECT(anole_learner_loss(l, s, &after), ANOLE_STATUS_OK);
    CHECK(after < before);
    EXPECT(anole_learner_adapt_arrays(l2, xs, 10, ys, 10, steps, NULL), ANOLE_STATUS_OK);
    size_t n = 0, n2 = 0;
    EXPECT(anole_learner_export_len(l, &n), ANOLE_STATUS_OK);
    CHECK(n == sine_len);
    EXPECT(anole_learner_export(l, exported, sizeof exported, &n), ANOLE_STATUS_OK);
    EXPECT(anole_learner_export(l2, exported2, sizeof exported2, &n2), ANOLE_STATUS_OK);
    CHECK(n == sine_len && n2 == n && memcmp(exported, exported2, n) == 0);
    CHECK(memcmp(exported, sine, n) != 0);
    save("c-adapted.postcard", exported, n);
    anole_learner_info li;
    EXPECT(anole_learner_get_info(l, &li), ANOLE_STATUS_OK);
    CHECK(li.steps_taken == steps);

    EXPECT(anole_learner_adapt(l, NULL, steps, &rep), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_adapt(l, s, steps, (anole_adapt_report *)(void *)storage), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_adapt_arrays(l, xs, 10, ys, 10, 1, (anole_adapt_report *)(void *)xs),
           ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_adapt_arrays(l, xs, 0, ys, 0, 1, NULL), ANOLE_STATUS_NO_SAMPLES);
    EXPECT(anole_learner_adapt_arrays(l, xs, 10, ys, 5, 1, NULL), ANOLE_STATUS_SAMPLE_LENGTH);

    /* Export checks. */
    EXPECT(anole_learner_export_len(l, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_export(l, exported, n - 1, &n2), ANOLE_STATUS_BUFFER_TOO_SMALL);
    EXPECT(anole_learner_export(l, exported, sizeof exported, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_export(l, NULL, sizeof exported, &n2), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_export(l, (uint8_t *)arena_a, 4 * 16384, &n2), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_export(l, sine, sine_len, &n2), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_learner_export(l, exported, sizeof exported, (size_t *)(void *)exported),
           ANOLE_STATUS_OVERLAP);

    /* Load the exported parameters into a fresh learner: same predictions. */
    anole_blob *adapted = parse(amem, exported, n);
    anole_learner *l3 = learner(l3mem, b, arena_c, 16384, ANOLE_MODE_DEVICE);
    EXPECT(anole_learner_load_params(l3, adapted), ANOLE_STATUS_OK);
    float *out3 = malloc(3 * sizeof *out3);
    EXPECT(anole_learner_predict(l, in, 3, out, 3), ANOLE_STATUS_OK);
    EXPECT(anole_learner_predict(l3, in, 3, out3, 3), ANOLE_STATUS_OK);
    CHECK(memcmp(out, out3, 3 * sizeof *out) == 0);
    anole_blob *h = parse(hmem, head, head_len);
    EXPECT(anole_learner_load_params(l3, h), ANOLE_STATUS_ARCHITECTURE_MISMATCH);
    EXPECT(anole_learner_load_params(l3, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_load_params(l3, (anole_blob *)(void *)l), ANOLE_STATUS_WRONG_HANDLE);

    /* Reset: back to the blob's bytes. */
    EXPECT(anole_learner_reset(l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_export(l, exported, sizeof exported, &n), ANOLE_STATUS_OK);
    CHECK(n == sine_len && memcmp(exported, sine, n) == 0);

    /* Learning rate. */
    EXPECT(anole_learner_set_lr(l, NAN), ANOLE_STATUS_BAD_SETTINGS);
    EXPECT(anole_learner_set_lr(l, -0.5f), ANOLE_STATUS_BAD_SETTINGS);
    EXPECT(anole_learner_set_lr(l, 0.125f), ANOLE_STATUS_OK);
    EXPECT(anole_learner_get_info(l, &li), ANOLE_STATUS_OK);
    CHECK(li.options.lr == 0.125f && li.steps_taken == 0);

    /* Steps: batch limit, learning rate, non-finite loss and parameters. */
    float loss = NAN;
    EXPECT(anole_learner_step(l, xs, 10, ys, 10, 0.01f, &loss), ANOLE_STATUS_OK);
    CHECK(isfinite(loss));
    EXPECT(anole_learner_step(l, xs, 10, ys, 10, 0.01f, NULL), ANOLE_STATUS_OK);
    float many[11] = {0};
    EXPECT(anole_learner_step(l, many, 11, many, 11, 0.01f, NULL), ANOLE_STATUS_BATCH_TOO_LARGE);
    EXPECT(anole_learner_step(l, xs, 10, ys, 10, -1.0f, NULL), ANOLE_STATUS_INVALID_ARGUMENT);
    EXPECT(anole_learner_step(l, xs, 10, ys, 10, INFINITY, NULL), ANOLE_STATUS_INVALID_ARGUMENT);
    EXPECT(anole_learner_step(l, xs, 10, ys, 10, 0.01f, (float *)(void *)ys), ANOLE_STATUS_OVERLAP);
    float huge[10], large[10];
    for (int i = 0; i < 10; i++) {
        huge[i] = 3e38f;
        large[i] = 1e18f;
    }
    EXPECT(anole_learner_step(l, xs, 10, huge, 10, 0.01f, NULL), ANOLE_STATUS_NON_FINITE_LOSS);
    EXPECT(anole_learner_step(l, xs, 10, large, 10, 1e30f, NULL), ANOLE_STATUS_NON_FINITE_PARAMETER);
    CHECK(error_mentions(l, "anole_learner_step: step"));
    EXPECT(anole_learner_predict(l, in, 3, out, 3), ANOLE_STATUS_OK);
    CHECK(isfinite(out[0]) && isfinite(out[1]) && isfinite(out[2]));

    /* Prototypes need a classifier head. */
    EXPECT(anole_learner_init_prototypes(l, s), ANOLE_STATUS_NOT_A_HEAD);
    EXPECT(anole_learner_init_prototypes_arrays(l, xs, 10, ys, 10), ANOLE_STATUS_NOT_A_HEAD);

    EXPECT(anole_samples_release(s), ANOLE_STATUS_OK);
    EXPECT(anole_learner_adapt(l, s, 1, NULL), ANOLE_STATUS_RELEASED);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l2), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_IN_USE); /* l3 */
    EXPECT(anole_learner_release(l3), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(adapted), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(h), ANOLE_STATUS_OK);
    free(in);
    free(out);
    free(out3);
}

/* Six 4-value features, two per class, each class around its own corner. */
static void corner_features(float *feats, float *labels) {
    for (int i = 0; i < 6; i++) {
        int c = i % 3;
        for (int k = 0; k < 4; k++) {
            feats[i * 4 + k] = (k == c ? 2.0f : 0.0f) + (i < 3 ? 0.1f : -0.1f);
        }
        labels[i] = (float)c;
    }
}

/* Each class's corner is classified as that class. */
static void classifies_corners(anole_learner *l) {
    for (int c = 0; c < 3; c++) {
        float x[4] = {0, 0, 0, 0};
        x[c] = 2.0f;
        size_t got = 9;
        EXPECT(anole_learner_classify(l, x, 4, &got), ANOLE_STATUS_OK);
        CHECK(got == (size_t)c);
    }
}

static void test_prototypes(void) {
    static ALIGNED uint8_t hmem[ANOLE_BLOB_SIZE], lmem[ANOLE_LEARNER_SIZE], smem[ANOLE_SAMPLES_SIZE];
    static float storage[6 * 5];
    anole_blob *h = parse(hmem, head, head_len);
    anole_blob_info info;
    EXPECT(anole_blob_get_info(h, &info), ANOLE_STATUS_OK);
    CHECK(info.loss == ANOLE_LOSS_CROSS_ENTROPY && info.input_len == 4 && info.output_len == 3 &&
          info.target_len == 1);
    anole_learner *l = learner(lmem, h, arena_a, 16384, ANOLE_MODE_BUFFERED);
    float feats[6 * 4], labels[6];
    corner_features(feats, labels);
    EXPECT(anole_learner_init_prototypes_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_OK);
    classifies_corners(l);
    labels[0] = 7.0f;
    EXPECT(anole_learner_init_prototypes_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_BAD_LABEL);
    EXPECT(anole_learner_adapt_arrays(l, feats, 24, labels, 6, 1, NULL), ANOLE_STATUS_BAD_LABEL);
    labels[0] = 0.5f;
    EXPECT(anole_learner_init_prototypes_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_BAD_LABEL);
    labels[0] = 0.0f;
    EXPECT(anole_learner_init_prototypes_arrays(l, feats, 8, labels, 2), ANOLE_STATUS_MISSING_CLASS);
    EXPECT(anole_learner_init_prototypes_arrays(l, feats, 0, labels, 0), ANOLE_STATUS_NO_SAMPLES);

    /* The same from a sample buffer, then adapting fine-tunes it. */
    anole_samples *s = NULL;
    EXPECT(anole_samples_init(smem, sizeof smem, storage, 30, 6, 4, 1, &s), ANOLE_STATUS_OK);
    for (int i = 0; i < 6; i++) {
        EXPECT(anole_samples_push(s, &feats[i * 4], 4, &labels[i], 1), ANOLE_STATUS_OK);
    }
    EXPECT(anole_learner_init_prototypes(l, s), ANOLE_STATUS_OK);
    EXPECT(anole_learner_init_prototypes(l, NULL), ANOLE_STATUS_NULL_POINTER);
    anole_adapt_report rep;
    EXPECT(anole_learner_adapt(l, s, 5, &rep), ANOLE_STATUS_OK);
    CHECK(rep.steps == 5 && rep.last_loss <= rep.first_loss);
    float loss;
    EXPECT(anole_learner_loss(l, s, &loss), ANOLE_STATUS_OK);
    CHECK(loss < 0.7f);
    EXPECT(anole_samples_release(s), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(h), ANOLE_STATUS_OK);
}

/* A blob that says its head starts from prototypes (format version 2): anole_learner_adapt
 * starts it on a learner that has taken no step, anole_learner_start_head on request; a blob
 * that says meta keeps its head. */
static void test_head_start(void) {
    static ALIGNED uint8_t mmem[ANOLE_BLOB_SIZE], pmem[ANOLE_BLOB_SIZE], lmem[ANOLE_LEARNER_SIZE];
    anole_blob *m = parse(mmem, head, head_len);
    anole_blob *p = parse(pmem, head_proto, head_proto_len);
    anole_blob_info info;
    EXPECT(anole_blob_get_info(m, &info), ANOLE_STATUS_OK);
    CHECK(info.head_start == ANOLE_HEAD_START_META);
    EXPECT(anole_blob_get_info(p, &info), ANOLE_STATUS_OK);
    CHECK(info.head_start == ANOLE_HEAD_START_PROTOTYPES);
    float feats[6 * 4], labels[6], x[4], out[3], before[3];
    corner_features(feats, labels);
    /* No steps: only the start. Each class's corner is then its own class. */
    anole_learner *l = learner(lmem, p, arena_a, 16384, ANOLE_MODE_BUFFERED);
    EXPECT(anole_learner_adapt_arrays(l, feats, 24, labels, 6, 0, NULL), ANOLE_STATUS_OK);
    classifies_corners(l);
    labels[0] = 7.0f;
    EXPECT(anole_learner_start_head_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_BAD_LABEL);
    labels[0] = 0.0f;
    EXPECT(anole_learner_start_head_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_OK);
    EXPECT(anole_learner_start_head(l, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    /* Meta: the start changes nothing. */
    l = learner(lmem, m, arena_a, 16384, ANOLE_MODE_BUFFERED);
    memset(x, 0, sizeof x);
    x[1] = 2.0f;
    EXPECT(anole_learner_predict(l, x, 4, before, 3), ANOLE_STATUS_OK);
    EXPECT(anole_learner_start_head_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_OK);
    EXPECT(anole_learner_predict(l, x, 4, out, 3), ANOLE_STATUS_OK);
    CHECK(memcmp(before, out, sizeof out) == 0);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    /* A prototype start whose logits the blob scales by 0.5 (format version 3): exactly half
     * the unscaled start's logits. */
    static ALIGNED uint8_t smem[ANOLE_BLOB_SIZE], l2mem[ANOLE_LEARNER_SIZE];
    anole_blob *s = parse(smem, head_scaled, head_scaled_len);
    EXPECT(anole_blob_get_info(s, &info), ANOLE_STATUS_OK);
    CHECK(info.head_start == ANOLE_HEAD_START_PROTOTYPES && info.head_scale == 0.5f);
    l = learner(lmem, p, arena_a, 16384, ANOLE_MODE_BUFFERED);
    anole_learner *half = learner(l2mem, s, arena_b, 16384, ANOLE_MODE_BUFFERED);
    EXPECT(anole_learner_start_head_arrays(l, feats, 24, labels, 6), ANOLE_STATUS_OK);
    EXPECT(anole_learner_start_head_arrays(half, feats, 24, labels, 6), ANOLE_STATUS_OK);
    EXPECT(anole_learner_predict(l, x, 4, before, 3), ANOLE_STATUS_OK);
    EXPECT(anole_learner_predict(half, x, 4, out, 3), ANOLE_STATUS_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(out[i] == 0.5f * before[i]);
    }
    EXPECT(anole_learner_release(half), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(s), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(m), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(p), ANOLE_STATUS_OK);
}

/* ------------------------------------------------------------------ sample buffers */

static void test_samples(void) {
    static ALIGNED uint8_t smem[ANOLE_SAMPLES_SIZE + 8], bmem[ANOLE_BLOB_SIZE];
    static ALIGNED uint8_t lmem[ANOLE_LEARNER_SIZE], l2mem[ANOLE_LEARNER_SIZE];
    static uint8_t e1[32768], e2[32768];
    float storage[6];
    anole_samples *s = NULL;
    const size_t S = ANOLE_SAMPLES_SIZE;

    EXPECT(anole_samples_init(NULL, S, storage, 6, 3, 1, 1, &s), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_samples_init(smem + 1, S, storage, 6, 3, 1, 1, &s), ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_samples_init(smem, S - 8, storage, 6, 3, 1, 1, &s), ANOLE_STATUS_MEMORY_TOO_SMALL);
    EXPECT(anole_samples_init(smem, S, storage, 6, 0, 1, 1, &s), ANOLE_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions(smem, "`capacity`: must be at least 1"));
    EXPECT(anole_samples_init(smem, S, storage, 6, 3, 0, 1, &s), ANOLE_STATUS_INVALID_ARGUMENT);
    EXPECT(anole_samples_init(smem, S, storage, 6, 3, 1, 0, &s), ANOLE_STATUS_INVALID_ARGUMENT);
    EXPECT(anole_samples_init(smem, S, storage, 6, SIZE_MAX, 1, 1, &s), ANOLE_STATUS_INVALID_ARGUMENT);
    EXPECT(anole_samples_init(smem, S, storage, 5, 3, 1, 1, &s), ANOLE_STATUS_BUFFER_TOO_SMALL);
    EXPECT(anole_samples_init(smem, S, NULL, 6, 3, 1, 1, &s), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_samples_init(smem, S, (float *)(void *)((uint8_t *)storage + 1), 5, 2, 1, 1, &s),
           ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_samples_init(smem, S, (float *)(void *)smem, 6, 3, 1, 1, &s), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_samples_init(smem, S, storage, 6, 3, 1, 1, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_samples_init(smem, S, storage, 6, 3, 1, 1, &s), ANOLE_STATUS_OK);

    float x = 1.0f, y = 2.0f, bad = NAN, two[2] = {1.0f, 2.0f};
    EXPECT(anole_samples_push(s, two, 2, &y, 1), ANOLE_STATUS_SAMPLE_LENGTH);
    EXPECT(anole_samples_push(s, &x, 1, two, 2), ANOLE_STATUS_SAMPLE_LENGTH);
    EXPECT(anole_samples_push(s, &bad, 1, &y, 1), ANOLE_STATUS_NON_FINITE_SAMPLE);
    EXPECT(anole_samples_push(s, &x, 1, &bad, 1), ANOLE_STATUS_NON_FINITE_SAMPLE);
    EXPECT(anole_samples_push(s, NULL, 1, &y, 1), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_samples_push(s, &storage[0], 1, &y, 1), ANOLE_STATUS_OVERLAP);
    size_t count = 99;
    EXPECT(anole_samples_count(s, &count), ANOLE_STATUS_OK);
    CHECK(count == 0);
    EXPECT(anole_samples_count(s, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_samples_count(s, (size_t *)(void *)smem), ANOLE_STATUS_OVERLAP);

    /* A ring of 3 fed 5 samples holds the last 3, oldest first: adapting on it equals
     * adapting on those three as arrays. */
    for (int i = 0; i < 5; i++) {
        EXPECT(anole_samples_push(s, &xs[i], 1, &ys[i], 1), ANOLE_STATUS_OK);
    }
    EXPECT(anole_samples_count(s, &count), ANOLE_STATUS_OK);
    CHECK(count == 3);
    anole_blob *b = parse(bmem, sine, sine_len);
    anole_learner *l = learner(lmem, b, arena_a, 16384, ANOLE_MODE_BUFFERED);
    anole_learner *l2 = learner(l2mem, b, arena_b, 16384, ANOLE_MODE_BUFFERED);
    EXPECT(anole_learner_adapt(l, s, 4, NULL), ANOLE_STATUS_OK);
    EXPECT(anole_learner_adapt_arrays(l2, &xs[2], 3, &ys[2], 3, 4, NULL), ANOLE_STATUS_OK);
    size_t n1 = 0, n2 = 0;
    EXPECT(anole_learner_export(l, e1, sizeof e1, &n1), ANOLE_STATUS_OK);
    EXPECT(anole_learner_export(l2, e2, sizeof e2, &n2), ANOLE_STATUS_OK);
    CHECK(n1 == n2 && memcmp(e1, e2, n1) == 0);

    EXPECT(anole_samples_clear(s), ANOLE_STATUS_OK);
    EXPECT(anole_samples_count(s, &count), ANOLE_STATUS_OK);
    CHECK(count == 0);
    EXPECT(anole_learner_adapt(l, s, 1, NULL), ANOLE_STATUS_NO_SAMPLES);
    EXPECT(anole_samples_release(s), ANOLE_STATUS_OK);

    /* Samples of the wrong width for the model; storage inside the learner's arena. */
    EXPECT(anole_samples_init(smem, S, storage, 6, 2, 2, 1, &s), ANOLE_STATUS_OK);
    EXPECT(anole_samples_push(s, two, 2, &y, 1), ANOLE_STATUS_OK);
    EXPECT(anole_learner_adapt(l, s, 1, NULL), ANOLE_STATUS_SAMPLE_LENGTH);
    EXPECT(anole_samples_release(s), ANOLE_STATUS_OK);
    EXPECT(anole_samples_init(smem, S, arena_a + 16000, 6, 3, 1, 1, &s), ANOLE_STATUS_OK);
    EXPECT(anole_samples_push(s, &x, 1, &y, 1), ANOLE_STATUS_OK);
    EXPECT(anole_learner_adapt(l, s, 1, NULL), ANOLE_STATUS_OVERLAP);
    CHECK(error_mentions(l, "storage"));
    EXPECT(anole_samples_release(s), ANOLE_STATUS_OK);
    EXPECT(anole_samples_release(s), ANOLE_STATUS_RELEASED);
    EXPECT(anole_samples_push(s, &x, 1, &y, 1), ANOLE_STATUS_RELEASED);
    EXPECT(anole_samples_count(s, &count), ANOLE_STATUS_RELEASED);
    EXPECT(anole_samples_clear(s), ANOLE_STATUS_RELEASED);

    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l2), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
}

/* ------------------------------------------------------------------ flash store */

enum { PAGES = 24, PAGE = 4096 };

typedef struct {
    uint8_t data[PAGES * PAGE];
    uint32_t word;          /* the flash's write unit */
    int fail_writes_after;  /* < 0: never; else this many writes succeed, then all fail (-5) */
    int fail_once_after;    /* < 0: never; else this many writes succeed, then one fails */
    int corrupting;         /* long writes clear one set bit too many */
    int misbehaving;        /* a write that clears no bit it should is reported here */
    anole_learner *reenter; /* the read callback calls the library with these */
    anole_store *reenter_store;
    anole_status reentered, reentered_store;
    unsigned reads, writes, erases;
} fake_flash;

static int32_t flash_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len) {
    fake_flash *f = ctx;
    f->reads++;
    if (f->reenter != NULL) {
        f->reentered = anole_learner_reset(f->reenter);
        uint8_t scratch[8];
        f->reentered_store = anole_store_clear(f->reenter_store, scratch, sizeof scratch);
        f->reenter = NULL;
    }
    if ((size_t)offset + len > sizeof f->data) {
        return -1;
    }
    memcpy(buf, f->data + offset, len);
    return 0;
}

static int32_t flash_write(void *ctx, uint32_t offset, const uint8_t *buf, size_t len) {
    fake_flash *f = ctx;
    f->writes++;
    if (offset % f->word != 0 || len % f->word != 0 || (size_t)offset + len > sizeof f->data) {
        f->misbehaving++;
        return -1;
    }
    if (f->fail_writes_after == 0) {
        return -5;
    }
    if (f->fail_writes_after > 0) {
        f->fail_writes_after--;
    }
    if (f->fail_once_after >= 0 && f->fail_once_after-- == 0) {
        return -6;
    }
    for (size_t i = 0; i < len; i++) {
        /* NOR flash only clears bits. */
        f->data[offset + i] &= buf[i];
    }
    if (f->corrupting && len > 256) {
        /* Clear one set bit from the middle on, whatever the record's bytes are. */
        for (size_t i = len / 2; i < len; i++) {
            uint8_t b = f->data[offset + i];
            if (b != 0) {
                f->data[offset + i] = (uint8_t)(b & (b - 1));
                break;
            }
        }
    }
    return 0;
}

static int32_t flash_erase(void *ctx, uint32_t from, uint32_t to) {
    fake_flash *f = ctx;
    f->erases++;
    if (from % PAGE != 0 || to % PAGE != 0 || to > sizeof f->data || from > to) {
        f->misbehaving++;
        return -1;
    }
    memset(f->data + from, 0xFF, to - from);
    return 0;
}

static anole_flash flash_of(fake_flash *f) {
    anole_flash fl = {f, flash_read, flash_write, flash_erase, PAGES * PAGE, PAGE, f->word};
    return fl;
}

static fake_flash flash_a;
static uint8_t store_buf[65536];

static void test_store(void) {
    static ALIGNED uint8_t stmem[ANOLE_STORE_SIZE + 8], bmem[ANOLE_BLOB_SIZE],
        hmem[ANOLE_BLOB_SIZE];
    static ALIGNED uint8_t lmem[ANOLE_LEARNER_SIZE], l2mem[ANOLE_LEARNER_SIZE],
        hlmem[ANOLE_LEARNER_SIZE];
    fake_flash *f = &flash_a;
    memset(f->data, 0xFF, sizeof f->data);
    f->word = 4;
    f->fail_writes_after = -1;
    f->fail_once_after = -1;
    anole_flash fl = flash_of(f);
    const size_t M = ANOLE_STORE_SIZE;
    const uint32_t END = PAGES * PAGE;

    uint32_t page = 0, word = 0;
    EXPECT(anole_store_geometry(&page, &word), ANOLE_STATUS_OK);
    CHECK(page == PAGE && word == 32);
    EXPECT(anole_store_geometry(NULL, NULL), ANOLE_STATUS_OK);
    EXPECT(anole_store_geometry((uint32_t *)(void *)(stmem + 1), NULL), ANOLE_STATUS_MISALIGNED);
    size_t buf_len = 0, pages = 0;
    EXPECT(anole_store_buffer_len(sine_len, &buf_len), ANOLE_STATUS_OK);
    CHECK(buf_len > sine_len && buf_len < sine_len + PAGE);
    EXPECT(anole_store_buffer_len(sine_len, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_store_pages_needed(sine_len, &pages), ANOLE_STATUS_OK);
    CHECK(pages >= 2 * (sine_len / PAGE + 1) && pages <= PAGES);
    EXPECT(anole_store_pages_needed(sine_len, NULL), ANOLE_STATUS_NULL_POINTER);

    /* Opening: arguments, geometry, range. */
    anole_store *st = NULL;
    EXPECT(anole_store_open(stmem, M, NULL, 0, END, &st), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_store_open(stmem + 4, M, &fl, 0, END, &st), ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_store_open(stmem, M - 1, &fl, 0, END, &st), ANOLE_STATUS_MEMORY_TOO_SMALL);
    EXPECT(anole_store_open(stmem, M, &fl, 0, END, NULL), ANOLE_STATUS_NULL_POINTER);
    anole_flash bad = fl;
    bad.read = NULL;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_NULL_POINTER);
    CHECK(error_mentions(stmem, "flash.read"));
    bad = fl;
    bad.write = NULL;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_NULL_POINTER);
    bad = fl;
    bad.erase = NULL;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_NULL_POINTER);
    bad = fl;
    bad.page_size = 3000;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_FLASH_GEOMETRY);
    CHECK(error_mentions(stmem, "page size is 3000"));
    bad = fl;
    bad.page_size = 2 * PAGE;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_FLASH_GEOMETRY);
    bad = fl;
    bad.write_size = 64;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_FLASH_GEOMETRY);
    bad = fl;
    bad.write_size = 0;
    EXPECT(anole_store_open(stmem, M, &bad, 0, END, &st), ANOLE_STATUS_FLASH_GEOMETRY);
    EXPECT(anole_store_open(stmem, M, &fl, 0, END + PAGE, &st), ANOLE_STATUS_FLASH_GEOMETRY);
    EXPECT(anole_store_open(stmem, M, &fl, 100, END, &st), ANOLE_STATUS_FLASH_RANGE);
    EXPECT(anole_store_open(stmem, M, &fl, 0, END - 100, &st), ANOLE_STATUS_FLASH_RANGE);
    EXPECT(anole_store_open(stmem, M, &fl, 0, 2 * PAGE, &st), ANOLE_STATUS_FLASH_RANGE);
    EXPECT(anole_store_open(stmem, M, (anole_flash *)(void *)stmem, 0, END, &st), ANOLE_STATUS_OVERLAP);

    anole_blob *b = parse(bmem, sine, sine_len);
    anole_learner *l = learner(lmem, b, arena_a, 16384, ANOLE_MODE_DEVICE);
    anole_learner *l2 = learner(l2mem, b, arena_b, 16384, ANOLE_MODE_DEVICE);
    EXPECT(anole_learner_adapt_arrays(l, xs, 10, ys, 10, 8, NULL), ANOLE_STATUS_OK);

    /* A range too small for this blob. */
    EXPECT(anole_store_open(stmem, M, &fl, 0, 8 * PAGE, &st), ANOLE_STATUS_OK);
    EXPECT(anole_store_save(st, l, store_buf, buf_len, NULL), ANOLE_STATUS_STORE_RANGE_TOO_SMALL);
    CHECK(error_mentions(st, "pages"));
    EXPECT(anole_store_release(st), ANOLE_STATUS_OK);

    EXPECT(anole_store_open(stmem, M, &fl, 0, END, &st), ANOLE_STATUS_OK);
    /* Nothing saved yet: the learner comes out at the meta-initialisation. */
    anole_loaded ld;
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    CHECK(ld.adapted == 0 && ld.refused == ANOLE_REFUSED_NONE);
    /* Buffer and argument checks. */
    EXPECT(anole_store_save(st, l, store_buf, buf_len - 1, NULL), ANOLE_STATUS_BUFFER_TOO_SMALL);
    CHECK(error_mentions(st, "anole_store_buffer_len"));
    EXPECT(anole_store_save(st, l, NULL, buf_len, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_store_save(st, NULL, store_buf, buf_len, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_store_save(st, (anole_learner *)(void *)b, store_buf, buf_len, NULL),
           ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_store_save((anole_store *)(void *)l, l, store_buf, buf_len, NULL),
           ANOLE_STATUS_WRONG_HANDLE);
    EXPECT(anole_store_save(st, l, (uint8_t *)arena_a, buf_len, NULL), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_store_save(st, l, store_buf, buf_len, (anole_saved *)(void *)store_buf),
           ANOLE_STATUS_OVERLAP);
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, (anole_loaded *)(void *)(store_buf + 1)),
           ANOLE_STATUS_MISALIGNED);

    /* Save, load into another learner: the same parameters. */
    anole_saved sv;
    EXPECT(anole_store_save(st, l, store_buf, buf_len, &sv), ANOLE_STATUS_OK);
    CHECK(sv.generation == 1 && sv.len == sine_len && sv.rewrote == 0);
    CHECK(f->misbehaving == 0 && f->writes > 0);
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    CHECK(ld.adapted == 1 && ld.generation == 1 && ld.len == sine_len);
    static uint8_t e1[32768], e2[32768];
    size_t n1 = 0, n2 = 0;
    EXPECT(anole_learner_export(l, e1, sizeof e1, &n1), ANOLE_STATUS_OK);
    EXPECT(anole_learner_export(l2, e2, sizeof e2, &n2), ANOLE_STATUS_OK);
    CHECK(n1 == n2 && memcmp(e1, e2, n1) == 0);
    EXPECT(anole_store_save(st, l, store_buf, buf_len, &sv), ANOLE_STATUS_OK);
    CHECK(sv.generation == 2);
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, NULL), ANOLE_STATUS_OK);

    /* Callbacks cannot call back into the learner or store in use. */
    f->reenter = l2;
    f->reenter_store = st;
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    EXPECT(f->reentered, ANOLE_STATUS_IN_USE);
    EXPECT(f->reentered_store, ANOLE_STATUS_IN_USE);

    /* A write that fails once: the save erases the half and writes it again. */
    f->fail_once_after = 2;
    EXPECT(anole_store_save(st, l, store_buf, buf_len, &sv), ANOLE_STATUS_OK);
    CHECK(sv.generation == 3 && sv.rewrote == 1);
    /* A write callback that keeps failing: the previous record stays loadable. */
    f->fail_writes_after = 2;
    EXPECT(anole_store_save(st, l, store_buf, buf_len, NULL), ANOLE_STATUS_FLASH_FAILED);
    CHECK(error_mentions(st, "flash write callback returned -5"));
    f->fail_writes_after = -1;
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    CHECK(ld.adapted == 1 && ld.generation == 3);
    /* A flash that does not keep what is written. */
    f->corrupting = 1;
    EXPECT(anole_store_save(st, l, store_buf, buf_len, NULL), ANOLE_STATUS_STORE_VERIFY);
    CHECK(error_mentions(st, "read back"));
    f->corrupting = 0;

    /* A record of another model is refused and the learner reset. */
    anole_blob *h = parse(hmem, head, head_len);
    anole_learner *hl = learner(hlmem, h, arena_c, 16384, ANOLE_MODE_BUFFERED);
    EXPECT(anole_store_clear(st, store_buf, buf_len), ANOLE_STATUS_OK);
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    CHECK(ld.adapted == 0 && ld.refused == ANOLE_REFUSED_NONE);
    EXPECT(anole_store_save(st, hl, store_buf, buf_len, NULL), ANOLE_STATUS_OK);
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    CHECK(ld.adapted == 0 && ld.refused == ANOLE_REFUSED_OTHER_MODEL);
    EXPECT(anole_learner_export(l2, e2, sizeof e2, &n2), ANOLE_STATUS_OK);
    CHECK(n2 == sine_len && memcmp(e2, sine, n2) == 0);

    /* Corrupted flash: a byte of the newest record's blob flipped where it is stored (the
     * last copy of 32 bytes from its middle in that half). The record is refused; the older
     * half holds the other model's record, so the learner is reset. One more step first, so
     * that no earlier record in that half holds the same bytes. */
    EXPECT(anole_learner_step(l, xs, 10, ys, 10, 0.01f, NULL), ANOLE_STATUS_OK);
    EXPECT(anole_store_save(st, l, store_buf, buf_len, &sv), ANOLE_STATUS_OK);
    EXPECT(anole_learner_export(l, e1, sizeof e1, &n1), ANOLE_STATUS_OK);
    size_t half = (size_t)sv.half * (END / 2), found = 0;
    for (size_t i = half; i + 32 <= half + END / 2; i++) {
        if (memcmp(f->data + i, e1 + n1 / 2, 32) == 0) {
            found = i;
        }
    }
    CHECK(found != 0);
    f->data[found + 16] ^= 0x10;
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_OK);
    if (!(ld.adapted == 0 &&
          (ld.refused == ANOLE_REFUSED_CRC || ld.refused == ANOLE_REFUSED_UNREADABLE))) {
        printf("  loaded: adapted %u generation %u refused %u (saved generation %u, half %u)\n",
               ld.adapted, ld.generation, ld.refused, sv.generation, sv.half);
    }
    CHECK(ld.adapted == 0 &&
          (ld.refused == ANOLE_REFUSED_CRC || ld.refused == ANOLE_REFUSED_UNREADABLE));
    EXPECT(anole_learner_export(l2, e2, sizeof e2, &n2), ANOLE_STATUS_OK);
    CHECK(n2 == sine_len && memcmp(e2, sine, n2) == 0);

    EXPECT(anole_store_clear(st, NULL, 16), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_store_clear(st, store_buf, 8), ANOLE_STATUS_BUFFER_TOO_SMALL);
    EXPECT(anole_store_clear(st, stmem, 16), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_store_release(st), ANOLE_STATUS_OK);
    EXPECT(anole_store_release(st), ANOLE_STATUS_RELEASED);
    EXPECT(anole_store_load(st, l2, store_buf, buf_len, &ld), ANOLE_STATUS_RELEASED);
    EXPECT(anole_store_clear(st, store_buf, buf_len), ANOLE_STATUS_RELEASED);

    EXPECT(anole_learner_release(hl), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l), ANOLE_STATUS_OK);
    EXPECT(anole_learner_release(l2), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
    EXPECT(anole_blob_release(h), ANOLE_STATUS_OK);
}

/* ------------------------------------------------------------------ last error */

static void test_last_error(void) {
    static ALIGNED uint8_t bmem[ANOLE_BLOB_SIZE], zero[64];
    char text[256];
    size_t needed = 0;
    anole_blob *b = parse(bmem, sine, sine_len);
    EXPECT(anole_last_error(b, text, sizeof text, &needed), ANOLE_STATUS_OK);
    CHECK(strcmp(text, "no failure recorded") == 0 && needed == strlen(text));
    EXPECT(anole_blob_get_info(b, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_last_error(b, NULL, 0, &needed), ANOLE_STATUS_OK);
    CHECK(needed == strlen("anole_blob_get_info: `info` is NULL"));
    char small[8];
    EXPECT(anole_last_error(b, small, sizeof small, &needed), ANOLE_STATUS_OK);
    CHECK(strcmp(small, "anole_b") == 0 && needed > sizeof small);
    EXPECT(anole_last_error(b, text, sizeof text, NULL), ANOLE_STATUS_OK);
    CHECK(strcmp(text, "anole_blob_get_info: `info` is NULL") == 0);
    EXPECT(anole_last_error(NULL, text, sizeof text, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_last_error(zero, text, sizeof text, NULL), ANOLE_STATUS_NOT_A_HANDLE);
    EXPECT(anole_last_error(bmem + 4, text, sizeof text, NULL), ANOLE_STATUS_MISALIGNED);
    EXPECT(anole_last_error(b, NULL, 4, NULL), ANOLE_STATUS_NULL_POINTER);
    EXPECT(anole_last_error(b, (char *)bmem, 16, (size_t *)(void *)bmem), ANOLE_STATUS_OVERLAP);
    EXPECT(anole_blob_release(b), ANOLE_STATUS_OK);
    /* Still readable after release. */
    EXPECT(anole_last_error(b, text, sizeof text, NULL), ANOLE_STATUS_OK);
    CHECK(strcmp(text, "anole_blob_get_info: `info` is NULL") == 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        printf("usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    sine_len = load("sine.postcard", sine, sizeof sine);
    signed_len = load("sine.signed", signed_blob, sizeof signed_blob);
    head_len = load("head.postcard", head, sizeof head);
    head_proto_len = load("head_proto.postcard", head_proto, sizeof head_proto);
    CHECK(head_proto_len == head_len + 1);
    head_scaled_len = load("head_scaled.postcard", head_scaled, sizeof head_scaled);
    CHECK(head_scaled_len == head_len + 5);
    CHECK(sine_len == expected("sine_len") && signed_len == expected("signed_len") &&
          head_len == expected("head_len"));
    CHECK(load("key.pub", key_pub, sizeof key_pub) == 32);
    CHECK(load("other.pub", other_pub, sizeof other_pub) == 32);
    CHECK(load("invalid.pub", invalid_pub, sizeof invalid_pub) == 32);
    float samples[20];
    CHECK(load("samples.f32", samples, sizeof samples) == sizeof samples);
    memcpy(xs, samples, sizeof xs);
    memcpy(ys, samples + 10, sizeof ys);

    test_status_messages();
    test_format_f32();
    test_blob_parse();
    test_blob_signed();
    test_handle_checks();
    test_learner_init();
    test_learner_calls();
    test_prototypes();
    test_head_start();
    test_samples();
    test_store();
    test_last_error();

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
