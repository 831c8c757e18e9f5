// The shared flags of flags.h.
#include "tools/commands/flags.h"

#include "core/csv.h"

namespace cl::cli {

CLI::Option* add_labels_flag(CLI::App* s, std::string& csv_path) {
  return s->add_option("--labels", csv_path, "metadata CSV: one row per image (labels, 0/1 concept columns, splits)");
}

CLI::Option* add_id_col_flag(CLI::App* s, std::string& id_col) {
  return s->add_option("--id-col", id_col, std::string("id column of the CSV, joining its rows to the image ids (default ") +
                                               kDefaultIdCol + ")");
}

CLI::Option* add_label_col_flag(CLI::App* s, std::string& label_col) {
  return s->add_option("--label-col", label_col, "class label column of the CSV");
}

CLI::Option* add_split_col_flag(CLI::App* s, std::string& split_col) {
  return s->add_option("--split-col", split_col, "split column of the CSV (train / valid / test per row)");
}

void add_split_options(CLI::App* s, std::string& split_col, std::string& eval_split, std::string& subgroup_col) {
  add_split_col_flag(s, split_col)->description("split column of the CSV: evaluate on the --eval-split rows (and refit on 'train')");
  s->add_option("--eval-split", eval_split, "split value evaluated")->capture_default_str();
  s->add_option("--subgroup-col", subgroup_col, "per-subgroup metrics and worst-group accuracy (this column x the label)");
}

}  // namespace cl::cli
