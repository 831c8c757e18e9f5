// `conceptlab sae bench`: options -> explain::BenchParams, SAE files and stability groups -> one
// bench (every SAE and baseline scored on one held-out split) -> table, JSON, markdown, charts.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/ranges.h>

#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/output_claim.h"
#include "core/params.h"
#include "core/parse.h"
#include "explain/bench.h"
#include "explain/data.h"
#include "tools/command.h"
#include "tools/commands/flags.h"
#include "tools/params_cli.h"

namespace fs = std::filesystem;

namespace cl::cli {

namespace {

// "a.h5,b.h5" -> {"a.h5", "b.h5"} (empty items dropped).
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    std::string item = trim_copy(std::string_view(s).substr(start, comma - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

}  // namespace

Runner setup_sae_bench(CLI::App* s) {
  struct Args {
    std::string embeddings, labels, id_col = kDefaultIdCol, out, device = "auto";
    std::vector<std::string> columns, saes, seeds_of, compare;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  using P = explain::BenchParams;
  auto pc = std::make_shared<ParamsCli<P>>(s, "bench params JSON (configs/sae-bench.json); flags override it");
  s->add_option("--embeddings", a->embeddings, "embeddings .h5 (held in memory)")->required();
  add_labels_flag(s, a->labels)->required();
  add_id_col_flag(s, a->id_col);
  s->add_option("--columns", a->columns, "0/1 annotation columns to probe (comma list)")->required()->delimiter(',');
  s->add_option("--saes", a->saes, "SAE files to score, in table order");
  s->add_option("--seeds-of", a->seeds_of, "SAE files of one config trained with different seeds (comma list; "
                                           "repeat per group): decoder stability")->take_all();
  s->add_option("--compare", a->compare, "two SAE files A,B: the stability of that pair (repeatable)")->take_all();
  s->add_option("--out", a->out, "output folder: bench.json, bench.csv, bench.md, probing.png, scr_*.png, pareto.png")
      ->required();
  s->add_option("--device", a->device, "auto | cpu | cuda | cuda:N");
  s->add_flag("--json", a->json, "print bench.json's content as one JSON object");
  auto& c = *pc;
  c.option("--holdout", &P::holdout, "fraction of images held out (every score is on them)");
  c.option("--split-col", &P::split_col, "labels column with train/test per image, instead of --holdout");
  c.option("--seed", &P::seed, "the split, the baselines' sample, the random controls");
  c.option("--baselines", &P::baselines, "baseline dictionaries (comma list of pca, nmf, kmeans; '' for none)")->delimiter(',');
  c.option("--spurious", &P::spurious, "SCR pairs COLUMN:LABEL, e.g. hair:melanoma (comma list)")->delimiter(',');
  c.option("--probe-ks", &P::probe_ks, "sparse probing: latents per probe (comma list)")->delimiter(',');
  c.option("--scr-ns", &P::scr_ns, "SCR: latents zeroed (comma list)")->delimiter(',');
  c.option("--tpp-ns", &P::tpp_ns, "TPP: latents zeroed per column (comma list)")->delimiter(',');
  c.option("--rank-by", &P::rank_by, "latents per column for probing and TPP: mean_diff (SAEBench) | t (Welch t)");
  c.option("--min-positives", &P::min_positives, "columns need this many positives and negatives on each side");
  c.option("--random-draws", &P::random_draws, "random-latent controls per SCR n");
  c.option("--baseline-latents", &P::baseline_latents, "NMF atoms / k-means centroids (0 = NMF: the embedding dim, k-means: min(dim, fit rows / 10))");
  c.option("--baseline-l0", &P::baseline_l0, "PCA / NMF code budget (0 = the first SAE's held-out L0)");
  c.option("--baseline-fit-rows", &P::baseline_fit_rows, "training rows the baselines are fitted on");
  c.option("--baseline-iters", &P::baseline_iters, "NMF / k-means iterations");
  c.option("--threads", &P::threads, "scoring threads (0 = all cores)");
  return [a, pc](const Context& ctx) -> int {
    P p = pc->resolve();
    p.baselines.erase(std::remove(p.baselines.begin(), p.baselines.end(), std::string()), p.baselines.end());
    explain::validate(p);
    explain::BenchInputs in;
    in.saes = a->saes;
    for (const auto& g : a->seeds_of) in.seed_groups.push_back(split_list(g));
    for (const auto& pair : a->compare) {
      const auto v = split_list(pair);
      if (v.size() != 2) throw_usage("--compare '{}': expected two SAE files A,B", pair);
      in.compare.emplace_back(v[0], v[1]);
    }
    std::vector<std::string> inputs = {a->embeddings, a->labels};
    inputs.insert(inputs.end(), in.saes.begin(), in.saes.end());
    for (const auto& g : in.seed_groups) inputs.insert(inputs.end(), g.begin(), g.end());
    for (const auto& [x, y] : in.compare) inputs.push_back(x), inputs.push_back(y);
    for (const auto& f : inputs)
      if (!fs::is_regular_file(f)) throw_input("{}: no such file", f);
    const Device device = pick_device(a->device);
    init_torch_threads();
    if (fs::exists(a->out) && !fs::is_directory(a->out)) throw_input("{}: --out must be a folder, found a file", a->out);
    EmbeddingsReader reader(a->embeddings);
    if (reader.patches())
      throw_input("{}: a patch-embeddings file; bench scores image embeddings (the pooled file beside it)", a->embeddings);
    std::vector<float> x(static_cast<size_t>(reader.rows() * reader.dim()));
    reader.read_rows(0, reader.rows(), x.data());
    explain::BenchData data;
    data.x_nd = x.data(), data.n = reader.rows(), data.d = reader.dim(), data.ids = reader.ids();
    data.embeddings_path = a->embeddings;
    data.columns = a->columns;
    explain::read_bench_labels(data, a->labels, a->id_col, p);
    // Checked before the folder is made: a run that cannot start leaves nothing behind.
    for (const auto& name : explain::bench_output_files(p)) check_not_input((fs::path(a->out) / name).string(), inputs);
    fs::create_directories(a->out);
    for (const auto& name : explain::bench_output_files(p)) check_output_path((fs::path(a->out) / name).string(), inputs);
    const std::string json_path = (fs::path(a->out) / "bench.json").string();
    OutputLock lock(json_path);
    spdlog::info("sae bench on {}: {} SAEs + baselines [{}], {} rows x {}, {} columns ({} of the rows annotated); {}",
                 device.str(), in.saes.size(), fmt::join(p.baselines, ", "), data.n, data.d, a->columns.size(),
                 data.annotations.n_joined, nlohmann::json(p).dump());
    const auto r = explain::bench_saes(data, in, p, device, ctx.progress);
    explain::write_bench_outputs(r, p, a->out, inputs);
    if (a->json) {
      print_json(explain::to_json(r, p));
      return 0;
    }
    fmt::print("{:<36} {:>7} {:>8} {:>7} {:>6} {:>6}  {}\n", "dictionary", "latents", "FVU", "cosine", "L0", "dead",
               fmt::format("probe AUROC k={}", fmt::join(p.probe_ks, ",")));
    for (const auto& e : r.entries) {
      std::vector<std::string> au;
      for (double v : e.mean_probe_auroc) au.push_back(std::isfinite(v) ? fmt::format("{:.3f}", v) : "-");
      fmt::print("{:<36} {:>7} {:>8.4f} {:>7.3f} {:>6.1f} {:>6.3f}  {}\n", e.label, e.n_latents, e.recon.fvu,
                 e.recon.cosine, e.recon.l0, e.recon.dead_fraction, fmt::join(au, " "));
    }
    fmt::print("dense probe on the embeddings: mean held-out AUROC {:.3f} ({} training / {} held-out images)\n-> {}\n",
               r.mean_dense_probe_auroc, r.n_train, r.n_test, (fs::path(a->out) / "bench.md").string());
    return 0;
  };
}

}  // namespace cl::cli
