// Frozen-encoder embedding export: an Encoder (tools/embed/encoder.h) over a CSV of image ids or
// a folder, decoded and preprocessed on worker threads while the model runs, written as
// conceptlab.embeddings with the CSV's other columns. Bad images fail the run before any output
// appears, or are skipped and listed with --skip-bad; runs checkpoint every batch to
// OUT.partial so --resume continues to a bitwise-identical result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/csv.h"
#include "core/device.h"
#include "core/progress.h"
#include "tools/embed/decode_pool.h"
#include "tools/embed/encoder.h"
#include "tools/embed/preprocess.h"

namespace cl::embed {

struct EmbedParams {
  std::string model;            // TorchScript file
  std::string preprocess_json;  // "" = the model path with extension .json (ENCODER.pt -> ENCODER.json)
  std::string csv;              // CSV mode: metadata with one row per image
  std::string image_col = kDefaultIdCol;
  std::string image_root;       // CSV mode: folder the ids are relative to ("" = the CSV's folder)
  std::string images_dir;       // folder mode: every image below, ids = relative paths, sorted
  std::string out;              // output .h5
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  int batch = 32;
  bool fp16 = false;            // CUDA only: half-precision model and inputs
  int workers = 0;              // decoding threads; 0 = auto (CUDA: one per core, at most 8; CPU: half the cores)
  bool skip_bad = false;        // write good rows + OUT.skipped.csv instead of failing
  bool resume = false;          // continue from OUT.partial
  bool allow_outside_root = false;  // CSV ids that are absolute or climb out of image_root with ".."
  std::string shard;                // "I/N": only blocks I, I+N, ... of the input list (shard.h); "" = all
  int64_t shard_block = 1024;       // inputs per block when sharded
  // Also write the patch grid (core/patches.h) to patch_out; needs a model whose output is a
  // feature map or tokens. The encoder's JSON may turn it on ("patches": true).
  bool patches = false;
  std::string patch_out;            // "" = default_patch_path(out)
  bool patch_fp16 = true;           // store patches as float16 (half the size; 11 significant bits)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EmbedParams, model, preprocess_json, csv, image_col, image_root,
                                                images_dir, out, device, batch, fp16, workers, skip_bad, resume,
                                                allow_outside_root, shard, shard_block, patches, patch_out, patch_fp16)

struct EmbedReport {
  std::string out, skipped_csv;  // skipped_csv "" unless --skip-bad
  std::string patch_out;  // "" without patches
  int64_t grid_h = 0, grid_w = 0;
  int64_t n_items = 0, n_rows = 0, n_skipped = 0, n_resumed = 0, dim = 0;
  double seconds = 0, images_per_s = 0;  // over the images embedded in this run
  std::string device;
  std::vector<std::pair<std::string, std::string>> skipped;  // (id, reason)
};
nlohmann::json to_json(const EmbedReport& r);

// The images of a run: CSV rows (ids from image_col, paths image_root/id) or folder contents.
// Throws InputError on a missing column, duplicate ids, an empty folder.
std::vector<EmbedItem> list_items(const EmbedParams& p);
// The folder image ids are relative to: --image-root, else the CSV's folder; --images in folder
// mode. Stored as `image_root` in the embeddings' config so retrieval can find the images.
std::string image_root(const EmbedParams& p);
bool is_image_extension(const std::string& path);

// Preprocessing for a model: preprocess_json when given, else beside the model; InputError
// when that file is absent.
std::string default_preprocess_path(const std::string& model_path);
PreprocessParams resolve_preprocess(const EmbedParams& p);
// How the model's output becomes embeddings: the "output" object of the encoder's JSON (when
// there is one; defaults otherwise). *patches is set when that JSON says "patches": true.
OutputParams resolve_output(const EmbedParams& p, bool* patches = nullptr);
// Where the patch grid goes by default: OUT's name with .patches.h5 for its extension.
std::string default_patch_path(const std::string& out);

// The whole run. `pre` is the resolved preprocessing (resolve_preprocess plus any flag overrides).
// Progress counts images; cancelling (or killing the process) leaves OUT.partial for --resume.
EmbedReport embed_images(const EmbedParams& p, const PreprocessParams& pre, Device device,
                         ProgressSink& progress = silent_progress(), const OutputParams& output = {});

std::string partial_path(const std::string& out);  // OUT.partial
std::string skipped_path(const std::string& out);  // OUT.skipped.csv

}  // namespace cl::embed
