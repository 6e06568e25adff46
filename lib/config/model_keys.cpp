// zinf::config — zinf.model.* to ModelSpec.
#include "config/model_keys.h"

#include "core/error.h"

namespace zinf::config {

RopeScaling rope_scaling_of(const Json& value, const std::string& where) {
  RopeScaling r;
  if (value.is_null()) return r;
  const std::string allowed =
      "allowed: null, {\"rope_type\": \"linear\", \"factor\": F} or {\"rope_type\": \"llama3\", \"factor\": F, "
      "\"low_freq_factor\": L, \"high_freq_factor\": H, \"original_max_position_embeddings\": N}";
  if (!value.is_object()) throw UsageError(where + ": rope_scaling must be an object or null", allowed);
  const Json* type = value.contains("rope_type") ? &value.at("rope_type") : value.contains("type") ? &value.at("type") : nullptr;
  if (!type || !type->is_string()) throw UsageError(where + ": rope_scaling has no rope_type", allowed);
  r.type = type->get<std::string>();
  if (r.type == "default") r.type = "none";
  if (r.type != "none" && r.type != "linear" && r.type != "llama3")
    throw UsageError(where + ": rope_scaling type '" + r.type + "' is not supported",
                     "supported: linear, llama3 (dynamic, yarn, longrope and su are not)");
  auto number = [&](const char* field, double& out) {
    if (!value.contains(field)) return false;
    const Json& v = value.at(field);
    if (!v.is_number()) throw UsageError(where + ": rope_scaling." + field + " must be a number", allowed);
    out = v.get<double>();
    return true;
  };
  if (r.type != "none" && !number("factor", r.factor))
    throw UsageError(where + ": rope_scaling of type " + r.type + " needs a factor", allowed);
  if (r.type == "llama3") {
    double original = double(r.original_max_position);
    if (!number("low_freq_factor", r.low_freq_factor) || !number("high_freq_factor", r.high_freq_factor) ||
        !number("original_max_position_embeddings", original))
      throw UsageError(where + ": llama3 rope_scaling needs low_freq_factor, high_freq_factor and "
                               "original_max_position_embeddings",
                       allowed);
    r.original_max_position = static_cast<std::int64_t>(original);
  }
  return r;
}

ModelSpec model_spec_of(const Json& cfg) {
  auto at = [&](const char* path) -> const Json& {
    const Json* v = find_path(cfg, path);
    if (!v) throw Error(std::string("resolved configuration has no ") + path);
    return *v;
  };
  auto i = [&](const char* path) { return at(path).get<std::int64_t>(); };
  ModelSpec spec{"custom", i("zinf.model.vocab_size"), i("zinf.model.seq_len"), i("zinf.model.hidden_size"),
                 i("zinf.model.layers"), i("zinf.model.heads")};
  spec.model_type = at("zinf.model.model_type").get<std::string>();
  spec.kv_heads = i("zinf.model.kv_heads");
  spec.intermediate_size = i("zinf.model.intermediate_size");
  spec.head_dim = i("zinf.model.head_dim");
  spec.max_positions = i("zinf.model.max_positions");
  spec.norm_eps = at("zinf.model.norm_eps").get<double>();
  spec.rope_theta = at("zinf.model.rope_theta").get<double>();
  const Json* rope = find_path(cfg, "zinf.model.rope_scaling");
  spec.rope_scaling = rope_scaling_of(rope ? *rope : Json(), "zinf.model.rope_scaling");
  spec.tied_embeddings = at("zinf.model.tied_embeddings").get<bool>();
  spec.attention_bias = at("zinf.model.attention_bias").get<bool>();
  spec.bos_token_id = i("zinf.model.bos_token_id");
  spec.eos_token_id = i("zinf.model.eos_token_id");
  if (const Json* w = find_path(cfg, "zinf.model.sliding_window"); w && w->is_number_integer())
    spec.sliding_window = w->get<std::int64_t>();
  return spec;
}

}  // namespace zinf::config
