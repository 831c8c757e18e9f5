// Helpers shared by the explain commands (paths, names, images).
#include "tools/commands/explain_common.h"

#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/parse.h"

namespace fs = std::filesystem;

namespace cl::cli {

namespace {
std::string beside(const std::string& path, const std::string& suffix) {
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}
}  // namespace

std::string default_index_path(const std::string& a) { return beside(a, ".index.h5"); }
std::string default_names_path(const std::string& a) { return beside(a, ".names.h5"); }

LatentNames load_names(const std::string& names_path, const std::string& activations_path) {
  if (!names_path.empty()) return read_latent_names(names_path);
  const std::string d = activations_path.empty() ? "" : default_names_path(activations_path);
  if (!d.empty() && fs::exists(d)) return read_latent_names(d);
  return {};
}

std::string latent_label(const LatentNames& names, int64_t latent) {
  const LatentName* n = names.find(latent);
  return n ? fmt::format("{} ({})", latent, n->name) : std::to_string(latent);
}

std::string image_root_for(const std::string& activations_path, const std::string& override_root) {
  if (!override_root.empty()) return override_root;
  try {
    const nlohmann::json c = ActivationsReader(activations_path).config();
    std::string emb = c.value("embeddings", std::string());
    if (emb.empty()) emb = c.value("patch_embeddings", std::string());  // patch activations
    if (emb.empty() || !fs::exists(emb)) return "";
    return EmbeddingsReader(emb).config().value("image_root", std::string());
  } catch (const InputError&) {
    return "";
  }
}

cv::Mat load_image(const std::string& root, const std::string& id) {
  if (root.empty()) return {};
  return cv::imread((fs::path(root) / id).string(), cv::IMREAD_COLOR);
}

std::vector<int64_t> parse_latent_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find(',', start);
    const std::string item = trim_copy(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    double v;
    if (!parse_number(item, v) || v != std::floor(v) || v < 0)
      throw_usage("{} '{}': expected latent indices like 3,17,42", flag, text);
    out.push_back(static_cast<int64_t>(v));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace cl::cli
