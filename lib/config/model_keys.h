// zinf::config — the model keys (zinf.model.*) as a ModelSpec.
// Implements: model_spec_of(), the one place a resolved configuration's model
// keys become a ModelSpec (dimensions, architecture, rope scaling), used by
// resolution, Settings and the planner's checks alike.
#pragma once

#include "config/json.h"
#include "core/model_spec.h"

namespace zinf::config {

// The model a resolved configuration describes, named "custom" (callers that
// know the catalogue name set it). Throws UsageError for a malformed
// zinf.model.rope_scaling (naming the field and what is allowed).
ModelSpec model_spec_of(const Json& resolved);

// HF's rope_scaling object (null, {"rope_type"|"type": "linear"|"llama3", "factor", ...}) as RopeScaling;
// `where` names the file or key for errors.
RopeScaling rope_scaling_of(const Json& value, const std::string& where);

}  // namespace zinf::config
