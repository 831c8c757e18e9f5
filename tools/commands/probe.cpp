// `conceptlab probe`: linear probes on raw embeddings under the literature's protocols
// (panderm: L2 logistic regression, lambda = M*C/100, L-BFGS; kshot: k labelled per class).
// Several label columns may be given (comma list): the embeddings are read once.
#include <spdlog/spdlog.h>

#include "cbm/protocol.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/params_cli.h"
#include "tools/commands/flags.h"

namespace cl::cli {

namespace {

using cbm::ProbeParams;

struct ProbeArgs {
  cbm::LoadParams load;
  std::vector<std::string> label_cols;
  bool json = false;
};

nlohmann::json probe_column(const ProbeArgs& a, const ProbeParams& p, const cbm::Features& feats,
                            const std::string& col, ProgressSink& progress) {
  auto lp = a.load;
  lp.label_col = col;
  auto d = cbm::load_dataset(lp, feats);
  if (p.protocol == "kshot")
    return {{"protocol", "kshot"}, {"classes", d.classes}, {"shots", cbm::to_json(cbm::run_probe_kshot(d, p))}};
  std::vector<int64_t> train, valid, test;
  if (!lp.split_col.empty()) cbm::rows_from_split_col(d, train, valid, test);
  nlohmann::json r = cbm::run_probe_panderm(d, p, train, test, progress).to_json(false);
  r["protocol"] = "panderm";
  return r;
}

void print_column(const nlohmann::json& r, const std::string& col, const std::string& protocol) {
  auto num = [](const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); };
  if (protocol == "kshot") {
    for (auto& k : r["shots"])
      std::printf("%-24s k=%-3d accuracy %.4f  macro-F1 %.4f  AUROC %.4f\n", col.c_str(), k["k"].get<int>(),
                  num(k["accuracy"]["mean"]), num(k["macro_f1"]["mean"]), num(k["auroc"]["mean"]));
  } else if (r.contains("test")) {
    std::printf("%-24s train %-5lld test %-5lld AUROC %.4f  macro-F1 %.4f  accuracy %.4f\n", col.c_str(),
                (long long)r["n_train"].get<int64_t>(), (long long)r["n_test"].get<int64_t>(), num(r["test"]["auroc"]),
                num(r["test"]["macro_f1"]), num(r["test"]["accuracy"]));
  } else {
    std::printf("%-24s n=%-5lld AUROC %.4f (std %.4f)  macro-F1 %.4f  accuracy %.4f\n", col.c_str(),
                (long long)r["n_rows"].get<int64_t>(), num(r["auroc"]["mean"]), num(r["auroc"]["std"]),
                num(r["macro_f1"]["mean"]), num(r["accuracy"]["mean"]));
  }
}

}  // namespace

Command command_probe() {
  return {"probe", "linear probes on embeddings (panderm or k-shot protocol)", [](CLI::App& s) -> Runner {
            auto a = std::make_shared<ProbeArgs>();
            auto pc = std::make_shared<ParamsCli<ProbeParams>>(&s, "probe params JSON (configs/probe-panderm.json)");
            s.add_option("--embeddings", a->load.features_path, "conceptlab.embeddings (or activations) file")
                ->required();
            add_labels_flag(&s, a->load.labels_path)->required();
            s.add_option("--label-col", a->label_cols, "label column(s), comma-separated")->required()->delimiter(',');
            add_id_col_flag(&s, a->load.id_col);
            add_split_col_flag(&s, a->load.split_col);  // the official split; panderm only
            auto& c = *pc;
            c.option("--protocol", &ProbeParams::protocol, "panderm | kshot");
            c.option("--shots", &ProbeParams::shots, "kshot: k values")->delimiter(',');
            c.option("--seeds", &ProbeParams::seeds, "kshot: repetitions per k");
            c.option("--splits", &ProbeParams::splits, "panderm without --split-col: stratified splits");
            c.option("--test-size", &ProbeParams::test_size, "test share of stratified splits");
            c.option("--seed", &ProbeParams::seed, "seed");
            c.option("--max-iter", &ProbeParams::max_iter, "L-BFGS iterations");
            c.flag("--standardize,!--no-standardize", &ProbeParams::standardize, "scale features to unit std");
            c.option("--threads", &ProbeParams::threads, "parallel fits (0 = all cores)");
            s.add_flag("--json", a->json, "print one JSON object");
            return [a, pc](const Context& ctx) -> int {
              const ProbeParams p = pc->resolve();
              cbm::validate(p);
              spdlog::info("probe config: {}", nlohmann::json(p).dump());
              auto feats = cbm::read_features(a->load.features_path);
              nlohmann::json all = nlohmann::json::object();
              // With several columns one unusable column (e.g. a class absent from the official
              // train split) is reported and skipped; the exit code still says something failed.
              int failed = 0;
              for (auto& col : a->label_cols) {
                nlohmann::json r;
                try {
                  r = probe_column(*a, p, feats, col, ctx.progress);
                } catch (const InputError& e) {
                  if (a->label_cols.size() == 1) throw;
                  spdlog::error("{}", e.what());
                  all[col] = {{"error", e.what()}};
                  ++failed;
                  continue;
                }
                if (!a->json) print_column(r, col, p.protocol);
                all[col] = r;
              }
              if (a->json) print_json(a->label_cols.size() == 1 ? all[a->label_cols[0]] : nlohmann::json{{"columns", all}});
              return failed ? 1 : 0;
            };
          }};
}

}  // namespace cl::cli
