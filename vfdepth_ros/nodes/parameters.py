"""Parameters of the surround_depth node: declared once from :data:`vfdepth_ros.params.PARAMETERS`, read into
:class:`~vfdepth_ros.params.NodeParams`, changed at run time through ``ros2 param set``."""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

from vfdepth_ros import params as P
from vfdepth_ros.nodes.common import TFMessage


def declare_parameters(node) -> P.NodeParams:
    """Declare every parameter of :data:`~vfdepth_ros.params.PARAMETERS` on `node` (read-only unless dynamic)
    and return their values, validated; raises params.ParamError for unusable ones."""
    for spec in P.PARAMETERS:
        node.declare_parameter(spec.name, spec.default, ParameterDescriptor(
            description=spec.description, read_only=not spec.dynamic, dynamic_typing=True))
    values = {spec.name: node.get_parameter(spec.name).value for spec in P.PARAMETERS}
    p = P.node_params_from_values(values)
    if p.extrinsics_source == "tf" and TFMessage is None:
        raise P.ParamError("parameter 'extrinsics_source' is 'tf' but tf2_msgs is not installed: build it into "
                           "the venv (tools/build_tf2_msgs.py) or set extrinsics_source: file")
    return p


class ParametersMixin:
    """Run-time parameter changes (``ros2 param set``): validated, applied, the model reloaded when
    'checkpoint' changes.

    A mixin of :class:`~vfdepth_ros.nodes.surround_depth.SurroundDepthNode`: the state it uses is set up in
    that class's ``__init__``."""

    def _on_set_parameters(self, changes) -> SetParametersResult:
        values = {c.name: c.value for c in changes}
        unknown = [n for n in values if n not in P.SPECS]
        if unknown:
            return SetParametersResult(successful=False, reason=f"unknown parameter '{unknown[0]}'")
        try:
            new = P.with_values(self.params, values)
        except P.ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old, self.params = self.params, new
        if new.checkpoint != old.checkpoint:
            self._log.info(f"parameter 'checkpoint' changed to '{new.checkpoint}': reloading the model")
            self._reload.set()
        return SetParametersResult(successful=True)
