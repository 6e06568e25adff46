// zinf::config — merge order, "auto" resolution, validation, and DeepSpeed's
// leniencies: unknown top-level keys and aio inside zero_optimization warn,
// pydantic aliases are read as their stage3_ names, scheduler parameters are
// checked against their scheduler type, and keys zinf accepts without acting
// on them warn once when set to a value that would matter in DeepSpeed.
#include "config/build.h"

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "config/loader.h"
#include "config/model_keys.h"
#include "config/options.h"
#include "config/schema.h"
#include "config/settings.h"
#include "core/checked.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/model_spec.h"
#include "core/text.h"
#include "hf/hf_config.h"

extern char** environ;

namespace zinf::config {
namespace {

// ------------------------------------------------------------------ helpers

std::string show(const Json& v) { return v.is_string() ? "'" + v.get<std::string>() + "'" : v.dump(); }

Error key_error(const std::string& path, const Json& value, const std::string& problem,
                const Origins& origins, const std::string& allowed) {
  return UsageError(path + " = " + show(value) + ": " + problem + " (set by " + origins.of(path) + ")",
                    allowed);
}

std::int64_t get_int(const Json& cfg, const std::string& path) { return find_path(cfg, path)->get<std::int64_t>(); }
double get_num(const Json& cfg, const std::string& path) { return find_path(cfg, path)->get<double>(); }
std::string get_str(const Json& cfg, const std::string& path) {
  const Json* v = find_path(cfg, path);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}
bool get_bool(const Json& cfg, const std::string& path) { return find_path(cfg, path)->get<bool>(); }

// Replaces "auto" at `path` by `value` and records that it was resolved.
void resolve_auto(Json& cfg, Origins& origins, const std::string& path, Json value) {
  const Json* v = find_path(cfg, path);
  if (v && is_auto(*v)) {
    set_path(cfg, path, std::move(value));
    origins.set(path, "auto");
  }
}

// For an unknown `key` under `prefix`: a sibling it is a typo of, else the
// same key elsewhere in the schema (a misplaced section); empty when neither.
std::string suggest_key(const std::string& prefix, const std::string& key) {
  const std::string sibling = text::closest(key, children_of(prefix));
  if (!sibling.empty()) return prefix.empty() ? sibling : prefix + "." + sibling;
  for (const auto& k : schema()) {
    const auto parts = split_path(k.path);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (parts[i] != key) continue;
      std::vector<std::string> head(parts.begin(), parts.begin() + static_cast<long>(i) + 1);
      return text::join(head, ".");
    }
  }
  return "";
}

// Every leaf path of `cfg` in schema order is checked; unknown keys first.
void check_unknown_keys(const Json& node, const std::string& prefix, const Origins& origins) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    // "a.b" as one key would pass for the path a.b below and then be ignored.
    if (it.key().empty() || it.key().find('.') != std::string::npos)
      throw UsageError("key '" + it.key() + "'" + (prefix.empty() ? "" : " under " + prefix) + " (in " +
                           origins.of(path) + ") is " + (it.key().empty() ? "empty" : "not a key name: it contains '.'"),
                       it.key().empty() ? "remove it or give it a name"
                                        : "nest it: \"" + text::join(split_path(it.key()), "\": {\"") + "\": ...");
    const KeySpec* spec = find_key(path);
    if (spec) continue;  // a leaf (or an opaque section) we know
    if (is_section(path)) {
      if (!it.value().is_object())
        throw key_error(path, it.value(), "must be an object of settings", origins,
                        "known keys under " + path + ": " + text::join(children_of(path), ", "));
      check_unknown_keys(it.value(), path, origins);
      continue;
    }
    const auto siblings = children_of(prefix);
    const std::string guess = suggest_key(prefix, it.key());
    throw UsageError("unknown key '" + path + "' (in " + origins.of(path) + ")" +
                         (guess.empty() ? "" : ": did you mean '" + guess + "'?"),
                     prefix.empty() ? "see `zinf config` for every key"
                                    : "known keys under " + prefix + ": " + text::join(siblings, ", "));
  }
}

void check_value(const KeySpec& spec, Json& value, const Origins& origins, bool allow_auto) {
  const std::string& path = spec.path;
  const bool auto_is_choice =
      spec.kind == Kind::kEnum && std::find(spec.allowed.begin(), spec.allowed.end(), "auto") != spec.allowed.end();
  if (is_auto(value) && !auto_is_choice) {
    if (!spec.auto_ok) throw key_error(path, value, "this key does not accept \"auto\"", origins, "a concrete value");
    if (!allow_auto && !spec.auto_at_start)
      throw key_error(path, value, "unresolved \"auto\"", origins, "a concrete value");
    return;
  }
  if (value.is_null()) {
    if (spec.nullable || spec.kind == Kind::kOpaque) return;
    throw key_error(path, value, "must have a value", origins, spec.help);
  }
  auto bound = [&](double b) {
    return spec.kind == Kind::kInt ? std::to_string(static_cast<long long>(b)) : Json(b).dump();
  };
  auto range_text = [&]() {
    std::string r;
    if (spec.min > -1e299) r += ">= " + bound(spec.min);
    if (spec.max < 1e299) r += std::string(r.empty() ? "" : " and ") + "<= " + bound(spec.max);
    return r;
  };
  switch (spec.kind) {
    case Kind::kOpaque: return;
    case Kind::kBool:
      if (!value.is_boolean()) throw key_error(path, value, "must be true or false", origins, spec.help);
      return;
    case Kind::kInt: {
      // 1e8 arrives as a float from JSON, "1e8" as a string from some YAML: both are whole numbers.
      if (value.is_string()) {
        char* end = nullptr;
        const std::string s = value.get<std::string>();
        const double d = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') throw key_error(path, value, "must be a whole number", origins, range_text());
        value = d;
      }
      if (!value.is_number()) throw key_error(path, value, "must be a whole number", origins, range_text());
      const double d = value.get<double>();
      if (d != std::floor(d)) throw key_error(path, value, "must be a whole number", origins, range_text());
      if (d < spec.min || d > spec.max) {
        const std::string problem = d > spec.max                ? "above the largest supported " + bound(spec.max)
                                    : d <= 0 && spec.min >= 1 ? "must be positive"
                                                              : "out of range";
        throw key_error(path, value, problem, origins, "allowed: " + range_text());
      }
      value = static_cast<std::int64_t>(d);
      return;
    }
    case Kind::kNumber: {
      if (!value.is_number()) throw key_error(path, value, "must be a number", origins, range_text());
      const double d = value.get<double>();
      if (!std::isfinite(d) || d < spec.min || d > spec.max)
        throw key_error(path, value, d < 0 && spec.min >= 0 ? "must not be negative" : "out of range", origins,
                        "allowed: " + range_text());
      return;
    }
    case Kind::kString:
      if (!value.is_string()) throw key_error(path, value, "must be a string", origins, spec.help);
      return;
    case Kind::kEnum: {
      const std::string s = value.is_string() ? value.get<std::string>() : value.dump();
      if (std::find(spec.allowed.begin(), spec.allowed.end(), s) == spec.allowed.end()) {
        const std::string guess = text::closest(s, spec.allowed);
        throw key_error(path, value,
                        "not an allowed value" + (guess.empty() ? std::string() : " (did you mean '" + guess + "'?)"),
                        origins, "allowed: " + text::join(spec.allowed, ", "));
      }
      return;
    }
    case Kind::kNumberList:
      if (!value.is_array() || value.size() != 2 || !value[0].is_number() || !value[1].is_number())
        throw key_error(path, value, "must be a list of two numbers", origins, "e.g. [0.9, 0.999]");
      return;
  }
}

void check_values(Json& node, const std::string& prefix, const Origins& origins, bool allow_auto) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (const KeySpec* spec = find_key(path))
      check_value(*spec, it.value(), origins, allow_auto);
    else if (it.value().is_object())
      check_values(it.value(), path, origins, allow_auto);
  }
}

// --------------------------------------------------------------- layers

// Adds `message` to `warnings` unless it is there already: each warns once.
void warn_once(std::vector<std::string>& warnings, const std::string& message) {
  if (std::find(warnings.begin(), warnings.end(), message) == warnings.end()) warnings.push_back(message);
}

// DeepSpeed's ZeRO model takes its fields by name or by alias; zinf's schema
// has the stage3_ names, so the other one is renamed (the stage3_ one wins).
void read_zero_aliases(Json& patch) {
  Json* zero = patch.contains("zero_optimization") ? &patch["zero_optimization"] : nullptr;
  if (!zero || !zero->is_object()) return;
  for (const char* name : {"prefetch_bucket_size", "param_persistence_threshold", "model_persistence_threshold",
                           "max_live_parameters", "max_reuse_distance", "gather_16bit_weights_on_model_save",
                           "module_granularity_threshold", "use_all_reduce_for_fetch_params", "allgather_sequential"}) {
    if (!zero->contains(name)) continue;
    const std::string canonical = std::string("stage3_") + name;
    if (!zero->contains(canonical)) (*zero)[canonical] = (*zero)[name];
    zero->erase(name);
  }
}

// The Hugging Face docs' NVMe example puts aio inside zero_optimization
// (DeepSpeed refuses it there, its issue 2721): read it as the top-level aio,
// whose own keys win.
void lift_nested_aio(Json& patch, const std::string& origin, std::vector<std::string>& warnings) {
  Json* zero = patch.contains("zero_optimization") ? &patch["zero_optimization"] : nullptr;
  if (!zero || !zero->is_object() || !zero->contains("aio") || !(*zero)["aio"].is_object()) return;
  Json& top = patch["aio"];
  if (!top.is_object()) top = Json::object();
  for (auto it = (*zero)["aio"].begin(); it != (*zero)["aio"].end(); ++it)
    if (!top.contains(it.key())) top[it.key()] = it.value();
  zero->erase("aio");
  warn_once(warnings, "zero_optimization.aio (in " + origin +
                          ") belongs at the top level as \"aio\" (DeepSpeed refuses it inside zero_optimization); "
                          "read as the top-level aio, whose own keys win where both set one");
}

// DeepSpeed ignores top-level keys it does not know: they warn and are
// dropped. One that is a typo of a known key (zero_optimisation) or a known
// section in the wrong place (offload_optimizer) stays an error with "did you mean".
void drop_unknown_top_level(Json& patch, const std::string& origin, std::vector<std::string>& warnings) {
  std::vector<std::string> drop;
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    if (k.empty() || k.find('.') != std::string::npos || find_key(k) || is_section(k)) continue;
    if (!suggest_key("", k).empty()) continue;  // check_unknown_keys says "did you mean"
    drop.push_back(k);
  }
  for (const auto& k : drop) {
    patch.erase(k);
    warn_once(warnings, "unknown top-level key '" + k + "' (in " + origin +
                            ") is ignored, as DeepSpeed ignores top-level keys it does not know");
  }
}

// A layer read from a file, before it is merged: its keys are checked with
// errors that name the file.
Json checked_layer(const std::string& path, const std::string& origin, std::vector<std::string>& warnings) {
  Json patch = load_config_file(path);
  lift_nested_aio(patch, origin, warnings);
  drop_unknown_top_level(patch, origin, warnings);
  read_zero_aliases(patch);
  Origins where;
  where.set_leaves(patch, origin);
  check_unknown_keys(patch, "", where);
  return patch;
}

// Stage recipe for --zero-stage: the presets of the same name; "none" is built in.
Json stage_recipe(const std::string& stage, const std::string& dir, std::vector<std::string>& warnings) {
  if (stage == "none") {
    return Json{{"zero_optimization",
                 {{"stage", 0}, {"offload_param", {{"device", "none"}}}, {"offload_optimizer", {{"device", "none"}}}}}};
  }
  const std::string path = dir + "/" + stage + ".yaml";
  return checked_layer(path, "recipe " + stage + " (" + path + ")", warnings);
}

Json load_preset(const std::string& name, const std::string& dir, std::vector<std::string>& warnings) {
  const std::string path = dir + "/" + name + ".yaml";
  if (!fs::exists(path)) {
    const auto names = preset_names(dir);
    const std::string guess = text::closest(name, names);
    throw UsageError("unknown preset '" + name + "'" + (guess.empty() ? "" : " (did you mean '" + guess + "'?)"),
                     "available presets in " + dir + ": " + text::join(names, ", "));
  }
  return checked_layer(path, "preset " + name + " (" + path + ")", warnings);
}

// The last value of option `name`, flags over environment; empty when unset.
std::pair<std::string, std::string> source_option(const Sources& s, const std::string& name) {
  std::pair<std::string, std::string> found;  // value, origin
  for (const auto& o : s.env)
    if (o.name == name) found = {o.value, "env " + env_name(name)};
  for (const auto& o : s.flags)
    if (o.name == name) found = {o.value, "flag --" + name};
  return found;
}

void apply_options(Json& cfg, Origins& origins, const std::vector<OptionValue>& values, bool from_env) {
  for (const auto& ov : values) {
    const OptionSpec* spec = find_option(ov.name);
    if (!spec) throw UsageError("unknown option '" + ov.name + "'");
    if (!spec->apply) continue;  // a source option, handled by the caller
    const std::string origin = from_env ? "env " + env_name(ov.name) : "flag --" + ov.name;
    spec->apply(cfg, normalise_option_value(*spec, ov.value, origin), origin, origins);
  }
}

// ----------------------------------------------------------- resolution

// HF's rope_scaling object for `r` (null for none), as zinf.model.rope_scaling holds it.
Json rope_scaling_json(const RopeScaling& r) {
  if (r.type == "none") return Json();
  Json j = {{"rope_type", r.type}, {"factor", r.factor}};
  if (r.type == "llama3") {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
    j["original_max_position_embeddings"] = r.original_max_position;
  }
  return j;
}

// The model the "auto" keys come from: the --from-pretrained directory's
// config.json, else the catalogue entry zinf.model.name names.
ModelSpec source_model(Json& cfg, Origins& origins) {
  const std::string dir = get_str(cfg, "zinf.model.from_pretrained");
  const std::string name = get_str(cfg, "zinf.model.name");
  if (dir.empty()) {
    const auto spec = find_model(name);
    if (!spec) throw key_error("zinf.model.name", name, "unknown model", origins, "known models: " + model_names());
    return *spec;
  }
  if (origins.of("zinf.model.name") != "default")
    throw UsageError("zinf.model.name '" + name + "' (set by " + origins.of("zinf.model.name") +
                         ") and zinf.model.from_pretrained '" + dir + "' both name the model",
                     "drop --model: the pretrained directory's config.json sets the model");
  ModelSpec spec = hf::read_hf_config(dir);
  // Text data is encoded with the model's own tokenizer unless one is named.
  if (origins.of("zinf.data.tokenizer") == "default" &&
      (fs::exists(dir + "/tokenizer.json") || fs::exists(dir + "/tokenizer.model"))) {
    set_path(cfg, "zinf.data.tokenizer", dir);
    origins.set("zinf.data.tokenizer", "auto");
  }
  // A pretrained model's position count is often far beyond what a run
  // trains on (Llama 3.1: 131072): "auto" takes at most 2048 tokens.
  spec.seq_len = std::min<std::int64_t>(spec.max_positions, 2048);
  // Keys the catalogue never sets and the file does: null / -1 defaults take the file's value.
  if (origins.of("zinf.model.rope_scaling") == "default") {
    set_path(cfg, "zinf.model.rope_scaling", rope_scaling_json(spec.rope_scaling));
    origins.set("zinf.model.rope_scaling", "auto");
  }
  for (const auto& [path, id] : {std::pair<const char*, std::int64_t>{"zinf.model.bos_token_id", spec.bos_token_id},
                                 {"zinf.model.eos_token_id", spec.eos_token_id}})
    if (origins.of(path) == "default") {
      set_path(cfg, path, id);
      origins.set(path, "auto");
    }
  return spec;
}

void resolve_model(Json& cfg, Origins& origins) {
  const std::optional<ModelSpec> spec = source_model(cfg, origins);
  resolve_auto(cfg, origins, "zinf.model.vocab_size", spec->vocab_size);
  resolve_auto(cfg, origins, "zinf.model.seq_len", spec->seq_len);
  resolve_auto(cfg, origins, "zinf.model.hidden_size", spec->hidden_size);
  resolve_auto(cfg, origins, "zinf.model.layers", spec->layers);
  resolve_auto(cfg, origins, "zinf.model.heads", spec->heads);
  const std::int64_t hidden = get_int(cfg, "zinf.model.hidden_size"), heads = get_int(cfg, "zinf.model.heads");
  // Architecture keys: the named model's value where it has one, else what
  // follows from the (possibly overridden) dimensions above.
  resolve_auto(cfg, origins, "zinf.model.model_type", spec->model_type);
  resolve_auto(cfg, origins, "zinf.model.kv_heads", spec->kv_heads > 0 ? spec->kv_heads : heads);
  resolve_auto(cfg, origins, "zinf.model.intermediate_size",
               spec->intermediate_size > 0 ? spec->intermediate_size : 4 * hidden);
  const bool head_dim_given = !is_auto(*find_path(cfg, "zinf.model.head_dim"));
  resolve_auto(cfg, origins, "zinf.model.head_dim", spec->head_dim > 0 ? spec->head_dim : hidden / heads);
  resolve_auto(cfg, origins, "zinf.model.max_positions",
               spec->max_positions > 0 ? spec->max_positions : get_int(cfg, "zinf.model.seq_len"));
  resolve_auto(cfg, origins, "zinf.model.norm_eps", spec->norm_eps);
  resolve_auto(cfg, origins, "zinf.model.rope_theta", spec->rope_theta);
  resolve_auto(cfg, origins, "zinf.model.tied_embeddings", spec->tied_embeddings);
  // Biases on q/k/v are what makes a Qwen2: --model-type qwen2 over a named
  // model of another type gets them, as HF's Qwen2Config does.
  const std::string type = get_str(cfg, "zinf.model.model_type");
  resolve_auto(cfg, origins, "zinf.model.attention_bias",
               type == spec->model_type ? spec->attention_bias : type == "qwen2");
  resolve_auto(cfg, origins, "zinf.model.sliding_window", spec->sliding_window);
  if (const std::int64_t window = get_int(cfg, "zinf.model.sliding_window");
      window > 0 && get_int(cfg, "zinf.model.seq_len") > window)
    throw key_error("zinf.model.seq_len", get_int(cfg, "zinf.model.seq_len"),
                    "is longer than the model's sliding_window " + std::to_string(window) +
                        "; zinf attends over the whole sequence, which equals sliding-window attention only for "
                        "sequences of at most " + std::to_string(window) + " tokens",
                    origins, "use --seq-len " + std::to_string(window) + " or less");
  if (!head_dim_given && hidden % heads != 0)
    throw key_error("zinf.model.heads", heads,
                    "hidden size " + std::to_string(hidden) + " is not divisible by " + std::to_string(heads) + " heads",
                    origins, "choose heads that divide the hidden size");
  try {
    model_spec_of(cfg).check_dimensions();
  } catch (const Error& e) {
    throw UsageError(std::string(e.what()) + " (zinf.model.*)", e.hint());
  }
}

void resolve_batch(Json& cfg, Origins& origins, int world) {
  const Json micro = *find_path(cfg, "train_micro_batch_size_per_gpu");
  const Json accum = *find_path(cfg, "gradient_accumulation_steps");
  const Json global = *find_path(cfg, "train_batch_size");
  const bool m = !is_auto(micro), a = !is_auto(accum), g = !is_auto(global);
  std::int64_t mv = m ? micro.get<std::int64_t>() : 0, av = a ? accum.get<std::int64_t>() : 0;
  const std::int64_t gv = g ? global.get<std::int64_t>() : 0;
  // micro x accumulation x ranks, checked (each is at most 9e18 on its own)
  auto samples = [&](std::int64_t micro_batch, std::int64_t accumulation) {
    return (CheckedInt(micro_batch) * accumulation * world)
        .get("the samples per step (train_micro_batch_size_per_gpu x gradient_accumulation_steps x ranks)",
             {{"train_micro_batch_size_per_gpu", micro_batch}, {"gradient_accumulation_steps", accumulation},
              {"ranks", world}},
             "use a smaller micro batch or fewer accumulation steps");
  };
  if (g && m && !a) {
    if (gv % samples(mv, 1) != 0)
      throw key_error("train_batch_size", gv,
                      "must be a multiple of micro batch x ranks (" + std::to_string(gv) + " % (" + std::to_string(mv) +
                          " * " + std::to_string(world) + ") != 0)",
                      origins, "change train_batch_size or train_micro_batch_size_per_gpu");
    av = gv / samples(mv, 1);
  } else if (g && a && !m) {
    if (gv % samples(1, av) != 0)
      throw key_error("train_batch_size", gv,
                      "must be a multiple of accumulation x ranks (" + std::to_string(gv) + " % (" + std::to_string(av) +
                          " * " + std::to_string(world) + ") != 0)",
                      origins, "change train_batch_size or gradient_accumulation_steps");
    mv = gv / samples(1, av);
  } else if (g && !m && !a) {
    if (gv % world != 0)
      throw key_error("train_batch_size", gv, "must be a multiple of the " + std::to_string(world) + " ranks", origins,
                      "change train_batch_size");
    av = 1;
    mv = gv / world;
  } else {
    if (!m) mv = 4;
    if (!a) av = 1;
  }
  const std::int64_t per_step = samples(mv, av);
  resolve_auto(cfg, origins, "train_micro_batch_size_per_gpu", mv);
  resolve_auto(cfg, origins, "gradient_accumulation_steps", av);
  resolve_auto(cfg, origins, "train_batch_size", per_step);
  // The trainer counts tokens per step and over the run in 64 bits.
  const std::int64_t seq_len = get_int(cfg, "zinf.model.seq_len"), steps = get_int(cfg, "zinf.train.steps");
  (CheckedInt(per_step) * seq_len * steps)
      .get("the run's token count (train_batch_size x seq_len x zinf.train.steps)",
           {{"train_batch_size", per_step}, {"seq_len", seq_len}, {"steps", steps}},
           "use fewer steps or a smaller batch");
  if (g && gv != per_step)
    throw key_error("train_batch_size", gv,
                    "must equal micro batch x accumulation x ranks (" + std::to_string(mv) + " * " +
                        std::to_string(av) + " * " + std::to_string(world) + " = " +
                        std::to_string(per_step) + ")",
                    origins, "set train_batch_size to \"auto\" or make the three agree");
}

void resolve_precision(Json& cfg, Origins& origins, const MachineFacts& machine, const std::string& device) {
  const Json fp16 = *find_path(cfg, "fp16.enabled"), bf16 = *find_path(cfg, "bf16.enabled");
  if (fp16.is_boolean() && bf16.is_boolean() && fp16.get<bool>() && bf16.get<bool>())
    throw UsageError("fp16.enabled and bf16.enabled are both true (set by " + origins.of("fp16.enabled") + " and " +
                         origins.of("bf16.enabled") + ")",
                     "enable one of them: bf16 on GPUs that support it (A100, H100), else fp16");
  const bool want_bf16 = device == "cuda" && machine.bf16_supported;
  const bool fp16_on = fp16.is_boolean() && fp16.get<bool>();
  const bool bf16_on = bf16.is_boolean() && bf16.get<bool>();
  resolve_auto(cfg, origins, "bf16.enabled", !fp16_on && want_bf16);
  resolve_auto(cfg, origins, "fp16.enabled", !bf16_on && !get_bool(cfg, "bf16.enabled") && device == "cuda" && !machine.bf16_supported);
}

// The Hugging Face integration's rule for stage3_param_persistence_threshold.
std::int64_t persistence_auto(const Json& cfg) { return 10 * get_int(cfg, "zinf.model.hidden_size"); }
// ... and for stage3_prefetch_bucket_size.
std::int64_t prefetch_auto(const Json& cfg) {
  const std::int64_t hidden = get_int(cfg, "zinf.model.hidden_size");
  return hidden * hidden * 9 / 10;
}

// zinf's recipe when no scheduler is named: warmup over 2% of the run, at
// least 5 steps on runs of 50 steps or more (a tenth of a shorter run), and
// always at least one step after it; none for a one-step run.
std::int64_t recipe_warmup_steps(std::int64_t steps) {
  const std::int64_t two_percent = (steps + 49) / 50;
  return std::max<std::int64_t>(0, std::min(steps - 1, std::max(two_percent, std::min<std::int64_t>(5, steps / 10))));
}

// scheduler.type "auto" (nothing named a scheduler) is zinf's recipe,
// WarmupCosineLR; resolved before the scheduler's parameters are checked
// against its type. True when the recipe applies.
bool resolve_scheduler_type(Json& cfg, Origins& origins) {
  if (!is_auto(*find_path(cfg, "scheduler.type"))) return false;
  set_path(cfg, "scheduler.type", "WarmupCosineLR");
  origins.set("scheduler.type", "auto");
  return true;
}

void resolve_rest(Json& cfg, Origins& origins, const MachineFacts& machine, bool recipe_schedule) {
  // Fine-tuning starts from trained weights: 3e-4 would wreck them in a few steps.
  if (get_str(cfg, "zinf.model.from_pretrained").empty()) {
    resolve_auto(cfg, origins, "optimizer.params.lr", 3e-4);
  } else if (is_auto(*find_path(cfg, "optimizer.params.lr"))) {
    set_path(cfg, "optimizer.params.lr", 2e-5);
    origins.set("optimizer.params.lr", "auto: fine-tuning (zinf.model.from_pretrained is set)");
  }
  resolve_auto(cfg, origins, "optimizer.params.weight_decay", 0.01);
  resolve_auto(cfg, origins, "optimizer.params.eps", 1e-8);
  resolve_auto(cfg, origins, "optimizer.params.betas", Json::array({0.9, 0.999}));
  resolve_auto(cfg, origins, "gradient_clipping", 1.0);
  const double lr = get_num(cfg, "optimizer.params.lr");
  resolve_auto(cfg, origins, "scheduler.params.warmup_max_lr", lr);
  resolve_auto(cfg, origins, "scheduler.params.warmup_min_lr", 0.0);
  const std::int64_t steps = get_int(cfg, "zinf.train.steps");
  // A scheduler the user named keeps DeepSpeed's meaning (no warmup unless
  // given, cos_min_ratio 1e-4); the recipe warms up and ends at 10% of the peak.
  resolve_auto(cfg, origins, "scheduler.params.warmup_num_steps", recipe_schedule ? recipe_warmup_steps(steps) : 0);
  resolve_auto(cfg, origins, "scheduler.params.cos_min_ratio", recipe_schedule ? 0.1 : 0.0001);
  resolve_auto(cfg, origins, "scheduler.params.total_num_steps", steps);

  const std::int64_t hidden = get_int(cfg, "zinf.model.hidden_size");
  const ModelSpec spec = model_spec_of(cfg);
  // HF/DeepSpeed integration's rules for the bucket sizes.
  resolve_auto(cfg, origins, "zero_optimization.reduce_bucket_size", hidden * hidden);
  resolve_auto(cfg, origins, "zero_optimization.stage3_prefetch_bucket_size", prefetch_auto(cfg));
  resolve_auto(cfg, origins, "zero_optimization.stage3_param_persistence_threshold", persistence_auto(cfg));
  resolve_auto(cfg, origins, "zero_optimization.allgather_bucket_size", 500000000);
  resolve_auto(cfg, origins, "zero_optimization.stage3_max_live_parameters", 1000000000);
  resolve_auto(cfg, origins, "zero_optimization.stage3_max_reuse_distance", 1000000000);
  resolve_auto(cfg, origins, "zero_optimization.stage3_gather_16bit_weights_on_model_save", false);
  // Parameter swap buffers: blocks larger than a buffer stream through in
  // pieces, so "auto" caps a buffer at 8M elements (16 MiB of bf16) and
  // never exceeds the largest block (the embedding is a block too).
  const std::int64_t largest_block = std::max(spec.block_parameter_count(), spec.vocab_size * hidden);
  resolve_auto(cfg, origins, "zero_optimization.offload_param.buffer_size",
               std::min<std::int64_t>(largest_block, std::int64_t(8) << 20));
  // Optimizer sub-groups: three in flight (read, update, write) at 16 bytes
  // per element (master, m, v, gradient). "auto" scales with the model
  // (1/64 of it, between 1M and 16M elements: large enough for full-speed
  // NVMe requests, small enough that the pipeline is a sliver of RAM) and
  // never takes more than a quarter of RAM. DeepSpeed's own default is 1e9.
  std::int64_t sub_group = std::clamp<std::int64_t>(spec.parameter_count() / 64, std::int64_t(1) << 20,
                                                    std::int64_t(16) << 20);
  if (machine.cpu_memory_bytes > 0)
    sub_group = std::max<std::int64_t>(1, std::min<std::int64_t>(sub_group, machine.cpu_memory_bytes / 4 / (3 * 16)));
  resolve_auto(cfg, origins, "zero_optimization.sub_group_size", sub_group);
  // Gradients follow an NVMe optimizer to NVMe, as DeepSpeed swaps them with
  // the optimizer states; with the optimizer in memory they stay in memory.
  const bool optimizer_nvme = get_str(cfg, "zero_optimization.offload_optimizer.device") == "nvme";
  resolve_auto(cfg, origins, "zinf.offload.gradients",
               optimizer_nvme && get_int(cfg, "zero_optimization.stage") >= 2 ? "nvme" : "none");
}

// ------------------------------------------------------------ scheduler

bool set_by_user(const Origins& origins, const std::string& path) {
  const std::string o = origins.of(path);
  return o != "default" && !text::starts_with(o, "auto");
}

// Every scheduler.params key belongs to the scheduler type; defaults of other
// types are dropped, and keys the user set for another type are errors (in
// DeepSpeed they fail the scheduler's constructor). The chosen type's
// DeepSpeed defaults are filled in, so the resolved file names every value.
void check_scheduler(Json& cfg, Origins& origins) {
  const std::string type = get_str(cfg, "scheduler.type");
  if (!find_path(cfg, "scheduler.params") || !find_path(cfg, "scheduler.params")->is_object()) return;
  Json* params = &cfg["scheduler"]["params"];
  std::vector<std::string> drop;
  for (auto it = params->begin(); it != params->end(); ++it) {
    const auto types = scheduler_types_of(it.key());
    if (std::find(types.begin(), types.end(), type) != types.end()) continue;
    const std::string path = "scheduler.params." + it.key();
    if (!set_by_user(origins, path)) {
      drop.push_back(it.key());
      continue;
    }
    std::vector<std::string> own;
    for (const auto& k : children_of("scheduler.params")) {
      const auto t = scheduler_types_of(k);
      if (std::find(t.begin(), t.end(), type) != t.end()) own.push_back(k);
    }
    throw UsageError(path + " (set by " + origins.of(path) + ") is a parameter of " + text::join(types, " and ") +
                         ", not of scheduler.type = '" + type + "' (set by " + origins.of("scheduler.type") + ")",
                     "set scheduler.type to " + types.front() + ", or remove it; " + type +
                         " takes: " + text::join(own, ", "));
  }
  for (const auto& k : drop) params->erase(k);
  const std::string self_default = type + "'s default (DeepSpeed's)";
  auto fill = [&](const std::string& key, Json value) {
    if (params->contains(key)) return;
    (*params)[key] = std::move(value);
    origins.set("scheduler.params." + key, self_default);
  };
  if (type == "OneCycle") {
    for (const char* required : {"cycle_min_lr", "cycle_max_lr"})
      if (!params->contains(required))
        throw UsageError("scheduler.type 'OneCycle' (set by " + origins.of("scheduler.type") +
                             ") needs scheduler.params." + required,
                         "OneCycle cycles the LR between cycle_min_lr and cycle_max_lr; give both (DeepSpeed "
                         "has no defaults for them)");
    fill("decay_lr_rate", 0.0);
    fill("cycle_first_step_size", 2000);
    fill("cycle_second_step_size", (*params)["cycle_first_step_size"]);
    fill("cycle_first_stair_count", 0);
    fill("cycle_second_stair_count", (*params)["cycle_first_stair_count"]);
    fill("decay_step_size", 0);
    fill("cycle_momentum", true);
    fill("cycle_min_mom", 0.8);
    fill("cycle_max_mom", 0.9);
    fill("decay_mom_rate", 0.0);
  } else if (type == "LRRangeTest") {
    fill("lr_range_test_min_lr", 1e-3);
    fill("lr_range_test_step_size", 2000);
    fill("lr_range_test_step_rate", 1.0);
    fill("lr_range_test_staircase", false);
  }
}

// ------------------------------------------------- accepted, no effect

// True when an opaque section's value would do something in DeepSpeed: a
// section that says "enabled": true or, having no "enabled", sets anything;
// a plain value other than false or null.
bool opaque_active(const Json& v) {
  if (v.is_object()) return v.contains("enabled") ? v["enabled"] == Json(true) : !v.empty();
  return !v.is_null() && v != Json(false);
}

// One warning per key zinf accepts without acting on, when something other
// than the defaults set it to a value that would change what DeepSpeed does.
void warn_inert(const Json& cfg, const Origins& origins, std::vector<std::string>& warnings) {
  for (const auto& k : schema()) {
    if (k.inert.empty()) continue;
    const Json* v = find_path(cfg, k.path);
    if (!v || !set_by_user(origins, k.path)) continue;
    if (k.kind == Kind::kOpaque ? !opaque_active(*v) : *v == k.default_value) continue;
    if (std::find(k.harmless.begin(), k.harmless.end(), *v) != k.harmless.end()) continue;
    // a resolved file fed back holds what "auto" became
    if (k.path == "zero_optimization.stage3_param_persistence_threshold" && *v == Json(persistence_auto(cfg)))
      continue;
    if (k.path == "zero_optimization.stage3_prefetch_bucket_size" && *v == Json(prefetch_auto(cfg))) continue;
    warn_once(warnings, k.path + " = " + show(*v) + " (set by " + origins.of(k.path) +
                            ") has no effect in zinf: " + k.inert);
  }
}

// ------------------------------------------------------------- rules

void check_rules(const Json& cfg, const Origins& origins) {
  const std::int64_t block = get_int(cfg, "aio.block_size");
  if (block % 4096 != 0 || block > (1 << 30))
    throw key_error("aio.block_size", block, "must be a positive multiple of 4096 (at most 1 GiB)", origins,
                    "allowed: 4096, 8192, ... e.g. 1048576 (1 MiB, the default) or 262144");
  const int stage = static_cast<int>(get_int(cfg, "zero_optimization.stage"));
  const std::string param_dev = get_str(cfg, "zero_optimization.offload_param.device");
  const std::string opt_dev = get_str(cfg, "zero_optimization.offload_optimizer.device");
  if (param_dev != "none" && stage < 3)
    throw key_error("zero_optimization.offload_param.device", param_dev,
                    "parameter offload needs ZeRO stage 3, but zero_optimization.stage is " + std::to_string(stage) +
                        " from " + origins.of("zero_optimization.stage"),
                    origins, "use --zero-stage zero3 or infinity, or set offload_param.device to none");
  if (opt_dev == "nvme" && stage < 3)
    throw key_error("zero_optimization.offload_optimizer.device", opt_dev,
                    "optimizer offload to NVMe needs ZeRO stage 3, but zero_optimization.stage is " +
                        std::to_string(stage),
                    origins, "use --zero-stage infinity, or offload the optimizer to cpu");
  if (opt_dev == "cpu" && stage < 1)
    throw key_error("zero_optimization.offload_optimizer.device", opt_dev,
                    "optimizer offload needs ZeRO stage 1 or higher, but zero_optimization.stage is 0", origins,
                    "use --zero-stage zero1, zero2, zero3 or infinity");
  for (const char* which : {"offload_param", "offload_optimizer"}) {
    const std::string base = std::string("zero_optimization.") + which;
    if (get_str(cfg, base + ".device") == "nvme" && get_str(cfg, base + ".nvme_path").empty())
      throw UsageError(base + ".device is 'nvme' (set by " + origins.of(base + ".device") +
                           ") but no NVMe path is given (" + base + ".nvme_path)",
                       "pass --nvme-offload-path /path/on/nvme, or --no-nvme-offload-params "
                       "--no-nvme-offload-optimizer to offload to CPU memory instead");
  }
  if (get_str(cfg, "zinf.offload.gradients") == "nvme" &&
      get_str(cfg, "zero_optimization.offload_optimizer.nvme_path").empty() &&
      get_str(cfg, "zero_optimization.offload_param.nvme_path").empty())
    throw key_error("zinf.offload.gradients", "nvme", "gradient offload to NVMe needs an NVMe path", origins,
                    "pass --nvme-offload-path");
  if (get_str(cfg, "zinf.offload.gradients") == "nvme" && stage < 2)
    throw key_error("zinf.offload.gradients", "nvme", "gradient offload needs ZeRO stage 2 or higher", origins,
                    "use --zero-stage zero2, zero3 or infinity");
  if (get_int(cfg, "zero_optimization.zero_hpz_partition_size") != 1)
    throw key_error("zero_optimization.zero_hpz_partition_size", get_int(cfg, "zero_optimization.zero_hpz_partition_size"),
                    "ZeRO++ hierarchical partitioning is not supported", origins, "allowed: 1");
  if (get_bool(cfg, "zero_optimization.zero_quantized_weights") || get_bool(cfg, "zero_optimization.zero_quantized_gradients"))
    throw UsageError("ZeRO++ quantized weights/gradients are not supported by zinf",
                     "set zero_optimization.zero_quantized_weights and zero_quantized_gradients to false");
  if (get_num(cfg, "zero_optimization.offload_optimizer.ratio") != 1.0)
    throw key_error("zero_optimization.offload_optimizer.ratio", get_num(cfg, "zero_optimization.offload_optimizer.ratio"),
                    "partial optimizer offload (ZeRO-Offload++ ratio) is not supported", origins, "allowed: 1.0");
  const ModelSpec model = model_spec_of(cfg);
  const std::int64_t sub_group = get_int(cfg, "zero_optimization.sub_group_size");
  if (const std::int64_t params = model.parameter_count(); params / sub_group > kMaxSubGroups)
    throw key_error("zero_optimization.sub_group_size", sub_group,
                    "cuts the model's " + std::to_string(params) + " parameters into more than " +
                        std::to_string(kMaxSubGroups) + " optimizer sub-groups",
                    origins,
                    "allowed: at least " + std::to_string((params + kMaxSubGroups - 1) / kMaxSubGroups) +
                        " for this model, or \"auto\" (DeepSpeed's default is 1e9)");
  const std::int64_t vocab = model.vocab_size;
  const std::string format = get_str(cfg, "zinf.data.format");
  if (vocab < 256 && format != "llmc" && format != "nanogpt" && get_str(cfg, "zinf.data.tokenizer").empty() &&
      !text::ends_with(get_str(cfg, "zinf.data.dataset_file"), ".bin"))
    throw key_error("zinf.model.vocab_size", vocab, "text data is read as bytes, which needs 256 tokens", origins,
                    "use --vocab-size 256 or more");
}

}  // namespace

std::string presets_dir() {
  if (const char* env = std::getenv("ZINF_PRESETS_DIR"); env && *env) return env;
  return ZINF_DEFAULT_PRESETS_DIR;
}

std::string data_dir() {
  if (const char* env = std::getenv("ZINF_DATA_DIR"); env && *env) return env;
  std::string dir = presets_dir();
  return dir.substr(0, dir.rfind('/')) + "/data";
}

std::vector<std::string> preset_names(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string f = e->d_name;
      if (text::ends_with(f, ".yaml")) names.push_back(f.substr(0, f.size() - 5));
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<OptionValue> read_env_options(unsigned groups) {
  std::vector<OptionValue> out;
  for (const auto& spec : options()) {
    if (!(spec.group & groups)) continue;
    if (const char* v = std::getenv(env_name(spec.name).c_str())) out.push_back({spec.name, v});
  }
  return out;
}

void check_against_schema(const Json& cfg, const Origins& origins, bool allow_auto) {
  check_unknown_keys(cfg, "", origins);
  Json copy = cfg;
  check_values(copy, "", origins, allow_auto);
}

std::string describe_zero(const Json& cfg) {
  const int stage = static_cast<int>(find_path(cfg, "zero_optimization.stage")->get<std::int64_t>());
  const std::string p = get_str(cfg, "zero_optimization.offload_param.device");
  const std::string o = get_str(cfg, "zero_optimization.offload_optimizer.device");
  if (stage == 0) return o == "none" ? "none" : "none + optimizer offload to " + o;
  std::string name = "zero" + std::to_string(stage);
  if (stage == 3 && (p != "none" || o != "none")) name = "infinity";
  if (p != "none" || o != "none") name += " (params: " + p + ", optimizer: " + o + ")";
  return name;
}

namespace {

// 3e-4, 0.01, 1.0: short, and scientific below 1e-3 without a padded exponent.
std::string short_number(double v) {
  char buf[32];
  if (v != 0 && std::fabs(v) < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.2e", v);  // 3.00e-04
    std::string mantissa(buf, std::strchr(buf, 'e'));
    while (mantissa.back() == '0') mantissa.pop_back();
    if (mantissa.back() == '.') mantissa.pop_back();
    return mantissa + "e-" + std::to_string(std::abs(std::atoi(std::strchr(buf, 'e') + 1)));
  }
  if (v == std::floor(v) && std::fabs(v) < 1e6) std::snprintf(buf, sizeof buf, "%.1f", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

std::string describe_recipe(const Json& cfg, const Origins& origins) {
  const Settings s = settings_from(cfg);
  const auto is_auto_origin = [&](const std::string& path) { return text::starts_with(origins.of(path), "auto"); };
  const bool warmup_family = s.scheduler == "WarmupLR" || s.scheduler == "WarmupDecayLR";
  // The schedule's peak: the optimizer lr, or warmup_max_lr for DeepSpeed's WarmupLR / WarmupDecayLR.
  const double peak = warmup_family ? s.warmup_max_lr : s.lr;
  const bool peak_auto = is_auto_origin("optimizer.params.lr") &&
                         (!warmup_family || is_auto_origin("scheduler.params.warmup_max_lr"));
  std::string out = std::string("recipe: ") + (s.adamw ? "AdamW" : "Adam") + " lr " + short_number(peak);
  if (peak_auto) out += s.from_pretrained.empty() ? " (auto)" : " (auto, fine-tuning)";
  const std::string warmup =
      s.warmup_steps > 0 ? "warmup " + std::to_string(s.warmup_steps) + (s.warmup_steps == 1 ? " step" : " steps") + " then "
                         : "";
  const std::string at_end = " at step " + std::to_string(s.total_steps);
  if (s.scheduler == "WarmupCosineLR") out += ", " + warmup + "cosine to " + short_number(s.lr * s.cos_min_ratio) + at_end;
  else if (s.scheduler == "WarmupDecayLR") out += ", " + warmup + "linear decay to 0" + at_end;
  else if (s.scheduler == "WarmupLR") out += ", " + warmup + "constant";
  else if (s.scheduler == "OneCycle")
    out += ", OneCycle between " + short_number(s.cycle_min_lr) + " and " + short_number(s.cycle_max_lr);
  else out += ", " + s.scheduler + " from " + short_number(s.lr_range_min_lr);
  if (s.weight_decay == 0) {
    out += ", no weight decay";
  } else {
    out += std::string(", ") + (s.adamw ? "weight decay " : "L2 weight decay ") + short_number(s.weight_decay);
    out += s.weight_decay_all ? " on every parameter"
                              : std::string(" on block matrices") + (s.model.tied_embeddings ? "" : " and lm_head") +
                                    " (not norms, biases, embeddings)";
  }
  out += s.gradient_clipping > 0 ? ", clip " + short_number(s.gradient_clipping) : ", no clipping";
  return out;
}

Resolved build_config(const Sources& sources, const MachineFacts& machine) {
  Resolved r;
  Json& cfg = r.config;
  cfg = defaults();
  const std::string dir = sources.presets_dir.empty() ? presets_dir() : sources.presets_dir;

  // 2. presets, then the --zero-stage recipe
  const auto [preset_value, preset_origin] = source_option(sources, "preset");
  if (!preset_value.empty()) {
    for (const auto& name : text::split(preset_value, ',')) {
      const std::string n = text::trim(name);
      if (n.empty()) continue;
      Json patch = load_preset(n, dir, r.warnings);
      merge_into(cfg, patch);
      r.origins.set_leaves(patch, "preset " + n);
    }
  }
  const auto [stage_value, stage_origin] = source_option(sources, "zero-stage");
  std::string stage_name;
  if (!stage_value.empty()) {
    stage_name = normalise_option_value(*find_option("zero-stage"), stage_value, stage_origin);
    Json patch = stage_recipe(stage_name, dir, r.warnings);
    merge_into(cfg, patch);
    r.origins.set_leaves(patch, "recipe " + stage_name + " (" + stage_origin + ")");
  }

  // 3. the --config file
  const auto [config_value, config_origin] = source_option(sources, "config");
  if (!config_value.empty()) {
    Json patch = checked_layer(config_value, "file " + config_value, r.warnings);
    if (!stage_name.empty()) {
      const Json* file_stage = find_path(patch, "zero_optimization.stage");
      const Json* recipe_stage = find_path(cfg, "zero_optimization.stage");
      if (file_stage && recipe_stage && *file_stage != *recipe_stage)
        r.warnings.push_back(stage_origin + " " + stage_name + " chose stage " + recipe_stage->dump() + ", but " +
                             config_value + " sets zero_optimization.stage = " + file_stage->dump() +
                             ", which wins (merge order: defaults < preset/stage < --config < env < flags)");
    }
    merge_into(cfg, patch);
    r.origins.set_leaves(patch, "file " + config_value);
  }

  // 4. ZINF_* environment, 5. flags
  apply_options(cfg, r.origins, sources.env, true);
  apply_options(cfg, r.origins, sources.flags, false);

  // Types and ranges of what the user wrote, "auto" still allowed.
  check_unknown_keys(cfg, "", r.origins);
  check_values(cfg, "", r.origins, true);
  const bool recipe_schedule = resolve_scheduler_type(cfg, r.origins);
  check_scheduler(cfg, r.origins);
  // Old and new names of one setting: the value keeps the origin of the key it was written under.
  if (get_bool(cfg, "zero_optimization.cpu_offload") && get_str(cfg, "zero_optimization.offload_optimizer.device") == "none") {
    set_path(cfg, "zero_optimization.offload_optimizer.device", "cpu");
    r.origins.set("zero_optimization.offload_optimizer.device",
                  r.origins.of("zero_optimization.cpu_offload") + ", as zero_optimization.cpu_offload");
    r.warnings.push_back("zero_optimization.cpu_offload is deprecated; read as offload_optimizer.device = cpu");
  }
  if (get_bool(cfg, "zero_optimization.cpu_offload_param") &&
      get_str(cfg, "zero_optimization.offload_param.device") == "none") {
    set_path(cfg, "zero_optimization.offload_param.device", "cpu");
    r.origins.set("zero_optimization.offload_param.device",
                  r.origins.of("zero_optimization.cpu_offload_param") + ", as zero_optimization.cpu_offload_param");
    r.warnings.push_back("zero_optimization.cpu_offload_param is deprecated; read as offload_param.device = cpu");
  }
  // DeepSpeed's steps_per_print is zinf's log_every, unless zinf's own key or --log-every says otherwise.
  const std::string log_origin = r.origins.of("zinf.train.log_every");
  const bool log_every_given = text::starts_with(log_origin, "env ") || text::starts_with(log_origin, "flag ") ||
                               log_origin == r.origins.of("steps_per_print");
  if (set_by_user(r.origins, "steps_per_print") && !log_every_given) {
    set_path(cfg, "zinf.train.log_every", get_int(cfg, "steps_per_print"));
    r.origins.set("zinf.train.log_every", r.origins.of("steps_per_print") + ", as steps_per_print");
  }
  // DeepSpeed allows a reduce bucket of 0 (each gradient reduced on its own); zinf reads it as "auto".
  const std::string bucket_origin = r.origins.of("zero_optimization.reduce_bucket_size");
  const bool bucket_zero = find_path(cfg, "zero_optimization.reduce_bucket_size")->is_number() &&
                           get_int(cfg, "zero_optimization.reduce_bucket_size") == 0;
  if (bucket_zero) {
    set_path(cfg, "zero_optimization.reduce_bucket_size", "auto");
    r.warnings.push_back("zero_optimization.reduce_bucket_size = 0 (set by " + bucket_origin +
                         ") is read as \"auto\" (hidden x hidden elements): zinf reduces gradients in buckets");
  }
  if (get_int(cfg, "aio.intra_op_parallelism") > 1 && get_int(cfg, "aio.thread_count") == 1) {
    set_path(cfg, "aio.thread_count", get_int(cfg, "aio.intra_op_parallelism"));
    r.origins.set("aio.thread_count", r.origins.of("aio.intra_op_parallelism") + ", as aio.intra_op_parallelism");
  }

  // Resolve "auto".
  std::string device = get_str(cfg, "zinf.train.device");
  if (device == "auto") {
    device = machine.cuda_devices > 0 ? "cuda" : "cpu";
    set_path(cfg, "zinf.train.device", device);
    r.origins.set("zinf.train.device", "auto");
  }
  if (get_str(cfg, "zinf.train.gpus") == "auto") {
    std::vector<std::string> ids;
    for (int i = 0; i < machine.cuda_devices; ++i) ids.push_back(std::to_string(i));
    set_path(cfg, "zinf.train.gpus", device == "cuda" ? text::join(ids, ",") : "none");
    r.origins.set("zinf.train.gpus", "auto");
  }
  if (get_str(cfg, "zinf.data.dataset_file") == "auto") {
    set_path(cfg, "zinf.data.dataset_file", data_dir() + "/corpus.txt");
    r.origins.set("zinf.data.dataset_file", "auto");
  }
  resolve_model(cfg, r.origins);
  resolve_batch(cfg, r.origins, machine.world_size);
  resolve_precision(cfg, r.origins, machine, device);
  resolve_rest(cfg, r.origins, machine, recipe_schedule);
  if (bucket_zero) r.origins.set("zero_optimization.reduce_bucket_size", bucket_origin + ", 0 read as auto");

  check_values(cfg, "", r.origins, false);
  check_rules(cfg, r.origins);
  warn_inert(cfg, r.origins, r.warnings);
  return r;
}

}  // namespace zinf::config
