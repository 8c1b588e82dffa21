"""ROS 2 bag tools without a ROS install: dataset converters, info, a player and a recorder (rclpy),
and end-to-end evaluation of recorded outputs (`vfdepth bag ...`, `vfdepth evaluate-bag`)."""
