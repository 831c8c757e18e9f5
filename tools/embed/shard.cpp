// Shard layout and the merge of a sharded export's parts (checks first, then one streaming pass).
#include "tools/embed/shard.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/embeddings.h"
#include "core/error.h"

namespace cl::embed {

Shard parse_shard(const std::string& spec) {
  if (spec.empty()) return {};
  const auto slash = spec.find('/');
  Shard s;
  auto num = [&](std::string_view v, int64_t& out) {
    const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
    return r.ec == std::errc() && r.ptr == v.data() + v.size() && !v.empty();
  };
  const std::string_view sv(spec);
  if (slash == std::string::npos || !num(sv.substr(0, slash), s.index) || !num(sv.substr(slash + 1), s.count) ||
      s.count < 1 || s.index < 0 || s.index >= s.count)
    throw_usage("shard '{}': expected I/N with 0 <= I < N (e.g. 0/4 ... 3/4)", spec);
  return s;
}

std::vector<int64_t> shard_positions(int64_t n_inputs, const Shard& s, int64_t block) {
  CL_ASSERT(block >= 1 && s.count >= 1, "shard layout");
  std::vector<int64_t> pos;
  for (int64_t b = s.index; b * block < n_inputs; b += s.count)
    for (int64_t i = b * block; i < std::min(n_inputs, (b + 1) * block); ++i) pos.push_back(i);
  return pos;
}

namespace {

struct Part {
  std::string path;
  std::unique_ptr<EmbeddingsReader> reader;
  int64_t index = 0, count = 0, block = 0, n_inputs = 0;
  std::vector<int64_t> block_rows;
  nlohmann::json config;  // without "shard"
  std::vector<Column> columns;
  int64_t cursor = 0;
};

Part open_part(const std::string& path) {
  Part p;
  p.path = path;
  p.reader = std::make_unique<EmbeddingsReader>(path);
  p.config = p.reader->config();
  if (!p.config.is_object() || !p.config.contains("shard") || !p.config["shard"].is_object())
    throw_input("{}: not a part of a sharded export (its config has no 'shard'; `embed --shard I/N` writes parts)", path);
  const nlohmann::json sh = p.config["shard"];
  try {
    p.index = sh.at("index").get<int64_t>();
    p.count = sh.at("count").get<int64_t>();
    p.block = sh.at("block").get<int64_t>();
    p.n_inputs = sh.at("n_inputs").get<int64_t>();
    p.block_rows = sh.at("block_rows").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: bad 'shard' in its config ({})", path, e.what());
  }
  if (p.count < 1 || p.index < 0 || p.index >= p.count || p.block < 1 || p.n_inputs < 0)
    throw_input("{}: bad 'shard' in its config: {}", path, sh.dump());
  // The part's blocks and how many rows each can hold; the rows written must add up. Counted,
  // not listed: a crafted n_inputs must not make this allocate.
  const int64_t all_blocks = p.n_inputs / p.block + (p.n_inputs % p.block != 0 ? 1 : 0);
  const int64_t n_blocks = all_blocks > p.index ? (all_blocks - p.index - 1) / p.count + 1 : 0;
  int64_t total = 0;
  bool ok = static_cast<int64_t>(p.block_rows.size()) == n_blocks;
  for (const int64_t rows : p.block_rows) {
    ok = ok && rows >= 0 && rows <= p.block;
    total += std::clamp<int64_t>(rows, 0, p.block);  // clamped: a crafted count must not overflow
  }
  if (!ok || total != p.reader->rows())
    throw_input("{}: 'shard' layout ({} blocks, {} rows) does not match its {} rows, or shard {}/{} of {} inputs in "
                "blocks of {} ({} blocks)",
                path, p.block_rows.size(), total, p.reader->rows(), p.index, p.count, p.n_inputs, p.block, n_blocks);
  p.config.erase("shard");
  p.columns = p.reader->columns();
  return p;
}

void check_same_export(const Part& a, const Part& b) {
  if (a.count != b.count || a.block != b.block || a.n_inputs != b.n_inputs)
    throw_input("{} is shard {}/{} of {} inputs in blocks of {}; {} is shard {}/{} of {} inputs in blocks of {}: not "
                "parts of one export",
                a.path, a.index, a.count, a.n_inputs, a.block, b.path, b.index, b.count, b.n_inputs, b.block);
  std::vector<std::string> keys;
  for (const auto& [k, v] : a.config.items()) keys.push_back(k);
  for (const auto& [k, v] : b.config.items())
    if (!a.config.contains(k)) keys.push_back(k);
  for (const auto& k : keys) {
    const auto va = a.config.value(k, nlohmann::json()), vb = b.config.value(k, nlohmann::json());
    if (va != vb)
      throw_input("{} and {} are not parts of one export: config '{}' is {} in one and {} in the other", a.path, b.path,
                  k, va.dump(), vb.dump());
  }
  if (a.reader->dim() != b.reader->dim())
    throw_input("{}: dim {}; {}: dim {}", a.path, a.reader->dim(), b.path, b.reader->dim());
  std::vector<std::string> ca, cb;
  for (const auto& c : a.columns) ca.push_back(c.name);
  for (const auto& c : b.columns) cb.push_back(c.name);
  if (ca != cb)
    throw_input("{} has columns [{}], {} has [{}]: not parts of one export", a.path, fmt::join(ca, ", "), b.path,
                fmt::join(cb, ", "));
}

}  // namespace

MergeReport merge_embeddings(const std::vector<std::string>& part_paths, const std::string& out_path,
                             ProgressSink& progress) {
  if (part_paths.empty()) throw_usage("merge-embeddings: no parts given");
  std::vector<Part> parts;
  for (const auto& path : part_paths) parts.push_back(open_part(path));
  for (size_t i = 1; i < parts.size(); ++i) check_same_export(parts[0], parts[i]);
  std::sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) { return a.index < b.index; });
  for (size_t i = 1; i < parts.size(); ++i)
    if (parts[i].index == parts[i - 1].index)
      throw_input("{} and {} are both shard {}/{}", parts[i - 1].path, parts[i].path, parts[i].index, parts[i].count);
  const int64_t N = parts[0].count, block = parts[0].block, n_inputs = parts[0].n_inputs;
  if (static_cast<int64_t>(parts.size()) != N) {
    std::vector<int64_t> missing;
    for (int64_t i = 0, q = 0; i < N; ++i)
      if (q < static_cast<int64_t>(parts.size()) && parts[static_cast<size_t>(q)].index == i) ++q;
      else missing.push_back(i);
    throw_input("{}: shard{} {} of {} missing (given {} part{})", parts[0].path, missing.size() == 1 ? "" : "s",
                fmt::join(missing, ", "), N, parts.size(), parts.size() == 1 ? "" : "s");
  }
  std::unordered_map<std::string, size_t> owner;  // id -> part, to name both files of a repeated id
  for (size_t i = 0; i < parts.size(); ++i)
    for (const auto& id : parts[i].reader->ids())
      if (auto [it, fresh] = owner.emplace(id, i); !fresh)
        throw_input("id '{}' is in both {} and {}", id, parts[it->second].path, parts[i].path);

  const int64_t dim = parts[0].reader->dim();
  EmbeddingsWriter w(out_path, dim, parts[0].config, part_paths);
  std::vector<Column> cols;
  for (size_t c = 0; c < parts[0].columns.size(); ++c) {  // same names in the same order (check_same_export)
    Column m;
    m.name = parts[0].columns[c].name;
    m.numeric = std::all_of(parts.begin(), parts.end(), [&](const Part& p) { return p.columns[c].numeric; });
    cols.push_back(std::move(m));
  }
  Progress prog(progress, "merge-embeddings", static_cast<int64_t>(owner.size()), "rows");
  std::vector<float> buf;
  const int64_t n_blocks = (n_inputs + block - 1) / block;
  for (int64_t g = 0; g < n_blocks; ++g) {
    Part& p = parts[static_cast<size_t>(g % N)];
    const int64_t rows = p.block_rows[static_cast<size_t>(g / N)];
    if (rows == 0) continue;
    buf.resize(static_cast<size_t>(rows * dim));
    p.reader->read_rows(p.cursor, rows, buf.data());
    const auto& ids = p.reader->ids();
    w.append(buf.data(), rows, std::vector<std::string>(ids.begin() + p.cursor, ids.begin() + p.cursor + rows));
    for (size_t c = 0; c < cols.size(); ++c) {
      const Column& src = p.columns[c];
      for (int64_t i = p.cursor; i < p.cursor + rows; ++i) {
        if (cols[c].numeric) cols[c].numbers.push_back(src.numbers[static_cast<size_t>(i)]);
        else cols[c].strings.push_back(src.value_string(static_cast<size_t>(i)));
      }
    }
    p.cursor += rows;
    prog.add(rows);
  }
  for (const auto& c : cols) w.add_column(c);
  w.commit();
  return {out_path, N, static_cast<int64_t>(owner.size()), dim, n_inputs};
}

}  // namespace cl::embed
