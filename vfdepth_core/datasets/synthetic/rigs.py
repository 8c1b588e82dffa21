"""Camera rigs of the synthetic world: a DDAD-like and a nuScenes-like six-camera rig.

Camera order is the paper's neighbour ring (``config.PAPER_NEIGHBORS``): front, front-left, front-right,
back-left, back-right, back. Intrinsics are given at each dataset's native image size and scaled to the
render size with ``geometry.resize_intrinsics``; extrinsics are ``T_ego_cam`` (camera -> vehicle; vehicle
x forward, y left, z up; camera OpenCV).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from vfdepth_core import geometry

# DDAD: numbers copied from the calibration file of the real DDAD scene in shared/data/ddad_sample
# (calibration/64b9fde6360457d8beddcfb06c512fec6e2989d8.json), images 1936 x 1216. Directions checked
# from the extrinsics' optical axes: 01 front, 05 front-left, 06 front-right, 07 back-left, 08 back-right,
# 09 back (the paper's DDAD order).
#          name         fx                  fy                  cx                 cy
#          translation (x, y, z)                                        rotation (qw, qx, qy, qz)
_DDAD = (
    ("CAMERA_01", (2181.530254382263, 2181.6034466840038, 928.0218817103168, 615.9567879463117),
     (1.4855427639599839, 0.28616353316692766, 1.5617304615771417),
     (0.512734825660536, -0.5204131359731259, 0.483559134543592, -0.48212418510268484)),
    ("CAMERA_05", (1057.0685006265498, 1055.9745605834144, 964.6834850172629, 588.6612498587956),
     (1.52093975696107, 0.4574157637366625, 1.5753242209317193),
     (0.6607769368469352, -0.6751131476133265, 0.23003455787756122, -0.2338379349739517)),
    ("CAMERA_06", (1060.7556963722263, 1059.2549314610033, 946.5584747928981, 611.407084771089),
     (1.5330512698187704, -0.4134779206162875, 1.5332483324642254),
     (0.2256789490858021, -0.22195853829756987, 0.6685661783754228, -0.6729210089964616)),
    ("CAMERA_07", (1058.949432375444, 1056.7776258435003, 966.0260232796186, 615.2019014245489),
     (1.1047227373333044, 0.4272270943622516, 1.563046883152822),
     (0.6700935030735806, -0.6832162910666042, -0.20377261275794284, 0.2065597227185677)),
    ("CAMERA_08", (1057.2909120690622, 1060.1497929739965, 966.4159674505777, 619.2699631002707),
     (1.0954118728427602, -0.46058894121415506, 1.55477381656209),
     (0.21126882397726474, -0.2086369912947377, -0.6756492997311923, 0.6747844942287067)),
    ("CAMERA_09", (1063.4579724697585, 1065.2223608725776, 944.6657652450222, 612.6983955581646),
     (0.14706852359404365, 0.13320383159566518, 1.5298214057698232),
     (0.4977373598124163, -0.4936700173681212, -0.49550743704266875, 0.5128545743523507)),
)

# nuScenes: typical calibrated_sensor values of the nuScenes trainval rig (one log), images 1600 x 900.
_NUSCENES = (
    ("CAM_FRONT", (1266.417, 1266.417, 816.267, 491.507),
     (1.70079, 0.01594, 1.51095), (0.49981, -0.50302, 0.49973, -0.49742)),
    ("CAM_FRONT_LEFT", (1272.598, 1272.598, 826.616, 479.752),
     (1.52387, 0.49464, 1.50932), (0.67571, -0.67365, 0.21089, -0.21081)),
    ("CAM_FRONT_RIGHT", (1260.847, 1260.847, 807.969, 495.335),
     (1.55085, -0.49340, 1.49575), (0.20603, -0.20269, 0.68245, -0.67136)),
    ("CAM_BACK_LEFT", (1256.748, 1256.748, 817.789, 451.954),
     (1.03570, 0.48480, 1.59102), (0.69241, -0.70316, -0.11648, 0.11203)),
    ("CAM_BACK_RIGHT", (1259.514, 1259.514, 807.252, 501.196),
     (1.01486, -0.48040, 1.56239), (0.12281, -0.13240, -0.70043, 0.69050)),
    ("CAM_BACK", (809.221, 809.221, 829.219, 481.778),
     (0.02832, 0.00345, 1.57910), (0.50378, -0.49740, -0.49531, 0.50338)),
)


def _ddad_mask(name: str) -> Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Vehicle body in normalised image coords (x, y in [0, 1]); True = body (invalid)."""
    if name.endswith("05") or name.endswith("FRONT_LEFT"):  # body at the lower right
        return lambda x, y: y > 0.92 - 0.25 * np.clip(x - 0.55, 0, None)
    if name.endswith("06") or name.endswith("FRONT_RIGHT"):  # body at the lower left
        return lambda x, y: y > 0.92 - 0.25 * np.clip(0.45 - x, 0, None)
    if name.endswith("07") or name.endswith("BACK_LEFT"):  # body along the left
        return lambda x, y: y > 0.85 - 0.35 * np.clip(0.5 - x, 0, None)
    if name.endswith("08") or name.endswith("BACK_RIGHT"):
        return lambda x, y: y > 0.85 - 0.35 * np.clip(x - 0.5, 0, None)
    if name.endswith("09") or name == "CAM_BACK":  # rear bumper
        return lambda x, y: y > 0.88 + 0.06 * (2 * x - 1) ** 2
    return None


@dataclass(frozen=True)
class Rig:
    """A camera rig: names (sensor names as in the dataset's files), K at the native size (H0, W0),
    T_ego_cam, the LIDAR mount (vehicle frame) and a self-occlusion mask function per camera."""

    name: str
    camera_names: Tuple[str, ...]
    K_native: np.ndarray  # (N, 3, 3)
    native_hw: Tuple[int, int]
    T_ego_cam: np.ndarray  # (N, 4, 4)
    lidar_mount_m: Tuple[float, float, float] = (0.0, 0.0, 1.9)

    def K(self, hw: Tuple[int, int]) -> np.ndarray:
        """Intrinsics (N, 3, 3) at render size hw = (H, W), half-pixel correct."""
        return geometry.resize_intrinsics(torch.from_numpy(self.K_native), self.native_hw, hw).numpy()

    def masks(self, hw: Tuple[int, int]) -> np.ndarray:
        """Self-occlusion masks (N, H, W) bool, True = valid (not the vehicle's own body)."""
        H, W = hw
        y, x = np.meshgrid((np.arange(H) + 0.5) / H, (np.arange(W) + 0.5) / W, indexing="ij")
        out = np.ones((len(self.camera_names), H, W), dtype=bool)
        for n, cam in enumerate(self.camera_names):
            f = _ddad_mask(cam)
            if f is not None:
                out[n] = ~f(x, y)
        return out


def _make_rig(name: str, table, native_hw) -> Rig:
    K = np.stack([geometry.intrinsics_matrix(*k).numpy() for _, k, _, _ in table])
    T = np.stack([
        geometry.make_transform(geometry.quat_to_rotmat(torch.tensor(q, dtype=torch.float64)),
                                torch.tensor(t, dtype=torch.float64)).numpy()
        for _, _, t, q in table
    ])
    return Rig(name, tuple(n for n, _, _, _ in table), K, native_hw, T)


DDAD_RIG = _make_rig("ddad", _DDAD, (1216, 1936))
NUSCENES_RIG = _make_rig("nuscenes", _NUSCENES, (900, 1600))
RIGS: Dict[str, Rig] = {"ddad": DDAD_RIG, "nuscenes": NUSCENES_RIG}
