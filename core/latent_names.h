// Latent names ("conceptlab.names", schema 1): which latent is called what, where the name came
// from (annotation: matched to an annotated column; direction: nearest concept vector of its
// decoder row; user: typed by a person) and the score behind it. The CLI writes them from
// `explain match` / `explain name`, the viewer from renames; both read them.
// Layout: datasets `latent` int64 [M], `name` string [M], `origin` string [M], `score` float64
// [M] (NaN for user names); root attributes format, schema_version, config (JSON provenance).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

namespace cl {

struct LatentName {
  int64_t latent = -1;
  std::string name;
  std::string origin;  // "annotation" | "direction" | "user"
  double score = 0;    // AUROC or cosine; NaN for user names
};

struct LatentNames {
  std::vector<LatentName> names;  // at most one per latent, ascending latent
  nlohmann::json config = nlohmann::json::object();
  // The name of a latent, or nullptr.
  const LatentName* find(int64_t latent) const;
  // Latents whose name equals `name` (case-insensitive), best score first.
  std::vector<int64_t> latents_named(const std::string& name) const;
  // Adds or replaces the name of a latent (keeps the list sorted by latent).
  void set(const LatentName& n);
};

void write_latent_names(const std::string& path, const LatentNames& n, const std::vector<std::string>& inputs = {});
LatentNames read_latent_names(const std::string& path);

}  // namespace cl
