"""The training step's faster pieces give the plain results: fused Adam, the cheap non-finite gradient check,
the one-pass weight average. (The wide convs' contiguous inputs under autograd: tests/test_perf_paths.py.)"""

import pytest
import torch

from vfdepth_core.training.ema import WeightEMA
from vfdepth_core.training.optim import grads_finite, make_adam


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, 3, 3, generator=g).requires_grad_(), torch.randn(7, generator=g).requires_grad_()]


def test_fused_adam_matches_the_plain_update():
    a, b = _params(), _params()
    opt_a, opt_b = torch.optim.Adam(a, lr=1e-2), make_adam(b, 1e-2, "cpu")
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in a]
        for p, q, gr in zip(a, b, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
        assert not torch.equal(p, _params()[0 if p.dim() == 4 else 1])  # the steps moved the weights


@pytest.mark.parametrize("bad, expect", [(None, True), (float("nan"), False), (float("inf"), False),
                                         (float("-inf"), False), ("overflow", True)])
def test_grads_finite_known_answers(bad, expect):
    ps = _params()
    for p in ps:
        p.grad = torch.ones_like(p)
    if bad == "overflow":  # finite values whose sum overflows: the exact check still says finite
        ps[0].grad.fill_(3e38)
    elif bad is not None:
        ps[1].grad[3] = bad
    assert grads_finite(ps) is expect
    assert grads_finite([torch.zeros(2, requires_grad=True)])  # no gradients at all


def test_weight_average_lerp_matches_the_two_pass_formula():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = WeightEMA(model, 0.9)
    ref = {k: v.clone() for k, v in ema.shadow.items()}
    for n in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].num_batches_tracked += 1
        ema.update(model)
        d = min(0.9, (1.0 + n) / (10.0 + n))
        for k, v in model.state_dict().items():
            ref[k] = ref[k] * d + v * (1 - d) if v.dtype.is_floating_point else v.clone()
    for k in ref:
        torch.testing.assert_close(ema.shadow[k], ref[k], rtol=1e-6, atol=1e-6)
    assert int(ema.shadow["1.num_batches_tracked"]) == 3

