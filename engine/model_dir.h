/* engine/model_dir.h — where a model directory's files are: which folder a
 * model path means, and which weights file it holds.
 *
 * Owns: the one rule for following a model path given by a user (a job's
 * [model] path, `predict`, `inspect-model`, `tokenize`) and the choice
 * between model.safetensors and pytorch_model.bin.
 * Must not: parse any of the files (model_config.c, tokenizer.c and the
 * state/ readers do), or search without bounds.
 *
 * A model directory is a folder with config.json. A path without one is
 * searched up to BT_MODEL_DIR_DEPTH levels down (hidden folders skipped, and
 * nothing below a model directory): when exactly one model directory (config.json
 * plus model.safetensors or pytorch_model.bin) is found it is used and a
 * line says so (a Kaggle dataset often nests the model one or two folders
 * down); several are an error listing them; none is an error that names the
 * folders holding vocab.txt or config.json, if any.
 */
#ifndef BATON_ENGINE_MODEL_DIR_H
#define BATON_ENGINE_MODEL_DIR_H

#define BT_MODEL_DIR_DEPTH 3
#define BT_MODEL_DIR_MAX_SCAN 20000 /* directory entries looked at, at most */

/* What the caller will read from the directory. */
enum { BT_MODEL_DIR_WEIGHTS = 1, BT_MODEL_DIR_TOKENIZER = 2 };

/* path -> the model directory it means (heap, in *dir). need: BT_MODEL_DIR_*
 * bits. With BT_MODEL_DIR_TOKENIZER, a model directory without vocab.txt and
 * without tokenizer.json, while a folder below it (or below path) has a
 * vocab.txt, is an error naming that folder; without BT_MODEL_DIR_WEIGHTS
 * (`baton tokenize`), a folder with vocab.txt or tokenizer.json is taken as
 * it is. Errors: BT_ENOINPUT (not a directory, no model directory),
 * BT_ECONFIG (several model directories). */
int bt_model_dir_resolve(const char *path, unsigned need, char **dir);

/* The weights file of model directory dir (heap, in *path): model.safetensors,
 * else pytorch_model.bin. BT_ENOINPUT naming what is there instead (a
 * sharded checkpoint's index, TensorFlow or Flax weights) when neither is. */
int bt_model_weights_path(const char *dir, char **path);

#endif
