// Manifest files: detection, parsing with errors that name the field, and writing.
#include "core/manifest.h"
#include "core/json_input.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/atomic_file.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/formats.h"
#include "core/h5.h"

namespace cl {

namespace fs = std::filesystem;

bool is_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  char c = 0;
  while (in.get(c))
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return c == '{';
  return false;
}

Manifest read_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input("{}: cannot open the manifest", path);
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = parse_json(ss.str(), path, "a manifest");
  if (!j.is_object() || j.value("format", std::string()) != kManifestFormat)
    throw_input("{}: 'format' is {}, expected \"{}\"", path, j.is_object() && j.contains("format") ? j["format"].dump() : "missing",
                kManifestFormat);
  if (!j.contains("schema_version") || !j["schema_version"].is_number_integer() || j["schema_version"].get<int64_t>() != 1)
    throw_input("{}: 'schema_version' is {}, expected 1", path, j.contains("schema_version") ? j["schema_version"].dump() : "missing");
  Manifest m;
  m.path = path;
  if (!j.contains("kind") || !j["kind"].is_string() ||
      (j["kind"].get<std::string>() != "embeddings" && j["kind"].get<std::string>() != "activations"))
    throw_input("{}: 'kind' is {}, expected \"embeddings\" or \"activations\"", path,
                j.contains("kind") ? j["kind"].dump() : "missing");
  m.kind = j["kind"].get<std::string>();
  if (!j.contains("files") || !j["files"].is_array() || j["files"].empty())
    throw_input("{}: 'files' must be a non-empty list of file paths", path);
  const fs::path base = fs::path(path).parent_path();
  std::set<std::string> seen;
  for (const auto& f : j["files"]) {
    if (!f.is_string() || f.get<std::string>().empty())
      throw_input("{}: 'files' has {}, expected file paths (strings)", path, f.dump());
    fs::path p = f.get<std::string>();
    if (p.is_relative()) p = base / p;
    const std::string resolved = p.lexically_normal().string();
    if (!seen.insert(resolved).second) throw_input("{}: '{}' is listed twice", path, f.get<std::string>());
    if (is_manifest(resolved)) throw_input("{}: part '{}' is itself a manifest; list its files instead", path, resolved);
    m.files.push_back(resolved);
  }
  return m;
}

std::vector<std::string> manifest_parts(const std::string& path, const std::string& kind) {
  if (!is_manifest(path)) {
    // A .json that is no JSON object would otherwise be reported as "not an HDF5 file".
    if (fs::path(path).extension() == ".json" && fs::is_regular_file(path) && !h5::is_hdf5(path))
      throw_input("{}: not a conceptlab manifest (expected a JSON object {{\"format\": \"{}\", ...}}) nor an HDF5 "
                  "file",
                  path, kManifestFormat);
    return {};
  }
  Manifest m = read_manifest(path);
  if (m.kind != kind) throw_input("{}: a manifest of {}, expected one of {}", path, m.kind, kind);
  return std::move(m.files);
}

void write_manifest(const std::string& path, const std::string& kind, const std::vector<std::string>& files) {
  const fs::path base = fs::absolute(fs::path(path)).parent_path().lexically_normal();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& f : files) {
    const fs::path abs = fs::absolute(f).lexically_normal();
    const fs::path rel = abs.lexically_relative(base);
    const bool below = !rel.empty() && *rel.begin() != "..";
    list.push_back(below ? rel.string() : abs.string());
  }
  nlohmann::json j = {{"format", kManifestFormat}, {"schema_version", 1}, {"kind", kind}, {"files", list}};
  write_file_atomic(path, j.dump(2) + "\n");
}

void check_unique_part_ids(const std::string& name, const std::vector<std::string>& ids,
                           const std::vector<std::string>& files, const std::vector<int64_t>& row0) {
  std::unordered_map<std::string, int64_t> first;  // id -> row
  first.reserve(ids.size() * 2);
  auto part_of = [&](int64_t row) {
    return static_cast<size_t>(std::upper_bound(row0.begin(), row0.end(), row) - row0.begin()) - 1;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    auto [it, fresh] = first.emplace(ids[i], static_cast<int64_t>(i));
    if (fresh) continue;
    const size_t a = part_of(it->second), b = part_of(static_cast<int64_t>(i));
    if (files.size() <= 1 || a == b)
      throw_input("{}: duplicate id '{}' at row {}{}", name, ids[i], i, files.size() <= 1 ? "" : " (in " + files[b] + ")");
    throw_input("{}: duplicate id '{}', in both {} and {}; the parts of one dataset hold distinct ids", name, ids[i],
                files[a], files[b]);
  }
}

std::string dataset_format(const std::string& path) {
  if (is_manifest(path)) return read_manifest(path).kind == "embeddings" ? kEmbeddingsFormat : kActivationsFormat;
  auto f = h5::open_read(path);
  return h5::read_format(f);
}

ManifestSummary create_manifest(const std::string& path, const std::vector<std::string>& files) {
  if (files.empty()) throw_input("{}: a manifest needs at least one file", path);
  for (const auto& f : files)
    if (is_manifest(f))
      throw_input("{}: {} is itself a manifest; list its parts instead (a manifest lists data files)", path, f);
  const std::string format = dataset_format(files.front());
  ManifestSummary s;
  if (format == kEmbeddingsFormat)
    s.kind = "embeddings";
  else if (format == kActivationsFormat)
    s.kind = "activations";
  else
    throw_input("{}: format '{}'; a manifest lists {} or {} files", files.front(), format, kEmbeddingsFormat,
                kActivationsFormat);
  s.n_rows = s.kind == "embeddings" ? EmbeddingsReader(path, files).rows() : ActivationsReader(path, files).rows();
  s.n_parts = static_cast<int64_t>(files.size());
  write_manifest(path, s.kind, files);
  return s;
}

}  // namespace cl
