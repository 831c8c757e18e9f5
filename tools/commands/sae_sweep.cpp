// `conceptlab sae sweep`: options -> explain::SweepParams and a grid -> one sweep (train every
// SAE, score it on held-out rows) -> table, JSON, plot and the pick.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/output_claim.h"
#include "core/params.h"
#include "explain/data.h"
#include "explain/sweep.h"
#include "tools/command.h"
#include "tools/params_cli.h"
#include "tools/commands/flags.h"

namespace fs = std::filesystem;

namespace cl::cli {

Runner setup_sae_sweep(CLI::App* s) {
  struct Args {
    std::string embeddings, labels, id_col = kDefaultIdCol, grid, out, device = "auto";
    std::vector<std::string> columns;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  using P = explain::SweepParams;
  auto pc = std::make_shared<ParamsCli<P>>(s, "sweep params JSON (configs/sae-sweep.json); flags override it");
  s->add_option("--embeddings", a->embeddings, "embeddings .h5 (held in memory)")->required();
  add_labels_flag(s, a->labels)->required();
  s->add_option("--columns", a->columns, "annotation columns to align latents with (comma list)")->required()->delimiter(',');
  s->add_option("--grid", a->grid, "grid JSON: SAE training fields, each a list (configs/sae-sweep-grid.json)")->required();
  s->add_option("--out", a->out, "output folder: sae_NN.h5, sweep.csv, sweep.json, sweep.png, heldout.csv")->required();
  add_id_col_flag(s, a->id_col);
  s->add_option("--device", a->device, "auto | cpu | cuda | cuda:N");
  s->add_flag("--json", a->json, "print sweep.json's content as one JSON object");
  auto& c = *pc;
  c.option("--holdout", &P::holdout, "fraction of rows held out (no SAE trains on them; all scores are on them)");
  c.option("--seed", &P::seed, "which rows are held out");
  c.option("--max-latents", &P::max_latents, "K: largest latent set per column");
  c.option("--min-positives", &P::min_positives, "columns need this many positives and negatives on each side");
  c.option("--max-fvu", &P::max_fvu, "the pick's held-out FVU is at most this");
  c.option("--max-dead", &P::max_dead, "the pick's dead fraction is at most this");
  c.option("--threads", &P::threads, "scoring threads (0 = all cores)");
  c.option("--epochs", [](P& p) -> int64_t& { return p.train.epochs; }, "epochs of every SAE (unless the grid sets it)");
  c.option("--batch", [](P& p) -> int64_t& { return p.train.batch; }, "batch of every SAE (unless the grid sets it)");
  c.option("--lr", [](P& p) -> double& { return p.train.lr; }, "learning rate of every SAE (unless the grid sets it)");
  return [a, pc](const Context& ctx) -> int {
    const P p = pc->resolve();
    explain::validate(p);
    const auto grid = explain::expand_grid(load_json_file(a->grid), p.train, a->grid);
    const Device device = pick_device(a->device);
    init_torch_threads();
    if (fs::exists(a->out) && !fs::is_directory(a->out)) throw_input("{}: --out must be a folder, found a file", a->out);
    EmbeddingsReader reader(a->embeddings);
    const double gb = static_cast<double>(reader.rows()) * static_cast<double>(reader.dim()) * 4 / 1e9;
    if (gb > p.train.memory_gb)
      throw_input("{}: {:.1f} GB of embeddings; a sweep holds them in memory and train.memory_gb is {} (raise it, or "
                  "sweep on a sample of the rows)",
                  a->embeddings, gb, p.train.memory_gb);
    std::vector<float> x(static_cast<size_t>(reader.rows() * reader.dim()));
    reader.read_rows(0, reader.rows(), x.data());
    explain::SweepData data{x.data(), reader.rows(), reader.dim(), reader.ids(), {}, a->embeddings};
    data.annotations = explain::read_annotations(a->labels, a->id_col, a->columns, reader.ids());
    // The folder is made only once the inputs are known to be good (a typo leaves nothing behind).
    fs::create_directories(a->out);
    const std::string json_path = (fs::path(a->out) / "sweep.json").string();
    check_output_path(json_path, {a->embeddings, a->labels, a->grid});
    OutputLock lock(json_path);  // two sweeps into one folder would overwrite each other's SAEs
    spdlog::info("sae sweep on {}: {} SAEs, {} rows x {}, {} columns ({} of the rows annotated); {}", device.str(),
                 grid.size(), reader.rows(), reader.dim(), a->columns.size(), data.annotations.n_joined,
                 nlohmann::json(p).dump());
    const auto r = explain::sweep_saes(data, grid, p, device, a->out, ctx.progress);
    explain::write_sweep_outputs(r, p, a->out, {a->embeddings, a->labels, a->grid});
    if (a->json) {
      print_json(explain::to_json(r, p));
      return 0;
    }
    fmt::print("{:>3}  {:<40} {:>8} {:>6} {:>6} {:>7} {:>7}  {}\n", "#", "SAE", "FVU", "L0", "dead", "AUROC", "set",
               "");
    for (size_t i = 0; i < r.entries.size(); ++i) {
      const auto& e = r.entries[i];
      fmt::print("{:>3}  {:<40} {:>8.4f} {:>6.1f} {:>6.3f} {:>7.3f} {:>7.3f}  {}{}\n", i, e.label, e.heldout.fvu,
                 e.heldout.l0, e.heldout.dead_fraction, e.mean_auroc, e.mean_set_auroc, e.pareto ? "front" : "",
                 static_cast<int64_t>(i) == r.pick ? " PICK" : "");
    }
    fmt::print("probe on embeddings: mean held-out AUROC {:.3f} ({} training / {} held-out rows)\npick: {}\n-> {}\n",
               r.mean_probe_auroc, r.n_train, r.n_test, r.why, a->out);
    return 0;
  };
}

}  // namespace cl::cli
