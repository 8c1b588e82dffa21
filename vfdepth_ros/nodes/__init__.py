"""ROS 2 nodes of the vfdepth package (console scripts declared in setup.py)."""
