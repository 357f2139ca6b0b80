/* state/torch_bin.h — reading a PyTorch state dict (pytorch_model.bin, what
 * torch.save writes since PyTorch 1.6) without Python and without executing
 * anything, into the same bt_st_file handle the safetensors reader gives, so
 * every user of model weights reads either format.
 *
 * Owns: the torch.save zip layout (one top folder <prefix>/ holding data.pkl,
 * data/<key> per storage, version, byteorder), the restricted meaning given
 * to data.pkl (state/pickle.c hooks: the globals below, storage persistent
 * ids, tensor rebuilds), views (storage offset, strides), and the refusals.
 * Must not: know BERT or any tensor name, accept a global outside the list,
 * or copy tensor data that is contiguous in the file (tensors point into the
 * read-only mapping).
 *
 * Accepted (the subset of torch.load(weights_only=True) a state dict uses):
 *   collections.OrderedDict()                          (and BUILD of its _metadata)
 *   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 *                                   OrderedDict() [, None or {}])
 *   torch._utils._rebuild_tensor(storage, offset, size, stride)
 *   torch._utils._rebuild_parameter(tensor, requires_grad, OrderedDict())
 *   persistent id ('storage', torch.<T>Storage, key, location, numel) for T in
 *   Float Half BFloat16 Double Long Int Short Char Byte Bool
 * The pickle's value must be a dict of str -> tensor. Tensors have at most 8
 * dimensions; contiguous views point into the storage, other views are
 * copied into contiguous memory when they fit in their storage (no
 * element repeated). Refused with a message saying what and why: any other
 * global (e.g. posix.system), opcode or call; the legacy formats (PyTorch <
 * 1.6: a raw pickle stream or a tar file); TorchScript archives; big-endian
 * files; compressed or encrypted members; a storage whose member is missing,
 * fails its CRC-32 or differs from numel x element size; a view outside its
 * storage; data.pkl over BT_PT_MAX_PICKLE bytes, more than BT_PT_MAX_TENSORS
 * tensors, names adding up to more than BT_PT_MAX_PICKLE bytes, strided
 * copies adding up to more than the file's size (so a hostile file cannot
 * make the reader allocate much more than it weighs).
 */
#ifndef BATON_STATE_TORCH_BIN_H
#define BATON_STATE_TORCH_BIN_H

#include "state/safetensors.h"

#include <stddef.h>

#define BT_PT_MAX_PICKLE (32u << 20) /* data.pkl of a state dict is ~200 bytes per tensor */
#define BT_PT_MAX_TENSORS 200000u    /* BERT-large has ~400; the largest LLM shards a few thousand */

/* Maps path and reads it; tensors point into the mapping. BT_ENOINPUT when
 * the file cannot be opened, BT_EDATA for anything refused. */
int bt_pt_open(const char *path, bt_st_file **out);
/* The same on a buffer that must outlive the handle (tests, fuzzing). */
int bt_pt_open_buffer(const void *buf, size_t len, const char *label, bt_st_file **out);

#endif
