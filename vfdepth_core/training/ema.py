"""The weight average (training.ema_decay) that checkpoints hand out."""

from __future__ import annotations

import torch


class WeightEMA:
    """Exponential moving average of a model's weights and buffers (training.ema_decay).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates n, so the average is not
    dominated by the random initial weights; integer buffers (BatchNorm counters) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- d shadow + (1 - d) weights, as one lerp per tensor (one pass instead of two)."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        floats, targets = [], []
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.dtype.is_floating_point:
                floats.append(s)
                targets.append(v.detach().to(s.dtype))
            else:
                s.copy_(v)
        if floats:
            torch._foreach_lerp_(floats, targets, 1.0 - d)

    def state_dict(self) -> dict:
        return self.shadow

    def load_state_dict(self, state: dict, updates: int) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"weight average does not fit the model (keys {sorted(missing)[:3]}...)")
        for k, v in state.items():
            self.shadow[k].copy_(v)
        self.updates = int(updates)
