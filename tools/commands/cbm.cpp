// `conceptlab cbm fit|eval|predict`: sparse logistic regression on SAE activations (or
// embeddings) under the reference's repeated-split protocol or a fixed split.
#include <spdlog/spdlog.h>

#include "cbm/protocol.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/output_claim.h"
#include "core/linear_model.h"
#include "tools/command.h"
#include "tools/params_cli.h"
#include "tools/commands/flags.h"

namespace cl::cli {

namespace {

using cbm::ProtocolParams;

void add_load_options(CLI::App* s, cbm::LoadParams& l, bool with_labels) {
  s->add_option("--features", l.features_path, "conceptlab.activations or conceptlab.embeddings file")->required();
  if (with_labels) {
    add_labels_flag(s, l.labels_path)->required();
    add_label_col_flag(s, l.label_col)->required();
  }
  add_id_col_flag(s, l.id_col);
}

void print_summary(const cbm::ProtocolReport& r) {
  auto line = [](const char* name, const cbm::Summary& m) {
    if (std::isnan(m.mean)) return;
    std::printf("%-18s %.4f  std %.4f  95%% [%.4f, %.4f]\n", name, m.mean, m.std, m.lo, m.hi);
  };
  line("AUROC", r.auroc);
  line("macro-F1", r.macro_f1);
  line("accuracy", r.accuracy);
  line("balanced accuracy", r.balanced_accuracy);
  line("non-zero weights", r.nnz);
}

void print_fixed(const cbm::ProtocolReport& r) {
  std::printf("fixed split: %lld train, %lld valid, %lld test; alpha %g\n", (long long)r.n_train, (long long)r.n_valid,
              (long long)r.n_test, r.alpha);
  auto part = [](const char* name, const cbm::Metrics& m) {
    auto num = [](double v) { return std::isnan(v) ? std::string("null") : fmt::format("{}", v); };
    std::printf("%-5s AUROC %s  macro-F1 %s  accuracy %s  balanced accuracy %s\n", name, num(m.auroc).c_str(),
                num(m.macro_f1).c_str(), num(m.accuracy).c_str(), num(m.balanced_accuracy).c_str());
  };
  if (r.has_valid) part("valid", r.valid);
  part("test", r.test);
}

Runner setup_fit(CLI::App* s) {
  struct Args {
    cbm::LoadParams load;
    std::string out_path, train_ids, test_ids;
    std::vector<double> alpha_path;
    bool keep_missing = false, json = false;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<ProtocolParams>>(s, "CBM params JSON (configs/cbm-fit.json); flags override it");
  add_load_options(s, a->load, true);
  s->add_option("--out", a->out_path, "write the model (conceptlab.linear) here");
  auto& c = *pc;
  using M = cbm::LogRegParams;
  auto model = [](auto field) { return [field](ProtocolParams& p) -> auto& { return p.model.*field; }; };
  c.option("--penalty", model(&M::penalty), "l1 | l2 | elasticnet | none");
  c.option("--alpha", model(&M::alpha), "penalty strength (objective: mean log-loss + alpha * penalty)");
  c.option("--l1-ratio", model(&M::l1_ratio), "elasticnet: share of L1");
  c.option("--class-weight", model(&M::class_weight), "none | balanced");
  c.option("--tol", model(&M::tol), "stop when the max optimality violation is below this");
  c.option("--max-iter", model(&M::max_iter), "outer iterations");
  c.flag("--standardize,!--no-standardize", model(&M::standardize), "scale features to unit std (no centring)");
  c.flag("--fit-intercept,!--no-intercept", model(&M::fit_intercept), "fit intercepts");
  c.option("--solver", model(&M::solver), "auto | cd | lbfgs");
  c.option("--splits", &ProtocolParams::splits, "repeated stratified splits");
  c.option("--test-size", &ProtocolParams::test_size, "test share of each split");
  c.option("--seed", &ProtocolParams::seed, "split seed");
  c.option("--threads", &ProtocolParams::threads, "parallel splits (0 = all cores)");
  add_split_col_flag(s, a->load.split_col);  // a fixed split
  s->add_option("--train-ids", a->train_ids, "fixed split: file with one training id per line");
  s->add_option("--test-ids", a->test_ids, "fixed split: file with one test id per line");
  c.option("--tune", &ProtocolParams::tune, "'alpha': choose alpha on the validation rows (fixed split)");
  c.option("--tune-alphas", &ProtocolParams::tune_alphas, "alpha grid for --tune")->delimiter(',');
  s->add_option("--alpha-path", a->alpha_path, "alphas (comma list): non-zeros and metrics per alpha")->delimiter(',');
  s->add_flag("--keep-missing", a->keep_missing, "error on empty labels instead of dropping those rows");
  s->add_flag("--json", a->json, "print one JSON object");
  return [a, pc](const Context& ctx) -> int {
    const ProtocolParams proto = pc->resolve();
    a->load.drop_missing = !a->keep_missing;
    if (!a->train_ids.empty() != !a->test_ids.empty()) throw_usage("--train-ids and --test-ids go together");
    if (!a->train_ids.empty() && !a->load.split_col.empty()) throw_usage("use --split-col or --train-ids, not both");
    cbm::validate(proto.model);
    spdlog::info("cbm fit config: {}", nlohmann::json(proto).dump());
    if (!a->out_path.empty()) check_output_path(a->out_path, {a->load.features_path, a->load.labels_path});
    auto d = cbm::load_dataset(a->load);
    spdlog::info("{} rows x {} features ({}), {} classes", d.X.n_rows, d.X.n_cols, d.features_kind, d.n_classes());
    std::vector<int64_t> train, valid, test;
    if (!a->load.split_col.empty()) cbm::rows_from_split_col(d, train, valid, test);
    if (!a->train_ids.empty()) {
      train = cbm::rows_for_id_file(d, a->train_ids), test = cbm::rows_for_id_file(d, a->test_ids);
      cbm::check_disjoint(train, test, d, a->train_ids, a->test_ids);
    }
    const bool fixed = !train.empty();
    if (!fixed && !proto.tune.empty()) throw_usage("--tune needs a fixed split (--split-col with valid rows)");
    auto r = fixed ? cbm::run_fixed_split(d, train, valid, test, proto) : cbm::run_repeated_splits(d, proto, ctx.progress);
    if (!a->alpha_path.empty()) {
      if (!fixed) {
        auto s0 = cbm::stratified_split(d.y, d.n_classes(), proto.test_size, proto.seed, d.labels_path, d.classes);
        train = s0.train, test = s0.test;
      }
      r.report.alpha_path = cbm::alpha_path(d, train, test, proto.model, a->alpha_path);
    }
    nlohmann::json report = r.to_json();
    if (!a->out_path.empty()) {
      nlohmann::json config = proto;
      config["features"] = a->load.features_path;
      config["labels"] = a->load.labels_path;
      config["label_col"] = a->load.label_col;
      config["id_col"] = a->load.id_col;
      write_linear(a->out_path, cbm::to_linear_model(r.model, d, r.to_json(false), config),
                   {a->load.features_path, a->load.labels_path});
      report["model"] = a->out_path;
    }
    if (a->json) {
      print_json(report);
      return 0;
    }
    if (fixed) {
      print_fixed(r.report);
    } else {
      std::printf("%d stratified splits (test %.2f)\n", proto.splits, proto.test_size);
      print_summary(r.report);
    }
    for (const auto& pt : r.report.alpha_path)
      std::printf("alpha %-10g nnz %-8lld AUROC %s\n", pt.alpha, (long long)pt.nnz,
                  std::isnan(pt.metrics.auroc) ? "null" : fmt::format("{}", pt.metrics.auroc).c_str());
    return 0;
  };
}

struct EvalArgs {
  cbm::LoadParams load;
  std::string model_path, out_path;
  bool json = false;
};

cbm::LogRegFit load_model(const std::string& path, const CsrMatrix& X, const std::string& features_path,
                          LinearModel& lm) {
  lm = read_linear(path);
  auto f = cbm::from_linear_model(lm);
  if (f.n_features != X.n_cols)
    throw_input("{}: {} features; model {} expects {}", features_path, X.n_cols, path, f.n_features);
  return f;
}

Runner setup_cbm_eval(CLI::App* s) {
  auto a = std::make_shared<EvalArgs>();
  s->add_option("--model", a->model_path, "conceptlab.linear model")->required();
  add_load_options(s, a->load, true);
  s->add_flag("--json", a->json, "print one JSON object");
  return [a](const Context&) -> int {
    LinearModel lm = read_linear(a->model_path);
    auto d = cbm::load_dataset(a->load, &lm.classes);
    auto f = load_model(a->model_path, d.X, a->load.features_path, lm);
    auto m = cbm::evaluate(d.y, cbm::predict_proba(d.X, f), d.n_classes());
    nlohmann::json j = cbm::to_json(m, d.n_classes());
    j["n_rows"] = d.X.n_rows;
    j["classes"] = d.classes;
    if (a->json) print_json(j);
    else std::printf("%lld rows: AUROC %.4f  macro-F1 %.4f  accuracy %.4f  balanced accuracy %.4f\n",
                     (long long)d.X.n_rows, m.auroc, m.macro_f1, m.accuracy, m.balanced_accuracy);
    return 0;
  };
}

Runner setup_predict(CLI::App* s) {
  auto a = std::make_shared<EvalArgs>();
  s->add_option("--model", a->model_path, "conceptlab.linear model")->required();
  add_load_options(s, a->load, false);
  s->add_option("--out", a->out_path, "CSV: id, predicted class, p_<class> per class")->required();
  return [a](const Context&) -> int {
    auto feats = cbm::read_features(a->load.features_path);
    LinearModel lm;
    auto f = load_model(a->model_path, feats.X, a->load.features_path, lm);
    auto proba = cbm::predict_proba(feats.X, f);
    auto pred = cbm::argmax_rows(proba, f.n_classes);
    CsvTable t;
    t.header = {a->load.id_col, "predicted"};
    for (auto& c : lm.classes) t.header.push_back("p_" + c);
    for (size_t i = 0; i < feats.ids.size(); ++i) {
      std::vector<std::string> row = {feats.ids[i], lm.classes[pred[i]]};
      for (int k = 0; k < f.n_classes; ++k) row.push_back(fmt::format("{:.6g}", proba[i * f.n_classes + k]));
      t.rows.push_back(std::move(row));
    }
    write_csv(a->out_path, t, {a->load.features_path, a->model_path});
    spdlog::info("wrote {} predictions to {}", t.rows.size(), a->out_path);
    return 0;
  };
}

}  // namespace

Command command_cbm() {
  return {"cbm", "concept bottleneck models: sparse logistic regression on activations", [](CLI::App& sub) -> Runner {
            sub.require_subcommand(1);
            auto* fit = sub.add_subcommand("fit", "fit under repeated stratified splits or a fixed split");
            auto* ev = sub.add_subcommand("eval", "metrics of a saved model on features + labels");
            auto* pr = sub.add_subcommand("predict", "per-image predicted class and probabilities");
            for (auto* c : {fit, ev, pr}) c->option_defaults()->always_capture_default();
            const std::vector<std::pair<CLI::App*, Runner>> runners = {
                {fit, setup_fit(fit)}, {ev, setup_cbm_eval(ev)}, {pr, setup_predict(pr)}};
            return [runners](const Context& ctx) -> int {
              for (const auto& [c, run] : runners)
                if (c->parsed()) return run(ctx);
              throw_usage("cbm: expected one of fit, eval, predict");
            };
          }};
}

}  // namespace cl::cli
