// Embedding export: item listing, a bounded decode pipeline on worker threads, TorchScript
// inference, an append-only checkpoint (OUT.partial) and the final atomic write.
#include "tools/embed/embed.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/progress.h"

namespace fs = std::filesystem;

namespace cl::embed {

nlohmann::json to_json(const EmbedReport& r) {
  nlohmann::json skipped = nlohmann::json::array();
  for (auto& [id, why] : r.skipped) skipped.push_back({{"id", id}, {"reason", why}});
  return {{"out", r.out},       {"skipped_csv", r.skipped_csv}, {"n_items", r.n_items},
          {"n_rows", r.n_rows}, {"n_skipped", r.n_skipped},     {"n_resumed", r.n_resumed},
          {"dim", r.dim},       {"seconds", r.seconds},         {"images_per_s", r.images_per_s},
          {"device", r.device}, {"skipped", skipped}};
}

std::string partial_path(const std::string& out) { return out + ".partial"; }
std::string skipped_path(const std::string& out) { return out + ".skipped.csv"; }

bool is_image_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::set<std::string> kExt = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"};
  return kExt.count(ext) > 0;
}

std::vector<EmbedItem> list_items(const EmbedParams& p) {
  if (p.csv.empty() == p.images_dir.empty()) throw_usage("embed: give exactly one of --csv or --images");
  std::vector<EmbedItem> items;
  if (!p.csv.empty()) {
    CsvTable t = read_csv(p.csv);
    t.col(p.image_col);          // throws naming the columns available
    index_by(t, p.image_col);    // throws on duplicate or empty ids
    fs::path root = p.image_root.empty() ? fs::path(p.csv).parent_path() : fs::path(p.image_root);
    for (auto& id : t.column(p.image_col)) items.push_back({id, (root / id).string()});
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

namespace {

// ---------------------------------------------------------------------------------------------
// Checkpoint: "CLPART1\n" then records [u32 magic][u8 type][u64 len][payload][u64 fnv1a(payload)].
// Type 0 = header (fingerprint JSON), type 1 = one finished batch. A torn trailing record
// (killed mid-write) fails its length or checksum and is cut off on resume.

constexpr char kPartMagic[8] = {'C', 'L', 'P', 'A', 'R', 'T', '1', '\n'};
constexpr uint32_t kRecMagic = 0x43505254;

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  auto* b = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
bool get(const std::string& s, size_t& pos, T* v) {
  if (pos + sizeof(T) > s.size()) return false;
  std::memcpy(v, s.data() + pos, sizeof(T));
  pos += sizeof(T);
  return true;
}

struct BatchResult {
  int64_t first = 0;                 // index of the batch's first item
  std::vector<uint8_t> ok;           // per item of the batch
  std::vector<std::string> reasons;  // per item, "" when ok
  int64_t dim = 0;
  std::vector<float> rows;           // [n_ok, dim]
};

std::string encode_batch(const BatchResult& b) {
  std::string s;
  put<int64_t>(s, b.first);
  put<uint32_t>(s, static_cast<uint32_t>(b.ok.size()));
  put<uint32_t>(s, static_cast<uint32_t>(b.dim));
  for (size_t i = 0; i < b.ok.size(); ++i) {
    put<uint8_t>(s, b.ok[i]);
    if (!b.ok[i]) {
      put<uint32_t>(s, static_cast<uint32_t>(b.reasons[i].size()));
      s += b.reasons[i];
    }
  }
  s.append(reinterpret_cast<const char*>(b.rows.data()), b.rows.size() * sizeof(float));
  return s;
}

bool decode_batch(const std::string& s, BatchResult* b) {
  size_t pos = 0;
  uint32_t n = 0, dim = 0;
  if (!get(s, pos, &b->first) || !get(s, pos, &n) || !get(s, pos, &dim)) return false;
  b->dim = dim;
  b->ok.assign(n, 0);
  b->reasons.assign(n, "");
  int64_t n_ok = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (!get(s, pos, &b->ok[i])) return false;
    if (b->ok[i]) {
      ++n_ok;
    } else {
      uint32_t len = 0;
      if (!get(s, pos, &len) || pos + len > s.size()) return false;
      b->reasons[i] = s.substr(pos, len);
      pos += len;
    }
  }
  const size_t bytes = static_cast<size_t>(n_ok) * dim * sizeof(float);
  if (pos + bytes != s.size()) return false;
  b->rows.resize(static_cast<size_t>(n_ok) * dim);
  std::memcpy(b->rows.data(), s.data() + pos, bytes);
  return true;
}

std::string encode_record(uint8_t type, const std::string& payload) {
  std::string r;
  put<uint32_t>(r, kRecMagic);
  put<uint8_t>(r, type);
  put<uint64_t>(r, payload.size());
  r += payload;
  put<uint64_t>(r, fnv1a(payload.data(), payload.size()));
  return r;
}

class Checkpoint {
 public:
  // Starts a fresh checkpoint (atomically replaces any old one).
  void start(const std::string& path, const nlohmann::json& header) {
    path_ = path;
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw_input("{}: cannot write checkpoint", tmp);
      out.write(kPartMagic, 8);
      std::string rec = encode_record(0, header.dump());
      out.write(rec.data(), static_cast<std::streamsize>(rec.size()));
      if (!out) throw_input("{}: cannot write checkpoint", tmp);
    }
    fs::rename(tmp, path);
    open_append();
  }

  // Loads the finished batches of a matching checkpoint, cuts off any torn tail and reopens
  // for appending. Returns false when there is no checkpoint file.
  bool resume(const std::string& path, const nlohmann::json& header, int64_t batch, std::vector<BatchResult>* done) {
    path_ = path;
    if (!fs::exists(path)) return false;
    std::string data;
    {
      std::ifstream in(path, std::ios::binary);
      data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (data.size() < 8 || std::memcmp(data.data(), kPartMagic, 8) != 0)
      throw_input("{}: not a conceptlab checkpoint; delete it or run without --resume", path);
    size_t pos = 8, good_end = 8;
    bool have_header = false;
    while (pos < data.size()) {
      uint32_t magic = 0;
      uint8_t type = 0;
      uint64_t len = 0, sum = 0;
      size_t p = pos;
      if (!get(data, p, &magic) || magic != kRecMagic || !get(data, p, &type) || !get(data, p, &len)) break;
      if (len > data.size() || p + len + 8 > data.size()) break;
      std::string payload = data.substr(p, len);
      p += len;
      get(data, p, &sum);
      if (sum != fnv1a(payload.data(), payload.size())) break;
      if (!have_header) {
        if (type != 0) break;
        nlohmann::json found = nlohmann::json::parse(payload, nullptr, false);
        if (found != header) {
          std::string diff;
          for (auto& [k, v] : header.items())
            if (!found.contains(k) || found[k] != v) diff += (diff.empty() ? "" : ", ") + k;
          throw_input("{}: checkpoint was made by a different run (differs in: {}); delete it or run without --resume",
                      path, diff.empty() ? "format" : diff);
        }
        have_header = true;
      } else {
        BatchResult b;
        if (type != 1 || !decode_batch(payload, &b)) break;
        if (b.first != static_cast<int64_t>(done->size()) * batch) break;
        done->push_back(std::move(b));
      }
      pos = p;
      good_end = p;
    }
    if (!have_header) {
      spdlog::warn("{}: checkpoint has no readable header; starting over", path);
      start(path, header);
      return true;
    }
    if (good_end < data.size())
      spdlog::warn("{}: dropping {} bytes of an unfinished checkpoint record", path, data.size() - good_end);
    fs::resize_file(path, good_end);
    open_append();
    return true;
  }

  void append(const BatchResult& b) {
    std::string rec = encode_record(1, encode_batch(b));
    if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size() || std::fflush(f_) != 0)
      throw_input("{}: cannot append to checkpoint (disk full?)", path_);
  }

  void close() {
    if (f_) std::fclose(f_);
    f_ = nullptr;
  }
  ~Checkpoint() { close(); }

 private:
  void open_append() {
    close();
    f_ = std::fopen(path_.c_str(), "ab");
    if (!f_) throw_input("{}: cannot open checkpoint for appending", path_);
  }
  std::string path_;
  std::FILE* f_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Decode pipeline: workers claim single items in order, but never more than `depth` batches
// ahead of the batch the model is consuming, and fill that batch's slot.

class Pipeline {
 public:
  Pipeline(const std::vector<EmbedItem>& items, const PreprocessParams& pre, int64_t batch, int64_t first_batch,
           int n_workers, int depth)
      : items_(items), pre_(pre), batch_(batch), depth_(depth), consumed_(first_batch),
        next_item_(first_batch * batch) {
    chw_ = 3 * static_cast<int64_t>(pre.image_size) * pre.image_size;
    slots_.resize(depth);
    for (auto& s : slots_) {
      s.data.resize(static_cast<size_t>(batch * chw_));
      s.err.assign(batch, "");
    }
    for (int i = 0; i < n_workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Pipeline() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : threads_) t.join();
  }

  struct Slot {
    std::vector<float> data;        // [batch, 3, S, S]
    std::vector<std::string> err;   // per item
    int64_t done = 0;
  };

  // Waits until batch b (the next to consume) is fully preprocessed.
  Slot& wait(int64_t b) {
    std::unique_lock<std::mutex> lk(m_);
    Slot& s = slots_[b % depth_];
    const int64_t n = batch_size(b);
    cv_done_.wait(lk, [&] { return s.done == n; });
    return s;
  }
  // The model is done with batch b: its slot may be refilled.
  void release(int64_t b) {
    {
      std::lock_guard<std::mutex> lk(m_);
      Slot& s = slots_[b % depth_];
      s.done = 0;
      std::fill(s.err.begin(), s.err.end(), "");
      consumed_ = b + 1;
    }
    cv_work_.notify_all();
  }
  int64_t batch_size(int64_t b) const {
    return std::min<int64_t>(batch_, static_cast<int64_t>(items_.size()) - b * batch_);
  }

 private:
  void work() {
    for (;;) {
      int64_t i;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_work_.wait(lk, [&] {
          return stop_ || next_item_ >= static_cast<int64_t>(items_.size()) || next_item_ / batch_ < consumed_ + depth_;
        });
        if (stop_ || next_item_ >= static_cast<int64_t>(items_.size())) return;
        i = next_item_++;
      }
      const int64_t b = i / batch_, j = i - b * batch_;
      Slot& s = slots_[b % depth_];
      std::string err;
      try {
        err = preprocess_file(items_[i].path, pre_, s.data.data() + j * chw_);
      } catch (const std::exception& e) {
        err = std::string("preprocessing failed: ") + e.what();
      }
      {
        std::lock_guard<std::mutex> lk(m_);
        s.err[j] = err;
        if (++s.done == batch_size(b)) cv_done_.notify_all();
      }
    }
  }

  const std::vector<EmbedItem>& items_;
  const PreprocessParams pre_;
  const int64_t batch_;
  const int depth_;
  int64_t chw_ = 0;
  std::vector<Slot> slots_;
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  bool stop_ = false;
  int64_t consumed_, next_item_;
  std::vector<std::thread> threads_;
};

std::string list_bad(const std::vector<std::pair<std::string, std::string>>& bad,
                     const std::vector<EmbedItem>& items_for_paths) {
  std::string s;
  const size_t show = std::min<size_t>(bad.size(), 10);
  for (size_t i = 0; i < show; ++i) s += fmt::format("\n  {}: {}", bad[i].first, bad[i].second);
  if (bad.size() > show) s += fmt::format("\n  ... and {} more", bad.size() - show);
  return s;
}

std::string shape_string(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

int64_t file_mtime(const std::string& path) {
  std::error_code ec;
  auto t = fs::last_write_time(path, ec);
  return ec ? 0 : static_cast<int64_t>(t.time_since_epoch().count());
}

}  // namespace

EmbedReport embed_images(const EmbedParams& p, const PreprocessParams& pre, torch::Device device) {
  if (p.out.empty()) throw_usage("embed: --out is required");
  if (p.model.empty()) throw_usage("embed: --model is required");
  if (p.batch < 1) throw_usage("embed: --batch {}: expected >= 1", p.batch);
  if (p.fp16 && !device.is_cuda()) throw_usage("embed: --fp16 needs a CUDA device (got {})", device.str());
  validate(pre, "preprocessing");
  if (!fs::exists(p.model)) throw_input("{}: model file not found", p.model);

  const std::vector<EmbedItem> items = list_items(p);
  const int64_t N = static_cast<int64_t>(items.size()), B = p.batch;
  const int64_t n_batches = (N + B - 1) / B;
  std::vector<std::string> inputs = {p.model};
  if (!p.csv.empty()) inputs.push_back(p.csv);
  check_not_input(p.out, inputs);
  if (!fs::exists(fs::absolute(p.out).parent_path())) throw_input("{}: output folder does not exist", p.out);

  // Cheap checks of every file first, so a bad set fails before any model work.
  std::vector<std::string> pre_err(static_cast<size_t>(N));
  std::vector<std::pair<std::string, std::string>> bad;
  for (int64_t i = 0; i < N; ++i) {
    pre_err[i] = precheck_image(items[i].path);
    if (!pre_err[i].empty()) bad.emplace_back(items[i].id, pre_err[i] + " (" + items[i].path + ")");
  }
  if (!bad.empty() && !p.skip_bad)
    throw_input("{} of {} images are unusable; nothing was written (use --skip-bad to embed the rest):{}",
                bad.size(), N, list_bad(bad, items));

  nlohmann::json config = {{"command", "embed"},
                           {"model", p.model},
                           {"preprocess", pre},
                           {"batch", p.batch},
                           {"fp16", p.fp16},
                           {"device", device.str()},
                           {"source", p.csv.empty() ? p.images_dir : p.csv},
                           {"image_col", p.csv.empty() ? "" : p.image_col}};
  spdlog::info("embed: {} images, config {}", N, config.dump());

  // Identity of the run for resuming: same items, model file, preprocessing, batching, device.
  std::string id_blob;
  for (auto& it : items) id_blob += it.id + '\0' + it.path + '\0';
  nlohmann::json fingerprint = {{"n_items", N},
                                {"items_fnv", fmt::format("{:016x}", fnv1a(id_blob.data(), id_blob.size()))},
                                {"model_bytes", static_cast<int64_t>(fs::file_size(p.model))},
                                {"model_mtime", file_mtime(p.model)},
                                {"preprocess", pre},
                                {"batch", p.batch},
                                {"fp16", p.fp16},
                                {"device", device.str()}};

  torch::jit::script::Module module;
  try {
    module = torch::jit::load(p.model, device);
  } catch (const c10::Error& e) {
    std::string what = e.what();
    throw_input("{}: cannot load TorchScript module ({})", p.model, what.substr(0, what.find('\n')));
  }
  module.eval();
  if (p.fp16) module.to(torch::kHalf);

  Checkpoint ckpt;
  std::vector<BatchResult> done;
  const std::string part = partial_path(p.out);
  if (p.resume) {
    if (!ckpt.resume(part, fingerprint, B, &done)) {
      spdlog::info("{}: no checkpoint, starting from the beginning", part);
      ckpt.start(part, fingerprint);
    }
  } else {
    if (fs::exists(part)) spdlog::info("{}: replacing an old checkpoint (use --resume to continue it)", part);
    ckpt.start(part, fingerprint);
  }

  EmbedReport rep;
  rep.out = p.out;
  rep.n_items = N;
  rep.device = device.str();
  std::unique_ptr<EmbeddingsWriter> writer;
  std::vector<std::string> good_ids;
  int64_t dim = 0;
  auto consume = [&](const BatchResult& b) {
    std::vector<std::string> ids;
    for (size_t j = 0; j < b.ok.size(); ++j) {
      const auto& it = items[static_cast<size_t>(b.first) + j];
      if (b.ok[j]) ids.push_back(it.id);
      else rep.skipped.emplace_back(it.id, b.reasons[j]);
    }
    if (ids.empty()) return;
    if (!writer) {
      dim = b.dim;
      writer = std::make_unique<EmbeddingsWriter>(p.out, dim, config, inputs);
    }
    CL_ASSERT(b.dim == dim, "checkpoint batches disagree on dim");
    writer->append(b.rows.data(), static_cast<int64_t>(ids.size()), ids);
    good_ids.insert(good_ids.end(), ids.begin(), ids.end());
  };
  for (auto& b : done) consume(b);
  const int64_t first_batch = static_cast<int64_t>(done.size());
  rep.n_resumed = std::min<int64_t>(N, first_batch * B);
  if (first_batch > 0) spdlog::info("embed: resuming after {} of {} images", rep.n_resumed, N);
  done.clear();

  // On CPU the model competes with the decoders for cores, and decoding is ~10% of the work.
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n_workers = p.workers > 0 ? p.workers : device.is_cuda() ? std::min(hw, 8) : std::max(1, hw / 2);
  const int64_t S = pre.image_size;
  Progress prog("embed", N - rep.n_resumed, false, "images");
  const auto t0 = std::chrono::steady_clock::now();
  {
    Pipeline pipe(items, pre, B, first_batch, n_workers, 3);
    torch::NoGradGuard no_grad;
    for (int64_t b = first_batch; b < n_batches; ++b) {
      Pipeline::Slot& slot = pipe.wait(b);
      const int64_t nb = pipe.batch_size(b);
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
                    batch_bad.size(), list_bad(batch_bad, items));
      if (!good.empty()) {
        torch::Tensor x = torch::from_blob(slot.data.data(), {nb, 3, S, S}, torch::kFloat);
        if (static_cast<int64_t>(good.size()) != nb) x = x.index_select(0, torch::tensor(good, torch::kLong));
        x = x.to(device);
        if (p.fp16) x = x.to(torch::kHalf);
        torch::jit::IValue outv;
        try {
          outv = module.forward({x});
        } catch (const c10::Error& e) {
          std::string what = e.what();
          throw_input("{}: model failed on input [{}, 3, {}, {}] ({})", p.model, good.size(), S, S,
                      what.substr(0, what.find('\n')));
        }
        if (!outv.isTensor()) throw_input("{}: model returned {}, expected a [B, D] tensor", p.model, outv.tagKind());
        torch::Tensor y = outv.toTensor().to(torch::kCPU).to(torch::kFloat).contiguous();
        if (y.dim() != 2 || y.size(0) != static_cast<int64_t>(good.size()))
          throw_input("{}: model output shape {}, expected [{}, D]", p.model, shape_string(y), good.size());
        if (!torch::isfinite(y).all().item<bool>())
          throw_input("{}: model produced NaN/Inf for a batch starting at id {}", p.model, items[b * B].id);
        res.dim = y.size(1);
        if (dim != 0 && res.dim != dim) throw_input("{}: model output dim changed from {} to {}", p.model, dim, res.dim);
        res.rows.assign(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
      } else {
        res.dim = dim;
      }
      pipe.release(b);
      ckpt.append(res);
      consume(res);
      prog.add(nb);
      if (p.stop_after_rows > 0 && (b + 1) * B >= p.stop_after_rows && b + 1 < n_batches) {
        spdlog::warn("embed: stopping after {} images (--stop-after-rows test hook)", (b + 1) * B);
        std::fflush(nullptr);
        std::_Exit(75);
      }
    }
  }
  prog.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (!writer) throw_input("none of the {} images could be embedded; nothing was written", N);
  if (!p.csv.empty()) {
    CsvTable t = read_csv(p.csv);
    for (auto& c : columns_for_ids(t, p.image_col, good_ids, p.csv)) writer->add_column(c);
  }
  writer->commit();
  ckpt.close();

  rep.n_rows = static_cast<int64_t>(good_ids.size());
  rep.n_skipped = static_cast<int64_t>(rep.skipped.size());
  rep.dim = dim;
  rep.seconds = secs;
  const int64_t n_run = N - rep.n_resumed;
  rep.images_per_s = secs > 0 ? static_cast<double>(n_run) / secs : 0;
  if (p.skip_bad) {
    CsvTable t;
    t.path = skipped_path(p.out);
    t.header = {"id", "reason"};
    for (auto& [id, why] : rep.skipped) t.rows.push_back({id, why});
    write_csv(t.path, t, inputs);
    rep.skipped_csv = t.path;
  }
  std::error_code ec;
  fs::remove(part, ec);
  return rep;
}

}  // namespace cl::embed
