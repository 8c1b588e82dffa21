"""ROS 2 launch file for apt-installed ROS 2: the vfdepth node graph on live cameras.

    ros2 launch vfdepth surround.launch.py camera_set:=ddad checkpoint:=/path/to/last.pt
    ros2 launch vfdepth surround.launch.py params_file:=my_rig.yaml namespace:=car1 rviz:=true
    ros2 launch vfdepth surround.launch.py autostart:=false   # managed: ros2 lifecycle set /surround_depth configure

The graph (executables, parameters, remappings, namespaces, respawn) is the data of
vfdepth_ros.graph; `vfdepth launch` runs the same data on machines without `launch`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from vfdepth_ros import graph as G

ARGUMENTS = (
    ("params_file", "", "node parameters YAML (default: config/<camera_set>.yaml of the package)"),
    ("checkpoint", "", "trained model (.pt)"),
    ("model_config", "", "training YAML for random weights when there is no checkpoint (tests only)"),
    ("namespace", "", "namespace for every node"),
    ("use_sim_time", "false", "follow /clock (bag replay)"),
    ("camera_set", "ddad", "ddad | nuscenes | synthetic: picks the default params file"),
    ("rviz", "false", "also start rviz2 with share/vfdepth/rviz/vfdepth.rviz"),
    ("autostart", "true", "configure and activate the (lifecycle) node at start; false: `ros2 lifecycle set` does"),
)
# Seconds from the shutdown's SIGINT to SIGTERM (launch's own argument, 5 by default). `ros2 launch`
# sends no SIGINT to its processes when it got one itself (it assumes the terminal sent it to the whole
# group), so with SIGINT to the launcher alone (`timeout -s INT`, `kill -INT`) this is when they hear of it.
STOP_ARGUMENTS = (("sigterm_timeout", "1.5", "seconds from SIGINT to SIGTERM for the processes at shutdown"),)


def launch_actions(graph):
    """launch_ros actions for a vfdepth_ros.graph.Graph (shared with replay.launch.py)."""
    from launch.actions import ExecuteProcess
    from launch_ros.actions import Node

    actions = []
    for spec in graph.nodes:
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace or None,
            parameters=[*spec.param_files, dict(spec.param_overrides)], remappings=list(spec.remappings),
            arguments=list(spec.arguments), respawn=spec.respawn, respawn_delay=spec.respawn_delay_s,
            output="screen"))
    for proc in graph.processes:  # `ros2 bag play` where rosbag2 is installed, else `vfdepth bag play`
        actions.append(ExecuteProcess(cmd=G.process_command(proc), name=proc.name, output="screen"))
    return actions


def _graph_args(context):
    return {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}


def _surround(context, *args, **kwargs):
    return launch_actions(G.surround_graph(**_graph_args(context)))


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=desc)
          for name, default, desc in (*ARGUMENTS, *STOP_ARGUMENTS)],
        OpaqueFunction(function=_surround),
    ])
