// Flags that several commands share, each declared once (name, help, default) so that they read
// the same everywhere: the metadata CSV and its columns, and the split an experiment scores.
#pragma once

#include <string>

#include "tools/command.h"

namespace cl::cli {

// --labels: the metadata CSV (one row per image, joined to the image ids by --id-col).
CLI::Option* add_labels_flag(CLI::App* s, std::string& csv_path);
// --id-col, defaulting to cl::kDefaultIdCol (shown in --help).
CLI::Option* add_id_col_flag(CLI::App* s, std::string& id_col);
// --label-col: the class label column.
CLI::Option* add_label_col_flag(CLI::App* s, std::string& label_col);
// --split-col: the column naming each row's split (train / valid / test).
CLI::Option* add_split_col_flag(CLI::App* s, std::string& split_col);
// --split-col, --eval-split, --subgroup-col: the rows an experiment scores and their subgroups.
void add_split_options(CLI::App* s, std::string& split_col, std::string& eval_split, std::string& subgroup_col);

}  // namespace cl::cli
