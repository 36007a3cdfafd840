/*
 * anole: few-shot adaptation on the device, from C.
 *
 * Link libanole_capi.a (capi/README.md says how to build it for a target). No heap: every
 * handle lives in memory the caller gives (ANOLE_*_SIZE bytes aligned to
 * ANOLE_HANDLE_ALIGN), and so do arenas, sample storage and buffers. Every function returns
 * an anole_status; anole_status_message() gives its meaning and anole_last_error() the
 * details of a handle's last failure.
 *
 * Checked on every call, each with its own status: NULL pointers, wrong lengths, misaligned
 * or short buffers, buffers that overlap where one is written, and handles that are
 * uninitialised, released, copied to another address, of the wrong kind, or busy.
 *
 * Not detectable from C, so the caller's to keep:
 *  - memory given to a handle, a blob's bytes, a learner's arena and a sample buffer's
 *    storage stay valid and untouched until the handle is released (do not free them or let
 *    them go out of scope while the handle lives);
 *  - a pointer argument points to at least the memory its length says;
 *  - one handle is not used from two threads at once (nor a blob's learners created or
 *    released concurrently);
 *  - flash callbacks do not call the library;
 *  - memory that survives a reset (stack, .noinit) and held a blob that learners used looks
 *    like a blob in use: release handles before a reset, or zero such memory at start-up.
 */


#ifndef ANOLE_H
#define ANOLE_H

/* Generated from capi/src by cbindgen (capi/cbindgen.toml): do not edit. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#if UINTPTR_MAX == 0xFFFFFFFFu
#define ANOLE_PTR32 1
#elif UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
#define ANOLE_PTR64 1
#else
#error "anole.h: only 32- and 64-bit targets are supported"
#endif
/* A library built with its extra-layers feature (the default) holds up to 64 layers; one built
 * without it (cargo --no-default-features, a lean device build) holds 32 in smaller blob and
 * learner handles: define ANOLE_LEAN before including this header to size them for it. */
#if !defined(ANOLE_LEAN)
#define ANOLE_EXTRA_LAYERS 1
#endif


#if (defined(ANOLE_PTR64) && defined(ANOLE_EXTRA_LAYERS))
/**
 * Bytes of memory a blob handle needs (`anole_blob_parse`): a library built with
 * `extra-layers` (the default) holds up to 64 layers, one built without it (define
 * `ANOLE_LEAN` before including this header) up to 32 in a smaller handle.
 */
#define ANOLE_BLOB_SIZE 9920
#endif

#if (defined(ANOLE_PTR64) && !defined(ANOLE_EXTRA_LAYERS))
/**
 * Bytes of memory a blob handle needs (`anole_blob_parse`).
 */
#define ANOLE_BLOB_SIZE 6080
#endif

#if (defined(ANOLE_PTR32) && defined(ANOLE_EXTRA_LAYERS))
/**
 * Bytes of memory a blob handle needs (`anole_blob_parse`).
 */
#define ANOLE_BLOB_SIZE 5952
#endif

#if (defined(ANOLE_PTR32) && !defined(ANOLE_EXTRA_LAYERS))
/**
 * Bytes of memory a blob handle needs (`anole_blob_parse`).
 */
#define ANOLE_BLOB_SIZE 3648
#endif

/**
 * Bytes of an ed25519 public key (`anole_blob_parse_signed`).
 */
#define ANOLE_PUBLIC_KEY_LEN 32

/**
 * Loss code of `anole_blob_info.loss`: mean squared error (regression; a target has
 * `output_len` values).
 */
#define ANOLE_LOSS_MSE 0

/**
 * Loss code of `anole_blob_info.loss`: softmax cross-entropy (classification; a target is one
 * class index stored as a float).
 */
#define ANOLE_LOSS_CROSS_ENTROPY 1

/**
 * Head start of `anole_blob_info.head_start`: adaptation starts from the blob's parameters.
 */
#define ANOLE_HEAD_START_META 0

/**
 * Head start of `anole_blob_info.head_start` (format version 2): adaptation starts the head
 * from the class prototypes of the support set (`anole_learner_start_head`).
 */
#define ANOLE_HEAD_START_PROTOTYPES 1

/**
 * Optimizer code of `anole_blob_info.optimizer`: plain SGD.
 */
#define ANOLE_OPTIMIZER_SGD 0

/**
 * Optimizer code of `anole_blob_info.optimizer`: Adam with beta1 = 0.
 */
#define ANOLE_OPTIMIZER_ADAM 1

/**
 * Alignment, in bytes, of the memory every handle lives in (`ANOLE_*_SIZE` bytes at an
 * address that is a multiple of this).
 */
#define ANOLE_HANDLE_ALIGN 8

#if (defined(ANOLE_PTR64) && defined(ANOLE_EXTRA_LAYERS))
/**
 * Bytes of memory a learner handle needs (`anole_learner_init`), in a library built with
 * `extra-layers` (the default; see `ANOLE_BLOB_SIZE`).
 */
#define ANOLE_LEARNER_SIZE 384
#endif

#if (defined(ANOLE_PTR64) && !defined(ANOLE_EXTRA_LAYERS))
/**
 * Bytes of memory a learner handle needs (`anole_learner_init`).
 */
#define ANOLE_LEARNER_SIZE 320
#endif

#if defined(ANOLE_PTR32)
/**
 * Bytes of memory a learner handle needs (`anole_learner_init`), with or without
 * `extra-layers`.
 */
#define ANOLE_LEARNER_SIZE 192
#endif

/**
 * Arena layout of `anole_learner_options.mode`: every parameter in the arena and a gradient
 * buffer; a failed step rolls back exactly. The host's layout.
 */
#define ANOLE_MODE_BUFFERED 0

/**
 * Arena layout of `anole_learner_options.mode`: the smallest arena, the microcontroller's.
 * With SGD dense updates are fused into the backward pass and frozen layers are read from
 * the blob where it is (flash).
 */
#define ANOLE_MODE_DEVICE 1

#if defined(ANOLE_PTR64)
/**
 * Bytes of memory a sample buffer handle needs (`anole_samples_init`).
 */
#define ANOLE_SAMPLES_SIZE 192
#endif

#if defined(ANOLE_PTR32)
/**
 * Bytes of memory a sample buffer handle needs (`anole_samples_init`).
 */
#define ANOLE_SAMPLES_SIZE 128
#endif

#if defined(ANOLE_PTR64)
/**
 * Bytes of memory a store handle needs (`anole_store_open`).
 */
#define ANOLE_STORE_SIZE 192
#endif

#if defined(ANOLE_PTR32)
/**
 * Bytes of memory a store handle needs (`anole_store_open`).
 */
#define ANOLE_STORE_SIZE 128
#endif

/**
 * `anole_loaded.refused`: no record was refused (none saved, or the store was cleared).
 */
#define ANOLE_REFUSED_NONE 0

/**
 * `anole_loaded.refused`: the newest record's head is corrupted.
 */
#define ANOLE_REFUSED_CORRUPT_HEAD 1

/**
 * `anole_loaded.refused`: the newest record has another record format version.
 */
#define ANOLE_REFUSED_VERSION 2

/**
 * `anole_loaded.refused`: the newest record was adapted from another meta-initialisation.
 */
#define ANOLE_REFUSED_OTHER_MODEL 3

/**
 * `anole_loaded.refused`: the newest record's blob length differs from the learner's.
 */
#define ANOLE_REFUSED_LENGTH 4

/**
 * `anole_loaded.refused`: the newest record is incomplete or corrupted (CRC).
 */
#define ANOLE_REFUSED_CRC 5

/**
 * `anole_loaded.refused`: the newest record's blob does not parse or fit the learner
 * (`anole_loaded.blob_status` says why).
 */
#define ANOLE_REFUSED_BLOB 6

/**
 * `anole_loaded.refused`: the flash map holding the record is unreadable.
 */
#define ANOLE_REFUSED_UNREADABLE 7

/**
 * Bytes of a buffer that holds any float `anole_format_f32` writes, with its NUL ("-" and
 * the 47 characters of the smallest subnormal, 0.000...001).
 */
#define ANOLE_FORMAT_F32_LEN 49

/**
 * What a call did: `ANOLE_STATUS_OK` (0), or why it refused or failed. Every function of the
 * library returns one. Codes 1-19 are about the arguments and handles, 20-39 a blob (and 47,
 * a blob's head start), 40-46 a signed envelope, 60-79 a learner and its samples, 80-99 the
 * flash store.
 * `anole_status_message` gives a code's meaning; `anole_last_error` the details of the last
 * failed call on a handle (which argument, which sizes).
 */
enum anole_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Success.
   */
  ANOLE_STATUS_OK = 0,
  /**
   * A pointer argument is NULL.
   */
  ANOLE_STATUS_NULL_POINTER = 1,
  /**
   * A pointer argument is not aligned for its type (handle memory: `ANOLE_HANDLE_ALIGN`).
   */
  ANOLE_STATUS_MISALIGNED = 2,
  /**
   * The memory given for a handle is smaller than its `ANOLE_*_SIZE`.
   */
  ANOLE_STATUS_MEMORY_TOO_SMALL = 3,
  /**
   * Two buffers of one call overlap where one of them is written (or an argument overlaps a
   * handle, a learner's arena or a blob's bytes).
   */
  ANOLE_STATUS_OVERLAP = 4,
  /**
   * An argument has a value the function does not take (unknown mode, zero capacity, ...).
   */
  ANOLE_STATUS_INVALID_ARGUMENT = 5,
  /**
   * The handle argument is not a handle: uninitialised or overwritten memory, or a copy of
   * a handle at another address.
   */
  ANOLE_STATUS_NOT_A_HANDLE = 6,
  /**
   * The handle was released, or its creation failed.
   */
  ANOLE_STATUS_RELEASED = 7,
  /**
   * The handle is of another kind than the function takes (a blob given as a learner, ...).
   */
  ANOLE_STATUS_WRONG_HANDLE = 8,
  /**
   * The handle is in use: a blob that live learners were created on, or a handle whose
   * call is still running (a flash callback called back into the library).
   */
  ANOLE_STATUS_IN_USE = 9,
  /**
   * The blob ends before its payload and CRC do.
   */
  ANOLE_STATUS_TRUNCATED = 20,
  /**
   * Not an anole blob: it does not start with "ANOL".
   */
  ANOLE_STATUS_BAD_MAGIC = 21,
  /**
   * The blob's format version is not the one this library reads.
   */
  ANOLE_STATUS_UNSUPPORTED_VERSION = 22,
  /**
   * The blob's CRC-32 does not match its bytes: corrupted.
   */
  ANOLE_STATUS_CRC_MISMATCH = 23,
  /**
   * The blob's payload does not decode.
   */
  ANOLE_STATUS_MALFORMED = 24,
  /**
   * Unexpected bytes between the blob's payload and its CRC.
   */
  ANOLE_STATUS_TRAILING_BYTES = 25,
  /**
   * A layer kind this library does not know.
   */
  ANOLE_STATUS_UNKNOWN_LAYER = 26,
  /**
   * A layer has wrong, zero, oversized or non-finite arguments.
   */
  ANOLE_STATUS_BAD_LAYER_ARGS = 27,
  /**
   * A layer's input shape does not match the previous layer's output.
   */
  ANOLE_STATUS_SHAPE_MISMATCH = 28,
  /**
   * The model has no layers, or more than this library takes.
   */
  ANOLE_STATUS_LAYER_COUNT = 29,
  /**
   * The number of tensors does not match the architecture.
   */
  ANOLE_STATUS_TENSOR_COUNT = 30,
  /**
   * A tensor's byte length does not match its shape and dtype.
   */
  ANOLE_STATUS_TENSOR_SIZE = 31,
  /**
   * A tensor's dtype code is unknown.
   */
  ANOLE_STATUS_UNKNOWN_DTYPE = 32,
  /**
   * A tensor holds NaN or infinity.
   */
  ANOLE_STATUS_NON_FINITE_WEIGHT = 33,
  /**
   * The loss is unknown or does not fit the model's output.
   */
  ANOLE_STATUS_BAD_LOSS = 34,
  /**
   * The optimizer is unknown.
   */
  ANOLE_STATUS_BAD_OPTIMIZER = 35,
  /**
   * Adaptation settings are unusable (zero batch, negative or non-finite learning rate, ...).
   */
  ANOLE_STATUS_BAD_SETTINGS = 36,
  /**
   * tanh directly after tanh: the backward pass cannot recover the derivative.
   */
  ANOLE_STATUS_UNSUPPORTED_CHAIN = 37,
  /**
   * A size exceeds what this library accepts or can address.
   */
  ANOLE_STATUS_TOO_LARGE = 38,
  /**
   * A convolution's sizes are not those of a layer a blob could hold.
   */
  ANOLE_STATUS_BAD_GEOMETRY = 39,
  /**
   * A signed blob was required but the bytes are a plain blob or something else.
   */
  ANOLE_STATUS_UNSIGNED = 40,
  /**
   * The signed envelope's version is not the one this library reads.
   */
  ANOLE_STATUS_ENVELOPE_VERSION = 41,
  /**
   * The signed envelope's size does not match its header.
   */
  ANOLE_STATUS_ENVELOPE_LENGTH = 42,
  /**
   * The signed envelope's header is malformed.
   */
  ANOLE_STATUS_ENVELOPE_MALFORMED = 43,
  /**
   * The blob was signed with a key other than the trusted one.
   */
  ANOLE_STATUS_UNKNOWN_KEY = 44,
  /**
   * The signature does not verify: the envelope was altered or signed by another key.
   */
  ANOLE_STATUS_BAD_SIGNATURE = 45,
  /**
   * The trusted public key is not a valid ed25519 key.
   */
  ANOLE_STATUS_BAD_PUBLIC_KEY = 46,
  /**
   * The blob's head start is unknown (format version 2: `ANOLE_HEAD_START_META` or
   * `ANOLE_HEAD_START_PROTOTYPES`).
   */
  ANOLE_STATUS_BAD_HEAD_START = 47,
  /**
   * The arena holds fewer floats than the learner needs (`anole_arena_len`).
   */
  ANOLE_STATUS_ARENA_TOO_SMALL = 60,
  /**
   * More samples in one step than the learner's batch.
   */
  ANOLE_STATUS_BATCH_TOO_LARGE = 61,
  /**
   * A sample, or an array of samples, has the wrong number of values.
   */
  ANOLE_STATUS_SAMPLE_LENGTH = 62,
  /**
   * A sample holds NaN or infinity.
   */
  ANOLE_STATUS_NON_FINITE_SAMPLE = 63,
  /**
   * A classification target is not a class index below the number of classes.
   */
  ANOLE_STATUS_BAD_LABEL = 64,
  /**
   * No samples were given.
   */
  ANOLE_STATUS_NO_SAMPLES = 65,
  /**
   * A step's loss is not finite; the parameters were kept from the last good step.
   */
  ANOLE_STATUS_NON_FINITE_LOSS = 66,
  /**
   * A step would make a parameter non-finite; it was not applied.
   */
  ANOLE_STATUS_NON_FINITE_PARAMETER = 67,
  /**
   * An output buffer, or a buffer the library works in, is smaller than needed.
   */
  ANOLE_STATUS_BUFFER_TOO_SMALL = 68,
  /**
   * A parameter vector has the wrong length.
   */
  ANOLE_STATUS_PARAM_COUNT = 69,
  /**
   * An optimizer state has the wrong length.
   */
  ANOLE_STATUS_OPTIMIZER_STATE_LEN = 70,
  /**
   * An optimizer state holds a value the optimizer cannot have.
   */
  ANOLE_STATUS_BAD_OPTIMIZER_STATE = 71,
  /**
   * The blob is not an optimizer-state blob.
   */
  ANOLE_STATUS_NOT_OPTIMIZER_STATE = 72,
  /**
   * The trainable-layer mask names layers the model does not have.
   */
  ANOLE_STATUS_BAD_TRAINABLE_MASK = 73,
  /**
   * A blob of another architecture was given where the learner's was expected.
   */
  ANOLE_STATUS_ARCHITECTURE_MISMATCH = 74,
  /**
   * Prototype initialisation needs a model starting with a dense head under cross-entropy.
   */
  ANOLE_STATUS_NOT_A_HEAD = 75,
  /**
   * Prototype initialisation needs a sample of every class.
   */
  ANOLE_STATUS_MISSING_CLASS = 76,
  /**
   * A head was asked of a model with no layer with parameters.
   */
  ANOLE_STATUS_NO_HEAD = 77,
  /**
   * A body was asked of a model whose only layer with parameters is its first.
   */
  ANOLE_STATUS_NO_BODY = 78,
  /**
   * The flash's page or write size does not fit the library's (`anole_store_geometry`), or
   * its capacity does not hold the range.
   */
  ANOLE_STATUS_FLASH_GEOMETRY = 80,
  /**
   * The store's flash range is not page-aligned or holds fewer than 4 pages.
   */
  ANOLE_STATUS_FLASH_RANGE = 81,
  /**
   * A flash callback failed, or the store found a corruption it could not repair.
   */
  ANOLE_STATUS_FLASH_FAILED = 82,
  /**
   * The store's flash range has fewer pages than this blob needs (`anole_store_pages_needed`).
   */
  ANOLE_STATUS_STORE_RANGE_TOO_SMALL = 83,
  /**
   * The record read back after writing it is refused: the flash does not keep what is
   * written.
   */
  ANOLE_STATUS_STORE_VERIFY = 84,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum anole_status anole_status;
#else
typedef int32_t anole_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * A parsed model (opaque). Lives in `ANOLE_BLOB_SIZE` bytes of the caller's memory aligned
 * to `ANOLE_HANDLE_ALIGN`, and borrows the blob bytes it was parsed from: both must stay
 * untouched until `anole_blob_release`.
 */
typedef struct anole_blob anole_blob;

/**
 * A learner (opaque): a blob's model in an arena of the caller's floats. Lives in
 * `ANOLE_LEARNER_SIZE` bytes of the caller's memory aligned to `ANOLE_HANDLE_ALIGN`; uses its
 * blob handle and its arena until `anole_learner_release`.
 */
typedef struct anole_learner anole_learner;

/**
 * A sample buffer (opaque): up to `capacity` samples in the caller's float storage. Lives
 * in `ANOLE_SAMPLES_SIZE` bytes of the caller's memory aligned to `ANOLE_HANDLE_ALIGN`;
 * uses the storage until `anole_samples_release`.
 */
typedef struct anole_samples anole_samples;

/**
 * A power-fail-safe parameter store (opaque) in a range of the caller's flash. Lives in
 * `ANOLE_STORE_SIZE` bytes of the caller's memory aligned to `ANOLE_HANDLE_ALIGN`.
 */
typedef struct anole_store anole_store;

/**
 * What a blob holds (`anole_blob_get_info`).
 */
typedef struct anole_blob_info {
  /**
   * Floats in one input sample.
   */
  size_t input_len;
  /**
   * Floats in one prediction.
   */
  size_t output_len;
  /**
   * Floats in one target: `output_len` for MSE, 1 (a class index) for cross-entropy.
   */
  size_t target_len;
  /**
   * Layers.
   */
  size_t layers;
  /**
   * Parameters (all tensors).
   */
  size_t params;
  /**
   * Bytes of the blob (without a signed envelope).
   */
  size_t blob_len;
  /**
   * `ANOLE_LOSS_MSE` or `ANOLE_LOSS_CROSS_ENTROPY`.
   */
  uint32_t loss;
  /**
   * `ANOLE_OPTIMIZER_SGD` or `ANOLE_OPTIMIZER_ADAM`.
   */
  uint32_t optimizer;
  /**
   * Recommended learning rate.
   */
  float lr;
  /**
   * Recommended adaptation steps.
   */
  uint32_t steps;
  /**
   * Recommended batch (samples per step).
   */
  uint32_t batch;
  /**
   * Recommended trainable layers: bit i set, layer i adapts (64 bits: a blob of format
   * version 3 may have up to 64 layers).
   */
  uint64_t trainable;
  /**
   * Where adaptation starts the head: `ANOLE_HEAD_START_META` or
   * `ANOLE_HEAD_START_PROTOTYPES`.
   */
  uint32_t head_start;
  /**
   * Meta-iterations the initialisation was trained for.
   */
  uint64_t meta_iterations;
  /**
   * The factor on the logits of a head started from class prototypes (format version 3;
   * 1 for older blobs): row c of the head becomes 2·s·μ_c, its bias −s·‖μ_c‖².
   */
  float head_scale;
} anole_blob_info;

/**
 * How a learner is set up. `anole_learner_options_default` gives the blob's recommendation.
 */
typedef struct anole_learner_options {
  /**
   * `ANOLE_MODE_BUFFERED` or `ANOLE_MODE_DEVICE`.
   */
  uint32_t mode;
  /**
   * Trainable layers: bit i set, layer i adapts (layers without parameters ignore theirs).
   * 64 bits since the library read 64 layers; a library built without `extra-layers` holds
   * 32 and refuses a mask naming layer 32 or above.
   */
  uint64_t trainable;
  /**
   * Most samples per step (one SGD minibatch); the arena grows with it.
   */
  size_t batch;
  /**
   * Learning rate of `anole_learner_adapt` (finite, >= 0).
   */
  float lr;
} anole_learner_options;

/**
 * A learner's set-up and costs (`anole_learner_get_info`). The bytes an export writes are
 * not among them: `anole_learner_export_len` computes them (it lays out the whole blob,
 * kilobytes of stack on a device).
 */
typedef struct anole_learner_info {
  /**
   * The options in force (the learning rate as last set).
   */
  struct anole_learner_options options;
  /**
   * Optimizer steps since the last reset.
   */
  uint32_t steps_taken;
  /**
   * Floats of the arena the learner uses (the start of the arena given).
   */
  size_t arena_used;
  /**
   * Floats of parameters held in the arena (in device mode, frozen layers stay in the
   * blob).
   */
  size_t params_in_arena;
  /**
   * Multiply-accumulates of one sample's forward pass.
   */
  size_t forward_macs;
  /**
   * Multiply-accumulates of one sample in one step: the forward pass, the weight
   * gradients of adapting layers and the input gradients behind them (a step costs this
   * times its minibatch).
   */
  size_t step_macs;
} anole_learner_info;

/**
 * What `anole_learner_adapt` did.
 */
typedef struct anole_adapt_report {
  /**
   * Steps taken.
   */
  uint32_t steps;
  /**
   * Minibatch loss at the first step, before its update (NaN without steps).
   */
  float first_loss;
  /**
   * Minibatch loss at the last step, before its update (NaN without steps).
   */
  float last_loss;
} anole_adapt_report;

/**
 * Reads `len` bytes at `offset` of the flash into `buf`; returns 0 on success, anything
 * else is an error (reported in `anole_last_error`).
 */
typedef int32_t (*anole_flash_read)(void *context, uint32_t offset, uint8_t *buf, size_t len);

/**
 * Programs `len` bytes from `buf` at `offset` (offset and len are multiples of the store's
 * write size; the bytes were erased since they were last written); returns 0 on success.
 */
typedef int32_t (*anole_flash_write)(void *context, uint32_t offset, const uint8_t *buf, size_t len);

/**
 * Erases the bytes from `from` to `to` (both multiples of the store's page size) to 0xFF;
 * returns 0 on success.
 */
typedef int32_t (*anole_flash_erase)(void *context, uint32_t from, uint32_t to);

/**
 * A NOR flash as callbacks. Offsets count from the start of this flash. The callbacks run
 * during `anole_store_*` calls and must not call the library.
 */
typedef struct anole_flash {
  /**
   * Passed to every callback.
   */
  void *context;
  /**
   * Read callback.
   */
  anole_flash_read read;
  /**
   * Write callback.
   */
  anole_flash_write write;
  /**
   * Erase callback.
   */
  anole_flash_erase erase;
  /**
   * Bytes of the flash.
   */
  uint32_t capacity;
  /**
   * The flash's erase page in bytes; must divide the store's page size.
   */
  uint32_t page_size;
  /**
   * The flash's write unit in bytes; must divide the store's write size.
   */
  uint32_t write_size;
} anole_flash;

/**
 * What `anole_store_save` wrote.
 */
typedef struct anole_saved {
  /**
   * Save counter of the new record (1 for the first save).
   */
  uint32_t generation;
  /**
   * Which half of the range holds it (0 or 1).
   */
  uint32_t half;
  /**
   * 1 if the half had to be erased and written again after an error, else 0.
   */
  uint32_t rewrote;
  /**
   * Bytes of the blob written.
   */
  size_t len;
} anole_saved;

/**
 * What `anole_store_load` put into the learner.
 */
typedef struct anole_loaded {
  /**
   * 1: the adapted parameters of save `generation`; 0: the learner was reset to the
   * meta-initialisation (`refused` says why).
   */
  uint32_t adapted;
  /**
   * Save counter of the record loaded (when `adapted`).
   */
  uint32_t generation;
  /**
   * An `ANOLE_REFUSED_*` code: why the newest record in flash was not loaded.
   */
  uint32_t refused;
  /**
   * With `ANOLE_REFUSED_BLOB`: the status of the blob's refusal; else `ANOLE_STATUS_OK`.
   */
  anole_status blob_status;
  /**
   * Bytes of the stored blob (when `adapted`).
   */
  size_t len;
} anole_loaded;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Parse and validate the blob `bytes` (`len` bytes: magic, version, CRC, layers, shapes,
 * sizes, finite weights, settings) into `mem` (`ANOLE_BLOB_SIZE` bytes aligned to
 * `ANOLE_HANDLE_ALIGN`); `*out` becomes the handle, or NULL on failure. Nothing is copied:
 * the handle reads `bytes` where they are (flash is fine), so they must stay in place and
 * unchanged until `anole_blob_release`. After a failure, `anole_last_error(mem, ...)` says
 * why.
 *
 * # Safety
 * `mem` is NULL or points to `mem_len` writable bytes; `bytes` is NULL or points to `len`
 * readable bytes; `out` is NULL or writable.
 */
anole_status anole_blob_parse(void *mem,
                              size_t mem_len,
                              const uint8_t *bytes,
                              size_t len,
                              struct anole_blob **out);

/**
 * Like `anole_blob_parse` for a signed envelope (`anole sign`): checks the envelope and its
 * ed25519 signature against the trusted `public_key` (`key_len` =
 * `ANOLE_PUBLIC_KEY_LEN` bytes) before parsing the blob inside. A plain blob, a blob signed
 * by another key and any altered byte are refused, each with its own status.
 *
 * # Safety
 * As `anole_blob_parse`; `public_key` is NULL or points to `key_len` readable bytes.
 */
anole_status anole_blob_parse_signed(void *mem,
                                     size_t mem_len,
                                     const uint8_t *bytes,
                                     size_t len,
                                     const uint8_t *public_key,
                                     size_t key_len,
                                     struct anole_blob **out);

/**
 * Release the blob: its memory and bytes are the caller's again. Refused with
 * `ANOLE_STATUS_IN_USE` while learners created on it are live.
 *
 * # Safety
 * `blob` is NULL or points to `ANOLE_BLOB_SIZE` bytes (a handle, or memory that may be one).
 */
anole_status anole_blob_release(struct anole_blob *blob);

/**
 * Fill `*info` with what the blob holds: sizes, loss, recommended settings.
 *
 * # Safety
 * `blob` as for `anole_blob_release`; `info` is NULL or writable.
 */
anole_status anole_blob_get_info(struct anole_blob *blob, struct anole_blob_info *info);

/**
 * Floats of arena a learner of this blob needs with these options (NULL: the blob's
 * recommended batch and trainable layers in `ANOLE_MODE_BUFFERED`), into `*out`. The same
 * figures `anole inspect` prints for sizing a static arena at compile time.
 *
 * # Safety
 * `blob` as for `anole_blob_release`; `options` is NULL or readable; `out` is NULL or
 * writable.
 */
anole_status anole_arena_len(struct anole_blob *blob,
                             const struct anole_learner_options *options,
                             size_t *out);

/**
 * Fill `*options` with the blob's recommended set-up: its batch, trainable layers and
 * learning rate, in `ANOLE_MODE_BUFFERED` (set `mode` to `ANOLE_MODE_DEVICE` on a
 * microcontroller).
 *
 * # Safety
 * `blob` follows the handle contract; `options` is NULL or writable.
 */
anole_status anole_learner_options_default(struct anole_blob *blob,
                                           struct anole_learner_options *options);

/**
 * Create a learner of `blob` in `mem` (`ANOLE_LEARNER_SIZE` bytes aligned to
 * `ANOLE_HANDLE_ALIGN`) with the arena `arena` (`arena_len` floats, at least
 * `anole_arena_len` for these options) and `options` (NULL: the blob's recommendation,
 * buffered); `*out` becomes the handle, or NULL on failure. The learner starts at the blob's
 * meta-initialisation. The blob cannot be released while the learner lives; the arena is
 * the learner's until `anole_learner_release`.
 *
 * # Safety
 * `mem`: NULL or `mem_len` writable bytes; `blob`: the handle contract; `arena`: NULL or
 * `arena_len` writable floats; `options`: NULL or readable; `out`: NULL or writable.
 */
anole_status anole_learner_init(void *mem,
                                size_t mem_len,
                                struct anole_blob *blob,
                                float *arena,
                                size_t arena_len,
                                const struct anole_learner_options *options,
                                struct anole_learner **out);

/**
 * Release the learner: its memory and arena are the caller's again, and its blob has one
 * user less.
 *
 * # Safety
 * `learner` follows the handle contract.
 */
anole_status anole_learner_release(struct anole_learner *learner);

/**
 * Back to the blob's meta-initialisation: parameters as stored, no steps taken.
 *
 * # Safety
 * `learner` follows the handle contract.
 */
anole_status anole_learner_reset(struct anole_learner *learner);

/**
 * Set the learning rate of `anole_learner_adapt` (finite, >= 0).
 *
 * # Safety
 * `learner` follows the handle contract.
 */
anole_status anole_learner_set_lr(struct anole_learner *learner, float lr);

/**
 * Fill `*info` with the learner's options, steps taken, arena use and costs.
 *
 * # Safety
 * `learner` follows the handle contract; `info` is NULL or writable.
 */
anole_status anole_learner_get_info(struct anole_learner *learner, struct anole_learner_info *info);

/**
 * Adapt on the samples in `samples` for `steps` steps at the learner's learning rate. Step s
 * uses the minibatch of min(batch, count) samples starting at s x minibatch (cyclically,
 * oldest sample first). `report` (NULL: not wanted) gets the steps and losses. On a failed
 * step the learner keeps the parameters of the last good one and still predicts.
 *
 * A learner that has taken no step since its parameters were set (`anole_learner_init`,
 * `anole_learner_reset`, `anole_learner_load_params`, `anole_learner_init_prototypes`)
 * first starts its head as the blob says (`anole_learner_start_head`: from the class
 * prototypes of `samples` for a blob whose `head_start` is `ANOLE_HEAD_START_PROTOTYPES`);
 * later calls continue from the current parameters.
 *
 * # Safety
 * `learner` and `samples` follow the handle contract; `report` is NULL or writable.
 */
anole_status anole_learner_adapt(struct anole_learner *learner,
                                 const struct anole_samples *samples,
                                 uint32_t steps,
                                 struct anole_adapt_report *report);

/**
 * `anole_learner_adapt` on samples given as arrays: `inputs` holds n x input_len floats,
 * `targets` n x target_len (`anole_blob_info`), sample after sample.
 *
 * # Safety
 * `learner` follows the handle contract; `inputs`/`targets` are NULL or hold their lengths
 * in floats; `report` is NULL or writable.
 */
anole_status anole_learner_adapt_arrays(struct anole_learner *learner,
                                        const float *inputs,
                                        size_t inputs_len,
                                        const float *targets,
                                        size_t targets_len,
                                        uint32_t steps,
                                        struct anole_adapt_report *report);

/**
 * One optimizer step at learning rate `lr` on one minibatch (n <= batch samples as arrays,
 * as for `anole_learner_adapt_arrays`); `*loss` (NULL: not wanted) gets the loss before
 * the update.
 *
 * # Safety
 * As `anole_learner_adapt_arrays`; `loss` is NULL or writable.
 */
anole_status anole_learner_step(struct anole_learner *learner,
                                const float *inputs,
                                size_t inputs_len,
                                const float *targets,
                                size_t targets_len,
                                float lr,
                                float *loss);

/**
 * Predict: `inputs` holds n x input_len floats, `outputs` receives n x output_len
 * (`outputs_len` must be exactly that). Each sample is predicted on its own (stored
 * normalisation statistics).
 *
 * # Safety
 * `learner` follows the handle contract; `inputs` is NULL or holds `inputs_len` floats;
 * `outputs` is NULL or has room for `outputs_len` floats.
 */
anole_status anole_learner_predict(struct anole_learner *learner,
                                   const float *inputs,
                                   size_t inputs_len,
                                   float *outputs,
                                   size_t outputs_len);

/**
 * The predicted class (index of the largest output) of one input (`input_len` =
 * input_len floats), into `*class_index`.
 *
 * # Safety
 * `learner` follows the handle contract; `input` is NULL or holds `input_len` floats;
 * `class_index` is NULL or writable.
 */
anole_status anole_learner_classify(struct anole_learner *learner,
                                    const float *input,
                                    size_t input_len,
                                    size_t *class_index);

/**
 * Mean loss over the samples in `samples` (no update), into `*loss`.
 *
 * # Safety
 * `learner` and `samples` follow the handle contract; `loss` is NULL or writable.
 */
anole_status anole_learner_loss(struct anole_learner *learner,
                                const struct anole_samples *samples,
                                float *loss);

/**
 * `anole_learner_loss` on samples given as arrays (as for `anole_learner_adapt_arrays`).
 *
 * # Safety
 * As `anole_learner_adapt_arrays`; `loss` is NULL or writable.
 */
anole_status anole_learner_loss_arrays(struct anole_learner *learner,
                                       const float *inputs,
                                       size_t inputs_len,
                                       const float *targets,
                                       size_t targets_len,
                                       float *loss);

/**
 * Start a classifier head from class prototypes: the model's first layer, a dense layer
 * with one output per class under cross-entropy, becomes the nearest-class-mean classifier
 * of the samples in `samples` (inputs: feature vectors; targets: class indices, every class
 * at least once). Then `anole_learner_adapt` fine-tunes it.
 *
 * # Safety
 * `learner` and `samples` follow the handle contract.
 */
anole_status anole_learner_init_prototypes(struct anole_learner *learner,
                                           const struct anole_samples *samples);

/**
 * `anole_learner_init_prototypes` on samples given as arrays (as for
 * `anole_learner_adapt_arrays`).
 *
 * # Safety
 * As `anole_learner_adapt_arrays`.
 */
anole_status anole_learner_init_prototypes_arrays(struct anole_learner *learner,
                                                  const float *inputs,
                                                  size_t inputs_len,
                                                  const float *targets,
                                                  size_t targets_len);

/**
 * Start the head as the blob says (`anole_blob_info.head_start`) on the support set
 * `samples`: for `ANOLE_HEAD_START_PROTOTYPES`, the model's last layer (a dense layer with one
 * output per class under cross-entropy, adapting) becomes the nearest-prototype classifier of
 * the features the samples give at its input (norm layers that adapt use the samples'
 * statistics), and the optimizer state is cleared; for `ANOLE_HEAD_START_META`, nothing
 * changes. `anole_learner_adapt` does this itself on a learner that has taken no step since
 * its parameters were set; call it before `anole_learner_step` loops. On failure the
 * parameters are unchanged.
 *
 * # Safety
 * `learner` and `samples` follow the handle contract.
 */
anole_status anole_learner_start_head(struct anole_learner *learner,
                                      const struct anole_samples *samples);

/**
 * `anole_learner_start_head` on samples given as arrays (as for
 * `anole_learner_adapt_arrays`).
 *
 * # Safety
 * As `anole_learner_adapt_arrays`.
 */
anole_status anole_learner_start_head_arrays(struct anole_learner *learner,
                                             const float *inputs,
                                             size_t inputs_len,
                                             const float *targets,
                                             size_t targets_len);

/**
 * Bytes `anole_learner_export` writes, into `*len`.
 *
 * # Safety
 * `learner` follows the handle contract; `len` is NULL or writable.
 */
anole_status anole_learner_export_len(struct anole_learner *learner, size_t *len);

/**
 * Write the current (adapted) parameters as a blob into `out` (room for `out_len` bytes,
 * at least `anole_learner_export_len`); `*written` gets the bytes written. The blob has the
 * architecture, dtypes, settings and provenance of the learner's blob; unadapted, it is the
 * same bytes. `anole_blob_parse` reads it back, `anole_learner_load_params` loads it.
 *
 * # Safety
 * `learner` follows the handle contract; `out` is NULL or has room for `out_len` bytes;
 * `written` is NULL or writable.
 */
anole_status anole_learner_export(struct anole_learner *learner,
                                  uint8_t *out,
                                  size_t out_len,
                                  size_t *written);

/**
 * Load the parameters of `adapted`, a blob of the same architecture as the learner's (such
 * as one `anole_learner_export` wrote and the device kept), into the learner; steps taken
 * restart at 0. A blob of another architecture is refused and nothing changes.
 *
 * # Safety
 * `learner` and `adapted` follow the handle contract.
 */
anole_status anole_learner_load_params(struct anole_learner *learner, struct anole_blob *adapted);

/**
 * Create an empty sample buffer in `mem` (`ANOLE_SAMPLES_SIZE` bytes aligned to
 * `ANOLE_HANDLE_ALIGN`) for up to `capacity` samples of `input_len` input and `target_len`
 * target floats (`anole_blob_info`), stored in `storage` (`storage_len` floats, at least
 * capacity x (input_len + target_len)); `*out` becomes the handle, or NULL on failure.
 *
 * # Safety
 * `mem`: NULL or `mem_len` writable bytes; `storage`: NULL or `storage_len` writable floats;
 * `out`: NULL or writable.
 */
anole_status anole_samples_init(void *mem,
                                size_t mem_len,
                                float *storage,
                                size_t storage_len,
                                size_t capacity,
                                size_t input_len,
                                size_t target_len,
                                struct anole_samples **out);

/**
 * Add a sample (`input_len` input floats, `target_len` target floats: a regression target,
 * or one class index), replacing the oldest when the buffer is full. A sample of the wrong
 * length or holding NaN or infinity is refused and the buffer is unchanged.
 *
 * # Safety
 * `samples` follows the handle contract; `input`/`target` are NULL or hold their lengths in
 * floats.
 */
anole_status anole_samples_push(struct anole_samples *samples,
                                const float *input,
                                size_t input_len,
                                const float *target,
                                size_t target_len);

/**
 * The number of samples held, into `*count`.
 *
 * # Safety
 * `samples` follows the handle contract; `count` is NULL or writable.
 */
anole_status anole_samples_count(struct anole_samples *samples, size_t *count);

/**
 * Remove every sample.
 *
 * # Safety
 * `samples` follows the handle contract.
 */
anole_status anole_samples_clear(struct anole_samples *samples);

/**
 * Release the sample buffer: its memory and storage are the caller's again.
 *
 * # Safety
 * `samples` follows the handle contract.
 */
anole_status anole_samples_release(struct anole_samples *samples);

/**
 * The store's page and write sizes, into `*page_size` and `*write_size` (either may be
 * NULL).
 *
 * # Safety
 * `page_size` and `write_size` are NULL or writable.
 */
anole_status anole_store_geometry(uint32_t *page_size, uint32_t *write_size);

/**
 * Bytes of the buffer `anole_store_save`, `anole_store_load` and `anole_store_clear` need
 * for a blob of `blob_len` bytes (`anole_learner_export_len`; 0 for clear), into `*len`.
 *
 * # Safety
 * `len` is NULL or writable.
 */
anole_status anole_store_buffer_len(size_t blob_len, size_t *len);

/**
 * Pages of the store's size a range needs for a blob of `blob_len` bytes, into `*pages`.
 *
 * # Safety
 * `pages` is NULL or writable.
 */
anole_status anole_store_pages_needed(size_t blob_len, size_t *pages);

/**
 * Open a store on bytes `start` to `end` of `flash` (multiples of the store's page size, at
 * least 4 pages, split in two halves) in `mem` (`ANOLE_STORE_SIZE` bytes aligned to
 * `ANOLE_HANDLE_ALIGN`); `*out` becomes the handle, or NULL on failure. Nothing is written
 * until a save or clear. The range must not hold the firmware or the meta-initialisation.
 * `*flash` is copied; its context must stay valid until `anole_store_release`.
 *
 * # Safety
 * `mem`: NULL or `mem_len` writable bytes; `flash`: NULL or readable, with callbacks that
 * follow their contracts; `out`: NULL or writable.
 */
anole_status anole_store_open(void *mem,
                              size_t mem_len,
                              const struct anole_flash *flash,
                              uint32_t start,
                              uint32_t end,
                              struct anole_store **out);

/**
 * Save the learner's current parameters as the newest record, and read it back. If power
 * is cut before this returns, the next load finds the previous record or this one, whole.
 * `buf` needs `anole_store_buffer_len(export_len)` bytes (aligned as the flash driver
 * wants: the first bytes are handed to the callbacks). `saved` (NULL: not wanted) gets what
 * was written. The learner must be the store's model (or a load refuses the record).
 *
 * # Safety
 * `store` and `learner` follow the handle contract; `buf` is NULL or `buf_len` writable
 * bytes; `saved` is NULL or writable.
 */
anole_status anole_store_save(struct anole_store *store,
                              struct anole_learner *learner,
                              uint8_t *buf,
                              size_t buf_len,
                              struct anole_saved *saved);

/**
 * Load the newest valid record into the learner, or reset the learner to its
 * meta-initialisation if there is none; `loaded` (NULL: not wanted) says which, and why a
 * record was refused. Flash errors while reading make a record count as refused, so the
 * learner always comes out usable. `buf` as for `anole_store_save`.
 *
 * # Safety
 * As `anole_store_save`; `loaded` is NULL or writable.
 */
anole_status anole_store_load(struct anole_store *store,
                              struct anole_learner *learner,
                              uint8_t *buf,
                              size_t buf_len,
                              struct anole_loaded *loaded);

/**
 * Forget the saved parameters: the next load gives the meta-initialisation. `buf` needs
 * `anole_store_buffer_len(0)` bytes.
 *
 * # Safety
 * `store` follows the handle contract; `buf` is NULL or `buf_len` writable bytes.
 */
anole_status anole_store_clear(struct anole_store *store, uint8_t *buf, size_t buf_len);

/**
 * Release the store: its memory is the caller's again (the flash keeps the records).
 *
 * # Safety
 * `store` follows the handle contract.
 */
anole_status anole_store_release(struct anole_store *store);

/**
 * The meaning of a status code, as a static NUL-terminated string ("unknown status code"
 * for a code no function returns). Never NULL.
 */
const char *anole_status_message(int32_t status);

/**
 * The details of the last failed call on `handle` (any handle, live or released, or the
 * memory of a failed creation): the function, the argument or sizes, the runtime's reason.
 * Written into `buf` (`buf_len` bytes, NUL-terminated, truncated if short; NULL with 0 to
 * ask the length only); `*needed` (NULL: not wanted) gets the full length without the NUL.
 * A handle with no failure gives "no failure recorded". Failures that leave no handle (a
 * NULL or invalid handle argument) are only in the status.
 *
 * # Safety
 * `handle` is NULL or points to at least a handle's head (any `ANOLE_*_SIZE` memory);
 * `buf` is NULL or `buf_len` writable bytes; `needed` is NULL or writable.
 */
anole_status anole_last_error(const void *handle, char *buf, size_t buf_len, size_t *needed);

/**
 * Format `value` as the Rust firmware prints a float: the shortest decimal that reads back
 * to the same bits, without an exponent ("0.1", "-2.5", "NaN", "inf"), into `buf`
 * (`buf_len` bytes, NUL-terminated); `*written` (NULL: not wanted) gets its length without
 * the NUL. A buffer too short for the whole text is refused with
 * `ANOLE_STATUS_BUFFER_TOO_SMALL` and holds the empty string; `ANOLE_FORMAT_F32_LEN` bytes
 * always suffice.
 *
 * # Safety
 * `buf` is NULL or `buf_len` writable bytes; `written` is NULL or writable.
 */
anole_status anole_format_f32(float value, char *buf, size_t buf_len, size_t *written);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ANOLE_H */
