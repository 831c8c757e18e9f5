// Shared by the `conceptlab explain ...` and `intervene` commands: the subcommand setups, default
// file names beside an activations file, names lookup, and where the images of a file live.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "core/latent_names.h"
#include "tools/command.h"
#include "tools/commands/flags.h"

namespace cl::cli {

Runner setup_explain_stats(CLI::App* s);
Runner setup_explain_retrieve(CLI::App* s);
Runner setup_explain_match(CLI::App* s);
Runner setup_explain_name(CLI::App* s);
Runner setup_explain_global(CLI::App* s);
Runner setup_explain_local(CLI::App* s);
Runner setup_explain_curve(CLI::App* s);
Runner setup_explain_heatmap(CLI::App* s);
Runner setup_explain_localize(CLI::App* s);

// A.h5 -> A.index.h5 / A.names.h5 (beside the activations).
std::string default_index_path(const std::string& activations_path);
std::string default_names_path(const std::string& activations_path);

// The names file given, else the default one beside the activations when it exists, else none.
LatentNames load_names(const std::string& names_path, const std::string& activations_path);
// "12" or "12 (hair)".
std::string latent_label(const LatentNames& names, int64_t latent);

// The folder image ids are relative to: the override, else `image_root` in the config of the
// embeddings file the activations were encoded from ("" when unknown).
std::string image_root_for(const std::string& activations_path, const std::string& override_root);
// Decoded image (BGR) or an empty Mat when it cannot be read.
cv::Mat load_image(const std::string& root, const std::string& id);

// Comma list of integers ("3,17,42"); UsageError naming the flag on anything else.
std::vector<int64_t> parse_latent_list(const std::string& flag, const std::string& text);

}  // namespace cl::cli
