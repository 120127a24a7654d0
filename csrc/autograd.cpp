// Autograd for the ops whose schema is `<name>(Tensor t_1, ..., Tensor t_n, Tensor c, <flags>) -> Tensor`
// with `<name>_backward(Tensor grad, <the same arguments>)` returning one gradient per tensor argument
// (c's last): every row op, the gyroplane bank and the wrapped-normal ops (kAutogradOps below).
//
// Why in C++: torch.library.register_autograd wraps each call in a Python autograd.Function, which cost
// 15-40% of a small call (4096 x 16 float32, 1 thread, interleaved runs of both builds: expmap0
// forward+backward 398 -> 231 us, mobius_add 540 -> 365 us; README "Small tensors"; the rest is the kernels). This kernel, one boxed function for all the ops,
// sits on the Autograd key: it saves the inputs, redispatches to the device kernel below autograd, and its
// node calls <name>_backward. The fakes (shape functions) stay in Python (hypops/ops/): torch.compile and
// opcheck need nothing else. gyroplane_conv3d keeps its Python autograd (its optional bias and int lists
// do not fit this schema, and its per-call cost is small beside the op's).
//
// Double backward is not implemented: each <name>_backward (the conv's too) gets torch's "not implemented" kernel,
// so differentiating a gradient (create_graph=True, then backward through it) raises instead of leaving
// .grad silently None with only a deprecation warning, as happened before (with the Python wrapper too).
// Unchanged from the Python version: torch.func.grad/vjp raise (a C++ autograd function, like an
// autograd.Function without setup_context, cannot run under functorch transforms), and vmap runs torch's
// per-sample fallback.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

#include <algorithm>
#include <string>
#include <vector>

namespace hypops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr const char* kAutogradOps[] = {
    "project", "expmap0", "logmap0", "mobius_add", "expmap", "logmap", "dist", "dist2plane",
    "gyroplane_bank", "wrapped_normal_rsample", "wrapped_normal_log_prob",
};

class RowOpFunction : public torch::autograd::Function<RowOpFunction> {
 public:
  // op: the forward's handle; tensors: t_1..t_n and c (the differentiable inputs); flags: the rest.
  static at::Tensor forward(AutogradContext* ctx, const c10::OperatorHandle* op, at::TensorList tensors,
                            const std::vector<c10::IValue>& flags) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    torch::jit::Stack stack(tensors.begin(), tensors.end());
    stack.insert(stack.end(), flags.begin(), flags.end());
    op->callBoxed(stack);
    ctx->save_for_backward(tensors.vec());
    ctx->saved_data["backward"] = op->schema().name() + "_backward";
    ctx->saved_data["flags"] = c10::ivalue::Tuple::create(flags);
    return stack[0].toTensor();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const std::string name = ctx->saved_data["backward"].toStringRef();
    const auto flags = ctx->saved_data["flags"].toTupleRef().elements();
    const variable_list saved = ctx->get_saved_variables();
    torch::jit::Stack stack;
    stack.reserve(1 + saved.size() + flags.size());
    stack.emplace_back(grad_outputs[0]);
    stack.insert(stack.end(), saved.begin(), saved.end());
    stack.insert(stack.end(), flags.begin(), flags.end());
    c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), "").callBoxed(stack);
    // One entry per argument of forward (after ctx): none for op, one per tensor, none for flags.
    variable_list grads{at::Tensor()};
    for (const auto& g : stack) grads.push_back(g.toTensor());  // a boxed call leaves one entry per output
    grads.emplace_back();
    return grads;
  }
};

void row_op_autograd(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  const size_t n = args.size();
  std::vector<at::Tensor> tensors;
  std::vector<c10::IValue> flags;
  for (size_t i = 0; i < n; ++i) {
    c10::IValue& v = (*stack)[stack->size() - n + i];
    if (v.isTensor())
      tensors.push_back(v.toTensor());
    else
      flags.push_back(v);
  }
  // Nothing to record (inference, or no input requires grad), or an undefined input, which the kernel's
  // own checks name: straight to the kernel.
  const bool record = at::GradMode::is_enabled() &&
                      std::any_of(tensors.begin(), tensors.end(), [](const at::Tensor& t) { return t.defined() && t.requires_grad(); }) &&
                      std::all_of(tensors.begin(), tensors.end(), [](const at::Tensor& t) { return t.defined(); });
  if (!record) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    op.callBoxed(stack);
    return;
  }
  torch::jit::drop(*stack, n);
  // A TensorList (not the vector) so that autograd sees each tensor as an input.
  stack->emplace_back(RowOpFunction::apply(&op, at::TensorList(tensors), flags));
}

}  // namespace

TORCH_LIBRARY_IMPL(hypops, Autograd, m) {
  for (const char* name : kAutogradOps) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&row_op_autograd>());
    const std::string backward = std::string(name) + "_backward";  // impl copies the name
    m.impl(backward.c_str(), torch::autograd::autogradNotImplementedFallback());
  }
  // The conv's autograd is Python's (hypops/ops/gyroplane_conv3d.py); its backward has no derivative either.
  m.impl("gyroplane_conv3d_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace hypops
