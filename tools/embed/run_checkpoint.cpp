// OUT.partial records: batch encoding, checksummed records, resume with torn-tail repair.
#include "tools/embed/run_checkpoint.h"
#include "core/json_input.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/error.h"

namespace fs = std::filesystem;

namespace cl::embed {

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  auto* b = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

namespace {

constexpr char kPartMagic[8] = {'C', 'L', 'P', 'A', 'R', 'T', '1', '\n'};
constexpr uint32_t kRecMagic = 0x43505254;

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
  if (b.grid_h > 0) {  // a trailing patch section; batches without one end here
    put<uint32_t>(s, static_cast<uint32_t>(b.grid_h));
    put<uint32_t>(s, static_cast<uint32_t>(b.grid_w));
    s.append(reinterpret_cast<const char*>(b.sizes.data()), b.sizes.size() * sizeof(int32_t));
    s.append(reinterpret_cast<const char*>(b.patches.data()), b.patches.size() * sizeof(float));
  }
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
  if (pos + bytes > s.size()) return false;
  b->rows.resize(static_cast<size_t>(n_ok) * dim);
  std::memcpy(b->rows.data(), s.data() + pos, bytes);
  pos += bytes;
  if (pos == s.size()) return true;
  uint32_t gh = 0, gw = 0;
  if (!get(s, pos, &gh) || !get(s, pos, &gw) || gh == 0 || gw == 0) return false;
  b->grid_h = gh;
  b->grid_w = gw;
  const size_t size_bytes = static_cast<size_t>(n_ok) * 2 * sizeof(int32_t);
  const size_t patch_bytes = static_cast<size_t>(n_ok) * gh * gw * dim * sizeof(float);
  if (pos + size_bytes + patch_bytes != s.size()) return false;
  b->sizes.resize(static_cast<size_t>(n_ok) * 2);
  std::memcpy(b->sizes.data(), s.data() + pos, size_bytes);
  b->patches.resize(static_cast<size_t>(n_ok) * gh * gw * dim);
  std::memcpy(b->patches.data(), s.data() + pos + size_bytes, patch_bytes);
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

}  // namespace

void RunCheckpoint::start(const std::string& path, const nlohmann::json& header) {
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

bool RunCheckpoint::resume(const std::string& path, const nlohmann::json& header, int64_t batch,
                           std::vector<BatchResult>* done) {
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
      nlohmann::json found;
      try {
        found = parse_json(payload, path);
      } catch (const InputError&) {
        found = nullptr;  // reported below as a different run
      }
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

void RunCheckpoint::append(const BatchResult& b) {
  std::string rec = encode_record(1, encode_batch(b));
  if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size() || std::fflush(f_) != 0)
    throw_input("{}: cannot append to checkpoint (disk full?)", path_);
}

void RunCheckpoint::close() {
  if (f_) std::fclose(f_);
  f_ = nullptr;
}

RunCheckpoint::~RunCheckpoint() { close(); }

void RunCheckpoint::open_append() {
  close();
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) throw_input("{}: cannot open checkpoint for appending", path_);
}

}  // namespace cl::embed
