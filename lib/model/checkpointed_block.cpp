// zinf::model — the checkpointed-block autograd function.
#include "model/checkpointed_block.h"

namespace zinf::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What backward needs besides the saved tensors, carried in ctx->saved_data.
struct Body : torch::CustomClassHolder {
  BlockFn fn;
  BlockHooks hooks;
  std::size_t param_count = 0;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, torch::TensorList params,
                               c10::intrusive_ptr<Body> body) {
    // Function::apply runs this with grad mode off: no graph is kept.
    if (body->hooks.acquire) body->hooks.acquire();
    torch::Tensor y = body->fn(x, params.vec());
    if (body->hooks.release) body->hooks.release();
    variable_list saved{x};
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    body->param_count = params.size();
    ctx->saved_data["body"] = c10::IValue::make_capsule(body);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto body = c10::static_intrusive_pointer_cast<Body>(ctx->saved_data["body"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    // Fresh leaves sharing storage with the saved tensors: the recomputed
    // graph ends at them, so autograd::grad returns exactly this block's grads.
    torch::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    std::vector<torch::Tensor> params;
    for (std::size_t i = 1; i < saved.size(); ++i)
      params.push_back(saved[i].detach().requires_grad_(saved[i].requires_grad()));

    if (body->hooks.acquire) body->hooks.acquire();
    torch::Tensor y;
    {
      torch::AutoGradMode grad_on(true);
      y = body->fn(x, params);
    }
    variable_list inputs;
    std::vector<int> slot;  // position in the gradient list of each input
    if (x.requires_grad()) {
      inputs.push_back(x);
      slot.push_back(0);
    }
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].requires_grad()) {
        inputs.push_back(params[i]);
        slot.push_back(static_cast<int>(i + 1));
      }
    variable_list grads(saved.size() + 1);  // x, params..., body (never differentiable)
    if (!inputs.empty()) {
      const variable_list g = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                    /*create_graph=*/false, /*allow_unused=*/true);
      for (std::size_t i = 0; i < g.size(); ++i) grads[slot[i]] = g[i];
    }
    if (body->hooks.release) body->hooks.release();
    if (body->hooks.on_grads)
      body->hooks.on_grads(std::vector<torch::Tensor>(grads.begin() + 1, grads.begin() + 1 + body->param_count));
    return grads;
  }
};

}  // namespace

torch::Tensor checkpointed(BlockFn fn, const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                           BlockHooks hooks) {
  auto body = c10::make_intrusive<Body>();
  body->fn = std::move(fn);
  body->hooks = std::move(hooks);
  return CheckpointFunction::apply(x, torch::TensorList(params), body);
}

}  // namespace zinf::model
