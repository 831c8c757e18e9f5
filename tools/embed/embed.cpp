// The embedding export driver: item listing and validation, a cheap check of every file, then
// batches flow decode pool -> Encoder -> checkpoint -> output writer, and the outputs are
// committed together at the end. The parts live in decode_pool, encoder and run_checkpoint.
#include "tools/embed/embed.h"
#include "core/json_input.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/output_claim.h"
#include "core/patches.h"
#include "core/progress.h"
#include "tools/embed/decode_pool.h"
#include "tools/embed/encoder.h"
#include "tools/embed/run_checkpoint.h"
#include "tools/embed/shard.h"

namespace fs = std::filesystem;

namespace cl::embed {

nlohmann::json to_json(const EmbedReport& r) {
  nlohmann::json skipped = nlohmann::json::array();
  for (auto& [id, why] : r.skipped) skipped.push_back({{"id", id}, {"reason", why}});
  return {{"out", r.out},       {"skipped_csv", r.skipped_csv}, {"n_items", r.n_items},
          {"n_rows", r.n_rows}, {"n_skipped", r.n_skipped},     {"n_resumed", r.n_resumed},
          {"dim", r.dim},       {"seconds", r.seconds},         {"images_per_s", r.images_per_s},
          {"device", r.device}, {"skipped", skipped}, {"patch_out", r.patch_out},
          {"grid", {r.grid_h, r.grid_w}}};
}

std::string partial_path(const std::string& out) { return out + ".partial"; }
std::string skipped_path(const std::string& out) { return out + ".skipped.csv"; }

bool is_image_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::set<std::string> kExt = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"};
  return kExt.count(ext) > 0;
}

std::string image_root(const EmbedParams& p) {
  if (p.csv.empty()) return p.images_dir;
  return p.image_root.empty() ? fs::path(p.csv).parent_path().string() : p.image_root;
}

std::vector<EmbedItem> list_items(const EmbedParams& p) {
  if (p.csv.empty() == p.images_dir.empty()) throw_usage("embed: give exactly one of --csv or --images");
  std::vector<EmbedItem> items;
  if (!p.csv.empty()) {
    CsvTable t = read_csv(p.csv);
    t.col(p.image_col);          // throws naming the columns available
    index_by(t, p.image_col);    // throws on duplicate or empty ids
    const fs::path root = image_root(p);
    for (auto& id : t.column(p.image_col)) {
      // A CSV is data, often from elsewhere: its ids must not read files outside the image root
      // (an absolute path or "../../x") unless the user says so.
      const fs::path rel(id);
      const std::string norm = rel.lexically_normal().generic_string();
      const bool outside = rel.is_absolute() || rel.has_root_name() || norm == ".." || norm.rfind("../", 0) == 0;
      items.push_back({id, (root / id).string(), outside && !p.allow_outside_root});
    }
    if (items.empty()) throw_input("{}: no rows, expected at least one image", p.csv);
    return items;
  }
  std::error_code ec;
  if (!fs::is_directory(p.images_dir, ec)) throw_input("{}: not a folder (--images)", p.images_dir);
  for (auto it = fs::recursive_directory_iterator(p.images_dir, fs::directory_options::follow_directory_symlink, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw_input("{}: cannot list folder ({})", p.images_dir, ec.message());
    if (!it->is_regular_file() || !is_image_extension(it->path().string())) continue;
    items.push_back({fs::relative(it->path(), p.images_dir).generic_string(), it->path().string()});
  }
  std::sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.id < b.id; });
  if (items.empty()) throw_input("{}: no image files (jpg, png, bmp, tif, webp) found below this folder", p.images_dir);
  return items;
}

std::string default_preprocess_path(const std::string& model_path) {
  return fs::path(model_path).replace_extension(".json").string();
}

PreprocessParams resolve_preprocess(const EmbedParams& p) {
  std::string path = p.preprocess_json.empty() ? default_preprocess_path(p.model) : p.preprocess_json;
  if (!fs::exists(path))
    throw_input("{}: preprocessing JSON not found (looked beside the model {}); pass --preprocess FILE or the "
                "preprocessing flags (--image-size ...)",
                path, p.model);
  return load_preprocess(path);
}

OutputParams resolve_output(const EmbedParams& p, bool* patches) {
  const std::string path = p.preprocess_json.empty() ? default_preprocess_path(p.model) : p.preprocess_json;
  OutputParams o;
  if (patches) *patches = false;
  if (!fs::exists(path)) return o;
  std::ifstream in(path);
  const nlohmann::json j = parse_json(in, path, "a preprocessing file");
  if (!j.is_object()) return o;
  try {
    if (j.contains("output") && j["output"].is_object()) o = j["output"].get<OutputParams>();
    if (patches && j.contains("patches")) *patches = j["patches"].get<bool>();
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: bad 'output' or 'patches' ({})", path, e.what());
  }
  validate(o, path);
  return o;
}

std::string default_patch_path(const std::string& out) {
  fs::path p(out);
  return (p.parent_path() / (p.stem().string() + ".patches.h5")).string();
}

namespace {

std::string list_bad(const std::vector<std::pair<std::string, std::string>>& bad) {
  std::string s;
  const size_t show = std::min<size_t>(bad.size(), 10);
  for (size_t i = 0; i < show; ++i) s += fmt::format("\n  {}: {}", bad[i].first, bad[i].second);
  if (bad.size() > show) s += fmt::format("\n  ... and {} more", bad.size() - show);
  return s;
}

int64_t file_mtime(const std::string& path) {
  std::error_code ec;
  auto t = fs::last_write_time(path, ec);
  return ec ? 0 : static_cast<int64_t>(t.time_since_epoch().count());
}

void check_params(const EmbedParams& p, Device device) {
  if (p.out.empty()) throw_usage("embed: --out is required");
  if (p.model.empty()) throw_usage("embed: --model is required");
  if (p.batch < 1) throw_usage("embed: --batch {}: expected >= 1", p.batch);
  if (p.workers < 0) throw_usage("embed: --workers {}: expected >= 0 (0 = auto)", p.workers);
  if (p.fp16 && !device.is_cuda()) throw_usage("embed: --fp16 needs a CUDA device (got {})", device.str());
  if (p.shard_block < 1) throw_usage("embed: --shard-block {}: expected >= 1", p.shard_block);
  parse_shard(p.shard);
  if (p.patches && !p.shard.empty())
    throw_usage("embed: --patches with --shard: patch files of shards cannot be merged yet; embed patches unsharded");
}

// Cheap checks of every file (exists, non-empty, a known format) before any model work; a bad
// set fails here unless bad images are skipped. Returns the reason per item ("" = fine).
std::vector<std::string> precheck_items(const std::vector<EmbedItem>& items, bool skip_bad) {
  std::vector<std::string> why(items.size());
  std::vector<std::pair<std::string, std::string>> bad;
  for (size_t i = 0; i < items.size(); ++i) {
    why[i] = items[i].outside_root
                 ? "outside the image root (absolute or '..' path; --allow-outside-root reads it)"
                 : precheck_image(items[i].path);
    if (!why[i].empty()) bad.emplace_back(items[i].id, why[i] + " (" + items[i].path + ")");
  }
  if (!bad.empty() && !skip_bad)
    throw_input("{} of {} images are unusable; nothing was written (use --skip-bad to embed the rest):{}",
                bad.size(), items.size(), list_bad(bad));
  return why;
}

// Identity of a run for resuming: same items, model file, preprocessing, batching, device.
nlohmann::json run_fingerprint(const EmbedParams& p, const PreprocessParams& pre, const OutputParams& output,
                               const std::vector<EmbedItem>& items, Device device) {
  std::string id_blob;
  for (auto& it : items) id_blob += it.id + '\0' + it.path + '\0';
  return {{"n_items", static_cast<int64_t>(items.size())},
          {"items_fnv", fmt::format("{:016x}", fnv1a(id_blob.data(), id_blob.size()))},
          {"model_bytes", static_cast<int64_t>(fs::file_size(p.model))},
          {"model_mtime", file_mtime(p.model)},
          {"preprocess", pre},
          {"batch", p.batch},
          {"fp16", p.fp16},
          {"device", device.str()},
          {"output", output},
          {"patches", p.patches}};
}

// Finished batches -> the output file (opened at the first good row) and the skip list.
struct OutputRows {
  const EmbedParams& p;
  const PreprocessParams& pre;
  const std::vector<EmbedItem>& items;
  const nlohmann::json& config;
  const std::vector<std::string>& inputs;
  std::unique_ptr<EmbeddingsWriter> writer;
  std::unique_ptr<PatchEmbeddingsWriter> patch_writer;  // with --patches
  int64_t grid_h = 0, grid_w = 0;
  std::vector<std::string> good_ids;
  std::vector<std::pair<std::string, std::string>> skipped;
  std::vector<char> good;  // per item: embedded (a shard's layout counts rows per block)
  int64_t dim = 0;

  void consume(const BatchResult& b) {
    std::vector<std::string> ids;
    good.resize(items.size(), 0);
    for (size_t j = 0; j < b.ok.size(); ++j) {
      const auto& it = items[static_cast<size_t>(b.first) + j];
      good[static_cast<size_t>(b.first) + j] = b.ok[j] != 0;
      if (b.ok[j]) ids.push_back(it.id);
      else skipped.emplace_back(it.id, b.reasons[j]);
    }
    if (ids.empty()) return;
    if (!writer) {
      dim = b.dim;
      writer = std::make_unique<EmbeddingsWriter>(p.out, dim, config, inputs);
    }
    CL_ASSERT(b.dim == dim, "checkpoint batches disagree on dim");
    writer->append(b.rows.data(), static_cast<int64_t>(ids.size()), ids);
    if (p.patches) add_patches(b, ids);
    good_ids.insert(good_ids.end(), ids.begin(), ids.end());
  }

  void add_patches(const BatchResult& b, const std::vector<std::string>& ids) {
    const std::string& model = p.model;
    if (!patch_writer) {
      grid_h = b.grid_h;
      grid_w = b.grid_w;
      nlohmann::json c = config;
      c["grid"] = {grid_h, grid_w};
      c["patch_dtype"] = p.patch_fp16 ? "float16" : "float32";
      c["image_embeddings"] = p.out;
      patch_writer = std::make_unique<PatchEmbeddingsWriter>(p.patch_out.empty() ? default_patch_path(p.out) : p.patch_out,
                                                             grid_h, grid_w, dim, p.patch_fp16, c, inputs);
    }
    if (b.grid_h != grid_h || b.grid_w != grid_w)
      throw_input("{}: patch grid changed from {} x {} to {} x {} (batch starting at id {})", model, grid_h, grid_w,
                  b.grid_h, b.grid_w, items[static_cast<size_t>(b.first)].id);
    const auto n = static_cast<int64_t>(ids.size());
    std::vector<float> boxes(static_cast<size_t>(4 * n));
    for (int64_t i = 0; i < n; ++i) {
      const auto box = crop_box(b.sizes[2 * i], b.sizes[2 * i + 1], pre);
      for (int k = 0; k < 4; ++k) boxes[4 * i + k] = static_cast<float>(box[k]);
    }
    patch_writer->append(b.patches.data(), n, ids, b.sizes.data(), boxes.data());
  }
};

// Batch b of the pool through the encoder: the items that decoded, embedded; the others with
// their reasons (an error unless bad images are skipped).
BatchResult embed_batch(Encoder& enc, DecodePool& pool, int64_t b, const std::vector<EmbedItem>& items,
                        const std::vector<std::string>& pre_err, const EmbedParams& p, int64_t dim) {
  DecodePool::Slot& slot = pool.wait(b);
  const int64_t nb = pool.batch_size(b), B = p.batch, chw = 3 * enc.input_size() * enc.input_size();
  BatchResult res;
  res.first = b * B;
  res.ok.assign(nb, 1);
  res.reasons.assign(nb, "");
  std::vector<int64_t> good;
  std::vector<std::pair<std::string, std::string>> batch_bad;
  for (int64_t j = 0; j < nb; ++j) {
    const size_t i = static_cast<size_t>(b * B + j);
    std::string err = !pre_err[i].empty() ? pre_err[i] : slot.err[j];
    if (err.empty()) {
      good.push_back(j);
    } else {
      res.ok[j] = 0;
      res.reasons[j] = err;
      batch_bad.emplace_back(items[i].id, err + " (" + items[i].path + ")");
    }
  }
  if (!batch_bad.empty() && !p.skip_bad)
    throw_input("{} images could not be decoded; nothing was written (use --skip-bad to embed the rest):{}",
                batch_bad.size(), list_bad(batch_bad));
  res.dim = dim;
  if (!good.empty()) {
    // Compact the good inputs to the front of the slot (in order) and run them as one batch.
    for (size_t g = 0; g < good.size(); ++g)
      if (good[g] != static_cast<int64_t>(g))
        std::copy_n(slot.data.data() + good[g] * chw, chw, slot.data.data() + static_cast<int64_t>(g) * chw);
    try {
      if (p.patches) {
        EncoderOutput o = enc.forward_patches(slot.data.data(), static_cast<int64_t>(good.size()));
        res.rows = std::move(o.pooled_nd);
        res.patches = std::move(o.patches_npd);
        res.grid_h = o.grid_h;
        res.grid_w = o.grid_w;
        for (int64_t j : good) res.sizes.insert(res.sizes.end(), {slot.size[2 * j], slot.size[2 * j + 1]});
      } else {
        res.rows = enc.forward(slot.data.data(), static_cast<int64_t>(good.size()));
      }
    } catch (const InputError& e) {
      throw_input("{} (batch starting at id {})", e.what(), items[static_cast<size_t>(b * B)].id);
    }
    res.dim = enc.dim();
  }
  pool.release(b);
  return res;
}

}  // namespace

EmbedReport embed_images(const EmbedParams& p, const PreprocessParams& pre, Device device, ProgressSink& progress,
                         const OutputParams& output) {
  check_params(p, device);
  validate(pre, "preprocessing");
  validate(output, "embed");
  const std::string patch_out = p.patches ? (p.patch_out.empty() ? default_patch_path(p.out) : p.patch_out) : "";
  if (p.patches && (patch_out == p.out || fs::path(patch_out).lexically_normal() == fs::path(p.out).lexically_normal()))
    throw_usage("embed: the patch output {} is the embeddings output; give --patch-out another path", patch_out);
  if (!fs::exists(p.model)) throw_input("{}: model file not found", p.model);
  std::vector<EmbedItem> items = list_items(p);
  const Shard shard = parse_shard(p.shard);
  const int64_t n_inputs = static_cast<int64_t>(items.size());
  if (shard.count > 1) {
    std::vector<EmbedItem> mine;
    for (int64_t i : shard_positions(n_inputs, shard, p.shard_block)) mine.push_back(items[static_cast<size_t>(i)]);
    if (mine.empty())
      throw_input("shard {}: no inputs ({} inputs in blocks of {} give fewer than {} blocks; lower --shard-block)",
                  p.shard, n_inputs, p.shard_block, shard.count);
    items = std::move(mine);
  }
  const int64_t N = static_cast<int64_t>(items.size()), B = p.batch, n_batches = (N + B - 1) / B;
  std::vector<std::string> inputs = {p.model};
  if (!p.csv.empty()) inputs.push_back(p.csv);
  // Every output, side files included, is checked before any image is read (an input named like
  // OUT.partial or OUT.skipped.csv would otherwise be destroyed).
  check_output_path(p.out, inputs);
  check_output_path(partial_path(p.out), inputs);
  if (p.skip_bad) check_output_path(skipped_path(p.out), inputs);
  if (p.patches) check_output_path(patch_out, inputs);
  OutputLock lock(p.out);
  const std::vector<std::string> pre_err = precheck_items(items, p.skip_bad);

  nlohmann::json config = {{"command", "embed"},
                           {"model", p.model},
                           {"preprocess", pre},
                           {"batch", p.batch},
                           {"fp16", p.fp16},
                           {"device", device.str()},
                           {"source", p.csv.empty() ? p.images_dir : p.csv},
                           {"image_col", p.csv.empty() ? "" : p.image_col},
                           {"image_root", image_root(p)},
                           {"output", output}};
  if (p.patches) config["patch_embeddings"] = patch_out;
  if (shard.count > 1)
    config["shard"] = {{"index", shard.index}, {"count", shard.count}, {"block", p.shard_block}, {"n_inputs", n_inputs}};
  spdlog::info("embed: {} images, config {}", N, config.dump());
  Encoder enc(p.model, pre, device, p.fp16, output);

  RunCheckpoint ckpt;
  std::vector<BatchResult> done;
  const std::string part = partial_path(p.out);
  const nlohmann::json fingerprint = run_fingerprint(p, pre, output, items, device);
  if (p.resume && !ckpt.resume(part, fingerprint, B, &done)) {
    spdlog::info("{}: no checkpoint, starting from the beginning", part);
    ckpt.start(part, fingerprint);
  } else if (!p.resume) {
    if (fs::exists(part)) spdlog::info("{}: replacing an old checkpoint (use --resume to continue it)", part);
    ckpt.start(part, fingerprint);
  }

  EmbedReport rep;
  rep.out = p.out;
  rep.n_items = N;
  rep.device = device.str();
  OutputRows out{p, pre, items, config, inputs, nullptr, nullptr, 0, 0, {}, {}, {}, 0};
  for (auto& b : done) out.consume(b);
  const int64_t first_batch = static_cast<int64_t>(done.size());
  rep.n_resumed = std::min<int64_t>(N, first_batch * B);
  if (first_batch > 0) spdlog::info("embed: resuming after {} of {} images", rep.n_resumed, N);
  done.clear();

  // On CPU the model competes with the decoders for cores, and decoding is ~10% of the work.
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n_workers = p.workers > 0 ? p.workers : device.is_cuda() ? std::min(hw, 8) : std::max(1, hw / 2);
  Progress prog(progress, "embed", N - rep.n_resumed, "images");
  const auto t0 = std::chrono::steady_clock::now();
  {
    DecodePool pool(items, pre, B, first_batch, n_workers, 3);
    for (int64_t b = first_batch; b < n_batches; ++b) {
      BatchResult res = embed_batch(enc, pool, b, items, pre_err, p, out.dim);
      ckpt.append(res);
      out.consume(res);
      prog.add(pool.batch_size(b));
    }
  }
  prog.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (!out.writer) throw_input("none of the {} images could be embedded; nothing was written", N);
  if (!p.csv.empty()) {
    CsvTable t = read_csv(p.csv);
    for (auto& c : columns_for_ids(t, p.image_col, out.good_ids, p.csv)) out.writer->add_column(c);
  }
  // The skip list is staged and renamed only after the embeddings are in place, so a failure of
  // either leaves both previous outputs as they were.
  StagedOutputs staged;
  if (p.skip_bad) {
    CsvTable t;
    t.path = skipped_path(p.out);
    t.header = {"id", "reason"};
    for (auto& [id, why] : out.skipped) t.rows.push_back({id, why});
    write_csv(staged.stage(t.path, inputs), t, inputs);
    rep.skipped_csv = t.path;
  }
  if (shard.count > 1) {
    // Rows written per block of this shard: merge-embeddings interleaves the parts by them.
    std::vector<int64_t> block_rows;
    for (int64_t i = 0; i < N; ++i) {
      if (i % p.shard_block == 0) block_rows.push_back(0);
      block_rows.back() += out.good[static_cast<size_t>(i)];
    }
    config["shard"]["block_rows"] = block_rows;
    out.writer->set_config(config);
  }
  if (out.patch_writer) out.patch_writer->commit();
  out.writer->commit();
  staged.commit_all();
  ckpt.close();

  rep.skipped = std::move(out.skipped);
  rep.n_rows = static_cast<int64_t>(out.good_ids.size());
  rep.n_skipped = static_cast<int64_t>(rep.skipped.size());
  rep.dim = out.dim;
  rep.patch_out = patch_out;
  rep.grid_h = out.grid_h;
  rep.grid_w = out.grid_w;
  rep.seconds = secs;
  const int64_t n_run = N - rep.n_resumed;
  rep.images_per_s = secs > 0 ? static_cast<double>(n_run) / secs : 0;
  std::error_code ec;
  fs::remove(part, ec);
  return rep;
}

}  // namespace cl::embed
