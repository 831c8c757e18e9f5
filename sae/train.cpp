// The SAE training driver: initialisation or resume, the epoch loop with logs, checkpoints and
// progress, the final batchtopk threshold, folding of the input scale into the saved weights,
// and the final evaluation with the trained Model.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/output_claim.h"
#include "core/progress.h"
#include "sae/batch_source.h"
#include "sae/checkpoint.h"
#include "sae/dist.h"
#include "sae/sae.h"
#include "sae/trainer.h"

namespace cl::sae {

using torch::Tensor;

namespace {

SaeWeights run_training(BatchSource& src, const TrainParams& p, torch::Device device, const TrainOptions& opt,
                        ProgressSink& progress, const std::function<Metrics(const Model&)>& final_eval) {
  validate(p);
  const int64_t N = src.rows(), D = src.dim();
  Comm* comm = opt.comm;
  const bool dist = comm != nullptr && comm->size() > 1;
  const bool rank0 = comm == nullptr || comm->rank() == 0;  // writes the log, checkpoints and SAE
  if (N < 1) throw_input("training data: 0 rows, expected at least 1");
#ifdef CONCEPTLAB_WITH_CUDA
  if (device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(p.tf32);
#endif
  const auto t0 = std::chrono::steady_clock::now();
  Trainer tr(p, D, N, device);
  Rng rng(static_cast<uint64_t>(p.seed));  // the same draws on every rank: one batch order
  tr.rng = &rng;
  tr.comm = comm;
  RunState rs;
  if (!opt.resume_path.empty()) {
    load_checkpoint(opt.resume_path, tr, rs, rng, p, D, N, device);
    // Same row count and dim is not the same data: the checkpoint's data mean must match too.
    const Tensor mean_now = (src.mean_f64() * rs.scale).to(torch::kFloat32).to(tr.data_mean.device());
    const double diff = (mean_now - tr.data_mean).abs().max().item<double>();
    const double tol = 1e-4 * (1.0 + tr.data_mean.abs().max().item<double>());
    if (!(diff <= tol))
      throw_input("{}: checkpoint of a run on other data (the embeddings' mean differs by up to {:.3g}); resume with "
                  "the embeddings the run started on, or start a new run without --resume",
                  opt.resume_path, diff);
    spdlog::info("sae: resumed from {} at epoch {} (step {})", opt.resume_path, rs.epoch, tr.step_count);
  } else {
    auto sample = src.sample(p.pre_bias_sample, rng);
    if (p.normalize_input) {
      const double msn = sample.to(torch::kFloat64).pow(2).sum(1).mean().item<double>();
      rs.scale = msn > 0 ? 1.0 / std::sqrt(msn) : 1.0;
    }
    const double max_abs = sample.abs().max().item<double>();
    // Squared norms of larger values overflow float32 in the loss and in sae eval.
    if (!std::isfinite(max_abs) || max_abs > 1e15)
      throw_input("training data: values up to {:.3g}, expected |x| <= 1e15 (squared norms overflow float32): "
                  "rescale the embeddings",
                  max_abs);
    tr.init(sample * rs.scale);
    tr.data_mean = (src.mean_f64() * rs.scale).to(torch::kFloat32);
  }
  const float scale_f = static_cast<float>(rs.scale);
  const int64_t steps_per_epoch = (N + p.batch - 1) / p.batch;
  const int64_t total_steps = steps_per_epoch * p.epochs;

  std::ofstream log;
  const std::string log_path = opt.out_path.empty() || !rank0 ? "" : opt.out_path + ".log.jsonl";
  const std::string ckpt_path = opt.out_path.empty() || !rank0 ? "" : opt.out_path + ".ckpt";
  if (!log_path.empty()) {
    log.open(log_path, opt.resume_path.empty() ? std::ios::trunc : std::ios::app);
    if (!log.is_open()) throw_input("{}: cannot open the training log for writing", log_path);
  }

  Progress prog(progress, "sae train", p.epochs, "epochs");
  prog.add(rs.epoch);
  EpochMetrics last;
  int64_t run_epochs = 0;
  // A diverged run must not be saved as an SAE (every later step would read NaN): the loss is
  // checked every few steps (a sync on CUDA, so not every step) and the weights every epoch.
  auto check_diverged = [&](bool weights) {
    if (tr.epoch_loss_finite() && (!weights || tr.weights_finite())) return;
    throw_input("sae train: training diverged at epoch {}, step {} ({} is no longer finite); lower --lr ({:g} now){}, "
                "or check the embeddings for extreme values; no SAE was written",
                rs.epoch + 1, tr.step_count, tr.epoch_loss_finite() ? "a weight" : "the loss", p.lr,
                p.arch == "relu-l1" ? fmt::format(" or --l1 ({:g} now)", p.l1) : "");
  };
  while (rs.epoch < p.epochs) {
    src.start_epoch(rng);
    tr.reset_epoch_metrics();
    tr.mark_epoch_start();
    Tensor x;
    std::vector<int64_t> pos;
    int64_t batch_rows = 0;
    while ((batch_rows = src.next(x, dist ? &pos : nullptr)) > 0) {
      prog.check_cancel();
      if (rs.scale != 1.0) x = x * scale_f;
      tr.step(x, total_steps, batch_rows, dist ? &pos : nullptr);
      if (tr.step_count % 32 == 0) check_diverged(false);
      if (opt.on_step) opt.on_step(tr.step_count, tr.max_norm_dev());
    }
    check_diverged(true);
    ++rs.epoch;
    ++run_epochs;
    last = tr.epoch_metrics();
    last.epoch = rs.epoch;
    last.time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (log.is_open() && !(log << to_json(last).dump() << '\n' << std::flush))
      throw_input("{}: cannot write the training log (disk full?)", log_path);
    prog.set_note(fmt::format("loss {:.4g} fvu {:.4f} l0 {:.1f} dead {:.3f}", last.loss, last.fvu, last.l0,
                              last.dead_fraction));
    const bool stop = opt.stop_after_epochs > 0 && run_epochs >= opt.stop_after_epochs;
    const bool periodic = p.checkpoint_every > 0 && (rs.epoch % p.checkpoint_every == 0 || rs.epoch == p.epochs);
    if (!ckpt_path.empty() && (periodic || stop)) save_checkpoint(ckpt_path, tr, rs, rng, p, D, N, src.order());
    prog.add(1);
    if (stop) break;
  }
  prog.finish();

  if (tr.t.activation() == Arch::batchtopk && rs.epoch == p.epochs) {
    // The running estimate lags behind the weights early on; the saved threshold is the mean
    // over one more pass (up to 64 batches) of the batch minimum kept by the final weights.
    src.start_epoch(rng);
    Tensor x, sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    int64_t used = 0;
    int64_t batch_rows = 0;
    while (used < 64 && (batch_rows = src.next(x)) > 0) {
      if (rs.scale != 1.0) x = x * scale_f;
      auto mk = tr.min_kept(x, batch_rows);
      sum += torch::where(torch::isinf(mk), tr.threshold, mk).to(torch::kFloat64);
      ++used;
    }
    if (used > 0) tr.threshold = (sum / static_cast<double>(used)).to(torch::kFloat32);
  }

  src.stop();  // the final evaluation reads the file next
  const BatchSource::InputStats io = src.input_stats();
  if (io.rows_read > 0)
    spdlog::info("sae: read {} rows in {:.2f} s (prefetched); training waited {:.2f} s for them", io.rows_read,
                 io.read_s, io.wait_s);
  tr.check_ranks_agree();

  // Fold the input scale back: activations in input units, decoder rows still unit norm.
  SaeWeights w;
  {
    Tensors folded = tr.t;
    const double inv = 1.0 / rs.scale;
    folded.b_enc = tr.t.b_enc * inv;
    folded.b_dec = tr.t.b_dec * inv;
    folded.threshold = tr.threshold.item<double>() * inv;
    from_tensors(folded, w);
  }
  nlohmann::json cfg = p;
  cfg["d_in"] = D;
  cfg["n_train"] = N;
  cfg["input_scale"] = rs.scale;
  cfg["device"] = device.str();
  cfg["inputs"] = opt.inputs;
  if (dist) cfg["world_size"] = comm->size();
  w.config = cfg;
  // A collective when data-parallel: every rank evaluates its shard.
  nlohmann::json metrics = to_json(final_eval(Model(w, device)));
  metrics["epochs_trained"] = rs.epoch;
  metrics["steps"] = tr.step_count;
  metrics["last_epoch"] = to_json(last);
  metrics["train_time_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (io.rows_read > 0) metrics["input"] = {{"rows_read", io.rows_read}, {"read_s", io.read_s}, {"wait_s", io.wait_s}};
  w.metrics = metrics;
  return w;
}

// Every output (the SAE and its side files) is checked before any work: an unwritable folder or a
// side file named like an input used to surface only at the first write, after minutes.
void check_outputs(const TrainOptions& opt) {
  if (opt.out_path.empty()) return;
  std::vector<std::string> inputs = opt.inputs;
  check_output_path(opt.out_path + ".ckpt", inputs);  // resuming from OUT.ckpt rewrites it: allowed
  inputs.push_back(opt.resume_path);
  check_output_path(opt.out_path, inputs);
  check_output_path(opt.out_path + ".log.jsonl", inputs);
}

// Training on rows in memory, the outputs already checked.
SaeWeights train_rows(const float* x_nd, int64_t n, int64_t d, const TrainParams& p, Device device,
                      const TrainOptions& opt, ProgressSink& progress) {
  const Shard sh = opt.comm ? shard_of(n, opt.comm->rank(), opt.comm->size()) : Shard{0, n, n};
  auto src = memory_source(x_nd + sh.lo * d, sh, d, p.batch, device, opt.comm);
  return run_training(*src, p, device, opt, progress, [&](const Model& m) {
    return m.evaluate(x_nd + sh.lo * d, sh.lo, sh.hi, n, opt.comm, ApplyParams{kDefaultApplyBatch, p.dead_window});
  });
}

}  // namespace

SaeWeights train(const float* x_nd, int64_t n, int64_t d, const TrainParams& p, Device device,
                 const TrainOptions& opt, ProgressSink& progress) {
  if (opt.comm == nullptr || opt.comm->rank() == 0) check_outputs(opt);
  return train_rows(x_nd, n, d, p, device, opt, progress);
}

SaeWeights train(const EmbeddingsReader& reader, const TrainParams& p, Device device, const TrainOptions& opt,
                 ProgressSink& progress) {
  Comm* comm = opt.comm;
  const bool dist = comm != nullptr && comm->size() > 1;
  if (!dist) {
    check_outputs(opt);
    const double bytes = static_cast<double>(reader.rows()) * static_cast<double>(reader.dim()) * 4.0;
    if (bytes <= p.memory_gb * 1073741824.0 * 0.75) {
      std::vector<float> data(static_cast<size_t>(reader.rows() * reader.dim()));
      reader.read_rows(0, reader.rows(), data.data());
      spdlog::info("sae: {} x {} embeddings loaded in memory ({:.2f} GiB)", reader.rows(), reader.dim(),
                   bytes / 1073741824.0);
      TrainOptions one = opt;
      one.comm = nullptr;
      return train_rows(data.data(), reader.rows(), reader.dim(), p, device, one, progress);
    }
    auto src = stream_source(reader, Shard{0, reader.rows(), reader.rows()}, p.batch, p.memory_gb, device);
    spdlog::info("sae: streaming {} x {} embeddings ({:.2f} GiB > budget), buffer {} rows", reader.rows(),
                 reader.dim(), bytes / 1073741824.0, stream_buffer_rows(reader, p.batch, p.memory_gb));
    return run_training(*src, p, device, opt, progress, [&](const Model& m) {
      return m.evaluate(reader, ApplyParams{kDefaultApplyBatch, p.dead_window}, progress);
    });
  }
  // Data-parallel: each rank reads only its shard. Every rank makes the same memory-or-stream
  // choice (from the largest shard), since the two draw different batch orders.
  const bool rank0 = comm->rank() == 0;
  if (rank0) check_outputs(opt);
  const int64_t N = reader.rows(), D = reader.dim();
  const Shard sh = shard_of(N, comm->rank(), comm->size());
  const double shard_bytes = static_cast<double>((N + comm->size() - 1) / comm->size()) * static_cast<double>(D) * 4.0;
  const ApplyParams eval_params{kDefaultApplyBatch, p.dead_window};
  auto final_eval = [&](const Model& m) { return m.evaluate(reader, sh.lo, sh.hi, comm, eval_params, progress); };
  if (shard_bytes <= p.memory_gb * 1073741824.0 * 0.75) {
    std::vector<float> data(static_cast<size_t>((sh.hi - sh.lo) * D));
    reader.read_rows(sh.lo, sh.hi - sh.lo, data.data());
    spdlog::info("sae: rank {} of {}: rows [{}, {}) of {} x {} in memory ({:.2f} GiB)", comm->rank(), comm->size(),
                 sh.lo, sh.hi, N, D, static_cast<double>(data.size()) * 4.0 / 1073741824.0);
    auto src = memory_source(data.data(), sh, D, p.batch, device, comm);
    return run_training(*src, p, device, opt, progress, [&](const Model& m) {
      return m.evaluate(data.data(), sh.lo, sh.hi, N, comm, eval_params);
    });
  }
  auto src = stream_source(reader, sh, p.batch, p.memory_gb, device, comm);
  spdlog::info("sae: rank {} of {}: streaming rows [{}, {}) of {} x {}, buffer {} rows over all ranks", comm->rank(),
               comm->size(), sh.lo, sh.hi, N, D, stream_buffer_rows(reader, p.batch, p.memory_gb));
  return run_training(*src, p, device, opt, progress, final_eval);
}

}  // namespace cl::sae
