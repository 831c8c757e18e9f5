// One way for every command to take its params struct: `--config FILE` (the struct as JSON,
// configs/*.json; unknown keys are an error) and flags bound to fields, where a flag given on the
// command line overrides the config. --help shows each flag's default from the struct's member
// initializers (the flags are bound to a default-constructed struct).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/params.h"

namespace cl::cli {

template <typename P>
class ParamsCli {
 public:
  // Adds --config to app (unless config_help is empty: flags over a base from elsewhere).
  explicit ParamsCli(CLI::App* app, const std::string& config_help = "") : app_(app) {
    if (!config_help.empty()) app->add_option("--config", *config_path_, config_help);
  }

  // --flag bound to a field: a member pointer, or an accessor P& -> T& for nested structs.
  template <typename T>
  CLI::Option* option(const std::string& name, T P::*field, const std::string& help) {
    return option(name, [field](P& p) -> T& { return p.*field; }, help);
  }
  template <typename Get>
  CLI::Option* option(const std::string& name, Get get, const std::string& help) {
    return bind(app_->add_option(name, get(*flags_), help), get);
  }
  // One flag that sets two fields of the same type (e.g. a seed shared by two nested stages).
  template <typename Get, typename Get2>
  CLI::Option* option_both(const std::string& name, Get get, Get2 get2, const std::string& help) {
    CLI::Option* o = option(name, get, help);
    auto values = flags_;
    overrides_.push_back([o, values, get, get2](P& p) {
      if (o->count() > 0) get2(p) = get(*values);
    });
    return o;
  }
  // Boolean switches (also "--on,!--off" pairs).
  CLI::Option* flag(const std::string& name, bool P::*field, const std::string& help) {
    return flag(name, [field](P& p) -> bool& { return p.*field; }, help);
  }
  template <typename Get>
  CLI::Option* flag(const std::string& name, Get get, const std::string& help) {
    return bind(app_->add_flag(name, get(*flags_), help), get);
  }

  // The defaults, or the --config file over them, then every flag given on the command line.
  P resolve() const {
    P p = config_path_->empty() ? P{} : load_params<P>(*config_path_);
    apply_flags(p);
    return p;
  }
  // Only the flags given on the command line, over p (when the base comes from elsewhere).
  void apply_flags(P& p) const {
    for (const auto& f : overrides_) f(p);
  }
  bool any_flag() const {
    for (auto* o : options_)
      if (o->count() > 0) return true;
    return false;
  }
  const std::string& config_path() const { return *config_path_; }

 private:
  template <typename Get>
  CLI::Option* bind(CLI::Option* o, Get get) {
    auto values = flags_;
    overrides_.push_back([o, values, get](P& p) {
      if (o->count() > 0) get(p) = get(*values);
    });
    options_.push_back(o);
    return o;
  }
  CLI::App* app_;
  std::shared_ptr<P> flags_ = std::make_shared<P>();
  std::shared_ptr<std::string> config_path_ = std::make_shared<std::string>();
  std::vector<std::function<void(P&)>> overrides_;
  std::vector<CLI::Option*> options_;
};

}  // namespace cl::cli
