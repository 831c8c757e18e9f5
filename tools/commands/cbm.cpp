// `conceptlab cbm fit|eval|predict`: sparse logistic regression on SAE activations (or
// embeddings) under the reference's repeated-split protocol or a fixed split.
#include <spdlog/spdlog.h>

#include "cbm/protocol.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/linear_model.h"
#include "tools/command.h"

namespace cl::cli {

namespace {

struct FitArgs {
  cbm::LoadParams load;
  cbm::ProtocolParams proto;
  std::string out_path, train_ids, test_ids;
  std::vector<double> alpha_path;
  bool keep_missing = false, json = false;
};

void add_load_options(CLI::App* s, cbm::LoadParams& l, bool with_labels) {
  s->add_option("--features", l.features_path, "conceptlab.activations or conceptlab.embeddings file")->required();
  if (with_labels) {
    s->add_option("--labels", l.labels_path, "labels CSV")->required();
    s->add_option("--label-col", l.label_col, "label column")->required();
  }
  s->add_option("--id-col", l.id_col, "id column joining CSV rows to feature ids");
}

void print_summary(const nlohmann::json& r) {
  auto line = [&](const char* name, const char* key) {
    if (!r.contains(key) || r[key]["mean"].is_null()) return;
    auto& m = r[key];
    std::printf("%-18s %.4f  std %.4f  95%% [%.4f, %.4f]\n", name, m["mean"].get<double>(), m["std"].get<double>(),
                m["ci95"][0].is_null() ? NAN : m["ci95"][0].get<double>(),
                m["ci95"][1].is_null() ? NAN : m["ci95"][1].get<double>());
  };
  line("AUROC", "auroc");
  line("macro-F1", "macro_f1");
  line("accuracy", "accuracy");
  line("balanced accuracy", "balanced_accuracy");
  line("non-zero weights", "nnz");
}

Runner setup_fit(CLI::App* s, std::shared_ptr<FitArgs> a) {
  add_load_options(s, a->load, true);
  s->add_option("--out", a->out_path, "write the model (conceptlab.linear) here");
  auto& m = a->proto.model;
  s->add_option("--penalty", m.penalty, "l1 | l2 | elasticnet | none");
  s->add_option("--alpha", m.alpha, "penalty strength (objective: mean log-loss + alpha * penalty)");
  s->add_option("--l1-ratio", m.l1_ratio, "elasticnet: share of L1");
  s->add_option("--class-weight", m.class_weight, "none | balanced");
  s->add_option("--tol", m.tol, "stop when the max optimality violation is below this");
  s->add_option("--max-iter", m.max_iter, "outer iterations");
  s->add_flag("--standardize,!--no-standardize", m.standardize, "scale features to unit std (no centring)");
  s->add_flag("--fit-intercept,!--no-intercept", m.fit_intercept, "fit intercepts");
  s->add_option("--solver", m.solver, "auto | cd | lbfgs");
  s->add_option("--splits", a->proto.splits, "repeated stratified splits");
  s->add_option("--test-size", a->proto.test_size, "test share of each split");
  s->add_option("--seed", a->proto.seed, "split seed");
  s->add_option("--threads", a->proto.threads, "parallel splits (0 = all cores)");
  s->add_option("--split-col", a->load.split_col, "fixed split column (train/valid/test)");
  s->add_option("--train-ids", a->train_ids, "fixed split: file with one training id per line");
  s->add_option("--test-ids", a->test_ids, "fixed split: file with one test id per line");
  s->add_option("--tune", a->proto.tune, "'alpha': choose alpha on the validation rows (fixed split)");
  s->add_option("--tune-alphas", a->proto.tune_alphas, "alpha grid for --tune")->delimiter(',');
  s->add_option("--alpha-path", a->alpha_path, "alphas (comma list): non-zeros and metrics per alpha")->delimiter(',');
  s->add_flag("--keep-missing", a->keep_missing, "error on empty labels instead of dropping those rows");
  s->add_flag("--json", a->json, "print one JSON object");
  return [a]() -> int {
    a->load.drop_missing = !a->keep_missing;
    if (!a->train_ids.empty() != !a->test_ids.empty()) throw_usage("--train-ids and --test-ids go together");
    if (!a->train_ids.empty() && !a->load.split_col.empty()) throw_usage("use --split-col or --train-ids, not both");
    cbm::validate(a->proto.model);
    spdlog::info("cbm fit config: {}", nlohmann::json(a->proto).dump());
    auto d = cbm::load_dataset(a->load);
    spdlog::info("{} rows x {} features ({}), {} classes", d.X.n_rows, d.X.n_cols, d.features_kind, d.n_classes());
    std::vector<int64_t> train, valid, test;
    if (!a->load.split_col.empty()) cbm::rows_from_split_col(d, train, valid, test);
    if (!a->train_ids.empty()) train = cbm::rows_for_id_file(d, a->train_ids), test = cbm::rows_for_id_file(d, a->test_ids);
    const bool fixed = !train.empty();
    if (!fixed && !a->proto.tune.empty()) throw_usage("--tune needs a fixed split (--split-col with valid rows)");
    auto r = fixed ? cbm::run_fixed_split(d, train, valid, test, a->proto) : cbm::run_repeated_splits(d, a->proto);
    if (!a->alpha_path.empty()) {
      if (!fixed) {
        auto s0 = cbm::stratified_split(d.y, d.n_classes(), a->proto.test_size, a->proto.seed, d.labels_path, d.classes);
        train = s0.train, test = s0.test;
      }
      r.report["alpha_path"] = cbm::alpha_path_report(d, train, test, a->proto.model, a->alpha_path);
    }
    nlohmann::json config = a->proto;
    config["features"] = a->load.features_path;
    config["labels"] = a->load.labels_path;
    config["label_col"] = a->load.label_col;
    config["id_col"] = a->load.id_col;
    if (!a->out_path.empty()) {
      nlohmann::json metrics = r.report;
      metrics.erase("per_split");
      write_linear(a->out_path, cbm::to_linear_model(r.model, d, metrics, config),
                   {a->load.features_path, a->load.labels_path});
      r.report["model"] = a->out_path;
    }
    if (a->json) {
      print_json(r.report);
    } else {
      if (fixed) {
        std::printf("fixed split: %zu train, %zu valid, %zu test; alpha %g\n", train.size(), valid.size(), test.size(),
                    r.report["alpha"].get<double>());
        for (const char* part : {"valid", "test"})
          if (r.report.contains(part))
            std::printf("%-5s AUROC %s  macro-F1 %s  accuracy %s  balanced accuracy %s\n", part,
                        r.report[part]["auroc"].dump().c_str(), r.report[part]["macro_f1"].dump().c_str(),
                        r.report[part]["accuracy"].dump().c_str(), r.report[part]["balanced_accuracy"].dump().c_str());
      } else {
        std::printf("%d stratified splits (test %.2f)\n", a->proto.splits, a->proto.test_size);
        print_summary(r.report);
      }
      if (r.report.contains("alpha_path"))
        for (auto& p : r.report["alpha_path"])
          std::printf("alpha %-10g nnz %-8lld AUROC %s\n", p["alpha"].get<double>(), (long long)p["nnz"].get<int64_t>(),
                      p["auroc"].dump().c_str());
    }
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

Runner setup_eval(CLI::App* s, std::shared_ptr<EvalArgs> a) {
  s->add_option("--model", a->model_path, "conceptlab.linear model")->required();
  add_load_options(s, a->load, true);
  s->add_flag("--json", a->json, "print one JSON object");
  return [a]() -> int {
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

Runner setup_predict(CLI::App* s, std::shared_ptr<EvalArgs> a) {
  s->add_option("--model", a->model_path, "conceptlab.linear model")->required();
  add_load_options(s, a->load, false);
  s->add_option("--out", a->out_path, "CSV: id, predicted class, p_<class> per class")->required();
  return [a]() -> int {
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
            auto fa = std::make_shared<FitArgs>();
            auto ea = std::make_shared<EvalArgs>();
            auto pa = std::make_shared<EvalArgs>();
            auto* fit = sub.add_subcommand("fit", "fit under repeated stratified splits or a fixed split");
            auto* ev = sub.add_subcommand("eval", "metrics of a saved model on features + labels");
            auto* pr = sub.add_subcommand("predict", "per-image predicted class and probabilities");
            for (auto* c : {fit, ev, pr}) c->option_defaults()->always_capture_default();
            auto rf = setup_fit(fit, fa);
            auto re = setup_eval(ev, ea);
            auto rp = setup_predict(pr, pa);
            return [=]() -> int {
              if (fit->parsed()) return rf();
              if (ev->parsed()) return re();
              return rp();
            };
          }};
}

}  // namespace cl::cli
