"""ROS 2 launch file: the vfdepth node graph fed by a bag player (with /clock, use_sim_time): `ros2 bag
play` where rosbag2 is installed, else the project's `vfdepth bag play` with the same arguments.

    ros2 launch vfdepth replay.launch.py bag:=drive.mcap camera_set:=synthetic checkpoint:=last.pt loop:=true

Pip-only equivalent: `vfdepth launch --bag drive.mcap --camera-set synthetic --checkpoint last.pt --loop`.
"""

import importlib.util
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from vfdepth_ros import graph as G


def _surround_module():
    spec = importlib.util.spec_from_file_location("vfdepth_surround_launch", Path(__file__).with_name("surround.launch.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SURROUND = _surround_module()
ARGUMENTS = (
    ("bag", "", "the bag to play (.mcap file or rosbag2 directory)"),
    ("rate", "1.0", "playback speed factor"),
    ("loop", "false", "play the bag in a loop"),
    *[a for a in SURROUND.ARGUMENTS if a[0] != "use_sim_time"],
)


def _replay(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    bag, rate, loop = values.pop("bag"), float(values.pop("rate")), values.pop("loop")
    return SURROUND.launch_actions(G.replay_graph(bag, rate=rate, loop=loop, **values))


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=desc)
          for name, default, desc in (*ARGUMENTS, *SURROUND.STOP_ARGUMENTS)],
        OpaqueFunction(function=_replay),
    ])
