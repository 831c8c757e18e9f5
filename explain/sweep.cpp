// SAE sweeps: the grid, one held-out split shared by every SAE, training, scoring on the held-out
// rows (reconstruction and concept alignment), the Pareto front and the pick, and the outputs.
#include "explain/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/params.h"
#include "core/random.h"
#include "core/sae_weights.h"
#include "core/sparse.h"
#include "explain/concepts.h"
#include "explain/match.h"
#include "explain/plot.h"

namespace fs = std::filesystem;

namespace cl::explain {

void validate(const SweepParams& p) {
  if (!(p.holdout > 0 && p.holdout < 1)) throw_usage("holdout {}: expected a fraction in (0, 1)", p.holdout);
  if (p.max_latents < 1) throw_usage("max_latents {}: expected >= 1", p.max_latents);
  if (p.min_positives < 1) throw_usage("min_positives {}: expected >= 1", p.min_positives);
  if (p.path_alphas < 2) throw_usage("path_alphas {}: expected >= 2", p.path_alphas);
  if (!(p.max_fvu > 0) || !std::isfinite(p.max_fvu)) throw_usage("max_fvu {}: expected a finite value > 0", p.max_fvu);
  if (!(p.max_dead >= 0 && p.max_dead <= 1)) throw_usage("max_dead {}: expected a fraction in [0, 1]", p.max_dead);
  if (p.threads < 0) throw_usage("threads {}: expected >= 0", p.threads);
  sae::validate(p.train);
}

std::vector<sae::TrainParams> expand_grid(const nlohmann::json& grid, const sae::TrainParams& base,
                                          const std::string& grid_path) {
  if (!grid.is_object() || grid.empty())
    throw_usage("{}: expected a JSON object of SAE training fields, each a list of values, e.g. "
                "{{\"arch\": [\"topk\", \"matryoshka-topk\"], \"k\": [16, 32]}}",
                grid_path);
  const nlohmann::json base_j = base;
  std::vector<nlohmann::json> points = {base_j};
  for (const auto& [key, values] : grid.items()) {
    if (key == "comment") continue;
    if (!base_j.contains(key)) {
      std::vector<std::string> known;
      for (const auto& [k, v] : base_j.items()) known.push_back(k);
      throw_usage("{}: '{}' is not an SAE training field (expected one of {})", grid_path, key, fmt::join(known, ", "));
    }
    if (!values.is_array() || values.empty())
      throw_usage("{}: '{}' must be a non-empty list of values, found {}", grid_path, key, values.dump());
    std::vector<nlohmann::json> next;
    for (const auto& pt : points)
      for (const auto& v : values) {
        nlohmann::json q = pt;
        q[key] = v;
        next.push_back(std::move(q));
      }
    points = std::move(next);
  }
  std::vector<sae::TrainParams> out;
  for (const auto& pt : points) {
    sae::TrainParams tp;
    try {
      tp = pt.get<sae::TrainParams>();
    } catch (const nlohmann::json::exception& e) {
      throw_usage("{}: a value does not fit its field ({})", grid_path, e.what());
    }
    if (!is_matryoshka_arch(tp.arch)) tp.prefixes.clear();  // nested sizes only mean something to matryoshka
    try {
      sae::validate(tp);
    } catch (const UsageError& e) {
      throw_usage("{}: grid point {}: {}", grid_path, nlohmann::json(tp).dump(), e.what());
    }
    if (std::find(out.begin(), out.end(), tp) == out.end()) out.push_back(std::move(tp));
  }
  return out;
}

std::vector<std::string> sweep_labels(const std::vector<sae::TrainParams>& grid, int64_t d_in) {
  // Fields shown by the fixed part of the label; any other field that varies is appended.
  static const std::set<std::string> shown = {"arch", "expansion", "n_latents", "k", "prefixes", "l1"};
  std::set<std::string> varying;
  if (!grid.empty()) {
    const nlohmann::json first = grid.front();
    for (const auto& tp : grid) {
      const nlohmann::json j = tp;
      for (const auto& [k, v] : j.items())
        if (!shown.count(k) && first.at(k) != v) varying.insert(k);
    }
  }
  std::vector<std::string> labels;
  for (const auto& tp : grid) {
    const int64_t n = sae::latent_count(tp, d_in);
    std::string s = fmt::format("{} n{}", tp.arch, n);
    if (tp.arch == "relu-l1")
      s += fmt::format(" l1 {:g}", tp.l1);
    else
      s += fmt::format(" k{}", tp.k);
    if (is_matryoshka_arch(tp.arch)) {
      auto sizes = sae::nested_sizes(tp, n);
      sizes.pop_back();  // the full size is implied
      s += fmt::format(" p{}", fmt::join(sizes, ","));
    }
    const nlohmann::json j = tp;
    for (const auto& k : varying) s += fmt::format(" {}={}", k, j.at(k).dump());
    labels.push_back(std::move(s));
  }
  return labels;
}

namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  int64_t c = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++c;
  return c > 0 ? s / static_cast<double>(c) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

SweepResult sweep_saes(const SweepData& data, const std::vector<sae::TrainParams>& grid, const SweepParams& p,
                       Device device, const std::string& out_dir, ProgressSink& progress) {
  validate(p);
  CL_ASSERT(static_cast<int64_t>(data.ids.size()) == data.n, "one id per row");
  if (grid.empty()) throw_usage("sae sweep: the grid is empty");
  const int64_t n = data.n, d = data.d;
  // Every size must fit these embeddings before the first (long) training starts.
  for (const auto& tp : grid) {
    const int64_t nl = sae::latent_count(tp, d);
    if (tp.arch != "relu-l1" && tp.k > nl) throw_usage("grid point {}: k {} > n_latents {}", tp.arch, tp.k, nl);
    sae::nested_sizes(tp, nl);
  }
  SweepResult r;
  // The split of `sae bench` (explain::split_rows), so a bench with sweep_bench_params scores the
  // same rows.
  const RowSplit split = split_rows(n, p.holdout, p.seed, {}, data.embeddings_path);
  r.n_test = static_cast<int64_t>(split.test.size());
  r.n_train = static_cast<int64_t>(split.train.size());
  for (int64_t i : split.test) r.heldout_ids.push_back(data.ids[static_cast<size_t>(i)]);
  // The bench's view of the same split: per column its annotated rows on each side and whether
  // it is scored, the held-out rows, and the dense probe (once per column, the sweep's probe).
  const Annotations& ann = data.annotations;
  const BenchParams bp = sweep_bench_params(p);
  BenchData bd;
  bd.x_nd = data.x_nd, bd.n = n, bd.d = d, bd.ids = data.ids, bd.annotations = ann, bd.columns = ann.names;
  bd.embeddings_path = data.embeddings_path;
  const auto bench_split = make_bench_split(bd, split, bp);
  const BenchSplit& cols = *bench_split;
  const std::vector<float> x_train = gather_rows(data.x_nd, d, split.train);
  std::vector<double> probe = cols.dense_probe;
  r.mean_probe_auroc = mean_of(probe);
  // Labels with the other side masked, the same for every SAE.
  std::vector<ConceptLabels> on_train, on_test;
  for (const auto& labels : cols.y) {
    ConceptLabels tr(labels.size(), -1), te(labels.size(), -1);
    for (size_t i = 0; i < labels.size(); ++i) (split.is_test[i] ? te : tr)[i] = labels[i];
    on_train.push_back(std::move(tr)), on_test.push_back(std::move(te));
  }
  MatchParams mp;
  mp.max_latents = p.max_latents;
  mp.path_alphas = p.path_alphas;
  mp.threads = p.threads;

  const auto labels = sweep_labels(grid, d);
  fs::create_directories(out_dir);
  Progress prog(progress, "sae sweep", static_cast<int64_t>(grid.size()), "SAEs");
  for (size_t g = 0; g < grid.size(); ++g) {
    SweepEntry e;
    e.label = labels[g];
    e.params = grid[g];
    e.sae_path = (fs::path(out_dir) / fmt::format("sae_{:02d}.h5", g)).string();
    prog.set_note(e.label);
    sae::TrainOptions opt;
    opt.out_path = e.sae_path;
    opt.inputs = {data.embeddings_path};
    const auto t0 = std::chrono::steady_clock::now();
    SaeWeights w = sae::train(x_train.data(), r.n_train, d, e.params, device, opt, progress);
    e.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    w.config["sweep"] = {{"holdout", p.holdout}, {"seed", p.seed}, {"n_train", r.n_train}, {"label", e.label}};
    write_sae(e.sae_path, w, {data.embeddings_path});
    fs::remove(e.sae_path + ".ckpt");  // only needed to resume; the SAE file is complete
    e.n_latents = w.n_latents;

    const sae::Model model(w, device);
    e.heldout = model.evaluate(cols.x_test.data(), r.n_test);
    const CsrMatrix acts = model.encode(data.x_nd, n);  // every row, in file order
    const CscMatrix csc = to_csc(acts);
    const auto au_train = latent_aurocs(csc, on_train, p.threads), au_test = latent_aurocs(csc, on_test, p.threads);
    std::vector<double> best, sets;
    for (size_t c = 0; c < cols.names.size(); ++c) {
      ColumnScore s;
      s.name = ann.names[c];
      s.n_pos_train = cols.pos_train[c], s.n_pos_test = cols.pos_test[c];
      s.n_test = static_cast<int64_t>(cols.test[c].size());
      s.note = cols.notes[c];
      if (s.note.empty()) {
        // The best latent is chosen where the SAE was trained; only its held-out AUROC is reported,
        // so a large dictionary does not win by the luck of its maximum over many latents.
        for (int64_t j = 0; j < e.n_latents; ++j) {
          const double a = au_train[c][static_cast<size_t>(j)];
          if (!std::isnan(a) && (s.best_latent < 0 || a > s.auroc_train)) s.best_latent = j, s.auroc_train = a;
        }
        if (s.best_latent >= 0) s.auroc = au_test[c][static_cast<size_t>(s.best_latent)];
        s.set_auroc = heldout_set_auroc(acts, csc, cols.y01[c], cols.train[c], cols.test[c], mp, &s.latent_set);
        s.probe_auroc = probe[c];
      }
      best.push_back(s.auroc), sets.push_back(s.set_auroc);
      e.columns.push_back(std::move(s));
    }
    e.mean_auroc = mean_of(best);
    e.mean_set_auroc = mean_of(sets);
    e.bench = score_dictionary(*sae::load_sae_dictionary(e.sae_path, device), bd, *bench_split, bp);
    e.bench.label = e.label, e.bench.kind = "sae", e.bench.path = e.sae_path;
    r.entries.push_back(std::move(e));
    prog.add(1);
  }
  pick_sae(r, p);
  return r;
}

BenchParams sweep_bench_params(const SweepParams& p) {
  BenchParams b;
  b.holdout = p.holdout;
  b.seed = p.seed;
  b.min_positives = p.min_positives;
  b.threads = p.threads;
  b.baselines.clear();
  return b;
}

void pick_sae(SweepResult& r, const SweepParams& p) {
  auto& es = r.entries;
  r.pick = -1;
  r.why.clear();
  if (es.empty()) return;
  for (auto& a : es) {
    a.pareto = std::isfinite(a.mean_auroc) && std::isfinite(a.heldout.fvu);
    for (const auto& b : es) {
      if (!a.pareto) break;
      if (&a == &b || !std::isfinite(b.mean_auroc)) continue;
      const bool no_worse = b.heldout.fvu <= a.heldout.fvu && b.mean_auroc >= a.mean_auroc;
      const bool better = b.heldout.fvu < a.heldout.fvu || b.mean_auroc > a.mean_auroc;
      if (no_worse && better) a.pareto = false;
    }
  }
  int64_t lowest_fvu = 0;
  for (size_t i = 1; i < es.size(); ++i)
    if (es[i].heldout.fvu < es[static_cast<size_t>(lowest_fvu)].heldout.fvu) lowest_fvu = static_cast<int64_t>(i);
  int64_t n_front = 0;
  for (size_t i = 0; i < es.size(); ++i) {
    const auto& e = es[i];
    if (!e.pareto) continue;
    ++n_front;
    if (e.heldout.fvu > p.max_fvu || e.heldout.dead_fraction > p.max_dead) continue;
    const auto* cur = r.pick >= 0 ? &es[static_cast<size_t>(r.pick)] : nullptr;
    if (!cur || e.mean_auroc > cur->mean_auroc || (e.mean_auroc == cur->mean_auroc && e.heldout.fvu < cur->heldout.fvu))
      r.pick = static_cast<int64_t>(i);
  }
  const auto& lo = es[static_cast<size_t>(lowest_fvu)];
  const auto file = [](const SweepEntry& e) { return fs::path(e.sae_path).filename().string(); };
  if (r.pick >= 0) {
    const auto& e = es[static_cast<size_t>(r.pick)];
    int64_t scored = 0;
    for (const auto& c : e.columns) scored += c.note.empty();
    r.why = fmt::format(
        "{} ({}): the highest mean held-out best-latent AUROC, {:.3f} over {} column{}, of the {} SAE{} on the FVU "
        "/ alignment Pareto front with FVU <= {} and dead fraction <= {}; held-out FVU {:.4f}, L0 {:.1f}, dead {:.3f}",
        e.label, file(e), e.mean_auroc, scored, scored == 1 ? "" : "s", n_front, n_front == 1 ? "" : "s", p.max_fvu,
        p.max_dead, e.heldout.fvu, e.heldout.l0, e.heldout.dead_fraction);
    if (r.pick != lowest_fvu)
      r.why += fmt::format(" (the best reconstruction, {} ({}), reaches FVU {:.4f} at mean AUROC {:.3f})", lo.label,
                           file(lo), lo.heldout.fvu, lo.mean_auroc);
    if (std::isfinite(r.mean_probe_auroc))
      r.why += fmt::format("; K-latent sets {:.3f} against the embedding probe's {:.3f}", e.mean_set_auroc,
                           r.mean_probe_auroc);
  } else {
    r.pick = lowest_fvu;
    const bool any_scored = std::any_of(es.begin(), es.end(), [](const SweepEntry& e) { return std::isfinite(e.mean_auroc); });
    r.why = any_scored
                ? fmt::format("{} ({}): no SAE on the Pareto front has FVU <= {} and dead fraction <= {}; picked the "
                              "lowest held-out FVU, {:.4f} (loosen max_fvu / max_dead or train longer)",
                              lo.label, file(lo), p.max_fvu, p.max_dead, lo.heldout.fvu)
                : fmt::format("{} ({}): no annotated column has enough positives and negatives on both sides of the "
                              "split to score alignment; picked the lowest held-out FVU, {:.4f}",
                              lo.label, file(lo), lo.heldout.fvu);
  }
}

nlohmann::json to_json(const SweepResult& r, const SweepParams& p) {
  nlohmann::json j;
  j["format"] = "conceptlab.sae_sweep";
  j["schema_version"] = 1;
  j["params"] = p;
  j["n_train"] = r.n_train;
  j["n_heldout"] = r.n_test;
  j["mean_probe_auroc"] = json_number(r.mean_probe_auroc);
  nlohmann::json entries = nlohmann::json::array();
  for (size_t i = 0; i < r.entries.size(); ++i) {
    const auto& e = r.entries[i];
    nlohmann::json cols = nlohmann::json::array();
    for (const auto& c : e.columns)
      cols.push_back({{"name", c.name}, {"n_pos_train", c.n_pos_train}, {"n_pos_heldout", c.n_pos_test},
                      {"n_heldout", c.n_test}, {"best_latent", c.best_latent}, {"auroc_train", json_number(c.auroc_train)},
                      {"auroc", json_number(c.auroc)}, {"latent_set", c.latent_set}, {"set_auroc", json_number(c.set_auroc)},
                      {"probe_auroc", json_number(c.probe_auroc)}, {"note", c.note}});
    nlohmann::json h = sae::to_json(e.heldout);
    entries.push_back({{"label", e.label}, {"sae", fs::path(e.sae_path).filename().string()}, {"params", e.params},
                       {"n_latents", e.n_latents}, {"heldout", h}, {"mean_auroc", json_number(e.mean_auroc)},
                       {"mean_set_auroc", json_number(e.mean_set_auroc)}, {"pareto", e.pareto},
                       {"picked", static_cast<int64_t>(i) == r.pick}, {"train_seconds", e.train_seconds},
                       {"columns", cols}, {"bench", to_json(e.bench, sweep_bench_params(p))}});
  }
  j["entries"] = entries;
  if (r.pick >= 0) {
    const auto& e = r.entries[static_cast<size_t>(r.pick)];
    j["pick"] = {{"index", r.pick}, {"label", e.label}, {"sae", fs::path(e.sae_path).filename().string()}, {"why", r.why}};
  }
  return j;
}

void write_sweep_outputs(const SweepResult& r, const SweepParams& p, const std::string& out_dir,
                         const std::vector<std::string>& inputs) {
  const fs::path dir(out_dir);
  CsvTable t;
  t.header = {"sae", "label", "arch", "n_latents", "k", "prefixes", "heldout_fvu", "heldout_l0", "dead_fraction",
              "mean_auroc", "mean_set_auroc", "mean_probe_auroc", "pareto", "picked", "train_seconds"};
  const BenchParams bp = sweep_bench_params(p);
  for (int k : bp.probe_ks) t.header.push_back(fmt::format("sparse_probe_auroc_k{}", k));
  for (int n : bp.tpp_ns) t.header.push_back(fmt::format("tpp_n{}", n));
  const std::vector<std::string> col_names =
      r.entries.empty() ? std::vector<std::string>{} : [&] {
        std::vector<std::string> v;
        for (const auto& c : r.entries.front().columns) v.push_back(c.name);
        return v;
      }();
  for (const auto& c : col_names) t.header.push_back("auroc:" + c), t.header.push_back("set_auroc:" + c);
  auto f = [](double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(); };
  for (size_t i = 0; i < r.entries.size(); ++i) {
    const auto& e = r.entries[i];
    auto sizes = sae::nested_sizes(e.params, e.n_latents);
    std::vector<std::string> row = {fs::path(e.sae_path).filename().string(), e.label, e.params.arch,
                                    std::to_string(e.n_latents), std::to_string(e.params.k),
                                    fmt::format("{}", fmt::join(sizes, " ")), f(e.heldout.fvu), f(e.heldout.l0),
                                    f(e.heldout.dead_fraction), f(e.mean_auroc), f(e.mean_set_auroc),
                                    f(r.mean_probe_auroc), e.pareto ? "1" : "0",
                                    static_cast<int64_t>(i) == r.pick ? "1" : "0", fmt::format("{:.1f}", e.train_seconds)};
    for (size_t k = 0; k < bp.probe_ks.size(); ++k) row.push_back(k < e.bench.mean_probe_auroc.size() ? f(e.bench.mean_probe_auroc[k]) : "");
    for (size_t k = 0; k < bp.tpp_ns.size(); ++k) row.push_back(k < e.bench.tpp.tpp.size() ? f(e.bench.tpp.tpp[k]) : "");
    for (const auto& c : e.columns) row.push_back(f(c.auroc)), row.push_back(f(c.set_auroc));
    t.rows.push_back(std::move(row));
  }
  write_csv((dir / "sweep.csv").string(), t, inputs);
  CsvTable held;
  held.header = {"id"};
  for (const auto& id : r.heldout_ids) held.rows.push_back({id});
  write_csv((dir / "heldout.csv").string(), held, inputs);
  write_file_atomic((dir / "sweep.json").string(), to_json(r, p).dump(2) + "\n", inputs);

  // FVU (x) against mean best-latent AUROC (y): every SAE by arch, the front, the pick.
  std::vector<Series> series;
  std::vector<std::string> archs;
  for (const auto& e : r.entries)
    if (std::find(archs.begin(), archs.end(), e.params.arch) == archs.end()) archs.push_back(e.params.arch);
  for (const auto& a : archs) {
    Series s;
    s.name = a;
    s.connect = false;
    s.marker_px = 5;
    for (size_t i = 0; i < r.entries.size(); ++i) {
      const auto& e = r.entries[i];
      if (e.params.arch != a) continue;
      s.x.push_back(e.heldout.fvu), s.y.push_back(e.mean_auroc);
      s.labels.push_back(fmt::format("{:02d}", i));
    }
    series.push_back(std::move(s));
  }
  Series front;
  front.name = "Pareto front";
  std::vector<const SweepEntry*> fr;
  for (const auto& e : r.entries)
    if (e.pareto) fr.push_back(&e);
  std::sort(fr.begin(), fr.end(), [](auto* a, auto* b) { return a->heldout.fvu < b->heldout.fvu; });
  for (const auto* e : fr) front.x.push_back(e->heldout.fvu), front.y.push_back(e->mean_auroc);
  series.push_back(std::move(front));
  if (r.pick >= 0) {
    const auto& e = r.entries[static_cast<size_t>(r.pick)];
    Series pk;
    pk.name = fmt::format("pick: {:02d}", r.pick);
    pk.connect = false;
    pk.marker_px = 9;
    pk.x = {e.heldout.fvu}, pk.y = {e.mean_auroc};
    series.insert(series.begin(), std::move(pk));  // drawn first, under the SAE's own marker
  }
  write_line_chart((dir / "sweep.png").string(),
                   fmt::format("SAE sweep: {} SAEs scored on {} held-out rows (labels: sae_NN.h5)", r.entries.size(), r.n_test),
                   "held-out FVU (lower reconstructs better)", "mean held-out best-latent AUROC", series, inputs);
}

}  // namespace cl::explain
