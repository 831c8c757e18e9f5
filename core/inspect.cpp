// `inspect`: a format-aware summary of any conceptlab file without loading the bulk data.
#include "core/inspect.h"
#include "core/json_input.h"

#include <filesystem>

#include "core/error.h"
#include "core/activations.h"
#include "core/embeddings.h"
#include "core/manifest.h"
#include "core/formats.h"
#include "core/h5.h"

namespace cl {
namespace {

nlohmann::json json_attr(const h5::File& f, const std::string& name) {
  auto s = h5::read_attr_string(f.get(), name);
  if (!s || s->empty()) return nullptr;
  try {
    return parse_json(*s, f.path);
  } catch (const InputError&) {
    return *s;  // shown as the text it is
  }
}

nlohmann::json dataset_info(const h5::File& f, hid_t loc, const std::string& name) {
  if (!h5::exists(loc, name)) return nullptr;
  return {{"shape", h5::dataset_dims(f, loc, name)}, {"dtype", h5::dataset_type_name(f, loc, name)}};
}

}  // namespace

nlohmann::json inspect_file(const std::string& path) {
  if (is_manifest(path)) {
    // Opening it as a dataset checks every part; the summary is the whole dataset's.
    const Manifest m = read_manifest(path);
    nlohmann::json j = {{"path", path}, {"bytes", std::filesystem::file_size(path)}, {"format", kManifestFormat},
                        {"schema_version", 1}, {"kind", m.kind}, {"files", m.files}};
    nlohmann::json ds = nlohmann::json::object();
    if (m.kind == "embeddings") {
      EmbeddingsReader r(path);
      ds["embeddings"] = {{"shape", {r.rows(), r.dim()}}, {"dtype", "float32"}};
      j["config"] = r.config();
    } else {
      ActivationsReader r(path);
      ds["ids"] = {{"shape", {r.rows()}}, {"dtype", "string"}};
      j["n_latents"] = r.n_latents();
      if (r.rows() > 0) j["mean_active_per_row"] = double(r.nnz()) / double(r.rows());
      j["config"] = r.config();
    }
    j["datasets"] = ds;
    return j;
  }
  h5::File f = h5::open_read(path);
  nlohmann::json j;
  j["path"] = path;
  j["bytes"] = std::filesystem::file_size(path);
  std::string format = h5::read_format(f);
  if (format.empty()) throw_input("{}: HDF5 file without a root 'format' attribute (not a conceptlab file)", path);
  j["format"] = format;
  j["schema_version"] = h5::read_attr_int(f.get(), "schema_version").value_or(0);
  j["config"] = json_attr(f, "config");
  nlohmann::json ds = nlohmann::json::object();
  if (format == kEmbeddingsFormat) {
    ds["embeddings"] = dataset_info(f, f.get(), "embeddings");
    ds["ids"] = dataset_info(f, f.get(), "ids");
    if (h5::exists(f.get(), "columns")) {
      h5::Id g = h5::open_group(f, "columns");
      nlohmann::json cols = nlohmann::json::object();
      for (const auto& c : h5::list_children(g)) cols[c] = dataset_info(f, g, c);
      j["columns"] = cols;
    }
  } else if (format == kActivationsFormat) {
    h5::Id g = h5::open_group(f, "activations");
    ds["ids"] = dataset_info(f, f.get(), "ids");
    ds["indptr"] = dataset_info(f, g, "indptr");
    ds["indices"] = dataset_info(f, g, "indices");
    ds["values"] = dataset_info(f, g, "values");
    int64_t n_latents = h5::read_attr_int(g, "n_latents").value_or(0);
    j["n_latents"] = n_latents;
    auto nnz = h5::dataset_dims(f, g, "indices");
    auto rows = h5::dataset_dims(f, f.get(), "ids");
    if (!nnz.empty() && !rows.empty() && rows[0] > 0) j["mean_active_per_row"] = double(nnz[0]) / double(rows[0]);
  } else if (format == kSaeFormat) {
    j["arch"] = h5::read_attr_string(f.get(), "arch").value_or("");
    j["k"] = h5::read_attr_int(f.get(), "k").value_or(0);
    j["threshold"] = h5::read_attr_double(f.get(), "threshold").value_or(0.0);
    j["metrics"] = json_attr(f, "metrics");
    for (auto n : {"W_enc", "b_enc", "W_dec", "b_dec"}) ds[n] = dataset_info(f, f.get(), n);
  } else if (format == kLinearFormat) {
    j["classes"] = json_attr(f, "classes");
    j["features"] = h5::read_attr_string(f.get(), "features").value_or("");
    j["metrics"] = json_attr(f, "metrics");
    ds["weights"] = dataset_info(f, f.get(), "weights");
    ds["bias"] = dataset_info(f, f.get(), "bias");
  } else {
    for (const auto& c : h5::list_children(f.get())) {
      try {
        ds[c] = dataset_info(f, f.get(), c);
      } catch (const InputError&) {
        ds[c] = "group";
      }
    }
  }
  if (h5::exists(f.get(), "patches")) {  // patch embeddings and patch activations (core/patches.h)
    h5::Id g = h5::open_group(f, "patches");
    j["patch_grid"] = {h5::read_attr_int(g, "grid_h").value_or(0), h5::read_attr_int(g, "grid_w").value_or(0)};
    j["patch_images"] = h5::dataset_dims(f, g, "image_ids").at(0);
  }
  j["datasets"] = ds;
  return j;
}

std::string inspect_text(const nlohmann::json& s) {
  std::string out = fmt::format("{}\n  format: {} (schema {})\n  size: {} bytes\n", s["path"].get<std::string>(),
                                s["format"].get<std::string>(), s["schema_version"].get<int64_t>(),
                                s["bytes"].get<int64_t>());
  for (const auto& [name, info] : s["datasets"].items()) {
    if (info.is_object())
      out += fmt::format("  {}: {} {}\n", name, info["dtype"].get<std::string>(), info["shape"].dump());
  }
  for (auto key : {"kind", "files", "n_latents", "mean_active_per_row", "patch_grid", "patch_images", "arch", "k",
                   "threshold", "classes", "features"}) {
    if (s.contains(key) && !s[key].is_null()) out += fmt::format("  {}: {}\n", key, s[key].dump());
  }
  if (s.contains("columns")) {
    out += "  columns:\n";
    for (const auto& [name, info] : s["columns"].items())
      out += fmt::format("    {}: {}\n", name, info["dtype"].get<std::string>());
  }
  if (s.contains("metrics") && !s["metrics"].is_null()) out += fmt::format("  metrics: {}\n", s["metrics"].dump());
  if (!s["config"].is_null()) out += fmt::format("  config: {}\n", s["config"].dump());
  return out;
}

}  // namespace cl
