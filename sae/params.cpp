// Validation of the SAE parameter structs (ranges checked before any work starts).
#include <cmath>

#include "core/error.h"
#include "core/patches.h"
#include "sae/sae.h"
#include "sae/tensors.h"

namespace cl::sae {

int64_t latent_count(const TrainParams& p, int64_t d_in) { return p.n_latents > 0 ? p.n_latents : p.expansion * d_in; }

std::vector<int64_t> nested_sizes(const TrainParams& p, int64_t n) {
  if (!is_matryoshka(parse_arch(p.arch))) return {};
  std::vector<int64_t> sizes;
  if (p.prefixes.empty()) {
    for (int64_t m = 16; m < n; m *= 4) sizes.push_back(m);
  } else {
    for (size_t i = 0; i < p.prefixes.size(); ++i) {
      const int64_t m = p.prefixes[i];
      const bool last = i + 1 == p.prefixes.size();
      if (m > n || (m == n && !last)) throw_usage("prefixes: size {} is not below n_latents {}", m, n);
      if (m < n) sizes.push_back(m);  // the full size, implied last, may also be given
    }
  }
  sizes.push_back(n);
  return sizes;
}

void validate(const TrainParams& p) {
  const Arch arch = parse_arch(p.arch);
  if (!is_matryoshka(arch) && !p.prefixes.empty())
    throw_usage("prefixes: nested sizes are for matryoshka-topk and matryoshka-batchtopk, not arch {}", p.arch);
  if (auto why = nested_sizes_problem(p.prefixes); !why.empty()) throw_usage("prefixes: {}", why);
  if (p.n_latents > 0) nested_sizes(p, p.n_latents);  // sizes beyond n_latents
  if (p.expansion < 1 && p.n_latents < 1) throw_usage("expansion {}: expected >= 1", p.expansion);
  if (p.n_latents < 0) throw_usage("n_latents {}: expected >= 0 (0 = expansion * D)", p.n_latents);
  if (p.arch != "relu-l1" && p.k < 1) throw_usage("k {}: expected >= 1", p.k);
  if (p.arch != "relu-l1" && p.n_latents > 0 && p.k > p.n_latents)
    throw_usage("k {}: expected <= n_latents {}", p.k, p.n_latents);
  if (p.batch < 1) throw_usage("batch {}: expected >= 1", p.batch);
  if (p.epochs < 0 || p.epochs > 1000000000) throw_usage("epochs {}: expected 0..1000000000", p.epochs);
  if (!(p.lr > 0) || !std::isfinite(p.lr)) throw_usage("lr {}: expected a finite value > 0", p.lr);
  if (!(p.l1 >= 0) || !std::isfinite(p.l1)) throw_usage("l1 {}: expected a finite value >= 0", p.l1);
  if (!(p.adam_beta1 >= 0 && p.adam_beta1 < 1)) throw_usage("adam_beta1 {}: expected a value in [0, 1)", p.adam_beta1);
  if (!(p.adam_beta2 >= 0 && p.adam_beta2 < 1)) throw_usage("adam_beta2 {}: expected a value in [0, 1)", p.adam_beta2);
  if (!(p.adam_eps > 0)) throw_usage("adam_eps {}: expected > 0", p.adam_eps);
  if (p.lr_warmup_steps < 0) throw_usage("lr_warmup_steps {}: expected >= 0", p.lr_warmup_steps);
  if (p.l1_warmup_steps < 0) throw_usage("l1_warmup_steps {}: expected >= 0", p.l1_warmup_steps);
  if (!(p.grad_clip >= 0) || !std::isfinite(p.grad_clip)) throw_usage("grad_clip {}: expected >= 0", p.grad_clip);
  if (p.resample_every < 0) throw_usage("resample_every {}: expected >= 0", p.resample_every);
  if (p.aux_k < 0) throw_usage("aux_k {}: expected >= 0", p.aux_k);
  if (!(p.aux_alpha >= 0) || !std::isfinite(p.aux_alpha)) throw_usage("aux_alpha {}: expected >= 0", p.aux_alpha);
  if (p.pre_bias_init != "geometric_median" && p.pre_bias_init != "mean" && p.pre_bias_init != "zero")
    throw_usage("pre_bias_init '{}': expected geometric_median, mean or zero", p.pre_bias_init);
  if (p.pre_bias_sample < 1) throw_usage("pre_bias_sample {}: expected >= 1", p.pre_bias_sample);
  if (p.encoder_init != "auto" && p.encoder_init != "transpose" && p.encoder_init != "kaiming")
    throw_usage("encoder_init '{}': expected auto, transpose or kaiming", p.encoder_init);
  if (!(p.threshold_momentum >= 0 && p.threshold_momentum < 1))
    throw_usage("threshold_momentum {}: expected a value in [0, 1)", p.threshold_momentum);
  if (!(p.memory_gb > 0) || !std::isfinite(p.memory_gb)) throw_usage("memory_gb {}: expected > 0", p.memory_gb);
  if (p.dead_window < 1) throw_usage("dead_window {}: expected >= 1", p.dead_window);
  if (p.checkpoint_every < 0) throw_usage("checkpoint_every {}: expected >= 0", p.checkpoint_every);
  if (p.lr_decay_frac < 0 || p.lr_decay_frac > 1) throw_usage("lr_decay_frac {}: expected in [0, 1]", p.lr_decay_frac);
}

void validate(const ApplyParams& p) {
  if (p.batch < 1) throw_usage("batch {}: expected >= 1", p.batch);
  if (p.dead_window < 1) throw_usage("dead_window {}: expected >= 1", p.dead_window);
  if (auto why = nested_sizes_problem(p.prefixes); !why.empty()) throw_usage("prefixes: {}", why);
  check_pool(p.pool);
}

}  // namespace cl::sae
