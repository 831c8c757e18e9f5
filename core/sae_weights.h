// The SAE weights format ("conceptlab.sae", schema 1): `W_enc` float32 [D, n_latents],
// `b_enc` [n_latents], `W_dec` [n_latents, D], `b_dec` [D]; attributes `arch`
// ("relu-l1" | "topk" | "batchtopk" | "matryoshka-topk" | "matryoshka-batchtopk"), `k`,
// `threshold`, `config` and `metrics` (JSON); matryoshka SAEs also have `prefixes` int64 [P]
// (nested dictionary sizes, ascending, n_latents last: latents [0, m) alone reconstruct).
// Meaning: z = act((x - b_dec) W_enc + b_enc), x_hat = z W_dec + b_dec.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

namespace cl {

// The architectures' names, the one table: sae::Arch follows its order (a static_assert checks),
// and parsing, printing, --help and the file's `arch` attribute use it.
inline constexpr std::array<const char*, 5> kSaeArchNames = {"relu-l1", "topk", "batchtopk", "matryoshka-topk",
                                                             "matryoshka-batchtopk"};

struct SaeWeights {
  std::string arch = "relu-l1";
  int64_t d_in = 0, n_latents = 0;
  std::vector<float> W_enc;  // [d_in, n_latents] row-major
  std::vector<float> b_enc;  // [n_latents]
  std::vector<float> W_dec;  // [n_latents, d_in] row-major
  std::vector<float> b_dec;  // [d_in]
  int64_t k = 0;             // topk / batchtopk
  double threshold = 0.0;    // batchtopk inference threshold
  std::vector<int64_t> prefixes;  // matryoshka-*: nested sizes, ascending, n_latents last
  nlohmann::json config = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();
};

void write_sae(const std::string& path, const SaeWeights& w, const std::vector<std::string>& inputs = {});
SaeWeights read_sae(const std::string& path);
// The file's arch, k, threshold, shapes (d_in, n_latents), prefixes, config and metrics, every
// shape checked as read_sae checks it, without reading the weights (W_enc ... stay empty).
SaeWeights read_sae_header(const std::string& path);

// True for the architectures the file format knows; top-k family = every one but relu-l1.
bool is_known_sae_arch(const std::string& arch);
bool is_matryoshka_arch(const std::string& arch);
// Nested sizes must be strictly ascending and >= 1 (in the config, on the command line and in a
// file): empty when they are, else what is wrong ("3 after 4"), for the caller's message.
std::string nested_sizes_problem(const std::vector<int64_t>& sizes);

}  // namespace cl
