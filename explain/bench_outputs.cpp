// `sae bench` outputs: bench.json (format conceptlab.sae_bench), bench.csv (one row per
// dictionary), bench.md (the tables) and the charts (sparse probing vs k, SCR vs n with the
// random band, FVU vs k=1 probing AUROC).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/params.h"
#include "explain/bench.h"
#include "explain/plot.h"

namespace fs = std::filesystem;

namespace cl::explain {

namespace {

std::string num(double v, int digits = 3) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "-"; }
std::string csv_num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(); }

nlohmann::json nums(const std::vector<double>& v) {
  nlohmann::json j = nlohmann::json::array();
  for (double x : v) j.push_back(json_number(x));
  return j;
}

// A file-name-safe form of a pair ("hair:melanoma" -> "hair_melanoma").
std::string safe(const std::string& s) {
  std::string o;
  for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
  return o;
}

}  // namespace

nlohmann::json to_json(const BenchEntry& e, const BenchParams& p) {
  nlohmann::json cols = nlohmann::json::array();
  for (const auto& c : e.columns) {
    nlohmann::json probes = nlohmann::json::array();
    for (const auto& ps : c.probes) probes.push_back({{"k", ps.k}, {"auroc", json_number(ps.auroc)}, {"latents", ps.latents}});
    cols.push_back({{"name", c.name}, {"n_pos_train", c.n_pos_train}, {"n_pos_heldout", c.n_pos_test},
                    {"n_heldout", c.n_test}, {"probes", probes}, {"dense_probe_auroc", json_number(c.dense_probe_auroc)},
                    {"note", c.note}});
  }
  nlohmann::json scr = nlohmann::json::array();
  for (const auto& c : e.scr)
    scr.push_back({{"spurious", c.spurious}, {"label", c.label}, {"n_biased_train", c.n_biased_train},
                   {"n_balanced_train", c.n_balanced_train}, {"n_eval", c.n_eval},
                   {"auroc_biased", json_number(c.auroc_biased)}, {"auroc_unbiased", json_number(c.auroc_unbiased)},
                   {"n", c.ns}, {"scr", nums(c.scr)}, {"auroc_ablated", nums(c.auroc_ablated)},
                   {"random_mean", nums(c.random_mean)}, {"random_min", nums(c.random_lo)},
                   {"random_max", nums(c.random_hi)}, {"latents", c.latents}, {"note", c.note}});
  const auto& rc = e.recon;
  return nlohmann::json(
      {{"label", e.label}, {"kind", e.kind}, {"path", e.path}, {"n_latents", e.n_latents},
       {"reconstruction",
        {{"fvu", json_number(rc.fvu)}, {"cosine", json_number(rc.cosine)}, {"l0", rc.l0},
         {"dead_fraction", rc.dead_fraction}, {"dense_fraction", rc.dense_fraction},
         {"frequency_log10_edges", rc.freq_edges}, {"frequency_counts", rc.freq_counts}}},
       {"sparse_probing", {{"k", p.probe_ks}, {"mean_auroc", nums(e.mean_probe_auroc)}, {"columns", cols}}},
       {"scr", scr},
       {"tpp", {{"n", e.tpp.ns}, {"tpp", nums(e.tpp.tpp)}, {"own_drop", nums(e.tpp.own_drop)},
                {"other_drop", nums(e.tpp.other_drop)}, {"n_columns", e.tpp.n_columns}, {"note", e.tpp.note}}},
       {"seconds", e.seconds}});
}

nlohmann::json to_json(const BenchResult& r, const BenchParams& p) {
  nlohmann::json j;
  j["format"] = "conceptlab.sae_bench";
  j["schema_version"] = 1;
  j["params"] = p;
  j["n_train"] = r.n_train;
  j["n_heldout"] = r.n_test;
  j["baseline_l0"] = r.baseline_l0;
  j["baseline_latents"] = r.baseline_latents;
  j["columns"] = r.column_names;
  j["dense_probe_auroc"] = nums(r.dense_probe_auroc);
  j["mean_dense_probe_auroc"] = json_number(r.mean_dense_probe_auroc);
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& e : r.entries) entries.push_back(to_json(e, p));
  j["entries"] = entries;
  nlohmann::json st = nlohmann::json::array();
  for (const auto& s : r.stability)
    st.push_back({{"saes", s.members}, {"mean_cosine", json_number(s.mean_cosine)},
                  {"fraction_matched", json_number(s.fraction_matched)}, {"random_cosine", json_number(s.random_cosine)},
                  {"random_fraction", json_number(s.random_fraction)}});
  j["stability"] = st;
  return j;
}

namespace {

CsvTable bench_table(const BenchResult& r, const BenchParams& p) {
  CsvTable t;
  t.header = {"dictionary", "kind", "path", "n_latents", "fvu", "cosine", "l0", "dead_fraction", "dense_fraction"};
  for (int k : p.probe_ks) t.header.push_back(fmt::format("probe_auroc_k{}", k));
  t.header.push_back("dense_probe_auroc");
  const auto pair_name = [](const ScrCurve& c) { return c.spurious + ":" + c.label; };
  if (!r.entries.empty())
    for (const auto& c : r.entries.front().scr)
      for (int n : p.scr_ns)
        t.header.push_back(fmt::format("scr_{}_n{}", pair_name(c), n)),
            t.header.push_back(fmt::format("scr_random_{}_n{}", pair_name(c), n));
  for (int n : p.tpp_ns) t.header.push_back(fmt::format("tpp_n{}", n));
  t.header.push_back("seconds");
  for (const auto& e : r.entries) {
    const auto& rc = e.recon;
    std::vector<std::string> row = {e.label, e.kind, e.path, std::to_string(e.n_latents), csv_num(rc.fvu),
                                    csv_num(rc.cosine), csv_num(rc.l0), csv_num(rc.dead_fraction), csv_num(rc.dense_fraction)};
    for (double a : e.mean_probe_auroc) row.push_back(csv_num(a));
    row.push_back(csv_num(r.mean_dense_probe_auroc));
    for (const auto& c : e.scr)
      for (size_t i = 0; i < p.scr_ns.size(); ++i)
        row.push_back(i < c.scr.size() ? csv_num(c.scr[i]) : ""),
            row.push_back(i < c.random_mean.size() ? csv_num(c.random_mean[i]) : "");
    for (double v : e.tpp.tpp) row.push_back(csv_num(v));
    row.push_back(fmt::format("{:.1f}", e.seconds));
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string bench_markdown(const BenchResult& r, const BenchParams& p) {
  std::string md = fmt::format("# SAE bench\n\n{} training / {} held-out images; baselines at L0 {} with {} latents "
                               "(PCA: every component). Definitions: docs/sae-bench.md.\n\n",
                               r.n_train, r.n_test, r.baseline_l0, r.baseline_latents);
  md += "## Reconstruction (held out)\n\n| dictionary | latents | FVU | cosine | L0 | dead | dense |\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& e : r.entries)
    md += fmt::format("| {} | {} | {} | {} | {:.1f} | {} | {} |\n", e.label, e.n_latents, num(e.recon.fvu, 4),
                      num(e.recon.cosine), e.recon.l0, num(e.recon.dead_fraction), num(e.recon.dense_fraction));
  md += fmt::format("\n## Sparse probing: mean held-out AUROC over {} columns\n\nThe dense probe on the embeddings "
                    "(the ceiling): {}.\n\n| dictionary |",
                    std::count_if(r.dense_probe_auroc.begin(), r.dense_probe_auroc.end(), [](double v) { return std::isfinite(v); }),
                    num(r.mean_dense_probe_auroc));
  for (int k : p.probe_ks) md += fmt::format(" k={} |", k);
  md += "\n|---|";
  for (size_t i = 0; i < p.probe_ks.size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& e : r.entries) {
    md += "| " + e.label + " |";
    for (double a : e.mean_probe_auroc) md += " " + num(a) + " |";
    md += "\n";
  }
  if (!r.entries.empty()) {
    md += "\nPer column at k=1 (dense probe in the last column):\n\n| dictionary |";
    for (const auto& c : r.column_names) md += " " + c + " |";
    md += "\n|---|";
    for (size_t i = 0; i < r.column_names.size(); ++i) md += "---:|";
    md += "\n";
    for (const auto& e : r.entries) {
      md += "| " + e.label + " |";
      for (const auto& c : e.columns) md += " " + (c.probes.empty() ? std::string("-") : num(c.probes.front().auroc)) + " |";
      md += "\n";
    }
    md += "| dense probe |";
    for (double a : r.dense_probe_auroc) md += " " + num(a) + " |";
    md += "\n";
    for (const auto& c : r.entries.front().columns)
      if (!c.note.empty()) md += fmt::format("\n- {}: not scored ({})", c.name, c.note);
    md += "\n";
  }
  if (!r.entries.empty() && !r.entries.front().scr.empty()) {
    md += "\n## Spurious correlation removal (SCR): 1 = zeroing removes the bias, random control in brackets\n";
    for (size_t q = 0; q < r.entries.front().scr.size(); ++q) {
      const auto& c0 = r.entries.front().scr[q];
      md += fmt::format("\n### {} : {}\n\n| dictionary | A_biased | A_unbiased |", c0.spurious, c0.label);
      for (int n : p.scr_ns) md += fmt::format(" n={} |", n);
      md += "\n|---|---:|---:|";
      for (size_t i = 0; i < p.scr_ns.size(); ++i) md += "---:|";
      md += "\n";
      std::string notes;
      for (const auto& e : r.entries) {
        const auto& c = e.scr[q];
        md += fmt::format("| {} | {} | {} |", e.label, num(c.auroc_biased), num(c.auroc_unbiased));
        for (size_t i = 0; i < p.scr_ns.size(); ++i)
          md += i < c.scr.size() ? fmt::format(" {} ({}) |", num(c.scr[i], 2), num(c.random_mean[i], 2)) : " - |";
        md += "\n";
        if (!c.note.empty()) notes += fmt::format("- {}: {}\n", e.label, c.note);
      }
      if (!notes.empty()) md += "\n" + notes;
    }
  }
  md += "\n## Targeted probe perturbation (TPP): own probe's balanced-accuracy drop minus the others'\n\n| dictionary |";
  for (int n : p.tpp_ns) md += fmt::format(" n={} |", n);
  md += "\n|---|";
  for (size_t i = 0; i < p.tpp_ns.size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& e : r.entries) {
    md += "| " + e.label + " |";
    for (double v : e.tpp.tpp) md += " " + num(v) + " |";
    md += "\n";
  }
  if (!r.stability.empty()) {
    md += fmt::format("\n## Stability: Hungarian-matched decoder rows (fraction at cosine >= {})\n\n| SAEs | mean cosine | "
                      "matched | random dictionaries |\n|---|---:|---:|---:|\n",
                      p.stable_cosine);
    for (const auto& s : r.stability)
      md += fmt::format("| {} | {} | {} | {} / {} |\n", s.group, num(s.mean_cosine), num(s.fraction_matched),
                        num(s.random_cosine), num(s.random_fraction));
  }
  return md;
}

}  // namespace

namespace {

std::string scr_chart_name(const std::string& spurious, const std::string& label) {
  return fmt::format("scr_{}_{}.png", safe(spurious), safe(label));
}

// The files every bench writes; an SCR chart per scored pair comes on top.
const std::vector<std::string>& fixed_output_files() {
  static const std::vector<std::string> files = {"bench.csv", "bench.json", "bench.md", "probing.png", "pareto.png"};
  return files;
}

}  // namespace

std::vector<std::string> bench_output_files(const BenchParams& p) {
  std::vector<std::string> out = fixed_output_files();
  for (const auto& pair : p.spurious) {
    const auto colon = pair.find(':');
    out.push_back(scr_chart_name(pair.substr(0, colon), pair.substr(colon + 1)));
  }
  return out;
}

std::vector<std::string> write_bench_outputs(const BenchResult& r, const BenchParams& p, const std::string& out_dir,
                                             const std::vector<std::string>& inputs) {
  const fs::path dir(out_dir);
  std::vector<std::string> written = fixed_output_files();
  write_csv((dir / "bench.csv").string(), bench_table(r, p), inputs);
  write_file_atomic((dir / "bench.json").string(), to_json(r, p).dump(2) + "\n", inputs);
  write_file_atomic((dir / "bench.md").string(), bench_markdown(r, p), inputs);

  // Sparse probing AUROC against k, the dense probe as a flat line.
  std::vector<Series> probing;
  for (const auto& e : r.entries) {
    Series s;
    s.name = e.label;
    for (size_t i = 0; i < p.probe_ks.size(); ++i) s.x.push_back(p.probe_ks[i]), s.y.push_back(e.mean_probe_auroc[i]);
    probing.push_back(std::move(s));
  }
  if (std::isfinite(r.mean_dense_probe_auroc)) {
    Series s;
    s.name = "dense probe (embeddings)";
    s.x = {static_cast<double>(p.probe_ks.front()), static_cast<double>(p.probe_ks.back())};
    s.y = {r.mean_dense_probe_auroc, r.mean_dense_probe_auroc};
    s.marker_px = 0;
    probing.push_back(std::move(s));
  }
  write_line_chart((dir / "probing.png").string(), "Sparse probing: mean held-out AUROC of a probe on the top-k latents",
                   "k (latents per probe)", "mean held-out AUROC", probing, inputs);

  // SCR against n per pair, each SAE with its random band.
  if (!r.entries.empty())
    for (size_t q = 0; q < r.entries.front().scr.size(); ++q) {
      std::vector<Series> ss;
      for (const auto& e : r.entries) {
        const auto& c = e.scr[q];
        if (c.scr.empty()) continue;
        Series s;
        s.name = e.label;
        for (size_t i = 0; i < c.ns.size(); ++i) s.x.push_back(c.ns[i]), s.y.push_back(c.scr[i]);
        ss.push_back(std::move(s));
        if (e.kind != "sae") continue;
        Series band;
        band.name = e.label + ": random latents";
        for (size_t i = 0; i < c.ns.size(); ++i)
          band.x.push_back(c.ns[i]), band.y.push_back(c.random_mean[i]), band.lo.push_back(c.random_lo[i]),
              band.hi.push_back(c.random_hi[i]);
        ss.push_back(std::move(band));
      }
      const auto& c0 = r.entries.front().scr[q];
      if (ss.empty()) continue;
      const std::string name = scr_chart_name(c0.spurious, c0.label);
      write_line_chart((dir / name).string(),
                       fmt::format("SCR {}:{}: share of the bias removed by zeroing n latents", c0.spurious, c0.label),
                       "n (latents zeroed)", "SCR (1 = bias removed)", ss, inputs);
      written.push_back(name);
    }

  // FVU against k=1 sparse probing, the Pareto front (lower FVU, higher AUROC).
  std::vector<Series> pts;
  std::vector<const BenchEntry*> front;
  for (const auto& e : r.entries) {
    Series s;
    s.name = e.label;
    s.connect = false;
    s.marker_px = 5;
    s.x = {e.recon.fvu}, s.y = {e.mean_probe_auroc.front()};
    pts.push_back(std::move(s));
    bool dominated = !std::isfinite(e.recon.fvu) || !std::isfinite(e.mean_probe_auroc.front());
    for (const auto& o : r.entries) {
      if (dominated) break;
      if (&o == &e) continue;
      const double of = o.recon.fvu, oa = o.mean_probe_auroc.front(), ef = e.recon.fvu, ea = e.mean_probe_auroc.front();
      dominated = of <= ef && oa >= ea && (of < ef || oa > ea);
    }
    if (!dominated) front.push_back(&e);
  }
  std::sort(front.begin(), front.end(), [](auto* a, auto* b) { return a->recon.fvu < b->recon.fvu; });
  Series fr;
  fr.name = "Pareto front";
  for (const auto* e : front) fr.x.push_back(e->recon.fvu), fr.y.push_back(e->mean_probe_auroc.front());
  pts.push_back(std::move(fr));
  write_line_chart((dir / "pareto.png").string(), "Reconstruction against concept alignment (held out)",
                   "FVU (lower reconstructs better)", fmt::format("mean sparse-probing AUROC, k={}", p.probe_ks.front()),
                   pts, inputs);
  return written;
}

}  // namespace cl::explain
