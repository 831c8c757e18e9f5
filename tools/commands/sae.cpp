// `conceptlab sae train|encode|eval|import|sweep|bench`: options -> sae::TrainParams / ApplyParams -> one
// cl::sae library call.
#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/output_claim.h"
#include "core/patches.h"
#include "core/sae_weights.h"
#include "sae/dist.h"
#include "sae/sae.h"
#include "tools/command.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

using sae::TrainParams;

Runner setup_train(CLI::App* tr) {
  struct Args {
    std::string embeddings, out, device = "auto", resume, dist_init = sae::DistParams{}.init;
    bool json = false, dist = false;
    int dist_timeout = sae::DistParams{}.timeout_s;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<TrainParams>>(tr, "SAE params JSON (configs/sae-*.json); flags override it");
  tr->add_option("--embeddings", a->embeddings, "embeddings .h5")->required();
  tr->add_option("--out", a->out, "output SAE .h5 (log: OUT.log.jsonl, checkpoint: OUT.ckpt)")->required();
  tr->add_option("--device", a->device, "auto | cpu | cuda | cuda:N");
  tr->add_option("--resume", a->resume, "continue from a checkpoint (OUT.ckpt)");
  tr->add_flag("--json", a->json, "print the final metrics as one JSON object");
  tr->add_flag("--dist", a->dist,
               "data-parallel: join a c10d process group (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun "
               "sets them, or Slurm's SLURM_PROCID, SLURM_NTASKS; on by itself when WORLD_SIZE > 1)");
  tr->add_option("--dist-init", a->dist_init, "env:// | tcp://HOST:PORT | file:///shared/path (new file)")
      ->capture_default_str();
  tr->add_option("--dist-timeout", a->dist_timeout, "seconds a rank waits for the others")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  auto& c = *pc;
  c.option("--arch", &TrainParams::arch, "relu-l1 | topk | batchtopk | matryoshka-topk | matryoshka-batchtopk");
  c.option("--expansion", &TrainParams::expansion, "n_latents = expansion * D");
  c.option("--n-latents", &TrainParams::n_latents, "explicit number of latents (0: use --expansion)");
  c.option("--k", &TrainParams::k, "active latents per input (topk, batchtopk, matryoshka-*)");
  c.option("--prefixes", &TrainParams::prefixes,
           "matryoshka-*: nested sizes, ascending, comma list (full size implied last; none: 16,64,256,... below n_latents)")
      ->delimiter(',');
  c.option("--l1", &TrainParams::l1, "L1 coefficient (relu-l1)");
  c.option("--lr", &TrainParams::lr, "Adam learning rate");
  c.option("--batch", &TrainParams::batch, "batch size");
  c.option("--epochs", &TrainParams::epochs, "epochs");
  c.option("--seed", &TrainParams::seed, "random seed");
  c.option("--lr-warmup-steps", &TrainParams::lr_warmup_steps, "linear LR warm-up steps");
  c.option("--lr-decay-frac", &TrainParams::lr_decay_frac, "final fraction of steps with linear LR decay");
  c.option("--l1-warmup-steps", &TrainParams::l1_warmup_steps, "linear L1 warm-up steps");
  c.option("--grad-clip", &TrainParams::grad_clip, "max gradient norm (0: off)");
  c.option("--dead-window", &TrainParams::dead_window, "inputs without firing before a latent is dead");
  c.option("--resample-every", &TrainParams::resample_every, "relu-l1: resample dead latents every N steps");
  c.option("--aux-k", &TrainParams::aux_k, "AuxK latents (topk, batchtopk)");
  c.option("--aux-alpha", &TrainParams::aux_alpha, "AuxK loss weight");
  c.option("--pre-bias-init", &TrainParams::pre_bias_init, "geometric_median | mean | zero");
  c.option("--encoder-init", &TrainParams::encoder_init, "auto | transpose | kaiming");
  c.flag("--normalize-input", &TrainParams::normalize_input, "train on unit mean squared norm inputs");
  c.option("--memory-gb", &TrainParams::memory_gb, "memory budget; larger files are streamed");
  c.option("--checkpoint-every", &TrainParams::checkpoint_every, "epochs between checkpoints (0: off)");
  c.flag("--tf32", &TrainParams::tf32, "CUDA: TF32 matmuls");
  c.flag("--bf16", &TrainParams::bf16, "bfloat16 matmul inputs");
  return [a, pc](const Context& ctx) -> int {
    const TrainParams p = pc->resolve();
    sae::validate(p);
    sae::DistParams dp = sae::dist_params_from_environment(a->dist);  // Slurm's variables need --dist
    Device device = pick_device(a->device);
    std::unique_ptr<sae::Comm> comm;
    if (a->dist || dp.world_size > 1) {
      if (dp.world_size > 1 && a->dist_init == "env://" &&
          (std::getenv("MASTER_ADDR") == nullptr || std::getenv("MASTER_PORT") == nullptr))
        throw_input("environment: --dist-init env:// needs MASTER_ADDR and MASTER_PORT (rank 0's host and a free "
                    "port, as torchrun sets them); set both, or use --dist-init tcp://HOST:PORT or file:///shared/path");
      if (dp.world_size == 1)
        spdlog::warn("sae train --dist: WORLD_SIZE{} is unset or 1, so this is a group of one process",
                     a->dist ? " (or Slurm's SLURM_NTASKS)" : "");
      if (device.is_cuda() && a->device.find(':') == std::string::npos) device = Device(device.type(), dp.local_rank);
      dp.init = a->dist_init;
      dp.timeout_s = a->dist_timeout;
      comm = sae::connect(dp, device);
      if (comm->rank() != 0) spdlog::set_level(spdlog::level::warn);  // rank 0 reports for all
    }
    const bool rank0 = comm == nullptr || comm->rank() == 0;
    init_torch_threads();
    spdlog::info("sae train on {}{}: {}", device.str(),
                 comm ? fmt::format(" x {} ranks ({})", comm->size(), comm->backend()) : "", nlohmann::json(p).dump());
    std::unique_ptr<OutputLock> lock;  // a second run on this --out would interleave the log and checkpoint
    std::unique_ptr<EmbeddingsReader> reader;
    sae::on_all_ranks(comm.get(), "to open their inputs and outputs", [&] {
      if (rank0) {
        check_output_path(a->out, {a->embeddings, a->resume});
        lock = std::make_unique<OutputLock>(a->out);
      }
      reader = std::make_unique<EmbeddingsReader>(a->embeddings);
    });
    if (comm) {
      // Hashes stand in for strings; one entry per param, so a mismatch names it.
      auto hash = [](const std::string& s) { return static_cast<int64_t>(std::hash<std::string>{}(s) >> 1); };
      std::vector<sae::NamedValue> same{{a->embeddings + ": row count", reader->rows()},
                                        {a->embeddings + ": dim", reader->dim()}};
      const nlohmann::json params = p;  // named: items() refers into it
      for (const auto& [key, value] : params.items())
        same.emplace_back("the SAE param '" + key + "' (a hash of it)", hash(value.dump()));
      same.emplace_back("--out (a hash of it)", hash(a->out));
      same.emplace_back("--resume (a hash of it)", hash(a->resume));
      // Same shape is not the same data: ranks reading different copies must read equal ones.
      same.emplace_back(a->embeddings + ": ids and first and last rows (a hash of them)",
                        static_cast<int64_t>(embeddings_fingerprint(*reader) >> 1));
      sae::check_same_on_all_ranks(*comm, same);
    }
    sae::TrainOptions opt;
    opt.out_path = a->out;
    opt.resume_path = a->resume;
    opt.inputs = {a->embeddings};
    opt.comm = comm.get();
    SaeWeights w = sae::train(*reader, p, device, opt, rank0 ? ctx.progress : silent_progress());
    if (!rank0) return 0;
    write_sae(a->out, w, {a->embeddings});
    if (a->json)
      print_json(w.metrics);
    else
      spdlog::info("sae: wrote {} ({} latents): {}", a->out, w.n_latents, w.metrics.dump());
    return 0;
  };
}

struct ApplyArgs {
  std::string sae, embeddings, out, device = "auto";
  bool json = false;
};

std::shared_ptr<ParamsCli<sae::ApplyParams>> apply_options(CLI::App* s, ApplyArgs& a, bool with_dead_window) {
  auto pc = std::make_shared<ParamsCli<sae::ApplyParams>>(s, "apply params JSON (configs/sae-apply.json)");
  s->add_option("--sae", a.sae, "SAE .h5")->required();
  s->add_option("--embeddings", a.embeddings, "embeddings .h5")->required();
  s->add_option("--device", a.device, "auto | cpu | cuda | cuda:N");
  pc->option("--batch", &sae::ApplyParams::batch, "rows per chunk");
  if (with_dead_window) {
    pc->option("--dead-window", &sae::ApplyParams::dead_window, "a latent silent over the last min(N, this) inputs is dead");
    pc->option("--prefixes", &sae::ApplyParams::prefixes,
               "also the FVU of latents [0, m) alone per size m, comma list (none: a matryoshka SAE's own sizes)")
        ->delimiter(',');
  }
  return pc;
}

// What encode and eval share: resolved params, the SAE on its device, the embeddings (checked).
struct Applied {
  sae::ApplyParams params;
  sae::Model model;
  EmbeddingsReader reader;
};

Applied open_apply(const ApplyArgs& a, const ParamsCli<sae::ApplyParams>& pc) {
  const sae::ApplyParams p = pc.resolve();
  sae::validate(p);
  const Device device = pick_device(a.device);
  init_torch_threads();
  Applied s{p, sae::Model::load(a.sae, device), EmbeddingsReader(a.embeddings)};
  s.model.check_dim(s.reader.dim(), a.embeddings);
  return s;
}

Runner setup_encode(CLI::App* en) {
  auto a = std::make_shared<ApplyArgs>();
  auto pc = apply_options(en, *a, false);
  en->add_option("--out", a->out, "output activations .h5 (patch embeddings: one row per image, patches pooled)")
      ->required();
  auto patch_out = std::make_shared<std::string>();
  en->add_option("--patch-out", *patch_out, "patch embeddings: also the patch activations (rows image x patch, grid)");
  pc->option("--pool", &sae::ApplyParams::pool, "patch embeddings: an image's activation = max | mean | sum of its patches'");
  return [a, pc, patch_out](const Context& ctx) -> int {
    const Applied s = open_apply(*a, *pc);
    s.model.encode_file(s.reader, a->out, s.params, ctx.progress, *patch_out);
    if (const PatchGeometry* g = s.reader.patches())
      spdlog::info("sae: wrote {} ({} images, {} pooled over {} x {} patches, {} latents){}", a->out, g->n_images(),
                   s.params.pool, g->grid_h, g->grid_w, s.model.n_latents(),
                   patch_out->empty() ? "" : fmt::format(" and {} ({} patch rows)", *patch_out, s.reader.rows()));
    else
      spdlog::info("sae: wrote {} ({} rows, {} latents)", a->out, s.reader.rows(), s.model.n_latents());
    return 0;
  };
}

Runner setup_sae_eval(CLI::App* ev) {
  auto a = std::make_shared<ApplyArgs>();
  auto pc = apply_options(ev, *a, true);
  ev->add_flag("--json", a->json, "print one JSON object");
  return [a, pc](const Context& ctx) -> int {
    const Applied s = open_apply(*a, *pc);
    nlohmann::json m = sae::to_json(s.model.evaluate(s.reader, s.params, ctx.progress));
    m["sae"] = a->sae;
    m["embeddings"] = a->embeddings;
    if (a->json)
      print_json(m);
    else
      for (auto it = m.begin(); it != m.end(); ++it) fmt::print("{:22} {}\n", it.key(), it.value().dump());
    return 0;
  };
}

Runner setup_import(CLI::App* im) {
  struct Args {
    std::string pth, out;
  };
  auto a = std::make_shared<Args>();
  im->add_option("--pth", a->pth, "torch.save'd checkpoint (model_state_dict + model_config)")->required();
  im->add_option("--out", a->out, "output SAE .h5")->required();
  return [a](const Context&) -> int {
    SaeWeights w = sae::import_reference_pth(a->pth);
    write_sae(a->out, w, {a->pth});
    spdlog::info("sae: imported {} (D {}, {} latents) into {}", a->pth, w.d_in, w.n_latents, a->out);
    return 0;
  };
}

}  // namespace

Command command_sae() {
  return {"sae", "train, apply, evaluate and import sparse autoencoders", [](CLI::App& sae) -> Runner {
            sae.require_subcommand(1);
            auto* tr = sae.add_subcommand("train", "train an SAE on an embeddings file");
            auto* en = sae.add_subcommand("encode", "write sparse (CSR) activations of embeddings");
            auto* ev = sae.add_subcommand("eval", "MSE, FVU, L0, L1, dead fraction of an SAE on embeddings");
            auto* im = sae.add_subcommand("import", "convert the reference project's autoencoder.pth to an SAE file");
            auto* sw = sae.add_subcommand("sweep", "train a grid of SAEs, score reconstruction and concept alignment "
                                                   "on held-out rows, pick one");
            auto* be = sae.add_subcommand("bench", "score SAEs against PCA / NMF / k-means baselines on image labels: "
                                                   "reconstruction, sparse probing, SCR, TPP, stability");
            for (auto* c : {tr, en, ev, im, sw, be}) c->option_defaults()->always_capture_default();
            const std::vector<std::pair<CLI::App*, Runner>> runners = {{tr, setup_train(tr)}, {en, setup_encode(en)},
                                                                       {ev, setup_sae_eval(ev)},  {im, setup_import(im)},
                                                                       {sw, setup_sae_sweep(sw)}, {be, setup_sae_bench(be)}};
            return [runners](const Context& ctx) -> int {
              for (const auto& [sub, run] : runners)
                if (sub->parsed()) return run(ctx);
              throw_usage("sae: expected one of train, encode, eval, import, sweep, bench");
            };
          }};
}

}  // namespace cl::cli
