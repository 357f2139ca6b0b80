/* kernels/backend_fault.h — a backend that is another backend with one op
 * made wrong on purpose: what the first-contact self-check (runner/selftest.h)
 * is tested with on a machine without a GPU, and the stand-in for a GPU that
 * BATON_FAKE_GPU selects (docs/cuda.md).
 *
 * Owns: the fault kinds, their text form ("matmul", "adamw:1e-5", "noise"),
 * and the wrapper. Must not: know about BERT, jobs or files; change anything
 * but the one op it perturbs (every other op is the wrapped backend's own
 * function, so a backend that grows new ops still works behind it).
 */
#ifndef BATON_KERNELS_BACKEND_FAULT_H
#define BATON_KERNELS_BACKEND_FAULT_H

#include "kernels/backend.h"

typedef enum {
    BT_FAULT_NONE = 0,      /* a clean pass-through wrapper */
    BT_FAULT_MATMUL,        /* C *= (1 + rel) after every matmul */
    BT_FAULT_ATTENTION,     /* ctx *= (1 + rel) after attention_fwd */
    BT_FAULT_ATTENTION_BWD, /* dqkv *= (1 + rel) after attention_bwd */
    BT_FAULT_LAYERNORM,     /* y *= (1 + rel) after layernorm_fwd */
    BT_FAULT_LAYERNORM_BWD, /* dh *= (1 + rel) after layernorm_bwd */
    BT_FAULT_GELU,          /* GELU output *= (1 + rel): act_fwd, and matmul with a GELU epilogue */
    BT_FAULT_EMBED,         /* out *= (1 + rel) after embed_fwd */
    BT_FAULT_EMBED_BWD,     /* each table gradient *= (1 + rel) after embed_bwd */
    BT_FAULT_XENT,          /* dlogits *= (1 + rel) after softmax_xent (also bce_logits, mse) */
    BT_FAULT_DROPOUT,       /* y *= (1 + rel) after dropout with p > 0 */
    BT_FAULT_ADAMW,         /* the update of every adamw call is (1 + rel) times the right one */
    BT_FAULT_SUM_SQUARES,   /* sum_squares returns (1 + rel) times the right value */
    BT_FAULT_NOISE,         /* not a fault: each element x of the outputs of matmul,
                               attention (BERT's and DeBERTa's) and layer norm (fwd and bwd) gets
                               x += rel u (|x| + rms), u uniform in [-1, 1) from a fixed
                               seed (16-bit outputs: in F32, then rounded back): what a
                               correct device that sums in another order looks like
                               (default rel 1e-7) */
    BT_FAULT_REL_ATTENTION,     /* ctx *= (1 + rel) after rel_attention_fwd (DeBERTa) */
    BT_FAULT_REL_ATTENTION_BWD, /* dqkv and dpos *= (1 + rel) after rel_attention_bwd */
    BT_FAULT_COUNT
} bt_fault_kind;

typedef struct {
    bt_fault_kind kind;
    double rel; /* relative size of the perturbation */
} bt_fault_spec;

/* Parses "KIND" or "KIND:REL" (KIND as bt_fault_name: none, matmul, attention,
 * attention_bwd, layernorm, layernorm_bwd, gelu, embed, embed_bwd, xent,
 * dropout, adamw, sum_squares, noise, rel_attention, rel_attention_bwd; REL a
 * number in (0, 1], default 1e-3,
 * 1e-7 for noise). BT_ECONFIG with the list of kinds when text is not one. */
int bt_fault_parse(const char *text, bt_fault_spec *out);
const char *bt_fault_name(bt_fault_kind k);

/* A backend that behaves as inner except for the fault. Takes ownership of
 * inner (destroying the wrapper destroys it). name: "<inner>+fault(<kind>:<rel>)"
 * ("<inner>+wrap" for BT_FAULT_NONE). NULL (after bt_fail) on a bad spec;
 * inner is then destroyed too. */
bt_backend *bt_backend_fault_wrap(bt_backend *inner, const bt_fault_spec *spec);

/* How many times the perturbed op ran (0 for none): tests check that a
 * fault was exercised, not merely configured. -1 if be is not a wrapper. */
long bt_backend_fault_hits(const bt_backend *be);

#endif
