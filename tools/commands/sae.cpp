// `conceptlab sae train|encode|eval|import`: options -> SaeParams -> one sae/ library call.
#include <functional>
#include <memory>

#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"
#include "core/sae_weights.h"
#include "sae/sae.h"
#include "tools/command.h"

namespace cl::cli {

namespace {

struct TrainArgs {
  std::string embeddings, out, device = "auto", config, resume;
  bool json = false;
  SaeParams p;
};

// Binds one SaeParams field as --flag; a flag given on the command line overrides --config.
template <typename T>
void bind_param(CLI::App* sub, std::vector<std::function<void(SaeParams&)>>& overrides, std::shared_ptr<TrainArgs> a,
          const std::string& flag, T SaeParams::*field, const std::string& help) {
  CLI::Option* o = sub->add_option(flag, a->p.*field, help);
  overrides.push_back([o, a, field](SaeParams& p) {
    if (o->count() > 0) p.*field = a->p.*field;
  });
}

void bind_flag(CLI::App* sub, std::vector<std::function<void(SaeParams&)>>& overrides, std::shared_ptr<TrainArgs> a,
               const std::string& flag, bool SaeParams::*field, const std::string& help) {
  CLI::Option* o = sub->add_flag(flag, a->p.*field, help);
  overrides.push_back([o, a, field](SaeParams& p) {
    if (o->count() > 0) p.*field = a->p.*field;
  });
}

}  // namespace

Command command_sae() {
  return {"sae", "train, apply, evaluate and import sparse autoencoders", [](CLI::App& sae) -> Runner {
            sae.require_subcommand(1);
            auto runner = std::make_shared<Runner>();

            // ---- train
            auto ta = std::make_shared<TrainArgs>();
            auto overrides = std::make_shared<std::vector<std::function<void(SaeParams&)>>>();
            CLI::App* tr = sae.add_subcommand("train", "train an SAE on an embeddings file");
            tr->add_option("--embeddings", ta->embeddings, "embeddings .h5")->required();
            tr->add_option("--out", ta->out, "output SAE .h5 (log: OUT.log.jsonl, checkpoint: OUT.ckpt)")->required();
            tr->add_option("--device", ta->device, "auto | cpu | cuda | cuda:N");
            tr->add_option("--config", ta->config, "SAE params JSON (configs/sae-*.json); flags override it");
            tr->add_option("--resume", ta->resume, "continue from a checkpoint (OUT.ckpt)");
            tr->add_flag("--json", ta->json, "print the final metrics as one JSON object");
            auto& ov = *overrides;
            bind_param(tr, ov, ta, "--arch", &SaeParams::arch, "relu-l1 | topk | batchtopk");
            bind_param(tr, ov, ta, "--expansion", &SaeParams::expansion, "n_latents = expansion * D");
            bind_param(tr, ov, ta, "--n-latents", &SaeParams::n_latents, "explicit number of latents (0: use --expansion)");
            bind_param(tr, ov, ta, "--k", &SaeParams::k, "active latents per input (topk, batchtopk)");
            bind_param(tr, ov, ta, "--l1", &SaeParams::l1, "L1 coefficient (relu-l1)");
            bind_param(tr, ov, ta, "--lr", &SaeParams::lr, "Adam learning rate");
            bind_param(tr, ov, ta, "--batch", &SaeParams::batch, "batch size");
            bind_param(tr, ov, ta, "--epochs", &SaeParams::epochs, "epochs");
            bind_param(tr, ov, ta, "--seed", &SaeParams::seed, "random seed");
            bind_param(tr, ov, ta, "--lr-warmup-steps", &SaeParams::lr_warmup_steps, "linear LR warm-up steps");
            bind_param(tr, ov, ta, "--lr-decay-frac", &SaeParams::lr_decay_frac, "final fraction of steps with linear LR decay");
            bind_param(tr, ov, ta, "--l1-warmup-steps", &SaeParams::l1_warmup_steps, "linear L1 warm-up steps");
            bind_param(tr, ov, ta, "--grad-clip", &SaeParams::grad_clip, "max gradient norm (0: off)");
            bind_param(tr, ov, ta, "--dead-window", &SaeParams::dead_window, "inputs without firing before a latent is dead");
            bind_param(tr, ov, ta, "--resample-every", &SaeParams::resample_every, "relu-l1: resample dead latents every N steps");
            bind_param(tr, ov, ta, "--aux-k", &SaeParams::aux_k, "AuxK latents (topk, batchtopk)");
            bind_param(tr, ov, ta, "--aux-alpha", &SaeParams::aux_alpha, "AuxK loss weight");
            bind_param(tr, ov, ta, "--pre-bias-init", &SaeParams::pre_bias_init, "geometric_median | mean | zero");
            bind_param(tr, ov, ta, "--encoder-init", &SaeParams::encoder_init, "auto | transpose | kaiming");
            bind_flag(tr, ov, ta, "--normalize-input", &SaeParams::normalize_input, "train on unit mean squared norm inputs");
            bind_param(tr, ov, ta, "--memory-gb", &SaeParams::memory_gb, "memory budget; larger files are streamed");
            bind_param(tr, ov, ta, "--checkpoint-every", &SaeParams::checkpoint_every, "epochs between checkpoints (0: off)");
            bind_flag(tr, ov, ta, "--tf32", &SaeParams::tf32, "CUDA: TF32 matmuls");
            bind_flag(tr, ov, ta, "--bf16", &SaeParams::bf16, "bfloat16 matmul inputs");
            tr->callback([ta, overrides, runner] {
              *runner = [ta, overrides]() -> int {
                SaeParams p = ta->config.empty() ? SaeParams{} : sae_params_from_json(load_json_file(ta->config), ta->config);
                for (auto& f : *overrides) f(p);
                validate_sae_params(p);
                const torch::Device device = pick_device(ta->device);
                init_torch_threads();
                spdlog::info("sae train on {}: {}", device.str(), nlohmann::json(p).dump());
                EmbeddingsReader reader(ta->embeddings);
                SaeTrainOptions opt;
                opt.out_path = ta->out;
                opt.resume_path = ta->resume;
                opt.inputs = {ta->embeddings};
                opt.quiet = globals().quiet;
                SaeWeights w = train_sae(reader, p, device, opt);
                write_sae(ta->out, w, {ta->embeddings});
                if (ta->json)
                  print_json(w.metrics);
                else
                  spdlog::info("sae: wrote {} ({} latents): {}", ta->out, w.n_latents, w.metrics.dump());
                return 0;
              };
            });

            // ---- encode
            struct IoArgs {
              std::string sae, embeddings, out, device = "auto";
              int64_t batch = 8192, dead_window = 1000000;
              bool json = false;
            };
            auto ea = std::make_shared<IoArgs>();
            CLI::App* en = sae.add_subcommand("encode", "write sparse (CSR) activations of embeddings");
            en->add_option("--sae", ea->sae, "SAE .h5")->required();
            en->add_option("--embeddings", ea->embeddings, "embeddings .h5")->required();
            en->add_option("--out", ea->out, "output activations .h5")->required();
            en->add_option("--device", ea->device, "auto | cpu | cuda | cuda:N");
            en->add_option("--batch", ea->batch, "rows per chunk");
            en->callback([ea, runner] {
              *runner = [ea]() -> int {
                const torch::Device device = pick_device(ea->device);
                init_torch_threads();
                SaeWeights w = read_sae(ea->sae);
                EmbeddingsReader reader(ea->embeddings);
                check_sae_dim(w, reader.dim(), ea->embeddings, ea->sae);
                encode_file(w, reader, ea->out, device, ea->batch, globals().quiet, {ea->embeddings, ea->sae});
                spdlog::info("sae: wrote {} ({} rows, {} latents)", ea->out, reader.rows(), w.n_latents);
                return 0;
              };
            });

            // ---- eval
            auto va = std::make_shared<IoArgs>();
            CLI::App* ev = sae.add_subcommand("eval", "MSE, FVU, L0, L1, dead fraction of an SAE on embeddings");
            ev->add_option("--sae", va->sae, "SAE .h5")->required();
            ev->add_option("--embeddings", va->embeddings, "embeddings .h5")->required();
            ev->add_option("--device", va->device, "auto | cpu | cuda | cuda:N");
            ev->add_option("--batch", va->batch, "rows per chunk");
            ev->add_option("--dead-window", va->dead_window, "a latent silent over the last min(N, this) inputs is dead");
            ev->add_flag("--json", va->json, "print one JSON object");
            ev->callback([va, runner] {
              *runner = [va]() -> int {
                const torch::Device device = pick_device(va->device);
                init_torch_threads();
                SaeWeights w = read_sae(va->sae);
                EmbeddingsReader reader(va->embeddings);
                check_sae_dim(w, reader.dim(), va->embeddings, va->sae);
                auto m = evaluate_sae(w, reader, device, va->dead_window, va->batch, globals().quiet);
                m["sae"] = va->sae;
                m["embeddings"] = va->embeddings;
                if (va->json)
                  print_json(m);
                else
                  for (auto it = m.begin(); it != m.end(); ++it) fmt::print("{:22} {}\n", it.key(), it.value().dump());
                return 0;
              };
            });

            // ---- import
            auto ia = std::make_shared<IoArgs>();
            CLI::App* im = sae.add_subcommand("import", "convert the reference project's autoencoder.pth to an SAE file");
            im->add_option("--pth", ia->embeddings, "torch.save'd checkpoint (model_state_dict + model_config)")->required();
            im->add_option("--out", ia->out, "output SAE .h5")->required();
            im->callback([ia, runner] {
              *runner = [ia]() -> int {
                SaeWeights w = import_reference_pth(ia->embeddings);
                write_sae(ia->out, w, {ia->embeddings});
                spdlog::info("sae: imported {} (D {}, {} latents) into {}", ia->embeddings, w.d_in, w.n_latents, ia->out);
                return 0;
              };
            });

            return [runner]() -> int {
              if (!*runner) throw_usage("sae: expected one of train, encode, eval, import");
              return (*runner)();
            };
          }};
}

}  // namespace cl::cli
