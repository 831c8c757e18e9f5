// The linear classifier format ("conceptlab.linear", schema 1) shared by CBMs and probes:
// `weights` float32 [C, F], `bias` [C]; attributes `classes` (JSON list of names), `features`
// ("activations" | "embeddings"), `metrics` and `config` (JSON).
// Binary problems store C = 1 row: the logit of classes[1] (as scikit-learn's coef_);
// multiclass problems store one row per class (softmax). Feature scaling is folded into weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

namespace cl {

struct LinearModel {
  std::vector<std::string> classes;
  std::string features = "activations";
  int64_t n_rows = 0, n_features = 0;  // n_rows = 1 for binary, else classes.size()
  std::vector<float> weights;          // [n_rows, n_features] row-major
  std::vector<float> bias;             // [n_rows]
  nlohmann::json metrics = nlohmann::json::object();
  nlohmann::json config = nlohmann::json::object();
};

void write_linear(const std::string& path, const LinearModel& m, const std::vector<std::string>& inputs = {});
LinearModel read_linear(const std::string& path);

}  // namespace cl
